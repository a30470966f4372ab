//! `/incidents`: periods in which a person must act on one of the owner's connections (a
//! reconnect, a token at risk, Facebook data access ending), open and closed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::{self, page_of};
use super::problem::{ApiError, ApiId, ApiQuery, Problem};
use super::{Caller, at};
use crate::db::incidents::{self as store, Incident, OwnedFilter};
use crate::ids::{ConnectionId, IncidentId};
use crate::state::AppState;

/// What must be done.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The account holder must log in again.
    ReconnectNeeded,
    /// Meta has failed to answer for too long.
    DegradedTooLong,
    /// Renewing the token keeps failing and it expires soon.
    ExpiryAtRisk,
    /// Facebook's data access ends soon unless the account holder logs in again.
    DataAccessExpiring,
    /// A kind this server version does not name.
    Other,
}

/// An incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentOut {
    pub id: i64,
    pub connection_id: i64,
    pub kind: IncidentKind,
    /// Why, in plain words.
    pub reason: Option<String>,
    pub open: bool,
    #[schema(format = DateTime)]
    pub opened_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
}

impl IncidentOut {
    fn of(i: &Incident) -> IncidentOut {
        IncidentOut {
            id: i.id.0,
            connection_id: i.connection_id.0,
            kind: match i.kind.as_str() {
                "reconnect_needed" => IncidentKind::ReconnectNeeded,
                "degraded_too_long" => IncidentKind::DegradedTooLong,
                "expiry_at_risk" => IncidentKind::ExpiryAtRisk,
                "data_access_expiring" => IncidentKind::DataAccessExpiring,
                _ => IncidentKind::Other,
            },
            reason: i.reason.clone(),
            open: i.closed_at.is_none(),
            opened_at: at(i.opened_at),
            updated_at: at(i.updated_at),
            closed_at: i.closed_at.map(at),
        }
    }
}

page_of!(IncidentList, IncidentOut);

/// `?connection_id=&open=&limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Only this connection's.
    pub connection_id: Option<i64>,
    /// Only open ones (true) or only closed ones (false).
    pub open: Option<bool>,
    /// Items per page (1–100, default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; none for the first.
    pub cursor: Option<String>,
}

/// The owner's incidents, by id (oldest first).
#[utoipa::path(get, path = "/incidents", tag = "incidents", params(IncidentQuery),
    responses(
        (status = 200, body = IncidentList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let page = paging::read(q.limit, q.cursor.as_deref())?;
    let filter = OwnedFilter {
        connection: q.connection_id.map(ConnectionId),
        open: q.open,
    };
    let rows =
        store::page_owned(&state.db, caller.owner, &filter, page.after, page.fetch()).await?;
    let (rows, next) = paging::finish(rows, &page, |i| i.id.0);
    Ok(Json(IncidentList::of((
        rows.iter().map(IncidentOut::of).collect(),
        next,
    ))))
}

/// One incident.
#[utoipa::path(get, path = "/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id")),
    responses(
        (status = 200, body = IncidentOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<IncidentId>,
) -> Result<Json<IncidentOut>, ApiError> {
    let i = store::get_owned(&state.db, caller.owner, id).await?;
    Ok(Json(IncidentOut::of(&i)))
}
