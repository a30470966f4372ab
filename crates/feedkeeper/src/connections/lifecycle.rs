//! One lifecycle check of one connection: ask Meta (refresh or probe), then apply the answer as
//! a status change, an audit row and an incident decision.
//!
//! Reconnect-needed reasons move the connection to `needs_reconnect` at once; transient trouble
//! makes it `degraded`, and a later success returns it to `active`. A token past its expiry is
//! treated as dead without calling Meta, and never refreshed. A configuration mistake (a wrong
//! app secret) is an operator problem and leaves the connection as it was.
//!
//! Every write is one transaction, fenced: it happens only if the row is still the version the
//! checker read (and, for a worker, while it still holds the job's lease). A probe of an old
//! token racing a reconnect, or a node whose lease ran out, changes nothing.

use super::policy::{Check, IncidentDecision};
use super::{Actor, LIFECYCLE_JOB, open_token, token_context};
use crate::clock::wall_ms;
use crate::db::connections::{
    self, CheckResult, Connection, Health, LoginKind, RenewedToken, RowLock, Status,
};
use crate::db::jobs::{self, Lease};
use crate::db::{DbError, Tx, audit, incidents, meta_pauses, operator_problems};
use crate::failpoint;
use crate::ids::ConnectionId;
use crate::mail::notices::Change;
use crate::meta::{Action, ExpiringToken, MetaError, ReconnectReason};
use crate::state::AppState;

/// What Meta said about the token.
#[derive(Debug)]
pub enum Outcome {
    /// The token works; possibly renewed, possibly with a new data-access expiry.
    Alive {
        refreshed: Option<ExpiringToken>,
        data_access_expires_at: Option<i64>,
        /// Meta refused the refresh as too early although our record said it was due: an
        /// earlier refresh reached Meta but not our store (a crash in between). The token
        /// works; the next refresh must wait a day from now.
        renewed_elsewhere: bool,
    },
    /// The call failed; the error's action says how bad it is.
    Failed(MetaError),
    /// The stored expiry has passed: dead without asking.
    ExpiredLocally,
}

/// Whether the connection's Facebook Page still links its Instagram account (as a professional
/// account): an error with reason `unlinked` when not, or the error of asking. The lifecycle and
/// the sync both judge a business connection by it.
pub(crate) async fn still_linked(
    state: &AppState,
    c: &Connection,
    token: &crate::meta::AccessToken,
) -> Result<(), MetaError> {
    let page_id = c.fb_page_id.as_deref().unwrap_or_default();
    match state.meta.page_instagram_account(token, page_id).await {
        Ok(Some(id)) if id == c.ig_user_id => Ok(()),
        Ok(_) => Err(MetaError::account_changed(
            "graph.facebook.com /{page-id}",
            ReconnectReason::Unlinked,
            format!(
                "the Facebook Page \"{}\" no longer links @{} as a professional account",
                c.fb_page_name.as_deref().unwrap_or(page_id),
                c.username
            ),
        )),
        Err(e) if e.code() == Some(100) => Err(MetaError::account_changed(
            "graph.facebook.com /{page-id}",
            ReconnectReason::Unlinked,
            format!(
                "the Facebook Page of @{} cannot be read any more",
                c.username
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Makes the call the policy asks for.
pub async fn check(state: &AppState, c: &Connection, now: i64) -> Outcome {
    let check = state.policy().check_for(c, now);
    if check == Check::ExpiredLocally {
        return Outcome::ExpiredLocally;
    }
    let token = match open_token(state, c) {
        Ok(token) => token,
        Err(e) => return Outcome::Failed(e),
    };
    let mut renewed_elsewhere = false;
    let result = match (check, c.login_kind()) {
        (Check::Refresh, _) => match state.meta.refresh_long_lived(&token).await {
            Ok(t) => Ok((Some(t), None)),
            Err(e) if refused_as_too_recent(&e) => {
                renewed_elsewhere = true;
                state
                    .meta
                    .instagram_probe(&token)
                    .await
                    .map(|_| (None, None))
            }
            Err(e) => Err(e),
        },
        (_, LoginKind::Instagram) => match state.meta.instagram_probe(&token).await {
            // A working login of an account Meta no longer serves is not a healthy connection.
            Ok(profile) if profile.is_personal() => Err(MetaError::account_changed(
                "graph.instagram.com /me",
                ReconnectReason::NotProfessional,
                format!("Meta reports @{} as a personal account", c.username),
            )),
            Ok(_) => Ok((None, None)),
            Err(e) => Err(e),
        },
        (_, LoginKind::Facebook) => match state.meta.debug_token(&token).await {
            Ok(info) if info.is_valid && c.reason.as_deref() == Some("unlinked") => {
                // The Page token works, but the sync found the account unlinked: healed only
                // once the Page links it again.
                match still_linked(state, c, &token).await {
                    Ok(()) => Ok((None, info.data_access_expires_at)),
                    Err(e) => Err(e),
                }
            }
            Ok(info) if info.is_valid => Ok((None, info.data_access_expires_at)),
            Ok(info) => {
                let (code, subcode, message) = info.error.unwrap_or((
                    190,
                    None,
                    "Meta reports the token as invalid".to_owned(),
                ));
                Err(MetaError::reported(
                    "graph.facebook.com /debug_token",
                    code,
                    subcode,
                    &message,
                    now,
                ))
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok((refreshed, data_access_expires_at)) => Outcome::Alive {
            refreshed,
            data_access_expires_at,
            renewed_elsewhere,
        },
        Err(e) => Outcome::Failed(e),
    }
}

/// Meta's refusal to refresh a token younger than 24 hours (code 100; the wording is not
/// documented, so both phrasings seen are accepted).
fn refused_as_too_recent(e: &MetaError) -> bool {
    let message = e.message().to_ascii_lowercase();
    e.code() == Some(100) && (message.contains("too new") || message.contains("24 hours"))
}

/// How a check's writes are fenced.
#[derive(Clone, Copy, Debug)]
pub enum Fence<'a> {
    /// A worker (or "check now") holding the job's lease: the lease must still be held, and the
    /// row unchanged since it was read.
    Lease(&'a Lease),
    /// No lease (Meta's callbacks): the row must be unchanged since it was read.
    Version,
}

/// What became of an outcome.
#[derive(Debug)]
pub enum Applied {
    /// Stored; the connection as it now is.
    Stored(Connection),
    /// Not stored: the row changed since it was read (or the lease was lost). The connection as
    /// it now is.
    Stale(Connection),
}

impl Applied {
    pub fn into_connection(self) -> Connection {
        match self {
            Applied::Stored(c) | Applied::Stale(c) => c,
        }
    }
}

/// Applies an outcome in one transaction: stores a renewed token, moves the status, writes the
/// audit log, and opens, escalates or closes the incident, if the fence holds. Times are read
/// when the write happens. [`DbError::NotFound`] when the connection was deleted meanwhile.
pub async fn apply(
    state: &AppState,
    c: &Connection,
    outcome: Outcome,
    actor: Actor,
    fence: Fence<'_>,
) -> Result<Applied, DbError> {
    crate::db::retry_conflicts("lifecycle apply", || {
        apply_once(state, c, &outcome, actor, fence)
    })
    .await
}

async fn apply_once(
    state: &AppState,
    c: &Connection,
    outcome: &Outcome,
    actor: Actor,
    fence: Fence<'_>,
) -> Result<Applied, DbError> {
    let mut tx = state.db.begin().await?;
    // Lock order: the connection's row, then the fence.
    let Some(current) = connections::lock(&mut tx, c.id, RowLock::Change).await? else {
        return Err(DbError::NotFound);
    };
    if let Fence::Lease(lease) = fence
        && !jobs::is_held(&mut tx, lease).await?
    {
        drop(tx);
        tracing::warn!(connection = %c.id, "check result discarded: the job's lease was lost");
        return Ok(Applied::Stale(current));
    }
    failpoint::hit(failpoint::LIFECYCLE_TX, &failpoint::key(state, c.id)).await;
    match apply_in(&mut tx, state, c, outcome, actor).await? {
        Some(updated) => {
            if updated.status() != current.status() {
                // Widgets report their account's health.
                crate::db::widget_changes::record_for(&mut tx, c.id).await?;
            }
            tx.commit().await?;
            Ok(Applied::Stored(updated))
        }
        None => {
            drop(tx);
            tracing::warn!(
                connection = %c.id,
                "check result discarded: the connection changed while it was checked (a reconnect?)"
            );
            Ok(Applied::Stale(current))
        }
    }
}

/// The writes of [`apply`] inside the caller's transaction. `None` when the row is no longer the
/// version `c` was read at (nothing was written then).
pub async fn apply_in(
    tx: &mut Tx,
    state: &AppState,
    c: &Connection,
    outcome: &Outcome,
    actor: Actor,
) -> Result<Option<Connection>, DbError> {
    let now = state.clock.now();
    if let Outcome::Failed(error) = outcome
        && let Action::Operator { problem } = error.action
    {
        // Not the account holder's doing: the connection keeps its status; one problem for the
        // operator instead, whatever number of connections run into it.
        let family = c.login_kind().as_str();
        operator_problems::record(
            &mut *tx,
            family,
            problem,
            &error.to_string(),
            error.code(),
            now,
        )
        .await?;
        return Ok(Some(c.clone()));
    }
    let before = Health::of(c);
    let mut after = before.clone();
    let mut sealed = None;
    let mut issued_at = None;
    let mut alive = false;
    let mut data_access = None;
    match outcome {
        Outcome::Alive {
            refreshed,
            data_access_expires_at,
            renewed_elsewhere,
        } => {
            if *renewed_elsewhere {
                issued_at = Some(now);
            }
            if let Some(token) = refreshed {
                sealed = Some((
                    state
                        .cipher
                        .seal(token.access_token.expose(), &token_context(c.id)),
                    token.expires_at,
                ));
            }
            alive = true;
            data_access = *data_access_expires_at;
            after.status = Status::Active;
            after.reason = None;
            after.degraded_since = None;
            after.consecutive_failures = 0;
            after.backoff_until = None;
        }
        Outcome::ExpiredLocally => {
            after.status = Status::NeedsReconnect;
            after.reason = Some(ReconnectReason::Expired.as_str().to_owned());
            after.last_error = Some("the token expired before it could be renewed".to_owned());
            after.last_error_code = None;
            after.last_error_subcode = None;
            after.last_error_at = Some(now);
        }
        Outcome::Failed(error) => {
            after.last_error = Some(error.message());
            after.last_error_code = error.code();
            after.last_error_subcode = error.subcode();
            after.last_error_at = Some(now);
            match error.action {
                Action::Reconnect { reason } => {
                    after.status = Status::NeedsReconnect;
                    after.reason = Some(reason.as_str().to_owned());
                    after.backoff_until = None;
                }
                Action::BackOff { .. }
                | Action::Retry
                | Action::Gone
                | Action::Bug
                | Action::Operator { .. } => {
                    if after.status != Status::NeedsReconnect {
                        after.status = Status::Degraded;
                    }
                    if before.status == Status::Active {
                        after.degraded_since = Some(now);
                    }
                    after.consecutive_failures = before.consecutive_failures + 1;
                    after.backoff_until = match error.action {
                        Action::BackOff { until } => Some(until),
                        _ => None,
                    };
                }
            }
        }
    }
    let status_changed = after.status != before.status || after.reason != before.reason;
    if status_changed {
        after.status_changed_at = now;
    }
    let result = CheckResult {
        health: &after,
        renewed: sealed.as_ref().map(|(sealed, expires_at)| RenewedToken {
            sealed,
            issued_at: now,
            expires_at: *expires_at,
        }),
        alive,
        data_access_expires_at: data_access,
        token_issued_at: issued_at,
    };
    if !connections::store_check_result(&mut *tx, c.id, c.version, &result, now).await? {
        return Ok(None);
    }
    if let Some((_, expires_at)) = &sealed {
        let until = expires_at.map_or("an unknown date".to_owned(), crate::clock::format_utc);
        audit::record(
            &mut *tx,
            c.id,
            now,
            &audit::NewEntry {
                event: "refreshed",
                detail: Some(&format!("token renewed, valid until {until}")),
                actor: actor.as_str(),
                ..Default::default()
            },
        )
        .await?;
    }
    if issued_at.is_some() {
        audit::record(
            &mut *tx,
            c.id,
            now,
            &audit::NewEntry {
                event: "refresh_deferred",
                detail: Some(
                    "Meta says the login was renewed moments ago (an interrupted earlier check); \
                     the next renewal waits a day",
                ),
                actor: actor.as_str(),
                ..Default::default()
            },
        )
        .await?;
    }
    if alive {
        operator_problems::resolve_family(&mut *tx, c.login_kind().as_str(), now).await?;
        if c.deauthorized_at.is_some() {
            // Meta said the app was removed, yet the token works: the removal did not hold (or
            // was undone), so its pending data deletion is off.
            connections::clear_deauthorization(&mut *tx, c.id, now).await?;
            jobs::cancel(&mut *tx, super::PURGE_JOB, &c.id.to_string()).await?;
        }
    }
    if status_changed {
        let (code, subcode, detail) = match outcome {
            Outcome::Failed(e) => (e.code(), e.subcode(), Some(e.message())),
            Outcome::ExpiredLocally => (None, None, after.last_error.clone()),
            Outcome::Alive { .. } => (None, None, Some("Meta accepts the token again".to_owned())),
        };
        audit::record(
            &mut *tx,
            c.id,
            now,
            &audit::NewEntry {
                event: "status_changed",
                from_status: Some(before.status.as_str()),
                to_status: Some(after.status.as_str()),
                reason: after.reason.as_deref(),
                detail: detail.as_deref(),
                meta_code: code,
                meta_subcode: subcode,
                // What Meta refused (or failed to answer) is Meta's doing, whoever's check
                // found it; the `check_requested` row before it names who asked.
                actor: match outcome {
                    Outcome::Failed(_) => Actor::Meta.as_str(),
                    _ => actor.as_str(),
                },
            },
        )
        .await?;
        tracing::info!(
            connection = %c.id,
            from = before.status.as_str(),
            to = after.status.as_str(),
            reason = after.reason.as_deref().unwrap_or(""),
            "connection status changed"
        );
    }
    let updated = connections::get(&mut *tx, c.id).await?;
    apply_incident_decision(tx, state, &updated, now).await?;
    Ok(Some(updated))
}

/// Opens, escalates, keeps or closes the connection's incident per the policy.
pub async fn apply_incident_decision(
    tx: &mut Tx,
    state: &AppState,
    c: &Connection,
    now: i64,
) -> Result<(), DbError> {
    match state.policy().incident_for(c, now) {
        IncidentDecision::Open { kind, reason } => {
            let before = incidents::open_for(&mut *tx, c.id).await?;
            let (incident, created) =
                incidents::open_or_update(&mut *tx, c.id, kind, reason.as_deref(), now).await?;
            if created {
                tracing::warn!(connection = %c.id, incident = %incident.id, kind, "incident opened");
            }
            if before.as_ref() != Some(&incident) {
                let new_kind = before.is_none_or(|b| b.kind != incident.kind);
                super::incident_changed(tx, state, c, Change::Opened(&incident), new_kind, now)
                    .await?;
            }
        }
        IncidentDecision::Close => {
            if let Some(closed) = incidents::close(&mut *tx, c.id, now).await? {
                tracing::info!(connection = %c.id, incident = %closed.id, "incident resolved");
                super::incident_changed(tx, state, c, Change::Closed(&closed), true, now).await?;
            }
        }
        IncidentDecision::Keep => {}
    }
    Ok(())
}

/// What one check did, for the worker, the dashboard and the CLI.
#[derive(Debug)]
pub struct CheckReport {
    /// The connection as it now is (`None`: it no longer exists).
    pub connection: Option<Connection>,
    /// The token was renewed.
    pub renewed: bool,
    /// The result was not stored: the connection changed meanwhile, or the lease was lost.
    pub stale: bool,
    /// When the next check is due (`None`: nothing left to check).
    pub next_due: Option<i64>,
}

/// Reasons that belong to the person's login, not to one account: every connection made with
/// the same login is affected at once.
fn user_level(reason: Option<&str>) -> bool {
    matches!(
        reason.and_then(ReconnectReason::parse),
        Some(
            ReconnectReason::PasswordChanged
                | ReconnectReason::Expired
                | ReconnectReason::AppRemoved
                | ReconnectReason::Checkpoint
        )
    )
}

/// When a check has just found a reason that belongs to the person's login (a checkpoint, a
/// changed password, the app removed, an expired login), the other connections made with the
/// same login (the same Facebook person's other Pages, the same Instagram account in another
/// tenant) are checked at once, through the runner: their lifecycle jobs become due now.
/// After the commit, one job row per statement; a crash before it only leaves them to their
/// own schedule.
async fn check_siblings(
    state: &AppState,
    before: &Connection,
    after: &Connection,
) -> Result<(), DbError> {
    let newly_broken = after.status() == Status::NeedsReconnect
        && (before.status() != Status::NeedsReconnect || before.reason != after.reason);
    if !newly_broken || !user_level(after.reason.as_deref()) {
        return Ok(());
    }
    let now = state.clock.now();
    for sibling in connections::siblings(&state.db, after).await? {
        jobs::schedule(&state.db, LIFECYCLE_JOB, &sibling.to_string(), now, now).await?;
        tracing::info!(connection = %after.id, sibling = %sibling,
            "a login-wide problem: checking the login's other connection now");
    }
    Ok(())
}

/// One lifecycle check of one connection under a job's lease: ask Meta what the policy says,
/// then apply the answer, fenced. The same function serves the worker, the dashboard's "check
/// now" and the CLI, so the three never drift.
pub async fn check_and_apply(
    state: &AppState,
    id: ConnectionId,
    lease: &Lease,
    lease_ms: i64,
    actor: Actor,
) -> Result<CheckReport, DbError> {
    let gone = CheckReport {
        connection: None,
        renewed: false,
        stale: false,
        next_due: None,
    };
    let c = match connections::get(&state.db, id).await {
        Ok(c) => c,
        Err(DbError::NotFound) => return Ok(gone),
        Err(e) => return Err(e),
    };
    if c.token_sealed.is_none() {
        // Its data was deleted: nothing to check until a new login.
        return Ok(CheckReport {
            connection: Some(c),
            ..gone
        });
    }
    // Make sure the job is still ours (and will stay ours for a full lease) before calling Meta:
    // a refresh is not something two nodes should both do.
    if !jobs::hold(&state.db, lease, wall_ms(), lease_ms).await? {
        tracing::warn!(connection = %id, "check skipped: the job's lease was lost");
        return Ok(CheckReport {
            connection: Some(c),
            stale: true,
            ..gone
        });
    }
    let outcome = check(state, &c, state.clock.now()).await;
    failpoint::hit(failpoint::AFTER_META_ANSWER, &failpoint::key(state, id)).await;
    let renewed = matches!(
        outcome,
        Outcome::Alive {
            refreshed: Some(_),
            ..
        }
    );
    if let Outcome::Failed(error) = &outcome
        && error.code() == Some(4)
        && let Action::BackOff { until } = error.action
    {
        let now = state.clock.now();
        meta_pauses::pause(&state.db, meta_pauses::APP, until, &error.message(), now).await?;
        tracing::warn!(until, "Meta throttles the whole app; pausing every check");
    }
    let applied = match apply(state, &c, outcome, actor, Fence::Lease(lease)).await {
        Ok(applied) => applied,
        // Disconnected while Meta answered.
        Err(DbError::NotFound) => return Ok(gone),
        Err(e) => return Err(e),
    };
    let stale = matches!(applied, Applied::Stale(_));
    let current = applied.into_connection();
    if !stale && let Err(e) = check_siblings(state, &c, &current).await {
        // The check itself is stored; the siblings keep their own schedule.
        tracing::warn!(connection = %id, error = %e, "the login's other connections could not be scheduled for a check");
    }
    let next_due = state
        .policy()
        .next_due(&current, state.clock.now(), rand::random());
    Ok(CheckReport {
        renewed: renewed && !stale,
        stale,
        next_due,
        connection: Some(current),
    })
}
