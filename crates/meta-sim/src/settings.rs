//! Run-time knobs: the open questions of the Meta reference (each answer can be simulated),
//! token lifetimes, CDN URL windows and rate budgets. Patched as JSON through the control API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Shape of the `api.instagram.com/oauth/access_token` success body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeExchangeShape {
    /// `{"access_token","user_id","permissions"}` (what real clients read).
    #[default]
    Flat,
    /// `{"data":[{…}]}` (what the Business Login doc prints).
    Wrapped,
}

/// JSON type of `user_id` in the code-exchange body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    /// `"user_id": 17841…`
    #[default]
    Number,
    /// `"user_id": "17841…"`
    String,
}

/// Which id the code exchange (and the Instagram deauthorize/data-deletion callbacks) call `user_id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdSource {
    /// The 17841… professional-account id (`/me?fields=user_id`).
    #[default]
    Professional,
    /// The app-scoped id (`/me?fields=id`).
    AppScoped,
}

/// JSON type of `permissions` in the code-exchange body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionsType {
    /// `"instagram_business_basic,instagram_business_manage_comments"`
    #[default]
    String,
    /// `["instagram_business_basic", …]`
    Array,
}

/// What `/media?limit=N` does when N > 100.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitOver100 {
    /// Serve 100 items.
    #[default]
    Clamp,
    /// Graph error code 100.
    Error,
}

/// How Instagram Login treats a personal (non-professional) account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalAccountLogin {
    /// Login and token work, `/me` says `PERSONAL`, media calls fail with code 10.
    #[default]
    TokenThenNoPermission,
    /// The login page says the account must be professional and offers only Cancel.
    Refused,
}

/// Every run-time knob. `GET/PATCH /__sim/settings`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Shape of the code-exchange success body.
    pub code_exchange_shape: CodeExchangeShape,
    /// `user_id` as a JSON number or string in the code exchange.
    pub user_id_type: UserIdType,
    /// Which id the code exchange and the Instagram callbacks call `user_id`.
    pub user_id_source: UserIdSource,
    /// `permissions` as a comma string or an array in the code exchange.
    pub permissions_type: PermissionsType,
    /// Whether `graph.instagram.com/access_token?grant_type=ig_exchange_token` works.
    pub ig_exchange_supported: bool,
    /// Whether `refresh_access_token` returns a new string (the old one stays valid until its
    /// own expiry) or the same string with a new expiry.
    pub refresh_returns_new_token: bool,
    /// `limit` above 100 on media lists: clamp or error.
    pub media_limit_over_100: LimitOver100,
    /// How Instagram Login treats personal accounts.
    pub personal_account_login: PersonalAccountLogin,
    /// Whether a `CAROUSEL_ALBUM` parent carries `media_url` (its first child's image).
    pub carousel_parent_media_url: bool,
    /// Add `id` to every node even when `fields` did not ask for it.
    pub always_include_id: bool,
    /// Apply the 90-day data-access expiry to Instagram-Login tokens too (always on for Facebook Login).
    pub ig_data_access_expiry: bool,
    /// Whether `debug_token` inspects `IG…` tokens (otherwise they read as unparseable).
    pub debug_token_accepts_ig_tokens: bool,
    /// Lifetime of the token from the Instagram code exchange.
    pub ig_short_token_ttl_secs: i64,
    /// Lifetime of an Instagram long-lived token (from exchange or refresh).
    pub ig_long_token_ttl_secs: i64,
    /// Lifetime of a Facebook user token from the code exchange.
    pub fb_short_token_ttl_secs: i64,
    /// Lifetime of a Facebook long-lived user token (`fb_exchange_token`).
    pub fb_long_token_ttl_secs: i64,
    /// Lifetime of a Page token obtained with a short-lived user token (long-lived ones never expire).
    pub page_token_short_ttl_secs: i64,
    /// Minimum age of an Instagram long-lived token before it may be refreshed.
    pub refresh_min_age_secs: i64,
    /// Lifetime of an authorization code.
    pub auth_code_ttl_secs: i64,
    /// Lifetime of the `login_ticket` carried by consent forms.
    pub login_ticket_ttl_secs: i64,
    /// Data access lasts this long after the user's last login/consent.
    pub data_access_ttl_secs: i64,
    /// CDN URLs handed out within one window of this many seconds are identical.
    pub cdn_url_window_secs: i64,
    /// A CDN URL expires (`oe`) this long after the start of its window.
    pub cdn_url_lifetime_secs: i64,
    /// Send `cross-origin-resource-policy: same-origin` on CDN responses.
    pub cdn_corp_header: bool,
    /// Serve the variety Instagram's CDN does: about one picture in three as WebP behind its
    /// `.jpg` name (still `Content-Type: image/jpeg`), and about one post photo in four at the
    /// widest ratio Instagram allows (1.91:1, 1080 × 566).
    pub cdn_mixed_formats: bool,
    /// Per-app budget of calls with app/user tokens on graph.facebook.com per rolling hour.
    pub app_calls_per_hour: u32,
    /// Per-Instagram-account (BUC) budget of calls per rolling 24 hours.
    pub ig_account_calls_per_day: u32,
    /// How long a simulated "timeout" outage keeps the request hanging.
    pub outage_hang_secs: u64,
    /// Milliseconds every Meta-host response waits before it is sent (never the control API),
    /// to widen race windows in tests.
    pub latency_ms: u64,
    /// Timeout for the simulator's own POSTs to deauthorize/data-deletion callbacks.
    pub callback_timeout_secs: u64,
    /// The Graph API version that serves unversioned calls (the app's default version).
    pub default_graph_version: u32,
    /// The oldest version still available; calls to older ones are served by it.
    pub oldest_graph_version: u32,
    /// IG Media and Instagram user fields this Meta does not know (Meta's `nonexisting field`
    /// error when asked), e.g. `["alt_text"]` to stand for a Meta that predates a field.
    pub unknown_fields: Vec<String>,
    /// Answer with what a hostile or broken Meta could send, so a client's allow-lists are
    /// tested end to end: `javascript:` permalinks and website, a 50 000-character caption with
    /// markup, every other image on a host off the CDN list, video posters over plain `http`,
    /// and a profile picture off the list.
    pub hostile_content: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            code_exchange_shape: CodeExchangeShape::Flat,
            user_id_type: UserIdType::Number,
            user_id_source: UserIdSource::Professional,
            permissions_type: PermissionsType::String,
            ig_exchange_supported: true,
            refresh_returns_new_token: true,
            media_limit_over_100: LimitOver100::Clamp,
            personal_account_login: PersonalAccountLogin::TokenThenNoPermission,
            carousel_parent_media_url: true,
            always_include_id: false,
            ig_data_access_expiry: false,
            debug_token_accepts_ig_tokens: false,
            ig_short_token_ttl_secs: 3_600,
            // Meta's samples answer `expires_in: 5183944` (60 days less 56 s).
            ig_long_token_ttl_secs: 5_183_944,
            fb_short_token_ttl_secs: 5_400,
            fb_long_token_ttl_secs: 5_183_944,
            page_token_short_ttl_secs: 3_600,
            refresh_min_age_secs: 86_400,
            auth_code_ttl_secs: 600,
            login_ticket_ttl_secs: 600,
            data_access_ttl_secs: 90 * 86_400,
            cdn_url_window_secs: 3_600,
            cdn_url_lifetime_secs: 108 * 3_600,
            cdn_corp_header: true,
            cdn_mixed_formats: false,
            app_calls_per_hour: 5_000,
            ig_account_calls_per_day: 4_800,
            outage_hang_secs: 60,
            latency_ms: 0,
            callback_timeout_secs: 10,
            default_graph_version: 23,
            oldest_graph_version: 21,
            unknown_fields: Vec::new(),
            hostile_content: false,
        }
    }
}

impl Settings {
    /// Checks ranges that serde cannot (positive lifetimes and budgets).
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("ig_short_token_ttl_secs", self.ig_short_token_ttl_secs),
            ("ig_long_token_ttl_secs", self.ig_long_token_ttl_secs),
            ("fb_short_token_ttl_secs", self.fb_short_token_ttl_secs),
            ("fb_long_token_ttl_secs", self.fb_long_token_ttl_secs),
            ("page_token_short_ttl_secs", self.page_token_short_ttl_secs),
            ("auth_code_ttl_secs", self.auth_code_ttl_secs),
            ("login_ticket_ttl_secs", self.login_ticket_ttl_secs),
            ("data_access_ttl_secs", self.data_access_ttl_secs),
            ("cdn_url_window_secs", self.cdn_url_window_secs),
            ("cdn_url_lifetime_secs", self.cdn_url_lifetime_secs),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return Err(format!(
                    "setting `{name}` must be a positive number of seconds"
                ));
            }
        }
        if self.refresh_min_age_secs < 0 {
            return Err("setting `refresh_min_age_secs` must not be negative".into());
        }
        if self.app_calls_per_hour == 0 || self.ig_account_calls_per_day == 0 {
            return Err("rate budgets must be at least 1 call".into());
        }
        if self.oldest_graph_version == 0 || self.oldest_graph_version > self.default_graph_version
        {
            return Err(
                "setting `oldest_graph_version` must be at least 1 and at most `default_graph_version`"
                    .into(),
            );
        }
        if self.callback_timeout_secs == 0 {
            return Err("setting `callback_timeout_secs` must be at least 1".into());
        }
        Ok(())
    }

    /// Applies a JSON object of `{setting: value}` and returns the result, naming the culprit
    /// when a key is unknown or a value has the wrong type.
    pub fn patched(&self, patch: &Value) -> Result<Settings, String> {
        let Value::Object(changes) = patch else {
            return Err("settings patch must be a JSON object of {\"setting\": value}".into());
        };
        let current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let Value::Object(base) = current else {
            return Err("settings did not serialize to an object".into());
        };
        let mut merged = base.clone();
        for (key, value) in changes {
            if !base.contains_key(key) {
                return Err(format!("unknown setting `{key}`"));
            }
            let mut single = base.clone();
            single.insert(key.clone(), value.clone());
            if let Err(e) = serde_json::from_value::<Settings>(Value::Object(single)) {
                return Err(format!("setting `{key}`: {e}"));
            }
            merged.insert(key.clone(), value.clone());
        }
        let settings: Settings =
            serde_json::from_value(Value::Object(merged)).map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_changes_only_named_keys() {
        let s = Settings::default()
            .patched(&json!({"code_exchange_shape": "wrapped", "app_calls_per_hour": 3}))
            .expect("valid patch");
        assert_eq!(s.code_exchange_shape, CodeExchangeShape::Wrapped);
        assert_eq!(s.app_calls_per_hour, 3);
        assert!(s.refresh_returns_new_token);
        let s = s.patched(&json!({"latency_ms": 250})).expect("valid patch");
        assert_eq!(s.latency_ms, 250);
    }

    #[test]
    fn patch_names_the_bad_key() {
        let err = Settings::default()
            .patched(&json!({"app_calls_per_hour": "many"}))
            .expect_err("wrong type");
        assert!(err.contains("app_calls_per_hour"), "{err}");
        let err = Settings::default()
            .patched(&json!({"nope": 1}))
            .expect_err("unknown key");
        assert!(err.contains("unknown setting `nope`"), "{err}");
        let err = Settings::default()
            .patched(&json!({"cdn_url_window_secs": 0}))
            .expect_err("zero window");
        assert!(err.contains("cdn_url_window_secs"), "{err}");
        assert!(Settings::default().patched(&json!([1])).is_err());
    }
}
