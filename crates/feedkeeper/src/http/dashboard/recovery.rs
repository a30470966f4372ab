//! `/reset/{secret}`: the page a one-time password link opens (from `feedkeeper users
//! reset-password` or `users create`), and saving the new password through it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::{check_prelogin, logged_in, prelogin_browser, respond};
use crate::accounts::recovery;
use crate::accounts::{Page, csrf, password, session};
use crate::db::users;
use crate::error::{AppError, invalid_form, render_html};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    page: Page,
    email: String,
    action: String,
    error: Option<String>,
}

/// A link that no longer works: why, and what to do.
fn unusable() -> AppError {
    AppError::Forbidden(
        "This link has expired or has been used already. Ask the person who runs this \
         feedkeeper for a new one."
            .into(),
    )
}

fn reset_page(
    state: &AppState,
    browser: &str,
    secret: &str,
    email: String,
    error: Option<String>,
) -> ResetPage {
    ResetPage {
        page: Page::public(
            "Choose a password",
            csrf::prelogin_token(&state.prelogin_cipher, browser, state.clock.now()),
        ),
        email,
        action: format!("/reset/{secret}"),
        error,
    }
}

/// `GET /reset/{secret}`: the form, if the link still works.
pub async fn form(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Some(user) = recovery::check_link(&state, &secret).await? else {
        return Err(unusable());
    };
    let email = users::get(&state.db, user).await?.email;
    let (browser, cookie) = prelogin_browser(&state, &headers);
    let html = render_html(&reset_page(&state, &browser, &secret, email, None))?;
    Ok(respond(html, cookie))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetForm {
    csrf: String,
    password: String,
    password_confirm: String,
}

/// `POST /reset/{secret}`: saves the password (once), ends the account's other sessions, and
/// logs this browser in.
pub async fn save(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Result<Response, AppError> {
    check_prelogin(&state, &headers, &form.csrf)?;
    let Some(user) = recovery::check_link(&state, &secret).await? else {
        return Err(unusable());
    };
    let email = users::get(&state.db, user).await?.email;
    let problem = password::check_new(&form.password)
        .err()
        .map(str::to_owned)
        .or_else(|| {
            (form.password != form.password_confirm)
                .then(|| "The two passwords do not match.".to_owned())
        });
    if let Some(message) = problem {
        let browser = session::read_our_cookie(&state.config, &headers, csrf::PRELOGIN_COOKIE)
            .unwrap_or_default()
            .to_owned();
        return Err(invalid_form(&reset_page(
            &state,
            &browser,
            &secret,
            email,
            Some(message),
        )));
    }
    let hash = password::hash(form.password.clone()).await?;
    let Some(user) = recovery::set_password(&state, &secret, &hash).await? else {
        // Used by a second submission a moment ago.
        return Err(unusable());
    };
    tracing::info!(user = %user, "password set through a one-time link");
    let cookie = session::start(&state, user).await?;
    Ok(logged_in(&state, cookie, "/connections"))
}
