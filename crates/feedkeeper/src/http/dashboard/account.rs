//! The account page: who you are, and changing your password.
//!
//! A password change needs the current password (checked under the log-in rate limit, so a
//! borrowed session cannot be used to guess it) and ends every other session of the user.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use crate::accounts::rate_limit::{self, ClientAddress, Subjects};
use crate::accounts::{CurrentUser, Email, Page, password, session};
use crate::db::users;
use crate::error::AppError;
use crate::error::invalid_form;
use crate::error::render;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Page,
    email: String,
    member_since: String,
    error: Option<String>,
}

/// The password form (fields default to empty: a missing `csrf` is a 403, not a parse error).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// `2025-01-31`, in UTC.
fn date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

async fn account_page(
    state: &AppState,
    user: &CurrentUser,
    error: Option<String>,
) -> Result<AccountPage, AppError> {
    let stored = users::get(&state.db, user.id).await?;
    Ok(AccountPage {
        page: Page::for_user(user, "Account"),
        email: stored.email,
        member_since: date(stored.created_at),
        error,
    })
}

/// The account page again, with `message` over the password form (422).
async fn refused(state: &AppState, user: &CurrentUser, message: &str) -> AppError {
    match account_page(state, user, Some(message.to_owned())).await {
        Ok(page) => invalid_form(&page),
        Err(e) => e,
    }
}

/// `GET /account`.
pub async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    render(&account_page(&state, &user, None).await?)
}

/// `POST /account/password`.
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    address: ClientAddress,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let now = state.clock.now();
    // The stored email is normalized already; parsing cannot fail, but never panic on it.
    let email = Email::parse(&user.email).map_err(|e| anyhow::anyhow!("stored email: {e}"))?;
    let subjects = Subjects::new(&email, address, &state.login_limit_key);
    let attempt = match rate_limit::begin_attempt(&state.db, &subjects, now).await? {
        Ok(attempt) => attempt,
        Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
    };
    let stored = users::get(&state.db, user.id).await?;
    let plausible = form.current_password.chars().count() <= password::MAX_CHARS;
    let current_ok = plausible
        && password::verify(form.current_password.clone(), Some(stored.password_hash)).await?;
    if !current_ok {
        // The attempt stays recorded as a failure.
        return Err(refused(&state, &user, "Your current password is not correct.").await);
    }
    rate_limit::record_success(&state.db, &subjects, attempt).await?;
    if let Err(message) = password::check_new(&form.new_password) {
        return Err(refused(&state, &user, message).await);
    }
    if form.new_password != form.new_password_confirm {
        return Err(refused(&state, &user, "The two new passwords do not match.").await);
    }
    let hash = password::hash(form.new_password.clone()).await?;
    users::set_password_hash(&state.db, user.id, &hash, now).await?;
    let ended = session::end_others(&state, &user).await?;
    tracing::info!(user = %user.id, other_sessions_ended = ended, "password changed");
    user.flash(
        &state,
        "Your password has been changed. Every other session has been logged out.",
    )
    .await?;
    Ok(Redirect::to("/account").into_response())
}
