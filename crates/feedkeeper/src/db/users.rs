//! Dashboard users: create, find, change the password hash.
//!
//! Emails arrive already normalized (see `accounts::Email`) and password hashes already computed:
//! this file stores and reads rows, it never validates input or touches a plain password.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::UserId;

/// A dashboard user as stored.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

// By hand, so a hash never reaches a log line through `{:?}`.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, created_at, updated_at";

/// Adds a user; the first account is the server's operator. An email that already has an
/// account gives [`DbError::Conflict`] (the `users_email_key` constraint; SQLite does not report
/// the name).
pub async fn create(
    db: impl Into<Ex<'_>>,
    email: &str,
    password_hash: &str,
    now: UnixSeconds,
) -> Result<UserId, DbError> {
    const SQL: &str =
        "INSERT INTO users (email, password_hash, created_at, updated_at, is_operator)
        VALUES ($1, $2, $3, $3, NOT EXISTS (SELECT 1 FROM users)) RETURNING id";
    let id: i64 = on_pool!(db, pool => sqlx::query_scalar(SQL)
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    Ok(UserId(id))
}

/// Locks the user's row for the rest of `tx` (after the connection's, in the lock order), so
/// that checks of what the user has (the widget limit) are made one at a time.
pub async fn lock(tx: &mut super::Tx, id: UserId) -> Result<(), DbError> {
    let ex: Ex<'_> = tx.into();
    let sql = match ex.kind() {
        crate::config::DatabaseKind::Postgres => {
            "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE"
        }
        crate::config::DatabaseKind::Sqlite => "SELECT id FROM users WHERE id = $1",
    };
    on_pool!(ex, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await.map(|_| ()))?;
    Ok(())
}

/// Makes the account with this (normalized) email an operator. Returns whether there is one.
pub async fn make_operator(db: impl Into<Ex<'_>>, email: &str) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE users SET is_operator = TRUE WHERE email = $1";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(email).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The user with this (normalized) email, if any.
pub async fn find_by_email(db: impl Into<Ex<'_>>, email: &str) -> Result<Option<User>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    let user = on_pool!(db, pool => sqlx::query_as(&sql).bind(email).fetch_optional(pool).await)?;
    Ok(user)
}

/// The user with this id; [`DbError::NotFound`] if there is none.
pub async fn get(db: impl Into<Ex<'_>>, id: UserId) -> Result<User, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let user = on_pool!(db, pool => sqlx::query_as(&sql).bind(id.0).fetch_one(pool).await)?;
    Ok(user)
}

/// Replaces a user's password hash.
pub async fn set_password_hash(
    db: impl Into<Ex<'_>>,
    id: UserId,
    password_hash: &str,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3";
    let affected = on_pool!(db, pool => sqlx::query(SQL)
        .bind(password_hash)
        .bind(now)
        .bind(id.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    if affected == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Whether any account exists (the first sign-up is always allowed).
pub async fn any(db: impl Into<Ex<'_>>) -> Result<bool, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM users";
    let n: i64 = on_pool!(db, pool => sqlx::query_scalar(SQL).fetch_one(pool).await)?;
    Ok(n > 0)
}
