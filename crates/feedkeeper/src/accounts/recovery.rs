//! Getting into an account without its password: one-time links that let a person set one.
//!
//! An operator makes them from the command line (`feedkeeper users reset-password EMAIL`, and
//! `feedkeeper users create EMAIL`, which invites a new user) until mail arrives; the link is
//! the only copy of its secret (the database keeps a hash), works once, and expires.

use super::Email;
use super::password;
use super::session::hash_token;
use crate::db::{DbError, password_resets, sessions, users};
use crate::ids::UserId;
use crate::state::AppState;

/// How long a reset link works.
pub const RESET_TTL_SECS: i64 = 3600;
/// How long an invitation works.
pub const INVITE_TTL_SECS: i64 = 7 * 86_400;

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    BadEmail(String),
    #[error("there is no account for {0}")]
    NoSuchUser(String),
    #[error("an account for {0} already exists; use `feedkeeper users reset-password {0}`")]
    AlreadyExists(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A fresh link for `user` that works for `ttl` seconds; earlier unused links stop working.
pub async fn issue_link(state: &AppState, user: UserId, ttl: i64) -> Result<String, DbError> {
    let now = state.clock.now();
    let secret = super::csrf::random_token();
    let mut tx = state.db.begin().await?;
    password_resets::expire_for_user(&mut tx, user, now).await?;
    password_resets::insert(&mut tx, &hash_token(&secret), user, now, now + ttl).await?;
    tx.commit().await?;
    Ok(format!("{}/reset/{secret}", state.config.public_url()))
}

/// A reset link for the account of `email`.
pub async fn reset_link(state: &AppState, email: &str) -> Result<String, RecoveryError> {
    let email = Email::parse(email).map_err(|e| RecoveryError::BadEmail(e.to_owned()))?;
    let user = users::find_by_email(&state.db, email.as_str())
        .await?
        .ok_or_else(|| RecoveryError::NoSuchUser(email.as_str().to_owned()))?;
    Ok(issue_link(state, user.id, RESET_TTL_SECS).await?)
}

/// Creates an account for `email` with no usable password, and an invitation link to set one.
/// Unlike the sign-up page, this works whatever `accounts.open_signup` says: the operator
/// decides who gets in.
pub async fn invite(state: &AppState, email: &str) -> Result<String, RecoveryError> {
    let email = Email::parse(email).map_err(|e| RecoveryError::BadEmail(e.to_owned()))?;
    // A hash of a random password nobody knows: the account opens only through the link.
    let unusable = password::hash(super::csrf::random_token()).await?;
    let user = match users::create(&state.db, email.as_str(), &unusable, state.clock.now()).await {
        Ok(id) => id,
        Err(DbError::Conflict(_)) => {
            return Err(RecoveryError::AlreadyExists(email.as_str().to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(issue_link(state, user, INVITE_TTL_SECS).await?)
}

/// Whether `secret` is a usable link now (for showing the form).
pub async fn check_link(state: &AppState, secret: &str) -> Result<Option<UserId>, DbError> {
    password_resets::find_usable(&state.db, &hash_token(secret), state.clock.now()).await
}

/// Sets the password through a link, once: uses the link, stores the new hash, and ends every
/// session of the account (someone else may have been in it), all in one transaction.
/// `None` when the link is unknown, used or expired.
pub async fn set_password(
    state: &AppState,
    secret: &str,
    password_hash: &str,
) -> Result<Option<UserId>, DbError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let Some(user) = password_resets::consume(&mut tx, &hash_token(secret), now).await? else {
        return Ok(None);
    };
    users::set_password_hash(&mut tx, user, password_hash, now).await?;
    sessions::delete_all(&mut tx, user).await?;
    password_resets::expire_for_user(&mut tx, user, now).await?;
    tx.commit().await?;
    Ok(Some(user))
}
