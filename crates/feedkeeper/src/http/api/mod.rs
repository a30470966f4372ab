//! The developer API, `/api/v1`: the owner's connections, widgets and their feeds, client and
//! reconnect links, incidents and webhook endpoints, for programs.
//!
//! - **Keys**: `Authorization: Bearer fk_<prefix>_<secret>`, made and revoked on the dashboard's
//!   API page (`accounts::api_keys`). A key acts for its owner only: every read and write
//!   filters by the owner, and another owner's id answers 404, like a missing one.
//! - **One error shape**: `application/problem+json` ([`problem`]), for every refusal: bad JSON,
//!   unknown fields, wrong types, ranges, unknown routes and methods.
//! - **Pages**: lists take `limit` (1–100) and an opaque `cursor`, and give `next_cursor`
//!   ([`paging`]).
//! - **Idempotency**: creates take `Idempotency-Key`; the answer is kept (sealed) a day in the
//!   creating transaction itself, and a repeat gets it again ([`idempotency`]).
//! - **Rate limits**: per key and node, with `RateLimit-*` headers on every answer and
//!   `Retry-After` on a 429.
//! - **OpenAPI 3.1** at `/api/v1/openapi.json`, generated from the handlers and types below.
//!
//! No cookies are read here, so no CSRF applies: a browser's session cannot act through the API.

mod connections;
mod idempotency;
mod incidents;
mod links;
mod paging;
pub mod problem;
mod webhooks;
mod widgets;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::api_keys::{KnownKey, PresentedKey, Quota};
use crate::accounts::rate_limit::ClientAddress;
use crate::ids::UserId;
use crate::state::AppState;
use problem::ApiError;

/// Where the API lives.
pub const BASE: &str = "/api/v1";
/// How long an answer to an idempotent create is kept.
pub const IDEMPOTENCY_SECS: i64 = 86_400;

/// The key a request came with, once checked (put there by [`authenticate`]).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub key_id: i64,
    pub owner: UserId,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or_else(|| ApiError::Unauthorized("An API key is required.".to_owned()))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "feedkeeper API",
        version = "1",
        description = "Your Instagram connections, widgets, feeds, client links, incidents and \
            webhook endpoints. Authenticate with an API key from the dashboard's API page: \
            `Authorization: Bearer fk_...`. Errors are `application/problem+json`. Lists are \
            paged with `limit` and `cursor`. Creates take an `Idempotency-Key` header."
    ),
    modifiers(&BearerKeys),
    security(("api_key" = [])),
    tags(
        (name = "connections", description = "Connected Instagram accounts and their health"),
        (name = "widgets", description = "Widgets and the feeds they show"),
        (name = "links", description = "Client links and reconnect links"),
        (name = "incidents", description = "Periods in which a person must act on a connection"),
        (name = "webhooks", description = "Webhook endpoints (Standard Webhooks)"),
    )
)]
struct ApiDoc;

/// The one security scheme: bearer API keys.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fk_<prefix>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The routes (relative to [`BASE`]) and their OpenAPI document (paths made absolute).
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connections::list))
        .routes(routes!(connections::show, connections::disconnect))
        .routes(routes!(connections::check))
        .routes(routes!(links::create_reconnect))
        .routes(routes!(widgets::list, widgets::create))
        .routes(routes!(widgets::show, widgets::update, widgets::delete))
        .routes(routes!(widgets::feed))
        .routes(routes!(links::list, links::create))
        .routes(routes!(links::show, links::revoke))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::show))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::show, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::send_test))
        .split_for_parts();
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, mut item)| {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                declare_common_answers(operation);
            }
            (format!("{BASE}{path}"), item)
        })
        .collect();
    (routes, doc)
}

/// The refusals any operation may get, declared once here rather than on each: no good key, the
/// rate limit, and those of the edge (`problem::api_answers` makes them problem documents): a
/// body too large, the request timeout, an internal error, a full node.
fn declare_common_answers(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for (status, description) in [
        ("401", "No API key, or one that is not known or was revoked"),
        (
            "429",
            "The key's rate limit is spent, or too many wrong keys came from the address",
        ),
        ("408", "The request took too long"),
        ("413", "The request body is too large"),
        ("500", "An internal error"),
        ("503", "Temporarily unavailable"),
    ] {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        problem::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

/// The OpenAPI document as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// `/api/v1/...`: every route behind [`authenticate`], `openapi.json` open to anyone, and
/// problem documents for unknown routes and methods.
pub fn router(state: &AppState) -> Router<AppState> {
    let (routes, doc) = parts();
    let document: Arc<[u8]> = match doc.to_json() {
        Ok(json) => Arc::from(json.into_bytes()),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            Arc::from(Vec::new())
        }
    };
    let api = routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [
                            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                            (
                                axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                                HeaderValue::from_static("*"),
                            ),
                        ],
                        document.to_vec(),
                    )
                }
            }),
        )
        .fallback(problem::no_such_route)
        .method_not_allowed_fallback(problem::method_not_allowed);
    Router::new().nest(BASE, api)
}

/// Checks the request's key, takes one request of its rate limit, and answers with the limit's
/// headers. Refusals: no key or a wrong one (401), a revoked one (401), the limit spent (429),
/// an address sending wrong keys (429, from memory: no database read).
async fn authenticate(
    State(state): State<AppState>,
    address: ClientAddress,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match check_key(&state, address, request.headers()).await {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    let quota = state.api_limits.take_for_key(caller.key_id);
    if let Some(retry_after_secs) = quota.retry_after_secs {
        let mut refused = ApiError::TooManyRequests {
            retry_after_secs,
            detail: format!("This key's rate limit is spent; retry in {retry_after_secs} s."),
        }
        .into_response();
        rate_limit_headers(refused.headers_mut(), &quota);
        return refused;
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    rate_limit_headers(response.headers_mut(), &quota);
    response
}

async fn check_key(
    state: &AppState,
    address: ClientAddress,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let limits = &state.api_limits;
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "Send an API key: Authorization: Bearer fk_... (make one on the dashboard's API \
             page)."
                .to_owned(),
        ));
    };
    // The scheme's name is case-insensitive (RFC 9110).
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, key)| PresentedKey::parse(key.trim()));
    let now = state.clock.now();
    // Found good by this node before: from memory while fresh, else read again (was it
    // revoked?) without counting against its address.
    if let Some(p) = &presented
        && let Some(known) = limits.known(p.prefix)
        && p.matches(&known.secret_hash)
    {
        if known.fresh() {
            return Ok(caller(state, p.prefix, known, now).await);
        }
        return match crate::db::api::find_key(&state.db, p.prefix).await? {
            Some(key) if key.revoked_at.is_none() && p.matches(&key.secret_hash) => {
                Ok(caller(state, p.prefix, known_now(key), now).await)
            }
            _ => {
                limits.forget(p.prefix);
                Err(ApiError::Unauthorized(
                    "This API key was revoked.".to_owned(),
                ))
            }
        };
    }
    // Anything else costs the address a token of its bad-key budget, given back if it is good.
    if let Err(retry_after_secs) = limits.charge_address(address.0) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs,
            detail: "Too many wrong API keys came from your address: wait, then send a valid key."
                .to_owned(),
        });
    }
    let Some(presented) = presented else {
        return Err(ApiError::Unauthorized(
            "The Authorization header must be \"Bearer fk_...\" with a whole feedkeeper API key."
                .to_owned(),
        ));
    };
    let key = crate::db::api::find_key(&state.db, presented.prefix).await?;
    let Some(key) = key.filter(|k| presented.matches(&k.secret_hash)) else {
        return Err(ApiError::Unauthorized(
            "This API key is not known.".to_owned(),
        ));
    };
    if key.revoked_at.is_some() {
        return Err(ApiError::Unauthorized(
            "This API key was revoked.".to_owned(),
        ));
    }
    limits.refund_address(address.0);
    Ok(caller(state, presented.prefix, known_now(key), now).await)
}

/// A key the database just said is good.
fn known_now(key: crate::db::api::ApiKey) -> KnownKey {
    KnownKey {
        id: key.id,
        owner: key.owner_id,
        secret_hash: key.secret_hash,
        last_used_at: key.last_used_at,
        checked: std::time::Instant::now(),
    }
}

/// The caller of a good key; its use is recorded at most once a minute per key and node (a
/// busy key must not write on every request).
async fn caller(state: &AppState, prefix: &str, mut known: KnownKey, now: i64) -> Caller {
    if known.last_used_at.is_none_or(|at| at < now - 60) {
        if let Err(e) = crate::db::api::touch_key(&state.db, known.id, now).await {
            tracing::warn!(error = %e, key = known.id, "cannot record an API key's use");
        }
        known.last_used_at = Some(now);
    }
    let caller = Caller {
        key_id: known.id,
        owner: known.owner,
    };
    state.api_limits.remember(prefix, known);
    caller
}

/// The rate limit as the IETF draft's headers (`RateLimit-Limit`, `-Remaining`, `-Reset`) and
/// its policy (`RateLimit-Policy`).
fn rate_limit_headers(headers: &mut HeaderMap, quota: &Quota) {
    headers.insert("ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(quota.reset_secs));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w=60", quota.limit)) {
        headers.insert("ratelimit-policy", policy);
    }
}

/// An instant as the API writes it (RFC 3339, UTC).
fn at(seconds: i64) -> String {
    crate::clock::rfc3339(seconds)
}
