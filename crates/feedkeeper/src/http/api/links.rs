//! `/client-links` and `/connections/{id}/reconnect-links`: links the owner hands to a client
//! so the client can connect (or reconnect) an account without a feedkeeper login. A link's
//! address is in the create's answer only: just its hash is stored (the kept answer of an
//! idempotent create is sealed).

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
use crate::accounts::csrf::random_token;
use crate::accounts::session::hash_token;
use crate::db::links::{self as store, ConnectLink, NewLink, Unusable};
use crate::http::dashboard::links::{DEFAULT_DAYS, FormValues, validate};
use crate::ids::{ConnectionId, LinkId, UserId};
use crate::state::AppState;

const DAY: i64 = 86_400;

/// Whether a link can be used now.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    /// A single-use link that was used.
    Used,
    Expired,
    Revoked,
}

/// What a link is for.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Connects a new account into your dashboard.
    Connect,
    /// Renews the login of one connection (`connection_id`).
    Reconnect,
}

/// A client or reconnect link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOut {
    pub id: i64,
    pub kind: LinkKind,
    pub label: String,
    pub client_email: Option<String>,
    pub connection_id: Option<i64>,
    pub single_use: bool,
    pub status: LinkStatus,
    pub uses: i64,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub used_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The address to give the client: in the answer to the create only (never again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl LinkOut {
    fn of(l: &ConnectLink, now: i64, url: Option<String>) -> LinkOut {
        LinkOut {
            id: l.id.0,
            kind: if l.connection_id.is_some() {
                LinkKind::Reconnect
            } else {
                LinkKind::Connect
            },
            label: l.label.clone(),
            client_email: l.client_email.clone(),
            connection_id: l.connection_id.map(|c| c.0),
            single_use: l.single_use,
            status: match l.unusable(now) {
                None => LinkStatus::Active,
                Some(Unusable::Revoked) => LinkStatus::Revoked,
                Some(Unusable::AlreadyUsed) => LinkStatus::Used,
                Some(Unusable::Expired) if l.single_use && l.used_at.is_some() => LinkStatus::Used,
                Some(Unusable::Expired) => LinkStatus::Expired,
            },
            uses: l.use_count,
            expires_at: at(l.expires_at),
            created_at: at(l.created_at),
            used_at: l.used_at.map(at),
            revoked_at: l.revoked_at.map(at),
            url,
        }
    }
}

page_of!(LinkList, LinkOut);

/// A new client link.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCreate {
    /// E.g. the client's name or website (one line).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub label: String,
    /// Told when the account needs a reconnect later.
    #[schema(format = Email)]
    pub client_email: Option<String>,
    /// Days the link works (default 7).
    #[schema(minimum = 1, maximum = 30)]
    pub expires_days: Option<i64>,
    /// Works once (default true).
    pub single_use: Option<bool>,
}

/// A new reconnect link.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconnectLinkCreate {
    /// Days the link works (default 7).
    #[schema(minimum = 1, maximum = 30)]
    pub expires_days: Option<i64>,
}

/// The owner's client and reconnect links, by id.
#[utoipa::path(get, path = "/client-links", tag = "links", params(PageParams),
    responses(
        (status = 200, body = LinkList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<LinkList>, ApiError> {
    let page = q.read()?;
    let rows = store::page_owned(&state.db, caller.owner, page.after, page.fetch()).await?;
    let (rows, next) = paging::finish(rows, &page, |l| l.id.0);
    let now = state.clock.now();
    Ok(Json(LinkList::of((
        rows.iter().map(|l| LinkOut::of(l, now, None)).collect(),
        next,
    ))))
}

/// Makes a client link. Its `url` is in this answer only.
#[utoipa::path(post, path = "/client-links", tag = "links", request_body = LinkCreate,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Repeats with this key within a day get the first answer")),
    responses(
        (status = 201, body = LinkOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "A request with the same Idempotency-Key is being handled"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(input): ApiJson<LinkCreate>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::from_request(&caller, &headers, "POST /client-links", &input)?;
    if let Some(replay) = idempotency::replayed(&state, idem.as_ref()).await? {
        return Ok(replay);
    }
    let valid = validate(&FormValues {
        label: input.label.clone(),
        client_email: input.client_email.clone().unwrap_or_default(),
        expires_days: input.expires_days.unwrap_or(DEFAULT_DAYS).to_string(),
        single_use: input.single_use.unwrap_or(true),
    })
    .map_err(|(field, message)| ApiError::field(field, message))?;
    issue(
        &state,
        &caller,
        idem,
        Issue {
            owner: caller.owner,
            label: valid.label,
            client_email: valid.client_email.map(|e| e.as_str().to_owned()),
            connection: None,
            single_use: input.single_use.unwrap_or(true),
            days: valid.days,
        },
    )
    .await
}

/// Makes a single-use reconnect link for one connection: whoever opens it renews that
/// account's login (no feedkeeper login needed). Its `url` is in this answer only.
#[utoipa::path(post, path = "/connections/{id}/reconnect-links", tag = "links",
    request_body = ReconnectLinkCreate,
    params(("id" = i64, Path, description = "The connection's id"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Repeats with this key within a day get the first answer")),
    responses(
        (status = 201, body = LinkOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "A request with the same Idempotency-Key is being handled"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_reconnect(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<ConnectionId>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ReconnectLinkCreate>,
) -> Result<Response, ApiError> {
    let route = format!("POST /connections/{id}/reconnect-links");
    let idem = Idempotent::from_request(&caller, &headers, &route, &input)?;
    // A repeat first: its connection may have gone since the first answer.
    if let Some(replay) = idempotency::replayed(&state, idem.as_ref()).await? {
        return Ok(replay);
    }
    let c = crate::db::connections::get_owned(&state.db, caller.owner, id).await?;
    let days = input.expires_days.unwrap_or(DEFAULT_DAYS);
    let valid = validate(&FormValues {
        label: format!("Reconnect @{}", c.username),
        client_email: String::new(),
        expires_days: days.to_string(),
        single_use: true,
    })
    .map_err(|(field, message)| ApiError::field(field, message))?;
    issue(
        &state,
        &caller,
        idem,
        Issue {
            owner: caller.owner,
            label: valid.label,
            client_email: None,
            connection: Some(c.id),
            single_use: true,
            days: valid.days,
        },
    )
    .await
}

struct Issue {
    owner: UserId,
    label: String,
    client_email: Option<String>,
    connection: Option<ConnectionId>,
    single_use: bool,
    days: i64,
}

/// Stores the link and its kept answer in one transaction (the caller has tried the replay).
async fn issue(
    state: &AppState,
    caller: &Caller,
    idem: Option<Idempotent>,
    new: Issue,
) -> Result<Response, ApiError> {
    let token = random_token();
    let token_hash = hash_token(&token);
    let url = format!("{}/l/{token}", state.config.public_url());
    let kept = crate::db::retry_conflicts("API link create", || async {
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        // A reconnect link's connection row first (the lock order): a disconnect at the same
        // moment either waits for the link or removes it with the connection.
        if let Some(c) = new.connection
            && crate::db::connections::lock(&mut tx, c, crate::db::connections::RowLock::Change)
                .await?
                .is_none_or(|c| c.owner_id != new.owner)
        {
            return Ok(Err(ApiError::NotFound));
        }
        let link = store::create(
            &mut tx,
            &NewLink {
                token_hash: &token_hash,
                owner_id: new.owner,
                label: &new.label,
                client_email: new.client_email.as_deref(),
                connection_id: new.connection,
                single_use: new.single_use,
                expires_at: now + new.days * DAY,
            },
            now,
        )
        .await?;
        let answer = Answer::created(
            format!("{BASE}/client-links/{}", link.id),
            &LinkOut::of(&link, now, Some(url.clone())),
        );
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return Ok(Err(e)),
        };
        if !idempotency::keep(idem.as_ref(), state, &mut tx, &answer).await? {
            return Ok(Ok(None));
        }
        tx.commit().await?;
        Ok(Ok(Some((link, answer))))
    })
    .await?;
    let kept = match kept {
        Ok(kept) => kept,
        Err(refused) => return replay_or(state, idem.as_ref(), refused).await,
    };
    match kept {
        Some((link, answer)) => {
            tracing::info!(user = %caller.owner, link = %link.id, key = caller.key_id,
                reconnect = new.connection.is_some(), "client link created through the API");
            Ok(answer.into_response())
        }
        None => idempotency::after_lost_race(state, idem.as_ref()).await,
    }
}

/// One link (without its address, which is never shown again).
#[utoipa::path(get, path = "/client-links/{id}", tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    responses(
        (status = 200, body = LinkOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<LinkId>,
) -> Result<Json<LinkOut>, ApiError> {
    let link = store::get_owned(&state.db, caller.owner, id).await?;
    Ok(Json(LinkOut::of(&link, state.clock.now(), None)))
}

/// Revokes a link: it stops working at once (revoking it again changes nothing).
#[utoipa::path(delete, path = "/client-links/{id}", tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<LinkId>,
) -> Result<StatusCode, ApiError> {
    let link = store::get_owned(&state.db, caller.owner, id).await?;
    if link.revoked_at.is_none() {
        store::revoke_owned(&state.db, caller.owner, id, state.clock.now()).await?;
        tracing::info!(user = %caller.owner, link = %id, key = caller.key_id, "client link revoked through the API");
    }
    Ok(StatusCode::NO_CONTENT)
}
