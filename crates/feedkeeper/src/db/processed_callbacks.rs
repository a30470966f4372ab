//! Meta `signed_request` callbacks already handled, keyed by a hash of the callback's kind and
//! decoded signature (the same however the request was encoded), so a captured request replayed
//! later does nothing (and a data-deletion request gets its first answer again).

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;

/// The key under which a verified `signed_request` sent to the `kind` callback is remembered
/// (never the request itself): its kind and its decoded signature, which the payload fixes.
pub fn key_of(kind: &str, signature: &[u8]) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(kind.as_bytes());
    hash.update(b"\n");
    hash.update(signature);
    hex::encode(hash.finalize())
}

/// Whether `key` was processed; with the confirmation code it was answered with, if any.
pub async fn find(db: impl Into<Ex<'_>>, key: &str) -> Result<Option<Option<String>>, DbError> {
    const SQL: &str = "SELECT confirmation_code FROM processed_callbacks WHERE signature_hash = $1";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).bind(key).fetch_optional(conn).await)?)
}

/// Remembers `key` as processed, and forgets requests issued before `forget_before` (those are
/// refused for their age anyway). Returns `false` when it was already remembered.
pub async fn remember(
    db: impl Into<Ex<'_>>,
    key: &str,
    kind: &str,
    issued_at: UnixSeconds,
    confirmation_code: Option<&str>,
    now: UnixSeconds,
    forget_before: UnixSeconds,
) -> Result<bool, DbError> {
    let mut ex: Ex = db.into();
    const PRUNE: &str = "DELETE FROM processed_callbacks WHERE issued_at < $1";
    on_pool!(ex.re(), conn => sqlx::query(PRUNE).bind(forget_before).execute(conn).await.map(|_| ()))?;
    const SQL: &str = "INSERT INTO processed_callbacks (signature_hash, kind, issued_at,
        processed_at, confirmation_code) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (signature_hash) DO NOTHING";
    let n = on_pool!(ex, conn => sqlx::query(SQL)
        .bind(key)
        .bind(kind)
        .bind(issued_at)
        .bind(now)
        .bind(confirmation_code)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
