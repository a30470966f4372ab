//! The running service: the router with its edge layers, the workers, and graceful shutdown.
//! The top of the layers: it wires `http` and `jobs` together over [`AppState`].

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::http;
pub use crate::state::AppState;

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
    let workers = crate::jobs::spawn(state.clone(), &state.node, workers_stopped);
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
