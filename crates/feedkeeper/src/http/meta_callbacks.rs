//! Meta's callbacks: deauthorize (the user removed the app) and data deletion, both signed with
//! the app secret, plus the public status page a deletion request points people to.
//!
//! Anything not carrying a valid `signed_request` is refused before it touches the database.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::clock::format_utc;
use crate::connections::{self, Actor, lifecycle};
use crate::db::{DbError, connections as stored, deletion_requests};
use crate::error::AppError;
use crate::meta::MetaError;
use crate::meta::signed_request::{self, SignedRequest};

#[derive(Deserialize)]
pub struct SignedForm {
    #[serde(default)]
    signed_request: Option<String>,
}

/// Verifies the form's `signed_request` against both app secrets (Instagram Login callbacks are
/// signed with the Instagram secret, Facebook Login ones with the Facebook secret).
fn verify(state: &AppState, form: &SignedForm) -> Result<(SignedRequest, String), AppError> {
    let raw = form
        .signed_request
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::BadRequest("missing signed_request".into()))?;
    let meta = &state.config.meta;
    let request = signed_request::verify(
        raw,
        &[
            meta.instagram_app_secret.expose(),
            meta.facebook_app_secret.expose(),
        ],
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "refused a Meta callback");
        AppError::BadRequest(e.to_string())
    })?;
    let subject = request
        .user_id
        .clone()
        .filter(|id| id != "0" && !id.is_empty())
        .or_else(|| request.profile_id.clone())
        .ok_or_else(|| AppError::BadRequest("signed_request names no user".into()))?;
    Ok((request, subject))
}

/// `POST /meta/deauthorize`: the person removed the app on Instagram or Facebook. Their
/// connections need a reconnect at once (with an incident), and their data is deleted after the
/// grace period unless they reconnect.
pub async fn deauthorize(
    State(state): State<AppState>,
    Form(form): Form<SignedForm>,
) -> Result<Response, AppError> {
    let (_, subject) = verify(&state, &form)?;
    let now = state.clock.now();
    let affected = stored::find_by_meta_user(&state.db, &subject).await?;
    for c in &affected {
        let removal = MetaError::reported(
            "meta deauthorize callback",
            190,
            Some(458),
            "The account holder removed the app from their account (Meta deauthorize callback).",
            now,
        );
        lifecycle::apply(
            &state,
            c,
            lifecycle::Outcome::Failed(removal),
            Actor::Meta,
            now,
        )
        .await?;
        stored::mark_deauthorized(&state.db, c.id, now).await?;
    }
    tracing::info!(connections = affected.len(), "deauthorize callback handled");
    Ok((StatusCode::OK, Json(serde_json::json!({ "success": true }))).into_response())
}

/// `POST /meta/data-deletion`: deletes everything stored about the person, at once, and answers
/// with the status-page URL and confirmation code Meta shows them.
pub async fn data_deletion(
    State(state): State<AppState>,
    Form(form): Form<SignedForm>,
) -> Result<Response, AppError> {
    let (_, subject) = verify(&state, &form)?;
    let now = state.clock.now();
    let affected = stored::find_by_meta_user(&state.db, &subject).await?;
    let mut deleted = 0;
    for c in &affected {
        if connections::disconnect(&state, c.id).await? {
            deleted += 1;
        }
    }
    let code = confirmation_code();
    deletion_requests::insert(
        &state.db,
        &deletion_requests::DeletionRequest {
            confirmation_code: code.clone(),
            meta_user_id: subject,
            requested_at: now,
            completed_at: Some(now),
            connections_deleted: deleted,
        },
    )
    .await?;
    tracing::info!(connections = deleted, "data deletion callback handled");
    let url = format!("{}/meta/deletion/{code}", state.config.public_url());
    Ok(Json(serde_json::json!({ "url": url, "confirmation_code": code })).into_response())
}

/// Meta asks for an alphanumeric code.
fn confirmation_code() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[derive(Template)]
#[template(path = "deletion_status.html")]
struct DeletionStatusPage {
    code: String,
    found: bool,
    requested_at: String,
    completed_at: Option<String>,
    connections_deleted: i64,
}

/// `GET /meta/deletion/{code}`: what was deleted, and when, in plain words.
pub async fn deletion_status(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, AppError> {
    let valid =
        !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric());
    let request = if valid {
        match deletion_requests::get(&state.db, &code).await {
            Ok(r) => Some(r),
            Err(DbError::NotFound) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let status = if request.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let page = DeletionStatusPage {
        code: if valid { code } else { String::new() },
        found: request.is_some(),
        requested_at: request
            .as_ref()
            .map(|r| format_utc(r.requested_at))
            .unwrap_or_default(),
        completed_at: request
            .as_ref()
            .and_then(|r| r.completed_at)
            .map(format_utc),
        connections_deleted: request.as_ref().map_or(0, |r| r.connections_deleted),
    };
    let html = page.render().map_err(anyhow::Error::from)?;
    Ok((status, Html(html)).into_response())
}
