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
