//! What a user shows their clients: an organisation name (on `users`) and a logo
//! (`organisation_logos`, the image bytes stored by us).
//!
//! Values arrive validated (`accounts::organisation`); this file only stores and reads them.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::UserId;

/// The organisation a user presents: its name, and the version of its logo if it has one (the
/// logo's URL carries the version, so browsers can keep it for long).
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Organisation {
    pub name: Option<String>,
    pub logo_version: Option<i64>,
}

/// A stored logo.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Logo {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub version: i64,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .field("version", &self.version)
            .finish()
    }
}

/// The user's organisation (both parts empty when they set none).
pub async fn get(db: impl Into<Ex<'_>>, user: UserId) -> Result<Organisation, DbError> {
    const SQL: &str = "SELECT u.organisation_name AS name, l.version AS logo_version
        FROM users u LEFT JOIN organisation_logos l ON l.user_id = u.id WHERE u.id = $1";
    let found = on_pool!(db, pool => sqlx::query_as(SQL).bind(user.0).fetch_one(pool).await)?;
    Ok(found)
}

/// Sets (or, with `None`, clears) the organisation name.
pub async fn set_name(
    db: impl Into<Ex<'_>>,
    user: UserId,
    name: Option<&str>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE users SET organisation_name = $1, updated_at = $2 WHERE id = $3";
    let affected = on_pool!(db, pool => sqlx::query(SQL)
        .bind(name)
        .bind(now)
        .bind(user.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    if affected == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Stores the user's logo, replacing any earlier one; its version moves on so cached copies of
/// the old one are not shown under the new URL.
pub async fn set_logo(
    db: impl Into<Ex<'_>>,
    user: UserId,
    content_type: &str,
    bytes: &[u8],
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str =
        "INSERT INTO organisation_logos (user_id, content_type, bytes, version, updated_at)
        VALUES ($1, $2, $3, 1, $4)
        ON CONFLICT (user_id) DO UPDATE SET content_type = excluded.content_type,
            bytes = excluded.bytes, version = organisation_logos.version + 1,
            updated_at = excluded.updated_at";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(user.0)
        .bind(content_type)
        .bind(bytes)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Removes the user's logo; whether there was one.
pub async fn remove_logo(db: impl Into<Ex<'_>>, user: UserId) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM organisation_logos WHERE user_id = $1";
    let affected = on_pool!(db, pool => sqlx::query(SQL)
        .bind(user.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(affected > 0)
}

/// The user's logo, if they uploaded one.
pub async fn logo(db: impl Into<Ex<'_>>, user: UserId) -> Result<Option<Logo>, DbError> {
    const SQL: &str =
        "SELECT content_type, bytes, version FROM organisation_logos WHERE user_id = $1";
    let found = on_pool!(db, pool => sqlx::query_as(SQL).bind(user.0).fetch_optional(pool).await)?;
    Ok(found)
}
