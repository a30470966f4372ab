//! Connections: connecting and reconnecting Instagram accounts, and their lifecycle.
//!
//! [`connect`] turns a completed login into a stored connection (the same one when the account
//! reconnects). [`lifecycle`] checks tokens and applies Meta's answers as status changes, audit
//! rows and incidents; [`policy`] holds the timing rules. Tokens are sealed before they are
//! stored and opened only here.

pub mod lifecycle;
pub mod policy;

use crate::app::AppState;
use crate::db::connections::{self, Connection, LoginKind, LoginResult, Status};
use crate::db::{DbError, audit, incidents, jobs};
use crate::ids::{ConnectionId, UserId};
use crate::meta::{AccessToken, ExpiringToken, FacebookPage, MetaError};

/// Why a login could not become a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Personal accounts can log in, but Meta's API serves no posts for them.
    #[error(
        "@{username} is a personal Instagram account. Instagram only lets apps show posts of \
         professional accounts: switch it to a Creator or Business account in the Instagram app \
         (Settings → Account type and tools), then connect again. It is free and takes a minute."
    )]
    PersonalAccount { username: String },
    /// The Facebook Page has no Instagram professional account linked.
    #[error("the Facebook Page \"{page}\" has no Instagram professional account linked to it")]
    NoInstagramAccount { page: String },
    /// A reconnect logged in to a different account than the one it was meant to renew.
    #[error(
        "you logged in as @{got}, but this link is for reconnecting @{expected}. Log out of \
         Instagram (or use a private window), then log in as @{expected}."
    )]
    WrongAccount { expected: String, got: String },
    #[error("Meta refused: {0}")]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Connects (or reconnects) the Instagram Login account behind `token` for `owner`.
/// With `expect`, the login must be for that connection's account (a reconnect).
pub async fn connect_instagram(
    state: &AppState,
    owner: UserId,
    token: &ExpiringToken,
    expect: Option<&Connection>,
    actor: Actor,
) -> Result<Connection, ConnectError> {
    let profile = state.meta.instagram_profile(&token.access_token).await?;
    let username = profile
        .username
        .clone()
        .unwrap_or_else(|| profile.professional_id().to_owned());
    if profile.is_personal() {
        return Err(ConnectError::PersonalAccount { username });
    }
    if let Some(expected) = expect
        && expected.ig_user_id != profile.professional_id()
    {
        return Err(ConnectError::WrongAccount {
            expected: expected.username.clone(),
            got: username,
        });
    }
    let login = LoginResult {
        owner_id: owner,
        ig_user_id: profile.professional_id().to_owned(),
        app_scoped_id: Some(profile.id.clone()).filter(|id| id != profile.professional_id()),
        fb_user_id: None,
        username,
        display_name: profile.name.clone(),
        account_type: profile.account_type.clone(),
        profile_picture_url: profile.profile_picture_url.clone(),
        login_kind: LoginKind::Instagram,
        fb_page_id: None,
        fb_page_name: None,
        token_issued_at: state.clock.now(),
        token_expires_at: token.expires_at,
        data_access_expires_at: None,
    };
    Ok(connect(state, &login, &token.access_token, actor).await?)
}

/// Connects (or reconnects) the Instagram account linked to a Facebook Page, using the Page
/// token (which does not expire). `fb_user_id` is the Facebook user who logged in (Meta's
/// callbacks name them).
pub async fn connect_facebook_page(
    state: &AppState,
    owner: UserId,
    page: &FacebookPage,
    fb_user_id: Option<String>,
    expect: Option<&Connection>,
    actor: Actor,
) -> Result<Connection, ConnectError> {
    let ig_user_id = page.instagram_business_account.clone().ok_or_else(|| {
        ConnectError::NoInstagramAccount {
            page: page.name.clone(),
        }
    })?;
    if let Some(expected) = expect
        && expected.ig_user_id != ig_user_id
    {
        return Err(ConnectError::WrongAccount {
            expected: expected.username.clone(),
            got: page.name.clone(),
        });
    }
    let profile = state
        .meta
        .facebook_instagram_profile(&page.access_token, &ig_user_id)
        .await?;
    let info = state.meta.debug_token(&page.access_token).await?;
    let login = LoginResult {
        owner_id: owner,
        ig_user_id: ig_user_id.clone(),
        app_scoped_id: None,
        fb_user_id: fb_user_id.or(info.user_id.clone()),
        username: profile.username.clone().unwrap_or(ig_user_id),
        display_name: profile.name.clone(),
        account_type: profile.account_type.clone(),
        profile_picture_url: profile.profile_picture_url.clone(),
        login_kind: LoginKind::Facebook,
        fb_page_id: Some(page.id.clone()),
        fb_page_name: Some(page.name.clone()),
        token_issued_at: state.clock.now(),
        token_expires_at: info.expires_at,
        data_access_expires_at: info.data_access_expires_at,
    };
    Ok(connect(state, &login, &page.access_token, actor).await?)
}

/// The job kind of a connection's lifecycle checks.
pub const LIFECYCLE_JOB: &str = "lifecycle";

/// Associated data binding a sealed token to its connection row.
fn token_context(id: ConnectionId) -> String {
    format!("connection:{id}")
}

/// Opens a connection's token. A token that does not open (its key was removed from the config)
/// is reported as a request error, so the connection degrades and an operator sees why.
pub fn open_token(state: &AppState, c: &Connection) -> Result<AccessToken, MetaError> {
    let sealed = c
        .token_sealed
        .as_deref()
        .ok_or_else(|| MetaError::refused("token store", "the connection's token was deleted"))?;
    state
        .cipher
        .open(sealed, &token_context(c.id))
        .map(AccessToken::new)
        .map_err(|e| {
            MetaError::refused(
                "token store",
                format!("the stored token cannot be used: {e}"),
            )
        })
}

/// Who caused a connection event, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Worker,
    User,
    Client,
    Meta,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Worker => "worker",
            Actor::User => "user",
            Actor::Client => "client",
            Actor::Meta => "meta",
        }
    }
}

/// Stores the account a login produced: creates the connection or updates the owner's existing
/// one for the same Instagram account (same id, so widgets keep working), seals the token, marks
/// it active, closes any incident, and schedules its lifecycle checks.
pub async fn connect(
    state: &AppState,
    login: &LoginResult,
    token: &AccessToken,
    actor: Actor,
) -> Result<Connection, DbError> {
    let now = state.clock.now();
    let existing =
        connections::find_by_ig_user(&state.db, login.owner_id, &login.ig_user_id).await?;
    let stored = connections::upsert_from_login(&state.db, login, now).await?;
    let sealed = state.cipher.seal(token.expose(), &token_context(stored.id));
    connections::store_token(
        &state.db,
        stored.id,
        &sealed,
        login.token_issued_at,
        login.token_expires_at,
        now,
    )
    .await?;
    let previous = existing.as_ref().map(|c| c.status());
    let health = connections::Health {
        status: Status::Active,
        reason: None,
        status_changed_at: if previous == Some(Status::Active) {
            stored.status_changed_at
        } else {
            now
        },
        degraded_since: None,
        consecutive_failures: 0,
        backoff_until: None,
        ..connections::Health::of(&stored)
    };
    connections::store_health(&state.db, stored.id, &health, now).await?;
    // The login itself just proved the token works.
    connections::mark_checked(
        &state.db,
        stored.id,
        false,
        login.data_access_expires_at,
        now,
    )
    .await?;
    if existing.is_some() {
        // A reconnect after app removal keeps the data: forget the pending purge.
        connections::clear_deauthorization(&state.db, stored.id, now).await?;
    }
    let detail = format!(
        "@{} via {}",
        login.username,
        match login.login_kind {
            connections::LoginKind::Instagram => "Instagram login",
            connections::LoginKind::Facebook => "Facebook login (business connection)",
        }
    );
    audit::record(
        &state.db,
        stored.id,
        now,
        &audit::NewEntry {
            event: if existing.is_some() {
                "reconnected"
            } else {
                "connected"
            },
            from_status: previous.map(Status::as_str),
            to_status: Some(Status::Active.as_str()),
            detail: Some(&detail),
            actor: actor.as_str(),
            ..Default::default()
        },
    )
    .await?;
    if let Some(closed) = incidents::close(&state.db, stored.id, now).await? {
        tracing::info!(connection = %stored.id, incident = %closed.id, "incident resolved by reconnect");
    }
    let connected = connections::get(&state.db, stored.id).await?;
    let first_check = state
        .policy()
        .next_due(&connected, now, rand::random())
        .unwrap_or(now);
    jobs::schedule(
        &state.db,
        LIFECYCLE_JOB,
        &stored.id.to_string(),
        first_check,
        now,
    )
    .await?;
    Ok(connected)
}

/// Removes a connection and everything stored about it.
pub async fn disconnect(state: &AppState, id: ConnectionId) -> Result<bool, DbError> {
    jobs::cancel_for_subject(&state.db, &id.to_string()).await?;
    connections::delete(&state.db, id).await
}

/// Makes the connection's next check due now ("Refresh now" in the dashboard, or the CLI).
pub async fn check_soon(state: &AppState, c: &Connection, actor: Actor) -> Result<(), DbError> {
    let now = state.clock.now();
    jobs::schedule(&state.db, LIFECYCLE_JOB, &c.id.to_string(), now, now).await?;
    audit::record(
        &state.db,
        c.id,
        now,
        &audit::NewEntry {
            event: "check_requested",
            actor: actor.as_str(),
            ..Default::default()
        },
    )
    .await
}
