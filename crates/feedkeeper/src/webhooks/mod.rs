//! Webhooks: each user's endpoints hear about their connections as things happen.
//!
//! An event is written as one delivery row per endpoint that wants it, in the transaction
//! that decides it (an incident opening or closing, a sync storing a changed feed), with its
//! `webhook-delivery` job; [`deliver`] sends it, signed the Standard Webhooks way
//! ([`signing`]), and retries on the specification's schedule for about a day. Endpoints are
//! reached only at public addresses unless the operator allows others
//! (`webhooks.allow_private_addresses`), at the address checked (`crate::outbound`), without
//! following redirects, within `webhooks.timeout_secs`.

pub mod deliver;
pub mod signing;

use serde_json::{Value, json};

use crate::db::connections::Connection;
use crate::db::{DbError, Tx, jobs, webhooks as store};
use crate::ids::UserId;
use crate::state::AppState;

/// The job that makes one delivery's attempts (its subject is [`delivery_subject`]).
pub const DELIVERY_JOB: &str = "webhook-delivery";

/// The event types, as receivers see them.
pub const NEEDS_RECONNECT: &str = "connection.needs_reconnect";
pub const EXPIRING: &str = "connection.expiring";
pub const RESTORED: &str = "connection.restored";
pub const FEED_UPDATED: &str = "feed.updated";
/// Sent only by the "Send test event" button.
pub const TEST: &str = "feedkeeper.test";
pub const EVENT_TYPES: [&str; 4] = [NEEDS_RECONNECT, EXPIRING, RESTORED, FEED_UPDATED];

/// The subject of delivery `id`'s job (never a bare number: jobs named by a connection's id
/// are cancelled with it).
pub fn delivery_subject(id: i64) -> String {
    format!("delivery-{id}")
}

pub fn parse_delivery_subject(subject: &str) -> Option<i64> {
    subject.strip_prefix("delivery-")?.parse().ok()
}

pub use crate::clock::rfc3339;

/// A fresh `webhook-id` (`msg_` and 24 random characters), the same on every attempt.
fn new_event_id() -> String {
    let bytes: [u8; 18] = rand::random();
    use base64::Engine as _;
    format!(
        "msg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Writes `event_type` with `data` for every endpoint of `owner` that wants it, and schedules
/// each delivery, in the caller's transaction. Returns how many deliveries were written.
pub async fn emit(
    tx: &mut Tx,
    owner: UserId,
    event_type: &str,
    data: Value,
    now: i64,
) -> Result<usize, DbError> {
    let endpoints = store::endpoints_for(&mut *tx, owner, event_type).await?;
    for endpoint in &endpoints {
        enqueue(tx, endpoint.id, event_type, &data, now).await?;
    }
    Ok(endpoints.len())
}

/// One delivery of one event to one endpoint.
pub async fn enqueue(
    tx: &mut Tx,
    endpoint: i64,
    event_type: &str,
    data: &Value,
    now: i64,
) -> Result<i64, DbError> {
    let payload = json!({
        "type": event_type,
        "timestamp": rfc3339(now),
        "data": data,
    })
    .to_string();
    let id = store::insert_delivery(
        &mut *tx,
        endpoint,
        &new_event_id(),
        event_type,
        &payload,
        now,
    )
    .await?;
    jobs::schedule(&mut *tx, DELIVERY_JOB, &delivery_subject(id), now, now).await?;
    Ok(id)
}

/// What an event says about a connection: never its token.
pub fn connection_data(c: &Connection) -> Value {
    json!({
        "connection_id": c.id,
        "username": c.username,
        "status": c.status().as_str(),
        "reason": c.reason,
        "reason_text": c.reason.as_deref()
            .and_then(crate::meta::ReconnectReason::parse)
            .map(|r| r.describe()),
        "token_expires_at": c.token_expires_at.map(rfc3339),
        "data_access_expires_at": c.data_access_expires_at.map(rfc3339),
    })
}

/// The event an incident's kind calls for, if any.
pub fn incident_event(kind: &str) -> Option<&'static str> {
    match kind {
        "reconnect_needed" => Some(NEEDS_RECONNECT),
        "expiry_at_risk" | "data_access_expiring" => Some(EXPIRING),
        _ => None,
    }
}

/// The secrets that sign for `endpoint` now, newest first (the previous one while it still
/// signs after a rotation).
pub fn secrets(state: &AppState, endpoint: &store::Endpoint, now: i64) -> Vec<String> {
    let context = |user: UserId| format!("webhook secret {user}");
    let mut all = Vec::new();
    if let Ok(s) = state
        .webhook_cipher
        .open(&endpoint.secret_sealed, &context(endpoint.user_id))
    {
        all.push(s);
    }
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret_sealed,
        endpoint.previous_secret_until,
    ) && until > now
        && let Ok(s) = state
            .webhook_cipher
            .open(previous, &context(endpoint.user_id))
    {
        all.push(s);
    }
    all
}

/// Seals a secret of one of `user`'s endpoints.
pub fn seal_secret(state: &AppState, user: UserId, secret: &str) -> String {
    state
        .webhook_cipher
        .seal(secret, &format!("webhook secret {user}"))
}

// ---- Endpoints, for the dashboard and the API ----------------------------------------------

/// Why an endpoint was not saved (shown to its owner).
#[derive(Debug, thiserror::Error)]
pub enum EndpointRefused {
    #[error("The address {0}.")]
    BadUrl(String),
    #[error("You have {limit} endpoints, the most allowed; delete one first.")]
    TooMany { limit: u64 },
}

/// A new endpoint of `owner` for `events` (empty: all), in the caller's transaction (which
/// must begin with this call: it takes the owner's row, so two creates at once count one after
/// the other). Returns it with its secret, the only time the secret is seen in clear. The
/// address is checked here but not looked up (that would let anyone probe names and wait on
/// slow servers): every delivery resolves and checks it.
pub async fn create_endpoint_in(
    state: &AppState,
    tx: &mut Tx,
    owner: UserId,
    raw_url: &str,
    events: &[&str],
) -> Result<Result<(store::Endpoint, String), EndpointRefused>, DbError> {
    let url = match deliver::check_url(
        raw_url.trim(),
        state.config.webhooks.allow_private_addresses,
    ) {
        Ok(url) => url,
        Err(e) => return Ok(Err(EndpointRefused::BadUrl(e))),
    };
    crate::db::users::lock(tx, owner).await?;
    let limit = state.config.webhooks.max_per_user;
    if store::list_owned_endpoints(&mut *tx, owner).await?.len() as u64 >= limit {
        return Ok(Err(EndpointRefused::TooMany { limit }));
    }
    let secret = signing::new_secret();
    let endpoint = store::create_endpoint(
        &mut *tx,
        owner,
        url.as_str(),
        &events.join(","),
        &seal_secret(state, owner, &secret),
        state.clock.now(),
    )
    .await?;
    Ok(Ok((endpoint, secret)))
}

/// Turns an endpoint on (the events kept while it was off go now; returns how many) or off;
/// nothing when it already is.
pub async fn set_endpoint_enabled(
    state: &AppState,
    endpoint: &store::Endpoint,
    enabled: bool,
) -> Result<usize, DbError> {
    let now = state.clock.now();
    // Only a change does anything: sent again, "on" neither clears a failing endpoint's record
    // nor cuts its deliveries' back-off short.
    if !store::set_enabled(&state.db, endpoint.id, enabled, None, now).await? || !enabled {
        return Ok(0);
    }
    let scheduled = store::schedule_pending(&state.db, endpoint.id, DELIVERY_JOB, now).await?;
    Ok(scheduled as usize)
}

/// Sends a `feedkeeper.test` event to the endpoint, delivered like any other; `false` (and
/// nothing sent) while an earlier test is still on its way, so tests cannot pile up.
pub async fn send_test(state: &AppState, endpoint: &store::Endpoint) -> Result<bool, DbError> {
    crate::db::retry_conflicts("webhook test", || async {
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        // The endpoint's row first: two tests at once check and write one after the other.
        if !store::lock_endpoint(&mut tx, endpoint.id).await? {
            // Deleted meanwhile.
            return Err(DbError::NotFound);
        }
        if store::test_pending(&mut tx, endpoint.id, TEST).await? {
            return Ok(false);
        }
        enqueue(
            &mut tx,
            endpoint.id,
            TEST,
            &json!({ "message": "A test event from feedkeeper." }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    })
    .await
}
