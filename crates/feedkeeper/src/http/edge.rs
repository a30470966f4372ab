//! The edge every response passes: request ids, a panic catcher, time and size limits, and the
//! security headers. What the routes behind it do is their business; what every response must
//! carry is decided here, once. (The server loop under it is [`super::server`].)

use axum::body::Body;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{Request, Response, StatusCode};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::config::Config;

/// The header that carries a request's id (set by us; echoed in the response and the logs).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id a client (or a proxy in front) sent in `X-Request-Id`: logged beside ours, never as
/// ours. At most [`CLIENT_ID_CHARS`] visible ASCII characters; anything else is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequestId(pub String);

const CLIENT_ID_CHARS: usize = 64;

/// The first layer of the dashboard's edge: takes the client's `X-Request-Id` out of the
/// request (so the id layer makes our own) and keeps it apart, bounded; works out the client's
/// address behind trusted proxies.
pub async fn identify(
    axum::extract::State(trusted): axum::extract::State<
        std::sync::Arc<crate::http::client_addr::TrustedProxies>,
    >,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    let theirs = request.headers_mut().remove(REQUEST_ID);
    if let Some(id) = theirs.as_ref().and_then(|v| v.to_str().ok()).filter(|id| {
        !id.is_empty() && id.len() <= CLIENT_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
    }) {
        let id = ClientRequestId(id.to_owned());
        request.extensions_mut().insert(id);
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    if let Some(peer) = peer {
        let ip = crate::http::client_addr::client_ip(peer, request.headers(), &trusted);
        request
            .extensions_mut()
            .insert(crate::accounts::rate_limit::ClientAddress(Some(ip)));
    }
    next.run(request).await
}

/// How a request body must arrive (see [`buffer_body`]).
#[derive(Clone, Debug)]
pub struct BodyDeadlines {
    /// The longest pause between two pieces of the body.
    pub between_bytes: std::time::Duration,
    /// The whole body.
    pub total: std::time::Duration,
    pub max_bytes: usize,
    /// The node's budget for bodies held at once, in KiB (`server.max_buffered_body_bytes`).
    pub budget: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A request body's share of the node's budget, held until the request is answered.
#[derive(Clone)]
struct BodyShare(#[allow(dead_code)] std::sync::Arc<tokio::sync::OwnedSemaphorePermit>);

/// Reads the whole request body before the request takes one of the node's request slots, with
/// a deadline between its bytes and one for all of it: a body that trickles in (one byte every
/// few seconds) holds its own connection, never a slot everyone else needs. Slow: 408. Too
/// large: 413. The bodies held at once share one budget, so memory has a ceiling however many
/// connections send them: past it, 503.
pub async fn buffer_body(
    axum::extract::State(deadlines): axum::extract::State<BodyDeadlines>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    use http_body_util::BodyExt as _;
    let (parts, mut body) = request.into_parts();
    if axum::body::HttpBody::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let announced = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > deadlines.max_bytes as u64) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        );
    }
    let until = tokio::time::Instant::now() + deadlines.total;
    let mut read =
        Vec::with_capacity(announced.unwrap_or(0).min(deadlines.max_bytes as u64) as usize);
    let mut share: Option<tokio::sync::OwnedSemaphorePermit> = None;
    loop {
        let wait = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(deadlines.between_bytes);
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => {
                return plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body arrived too slowly.",
                );
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                );
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if read.len() + data.len() > deadlines.max_bytes {
                        return plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "The request body is too large.",
                        );
                    }
                    let kib = u32::try_from(data.len().div_ceil(1024)).unwrap_or(u32::MAX);
                    match deadlines.budget.clone().try_acquire_many_owned(kib) {
                        Ok(more) => match share.as_mut() {
                            Some(held) => held.merge(more),
                            None => share = Some(more),
                        },
                        Err(_) => {
                            let mut busy = plain(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "The server is busy receiving other requests. Please try again.",
                            );
                            busy.headers_mut().insert(
                                axum::http::header::RETRY_AFTER,
                                HeaderValue::from_static("5"),
                            );
                            return busy;
                        }
                    }
                    read.extend_from_slice(data);
                }
            }
        }
    }
    let mut request = Request::from_parts(parts, Body::from(read));
    if let Some(share) = share {
        request
            .extensions_mut()
            .insert(BodyShare(std::sync::Arc::new(share)));
    }
    next.run(request).await
}

fn plain(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Takes one of the node's request slots for the request's handling (the request timeout
/// around it counts the wait). Taken here, when the request is ready to be handled, not when a
/// connection is readied as tower's concurrency limit does (its `poll_ready` runs before the
/// body has arrived, so bodies trickling in would hold every slot).
pub async fn one_slot(
    axum::extract::State(slots): axum::extract::State<std::sync::Arc<tokio::sync::Semaphore>>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    let Ok(_slot) = slots.acquire().await else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
        );
    };
    next.run(request).await
}

/// Whether a request's `Host` is not what HTTP/1.1 requires (exactly one; HTTP/1.0 may have
/// none): such a request is refused with 400 before any route sees it.
pub fn bad_host<B>(request: &Request<B>) -> bool {
    let hosts = request
        .headers()
        .get_all(axum::http::header::HOST)
        .iter()
        .count();
    match request.version() {
        axum::http::Version::HTTP_10 | axum::http::Version::HTTP_09 => hosts > 1,
        _ => hosts != 1,
    }
}

/// The answer to a request with a bad `Host`.
pub fn bad_host_response() -> Response<Body> {
    let mut response = plain(
        StatusCode::BAD_REQUEST,
        "A request must carry exactly one Host header.",
    );
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    response
}

/// Random request ids (not a client's choice: a log line must be trustworthy).
#[derive(Clone, Copy, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The security headers, computed once from the configuration.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    /// For HTML: only our own scripts, styles and images, no plugin, no framing, and forms
    /// only to us and to Meta's login pages (a form that redirects there must be allowed to).
    csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// A tower layer that applies these headers to every response.
    pub fn layer<B>(
        self,
    ) -> tower::util::MapResponseLayer<impl Fn(Response<B>) -> Response<B> + Clone> {
        tower::util::MapResponseLayer::new(move |mut response: Response<B>| {
            self.apply(&mut response);
            response
        })
    }

    pub fn from_config(config: &Config) -> SecurityHeaders {
        let meta = &config.meta;
        let mut form_action = vec!["'self'".to_owned()];
        for url in [&meta.instagram_oauth_url, &meta.facebook_www_url] {
            let origin = url.origin().ascii_serialization();
            if !form_action.contains(&origin) && origin != "null" {
                form_action.push(origin);
            }
        }
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-src 'self'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
            form_action.join(" ")
        );
        let https = config.public_url().starts_with("https://");
        SecurityHeaders {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
            hsts: https.then(|| HeaderValue::from_static("max-age=31536000")),
        }
    }

    /// Adds what a response lacks. A route that needs another policy (a widget meant for
    /// other sites' frames) sets its own headers, and they are kept.
    pub fn apply<B>(&self, response: &mut Response<B>) {
        let is_html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let headers = response.headers_mut();
        headers
            .entry(X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        // Link secrets and OAuth codes travel in our URLs: they must never leave in a Referer.
        headers
            .entry(REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("no-referrer"));
        if let Some(hsts) = &self.hsts {
            headers
                .entry(STRICT_TRANSPORT_SECURITY)
                .or_insert(hsts.clone());
        }
        // A page with a policy of its own (a widget) decides its framing with frame-ancestors.
        if is_html && !headers.contains_key(CONTENT_SECURITY_POLICY) {
            headers.insert(CONTENT_SECURITY_POLICY, self.csp.clone());
            headers
                .entry(X_FRAME_OPTIONS)
                .or_insert(HeaderValue::from_static("DENY"));
        }
    }
}

/// What a panicking handler answers: a plain page naming the request id for support. The panic
/// itself is logged (with the id) by the trace layer around it.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    let mut response = Response::new(Body::from(
        "<!doctype html><title>Something went wrong</title><h1>Something went wrong</h1>\
         <p>feedkeeper hit an unexpected error and has logged it. Please try again; if it \
         keeps happening, tell the operator the request id from the X-Request-Id header.</p>",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
