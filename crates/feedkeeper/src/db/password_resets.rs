//! One-time password links, by the hash of their secret.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::UserId;

/// Stores a new link for `user` (its secret's hash).
pub async fn insert(
    db: impl Into<Ex<'_>>,
    token_hash: &str,
    user: UserId,
    now: UnixSeconds,
    expires_at: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
        VALUES ($1, $2, $3, $4)";
    on_pool!(db, conn => sqlx::query(SQL).bind(token_hash).bind(user.0).bind(now).bind(expires_at).execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// The user a link is for, if it is unused and unexpired (does not use it).
pub async fn find_usable(
    db: impl Into<Ex<'_>>,
    token_hash: &str,
    now: UnixSeconds,
) -> Result<Option<UserId>, DbError> {
    const SQL: &str = "SELECT user_id FROM password_resets
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
    let id: Option<i64> = on_pool!(db, conn => sqlx::query_scalar(SQL).bind(token_hash).bind(now).fetch_optional(conn).await)?;
    Ok(id.map(UserId))
}

/// Uses a link: atomically, so two submissions of one link set a password once. Returns the
/// user, or `None` when the link is unknown, used or expired.
pub async fn consume(
    db: impl Into<Ex<'_>>,
    token_hash: &str,
    now: UnixSeconds,
) -> Result<Option<UserId>, DbError> {
    const SQL: &str = "UPDATE password_resets SET used_at = $1
        WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";
    let id: Option<i64> = on_pool!(db, conn => sqlx::query_scalar(SQL).bind(now).bind(token_hash).fetch_optional(conn).await)?;
    Ok(id.map(UserId))
}

/// Ends the user's other unused links (a new one was issued, or the password was just set).
pub async fn expire_for_user(
    db: impl Into<Ex<'_>>,
    user: UserId,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE password_resets SET expires_at = $1 WHERE user_id = $2 AND used_at IS NULL AND expires_at > $1";
    on_pool!(db, conn => sqlx::query(SQL).bind(now).bind(user.0).execute(conn).await.map(|_| ()))?;
    Ok(())
}
