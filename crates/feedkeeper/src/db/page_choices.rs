//! Facebook Pages waiting for the person to pick which to connect (their tokens sealed).

use super::{DbError, Ex, on_pool};
use crate::ids::{ConnectionId, LinkId, UserId};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PageChoice {
    pub id_hash: String,
    pub owner_id: UserId,
    pub binding_hash: String,
    pub link_id: Option<LinkId>,
    pub connection_id: Option<ConnectionId>,
    pub fb_user_id: Option<String>,
    pub pages_sealed: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const COLUMNS: &str = "id_hash, owner_id, binding_hash, link_id, connection_id, fb_user_id,
    pages_sealed, created_at, expires_at";

pub async fn insert(db: impl Into<Ex<'_>>, c: &PageChoice) -> Result<(), DbError> {
    let sql =
        format!("INSERT INTO page_choices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    on_pool!(db, pool => sqlx::query(&sql)
        .bind(&c.id_hash)
        .bind(c.owner_id)
        .bind(&c.binding_hash)
        .bind(c.link_id)
        .bind(c.connection_id)
        .bind(&c.fb_user_id)
        .bind(&c.pages_sealed)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The unexpired choice with this id, if any.
pub async fn get(
    db: impl Into<Ex<'_>>,
    id_hash: &str,
    now: i64,
) -> Result<Option<PageChoice>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM page_choices WHERE id_hash = $1 AND expires_at > $2");
    Ok(
        on_pool!(db, pool => sqlx::query_as(&sql).bind(id_hash).bind(now).fetch_optional(pool).await)?,
    )
}

/// Removes the choice once made (returns `false` if it was already gone: made twice).
pub async fn take(db: impl Into<Ex<'_>>, id_hash: &str) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM page_choices WHERE id_hash = $1";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(id_hash).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes every pending choice of a Facebook user (Meta's data-deletion request).
pub async fn delete_for_fb_user(db: impl Into<Ex<'_>>, fb_user_id: &str) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM page_choices WHERE fb_user_id = $1";
    Ok(
        on_pool!(db, pool => sqlx::query(SQL).bind(fb_user_id).execute(pool).await.map(|r| r.rows_affected()))?,
    )
}

/// Removes expired choices: their sealed Page tokens must not outlive the 15 minutes they serve.
pub async fn sweep_expired(db: impl Into<Ex<'_>>, now: i64) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM page_choices WHERE expires_at <= $1";
    Ok(
        on_pool!(db, pool => sqlx::query(SQL).bind(now).execute(pool).await.map(|r| r.rows_affected()))?,
    )
}

/// Pending choices whose sealed Pages do not start with `current_prefix`, as `(id_hash, sealed)`.
pub async fn sealed_not_under(
    db: impl Into<Ex<'_>>,
    current_prefix: &str,
) -> Result<Vec<(String, String)>, DbError> {
    const SQL: &str = "SELECT id_hash, pages_sealed FROM page_choices
        WHERE substr(pages_sealed, 1, length($1)) <> $1";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(current_prefix).fetch_all(pool).await)?)
}

/// Replaces a choice's sealed Pages if they are still exactly `old` (key rotation).
pub async fn reseal(
    db: impl Into<Ex<'_>>,
    id_hash: &str,
    old: &str,
    new: &str,
) -> Result<bool, DbError> {
    const SQL: &str =
        "UPDATE page_choices SET pages_sealed = $1 WHERE id_hash = $2 AND pages_sealed = $3";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(new).bind(id_hash).bind(old).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
