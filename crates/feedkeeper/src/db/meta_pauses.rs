//! Pauses Meta asked for beyond one connection (an app-wide throttle), shared by every node.

use super::{DbError, Ex, on_pool};

/// The scope of an app-wide throttle (code 4, `Application request limit reached`).
pub const APP: &str = "app";

/// Pauses `scope` until `until` (keeping a later pause if one is already set).
pub async fn pause(
    db: impl Into<Ex<'_>>,
    scope: &str,
    until: i64,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO meta_pauses (scope, until_at, reason, created_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (scope) DO UPDATE SET
            until_at = CASE WHEN excluded.until_at > meta_pauses.until_at THEN excluded.until_at ELSE meta_pauses.until_at END,
            reason = excluded.reason";
    on_pool!(db, pool => sqlx::query(SQL).bind(scope).bind(until).bind(reason).bind(now).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Until when `scope` is paused, if it is at `now`.
pub async fn paused_until(
    db: impl Into<Ex<'_>>,
    scope: &str,
    now: i64,
) -> Result<Option<i64>, DbError> {
    const SQL: &str = "SELECT until_at FROM meta_pauses WHERE scope = $1 AND until_at > $2";
    Ok(
        on_pool!(db, pool => sqlx::query_scalar(SQL).bind(scope).bind(now).fetch_optional(pool).await)?,
    )
}
