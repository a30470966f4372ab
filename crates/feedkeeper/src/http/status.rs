//! The front page (what is running, and in the demo how to try it) and health probes.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};

use crate::config::DatabaseKind;
use crate::error::AppError;
use crate::state::{AppState, DemoAccount};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    stylesheet: &'static str,
    version: &'a str,
    database: &'a str,
    meta_target: String,
    simulator_url: Option<&'a str>,
    accounts: &'a [DemoAccount],
}

/// `GET /`: version, backend, which Meta this instance talks to; in the demo, the simulator's
/// address and the accounts to log in with.
pub async fn index(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let graph = &state.config.meta.instagram_graph_url;
    let meta_target = if graph.host_str() == Some("graph.instagram.com") {
        "Meta's real hosts".to_owned()
    } else {
        format!("a stand-in at {}", graph.origin().ascii_serialization())
    };
    let page = StatusPage {
        stylesheet: crate::accounts::page::stylesheet_url(),
        version: env!("CARGO_PKG_VERSION"),
        database: match state.db.kind() {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        },
        meta_target,
        simulator_url: state.demo.as_deref().map(|d| d.simulator_url.as_str()),
        accounts: state.demo.as_deref().map_or(&[], |d| d.accounts.as_slice()),
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// `GET /healthz`: the process answers (liveness).
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers too (readiness).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
