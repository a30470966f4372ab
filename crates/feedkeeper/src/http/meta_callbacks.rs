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

use crate::clock::format_utc;
use crate::connections;
use crate::db::{
    DbError, connections as stored, deletion_requests, jobs, page_choices, processed_callbacks,
    widget_changes,
};
use crate::error::AppError;
use crate::failpoint;
use crate::meta::signed_request;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SignedForm {
    #[serde(default)]
    signed_request: Option<String>,
}

/// A callback issued longer ago than this is refused: Meta sends them at once, and a captured
/// one must not work forever. (Within the window, the processed-callbacks table stops replays.)
const MAX_AGE_SECS: i64 = 24 * 3600;
/// Clock skew tolerated for a callback that claims to come from the future.
const MAX_SKEW_SECS: i64 = 10 * 60;

/// A verified callback: what it says, whom it is about, and its replay key.
struct Verified {
    subject: String,
    issued_at: i64,
    key: String,
}

/// Verifies the form's `signed_request` against both app secrets (Instagram Login callbacks are
/// signed with the Instagram secret, Facebook Login ones with the Facebook secret), and its age.
fn verify(state: &AppState, kind: &str, form: &SignedForm) -> Result<Verified, AppError> {
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
    let now = state.clock.now();
    let issued_at = request
        .issued_at
        .ok_or_else(|| AppError::BadRequest("signed_request has no issued_at".into()))?;
    if issued_at < now - MAX_AGE_SECS || issued_at > now + MAX_SKEW_SECS {
        tracing::warn!(
            issued_at,
            now,
            "refused a Meta callback outside its time window"
        );
        return Err(AppError::BadRequest(
            "signed_request was issued too long ago (or in the future)".into(),
        ));
    }
    Ok(Verified {
        key: processed_callbacks::key_of(kind, &request.signature),
        subject,
        issued_at,
    })
}

/// `POST /meta/deauthorize`: the person removed the app on Instagram or Facebook. Their
/// connections need a reconnect at once (with an incident), and their data is deleted after the
/// grace period unless they reconnect.
pub async fn deauthorize(
    State(state): State<AppState>,
    Form(form): Form<SignedForm>,
) -> Result<Response, AppError> {
    let v = verify(&state, "deauthorize", &form)?;
    if processed_callbacks::find(&state.db, &v.key)
        .await?
        .is_some()
    {
        tracing::warn!("a deauthorize callback was replayed; ignored");
        return Ok((StatusCode::OK, Json(serde_json::json!({ "success": true }))).into_response());
    }
    let affected = stored::find_by_meta_user(&state.db, &v.subject).await?;
    for c in &affected {
        match connections::deauthorize(&state, c.id).await {
            // Disconnected meanwhile: nothing left to deauthorize.
            Ok(()) | Err(DbError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Remembered only once handled: a crash before this lets Meta's retry through, and handling
    // the same removal twice changes nothing.
    let now = state.clock.now();
    processed_callbacks::remember(
        &state.db,
        &v.key,
        "deauthorize",
        v.issued_at,
        None,
        now,
        now - MAX_AGE_SECS - MAX_SKEW_SECS,
    )
    .await?;
    tracing::info!(connections = affected.len(), "deauthorize callback handled");
    Ok((StatusCode::OK, Json(serde_json::json!({ "success": true }))).into_response())
}

/// `POST /meta/data-deletion`: deletes everything stored about the person, at once, and answers
/// with the status-page URL and confirmation code Meta shows them.
pub async fn data_deletion(
    State(state): State<AppState>,
    Form(form): Form<SignedForm>,
) -> Result<Response, AppError> {
    let v = verify(&state, "data_deletion", &form)?;
    let (code, deleted) =
        crate::db::retry_conflicts("data deletion", || delete_person(&state, &v)).await?;
    match deleted {
        Some(deleted) => tracing::info!(connections = deleted, "data deletion callback handled"),
        // A replay: nothing was deleted again (the person may have connected anew since); Meta
        // gets the first answer again.
        None => tracing::warn!("a data-deletion callback was replayed; ignored"),
    }
    let url = format!("{}/meta/deletion/{code}", state.config.public_url());
    Ok(Json(serde_json::json!({ "url": url, "confirmation_code": code })).into_response())
}

/// Deletes everything stored about the person a data-deletion request names, in one
/// transaction with its record and the replay guard. Returns the confirmation code, and how
/// many connections were deleted (`None`: a replay, nothing done).
async fn delete_person(state: &AppState, v: &Verified) -> Result<(String, Option<i64>), DbError> {
    let mut tx = state.db.begin().await?;
    if let Some(code) = processed_callbacks::find(&mut tx, &v.key).await? {
        return Ok((code.unwrap_or_default(), None));
    }
    let now = state.clock.now();
    // Lock order: the connection rows first (ascending ids), then their jobs.
    let affected = stored::lock_by_meta_user(&mut tx, &v.subject).await?;
    let mut deleted = 0;
    let mut shown = Vec::new();
    for c in &affected {
        failpoint::hit(failpoint::DATA_DELETION_TX, &failpoint::key(state, c.id)).await;
        jobs::cancel_for_subject(&mut tx, &c.id.to_string()).await?;
        crate::mail::notices::connection_deleted(&mut tx, c.id).await?;
        shown.extend(widget_changes::showing(&mut tx, c.id).await?);
        if stored::delete(&mut tx, c.id).await? {
            deleted += 1;
        }
    }
    // Page choices a Facebook user left unfinished hold sealed Page tokens too.
    page_choices::delete_for_fb_user(&mut tx, &v.subject).await?;
    let code = confirmation_code();
    deletion_requests::insert(
        &mut tx,
        &deletion_requests::DeletionRequest {
            confirmation_code: code.clone(),
            meta_user_id: v.subject.clone(),
            requested_at: now,
            completed_at: Some(now),
            connections_deleted: deleted,
        },
    )
    .await?;
    processed_callbacks::remember(
        &mut tx,
        &v.key,
        "data_deletion",
        v.issued_at,
        Some(&code),
        now,
        now - MAX_AGE_SECS - MAX_SKEW_SECS,
    )
    .await?;
    // Every node drops the widgets that showed the person, within a poll.
    widget_changes::record(&mut tx, &shown).await?;
    tx.commit().await?;
    Ok((code, Some(deleted)))
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
    stylesheet: &'static str,
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
        stylesheet: crate::accounts::page::stylesheet_url(),
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
