//! `/connections`: the owner's Instagram accounts, their health and token expiry; a check now;
//! disconnecting.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::paging::{self, PageParams, page_of};
use super::problem::{ApiError, ApiId, ApiQuery, Problem};
use super::{Caller, at};
use crate::connections::{Actor, CheckNow};
use crate::db::connections::{self as stored, Connection, LoginKind, Status};
use crate::ids::ConnectionId;
use crate::state::AppState;

/// How the account was connected.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Login {
    /// Instagram Login: a 60-day token, renewed by feedkeeper.
    Instagram,
    /// Facebook Login through a Page: a token without expiry (data access lasts 90 days).
    Facebook,
}

/// The connection's health.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Working.
    Active,
    /// Meta has trouble answering; it recovers by itself (the last good posts show).
    Degraded,
    /// Only a new login by the account holder fixes it (`reason` says why).
    NeedsReconnect,
}

/// A connected Instagram account. Its token never leaves the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionOut {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    pub login: Login,
    pub status: Health,
    /// Why it needs a reconnect, in plain words.
    pub reason: Option<String>,
    /// When the token expires unless renewed (Instagram Login; feedkeeper renews it well before).
    #[schema(format = DateTime)]
    pub token_expires_at: Option<String>,
    /// When Facebook's data access ends unless the account holder logs in again.
    #[schema(format = DateTime)]
    pub data_access_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_synced_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_checked_at: Option<String>,
    /// Made through a client link: its label and the client's email.
    pub client_label: Option<String>,
    pub client_email: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl ConnectionOut {
    pub fn of(c: &Connection) -> ConnectionOut {
        ConnectionOut {
            id: c.id.0,
            username: c.username.clone(),
            display_name: c.display_name.clone(),
            login: match c.login_kind() {
                LoginKind::Instagram => Login::Instagram,
                LoginKind::Facebook => Login::Facebook,
            },
            status: match c.status() {
                Status::Active => Health::Active,
                Status::Degraded => Health::Degraded,
                Status::NeedsReconnect => Health::NeedsReconnect,
            },
            reason: c.reason.clone(),
            token_expires_at: c.token_expires_at.map(at),
            data_access_expires_at: c.data_access_expires_at.map(at),
            last_synced_at: c.last_sync_at.map(at),
            last_checked_at: c.last_check_at.map(at),
            client_label: c.client_label.clone(),
            client_email: c.client_email.clone(),
            created_at: at(c.created_at),
        }
    }
}

page_of!(ConnectionList, ConnectionOut);

/// The owner's connections, by id.
#[utoipa::path(get, path = "/connections", tag = "connections", params(PageParams),
    responses(
        (status = 200, body = ConnectionList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<ConnectionList>, ApiError> {
    let page = q.read()?;
    let rows = stored::page_owned(&state.db, caller.owner, page.after, page.fetch()).await?;
    let (rows, next) = paging::finish(rows, &page, |c| c.id.0);
    Ok(Json(ConnectionList::of((
        rows.iter().map(ConnectionOut::of).collect(),
        next,
    ))))
}

/// One connection.
#[utoipa::path(get, path = "/connections/{id}", tag = "connections",
    params(("id" = i64, Path, description = "The connection's id")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<ConnectionId>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let c = stored::get_owned(&state.db, caller.owner, id).await?;
    Ok(Json(ConnectionOut::of(&c)))
}

/// Disconnects the account: its token, posts and stored pictures are deleted; widgets showing
/// it show nothing until another account is chosen.
#[utoipa::path(delete, path = "/connections/{id}", tag = "connections",
    params(("id" = i64, Path, description = "The connection's id")),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<ConnectionId>,
) -> Result<StatusCode, ApiError> {
    let c = stored::get_owned(&state.db, caller.owner, id).await?;
    if !crate::connections::disconnect(&state, c.id).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(user = %caller.owner, connection = %c.id, key = caller.key_id, "disconnected through the API");
    Ok(StatusCode::NO_CONTENT)
}

/// What a check did.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Checked with Meta now; `connection` shows the result.
    Checked,
    /// The connection holds no token (its data was deleted): only a reconnect helps.
    NoToken,
    /// Meta asked to slow down; try after `retry_at`.
    Paused,
    /// Checked moments ago; the next check is possible at `retry_at`.
    Cooldown,
    /// A check is running right now.
    Busy,
}

/// The answer to a check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    pub outcome: CheckOutcome,
    /// Whether the token was renewed by this check.
    pub renewed: bool,
    #[schema(format = DateTime)]
    pub retry_at: Option<String>,
    /// The connection as it is now (null if it was removed meanwhile).
    pub connection: Option<ConnectionOut>,
}

/// Checks the connection with Meta now (the worker's own check, at most once per cooldown).
#[utoipa::path(post, path = "/connections/{id}/check", tag = "connections",
    params(("id" = i64, Path, description = "The connection's id")),
    responses(
        (status = 200, body = CheckOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<ConnectionId>,
) -> Result<Response, ApiError> {
    let c = stored::get_owned(&state.db, caller.owner, id).await?;
    let outcome = crate::connections::check_now(&state, c.id, Actor::User, &state.node).await?;
    let (outcome, renewed, retry_at) = match outcome {
        CheckNow::Checked(report) => (CheckOutcome::Checked, report.renewed, None),
        CheckNow::NoToken => (CheckOutcome::NoToken, false, None),
        CheckNow::Paused { until } => (CheckOutcome::Paused, false, Some(at(until))),
        CheckNow::Cooldown { until } => (CheckOutcome::Cooldown, false, Some(at(until))),
        CheckNow::Busy { .. } => (CheckOutcome::Busy, false, None),
    };
    let now = match stored::get_owned(&state.db, caller.owner, c.id).await {
        Ok(c) => Some(ConnectionOut::of(&c)),
        Err(crate::db::DbError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(CheckOut {
        outcome,
        renewed,
        retry_at,
        connection: now,
    })
    .into_response())
}
