//! Widgets as stored: their owner, the account they show, their settings (JSON) and version.
//!
//! Dashboard reads go through the `_owned` functions with the logged-in user's id, so another
//! tenant's widget is "not found" exactly like a missing one. Public reads go by the random
//! public id.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::{ConnectionId, UserId, WidgetId};

/// A stored widget.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Widget {
    pub id: WidgetId,
    pub public_id: String,
    pub owner_id: UserId,
    pub connection_id: Option<ConnectionId>,
    pub name: String,
    /// JSON of `widgets::settings::WidgetSettings`.
    pub settings: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

const COLUMNS: &str = "id, public_id, owner_id, connection_id, name, settings, version, created_at,
    updated_at, deleted_at";

/// What a new widget is made of.
pub struct NewWidget<'a> {
    pub public_id: &'a str,
    pub owner_id: UserId,
    pub connection_id: ConnectionId,
    pub name: &'a str,
    pub settings: &'a str,
}

pub async fn create(
    db: impl Into<Ex<'_>>,
    new: &NewWidget<'_>,
    now: UnixSeconds,
) -> Result<WidgetId, DbError> {
    const SQL: &str = "INSERT INTO widgets (public_id, owner_id, connection_id, name, settings,
        version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id";
    let id: i64 = on_pool!(db, pool => sqlx::query_scalar(SQL)
        .bind(new.public_id)
        .bind(new.owner_id)
        .bind(new.connection_id)
        .bind(new.name)
        .bind(new.settings)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    Ok(WidgetId(id))
}

/// The owner's widget (not deleted); [`DbError::NotFound`] for anyone else's.
pub async fn get_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: WidgetId,
) -> Result<Widget, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM widgets WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(owner).fetch_one(pool).await)?)
}

/// The owner's widgets (not deleted), by name.
pub async fn list_owned(db: impl Into<Ex<'_>>, owner: UserId) -> Result<Vec<Widget>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM widgets WHERE owner_id = $1 AND deleted_at IS NULL
         ORDER BY name, id"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(owner).fetch_all(pool).await)?)
}

/// A widget by its public id, deleted or not.
pub async fn by_public_id(
    db: impl Into<Ex<'_>>,
    public_id: &str,
) -> Result<Option<Widget>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM widgets WHERE public_id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(public_id).fetch_optional(pool).await)?)
}

/// How many widgets (not deleted) the owner has.
pub async fn count_live(db: impl Into<Ex<'_>>, owner: UserId) -> Result<i64, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM widgets WHERE owner_id = $1 AND deleted_at IS NULL";
    Ok(on_pool!(db, pool => sqlx::query_scalar(SQL).bind(owner).fetch_one(pool).await)?)
}

/// Replaces the owner's widget's name, account and settings, moving its version on. Returns
/// its public id, or `None` when the owner has no such widget.
#[allow(clippy::too_many_arguments)]
pub async fn update_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: WidgetId,
    version: Option<i64>,
    name: &str,
    connection_id: ConnectionId,
    settings: &str,
    now: UnixSeconds,
) -> Result<Option<String>, DbError> {
    const SQL: &str = "UPDATE widgets SET name = $1, connection_id = $2, settings = $3,
        version = version + 1, updated_at = $4
        WHERE id = $5 AND owner_id = $6 AND deleted_at IS NULL AND ($7 IS NULL OR version = $7)
        RETURNING public_id";
    Ok(on_pool!(db, pool => sqlx::query_scalar(SQL)
        .bind(name)
        .bind(connection_id)
        .bind(settings)
        .bind(now)
        .bind(id)
        .bind(owner)
        .bind(version)
        .fetch_optional(pool)
        .await)?)
}

/// Marks the owner's widget deleted (its address answers 410 from then on). Returns its public
/// id, or `None` when the owner has no such widget (left).
pub async fn delete_owned(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    id: WidgetId,
    now: UnixSeconds,
) -> Result<Option<String>, DbError> {
    const SQL: &str = "UPDATE widgets SET deleted_at = $1, updated_at = $1, version = version + 1
        WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL RETURNING public_id";
    Ok(
        on_pool!(db, pool => sqlx::query_scalar(SQL).bind(now).bind(id).bind(owner).fetch_optional(pool).await)?,
    )
}

/// Whether any live widget shows the connection (it is then synced more often).
pub async fn shows_connection(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<bool, DbError> {
    const SQL: &str =
        "SELECT COUNT(*) FROM widgets WHERE connection_id = $1 AND deleted_at IS NULL";
    let n: i64 =
        on_pool!(db, pool => sqlx::query_scalar(SQL).bind(connection).fetch_one(pool).await)?;
    Ok(n > 0)
}
