//! The audit log: one row per connection event (state change, refresh, reconnect, callback),
//! with time, cause and the Meta error it came from. Never a token.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::ConnectionId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub connection_id: ConnectionId,
    pub at: i64,
    /// `connected`, `reconnected`, `refreshed`, `status_changed`, `deauthorized`,
    /// `data_purged`, `refresh_requested`.
    pub event: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    /// Human-readable cause (Meta's message, scrubbed of tokens).
    pub detail: Option<String>,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    /// `worker`, `user`, `meta`, `client`.
    pub actor: String,
}

/// A row to add.
#[derive(Clone, Debug, Default)]
pub struct NewEntry<'a> {
    pub event: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    pub actor: &'a str,
}

pub async fn record(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    at: i64,
    e: &NewEntry<'_>,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO audit_log (connection_id, at, event, from_status, to_status,
        reason, detail, meta_code, meta_subcode, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(connection)
        .bind(at)
        .bind(e.event)
        .bind(e.from_status)
        .bind(e.to_status)
        .bind(e.reason)
        .bind(e.detail)
        .bind(e.meta_code)
        .bind(e.meta_subcode)
        .bind(e.actor)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The newest `limit` entries of a connection, newest first.
pub async fn list(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    limit: i64,
) -> Result<Vec<AuditEntry>, DbError> {
    const SQL: &str = "SELECT id, connection_id, at, event, from_status, to_status, reason, detail,
        meta_code, meta_subcode, actor FROM audit_log WHERE connection_id = $1
        ORDER BY at DESC, id DESC LIMIT $2";
    Ok(
        on_pool!(db, pool => sqlx::query_as(SQL).bind(connection).bind(limit).fetch_all(pool).await)?,
    )
}
