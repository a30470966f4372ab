//! Sign-up, log-in and log-out: the forms, their checks, and starting and ending sessions.
//!
//! Handlers only orchestrate: validation rules, hashing, sessions, CSRF and the rate limit live in
//! `crate::accounts`. A refused form comes back with the reason and the email kept (never the
//! password).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::csrf::{self, PRELOGIN_COOKIE, PRELOGIN_LIFETIME_SECS};
use crate::accounts::page::page_headers;
use crate::accounts::rate_limit::{self, ClientAddress, Subjects};
use crate::accounts::redirect::{after_login, safe_next, with_next};
use crate::accounts::session::{self, SESSION_COOKIE};
use crate::accounts::{CurrentUser, Email, Page, password};
use crate::db::{DbError, users};
use crate::error::AppError;
use crate::error::{invalid_form, render_html};
use crate::state::AppState;

/// The one message for every failed log-in: it must not tell an unknown email from a wrong
/// password.
pub const LOGIN_FAILED: &str = "The email or password is not correct.";

/// `?next=` on the sign-up and log-in pages.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
    /// Set by the redirect after logging out.
    bye: Option<String>,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    page: Page,
    error: Option<String>,
    email: String,
    next: String,
    login_href: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    /// A friendly word (after logging out).
    notice: Option<&'static str>,
    error: Option<String>,
    email: String,
    next: String,
    signup_href: String,
}

/// The sign-up form. Every field defaults to empty, so a form missing one is answered by our own
/// checks (a missing `csrf` is a 403) rather than by a deserialization error.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignupForm {
    csrf: String,
    email: String,
    password: String,
    password_confirm: String,
    next: String,
}

/// The log-in form (fields default to empty, as for [`SignupForm`]).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    next: String,
}

/// A form that carries nothing but its CSRF token (log out).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

/// The browser's pre-login id (the one in its `fk_prelogin` cookie, or a new one), and the
/// `Set-Cookie` that hands it over. The cookie is re-sent even when the browser has it, so it
/// lives as long as the token in the form being rendered now.
pub(super) fn prelogin_browser(state: &AppState, headers: &HeaderMap) -> (String, HeaderValue) {
    let id = session::read_our_cookie(&state.config, headers, PRELOGIN_COOKIE)
        .filter(|id| csrf::is_well_formed(id))
        .map_or_else(csrf::random_token, str::to_owned);
    let cookie = session::set_cookie(&state.config, PRELOGIN_COOKIE, &id, PRELOGIN_LIFETIME_SECS);
    (id, cookie)
}

/// Refuses a sign-up or log-in POST whose pre-login token does not match the browser's cookie.
pub(super) fn check_prelogin(
    state: &AppState,
    headers: &HeaderMap,
    submitted: &str,
) -> Result<(), AppError> {
    let browser = session::read_our_cookie(&state.config, headers, PRELOGIN_COOKIE);
    csrf::verify_prelogin(
        &state.prelogin_cipher,
        browser,
        submitted,
        state.clock.now(),
    )
    .map_err(|problem| {
        tracing::info!(?problem, "refused a pre-login form");
        AppError::Forbidden(
            "This form has expired or did not come from this site. Reload the page and try \
                 again (feedkeeper needs cookies to log you in)."
                .into(),
        )
    })
}

/// A pre-login page response, with its cookie.
pub(super) fn respond(html: axum::response::Html<String>, cookie: HeaderValue) -> Response {
    (AppendHeaders([(SET_COOKIE, cookie)]), page_headers(), html).into_response()
}

/// The redirect after a successful sign-up or log-in: hands over the session cookie and drops
/// the pre-login one.
pub(super) fn logged_in(state: &AppState, session_cookie: HeaderValue, next: &str) -> Response {
    (
        AppendHeaders([
            (SET_COOKIE, session_cookie),
            (
                SET_COOKIE,
                session::clear_cookie(&state.config, PRELOGIN_COOKIE),
            ),
        ]),
        Redirect::to(after_login(Some(next))),
    )
        .into_response()
}

fn signup_page(
    state: &AppState,
    browser: &str,
    error: Option<String>,
    email: String,
    next: Option<&str>,
) -> SignupPage {
    let next = next.and_then(safe_next).unwrap_or_default().to_owned();
    SignupPage {
        page: Page::public(
            "Sign up",
            csrf::prelogin_token(&state.prelogin_cipher, browser, state.clock.now()),
        ),
        error,
        email,
        login_href: with_next("/login", Some(&next)),
        next,
    }
}

fn login_page(
    state: &AppState,
    browser: &str,
    error: Option<String>,
    email: String,
    next: Option<&str>,
) -> LoginPage {
    let next = next.and_then(safe_next).unwrap_or_default().to_owned();
    LoginPage {
        notice: None,
        page: Page::public(
            "Log in",
            csrf::prelogin_token(&state.prelogin_cipher, browser, state.clock.now()),
        ),
        error,
        email,
        signup_href: with_next("/signup", Some(&next)),
        next,
    }
}

#[derive(Template)]
#[template(path = "signup_closed.html")]
struct SignupClosedPage {
    page: Page,
}

/// Sign-up is closed once the first account exists, unless `accounts.open_signup` is on.
async fn signup_closed(state: &AppState) -> Result<Option<Response>, AppError> {
    if state.config.accounts.open_signup || !users::any(&state.db).await? {
        return Ok(None);
    }
    let mut response = render_html(&SignupClosedPage {
        page: Page::public("Sign-up is closed", String::new()),
    })?
    .into_response();
    *response.status_mut() = axum::http::StatusCode::FORBIDDEN;
    Ok(Some(response))
}

/// `GET /signup`. Someone already logged in goes straight on.
pub async fn signup_form(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to(after_login(query.next.as_deref())).into_response());
    }
    if let Some(closed) = signup_closed(&state).await? {
        return Ok(closed);
    }
    let (browser, cookie) = prelogin_browser(&state, &headers);
    let page = signup_page(&state, &browser, None, String::new(), query.next.as_deref());
    Ok(respond(render_html(&page)?, cookie))
}

/// `POST /signup`: creates the account and logs it in.
pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> Result<Response, AppError> {
    check_prelogin(&state, &headers, &form.csrf)?;
    if let Some(closed) = signup_closed(&state).await? {
        return Ok(closed);
    }
    // check_prelogin passed, so the browser has a well-formed pre-login cookie.
    let browser =
        session::read_our_cookie(&state.config, &headers, PRELOGIN_COOKIE).unwrap_or_default();
    let refuse = |message: &str| -> AppError {
        let page = signup_page(
            &state,
            browser,
            Some(message.to_owned()),
            form.email.trim().to_owned(),
            Some(&form.next),
        );
        invalid_form(&page)
    };
    // Every problem at once, so nobody fixes one field only to learn of the next.
    let email = Email::parse(&form.email);
    let mut problems: Vec<&str> = Vec::new();
    if let Err(problem) = &email {
        problems.push(problem);
    }
    if let Err(problem) = password::check_new(&form.password) {
        problems.push(problem);
    }
    if form.password != form.password_confirm {
        problems.push("The two passwords do not match.");
    }
    let email = match email {
        Ok(email) if problems.is_empty() => email,
        _ => return Err(refuse(&problems.join(" "))),
    };
    let hash = password::hash(form.password.clone()).await?;
    let user_id = match users::create(&state.db, email.as_str(), &hash, state.clock.now()).await {
        Ok(id) => id,
        Err(DbError::Conflict(_)) => {
            return Err(refuse(
                "An account with this email already exists. Log in instead.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user_id, "signed up");
    let cookie = session::start(&state, user_id).await?;
    Ok(logged_in(&state, cookie, &form.next))
}

/// `GET /login`. Someone already logged in goes straight on.
pub async fn login_form(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to(after_login(query.next.as_deref())).into_response());
    }
    let (browser, cookie) = prelogin_browser(&state, &headers);
    let mut page = login_page(&state, &browser, None, String::new(), query.next.as_deref());
    if query.bye.is_some() {
        page.notice = Some("You are logged out.");
    }
    Ok(respond(render_html(&page)?, cookie))
}

/// `POST /login`: checks the rate limit, then the password; starts a session.
pub async fn login(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    check_prelogin(&state, &headers, &form.csrf)?;
    let browser =
        session::read_our_cookie(&state.config, &headers, PRELOGIN_COOKIE).unwrap_or_default();
    let refuse = |message: &str| -> AppError {
        let page = login_page(
            &state,
            browser,
            Some(message.to_owned()),
            form.email.trim().to_owned(),
            Some(&form.next),
        );
        invalid_form(&page)
    };
    let email = Email::parse(&form.email).map_err(refuse)?;
    if form.password.is_empty() {
        return Err(refuse("Enter your password."));
    }
    let now = state.clock.now();
    let subjects = Subjects::new(&email, address, &state.login_limit_key);
    let attempt = match rate_limit::begin_attempt(&state.db, &subjects, now).await? {
        Ok(attempt) => attempt,
        Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
    };
    let user = users::find_by_email(&state.db, email.as_str()).await?;
    // No password longer than the rules allow was ever set, so it cannot match; skip hashing
    // a megabyte of it.
    let plausible = form.password.chars().count() <= password::MAX_CHARS;
    let matches = plausible
        && password::verify(
            form.password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    match user {
        Some(user) if matches => {
            rate_limit::record_success(&state.db, &subjects, attempt).await?;
            tracing::info!(user = %user.id, "logged in");
            let cookie = session::start(&state, user.id).await?;
            Ok(logged_in(&state, cookie, &form.next))
        }
        // The attempt is already recorded as a failure.
        _ => Err(refuse(LOGIN_FAILED)),
    }
}

/// `POST /logout`: ends this session. Without a session there is nothing to end: the browser is
/// sent to the log-in page (and its stale cookie dropped).
pub async fn logout(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    // The log-in page says "You are logged out" when a session really ended here.
    let (cookie, to) = match user {
        Some(user) => {
            user.verify_csrf(&form.csrf)?;
            tracing::info!(user = %user.id, "logged out");
            (session::end(&state, &user).await?, "/login?bye=1")
        }
        None => (
            session::clear_cookie(&state.config, SESSION_COOKIE),
            "/login",
        ),
    };
    Ok((AppendHeaders([(SET_COOKIE, cookie)]), Redirect::to(to)).into_response())
}
