//! Connecting Instagram accounts: starting a login (from the dashboard or a client link), Meta's
//! redirect back, and picking Facebook Pages.
//!
//! Every login carries a random `state` that is stored hashed, used once, expires after
//! [`STATE_TTL_SECS`], and is bound to the browser that started it: the owner's dashboard session
//! (through its CSRF token) or, for client links, a cookie set on the link's page. Anything else
//! gets a clear page and changes nothing.
//!
//! One file per flow: [`owner`] (the dashboard's buttons), [`links`] (a client opening a link),
//! [`callback`] (Meta's redirect back), [`pages`] (choosing Facebook Pages). This file holds what
//! they share: providers, starting a login, and the problem page.

pub mod callback;
pub mod done;
pub mod links;
pub mod owner;
pub mod pages;

pub use callback::callback;
pub use done::link_done;
pub use links::{link_landing, link_logo, link_start};
pub use owner::{start_owner, start_reconnect};
pub use pages::{page_picker, pick_pages};

use callback::Flow;
use owner::{CsrfForm, provider_of};
use pages::StoredPage;

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::accounts::csrf::{random_token, tokens_match};
use crate::accounts::session::{hash_token, read_our_cookie, set_cookie};
use crate::accounts::{CurrentUser, Page};
use crate::connections::{self, Actor, ConnectError};
use crate::db::connections::{ClientOrigin, Connection};
use crate::db::links::{self as link_store, ConnectLink, Unusable};
use crate::db::{connections as stored, oauth_states, page_choices, users};
use crate::error::AppError;
use crate::error::render;
use crate::ids::{ConnectionId, UserId};
use crate::meta::oauth::parse_callback;
use crate::meta::{AccessToken, FacebookPage, Failure};
use crate::state::AppState;

/// How long a started login may take.
pub const STATE_TTL_SECS: i64 = 15 * 60;
/// How long a Facebook Page choice waits.
const CHOICE_TTL_SECS: i64 = 30 * 60;
/// Calls to Meta about a person's Facebook Pages made at once within one request (a person can
/// have dozens of Pages; one after another they would outlast the request's timeout).
const PAGE_CALLS_AT_ONCE: usize = 4;
/// How long the best-effort lookups of the Pages' @handles may take, all together.
const PAGE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// The cookie that binds a client-link login to the browser that opened the link.
const LINK_COOKIE: &str = "fk_link";

/// Which login dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Instagram,
    Facebook,
}

impl Provider {
    fn parse(s: &str) -> Result<Provider, AppError> {
        match s {
            "instagram" => Ok(Provider::Instagram),
            "facebook" => Ok(Provider::Facebook),
            _ => Err(AppError::NotFound),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Provider::Instagram => "instagram",
            Provider::Facebook => "facebook",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Provider::Instagram => "Instagram",
            Provider::Facebook => "Facebook",
        }
    }
}

/// Where Meta sends the person back (register it as a Valid OAuth Redirect URI).
pub fn redirect_uri(state: &AppState, provider: Provider) -> String {
    format!(
        "{}/connect/{}/callback",
        state.config.public_url(),
        provider.as_str()
    )
}

/// Who started a login, and what it is for.
struct Starter<'a> {
    owner: UserId,
    /// What the browser will show at the callback (session CSRF token or link cookie).
    binding: &'a str,
    link: Option<&'a ConnectLink>,
    reconnect: Option<ConnectionId>,
}

/// Records a new `state` and answers with a redirect to Meta's dialog.
async fn begin(
    state: &AppState,
    provider: Provider,
    starter: Starter<'_>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let value = random_token();
    oauth_states::insert(
        &state.db,
        &oauth_states::OauthState {
            state_hash: hash_token(&value),
            provider: provider.as_str().to_owned(),
            owner_id: starter.owner,
            binding_hash: hash_token(starter.binding),
            link_id: starter.link.map(|l| l.id),
            connection_id: starter.reconnect,
            created_at: now,
            expires_at: now + STATE_TTL_SECS,
            used_at: None,
        },
    )
    .await?;
    // Expired states are swept by the maintenance job.
    let redirect = redirect_uri(state, provider);
    let url = match provider {
        // A reconnect forces the login form: the browser may be logged in as someone else.
        Provider::Instagram => {
            state
                .meta
                .instagram_authorize_url(&redirect, &value, starter.reconnect.is_some())
        }
        Provider::Facebook => state.meta.facebook_dialog_url(&redirect, &value),
    };
    Ok(see_other(url.as_str()))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location.to_owned())]).into_response()
}

/// Whom a client link comes from, as the client sees it: the owner's organisation name (their
/// login email when they set none) and, with `token`, the address of their logo.
struct Requester {
    name: String,
    logo_url: Option<String>,
}

async fn requester(
    state: &AppState,
    link: &ConnectLink,
    token: Option<&str>,
) -> Result<Requester, AppError> {
    let org = crate::db::organisations::get(&state.db, link.owner_id).await?;
    let name = match org.name {
        Some(name) => name,
        None => users::get(&state.db, link.owner_id).await?.email,
    };
    let logo_url = token
        .zip(org.logo_version)
        .map(|(token, v)| format!("/l/{token}/logo?v={v}"));
    Ok(Requester { name, logo_url })
}

#[derive(Template)]
#[template(path = "link_done.html")]
struct LinkDone {
    page: Page,
    names: String,
    requester: String,
}

#[derive(Template)]
#[template(path = "connect_problem.html")]
struct Problem<'a> {
    page: Page,
    message: &'a str,
    /// The next step: a link and its label.
    next: Option<(&'a str, &'a str)>,
}

/// A page explaining why nothing happened, and what to do.
/// The menu shows when someone is logged in; the next step is `next`, or for a logged-in person
/// their connections (a client following a link has the link's own instructions).
fn problem(
    status: StatusCode,
    title: &str,
    message: &str,
    user: Option<&CurrentUser>,
    next: Option<(&str, &str)>,
) -> Result<Response, AppError> {
    let page = match user {
        Some(user) => Page::for_user(user, title),
        None => Page::public(title, String::new()),
    };
    let next = next.or(user.map(|_| ("/connections", "Back to your connections")));
    let mut response = render(&Problem {
        page,
        message,
        next,
    })?;
    *response.status_mut() = status;
    Ok(response)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
