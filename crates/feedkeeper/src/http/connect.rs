//! Connecting Instagram accounts: starting a login (from the dashboard or a client link), Meta's
//! redirect back, and picking Facebook Pages.
//!
//! Every login carries a random `state` that is stored hashed, used once, expires after
//! [`STATE_TTL_SECS`], and is bound to the browser that started it: the owner's dashboard session
//! (through its CSRF token) or, for client links, a cookie set on the link's page. Anything else
//! gets a clear page and changes nothing.

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
use crate::db::connections::Connection;
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

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /connections/connect/{provider}`: the owner connects an account of their own.
pub async fn start_owner(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let provider = Provider::parse(&provider)?;
    begin(
        &state,
        provider,
        Starter {
            owner: user.id,
            binding: &user.csrf,
            link: None,
            reconnect: None,
        },
    )
    .await
}

/// `POST /connections/{id}/reconnect`: the owner logs in again for one of their connections.
pub async fn start_reconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let c = stored::get_owned(&state.db, user.id, super::path_id(&id)?).await?;
    let provider = provider_of(&c);
    begin(
        &state,
        provider,
        Starter {
            owner: user.id,
            binding: &user.csrf,
            link: None,
            reconnect: Some(c.id),
        },
    )
    .await
}

fn provider_of(c: &Connection) -> Provider {
    match c.login_kind() {
        crate::db::connections::LoginKind::Instagram => Provider::Instagram,
        crate::db::connections::LoginKind::Facebook => Provider::Facebook,
    }
}

// ---- client links ----------------------------------------------------------------------------

/// A usable link by its secret, or the page explaining why not.
async fn usable_link(
    state: &AppState,
    token: &str,
) -> Result<Result<ConnectLink, Response>, AppError> {
    let now = state.clock.now();
    let link = if token.len() > 200 {
        None
    } else {
        link_store::find_by_token_hash(&state.db, &hash_token(token)).await?
    };
    let Some(link) = link else {
        return Ok(Err(problem(
            StatusCode::NOT_FOUND,
            "This link does not work",
            "The link is not valid. Check that it was copied in full, or ask the person who sent it for a new one.",
            None,
        )?));
    };
    if let Some(why) = link.unusable(now) {
        let message = match why {
            Unusable::Revoked => {
                "The person who sent this link has withdrawn it. Ask them for a new one."
            }
            Unusable::Expired => "This link has expired. Ask the person who sent it for a new one.",
            Unusable::AlreadyUsed => {
                "This link has already been used. If you need to connect again, ask for a new link."
            }
        };
        return Ok(Err(problem(
            StatusCode::GONE,
            "This link can no longer be used",
            message,
            None,
        )?));
    }
    Ok(Ok(link))
}

#[derive(Template)]
#[template(path = "link_landing.html")]
struct LinkLanding {
    page: Page,
    token: String,
    requester: String,
    label: String,
    reconnect_username: Option<String>,
    reconnect_is_facebook: bool,
    expires: String,
}

/// `GET /l/{token}`: the client sees who asks, what will be granted, and how to log in.
pub async fn link_landing(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let link = match usable_link(&state, &token).await? {
        Ok(link) => link,
        Err(page) => return Ok(page),
    };
    let requester = users::get(&state.db, link.owner_id).await?.email;
    let reconnect = match link.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    // The cookie doubles as this page's CSRF token (double submit) and binds the login.
    let browser = read_our_cookie(&state.config, &headers, LINK_COOKIE)
        .filter(|v| crate::accounts::csrf::is_well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let page = LinkLanding {
        page: Page::public("Connect your Instagram account", browser.clone()),
        token,
        requester,
        label: link.label.clone(),
        reconnect_is_facebook: reconnect
            .as_ref()
            .is_some_and(|c| provider_of(c) == Provider::Facebook),
        reconnect_username: reconnect.map(|c| c.username),
        expires: crate::clock::format_utc(link.expires_at),
    };
    let mut response = render(&page)?;
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(&state.config, LINK_COOKIE, &browser, STATE_TTL_SECS * 4),
    );
    Ok(response)
}

/// `POST /l/{token}/{provider}`: the client starts the login.
pub async fn link_start(
    State(state): State<AppState>,
    Path((token, provider)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let provider = Provider::parse(&provider)?;
    let link = match usable_link(&state, &token).await? {
        Ok(link) => link,
        Err(page) => return Ok(page),
    };
    let browser = read_our_cookie(&state.config, &headers, LINK_COOKIE).unwrap_or("");
    if browser.is_empty() || !tokens_match(browser, &form.csrf) {
        return problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This page has expired or your browser blocks cookies. Open the link again and press the button once more.",
            Some(&format!("/l/{token}")),
        );
    }
    begin(
        &state,
        provider,
        Starter {
            owner: link.owner_id,
            binding: browser,
            link: Some(&link),
            reconnect: link.connection_id,
        },
    )
    .await
}

// ---- Meta's redirect back ------------------------------------------------------------------------

/// `GET /connect/{provider}/callback`: Meta sends the person back with a code (or an error).
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    let provider = Provider::parse(&provider)?;
    let query = query.unwrap_or_default();
    let now = state.clock.now();
    let parsed = parse_callback(&query);
    let state_value = match &parsed {
        Ok(cb) => cb.state.clone(),
        Err(_) => url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned()),
    };
    let Some(state_value) = state_value.filter(|s| !s.is_empty() && s.len() <= 200) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "This login cannot be completed",
            "The address is missing its login details. Start the connection again.",
            None,
        );
    };
    let state_hash = hash_token(&state_value);
    let not_usable = |message: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "This login cannot be completed",
            message,
            None,
        )
    };
    let started = match oauth_states::lookup(&state.db, &state_hash).await? {
        None => {
            return not_usable(
                "This login was not started here, or its address was changed. Start the connection again.",
            );
        }
        Some(s) if s.used_at.is_some() => {
            return not_usable(
                "This login was already completed. If the account does not show up, start the connection again.",
            );
        }
        Some(s) if s.expires_at <= now => {
            return not_usable(
                "This login took too long (more than 15 minutes). Start the connection again.",
            );
        }
        Some(s) => s,
    };
    let link = match started.link_id {
        Some(id) => Some(link_store::get(&state.db, id).await?),
        None => None,
    };
    // The browser must be the one that started the login. A refused attempt does not spend the
    // state, so whoever saw the address cannot spoil the real login.
    let bound = match &link {
        None => user.as_ref().is_some_and(|u| {
            u.id == started.owner_id && hash_token(&u.csrf) == started.binding_hash
        }),
        Some(_) => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .is_some_and(|c| hash_token(c) == started.binding_hash),
    };
    if !bound || Provider::parse(&started.provider)? != provider {
        return problem(
            StatusCode::FORBIDDEN,
            "This login cannot be completed",
            "This login was started in another browser or session, so it was not used. Start the connection again from this browser.",
            None,
        );
    }
    // Single use, even when two requests race here.
    if oauth_states::consume(&state.db, &state_hash, now)
        .await?
        .is_none()
    {
        return not_usable(
            "This login was already completed. If the account does not show up, start the connection again.",
        );
    }
    let flow = Flow {
        state: &state,
        owner: started.owner_id,
        user: user.as_ref(),
        link: link.as_ref(),
        reconnect: started.connection_id,
        binding: &started.binding_hash,
    };
    let callback = match parsed {
        Ok(cb) => cb,
        Err(e) => {
            let message = match &e.failure {
                Failure::Denied { .. } => format!(
                    "You cancelled the {} login, so nothing was connected.",
                    provider.name()
                ),
                _ => "Meta did not send the login back complete. Please try again.".to_owned(),
            };
            return flow.problem("Nothing was connected", &message);
        }
    };
    if link.as_ref().is_some_and(|l| l.unusable(now).is_some()) {
        return flow.problem(
            "This link can no longer be used",
            "The link expired or was withdrawn while you were logging in. Ask for a new one.",
        );
    }
    let meta = &state.meta;
    let redirect = redirect_uri(&state, provider);
    let expect = match started.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    let connected = match provider {
        Provider::Instagram => {
            let token = match meta
                .exchange_instagram_code(&callback.code, &redirect)
                .await
            {
                Ok(short) => meta.obtain_long_lived(&short.access_token).await,
                Err(e) => Err(e),
            };
            match token {
                Ok(token) => {
                    connections::connect_instagram(
                        &state,
                        started.owner_id,
                        &token,
                        expect.as_ref(),
                        flow.actor(),
                    )
                    .await
                }
                Err(e) => Err(ConnectError::Meta(e)),
            }
        }
        Provider::Facebook => {
            let pages = async {
                let short = meta
                    .exchange_facebook_code(&callback.code, &redirect)
                    .await?;
                let long = meta
                    .exchange_facebook_long_lived(&short.access_token)
                    .await?;
                let info = meta.debug_token(&long.access_token).await?;
                let pages = meta.facebook_pages(&long.access_token).await?;
                Ok::<_, crate::meta::MetaError>((info.user_id, pages))
            }
            .await;
            match pages {
                Ok((fb_user_id, pages)) => {
                    return flow
                        .pages_chosen_or_offered(fb_user_id, pages, expect.as_ref())
                        .await;
                }
                Err(e) => Err(ConnectError::Meta(e)),
            }
        }
    };
    flow.finish(connected.map(|c| vec![c])).await
}

/// The context of one login being completed.
struct Flow<'a> {
    state: &'a AppState,
    owner: UserId,
    /// The owner's session, for owner flows (checked to be the one that started the login).
    user: Option<&'a CurrentUser>,
    link: Option<&'a ConnectLink>,
    reconnect: Option<ConnectionId>,
    binding: &'a str,
}

impl Flow<'_> {
    fn actor(&self) -> Actor {
        if self.link.is_some() {
            Actor::Client
        } else {
            Actor::User
        }
    }

    fn problem(&self, title: &str, message: &str) -> Result<Response, AppError> {
        let again = match self.link {
            Some(_) => None,
            None => Some("/connections"),
        };
        problem(StatusCode::BAD_REQUEST, title, message, again)
    }

    /// After a Facebook login: connect the one eligible Page, or let the person pick.
    async fn pages_chosen_or_offered(
        &self,
        fb_user_id: Option<String>,
        pages: Vec<FacebookPage>,
        expect: Option<&Connection>,
    ) -> Result<Response, AppError> {
        let eligible: Vec<FacebookPage> = pages
            .into_iter()
            .filter(|p| p.instagram_business_account.is_some())
            .filter(|p| {
                expect.is_none_or(|c| {
                    p.instagram_business_account.as_deref() == Some(c.ig_user_id.as_str())
                })
            })
            .collect();
        match eligible.len() {
            0 => self.problem(
                "No Instagram account found",
                match expect {
                    Some(_) => "None of the Facebook Pages you shared is linked to the Instagram account this link is for. Log in again and share that Page.",
                    None => "None of the Facebook Pages you shared has an Instagram professional account linked to it. Link one in the Instagram app (Settings → Account type and tools), or share another Page.",
                },
            ),
            1 => {
                let result = connections::connect_facebook_page(self.state, self.owner, &eligible[0], fb_user_id, expect, self.actor()).await;
                self.finish(result.map(|c| vec![c])).await
            }
            _ => self.offer_pages(fb_user_id, eligible).await,
        }
    }

    async fn offer_pages(
        &self,
        fb_user_id: Option<String>,
        pages: Vec<FacebookPage>,
    ) -> Result<Response, AppError> {
        let now = self.state.clock.now();
        let id = random_token();
        let stored_pages: Vec<StoredPage> = pages
            .into_iter()
            .map(|p| StoredPage {
                id: p.id,
                name: p.name,
                ig: p.instagram_business_account,
                token: p.access_token.expose().to_owned(),
            })
            .collect();
        let json = serde_json::to_string(&stored_pages).map_err(anyhow::Error::from)?;
        let id_hash = hash_token(&id);
        page_choices::insert(
            &self.state.db,
            &page_choices::PageChoice {
                pages_sealed: self
                    .state
                    .cipher
                    .seal(&json, &format!("page-choice:{id_hash}")),
                id_hash,
                owner_id: self.owner,
                binding_hash: self.binding.to_owned(),
                link_id: self.link.map(|l| l.id),
                connection_id: self.reconnect,
                fb_user_id,
                created_at: now,
                expires_at: now + CHOICE_TTL_SECS,
            },
        )
        .await?;
        Ok(see_other(&format!("/connect/facebook/pages/{id}")))
    }

    async fn finish(
        &self,
        result: Result<Vec<Connection>, ConnectError>,
    ) -> Result<Response, AppError> {
        let connected = match result {
            Ok(c) => c,
            Err(ConnectError::Db(e)) => return Err(e.into()),
            Err(ConnectError::Meta(e)) => {
                tracing::warn!(error = %e, "a connection login failed at Meta");
                return self.problem("Nothing was connected", "Instagram did not accept the login just now. Please try again in a few minutes.");
            }
            Err(e) => return self.problem("Nothing was connected", &capitalize(&e.to_string())),
        };
        let names = connected
            .iter()
            .map(|c| format!("@{}", c.username))
            .collect::<Vec<_>>()
            .join(", ");
        match self.link {
            Some(link) => {
                let first_use =
                    link_store::record_use(&self.state.db, link, self.state.clock.now()).await?;
                if !first_use {
                    tracing::info!(link = %link.id, "a single-use link was completed twice at once");
                }
                let requester = users::get(&self.state.db, link.owner_id).await?.email;
                render(&LinkDone {
                    page: Page::public("Connected", String::new()),
                    names,
                    requester,
                })
            }
            None => {
                // The owner is back in their dashboard.
                let verb = if self.reconnect.is_some() {
                    "Reconnected"
                } else {
                    "Connected"
                };
                if let Some(user) = self.user {
                    user.flash(self.state, &format!("{verb} {names}.")).await?;
                }
                Ok(see_other("/connections"))
            }
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPage {
    id: String,
    name: String,
    ig: Option<String>,
    token: String,
}

#[derive(Template)]
#[template(path = "link_done.html")]
struct LinkDone {
    page: Page,
    names: String,
    requester: String,
}

#[derive(Template)]
#[template(path = "page_picker.html")]
struct PagePicker {
    page: Page,
    choice: String,
    options: Vec<(String, String)>,
}

async fn load_choice(
    state: &AppState,
    choice: &str,
    headers: &HeaderMap,
    user: Option<&CurrentUser>,
) -> Result<Result<(page_choices::PageChoice, Vec<StoredPage>), Response>, AppError> {
    let now = state.clock.now();
    let expired = || {
        problem(
            StatusCode::GONE,
            "Please start again",
            "This choice has expired (after 30 minutes) or was already made. Start the connection again.",
            None,
        )
    };
    if choice.len() > 200 {
        return Ok(Err(expired()?));
    }
    let Some(stored_choice) = page_choices::get(&state.db, &hash_token(choice), now).await? else {
        return Ok(Err(expired()?));
    };
    let bound = match stored_choice.link_id {
        None => user.is_some_and(|u| {
            u.id == stored_choice.owner_id && hash_token(&u.csrf) == stored_choice.binding_hash
        }),
        Some(_) => read_our_cookie(&state.config, headers, LINK_COOKIE)
            .is_some_and(|c| hash_token(c) == stored_choice.binding_hash),
    };
    if !bound {
        return Ok(Err(problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This choice belongs to another browser or session.",
            None,
        )?));
    }
    let json = state
        .cipher
        .open(
            &stored_choice.pages_sealed,
            &format!("page-choice:{}", stored_choice.id_hash),
        )
        .map_err(|e| AppError::Internal(anyhow::anyhow!("page choice does not open: {e}")))?;
    let pages: Vec<StoredPage> = serde_json::from_str(&json).map_err(anyhow::Error::from)?;
    Ok(Ok((stored_choice, pages)))
}

/// `GET /connect/facebook/pages/{choice}`: which Pages' Instagram accounts to connect.
pub async fn page_picker(
    State(state): State<AppState>,
    Path(choice): Path<String>,
    headers: HeaderMap,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    let (_, pages) = match load_choice(&state, &choice, &headers, user.as_ref()).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let csrf = match &user {
        Some(u) => u.csrf.clone(),
        None => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .unwrap_or("")
            .to_owned(),
    };
    let mut page = Page::public("Choose the accounts to connect", csrf);
    if let Some(u) = &user {
        page = Page {
            flash: None,
            ..Page::for_user(u, "Choose the accounts to connect")
        };
    }
    render(&PagePicker {
        page,
        choice,
        options: pages.into_iter().map(|p| (p.id, p.name)).collect(),
    })
}

/// The picker's answer: `page_id` repeated, plus `csrf`.
#[derive(Deserialize)]
pub struct PickedPages {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    page_id: Vec<String>,
}

/// `POST /connect/facebook/pages/{choice}`.
pub async fn pick_pages(
    State(state): State<AppState>,
    Path(choice): Path<String>,
    headers: HeaderMap,
    user: Option<CurrentUser>,
    RawForm(picked): RawForm,
) -> Result<Response, AppError> {
    let (stored_choice, pages) = match load_choice(&state, &choice, &headers, user.as_ref()).await?
    {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let expected_csrf = match (&stored_choice.link_id, &user) {
        (None, Some(u)) => u.csrf.clone(),
        _ => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .unwrap_or("")
            .to_owned(),
    };
    if !tokens_match(&expected_csrf, &picked.csrf) {
        return problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This form has expired. Reload the page and choose again.",
            None,
        );
    }
    let chosen: Vec<&StoredPage> = pages
        .iter()
        .filter(|p| picked.page_id.contains(&p.id))
        .collect();
    if chosen.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Nothing was chosen",
            "Tick at least one account, then press Connect.",
            None,
        );
    }
    if !page_choices::take(&state.db, &stored_choice.id_hash).await? {
        return problem(
            StatusCode::GONE,
            "Already done",
            "These accounts were already connected from this page.",
            None,
        );
    }
    let link = match stored_choice.link_id {
        Some(id) => Some(link_store::get(&state.db, id).await?),
        None => None,
    };
    let flow = Flow {
        state: &state,
        owner: stored_choice.owner_id,
        user: user.as_ref(),
        link: link.as_ref(),
        reconnect: stored_choice.connection_id,
        binding: &stored_choice.binding_hash,
    };
    let expect = match stored_choice.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    let mut connected = Vec::new();
    for p in chosen {
        let page = FacebookPage {
            id: p.id.clone(),
            name: p.name.clone(),
            access_token: AccessToken::new(p.token.clone()),
            instagram_business_account: p.ig.clone(),
        };
        match connections::connect_facebook_page(
            &state,
            stored_choice.owner_id,
            &page,
            stored_choice.fb_user_id.clone(),
            expect.as_ref(),
            flow.actor(),
        )
        .await
        {
            Ok(c) => connected.push(c),
            Err(e) => return flow.finish(Err(e)).await,
        }
    }
    flow.finish(Ok(connected)).await
}

/// A form whose fields may repeat (`page_id=1&page_id=2`), which `axum::Form` cannot read into a
/// `Vec`.
pub struct RawForm(PickedPages);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawForm {
    type Rejection = AppError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
        let mut picked = PickedPages {
            csrf: String::new(),
            page_id: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(&body) {
            match key.as_ref() {
                "csrf" => picked.csrf = value.into_owned(),
                "page_id" => picked.page_id.push(value.into_owned()),
                _ => {}
            }
        }
        Ok(RawForm(picked))
    }
}

#[derive(Template)]
#[template(path = "connect_problem.html")]
struct Problem<'a> {
    page: Page,
    message: &'a str,
    again: Option<&'a str>,
}

/// A page explaining why nothing happened, and what to do.
fn problem(
    status: StatusCode,
    title: &str,
    message: &str,
    again: Option<&str>,
) -> Result<Response, AppError> {
    let mut response = render(&Problem {
        page: Page::public(title, String::new()),
        message,
        again,
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
