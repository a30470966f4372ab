//! HTTP routes, one module per audience. This file is the table of contents.

mod connect;
mod dashboard;
mod meta_callbacks;
mod status;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(status::index))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
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
        .route("/account", get(dashboard::account::show))
        .route(
            "/account/password",
            post(dashboard::account::change_password),
        )
        .route("/static/app.css", get(dashboard::assets::stylesheet))
}
