//! The running service: the router with its edge layers, the workers, and graceful shutdown.
//! The top of the layers: it wires `http` and `jobs` together over [`AppState`].

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use anyhow::Context as _;

use crate::http;
use crate::http::edge::{self, RandomRequestId, SecurityHeaders};
pub use crate::http::server::ServingThreads;
pub use crate::state::AppState;

/// Every route of the service, behind the edge (outermost first): the developer API's answers
/// kept uncached and made problem documents (`/api/v1/` only), the client's own request id
/// set apart and its address worked out, our request id, the request's log span, the security
/// headers, a panic catcher, the body read whole (bounded in size and time), the request
/// timeout and the concurrency limit. The public widget routes and the health checks have a
/// lighter edge of their own (no request slot to wait for: a flood of slow requests to the
/// dashboard never stops a health check or a widget).
pub fn router(state: AppState) -> Router {
    with_edge(
        http::router().merge(http::api::router(&state)),
        state.clone(),
    )
    .merge(with_public_edge(http::public_router(), state.clone()))
    .merge(with_public_edge(http::health_router(), state))
}

/// What each serving thread answers with: `GET` and `HEAD` of `/w/{id}` and `/i/{key}/{file}`,
/// by far the busiest routes, taken straight to their handlers behind the same public edge as
/// through the router (panics caught, security headers, counted under the route's pattern);
/// everything else through the router. Skipping the router's matching, its extractors and its
/// boxed middleware on those routes shows against nginx (docs/benchmarks.md).
#[derive(Clone)]
pub struct Front(std::sync::Arc<FrontParts>);

struct FrontParts {
    router: Router,
    state: AppState,
    headers: SecurityHeaders,
}

impl Front {
    pub fn new(state: AppState) -> Front {
        Front(std::sync::Arc::new(FrontParts {
            router: router(state.clone()),
            headers: SecurityHeaders::from_config(&state.config),
            state,
        }))
    }
}

/// A request for one of the hot routes, read in place.
enum Hot<'a> {
    /// `/w/{id}`: the id.
    Widget(&'a str),
    /// `/i/{key}/{file}`: the key and the file.
    Image(&'a str, &'a str),
}

impl Hot<'_> {
    fn of<B>(request: &axum::http::Request<B>) -> Option<Hot<'_>> {
        if let Some(id) = http::widgets::hot_id(request) {
            Some(Hot::Widget(id))
        } else {
            http::images::hot_parts(request).map(|(key, file)| Hot::Image(key, file))
        }
    }

    /// The route it is counted under.
    fn route(&self) -> &'static str {
        match self {
            Hot::Widget(_) => http::widgets::WIDGET_ROUTE,
            Hot::Image(..) => http::images::IMAGE_ROUTE,
        }
    }
}

/// What a hot route must wait for, when memory could not answer at once.
enum Later {
    Widget(String, crate::widgets::cache::PublicKey),
    Image(http::images::Variant),
}

impl FrontParts {
    /// A hot route's answer from memory, or what it must wait for (see [`http::Now`]).
    fn answer_now(&self, hot: &Hot<'_>, headers: &axum::http::HeaderMap) -> http::Now<Later> {
        use http::Now;
        match *hot {
            Hot::Widget(id) => match http::widgets::answer_now(&self.state, id, headers) {
                Now::Ready(response) => Now::Ready(response),
                Now::Later(key) => Now::Later(Later::Widget(id.to_owned(), key)),
            },
            Hot::Image(key, file) => {
                match http::images::answer_now(&self.state, key, file, headers) {
                    Now::Ready(response) => Now::Ready(response),
                    Now::Later(variant) => Now::Later(Later::Image(variant)),
                }
            }
        }
    }

    /// A hot route's answer once it waited for what memory did not have.
    async fn answer_later(&self, later: Later, headers: &axum::http::HeaderMap) -> Response {
        match later {
            Later::Widget(id, key) => {
                http::widgets::answer_later(&self.state, &id, key, headers).await
            }
            Later::Image(variant) => {
                http::images::answer_later(&self.state, variant, headers).await
            }
        }
    }

    /// The public edge of a hot route's answer: the security headers, and the count.
    fn finish(
        &self,
        route: &'static str,
        method: &axum::http::Method,
        started: std::time::Instant,
        mut response: Response,
    ) -> Response {
        self.headers.apply(&mut response);
        http::metrics::counted(&self.state, Some(route), method, started, response)
    }
}

impl http::server::Answer for Front {
    fn answer(
        &self,
        request: axum::http::Request<hyper::body::Incoming>,
        peer: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = Response> + Send + use<> {
        use futures_util::FutureExt as _;
        use futures_util::future::{Either, ready};
        use std::panic::AssertUnwindSafe;
        let front = self.0.clone();
        let started = std::time::Instant::now();
        // Answered here, in hyper's call, when memory can (see `http::Now`).
        let now = Hot::of(&request).map(|hot| {
            let now = std::panic::catch_unwind(AssertUnwindSafe(|| {
                front.answer_now(&hot, request.headers())
            }));
            (
                hot.route(),
                now.unwrap_or_else(|panic| http::Now::Ready(edge::panic_response(panic))),
            )
        });
        let waiting = match now {
            Some((route, http::Now::Ready(response))) => {
                let (parts, _) = request.into_parts();
                http::recycle_headers(parts.headers);
                let method = parts.method;
                return Either::Left(ready(front.finish(route, &method, started, response)));
            }
            Some((route, http::Now::Later(later))) => Some((route, later)),
            None => None,
        };
        Either::Right(async move {
            let Some((route, later)) = waiting else {
                // Boxed, so the hot routes' future stays small (see `crate::widgets::served`).
                return Box::pin(front.router.answer(request, peer)).await;
            };
            let answered = AssertUnwindSafe(front.answer_later(later, request.headers()))
                .catch_unwind()
                .await;
            let response = answered.unwrap_or_else(edge::panic_response);
            front.finish(route, request.method(), started, response)
        })
    }
}

/// The public widget routes behind a lighter edge: the security headers and the panic catcher.
/// They answer from memory in microseconds, on the busiest path of the service, so they carry
/// no request id or log span, and no timeout or shared concurrency limit (a flood of widget
/// traffic must not queue the dashboard; a rendering on a cache miss is bounded by the
/// database pool).
fn with_public_edge(routes: Router<AppState>, state: AppState) -> Router {
    let headers = SecurityHeaders::from_config(&state.config);
    let edge = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::count_requests,
        ))
        .layer(headers.layer())
        .layer(CatchPanicLayer::custom(edge::panic_response));
    routes.layer(edge).with_state(state)
}

/// Puts `routes` behind the edge (see [`router`]); tests use it to put a route of their own
/// (one that panics, one that hangs) behind the same edge.
pub fn with_edge(routes: Router<AppState>, state: AppState) -> Router {
    let server = &state.config.server;
    let headers = SecurityHeaders::from_config(&state.config);
    let trusted = std::sync::Arc::new(
        http::client_addr::TrustedProxies::parse(&server.trusted_proxies)
            .unwrap_or_default()
            .writing(server.client_address_header),
    );
    let deadlines = edge::BodyDeadlines {
        between_bytes: Duration::from_secs(server.body_read_timeout_secs),
        total: Duration::from_secs(server.request_timeout_secs),
        max_bytes: server.max_body_bytes as usize,
        budget: state.body_budget.clone(),
    };
    let edge = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::count_requests,
        ))
        .layer(axum::middleware::from_fn(http::api::problem::api_answers))
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            edge::identify,
        ))
        .layer(SetRequestIdLayer::new(edge::REQUEST_ID, RandomRequestId))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(edge::REQUEST_ID))
        .layer(headers.layer())
        .layer(CatchPanicLayer::custom(edge::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            deadlines,
            edge::buffer_body,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(server.request_timeout_secs),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.request_slots.clone(),
            edge::one_slot,
        ));
    routes.layer(edge).with_state(state)
}

/// The span of a request names its route pattern (`/l/{token}`), never the raw URI: paths and
/// queries carry link secrets and OAuth codes, which must not reach a log. The request id ties
/// the log lines of one request together, and to what the user saw.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |p| p.as_str());
    let id = request
        .headers()
        .get(edge::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let theirs = request
        .extensions()
        .get::<edge::ClientRequestId>()
        .map_or("-", |c| c.0.as_str());
    tracing::info_span!("request", method = %request.method(), route, request_id = id,
        client_request_id = theirs)
}

/// Serves on `listener` and runs the background workers until Ctrl-C or SIGTERM. Then the
/// workers stop at once (finishing their jobs within `workers.shutdown_grace_secs`, handing
/// back the rest so another node takes them without waiting for the lease); on SIGTERM the
/// node keeps serving for `server.shutdown_drain_secs`, not ready and closing each connection
/// after its answer, so load balancers move traffic away; then it stops accepting, lets open
/// requests finish, and closes the database.
pub async fn run(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    http::server::raise_open_file_limit();
    let db = state.db.clone();
    let (stop_workers, workers_stopping) = tokio::sync::watch::channel(false);
    let (stop_http, mut http_stopping) = tokio::sync::watch::channel(false);
    let workers = crate::jobs::spawn(state.clone(), &state.node, workers_stopping).await;
    tracing::info!(node = %state.node, "node started");
    if state.config.server.trusted_proxies.is_empty()
        && state.config.public_url().starts_with("https://")
    {
        tracing::warn!(
            "server.trusted_proxies is empty, yet the public address is https (a proxy in \
             front terminates TLS): every client looks like the proxy to the log-in limit; \
             list the proxy's address there"
        );
    }
    if state.config.metrics.token.is_empty() && state.config.public_url().starts_with("https://") {
        tracing::warn!(
            "metrics.token is empty: anyone who reaches this node may read /metrics (counts, \
             no secrets); set a token, or keep /metrics from the public at the proxy"
        );
    }
    let stop_workers = std::sync::Arc::new(stop_workers);
    let on_signal = stop_workers.clone();
    let stopping = state.stopping.clone();
    let drain = Duration::from_secs(state.config.server.shutdown_drain_secs);
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        // A second signal means "now": no drain, no grace.
        tokio::spawn(async {
            let again = shutdown_signal().await;
            tracing::warn!("second signal: stopping at once; running jobs wait for their leases");
            // 128 + the signal's number, as a shell reports a process the signal ended.
            std::process::exit(match again {
                Signal::Interrupt => 130,
                Signal::Terminate => 143,
            });
        });
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = on_signal.send(true);
        if signal == Signal::Terminate && !drain.is_zero() {
            tracing::info!(
                secs = drain.as_secs(),
                "draining: not ready, closing connections"
            );
            tokio::time::sleep(drain).await;
        }
        let _ = stop_http.send(true);
    });
    let served = serve_http(state, listener, async move {
        let _ = http_stopping.wait_for(|stop| *stop).await;
    })
    .await;
    // Also when serving could not start.
    let _ = stop_workers.send(true);
    let _ = workers.await;
    db.close().await;
    // Only now: the serving threads' runtimes drive database connections the workers used.
    drop(served?);
    tracing::info!("stopped");
    Ok(())
}

/// Serves the routes behind the edge on `listener` (from `server.threads` threads) until
/// `shutdown` resolves, then lets open requests finish (no workers: [`run`] adds them; tests
/// start this alone). The widget change poller runs meanwhile, on this runtime. Keep the
/// result until the database is closed ([`ServingThreads`]).
pub async fn serve_http(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ServingThreads> {
    let server = &state.config.server;
    let threads = http::server::thread_count(server.threads);
    let grace = Duration::from_secs(state.config.workers.shutdown_grace_secs.max(1));
    let limits = http::server::ConnectionLimits::from_config(server, grace);
    if server.send_from_files {
        let dir = &state.config.storage.data_dir;
        match crate::zero_copy::BodyFiles::open(dir) {
            Ok(files) => state.widgets.send_from_files(files),
            // A filesystem without unnamed files (older overlayfs), read-only or full: answers
            // are copied, as before; nothing is wrong with the node.
            Err(e) => tracing::info!(
                error = %e,
                dir = %dir.display(),
                "large answers will be copied, not sent from files: the data directory cannot \
                 hold unnamed files (server.send_from_files = false silences this)"
            ),
        }
    }
    let (stop_polling, polling_stopped) = tokio::sync::watch::channel(false);
    let poller = crate::widgets::spawn_poller(state.clone(), polling_stopped);
    let per_thread = state.config.storage.http_pool_size as u32;
    // Each serving thread gets a database pool of its own (see `Db::sibling`).
    let make_router: http::server::MakeRouter<Front> = std::sync::Arc::new(move |_| {
        let pool = state.db.sibling(per_thread);
        state
            .serving_pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pool.clone());
        Front::new(state.serving(pool, state.db.sibling(1)))
    });
    let serving = http::server::serve_on_threads(listener, make_router, threads, limits, shutdown)
        .await
        .context("cannot start the serving threads");
    let _ = stop_polling.send(true);
    let _ = poller.await;
    serving
}

/// What asked the node to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// Ctrl-C (SIGINT): a person at a terminal; stop at once.
    Interrupt,
    /// SIGTERM: an orchestrator or systemd; drain first.
    Terminate,
}

async fn shutdown_signal() -> Signal {
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
    let signal = tokio::select! {
        _ = ctrl_c => Signal::Interrupt,
        _ = terminate => Signal::Terminate,
    };
    tracing::info!(?signal, "shutting down");
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::{HeaderMap, Request};

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, C, F>(_f: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn returned_size_4<A, B, C, D, F>(_f: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper moves each request's future whole several times, so its size is paid on every
    /// request: the rare paths are boxed. A rendering's and a store read's futures had made the
    /// front's 3.6 KB (in a debug build), copied on every answer from memory; it is now about
    /// 512 bytes, most of it the request itself (whose size is hyper's and http's). The
    /// router's path is boxed too, but its future is small either way, so no bound here
    /// would notice it unboxed.
    #[test]
    fn the_public_routes_answer_with_small_futures() {
        type Incoming = Request<hyper::body::Incoming>;
        let front = returned_size::<&Front, Incoming, std::net::SocketAddr, _>(
            <Front as http::server::Answer>::answer,
        );
        let widget = returned_size::<&AppState, &str, &HeaderMap, _>(http::widgets::answer);
        let image = returned_size_4::<&AppState, &str, &str, &HeaderMap, _>(http::images::answer);
        assert!(front <= 768, "the front's future is {front} bytes");
        assert!(widget <= 512, "the widget route's future is {widget} bytes");
        assert!(image <= 512, "the image route's future is {image} bytes");
    }
}
