//! HTTP routes, one module per audience. This file is the table of contents.

mod status;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(status::index))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
}
