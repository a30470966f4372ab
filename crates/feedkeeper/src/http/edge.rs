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
