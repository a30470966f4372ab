//! Connect and reconnect links handed to clients. Only the SHA-256 of a link's secret is stored;
//! every dashboard read filters by owner.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::{ConnectionId, LinkId, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ConnectLink {
    pub id: LinkId,
    #[serde(skip)]
    pub token_hash: String,
    pub owner_id: UserId,
    pub label: String,
    pub client_email: Option<String>,
    pub connection_id: Option<ConnectionId>,
    pub single_use: bool,
    pub expires_at: i64,
    pub created_at: i64,
    pub used_at: Option<i64>,
    pub use_count: i64,
    pub revoked_at: Option<i64>,
}

/// Why a link cannot be used (shown to the client in plain words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    Revoked,
    Expired,
    AlreadyUsed,
}

impl ConnectLink {
    pub fn unusable(&self, now: i64) -> Option<Unusable> {
        if self.revoked_at.is_some() {
            Some(Unusable::Revoked)
        } else if now >= self.expires_at {
            Some(Unusable::Expired)
        } else if self.single_use && self.used_at.is_some() {
            Some(Unusable::AlreadyUsed)
        } else {
            None
        }
    }
}

const COLUMNS: &str = "id, token_hash, owner_id, label, client_email, connection_id, single_use,
    expires_at, created_at, used_at, use_count, revoked_at";

pub struct NewLink<'a> {
    pub token_hash: &'a str,
    pub owner_id: UserId,
    pub label: &'a str,
    pub client_email: Option<&'a str>,
    pub connection_id: Option<ConnectionId>,
    pub single_use: bool,
    pub expires_at: i64,
}

pub async fn create(
    db: impl Into<Ex<'_>>,
    new: &NewLink<'_>,
    now: i64,
) -> Result<ConnectLink, DbError> {
    let sql = format!(
        "INSERT INTO connect_links (token_hash, owner_id, label, client_email, connection_id,
            single_use, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {COLUMNS}"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(new.token_hash)
        .bind(new.owner_id)
        .bind(new.label)
        .bind(new.client_email)
        .bind(new.connection_id)
        .bind(new.single_use)
        .bind(new.expires_at)
        .bind(now)
        .fetch_one(pool)
        .await)?)
}

pub async fn find_by_token_hash(
    db: impl Into<Ex<'_>>,
    token_hash: &str,
) -> Result<Option<ConnectLink>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connect_links WHERE token_hash = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await)?)
}

pub async fn get(db: impl Into<Ex<'_>>, id: LinkId) -> Result<ConnectLink, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connect_links WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

pub async fn list_owned(db: impl Into<Ex<'_>>, owner: UserId) -> Result<Vec<ConnectLink>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connect_links WHERE owner_id = $1 ORDER BY created_at DESC, id DESC"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(owner).fetch_all(pool).await)?)
}

/// Up to `limit` of the owner's links with ids above `after`, by id (the API's pages).
pub async fn page_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    after: i64,
    limit: i64,
) -> Result<Vec<ConnectLink>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connect_links WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// Reserves a single-use link for the browser `by` (a hash of its binding) until `until`, as it
/// starts a login: atomic, so of two browsers starting at once one gets it. The same browser may
/// start again; another only once the reservation has run out. Returns whether `by` holds it.
/// (Links that are not single-use need no reservation: `true`.)
pub async fn reserve(
    db: impl Into<Ex<'_>>,
    link: &ConnectLink,
    by: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    if !link.single_use {
        return Ok(true);
    }
    const SQL: &str = "UPDATE connect_links SET reserved_by = $1, reserved_until = $2
        WHERE id = $3 AND single_use = TRUE AND used_at IS NULL AND revoked_at IS NULL
          AND (reserved_until IS NULL OR reserved_until <= $4 OR reserved_by = $1)";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(by).bind(until).bind(link.id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether the browser `by` still holds its reservation of a single-use link (always `true`
/// for other links).
pub async fn holds(
    db: impl Into<Ex<'_>>,
    link: &ConnectLink,
    by: &str,
    now: i64,
) -> Result<bool, DbError> {
    if !link.single_use {
        return Ok(true);
    }
    const SQL: &str = "SELECT COUNT(*) FROM connect_links WHERE id = $1 AND used_at IS NULL
        AND revoked_at IS NULL AND reserved_by = $2 AND reserved_until > $3";
    let n: i64 = on_pool!(db, pool => sqlx::query_scalar(SQL).bind(link.id).bind(by).bind(now).fetch_one(pool).await)?;
    Ok(n == 1)
}

/// Gives a reservation back (the login through it failed): the link may be started again.
pub async fn release(db: impl Into<Ex<'_>>, link: &ConnectLink, by: &str) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connect_links SET reserved_by = NULL, reserved_until = NULL
        WHERE id = $1 AND reserved_by = $2 AND used_at IS NULL";
    on_pool!(db, pool => sqlx::query(SQL).bind(link.id).bind(by).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Records a completed login through the link. For a single-use link this succeeds only once
/// (returns `false` when it was used meanwhile).
pub async fn record_use(
    db: impl Into<Ex<'_>>,
    link: &ConnectLink,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE connect_links SET used_at = $1, use_count = use_count + 1,
            reserved_by = NULL, reserved_until = NULL
        WHERE id = $2 AND revoked_at IS NULL AND (single_use = FALSE OR used_at IS NULL)";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(link.id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Revokes the owner's link; `false` if it is not theirs.
pub async fn revoke_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: LinkId,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE connect_links SET revoked_at = COALESCE(revoked_at, $1)
        WHERE id = $2 AND owner_id = $3";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(now).bind(id).bind(owner).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The link if `owner` owns it; `NotFound` otherwise (the same answer as a missing one, so ids
/// of other tenants reveal nothing).
pub async fn get_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: LinkId,
) -> Result<ConnectLink, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM connect_links WHERE id = $1 AND owner_id = $2");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(owner).fetch_one(pool).await)?)
}
