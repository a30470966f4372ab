//! `/webhook-endpoints`: where the owner's events go (Standard Webhooks). An endpoint's signing
//! secret is in the create's answer only; it is stored sealed.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{self, Answer, Idempotent, replay_or};
use super::paging::{self, PageParams, page_of};
use super::problem::{ApiError, ApiId, ApiJson, ApiQuery, Problem};
use super::{BASE, Caller, at};
use crate::db::webhooks::{self as store, Endpoint};
use crate::state::AppState;
use crate::webhooks::{self as hooks, EndpointRefused};

/// An event an endpoint can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "connection.needs_reconnect")]
    NeedsReconnect,
    #[serde(rename = "connection.expiring")]
    Expiring,
    #[serde(rename = "connection.restored")]
    Restored,
    #[serde(rename = "feed.updated")]
    FeedUpdated,
}

impl EventType {
    fn name(self) -> &'static str {
        match self {
            EventType::NeedsReconnect => hooks::NEEDS_RECONNECT,
            EventType::Expiring => hooks::EXPIRING,
            EventType::Restored => hooks::RESTORED,
            EventType::FeedUpdated => hooks::FEED_UPDATED,
        }
    }

    fn parse(name: &str) -> Option<EventType> {
        [
            EventType::NeedsReconnect,
            EventType::Expiring,
            EventType::Restored,
            EventType::FeedUpdated,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: i64,
    pub url: String,
    /// The events it gets (all of them when empty).
    pub events: Vec<EventType>,
    pub enabled: bool,
    /// Why it is off (by its owner, or deliveries kept failing for a day).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The signing secret (`whsec_...`): in the create's answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointOut {
    fn of(e: &Endpoint, secret: Option<String>) -> EndpointOut {
        EndpointOut {
            id: e.id,
            url: e.url.clone(),
            events: e.events.split(',').filter_map(EventType::parse).collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since.map(at),
            created_at: at(e.created_at),
            updated_at: at(e.updated_at),
            secret,
        }
    }
}

page_of!(EndpointList, EndpointOut);

/// A new endpoint.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    /// An http(s) address on the public internet.
    #[schema(format = "uri")]
    pub url: String,
    /// The events it gets; omitted or empty: all of them.
    pub events: Option<Vec<EventType>>,
}

/// Changes to an endpoint; omitted (or null) fields stay as they are.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[schema(format = "uri")]
    pub url: Option<String>,
    /// Omitted: unchanged; empty: all events.
    pub events: Option<Vec<EventType>>,
    /// Off: events are kept (3 days) and sent once it is on again.
    pub enabled: Option<bool>,
}

/// Event names, each once, in the order given.
fn event_names(events: &[EventType]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for e in events {
        if !names.contains(&e.name()) {
            names.push(e.name());
        }
    }
    names
}

fn refused(r: EndpointRefused) -> ApiError {
    match r {
        EndpointRefused::BadUrl(_) => ApiError::field("url", r.to_string()),
        EndpointRefused::TooMany { .. } => ApiError::Conflict(r.to_string()),
    }
}

/// The owner's webhook endpoints, by id.
#[utoipa::path(get, path = "/webhook-endpoints", tag = "webhooks", params(PageParams),
    responses(
        (status = 200, body = EndpointList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<EndpointList>, ApiError> {
    let page = q.read()?;
    // At most `webhooks.max_per_user`: read whole, paged here.
    let all = store::list_owned_endpoints(&state.db, caller.owner).await?;
    let (rows, next) = paging::slice(all, &page, |e| e.id);
    Ok(Json(EndpointList::of((
        rows.iter().map(|e| EndpointOut::of(e, None)).collect(),
        next,
    ))))
}

/// Adds an endpoint. Its `secret` is in this answer only.
#[utoipa::path(post, path = "/webhook-endpoints", tag = "webhooks", request_body = EndpointCreate,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Repeats with this key within a day get the first answer")),
    responses(
        (status = 201, body = EndpointOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "At the server's endpoint limit, or a request with the same \
                Idempotency-Key is being handled"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(input): ApiJson<EndpointCreate>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::from_request(&caller, &headers, "POST /webhook-endpoints", &input)?;
    if let Some(replay) = idempotency::replayed(&state, idem.as_ref()).await? {
        return Ok(replay);
    }
    let events = event_names(input.events.as_deref().unwrap_or_default());
    let outcome = crate::db::retry_conflicts("API webhook endpoint create", || async {
        let mut tx = state.db.begin().await?;
        let (endpoint, secret) =
            match hooks::create_endpoint_in(&state, &mut tx, caller.owner, &input.url, &events)
                .await?
            {
                Ok(made) => made,
                Err(r) => return Ok(Err(refused(r))),
            };
        let answer = match Answer::created(
            format!("{BASE}/webhook-endpoints/{}", endpoint.id),
            &EndpointOut::of(&endpoint, Some(secret)),
        ) {
            Ok(answer) => answer,
            Err(e) => return Ok(Err(e)),
        };
        if !idempotency::keep(idem.as_ref(), &state, &mut tx, &answer).await? {
            return Ok(Ok(None));
        }
        tx.commit().await?;
        Ok(Ok(Some((endpoint.id, answer))))
    })
    .await?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(refused) => return replay_or(&state, idem.as_ref(), refused).await,
    };
    match outcome {
        Some((id, answer)) => {
            tracing::info!(user = %caller.owner, endpoint = id, key = caller.key_id, "webhook endpoint created through the API");
            Ok(answer.into_response())
        }
        None => idempotency::after_lost_race(&state, idem.as_ref()).await,
    }
}

/// One endpoint (without its secret, which is never shown again).
#[utoipa::path(get, path = "/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 200, body = EndpointOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<i64>,
) -> Result<Json<EndpointOut>, ApiError> {
    let e = store::get_owned_endpoint(&state.db, caller.owner, id).await?;
    Ok(Json(EndpointOut::of(&e, None)))
}

/// Changes an endpoint's address or events, or turns it off or on (events kept while it was
/// off are sent then).
#[utoipa::path(patch, path = "/webhook-endpoints/{id}", tag = "webhooks",
    request_body = EndpointPatch,
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 200, body = EndpointOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<i64>,
    ApiJson(patch): ApiJson<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    let e = store::get_owned_endpoint(&state.db, caller.owner, id).await?;
    if patch.url.is_some() || patch.events.is_some() {
        let url = match &patch.url {
            Some(raw) => Some(
                hooks::deliver::check_url(
                    raw.trim(),
                    state.config.webhooks.allow_private_addresses,
                )
                .map_err(|why| refused(EndpointRefused::BadUrl(why)))?
                .to_string(),
            ),
            None => None,
        };
        let events = patch.events.as_deref().map(|e| event_names(e).join(","));
        let now = state.clock.now();
        if !store::update_endpoint(
            &state.db,
            caller.owner,
            e.id,
            url.as_deref(),
            events.as_deref(),
            now,
        )
        .await?
        {
            return Err(ApiError::NotFound);
        }
    }
    // Set as asked whatever it was when read (the delivery job may have turned it off since).
    if let Some(enabled) = patch.enabled {
        hooks::set_endpoint_enabled(&state, &e, enabled).await?;
    }
    let e = store::get_owned_endpoint(&state.db, caller.owner, id).await?;
    Ok(Json(EndpointOut::of(&e, None)))
}

/// Deletes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<i64>,
) -> Result<StatusCode, ApiError> {
    if store::delete_owned_endpoint(&state.db, caller.owner, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// What a test did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// False: an earlier test is still on its way, and no new one was sent.
    pub sent: bool,
}

/// Sends a `feedkeeper.test` event to the endpoint, delivered (and retried) like any other.
#[utoipa::path(post, path = "/webhook-endpoints/{id}/test", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 202, body = TestOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<i64>,
) -> Result<Response, ApiError> {
    let e = store::get_owned_endpoint(&state.db, caller.owner, id).await?;
    let sent = hooks::send_test(&state, &e).await?;
    Ok((StatusCode::ACCEPTED, Json(TestOut { sent })).into_response())
}
