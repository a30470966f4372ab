//! `Idempotency-Key` on creates: a client that lost an answer sends the same request again with
//! the same key and gets the first answer, not a second link, widget or endpoint.
//!
//! The answer is kept in the creating transaction itself, as its last write (the lock order's
//! last step), so what was created and the answer kept exist together or not at all: a crash in
//! between loses both, and the repeat creates it once. Two repeats at once: the second waits on
//! the first's row, finds it taken, rolls its own work back and gives the first's answer.
//! Kept answers are sealed (they may hold a link's address or an endpoint's secret) and kept
//! [`super::IDEMPOTENCY_SECS`]; the same key with another request is refused (422).

use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::problem::ApiError;
use super::{Caller, IDEMPOTENCY_SECS};
use crate::db::api::{self as store, KeptAnswer};
use crate::db::{DbError, Tx};
use crate::state::AppState;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// The longest key taken.
const MAX_KEY_LEN: usize = 255;

/// A create sent with an `Idempotency-Key`.
pub struct Idempotent {
    key_id: i64,
    key: String,
    request_hash: String,
}

/// What a create answers (and what is kept for its repeats).
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

impl Answer {
    /// `201 Created` with `value` and its address.
    pub fn created<T: Serialize>(location: String, value: &T) -> Result<Answer, ApiError> {
        Ok(Answer {
            status: StatusCode::CREATED,
            body: serde_json::to_string(value).map_err(anyhow::Error::from)?,
            location: Some(location),
        })
    }

    fn into_response_replayed(self, replayed: bool) -> Response {
        let mut r = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            self.body,
        )
            .into_response();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            r.headers_mut().insert(LOCATION, location);
        }
        if replayed {
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        r
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.into_response_replayed(false)
    }
}

impl Idempotent {
    /// The request's `Idempotency-Key`, if it has one; `route` and `body` identify the request.
    pub fn from_request<B: Serialize>(
        caller: &Caller,
        headers: &HeaderMap,
        route: &str,
        body: &B,
    ) -> Result<Option<Idempotent>, ApiError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a \
                     UUID is a good choice)."
                ))
            })?;
        let json = serde_json::to_string(body).map_err(anyhow::Error::from)?;
        let request_hash = hex::encode(Sha256::digest(format!("{route}\n{json}").as_bytes()));
        Ok(Some(Idempotent {
            key_id: caller.key_id,
            key: key.to_owned(),
            request_hash,
        }))
    }

    fn context(&self) -> String {
        format!("api answer {}:{}", self.key_id, self.key)
    }

    /// The kept answer to this request, if it was made before.
    pub async fn replay(&self, state: &AppState) -> Result<Option<Response>, ApiError> {
        let since = state.clock.now() - IDEMPOTENCY_SECS;
        let Some(kept) = store::kept_answer(&state.db, self.key_id, &self.key, since).await? else {
            return Ok(None);
        };
        if kept.request_hash != self.request_hash {
            return Err(ApiError::field(
                "Idempotency-Key",
                "This Idempotency-Key was used for another request in the last day: use a new \
                 key for a new request.",
            ));
        }
        let body = state
            .api_cipher
            .open(&kept.body, &self.context())
            .map_err(|e| anyhow::anyhow!("a kept API answer does not open: {e}"))?;
        let status = StatusCode::from_u16(kept.status as u16).unwrap_or(StatusCode::OK);
        Ok(Some(
            Answer {
                status,
                body,
                location: kept.location,
            }
            .into_response_replayed(true),
        ))
    }
}

/// The kept answer if this create is a repeat (its first step).
pub async fn replayed(
    state: &AppState,
    idempotent: Option<&Idempotent>,
) -> Result<Option<Response>, ApiError> {
    match idempotent {
        Some(i) => i.replay(state).await,
        None => Ok(None),
    }
}

/// The answer when [`keep`] said another request with the same key kept its answer first (only
/// a request with a key can lose that race).
pub async fn after_lost_race(
    state: &AppState,
    idempotent: Option<&Idempotent>,
) -> Result<Response, ApiError> {
    replayed(state, idempotent).await?.ok_or_else(|| {
        ApiError::Conflict(
            "A request with this Idempotency-Key is being handled; retry in a moment.".to_owned(),
        )
    })
}

/// A create was refused: a repeat of a request that succeeded meanwhile (whose work the
/// refusal counted, e.g. at a limit, or whose connection has gone since) gets that request's
/// kept answer; anything else gets the refusal.
pub async fn replay_or(
    state: &AppState,
    idempotent: Option<&Idempotent>,
    refusal: ApiError,
) -> Result<Response, ApiError> {
    match replayed(state, idempotent).await? {
        Some(replay) => Ok(replay),
        None => Err(refusal),
    }
}

/// Keeps `answer` for `idempotent` (if the request has a key) as the last write of `tx`.
/// `false`: another request with the same key kept its answer first, so `tx` must be rolled
/// back and that answer given ([`after_lost_race`]).
pub async fn keep(
    idempotent: Option<&Idempotent>,
    state: &AppState,
    tx: &mut Tx,
    answer: &Answer,
) -> Result<bool, DbError> {
    let Some(i) = idempotent else {
        return Ok(true);
    };
    let now = state.clock.now();
    let kept = KeptAnswer {
        request_hash: i.request_hash.clone(),
        status: i64::from(answer.status.as_u16()),
        body: state.api_cipher.seal(&answer.body, &i.context()),
        location: answer.location.clone(),
    };
    store::keep_answer(tx, i.key_id, &i.key, &kept, now - IDEMPOTENCY_SECS, now).await
}
