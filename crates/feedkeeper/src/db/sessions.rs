//! Login sessions and the failed-login log behind the login rate limit.
//!
//! Sessions are found by the SHA-256 of their cookie value: this file never sees (or stores) a raw
//! session token. Lifetimes and limits are decided in `accounts`; the queries here take the
//! cut-off times as arguments.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::UserId;

/// A row of `sessions`. Only `accounts` hands these out; elsewhere, use `accounts::CurrentUser`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub i64);

/// What is needed to open a session.
pub struct NewSession<'a> {
    /// Hex SHA-256 of the cookie value.
    pub token_hash: &'a str,
    pub user_id: UserId,
    pub csrf_token: &'a str,
    pub now: UnixSeconds,
    /// The absolute end of the session.
    pub expires_at: UnixSeconds,
}

/// A live session together with its user.
#[derive(Clone, sqlx::FromRow)]
pub struct ActiveSession {
    pub session_id: i64,
    pub user_id: UserId,
    pub email: String,
    pub csrf_token: String,
    pub flash: Option<String>,
    pub last_seen_at: i64,
    pub expires_at: i64,
    /// How many of the user's connections need someone to reconnect them (the menu's count).
    pub needs_action: i64,
    /// The user runs the server (sees every tenant's jobs and errors).
    pub is_operator: bool,
}

// By hand: the CSRF token stays out of logs.
impl std::fmt::Debug for ActiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSession")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Stores a new session and returns its id.
pub async fn create(db: impl Into<Ex<'_>>, new: NewSession<'_>) -> Result<SessionId, DbError> {
    const SQL: &str = "INSERT INTO sessions
        (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
        VALUES ($1, $2, $3, $4, $4, $5) RETURNING id";
    let id: i64 = on_pool!(db, pool => sqlx::query_scalar(SQL)
        .bind(new.token_hash)
        .bind(new.user_id.0)
        .bind(new.csrf_token)
        .bind(new.now)
        .bind(new.expires_at)
        .fetch_one(pool)
        .await)?;
    Ok(SessionId(id))
}

/// The session whose token hashes to `token_hash`, if it has not ended: `expires_at` is after
/// `now` and it was last seen after `idle_since`.
pub async fn find_active(
    db: impl Into<Ex<'_>>,
    token_hash: &str,
    now: UnixSeconds,
    idle_since: UnixSeconds,
) -> Result<Option<ActiveSession>, DbError> {
    const SQL: &str = "SELECT s.id AS session_id, s.user_id, u.email, s.csrf_token, s.flash,
            s.last_seen_at, s.expires_at, u.is_operator,
            (SELECT COUNT(*) FROM connections c
                WHERE c.owner_id = s.user_id AND c.status = 'needs_reconnect') AS needs_action
        FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3";
    let found = on_pool!(db, pool => sqlx::query_as(SQL)
        .bind(token_hash)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(pool)
        .await)?;
    Ok(found)
}

/// Marks the session as used at `now` and, when `clear_flash`, drops its flash message (it has
/// been shown).
pub async fn touch(
    db: impl Into<Ex<'_>>,
    id: SessionId,
    now: UnixSeconds,
    clear_flash: bool,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE sessions SET last_seen_at = $1,
        flash = CASE WHEN $2 THEN NULL ELSE flash END WHERE id = $3";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(now)
        .bind(clear_flash)
        .bind(id.0)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Leaves a one-time message for the session's next page.
pub async fn set_flash(db: impl Into<Ex<'_>>, id: SessionId, message: &str) -> Result<(), DbError> {
    const SQL: &str = "UPDATE sessions SET flash = $1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(message).bind(id.0).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Ends one session (log out).
pub async fn delete(db: impl Into<Ex<'_>>, id: SessionId) -> Result<(), DbError> {
    const SQL: &str = "DELETE FROM sessions WHERE id = $1";
    on_pool!(db, pool => sqlx::query(SQL).bind(id.0).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Ends every session of `user_id` except `keep` (after a password change). Returns how many.
pub async fn delete_others(
    db: impl Into<Ex<'_>>,
    user_id: UserId,
    keep: SessionId,
) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(user_id.0)
        .bind(keep.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Removes sessions that have ended (absolute or idle), so the table does not grow forever.
pub async fn delete_ended(
    db: impl Into<Ex<'_>>,
    now: UnixSeconds,
    idle_since: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(now)
        .bind(idle_since)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Failed log-ins for one subject after a time: how many, and when the oldest of them was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub oldest: Option<UnixSeconds>,
}

/// Records one failed log-in under each of `subjects` (e.g. the email and the client address),
/// and forgets failures from before `forget_before`, which no window looks at any more. Returns
/// the new rows' ids.
pub async fn record_login_failure(
    db: impl Into<Ex<'_>>,
    subjects: &[String],
    now: UnixSeconds,
    forget_before: UnixSeconds,
) -> Result<Vec<i64>, DbError> {
    const INSERT: &str =
        "INSERT INTO login_failures (subject, failed_at) VALUES ($1, $2) RETURNING id";
    const PRUNE: &str = "DELETE FROM login_failures WHERE failed_at < $1";
    let mut ex: Ex = db.into();
    let mut ids = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let id: i64 = on_pool!(ex.re(), pool => sqlx::query_scalar(INSERT).bind(subject).bind(now).fetch_one(pool).await)?;
        ids.push(id);
    }
    on_pool!(ex, pool => sqlx::query(PRUNE).bind(forget_before).execute(pool).await.map(|_| ()))?;
    Ok(ids)
}

/// Takes back recorded failures by id (an attempt refused by the limit, or one that succeeded).
pub async fn delete_login_failures(db: impl Into<Ex<'_>>, ids: &[i64]) -> Result<(), DbError> {
    const SQL: &str = "DELETE FROM login_failures WHERE id = $1";
    let mut ex: Ex = db.into();
    for id in ids {
        on_pool!(ex.re(), pool => sqlx::query(SQL).bind(id).execute(pool).await.map(|_| ()))?;
    }
    Ok(())
}

/// Failed log-ins recorded for `subject` strictly after `after`.
pub async fn login_failures_after(
    db: impl Into<Ex<'_>>,
    subject: &str,
    after: UnixSeconds,
) -> Result<Failures, DbError> {
    const SQL: &str =
        "SELECT COUNT(*), MIN(failed_at) FROM login_failures WHERE subject = $1 AND failed_at > $2";
    let (count, oldest): (i64, Option<i64>) = on_pool!(db, pool => sqlx::query_as(SQL)
        .bind(subject)
        .bind(after)
        .fetch_one(pool)
        .await)?;
    Ok(Failures { count, oldest })
}

/// Forgets the failed log-ins of `subject` (after a successful log-in with that email).
pub async fn clear_login_failures(db: impl Into<Ex<'_>>, subject: &str) -> Result<(), DbError> {
    const SQL: &str = "DELETE FROM login_failures WHERE subject = $1";
    on_pool!(db, pool => sqlx::query(SQL).bind(subject).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Ends every session of `user_id` (their password was just set by a one-time link).
pub async fn delete_all(db: impl Into<Ex<'_>>, user_id: UserId) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM sessions WHERE user_id = $1";
    let n = on_pool!(db, pool => sqlx::query(SQL)
        .bind(user_id.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Leaves a sealed secret for the session's next page.
pub async fn set_reveal(db: impl Into<Ex<'_>>, id: SessionId, sealed: &str) -> Result<(), DbError> {
    const SQL: &str = "UPDATE sessions SET reveal = $1 WHERE id = $2";
    on_pool!(db, pool => sqlx::query(SQL).bind(sealed).bind(id.0).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Takes the session's sealed secret, once: it is returned only to the request whose
/// compare-and-clear removed it, so two requests at once cannot both show it.
pub async fn take_reveal(db: impl Into<Ex<'_>>, id: SessionId) -> Result<Option<String>, DbError> {
    let mut ex: Ex = db.into();
    const READ: &str = "SELECT reveal FROM sessions WHERE id = $1";
    let sealed: Option<Option<String>> =
        on_pool!(ex.re(), pool => sqlx::query_scalar(READ).bind(id.0).fetch_optional(pool).await)?;
    let Some(sealed) = sealed.flatten() else {
        return Ok(None);
    };
    const CLEAR: &str = "UPDATE sessions SET reveal = NULL WHERE id = $1 AND reveal = $2";
    let n = on_pool!(ex, pool => sqlx::query(CLEAR).bind(id.0).bind(&sealed).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok((n == 1).then_some(sealed))
}
