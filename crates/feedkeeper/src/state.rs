//! Shared state: everything a handler, a worker or a command needs (config, database, Meta
//! client, token cipher, clock). It sits below the HTTP routes and the workers, which both
//! import it; it imports neither.

use std::sync::Arc;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::{Purpose, TokenCipher};
use crate::db::Db;
use crate::meta::MetaClient;

/// Everything a handler or worker needs, behind one `Arc`: cloned for every request, so a clone
/// is one atomic increment (its fields are read through `Deref`).
#[derive(Clone, Debug)]
pub struct AppState {
    shared: Arc<Shared>,
}

/// What an [`AppState`] holds.
#[derive(Clone, Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub db: Db,
    pub meta: MetaClient,
    /// Seals tokens before they are stored and opens them when they are used.
    pub cipher: TokenCipher,
    /// Seals the anonymous CSRF values of the log-in and sign-up forms (its own subkeys).
    pub prelogin_cipher: TokenCipher,
    /// Seals the bodies of mail in the outbox (its own subkeys).
    pub mail_cipher: TokenCipher,
    /// Seals webhook endpoints' signing secrets (its own subkeys).
    pub webhook_cipher: TokenCipher,
    /// Seals the developer API's kept answers (its own subkeys).
    pub api_cipher: TokenCipher,
    /// Where mail goes: the SMTP server, or only the dashboard's mailbox (`mail::send`).
    pub mailer: Arc<crate::mail::send::Mailer>,
    /// Keys the hashes of emails in the log-in limit, so the table does not reveal who tried.
    pub login_limit_key: Arc<[u8; 32]>,
    pub clock: Clock,
    /// This node's name in leases, logs and the status page.
    pub node: Arc<str>,
    /// Set when running `feedkeeper demo`: what to show a first-time user.
    pub demo: Option<Arc<DemoInfo>>,
    /// The image store, its fetcher, pool and serving cache (`images`).
    pub images: Arc<crate::images::Images>,
    /// Rendered widgets, served from memory (`widgets::cache`).
    pub widgets: Arc<crate::widgets::cache::WidgetCache>,
    /// The node's request slots (`server.max_concurrent_requests`), shared by its serving
    /// threads.
    pub request_slots: Arc<tokio::sync::Semaphore>,
    /// The node's budget for request bodies held at once, in KiB
    /// (`server.max_buffered_body_bytes`), shared by its serving threads.
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// The developer API's rate limits on this node (`accounts::api_keys`).
    pub api_limits: Arc<crate::accounts::api_keys::ApiLimits>,
    /// What this node counts for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where requests answered with this state are counted: each serving thread has its own
    /// (`serving`); the state `build` makes has one that whatever else serves with it shares
    /// (see [`crate::metrics::RequestCounts`]).
    pub requests: Arc<crate::metrics::RequestCounts>,
    /// The workers' pool, kept when a serving thread swaps `db` for its own (`serving`), for
    /// the pool metrics.
    pub workers_db: Db,
    /// Where `/readyz` and `/metrics` read the database: on a serving thread, a pool of one
    /// connection of its own. A probe that times out against a database that stopped answering
    /// can leave that connection stuck until TCP gives up; it is then this pool that waits, never
    /// the requests' pool or the workers'.
    pub probe_db: Db,
    /// When each worker on this node last went round its loop (`/readyz`).
    pub worker_beats: Arc<crate::metrics::WorkerBeats>,
    /// The last readiness check (`/readyz`): ready, or why not.
    pub readiness: Arc<crate::metrics::Recent<Result<String, String>>>,
    /// The database's part of the last scrape (`/metrics`).
    pub scraped: Arc<crate::metrics::Recent<Result<crate::metrics::DbSnapshot, String>>>,
    /// The serving threads' own pools (`serving`), for the pool metrics.
    pub serving_pools: Arc<std::sync::Mutex<Vec<Db>>>,
    /// When this process started (for the uptime metric).
    pub started: std::time::Instant,
    /// Set once shutdown began: `/readyz` answers 503 so load balancers stop sending traffic.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// A readiness check is answered from memory for this long: a load balancer probing every
/// second, or a flood of probes, makes at most one database round trip per second.
const READINESS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);
/// Scrapes within this long of each other share one read of the database.
const SCRAPE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// What the demo tells its user: where the simulator is and whom to log in as.
#[derive(Clone, Debug, Default)]
pub struct DemoInfo {
    pub simulator_url: String,
    pub accounts: Vec<DemoAccount>,
}

#[derive(Clone, Debug)]
pub struct DemoAccount {
    pub username: String,
    pub password: String,
    pub description: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl AppState {
    /// The same state as a serving thread has it: its own pool for requests, and one more
    /// connection of its own for probes and scrapes.
    pub fn serving(&self, db: Db, probe_db: Db) -> AppState {
        let mut shared = (*self.shared).clone();
        shared.db = db;
        shared.probe_db = probe_db;
        shared.requests = self.metrics.request_counts();
        AppState {
            shared: Arc::new(shared),
        }
    }

    /// The same state, for `feedkeeper demo`: with what to show a first-time user.
    pub fn with_demo(self, demo: DemoInfo) -> AppState {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.demo = Some(Arc::new(demo));
        AppState {
            shared: Arc::new(shared),
        }
    }

    /// Connects to the database, brings the schema up to date and builds the Meta client.
    /// Refuses to start without a token key: storing tokens in clear is never an option.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<AppState> {
        let keys = config.security.keys()?;
        if keys.is_empty() {
            anyhow::bail!(
                "security.token_keys is empty: feedkeeper needs a key to encrypt Instagram tokens. \
                 Create one with `feedkeeper generate-key` and set it in the config file or in \
                 FEEDKEEPER_SECURITY__TOKEN_KEYS."
            );
        }
        let cipher = TokenCipher::new(&keys, Purpose::Tokens)?;
        let prelogin_cipher = TokenCipher::new(&keys, Purpose::PreloginCsrf)?;
        let mail_cipher = TokenCipher::new(&keys, Purpose::Mail)?;
        let webhook_cipher = TokenCipher::new(&keys, Purpose::Webhooks)?;
        let api_cipher = TokenCipher::new(&keys, Purpose::ApiAnswers)?;
        let mailer = Arc::new(
            crate::mail::send::Mailer::from_config(&config.mail)
                .context("cannot set up the SMTP client (mail.*)")?,
        );
        let login_limit_key = Arc::new(keys[0].hash_key("login limit"));
        if config.storage.database_url.is_empty() {
            std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.storage.data_dir.display()
                )
            })?;
        }
        let db =
            Db::connect_with_pool(&config.database_url(), config.storage.pool_size as u32).await?;
        db.migrate().await.context("database migration failed")?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let meta = MetaClient::new(&config.meta, clock.clone())?.with_metrics(metrics.clone());
        let node = Arc::from(node_name(&config.workers));
        let widgets = Arc::new(crate::widgets::cache::WidgetCache::new(&config.widgets));
        let images =
            Arc::new(crate::images::Images::open(&config).context("cannot open the image store")?);
        let permits = |n: u64| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS)
        };
        let request_slots = Arc::new(tokio::sync::Semaphore::new(permits(
            config.server.max_concurrent_requests,
        )));
        let body_budget = Arc::new(tokio::sync::Semaphore::new(permits(
            config.server.max_buffered_body_bytes / 1024,
        )));
        let api_limits = Arc::new(crate::accounts::api_keys::ApiLimits::new(
            config.api.requests_per_minute,
        ));
        let shared = Shared {
            api_limits,
            requests: metrics.request_counts(),
            metrics,
            workers_db: db.clone(),
            probe_db: db.clone(),
            worker_beats: Arc::default(),
            readiness: Arc::new(crate::metrics::Recent::new(READINESS_MAX_AGE)),
            scraped: Arc::new(crate::metrics::Recent::new(SCRAPE_MAX_AGE)),
            started: std::time::Instant::now(),
            stopping: Arc::default(),
            serving_pools: Arc::default(),
            node,
            config: Arc::new(config),
            db,
            meta,
            cipher,
            prelogin_cipher,
            mail_cipher,
            webhook_cipher,
            api_cipher,
            mailer,
            login_limit_key,
            clock,
            demo: None,
            widgets,
            images,
            request_slots,
            body_budget,
        };
        Ok(AppState {
            shared: Arc::new(shared),
        })
    }
}

/// This node's name: `workers.node_name`, or the host name plus a random suffix, so two
/// processes on one host never share a name.
pub fn node_name(workers: &crate::config::WorkersConfig) -> String {
    if !workers.node_name.is_empty() {
        return workers.node_name.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
