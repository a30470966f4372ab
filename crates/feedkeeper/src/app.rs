//! The running service: shared state, the router, and graceful shutdown.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::TokenCipher;
use crate::db::Db;
use crate::http;
use crate::meta::MetaClient;

/// Everything a handler or worker needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub meta: MetaClient,
    /// Seals tokens before they are stored and opens them when they are used.
    pub cipher: TokenCipher,
    pub clock: Clock,
    /// Set when running `feedkeeper demo`: what to show a first-time user.
    pub demo: Option<Arc<DemoInfo>>,
}

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

impl AppState {
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
        let cipher = TokenCipher::new(&keys)?;
        if config.storage.database_url.is_empty() {
            std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.storage.data_dir.display()
                )
            })?;
        }
        let db = Db::connect(&config.database_url()).await?;
        db.migrate().await.context("database migration failed")?;
        let meta = MetaClient::new(&config.meta, clock.clone())?;
        Ok(AppState {
            config: Arc::new(config),
            db,
            meta,
            cipher,
            clock,
            demo: None,
        })
    }
}

impl AppState {
    /// The lifecycle rules in effect.
    pub fn policy(&self) -> crate::connections::policy::Policy {
        crate::connections::policy::Policy::from(&self.config.lifecycle)
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    http::router()
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of a request names its route pattern (`/l/{token}`), never the raw URI: paths and
/// queries carry link secrets and OAuth codes, which must not reach a log.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |p| p.as_str());
    tracing::info_span!("request", method = %request.method(), route)
}

/// Serves on `listener` and runs the background workers until Ctrl-C or SIGTERM, then finishes
/// in-flight requests, stops the workers and closes the database.
pub async fn run(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    let db = state.db.clone();
    let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
    let workers = crate::jobs::spawn(state.clone(), workers_stopped);
    // With the peer address, the login rate limit can count per client address too.
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    // Workers finish the check in hand; an unfinished lease simply expires for another node.
    let _ = stop_workers.send(true);
    let _ = workers.await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
