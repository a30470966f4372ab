//! `Simulator`: the cheap-to-clone handle feedkeeper and the control API use. It owns the
//! state behind one mutex (never held across an await), the image cache and the HTTP client
//! for callbacks; every control action is a method here.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::{AccountInfo, NewAccount};
use crate::app_config::AppConfig;
use crate::delivery::{self, Delivery};
use crate::demo::{self, DemoAccount};
use crate::error::SimError;
use crate::event::{AccountEvent, EventOutcome, EventRecord, GlobalEvent};
use crate::image::ImageCache;
use crate::media::{MediaInfo, NewMedia};
use crate::options::SimOptions;
use crate::outage::Outage;
use crate::rate_limit::{ActiveThrottle, Throttle};
use crate::request_log::RequestRecord;
use crate::settings::Settings;
use crate::state::State;

struct Inner {
    state: Mutex<State>,
    images: ImageCache,
    client: reqwest::Client,
}

/// The simulated Meta. Clones share one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

/// A token as the App Dashboard's "Generate token" button hands it out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedToken {
    /// The long-lived `IGAA…` token (scope `instagram_business_basic`).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until expiry.
    pub expires_in: i64,
}

impl Simulator {
    /// A fresh simulator: no accounts, default app, clock at `options.start_time`.
    pub fn new(options: SimOptions) -> Self {
        let client = reqwest::Client::builder()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(options)),
                images: ImageCache::default(),
                client,
            }),
        }
    }

    /// The state; a panic elsewhere must not take the simulator down with it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn images(&self) -> &ImageCache {
        &self.inner.images
    }

    /// The axum router serving every Meta host and the control API.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.clone())
    }

    /// The options the simulator was built with.
    pub fn options(&self) -> SimOptions {
        self.lock().options.clone()
    }

    /// Creates an account (and its seeded posts).
    pub fn create_account(&self, new: NewAccount) -> Result<AccountInfo, SimError> {
        self.lock().create_account(new)
    }

    /// Every account, by username.
    pub fn list_accounts(&self) -> Vec<AccountInfo> {
        let st = self.lock();
        st.accounts.values().map(|a| st.account_info(a)).collect()
    }

    /// One account.
    pub fn account(&self, username: &str) -> Result<AccountInfo, SimError> {
        let st = self.lock();
        let a = st.account(username)?;
        Ok(st.account_info(a))
    }

    /// Posts media as `username` (timestamp defaults to the simulator clock).
    pub fn post_media(&self, username: &str, media: NewMedia) -> Result<MediaInfo, SimError> {
        self.lock().post_media(username, media)
    }

    /// Live posts of `username`, newest first.
    pub fn list_media(&self, username: &str) -> Result<Vec<MediaInfo>, SimError> {
        let st = self.lock();
        st.account(username)?;
        Ok(st
            .posts_of(username)
            .into_iter()
            .map(|m| m.info())
            .collect())
    }

    /// One live post.
    pub fn media(&self, id: &str) -> Result<MediaInfo, SimError> {
        Ok(self.lock().live_post(id)?.info())
    }

    /// Deletes a post: it leaves the API, and its CDN URLs answer 404.
    pub fn delete_media(&self, id: &str) -> Result<(), SimError> {
        self.lock().delete_media(id)
    }

    /// Changes (or with `None` removes) a post's caption.
    pub fn edit_caption(&self, id: &str, caption: Option<String>) -> Result<MediaInfo, SimError> {
        self.lock().edit_caption(id, caption)
    }

    /// Applies an account event; POSTs callbacks (deauthorize, data deletion) and waits for them.
    pub async fn apply_event(
        &self,
        username: &str,
        event: AccountEvent,
    ) -> Result<EventOutcome, SimError> {
        let (seq, pending, timeout) = {
            let mut st = self.lock();
            let (seq, pending) = st.begin_account_event(username, &event)?;
            (seq, pending, st.settings.callback_timeout_secs)
        };
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            let r = delivery::post(&self.inner.client, &p, Duration::from_secs(timeout)).await;
            if let Some(e) = &r.error {
                tracing::warn!(url = %p.url, error = %e, "callback delivery failed");
            }
            results.push((p, r));
        }
        Ok(self.lock().finish_event(seq, results))
    }

    /// Applies a platform-wide event.
    pub fn apply_global_event(&self, event: GlobalEvent) -> EventOutcome {
        self.lock().apply_global_event(event)
    }

    /// Current settings.
    pub fn settings(&self) -> Settings {
        self.lock().settings.clone()
    }

    /// Replaces the settings.
    pub fn set_settings(&self, settings: Settings) -> Result<(), SimError> {
        settings.validate().map_err(SimError::Invalid)?;
        self.lock().settings = settings;
        Ok(())
    }

    /// Applies a JSON object of changed settings and returns the result.
    pub fn patch_settings(&self, patch: &Value) -> Result<Settings, SimError> {
        let mut st = self.lock();
        let next = st.settings.patched(patch).map_err(SimError::Invalid)?;
        st.settings = next.clone();
        Ok(next)
    }

    /// How long every Meta-host response waits before it is sent (setting `latency_ms`).
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.lock().settings.latency_ms)
    }

    /// Delays every Meta-host response (not the control API) by `latency`, in whole
    /// milliseconds, to widen race windows; `Duration::ZERO` turns the delay off.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().settings.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    }

    /// The app configuration.
    pub fn app(&self) -> AppConfig {
        self.lock().app.clone()
    }

    /// Replaces the app configuration (the control API validates it first; see `AppConfig::validate`).
    pub fn set_app(&self, app: AppConfig) {
        self.lock().app = app;
    }

    /// Current outage, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.lock().outage.clone()
    }

    /// Starts an outage.
    pub fn set_outage(&self, outage: Outage) -> Result<(), SimError> {
        outage.validate().map_err(SimError::Invalid)?;
        self.lock().outage = Some(outage);
        Ok(())
    }

    /// Ends the outage.
    pub fn clear_outage(&self) {
        self.lock().outage = None;
    }

    /// Forces a throttle (codes 4/17/32/613/80002) for `secs`, restarted by every blocked call.
    pub fn throttle(&self, throttle: Throttle) -> Result<(), SimError> {
        if throttle.secs <= 0 {
            return Err(SimError::Invalid("`secs` must be positive".into()));
        }
        let mut st = self.lock();
        if let Some(a) = &throttle.account {
            st.account(a)?;
        }
        let now = st.now();
        st.limiter.add_throttle(throttle, now);
        Ok(())
    }

    /// Forced throttles still in force.
    pub fn throttles(&self) -> Vec<ActiveThrottle> {
        let st = self.lock();
        let now = st.now();
        st.limiter
            .throttles
            .iter()
            .filter(|t| t.until > now)
            .cloned()
            .collect()
    }

    /// Lifts every forced throttle.
    pub fn clear_throttles(&self) {
        self.lock().limiter.throttles.clear();
    }

    /// Simulator time (unix seconds).
    pub fn now(&self) -> i64 {
        self.lock().now()
    }

    /// Moves the clock forward (or back, with a negative value); returns the new time.
    pub fn advance_clock(&self, secs: i64) -> i64 {
        self.lock().clock.advance(secs)
    }

    /// Sets the clock.
    pub fn set_clock(&self, unix: i64) {
        self.lock().clock.set(unix);
    }

    /// Requests to the Meta hosts with `seq > since` (secrets redacted).
    pub fn requests(&self, since: Option<u64>) -> Vec<RequestRecord> {
        self.lock().requests.since(since)
    }

    /// Every callback POST made so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// Every event applied so far.
    pub fn events(&self) -> Vec<EventRecord> {
        self.lock().events.clone()
    }

    /// Back to a fresh simulator with the original options (same seed, same ids).
    pub fn reset(&self) {
        let mut st = self.lock();
        let options = st.options.clone();
        *st = State::new(options);
    }

    /// Creates the demo accounts and returns their logins.
    pub fn seed_demo(&self) -> Result<Vec<DemoAccount>, SimError> {
        demo::seed(&mut self.lock())
    }

    /// Issues a long-lived Instagram token for `username` without the login flow, as the App
    /// Dashboard's "Generate token" button does.
    pub fn generate_token(&self, username: &str) -> Result<GeneratedToken, SimError> {
        let (access_token, expires_in) = self.lock().generate_token(username)?;
        Ok(GeneratedToken {
            access_token,
            token_type: "bearer".into(),
            expires_in,
        })
    }
}
