//! The front page (what feedkeeper is, and in the demo how to try it), the page for addresses
//! that lead nowhere, and health probes. What is running (database, Meta) is for operators:
//! the System status page shows it.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::accounts::CurrentUser;
use crate::error::AppError;
use crate::state::{AppState, DemoAccount};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    stylesheet: &'static str,
    version: &'a str,
    simulator_url: Option<&'a str>,
    accounts: &'a [DemoAccount],
}

/// `GET /`: a logged-in person goes straight to their dashboard; anyone else sees what
/// feedkeeper is, how to sign up or log in, and in the demo whom to log in to Instagram as.
pub async fn index(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to("/connections").into_response());
    }
    let page = StatusPage {
        stylesheet: crate::accounts::page::stylesheet_url(),
        version: env!("CARGO_PKG_VERSION"),
        simulator_url: state.demo.as_deref().map(|d| d.simulator_url.as_str()),
        accounts: state.demo.as_deref().map_or(&[], |d| d.accounts.as_slice()),
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?).into_response())
}

/// Any address no route answers: the same styled page as an id nobody owns.
pub async fn not_found() -> AppError {
    AppError::NotFound
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
