//! The account page: who you are, the organisation your clients see, and changing your password.
//!
//! A password change needs the current password (checked under the log-in rate limit, so a
//! borrowed session cannot be used to guess it) and ends every other session of the user. The
//! organisation's name and logo are shown on client-link pages instead of the login email; the
//! logo is stored by us and served from `/account/logo` and `/l/{link}/logo`.

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use crate::accounts::rate_limit::{self, ClientAddress, Subjects};
use crate::accounts::{CurrentUser, Email, Page, organisation, password, session};
use crate::db::organisations::{self, Logo};
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
    /// The space the stored images of this user's widgets take, for people ("12.4 MB").
    image_storage: String,
    /// A problem with the password form.
    error: Option<String>,
    /// The organisation name as stored, or as typed when the form was refused.
    organisation_name: String,
    /// The logo's versioned address, when there is one.
    logo_url: Option<String>,
    /// A problem with the organisation form.
    organisation_error: Option<String>,
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

/// A size for people: bytes, kB, MB or GB (powers of 1000, one decimal).
fn human_bytes(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b < 1e3 => format!("{bytes} bytes"),
        b if b < 1e6 => format!("{:.1} kB", b / 1e3),
        b if b < 1e9 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.1} GB", b / 1e9),
    }
}

/// `31 January 2025`, in UTC.
fn date(unix: i64) -> String {
    // "6 December 2026": unambiguous wherever the reader is.
    let format = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
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
    let org = organisations::get(&state.db, user.id).await?;
    Ok(AccountPage {
        page: Page::for_user(user, "Account"),
        email: stored.email,
        member_since: date(stored.created_at),
        image_storage: human_bytes(crate::db::images::bytes_for_user(&state.db, user.id).await?),
        error,
        organisation_name: org.name.unwrap_or_default(),
        logo_url: org.logo_version.map(|v| format!("/account/logo?v={v}")),
        organisation_error: None,
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

/// What the organisation form sent.
#[derive(Default)]
struct OrganisationForm {
    csrf: String,
    name: String,
    /// The uploaded file; empty when none was chosen.
    logo: Vec<u8>,
    remove_logo: bool,
}

impl OrganisationForm {
    /// Reads the multipart body; a body that is not a well-formed form is a 400 with a message.
    async fn read(mut multipart: Multipart) -> Result<OrganisationForm, AppError> {
        let broken = |e: axum::extract::multipart::MultipartError| {
            AppError::BadRequest(format!("The form could not be read: {}", e.body_text()))
        };
        let mut form = OrganisationForm::default();
        while let Some(field) = multipart.next_field().await.map_err(broken)? {
            match field.name().unwrap_or_default() {
                "csrf" => form.csrf = field.text().await.map_err(broken)?,
                "organisation_name" => form.name = field.text().await.map_err(broken)?,
                "remove_logo" => form.remove_logo = !field.text().await.map_err(broken)?.is_empty(),
                "logo" => form.logo = field.bytes().await.map_err(broken)?.to_vec(),
                // Unknown fields are ignored, like `Form` does.
                _ => {}
            }
        }
        Ok(form)
    }
}

/// `POST /account/organisation` (multipart): the name and, optionally, a new logo or removing
/// it. Checked in full before anything is stored, and stored in one transaction.
pub async fn save_organisation(
    State(state): State<AppState>,
    user: CurrentUser,
    multipart: Multipart,
) -> Result<Response, AppError> {
    let form = OrganisationForm::read(multipart).await?;
    user.verify_csrf(&form.csrf)?;
    let name = organisation::parse_name(&form.name);
    let logo_type = if form.logo.is_empty() {
        Ok(None)
    } else {
        organisation::logo_type(&form.logo).map(Some)
    };
    let (name, logo_type) = match (name, logo_type) {
        (Ok(name), Ok(logo_type)) => (name, logo_type),
        (name, logo_type) => {
            let problems: Vec<&str> = [name.err(), logo_type.err()]
                .into_iter()
                .flatten()
                .collect();
            let mut page = account_page(&state, &user, None).await?;
            page.organisation_name = form.name.trim().to_owned();
            page.organisation_error = Some(problems.join(" "));
            return Err(invalid_form(&page));
        }
    };
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    organisations::set_name(&mut tx, user.id, name.as_deref(), now).await?;
    if let Some(content_type) = logo_type {
        organisations::set_logo(&mut tx, user.id, content_type, &form.logo, now).await?;
    } else if form.remove_logo {
        organisations::remove_logo(&mut tx, user.id).await?;
    }
    tx.commit().await?;
    user.flash(
        &state,
        "Saved. Your clients see this on the pages of the links you send them.",
    )
    .await?;
    Ok(Redirect::to("/account").into_response())
}

/// A stored logo as a response. The address carries the logo's version, so it may be kept for
/// long; `private`, since it belongs to one customer and shared caches need not hold it.
pub fn logo_response(logo: Logo) -> Response {
    (
        [
            (CONTENT_TYPE, logo.content_type),
            (CACHE_CONTROL, "private, max-age=86400".to_owned()),
        ],
        logo.bytes,
    )
        .into_response()
}

/// `GET /account/logo`: the logged-in user's logo.
pub async fn logo(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    let logo = organisations::logo(&state.db, user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(logo_response(logo))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(super::human_bytes(0), "0 bytes");
        assert_eq!(super::human_bytes(999), "999 bytes");
        assert_eq!(super::human_bytes(12_400_000), "12.4 MB");
        assert_eq!(super::human_bytes(3_200_000_000), "3.2 GB");
    }

    #[test]
    fn dates_read_the_same_everywhere() {
        assert_eq!(super::date(1_738_281_600), "31 January 2025");
        assert_eq!(super::date(1_735_689_600), "1 January 2025");
    }
}
