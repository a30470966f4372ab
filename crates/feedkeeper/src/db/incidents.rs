//! Incidents: periods in which a person must act on a connection. At most one is open per
//! connection (a unique partial index); it escalates in place and closes when the connection is
//! healthy again. The notifier (a later part) turns them into emails and banners.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::{ConnectionId, IncidentId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Incident {
    pub id: IncidentId,
    pub connection_id: ConnectionId,
    /// `reconnect_needed`, `degraded_too_long`, `expiry_at_risk`, `data_access_expiring`.
    pub kind: String,
    pub reason: Option<String>,
    pub opened_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
}

const COLUMNS: &str = "id, connection_id, kind, reason, opened_at, updated_at, closed_at";

/// The open incident of a connection, if any.
pub async fn open_for(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<Option<Incident>, DbError> {
    let sql =
        format!("SELECT {COLUMNS} FROM incidents WHERE connection_id = $1 AND closed_at IS NULL");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(connection).fetch_optional(pool).await)?)
}

/// Opens an incident, or updates the open one's kind and reason. Returns it and whether it is new.
pub async fn open_or_update(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    kind: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<(Incident, bool), DbError> {
    let mut ex: Ex = db.into();
    if let Some(open) = open_for(ex.re(), connection).await? {
        if open.kind != kind || open.reason.as_deref() != reason {
            const SQL: &str =
                "UPDATE incidents SET kind = $1, reason = $2, updated_at = $3 WHERE id = $4";
            on_pool!(ex.re(), pool => sqlx::query(SQL).bind(kind).bind(reason).bind(now).bind(open.id).execute(pool).await.map(|_| ()))?;
        }
        let updated = open_for(ex, connection).await?.ok_or(DbError::NotFound)?;
        return Ok((updated, false));
    }
    let sql = format!(
        "INSERT INTO incidents (connection_id, kind, reason, opened_at, updated_at)
         VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
    );
    // The caller's transaction holds the connection row (its version was compared and bumped),
    // so no other writer can open an incident for it at the same moment.
    let created = on_pool!(ex, pool => sqlx::query_as(&sql).bind(connection).bind(kind).bind(reason).bind(now).fetch_one(pool).await)?;
    Ok((created, true))
}

/// Closes the open incident, if any; returns it.
pub async fn close(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    now: i64,
) -> Result<Option<Incident>, DbError> {
    let mut ex: Ex = db.into();
    let Some(open) = open_for(ex.re(), connection).await? else {
        return Ok(None);
    };
    const SQL: &str =
        "UPDATE incidents SET closed_at = $1, updated_at = $1 WHERE id = $2 AND closed_at IS NULL";
    on_pool!(ex, pool => sqlx::query(SQL).bind(now).bind(open.id).execute(pool).await.map(|_| ()))?;
    Ok(Some(Incident {
        closed_at: Some(now),
        updated_at: now,
        ..open
    }))
}

/// Every incident of a connection, newest first.
pub async fn list(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<Vec<Incident>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE connection_id = $1 ORDER BY opened_at DESC, id DESC"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(connection).fetch_all(pool).await)?)
}

/// Which of an owner's incidents a page holds.
pub struct OwnedFilter {
    pub connection: Option<ConnectionId>,
    /// `Some(true)`: only open ones; `Some(false)`: only closed ones.
    pub open: Option<bool>,
}

/// Up to `limit` of the owner's incidents with ids above `after`, by id (the API's pages).
pub async fn page_owned(
    db: impl Into<Ex<'_>>,
    owner: crate::ids::UserId,
    filter: &OwnedFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Incident>, DbError> {
    let sql = "SELECT i.id, i.connection_id, i.kind, i.reason, i.opened_at, i.updated_at,
            i.closed_at
         FROM incidents i JOIN connections c ON c.id = i.connection_id
         WHERE c.owner_id = $1 AND i.id > $2
           AND ($3 IS NULL OR i.connection_id = $3)
           AND ($4 IS NULL OR ($4 = (i.closed_at IS NULL)))
         ORDER BY i.id LIMIT $5";
    Ok(on_pool!(db, pool => sqlx::query_as(sql)
        .bind(owner)
        .bind(after)
        .bind(filter.connection)
        .bind(filter.open)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// One of the owner's incidents by id; `NotFound` for anyone else's.
pub async fn get_owned(
    db: impl Into<Ex<'_>>,
    owner: crate::ids::UserId,
    id: IncidentId,
) -> Result<Incident, DbError> {
    let sql = "SELECT i.id, i.connection_id, i.kind, i.reason, i.opened_at, i.updated_at,
            i.closed_at
         FROM incidents i JOIN connections c ON c.id = i.connection_id
         WHERE i.id = $1 AND c.owner_id = $2";
    Ok(on_pool!(db, pool => sqlx::query_as(sql).bind(id).bind(owner).fetch_one(pool).await)?)
}

/// One incident by id.
pub async fn get(db: impl Into<Ex<'_>>, id: IncidentId) -> Result<Incident, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM incidents WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

/// Records the webhook event announced for an incident (the caller holds its connection's row).
pub async fn set_announced(
    db: impl Into<Ex<'_>>,
    id: IncidentId,
    event: &str,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE incidents SET announced = $1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(event).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// The webhook event announced for an incident, if any.
pub async fn announced(db: impl Into<Ex<'_>>, id: IncidentId) -> Result<Option<String>, DbError> {
    const SQL: &str = "SELECT announced FROM incidents WHERE id = $1";
    let (a,): (Option<String>,) =
        on_pool!(db, pool => sqlx::query_as(SQL).bind(id).fetch_one(pool).await)?;
    Ok(a)
}
