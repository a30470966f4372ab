//! The developer API's keys and its kept answers to idempotent creates. The rules (key format,
//! hashing, replay) live in `crate::http::api`; this file only stores and reads.
//!
//! Lock order: a key row is changed only by its owner's dashboard requests and by one-statement
//! touches; an idempotency row is written last in the creating transaction (after the
//! connection's row and everything else it writes), so it never waits before a lock it holds.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub owner_id: UserId,
    pub name: String,
    pub prefix: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "id, owner_id, name, prefix, secret_hash, created_at, last_used_at, revoked_at";

/// Stores a new key for `owner` if they have fewer than `limit` live ones (counted after their
/// user row is locked, so two creates at once cannot both pass); `None` when at the limit.
pub async fn create_key(
    tx: &mut super::Tx,
    owner: UserId,
    name: &str,
    prefix: &str,
    secret_hash: &str,
    limit: u64,
    now: i64,
) -> Result<Option<ApiKey>, DbError> {
    super::users::lock(tx, owner).await?;
    let live: i64 = on_pool!(&mut *tx, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE owner_id = $1 AND revoked_at IS NULL")
        .bind(owner)
        .fetch_one(pool)
        .await)?;
    if live as u64 >= limit {
        return Ok(None);
    }
    let sql = format!(
        "INSERT INTO api_keys (owner_id, name, prefix, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
    );
    Ok(Some(on_pool!(&mut *tx, pool => sqlx::query_as(&sql)
        .bind(owner)
        .bind(name)
        .bind(prefix)
        .bind(secret_hash)
        .bind(now)
        .fetch_one(pool)
        .await)?))
}

/// The key with this prefix, revoked or not.
pub async fn find_key(db: impl Into<Ex<'_>>, prefix: &str) -> Result<Option<ApiKey>, DbError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(prefix).fetch_optional(pool).await)?)
}

/// `owner`'s keys, newest first.
pub async fn list_keys(db: impl Into<Ex<'_>>, owner: UserId) -> Result<Vec<ApiKey>, DbError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE owner_id = $1 ORDER BY id DESC");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(owner).fetch_all(pool).await)?)
}

/// Revokes one of `owner`'s keys; its prefix if it was theirs and live.
pub async fn revoke_key(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: i64,
    now: i64,
) -> Result<Option<String>, DbError> {
    Ok(on_pool!(db, pool => sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND owner_id = $2
           AND revoked_at IS NULL RETURNING prefix")
        .bind(id)
        .bind(owner)
        .bind(now)
        .fetch_optional(pool)
        .await)?)
}

/// Deletes keys revoked before `before` (maintenance: a revoked key stays listed a while, so
/// its owner sees what happened, then goes).
pub async fn prune_revoked_keys(db: impl Into<Ex<'_>>, before: i64) -> Result<u64, DbError> {
    Ok(
        on_pool!(db, pool => sqlx::query("DELETE FROM api_keys WHERE revoked_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?,
    )
}

/// Records that a key was used, at most once a minute per key (a busy key must not write on
/// every request).
pub async fn touch_key(db: impl Into<Ex<'_>>, id: i64, now: i64) -> Result<(), DbError> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1
           AND (last_used_at IS NULL OR last_used_at < $3)")
        .bind(id)
        .bind(now)
        .bind(now - 60)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The answer kept for a create.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KeptAnswer {
    pub request_hash: String,
    pub status: i64,
    pub body: String,
    pub location: Option<String>,
}

/// The answer kept for `idempotency_key` of `key_id`, if one younger than `since` exists.
pub async fn kept_answer(
    db: impl Into<Ex<'_>>,
    key_id: i64,
    idempotency_key: &str,
    since: i64,
) -> Result<Option<KeptAnswer>, DbError> {
    Ok(on_pool!(db, pool => sqlx::query_as(
        "SELECT request_hash, status, body, location FROM api_idempotency
         WHERE key_id = $1 AND idempotency_key = $2 AND created_at >= $3")
        .bind(key_id)
        .bind(idempotency_key)
        .bind(since)
        .fetch_optional(pool)
        .await)?)
}

/// Keeps the answer to a create, in the creating transaction (its last write). `false`: another
/// request with the same key committed first (this transaction must roll back and replay it).
/// An expired answer still in the table (pruning runs hourly) is replaced.
pub async fn keep_answer(
    tx: &mut super::Tx,
    key_id: i64,
    idempotency_key: &str,
    answer: &KeptAnswer,
    expired_before: i64,
    now: i64,
) -> Result<bool, DbError> {
    on_pool!(&mut *tx, pool => sqlx::query(
        "DELETE FROM api_idempotency WHERE key_id = $1 AND idempotency_key = $2
           AND created_at < $3")
        .bind(key_id)
        .bind(idempotency_key)
        .bind(expired_before)
        .execute(pool)
        .await
        .map(|_| ()))?;
    let inserted = on_pool!(&mut *tx, pool => sqlx::query(
        "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, status, body,
            location, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (key_id, idempotency_key) DO NOTHING")
        .bind(key_id)
        .bind(idempotency_key)
        .bind(&answer.request_hash)
        .bind(answer.status)
        .bind(&answer.body)
        .bind(&answer.location)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(inserted == 1)
}

/// Forgets kept answers older than `before` (maintenance).
pub async fn prune_answers(db: impl Into<Ex<'_>>, before: i64) -> Result<u64, DbError> {
    Ok(
        on_pool!(db, pool => sqlx::query("DELETE FROM api_idempotency WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?,
    )
}
