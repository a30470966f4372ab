//! Client links: links the owner sends to a client so the client can connect (or reconnect) an
//! Instagram account into the owner's dashboard without an account of their own.
//!
//! A link's secret is shown once, on the page right after it is made; only its SHA-256 is stored,
//! so a lost link is replaced, never recovered. Every read and write filters by owner: another
//! tenant's link answers 404, like a missing one. The client's side (`/l/{token}`) lives in
//! `http::connect`.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use crate::accounts::csrf::random_token;
use crate::accounts::session::hash_token;
use crate::accounts::{CurrentUser, Email, Page};
use crate::clock::format_utc;
use crate::db::connections::Connection;
use crate::db::links::{self as link_store, ConnectLink, NewLink, Unusable};
use crate::error::AppError;
use crate::error::invalid_form;
use crate::error::render;
use crate::http::path_id;
use crate::ids::{ConnectionId, LinkId};
use crate::state::AppState;

/// The longest label, in characters.
pub(in crate::http) const MAX_LABEL_CHARS: usize = 100;
/// The expiry a new link gets unless the owner picks another, and the allowed range.
pub(in crate::http) const DEFAULT_DAYS: i64 = 7;
pub(in crate::http) const MIN_DAYS: i64 = 1;
pub(in crate::http) const MAX_DAYS: i64 = 30;
const DAY: i64 = 86_400;

/// What the create form holds: the owner's input, kept as typed when it is refused.
pub(in crate::http) struct FormValues {
    pub label: String,
    pub client_email: String,
    pub expires_days: String,
    pub single_use: bool,
}

impl Default for FormValues {
    fn default() -> Self {
        FormValues {
            label: String::new(),
            client_email: String::new(),
            expires_days: DEFAULT_DAYS.to_string(),
            single_use: true,
        }
    }
}

/// One link as the list shows it.
struct LinkView {
    id: i64,
    title: String,
    client_email: Option<String>,
    created: String,
    expires: String,
    /// "Active", "Used on …", "Expired on …", "Revoked on …".
    status: String,
    /// `ok` or `off`, for the badge colour.
    tone: &'static str,
    single_use: bool,
    uses: i64,
    usable: bool,
}

impl LinkView {
    fn new(l: &ConnectLink, names: &HashMap<ConnectionId, String>, now: i64) -> LinkView {
        // A reconnect link is named after the account as it is called today.
        let title = match l.connection_id.and_then(|id| names.get(&id)) {
            Some(username) => format!("Reconnect @{username}"),
            None => l.label.clone(),
        };
        let (status, tone) = match l.unusable(now) {
            None => ("Active".to_owned(), "ok"),
            Some(Unusable::Revoked) => (
                format!("Revoked on {}", format_utc(l.revoked_at.unwrap_or(now))),
                "off",
            ),
            // A spent single-use link says when it was used, even once it has expired too.
            _ if l.single_use && l.used_at.is_some() => (
                format!("Used on {}", format_utc(l.used_at.unwrap_or(now))),
                "off",
            ),
            Some(_) => (format!("Expired on {}", format_utc(l.expires_at)), "off"),
        };
        LinkView {
            id: l.id.0,
            title,
            client_email: l.client_email.clone(),
            created: format_utc(l.created_at),
            expires: format_utc(l.expires_at),
            status,
            tone,
            single_use: l.single_use,
            uses: l.use_count,
            usable: l.unusable(now).is_none(),
        }
    }
}

#[derive(Template)]
#[template(path = "links.html")]
struct LinksPage {
    page: Page,
    form: FormValues,
    error: Option<String>,
    links: Vec<LinkView>,
    max_label: usize,
    min_days: i64,
    max_days: i64,
}

async fn links_page(
    state: &AppState,
    user: &CurrentUser,
    form: FormValues,
    error: Option<String>,
) -> Result<LinksPage, AppError> {
    let now = state.clock.now();
    let names = usernames(state, user).await?;
    let links = link_store::list_owned(&state.db, user.id)
        .await?
        .iter()
        .map(|l| LinkView::new(l, &names, now))
        .collect();
    Ok(LinksPage {
        page: Page::for_user(user, "Client links"),
        form,
        error,
        links,
        max_label: MAX_LABEL_CHARS,
        min_days: MIN_DAYS,
        max_days: MAX_DAYS,
    })
}

/// `GET /links`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    render(&links_page(&state, &user, FormValues::default(), None).await?)
}

/// The create form. Every field defaults to empty: a missing `csrf` is a 403 and a missing label
/// gets our own message, never a deserialization error. An unticked checkbox sends nothing.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CreateForm {
    csrf: String,
    label: String,
    client_email: String,
    expires_days: String,
    single_use: Option<String>,
}

/// A valid create form.
pub(in crate::http) struct Valid {
    pub label: String,
    pub client_email: Option<Email>,
    pub days: i64,
}

/// Checks the form (the API's creates too); the error names the field and is a sentence to
/// show above the form.
pub(in crate::http) fn validate(form: &FormValues) -> Result<Valid, (&'static str, &'static str)> {
    let label = form.label.trim();
    if label.is_empty() {
        return Err((
            "label",
            "Give the link a label, e.g. the client's name or website.",
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(("label", "The label is too long (at most 100 characters)."));
    }
    if label.chars().any(char::is_control) {
        return Err(("label", "The label must be a single line of text."));
    }
    let email = form.client_email.trim();
    let client_email = if email.is_empty() {
        None
    } else {
        Some(Email::parse(email).map_err(|_| {
            ("client_email", "The client's email address does not look right: enter one like name@example.com, or leave it empty.")
        })?)
    };
    // An empty field is a mistake to point out, not a silent default.
    let days = match form.expires_days.trim().parse::<i64>() {
        Ok(d) if (MIN_DAYS..=MAX_DAYS).contains(&d) => d,
        _ => {
            return Err((
                "expires_days",
                "Choose how many days the link works: from 1 to 30.",
            ));
        }
    };
    Ok(Valid {
        label: label.to_owned(),
        client_email,
        days,
    })
}

/// `POST /links`: makes a client link and shows it once.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let values = FormValues {
        label: form.label,
        client_email: form.client_email,
        expires_days: form.expires_days,
        single_use: form.single_use.is_some(),
    };
    let valid = match validate(&values) {
        Ok(valid) => valid,
        Err((_, message)) => {
            let page = links_page(&state, &user, values, Some(message.to_owned())).await?;
            return Err(invalid_form(&page));
        }
    };
    issue(
        &state,
        &user,
        Issue {
            label: &valid.label,
            client_email: valid.client_email.as_ref().map(Email::as_str),
            connection: None,
            single_use: values.single_use,
            days: valid.days,
        },
    )
    .await
}

/// What a new link is for.
pub(super) struct Issue<'a> {
    pub label: &'a str,
    pub client_email: Option<&'a str>,
    /// Set for a reconnect link: the connection the login must renew.
    pub connection: Option<&'a Connection>,
    pub single_use: bool,
    pub days: i64,
}

#[derive(Template)]
#[template(path = "link_created.html")]
struct LinkCreatedPage {
    page: Page,
    /// `None` once it has been shown.
    url: Option<String>,
    label: String,
    reconnect_username: Option<String>,
    client_email: Option<String>,
    expires: String,
    single_use: bool,
    back_href: String,
    back_label: &'static str,
}

/// Stores a new link for `user` and answers with the page showing its address — the only time
/// the secret exists outside the client's hands.
pub(super) async fn issue(
    state: &AppState,
    user: &CurrentUser,
    new: Issue<'_>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let token = random_token();
    let link = link_store::create(
        &state.db,
        &NewLink {
            token_hash: &hash_token(&token),
            owner_id: user.id,
            label: new.label,
            client_email: new.client_email,
            connection_id: new.connection.map(|c| c.id),
            single_use: new.single_use,
            expires_at: now + new.days * DAY,
        },
        now,
    )
    .await?;
    tracing::info!(user = %user.id, link = %link.id, reconnect = new.connection.is_some(), "client link created");
    // Shown on the page the browser is sent to, once: a reload neither makes another link nor
    // shows this one again.
    user.reveal_once(state, &format!("{}:{token}", link.id))
        .await?;
    Ok(Redirect::to(&format!("/links/{}/created", link.id)).into_response())
}

/// `GET /links/{id}/created`: the new link's address, shown this once.
pub async fn created(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let link = link_store::get_owned(&state.db, user.id, crate::http::path_id(&id)?).await?;
    // The secret is this link's only if the session's one-time slot names it.
    let url = user.take_revealed(&state).await?.and_then(|kept| {
        let (kept_id, token) = kept.split_once(':')?;
        (kept_id == link.id.to_string()).then(|| format!("{}/l/{token}", state.config.public_url()))
    });
    let connection = match link.connection_id {
        Some(c) => Some(crate::db::connections::get_owned(&state.db, user.id, c).await?),
        None => None,
    };
    let (back_href, back_label) = match &connection {
        Some(c) => (format!("/connections/{}", c.id), "Back to the connection"),
        None => ("/links".to_owned(), "Back to client links"),
    };
    render(&LinkCreatedPage {
        page: Page::for_user(&user, "Link created"),
        url,
        label: link.label,
        reconnect_username: connection.map(|c| c.username),
        client_email: link.client_email,
        expires: format_utc(link.expires_at),
        single_use: link.single_use,
        back_href,
        back_label,
    })
}

/// A form that carries only the CSRF token.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    pub(super) csrf: String,
}

/// `POST /links/{id}/revoke`: the link stops working at once.
pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let id: LinkId = path_id(&id)?;
    let link = link_store::get_owned(&state.db, user.id, id).await?;
    let message = if link.revoked_at.is_some() {
        format!("The link “{}” was already revoked.", link.label)
    } else {
        if !link_store::revoke_owned(&state.db, user.id, id, state.clock.now()).await? {
            // Deleted between the two queries (its connection was disconnected).
            return Err(AppError::NotFound);
        }
        tracing::info!(user = %user.id, link = %id, "client link revoked");
        format!("Revoked the link “{}”: it no longer works.", link.label)
    };
    user.flash(&state, &message).await?;
    Ok(Redirect::to("/links").into_response())
}

/// The owner's usernames by connection id (for naming reconnect links).
async fn usernames(
    state: &AppState,
    user: &CurrentUser,
) -> Result<HashMap<ConnectionId, String>, AppError> {
    Ok(crate::db::connections::list_owned(&state.db, user.id)
        .await?
        .into_iter()
        .map(|c| (c.id, c.username))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(label: &str, email: &str, days: &str) -> FormValues {
        FormValues {
            label: label.into(),
            client_email: email.into(),
            expires_days: days.into(),
            single_use: true,
        }
    }

    #[test]
    fn a_link_needs_a_label_a_plausible_email_and_1_to_30_days() {
        assert!(
            validate(&form("x", "", "")).is_err(),
            "an empty number of days"
        );
        let ok = validate(&form("  Bakery website ", " Client@Example.com ", "7")).unwrap();
        assert_eq!(ok.label, "Bakery website");
        assert_eq!(
            ok.client_email.as_ref().map(Email::as_str),
            Some("client@example.com")
        );
        assert_eq!(ok.days, DEFAULT_DAYS);
        assert_eq!(validate(&form("x", "", "30")).unwrap().days, 30);
        assert!(
            validate(&form("x", "", "1"))
                .unwrap()
                .client_email
                .is_none()
        );

        assert!(validate(&form("   ", "", "7")).is_err());
        assert!(validate(&form(&"é".repeat(101), "", "7")).is_err());
        assert!(validate(&form(&"é".repeat(100), "", "7")).is_ok());
        assert!(validate(&form("a\nb", "", "7")).is_err());
        assert!(validate(&form("x", "not-an-email", "7")).is_err());
        for days in ["0", "31", "-1", "seven", "7.5", "99999999999999999999"] {
            assert!(validate(&form("x", "", days)).is_err(), "{days}");
        }
    }
}
