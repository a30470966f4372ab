//! Static files of the dashboard, compiled into the binary (one node or many, no files to ship).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

use crate::accounts::page::STYLESHEET;

/// `GET /static/app.css`. Cached for a year: pages link it with a content hash (`?v=`), so a new
/// version has a new address.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        STYLESHEET,
    )
}

/// The icon browsers show in tabs, as SVG (also at `/favicon.ico`, where browsers look first).
pub const FAVICON: &str = include_str!("../../../static/favicon.svg");

/// `GET /favicon.ico` and `GET /static/favicon.svg`.
pub async fn favicon() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
}

/// `GET /static/app.js`: the dashboard's one small script (copy buttons), cached like the
/// stylesheet (pages link it with a content hash).
pub async fn script() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        crate::accounts::page::SCRIPT,
    )
}
