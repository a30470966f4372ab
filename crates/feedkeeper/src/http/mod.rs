//! HTTP routes, one module per audience. This file is the table of contents.

pub mod api;
pub mod client_addr;
mod connect;
mod dashboard;
pub mod edge;
pub(crate) mod images;
mod meta_callbacks;
pub(crate) mod metrics;
pub mod negotiate;
pub mod server;
mod status;
pub(crate) mod widgets;

use axum::Router;
use axum::routing::{get, post};

use crate::error::AppError;
use crate::state::AppState;

/// An id from the path. Anything that is not a number is a 404, like an id nobody owns.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// What follows `prefix` in the path of a `GET` or `HEAD` request, when it is not empty and
/// needs no percent-decoding: the part of the public routes' addresses that the serving
/// threads may read in place (`app::Front`).
pub(crate) fn plain_get<'a, B>(
    request: &'a axum::http::Request<B>,
    prefix: &str,
) -> Option<&'a str> {
    if !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return None;
    }
    let rest = request.uri().path().strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('%')).then_some(rest)
}

/// What a public route answers without waiting, or what it must wait for (`L`) to answer.
/// The serving threads answer from memory inside hyper's call, so the request (whose header
/// values share hyper's read buffer) is gone before hyper reads again and that buffer is reused,
/// not replaced by a new one per request (`app::Front`).
pub enum Now<L> {
    Ready(axum::response::Response),
    Later(L),
}

/// A response with room for the headers a public answer carries with the security headers
/// (about ten), so none is added by growing the map and moving what it held. Its map is the
/// one the thread's last answered request left ([`recycle_headers`]), when there is one: hyper
/// reads each request's headers into the map of the answer before, so on a busy thread the
/// same few maps go round and a request costs no map of its own.
pub(crate) fn response_with_room(body: axum::body::Body) -> axum::response::Response {
    let mut response = axum::response::Response::new(body);
    if let Some(headers) = SPARE_HEADERS.take() {
        *response.headers_mut() = headers;
    }
    response.headers_mut().reserve(12);
    response
}

thread_local! {
    /// One emptied header map per thread, for [`response_with_room`].
    static SPARE_HEADERS: std::cell::Cell<Option<axum::http::HeaderMap>> =
        const { std::cell::Cell::new(None) };
}

/// Keeps an answered request's header map, emptied, for this thread's next
/// [`response_with_room`] (unless it is oddly large: a request can carry a hundred headers).
pub(crate) fn recycle_headers(mut headers: axum::http::HeaderMap) {
    if headers.capacity() <= 32 {
        headers.clear();
        SPARE_HEADERS.set(Some(headers));
    }
}

/// The public widget and image routes, for anyone's website (they get a lighter edge: `app::router`).
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route(widgets::WIDGET_ROUTE, get(widgets::widget))
        .route(images::IMAGE_ROUTE, get(images::image))
        .route("/embed.js", get(widgets::embed_script))
}

pub use metrics::count_requests;

/// The health checks and metrics, for load balancers, orchestrators and Prometheus (a lighter edge, outside the
/// request limit: they must answer while the dashboard is saturated).
pub fn health_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(metrics::metrics))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .fallback(status::not_found)
        .route("/", get(status::index))
        // Connecting Instagram accounts: the owner's buttons, client links, Meta's redirects
        .route(
            "/connections/connect/{provider}",
            post(connect::start_owner),
        )
        .route(
            "/connections/{id}/reconnect",
            post(connect::start_reconnect),
        )
        .route("/l/{token}", get(connect::link_landing))
        .route("/l/{token}/{provider}", post(connect::link_start))
        .route("/connect/{provider}/callback", get(connect::callback))
        .route("/connect/done", get(connect::link_done))
        .route(
            "/connect/facebook/pages/{choice}",
            get(connect::page_picker).post(connect::pick_pages),
        )
        // Meta's callbacks (configure these URLs in the Meta App Dashboard)
        .route("/meta/deauthorize", post(meta_callbacks::deauthorize))
        .route("/meta/data-deletion", post(meta_callbacks::data_deletion))
        .route(
            "/meta/deletion/{code}",
            get(meta_callbacks::deletion_status),
        )
        // Dashboard accounts (crate::accounts): sign-up, log-in, sessions, the account page.
        .route(
            "/signup",
            get(dashboard::auth::signup_form).post(dashboard::auth::signup),
        )
        .route(
            "/login",
            get(dashboard::auth::login_form).post(dashboard::auth::login),
        )
        .route("/logout", post(dashboard::auth::logout))
        .route(
            "/reset/{secret}",
            get(dashboard::recovery::form).post(dashboard::recovery::save),
        )
        .route("/account", get(dashboard::account::show))
        .route(
            "/account/organisation",
            post(dashboard::account::save_organisation),
        )
        .route("/account/logo", get(dashboard::account::logo))
        .route("/l/{token}/logo", get(connect::link_logo))
        .route(
            "/account/password",
            post(dashboard::account::change_password),
        )
        // The dashboard's connections and client links (owner-only; others' ids answer 404)
        .route("/system", get(dashboard::system::show))
        .route(
            "/widgets",
            get(dashboard::widgets::list).post(dashboard::widgets::create),
        )
        .route("/widgets/new", get(dashboard::widgets::new))
        .route("/widgets/preview", get(dashboard::widgets::preview_new))
        .route(
            "/widgets/{id}",
            get(dashboard::widgets::edit).post(dashboard::widgets::update),
        )
        .route("/widgets/{id}/preview", get(dashboard::widgets::preview))
        .route(
            "/widgets/{id}/duplicate",
            post(dashboard::widgets::duplicate),
        )
        .route(
            "/widgets/{id}/delete",
            get(dashboard::widgets::confirm_delete).post(dashboard::widgets::delete),
        )
        .route("/connections", get(dashboard::connections::list))
        .route("/connections/{id}", get(dashboard::connections::detail))
        .route(
            "/connections/{id}/refresh",
            post(dashboard::connections::refresh),
        )
        .route(
            "/connections/{id}/reconnect-link",
            post(dashboard::connections::reconnect_link),
        )
        .route(
            "/connections/{id}/disconnect",
            get(dashboard::connections::confirm_disconnect)
                .post(dashboard::connections::disconnect),
        )
        .route(
            "/links",
            get(dashboard::links::list).post(dashboard::links::create),
        )
        .route("/links/{id}/revoke", post(dashboard::links::revoke))
        .route("/mail", get(dashboard::mail::list))
        .route("/mail/settings", post(dashboard::mail::save_settings))
        .route("/mail/test", post(dashboard::mail::send_test))
        .route("/mail/{id}", get(dashboard::mail::show))
        .route("/mail/{id}/html", get(dashboard::mail::show_html))
        .route("/mail/resubscribe", post(dashboard::mail::resubscribe_own))
        .route(
            "/webhooks",
            get(dashboard::webhooks::list).post(dashboard::webhooks::create),
        )
        .route("/webhooks/{id}", get(dashboard::webhooks::show))
        .route("/webhooks/{id}/test", post(dashboard::webhooks::send_test))
        .route("/webhooks/{id}/rotate", post(dashboard::webhooks::rotate))
        .route("/webhooks/{id}/toggle", post(dashboard::webhooks::toggle))
        .route("/webhooks/{id}/delete", post(dashboard::webhooks::delete))
        .route(
            "/api",
            get(dashboard::api_keys::list).post(dashboard::api_keys::create),
        )
        .route("/api/keys/{id}/revoke", post(dashboard::api_keys::revoke))
        .route(
            "/mail/unsubscribe/{token}",
            get(dashboard::mail::unsubscribe_page).post(dashboard::mail::unsubscribe),
        )
        .route(
            "/mail/unsubscribe/{token}/undo",
            post(dashboard::mail::resubscribe),
        )
        .route(
            "/connections/{id}/mail",
            post(dashboard::mail::save_connection),
        )
        .route("/links/{id}/created", get(dashboard::links::created))
        .route("/static/app.css", get(dashboard::assets::stylesheet))
        .route("/static/app.js", get(dashboard::assets::script))
        .route("/static/favicon.svg", get(dashboard::assets::favicon))
        .route("/favicon.ico", get(dashboard::assets::favicon))
}

/// A request without a body, for the tests of what a route is given.
#[cfg(test)]
pub(crate) fn test_request(method: &str, target: &str) -> axum::http::Request<()> {
    axum::http::Request::builder()
        .method(method)
        .uri(target)
        .body(())
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn a_recycled_header_map_comes_back_empty_and_roomy() {
        let mut used = HeaderMap::with_capacity(20);
        used.insert(header::HOST, HeaderValue::from_static("example.com"));
        used.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        let capacity = used.capacity();
        assert!(capacity > 12 && capacity <= 32, "{capacity}");
        recycle_headers(used);
        let response = response_with_room(axum::body::Body::empty());
        assert!(response.headers().is_empty(), "{:?}", response.headers());
        // That very map (a new one would have room for 12).
        assert_eq!(response.headers().capacity(), capacity);
        // Taken: the next one is a map of its own.
        let other = response_with_room(axum::body::Body::empty());
        assert!(other.headers().is_empty());

        // A map grown by a request with very many headers is not kept.
        let mut huge = HeaderMap::new();
        for i in 0..100 {
            huge.insert(
                axum::http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        recycle_headers(huge);
        let response = response_with_room(axum::body::Body::empty());
        assert!(response.headers().capacity() <= 32);
    }
}
