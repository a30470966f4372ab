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

/// `GET /healthz`: the process answers and none of its workers has died (liveness: a node
/// whose worker's loop panicked is better restarted). Never asks the database, and a worker
/// that is only slow (waiting on the database) does not fail it: restarting every node for a
/// database outage cures nothing. `/readyz` covers those.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.worker_beats.dead() {
        Some(worker) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the {worker} worker stopped unexpectedly\n"),
        )
            .into_response(),
        None => (StatusCode::OK, "ok").into_response(),
    }
}

/// A worker that has not gone round its loop for too long, said in words. A worker wakes at
/// least every poll interval, and a claim may wait for the pool meanwhile.
fn stalled_worker(state: &AppState) -> Option<String> {
    let limit = std::time::Duration::from_secs(
        state.config.lifecycle.worker_poll_secs.saturating_mul(3) + 30,
    );
    let (worker, since) = state.worker_beats.stalest()?;
    (since > limit).then(|| {
        format!(
            "the {worker} worker has not run for {} s\n",
            since.as_secs()
        )
    })
}

/// `GET /readyz`: whether a load balancer should send this node traffic. Ready when the
/// database answers (within two seconds), its schema is the one this release needs, this
/// node's workers went round their loops recently, and the node is not shutting down. The
/// verdict is worked out at most once a second (anyone may probe), and says why when not ready.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let checked = state.clone();
    let verdict = state.readiness.get(|| readiness(checked)).await;
    match verdict {
        Ok(detail) => (StatusCode::OK, detail).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// How long the database may take to answer a readiness check.
const READINESS_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readiness(state: AppState) -> Result<String, String> {
    // On this serving thread's probe connection: a probe that times out never holds one of
    // the requests' connections (`Shared::probe_db`).
    let db = &state.probe_db;
    let kind = db.kind();
    let applied = match tokio::time::timeout(READINESS_DB_TIMEOUT, db.applied_migration()).await {
        Ok(Ok(applied)) => applied,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the database does not answer");
            return Err("database unavailable\n".to_owned());
        }
        Err(_) => {
            tracing::warn!("readiness check: the database did not answer in time");
            return Err("database unavailable (no answer in time)\n".to_owned());
        }
    };
    let needed = crate::db::latest_migration(kind);
    if applied < needed {
        return Err(format!(
            "the database schema is at migration {applied}; this release needs {needed} \
             (feedkeeper migrate)\n"
        ));
    }
    if let Some(why) = stalled_worker(&state) {
        return Err(why);
    }
    if applied > needed {
        // Another node was upgraded first: this one still works on the schema (migrations
        // only add), and is ready until it is upgraded too.
        return Ok(format!(
            "ready (the database schema is at migration {applied}, newer than this release's \
             {needed}: upgrade this node)\n"
        ));
    }
    Ok("ready\n".to_owned())
}
