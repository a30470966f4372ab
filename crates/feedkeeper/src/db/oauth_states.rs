//! OAuth `state` values in flight: single use, expiring, bound to who started the login.

use super::{DbError, Ex, on_pool};
use crate::ids::{ConnectionId, LinkId, UserId};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OauthState {
    pub state_hash: String,
    /// `instagram` or `facebook`.
    pub provider: String,
    pub owner_id: UserId,
    pub binding_hash: String,
    pub link_id: Option<LinkId>,
    pub connection_id: Option<ConnectionId>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub async fn insert(db: impl Into<Ex<'_>>, s: &OauthState) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO oauth_states (state_hash, provider, owner_id, binding_hash,
        link_id, connection_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(&s.state_hash)
        .bind(&s.provider)
        .bind(s.owner_id)
        .bind(&s.binding_hash)
        .bind(s.link_id)
        .bind(s.connection_id)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Marks the state used and returns it — once. `None` when it is unknown, used or expired.
pub async fn consume(
    db: impl Into<Ex<'_>>,
    state_hash: &str,
    now: i64,
) -> Result<Option<OauthState>, DbError> {
    const SQL: &str = "UPDATE oauth_states SET used_at = $1
        WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1
        RETURNING state_hash, provider, owner_id, binding_hash, link_id, connection_id,
                  created_at, expires_at, used_at";
    Ok(
        on_pool!(db, pool => sqlx::query_as(SQL).bind(now).bind(state_hash).fetch_optional(pool).await)?,
    )
}

/// Why a state could not be consumed, for a clear message.
pub async fn lookup(
    db: impl Into<Ex<'_>>,
    state_hash: &str,
) -> Result<Option<OauthState>, DbError> {
    const SQL: &str = "SELECT state_hash, provider, owner_id, binding_hash, link_id, connection_id,
        created_at, expires_at, used_at FROM oauth_states WHERE state_hash = $1";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(state_hash).fetch_optional(pool).await)?)
}

/// Forgets states that expired more than a day ago.
pub async fn delete_expired(db: impl Into<Ex<'_>>, now: i64) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM oauth_states WHERE expires_at < $1";
    Ok(
        on_pool!(db, pool => sqlx::query(SQL).bind(now - 86_400).execute(pool).await.map(|r| r.rows_affected()))?,
    )
}
