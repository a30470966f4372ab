//! Webhook endpoints and their deliveries. The rules (which events, signing, retries) live in
//! `crate::webhooks`; this file only stores and reads.
//!
//! Lock order: deliveries are written by the transaction that decides the event (an incident's
//! change, holding its connection's row; a sync's store), after the connection's row, in step
//! 3; endpoint rows are changed only by their owner's requests and by the delivery job's own
//! single statements.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Endpoint {
    pub id: i64,
    pub user_id: UserId,
    pub url: String,
    pub events: String,
    #[serde(skip)]
    pub secret_sealed: String,
    #[serde(skip)]
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    /// Whether it gets events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.split(',').any(|e| e == event_type)
    }
}

const ENDPOINT_COLUMNS: &str = "id, user_id, url, events, secret_sealed, previous_secret_sealed,
    previous_secret_until, enabled, disabled_reason, failing_since, created_at, updated_at";

pub async fn create_endpoint(
    db: impl Into<Ex<'_>>,
    user: UserId,
    url: &str,
    events: &str,
    secret_sealed: &str,
    now: i64,
) -> Result<Endpoint, DbError> {
    let sql = format!(
        "INSERT INTO webhook_endpoints (user_id, url, events, secret_sealed, created_at,
            updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {ENDPOINT_COLUMNS}"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(user)
        .bind(url)
        .bind(events)
        .bind(secret_sealed)
        .bind(now)
        .fetch_one(pool)
        .await)?)
}

pub async fn get_endpoint(db: impl Into<Ex<'_>>, id: i64) -> Result<Endpoint, DbError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

/// One of `user`'s endpoints, or `NotFound`.
pub async fn get_owned_endpoint(
    db: impl Into<Ex<'_>>,
    user: UserId,
    id: i64,
) -> Result<Endpoint, DbError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND user_id = $2");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(user).fetch_one(pool).await)?)
}

pub async fn list_owned_endpoints(
    db: impl Into<Ex<'_>>,
    user: UserId,
) -> Result<Vec<Endpoint>, DbError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = $1 ORDER BY id");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(user).fetch_all(pool).await)?)
}

pub async fn delete_owned_endpoint(
    db: impl Into<Ex<'_>>,
    user: UserId,
    id: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(id).bind(user).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Changes the address or events (those given) of one of `user`'s endpoints, in one statement
/// (a change of one never undoes a change of the other made meanwhile); whether it was theirs.
pub async fn update_endpoint(
    db: impl Into<Ex<'_>>,
    user: UserId,
    id: i64,
    url: Option<&str>,
    events: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE webhook_endpoints SET url = COALESCE($1, url),
            events = COALESCE($2, events), updated_at = $3
         WHERE id = $4 AND user_id = $5";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(url)
        .bind(events)
        .bind(now)
        .bind(id)
        .bind(user)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Turns an endpoint on (clearing why it was off) or off with a reason, only if it is not so
/// already (a request that read it before the delivery job turned it off neither clears the
/// job's reason nor restarts its back-off); whether it changed.
pub async fn set_enabled(
    db: impl Into<Ex<'_>>,
    id: i64,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE webhook_endpoints SET enabled = $1, disabled_reason = $2,
            failing_since = CASE WHEN $1 THEN NULL ELSE failing_since END, updated_at = $3
         WHERE id = $4 AND enabled <> $1";
    let changed = on_pool!(db, pool => sqlx::query(SQL)
        .bind(enabled)
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(changed == 1)
}

/// A new signing secret; the current one keeps signing too until `previous_until`.
pub async fn rotate_secret(
    db: impl Into<Ex<'_>>,
    id: i64,
    new_sealed: &str,
    previous_until: i64,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed,
            previous_secret_until = $1, secret_sealed = $2, updated_at = $3 WHERE id = $4";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(previous_until)
        .bind(new_sealed)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records the end of an attempt on the endpoint: a success clears `failing_since`, a failure
/// sets it if unset.
pub async fn record_endpoint_result(
    db: impl Into<Ex<'_>>,
    id: i64,
    ok: bool,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE webhook_endpoints SET failing_since = CASE
            WHEN $1 THEN NULL ELSE COALESCE(failing_since, $2) END WHERE id = $3";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(ok)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// `user`'s endpoints that are on and want `event_type`. On PostgreSQL their rows are held
/// (`FOR KEY SHARE`, ascending ids) until the caller's transaction ends, so an endpoint deleted
/// meanwhile is either skipped or waits: the deliveries written next never point at a row that
/// is gone (which would fail the whole transaction that decided the event).
pub async fn endpoints_for(
    db: impl Into<Ex<'_>>,
    user: UserId,
    event_type: &str,
) -> Result<Vec<Endpoint>, DbError> {
    let ex: Ex = db.into();
    let lock = match ex.kind() {
        crate::config::DatabaseKind::Postgres => "FOR KEY SHARE",
        crate::config::DatabaseKind::Sqlite => "",
    };
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = $1 AND enabled
         ORDER BY id {lock}"
    );
    let all: Vec<Endpoint> =
        on_pool!(ex, pool => sqlx::query_as(&sql).bind(user).fetch_all(pool).await)?;
    Ok(all.into_iter().filter(|e| e.wants(event_type)).collect())
}

/// Makes (or brings forward) the delivery job of each of the endpoint's pending deliveries, in
/// one statement, by delivery id; returns how many. The subjects are
/// `webhooks::delivery_subject`'s (`delivery-<id>`).
pub async fn schedule_pending(
    db: impl Into<Ex<'_>>,
    endpoint: i64,
    job_kind: &str,
    now: i64,
) -> Result<u64, DbError> {
    // On a job that exists, the same rules as `jobs::schedule` (a running job is asked to run
    // again at once; a dead one comes back with its attempts reset).
    const SQL: &str = concat!(
        "INSERT INTO jobs (kind, subject, due_at, created_at)
         SELECT $1, 'delivery-' || id, $2, $2 FROM webhook_deliveries
         WHERE endpoint_id = $3 AND status = 'pending' ORDER BY id ",
        super::jobs::reschedule_on_conflict!()
    );
    Ok(on_pool!(db, pool => sqlx::query(SQL)
        .bind(job_kind)
        .bind(now)
        .bind(endpoint)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Locks an endpoint's row for the rest of `tx` (`FOR NO KEY UPDATE`: events being written for
/// it, which hold it `FOR KEY SHARE`, do not wait; PostgreSQL only, SQLite's write lock already
/// serialises writers); whether it exists.
pub async fn lock_endpoint(tx: &mut super::Tx, id: i64) -> Result<bool, DbError> {
    let ex: Ex<'_> = tx.into();
    let sql = match ex.kind() {
        crate::config::DatabaseKind::Postgres => {
            "SELECT id FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE"
        }
        crate::config::DatabaseKind::Sqlite => "SELECT id FROM webhook_endpoints WHERE id = $1",
    };
    let found: Option<(i64,)> =
        on_pool!(ex, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?;
    Ok(found.is_some())
}

/// Whether a test event for the endpoint is still on its way.
pub async fn test_pending(
    db: impl Into<Ex<'_>>,
    endpoint: i64,
    kind: &str,
) -> Result<bool, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM webhook_deliveries
         WHERE endpoint_id = $1 AND status = 'pending' AND event_type = $2";
    let (n,): (i64,) =
        on_pool!(db, pool => sqlx::query_as(SQL).bind(endpoint).bind(kind).fetch_one(pool).await)?;
    Ok(n > 0)
}

/// Turns a failing endpoint off, once: only if it is on and has been failing since `cutoff`
/// or earlier. Returns whether this call did it.
pub async fn turn_off_failing(
    db: impl Into<Ex<'_>>,
    id: i64,
    cutoff: i64,
    reason: &str,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1,
            updated_at = $2
         WHERE id = $3 AND enabled AND failing_since IS NOT NULL AND failing_since <= $4";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(reason)
        .bind(now)
        .bind(id)
        .bind(cutoff)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes finished deliveries older than `before` (the log keeps a month); returns how many.
pub async fn prune(db: impl Into<Ex<'_>>, before: i64) -> Result<u64, DbError> {
    const SQL: &str =
        "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1";
    Ok(
        on_pool!(db, pool => sqlx::query(SQL).bind(before).execute(pool).await.map(|r| r.rows_affected()))?,
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payload, status, attempts,
    last_status, last_error, last_duration_ms, last_attempt_at, delivered_at, created_at";

pub async fn insert_delivery(
    db: impl Into<Ex<'_>>,
    endpoint: i64,
    event_id: &str,
    event_type: &str,
    payload: &str,
    now: i64,
) -> Result<i64, DbError> {
    const SQL: &str = "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload,
            status, created_at) VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id";
    let (id,): (i64,) = on_pool!(db, pool => sqlx::query_as(SQL)
        .bind(endpoint)
        .bind(event_id)
        .bind(event_type)
        .bind(payload)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    Ok(id)
}

pub async fn get_delivery(db: impl Into<Ex<'_>>, id: i64) -> Result<Delivery, DbError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

/// An endpoint's deliveries, newest first.
pub async fn list_deliveries(
    db: impl Into<Ex<'_>>,
    endpoint: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1
         ORDER BY id DESC LIMIT $2"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(endpoint).bind(limit).fetch_all(pool).await)?)
}

/// What one attempt did. Only a pending delivery changes.
pub struct Attempt<'a> {
    /// The attempts made before this one (the row changes only if still so: two nodes never
    /// both count one attempt).
    pub before: i64,
    pub status: &'a str,
    pub http_status: Option<i64>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
}

pub async fn record_attempt(
    db: impl Into<Ex<'_>>,
    id: i64,
    a: &Attempt<'_>,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE webhook_deliveries SET status = $1, last_status = $2,
            last_error = $3, last_duration_ms = $4, last_attempt_at = $5,
            attempts = attempts + 1,
            delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE delivered_at END
         WHERE id = $6 AND status = 'pending' AND attempts = $7";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(a.status)
        .bind(a.http_status)
        .bind(a.error)
        .bind(a.duration_ms)
        .bind(now)
        .bind(id)
        .bind(a.before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
