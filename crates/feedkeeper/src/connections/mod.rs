//! Connections: connecting and reconnecting Instagram accounts, and their lifecycle.
//!
//! [`connect`] turns a completed login into a stored connection (the same one when the account
//! reconnects). [`lifecycle`] checks tokens and applies Meta's answers as status changes, audit
//! rows and incidents; [`policy`] holds the timing rules. Tokens are sealed before they are
//! stored and opened only here.

pub mod lifecycle;
pub mod policy;

use crate::clock::wall_ms;
use crate::db::connections::{
    self, ClientOrigin, Connection, LoginKind, LoginResult, RowLock, Status,
};
use crate::db::{DbError, audit, incidents, jobs, meta_pauses, widget_changes};
use crate::failpoint;
use crate::ids::{ConnectionId, UserId};
use crate::meta::{AccessToken, ExpiringToken, FacebookPage, MetaError};
use crate::state::AppState;

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
        "you logged in as @{got}, but this login was to reconnect @{expected}. Log out of \
         Instagram (or use a private window), then log in as @{expected}."
    )]
    WrongAccount { expected: String, got: String },
    #[error("Meta refused: {0}")]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Connects (or reconnects) the Instagram Login account behind `token` for `owner`.
/// With `expect`, the login must be for that connection's account (a reconnect); with `client`,
/// it came through that client link.
pub async fn connect_instagram(
    state: &AppState,
    owner: UserId,
    token: &ExpiringToken,
    expect: Option<&Connection>,
    actor: Actor,
    client: Option<ClientOrigin>,
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
        client,
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
    client: Option<ClientOrigin>,
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
        client,
    };
    Ok(connect(state, &login, &page.access_token, actor).await?)
}

/// The job kind of a connection's lifecycle checks (subject: the connection id).
pub const LIFECYCLE_JOB: &str = "lifecycle";
/// The job kind that deletes a deauthorized connection's data after the grace period.
pub const PURGE_JOB: &str = "purge";
/// The job kind that fetches a connection's profile and posts (`feeds::sync`).
pub const SYNC_JOB: &str = "sync";

/// Associated data binding a sealed token to its connection row.
pub fn token_context(id: ConnectionId) -> String {
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
    /// Someone at the server's command line.
    Operator,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Worker => "worker",
            Actor::User => "user",
            Actor::Client => "client",
            Actor::Meta => "meta",
            Actor::Operator => "operator",
        }
    }
}

/// Stores the account a login produced, in one transaction: creates the connection or updates
/// the owner's existing one for the same Instagram account (same id, so widgets keep working),
/// seals the token, marks it active, closes any incident, forgets a pending purge, and schedules
/// its lifecycle checks. The version bump makes any check of the old token that is still in
/// flight discard its result.
pub async fn connect(
    state: &AppState,
    login: &LoginResult,
    token: &AccessToken,
    actor: Actor,
) -> Result<Connection, DbError> {
    // A login is spent once Meta answered: a transaction the database ends as a conflict is
    // run again rather than failing the person's connect.
    crate::db::retry_conflicts("connect", || connect_once(state, login, token, actor)).await
}

async fn connect_once(
    state: &AppState,
    login: &LoginResult,
    token: &AccessToken,
    actor: Actor,
) -> Result<Connection, DbError> {
    let mut tx = state.db.begin().await?;
    let now = state.clock.now();
    // Lock order: the connection's row first (a new account's row is made, and so held, by
    // the upsert), then its job rows in kind order.
    let existing = connections::lock_by_ig_user(&mut tx, login.owner_id, &login.ig_user_id).await?;
    let stored = connections::upsert_from_login(&mut tx, login, now).await?;
    failpoint::hit(failpoint::CONNECT_TX, &failpoint::key(state, stored.id)).await;
    let sealed = state.cipher.seal(token.expose(), &token_context(stored.id));
    connections::store_token(
        &mut tx,
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
    connections::store_health(&mut tx, stored.id, &health, now).await?;
    // The login itself just proved the token works.
    connections::mark_checked(&mut tx, stored.id, false, login.data_access_expires_at, now).await?;
    if existing.is_some() {
        // A reconnect after app removal keeps the data (its pending purge goes below).
        connections::clear_deauthorization(&mut tx, stored.id, now).await?;
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
        &mut tx,
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
    let connected = connections::get(&mut tx, stored.id).await?;
    if let Some(closed) = incidents::close(&mut tx, stored.id, now).await? {
        tracing::info!(connection = %stored.id, incident = %closed.id, "incident resolved by reconnect");
        incident_changed(
            &mut tx,
            state,
            &connected,
            crate::mail::notices::Change::Closed(&closed),
            true,
            now,
        )
        .await?;
    }
    let first_check = state
        .policy()
        .next_due(&connected, now, rand::random())
        .unwrap_or(now);
    let subject = stored.id.to_string();
    jobs::schedule(&mut tx, LIFECYCLE_JOB, &subject, first_check, now).await?;
    if existing.is_some() {
        jobs::cancel(&mut tx, PURGE_JOB, &subject).await?;
    }
    // Posts at once: a new (or renewed) login should show its feed without waiting.
    jobs::schedule(&mut tx, SYNC_JOB, &subject, now, now).await?;
    widget_changes::record_for(&mut tx, stored.id).await?;
    tx.commit().await?;
    Ok(connected)
}

/// What follows an incident's change, in its transaction (which holds `c`'s row): the mail
/// notices (`mail::notices`) and the webhook events (`webhooks`). `new_kind`: it opened, or
/// its kind changed (not only its reason).
pub async fn incident_changed(
    tx: &mut crate::db::Tx,
    state: &AppState,
    c: &Connection,
    change: crate::mail::notices::Change<'_>,
    new_kind: bool,
    now: i64,
) -> Result<(), DbError> {
    use crate::mail::notices::Change;
    // Receivers hear each kind once per incident, and "restored" exactly when they heard
    // something (an incident that went from needing a reconnect to merely having trouble
    // still ends with "restored").
    let incident = match &change {
        Change::Opened(i) | Change::Closed(i) => *i,
    };
    let announced = incidents::announced(&mut *tx, incident.id).await?;
    let event = match &change {
        Change::Opened(_) if !new_kind => None,
        Change::Opened(i) => {
            crate::webhooks::incident_event(&i.kind).filter(|e| announced.as_deref() != Some(*e))
        }
        Change::Closed(_) => announced.is_some().then_some(crate::webhooks::RESTORED),
    };
    if let Some(event) = event {
        let data = crate::webhooks::connection_data(c);
        crate::webhooks::emit(tx, c.owner_id, event, data, now).await?;
        if event != crate::webhooks::RESTORED {
            incidents::set_announced(&mut *tx, incident.id, event).await?;
        }
    }
    crate::mail::notices::on_incident(tx, state, c, change, now).await
}

/// Removes a connection and everything stored about it, its jobs included, in one transaction.
pub async fn disconnect(state: &AppState, id: ConnectionId) -> Result<bool, DbError> {
    crate::db::retry_conflicts("disconnect", || async {
        let mut tx = state.db.begin().await?;
        // Lock order: the connection's row first, then its jobs.
        if connections::lock(&mut tx, id, RowLock::Delete)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        failpoint::hit(failpoint::DISCONNECT_TX, &failpoint::key(state, id)).await;
        jobs::cancel_for_subject(&mut tx, &id.to_string()).await?;
        crate::mail::notices::connection_deleted(&mut tx, id).await?;
        let shown = widget_changes::showing(&mut tx, id).await?;
        let deleted = connections::delete(&mut tx, id).await?;
        widget_changes::record(&mut tx, &shown).await?;
        tx.commit().await?;
        Ok(deleted)
    })
    .await
}

/// Meta told us the person removed the app: the connection needs a reconnect at once (with an
/// incident), and its data is deleted after the grace period unless they reconnect. One
/// transaction, holding the connection's row: Meta's word overrides any check in flight (whose
/// result then finds the version moved and is discarded).
pub async fn deauthorize(state: &AppState, id: ConnectionId) -> Result<(), DbError> {
    crate::db::retry_conflicts("deauthorize", || async {
        let mut tx = state.db.begin().await?;
        let Some(c) = connections::lock(&mut tx, id, RowLock::Change).await? else {
            return Err(DbError::NotFound);
        };
        let now = state.clock.now();
        let removal = MetaError::reported(
            "meta deauthorize callback",
            190,
            Some(458),
            "The account holder removed the app from their account (Meta deauthorize callback).",
            now,
        );
        let outcome = lifecycle::Outcome::Failed(removal);
        // Read under the lock, so the version cannot have moved.
        if lifecycle::apply_in(&mut tx, state, &c, &outcome, Actor::Meta)
            .await?
            .is_none()
        {
            return Err(DbError::Conflict(
                "the connection changed under its lock".into(),
            ));
        }
        connections::mark_deauthorized(&mut tx, id, now).await?;
        let purge_at = now + state.policy().deauthorized_grace;
        jobs::schedule(&mut tx, PURGE_JOB, &id.to_string(), purge_at, now).await?;
        widget_changes::record_for(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    })
    .await
}

/// Deletes a deauthorized connection's data once the grace period has passed, under the purge
/// job's lease. Returns when to look again (`None`: done, or nothing to do any more).
pub async fn purge_if_due(
    state: &AppState,
    id: ConnectionId,
    lease: &jobs::Lease,
) -> Result<Option<i64>, DbError> {
    crate::db::retry_conflicts("purge", || purge_once(state, id, lease)).await
}

async fn purge_once(
    state: &AppState,
    id: ConnectionId,
    lease: &jobs::Lease,
) -> Result<Option<i64>, DbError> {
    let mut tx = state.db.begin().await?;
    // Lock order: the connection's row, then the fence, then its other jobs.
    let Some(c) = connections::lock(&mut tx, id, RowLock::Change).await? else {
        return Ok(None);
    };
    if !jobs::is_held(&mut tx, lease).await? {
        return Ok(None);
    }
    failpoint::hit(failpoint::PURGE_TX, &failpoint::key(state, id)).await;
    let (Some(deauthorized_at), None) = (c.deauthorized_at, c.data_purged_at) else {
        // Reconnected since, or already purged.
        return Ok(None);
    };
    let now = state.clock.now();
    let due = deauthorized_at + state.policy().deauthorized_grace;
    if now < due {
        return Ok(Some(due));
    }
    connections::purge_data(&mut tx, id, now).await?;
    crate::db::posts::delete_all(&mut tx, id).await?;
    jobs::cancel(&mut tx, LIFECYCLE_JOB, &id.to_string()).await?;
    jobs::cancel(&mut tx, SYNC_JOB, &id.to_string()).await?;
    audit::record(
        &mut tx,
        id,
        now,
        &audit::NewEntry {
            event: "data_purged",
            detail: Some("the app was removed on Instagram and the grace period ended"),
            actor: Actor::Worker.as_str(),
            ..Default::default()
        },
    )
    .await?;
    widget_changes::record_for(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(connection = %id, "deauthorized connection's data deleted");
    Ok(None)
}

/// Makes every connection's check due now (an operator's "check everything"), through the
/// queue: the running nodes make them, honouring Meta's back-offs. Returns how many.
pub async fn check_all_soon(state: &AppState) -> Result<u64, DbError> {
    jobs::make_all_due(&state.db, LIFECYCLE_JOB, state.clock.now()).await
}

/// What "check now" did.
#[derive(Debug)]
pub enum CheckNow {
    /// Checked; what it found.
    Checked(Box<lifecycle::CheckReport>),
    /// The connection holds no token (its data was deleted): only a reconnect helps.
    NoToken,
    /// Meta asked us to slow down (for this account or the whole app) until then.
    Paused { until: i64 },
    /// Checked moments ago; the next manual check is possible at `until`.
    Cooldown { until: i64 },
    /// A check of this connection is running right now (on `node`).
    Busy { node: Option<String> },
}

/// "Check now" for the dashboard and the CLI: the same check the worker makes, through the same
/// queue: it takes the job's lease (so it never runs beside the worker's check), honours Meta's
/// back-offs and the app-wide pause, and runs at most once per cooldown per connection (so a
/// loop cannot spend the app's shared Meta budget).
///
/// It runs detached from the caller: once it has the job's lease, it goes to its end (a renewed
/// token stored, the lease handed back) even if the request that asked is cancelled meanwhile
/// (its timeout, a closed browser).
pub async fn check_now(
    state: &AppState,
    id: ConnectionId,
    actor: Actor,
    node: &str,
) -> Result<CheckNow, DbError> {
    let (state, node) = (state.clone(), node.to_owned());
    let check = tokio::spawn(async move { check_now_to_the_end(&state, id, actor, &node).await });
    match check.await {
        Ok(result) => result,
        Err(e) => Err(DbError::Other(sqlx::Error::Protocol(format!(
            "the check of connection {id} stopped: {e}"
        )))),
    }
}

async fn check_now_to_the_end(
    state: &AppState,
    id: ConnectionId,
    actor: Actor,
    node: &str,
) -> Result<CheckNow, DbError> {
    let c = connections::get(&state.db, id).await?;
    if c.token_sealed.is_none() {
        return Ok(CheckNow::NoToken);
    }
    let now = state.clock.now();
    let app_pause = meta_pauses::paused_until(&state.db, meta_pauses::APP, now).await?;
    if let Some(until) = c.backoff_until.filter(|&until| until > now).max(app_pause) {
        return Ok(CheckNow::Paused { until });
    }
    let subject = id.to_string();
    let lease_ms = (state.config.workers.lease_secs as i64).saturating_mul(1000);
    let claim = || {
        jobs::claim_one(
            &state.db,
            LIFECYCLE_JOB,
            &subject,
            node,
            wall_ms(),
            lease_ms,
        )
    };
    let mut claimed = claim().await?;
    if claimed.is_none() && jobs::get(&state.db, LIFECYCLE_JOB, &subject).await.is_err() {
        // No job (a connection from before jobs were kept for every token): make one.
        jobs::schedule(&state.db, LIFECYCLE_JOB, &subject, now, now).await?;
        claimed = claim().await?;
    }
    let Some(lease) = claimed.and_then(|job| job.lease()) else {
        let node = jobs::get(&state.db, LIFECYCLE_JOB, &subject)
            .await
            .ok()
            .and_then(|j| j.lease_owner);
        return Ok(CheckNow::Busy { node });
    };
    let cooldown = state.policy().manual_check_cooldown;
    if let Some(last) = connections::take_manual_check(&state.db, id, now, cooldown).await? {
        jobs::release(&state.db, &lease).await?;
        return Ok(CheckNow::Cooldown {
            until: last + cooldown,
        });
    }
    audit::record(
        &state.db,
        id,
        now,
        &audit::NewEntry {
            event: "check_requested",
            actor: actor.as_str(),
            ..Default::default()
        },
    )
    .await?;
    let report = match lifecycle::check_and_apply(state, id, &lease, lease_ms, actor).await {
        Ok(report) => report,
        Err(e) => {
            // Give the job back as it was; the worker will get to it.
            let _ = jobs::release(&state.db, &lease).await;
            return Err(e);
        }
    };
    if !jobs::finish(&state.db, &lease, report.next_due).await? {
        tracing::warn!(connection = %id, "check now: the job's lease was lost before it finished");
    }
    Ok(CheckNow::Checked(Box::new(report)))
}
