//! One lifecycle check of one connection: ask Meta (refresh or probe), then apply the answer as
//! a status change, an audit row and an incident decision.
//!
//! Reconnect-needed reasons move the connection to `needs_reconnect` at once; transient trouble
//! makes it `degraded`, and a later success returns it to `active`. A token past its expiry is
//! treated as dead without calling Meta, and never refreshed.

use super::policy::{Check, IncidentDecision};
use super::{Actor, open_token, token_context};
use crate::app::AppState;
use crate::db::connections::{self, Connection, Health, LoginKind, Status};
use crate::db::{DbError, audit, incidents};
use crate::meta::{Action, ExpiringToken, MetaError, ReconnectReason};

/// What Meta said about the token.
#[derive(Debug)]
pub enum Outcome {
    /// The token works; possibly renewed, possibly with a new data-access expiry.
    Alive {
        refreshed: Option<ExpiringToken>,
        data_access_expires_at: Option<i64>,
    },
    /// The call failed; the error's action says how bad it is.
    Failed(MetaError),
    /// The stored expiry has passed: dead without asking.
    ExpiredLocally,
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
    let result = match (check, c.login_kind()) {
        (Check::Refresh, _) => state
            .meta
            .refresh_long_lived(&token)
            .await
            .map(|t| (Some(t), None)),
        (_, LoginKind::Instagram) => state
            .meta
            .instagram_profile(&token)
            .await
            .map(|_| (None, None)),
        (_, LoginKind::Facebook) => match state.meta.debug_token(&token).await {
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
        },
        Err(e) => Outcome::Failed(e),
    }
}

/// Applies an outcome: stores a renewed token, moves the status, writes the audit log, and opens,
/// escalates or closes the incident. Returns the connection as it now is.
pub async fn apply(
    state: &AppState,
    c: &Connection,
    outcome: Outcome,
    actor: Actor,
    now: i64,
) -> Result<Connection, DbError> {
    let db = &state.db;
    let before = Health::of(c);
    let mut after = before.clone();
    match &outcome {
        Outcome::Alive {
            refreshed,
            data_access_expires_at,
        } => {
            if let Some(token) = refreshed {
                let sealed = state
                    .cipher
                    .seal(token.access_token.expose(), &token_context(c.id));
                connections::store_token(db, c.id, &sealed, now, token.expires_at, now).await?;
                let until = token
                    .expires_at
                    .map_or("an unknown date".to_owned(), crate::clock::format_utc);
                audit::record(
                    db,
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
            connections::mark_checked(db, c.id, refreshed.is_some(), *data_access_expires_at, now)
                .await?;
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
                Action::BackOff { .. } | Action::Retry | Action::Gone | Action::Bug => {
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
    if after.status != before.status || after.reason != before.reason {
        after.status_changed_at = now;
        let (code, subcode, detail) = match &outcome {
            Outcome::Failed(e) => (e.code(), e.subcode(), Some(e.to_string())),
            Outcome::ExpiredLocally => (None, None, after.last_error.clone()),
            Outcome::Alive { .. } => (None, None, Some("Meta accepts the token again".to_owned())),
        };
        audit::record(
            db,
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
                actor: actor.as_str(),
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
    if after != before {
        connections::store_health(db, c.id, &after, now).await?;
    }
    let updated = connections::get(db, c.id).await?;
    apply_incident_decision(state, &updated, now).await?;
    Ok(updated)
}

/// Opens, escalates, keeps or closes the connection's incident per the policy.
pub async fn apply_incident_decision(
    state: &AppState,
    c: &Connection,
    now: i64,
) -> Result<(), DbError> {
    match state.policy().incident_for(c, now) {
        IncidentDecision::Open { kind, reason } => {
            let (incident, created) =
                incidents::open_or_update(&state.db, c.id, kind, reason.as_deref(), now).await?;
            if created {
                tracing::warn!(connection = %c.id, incident = %incident.id, kind, "incident opened");
            }
        }
        IncidentDecision::Close => {
            if let Some(closed) = incidents::close(&state.db, c.id, now).await? {
                tracing::info!(connection = %c.id, incident = %closed.id, "incident resolved");
            }
        }
        IncidentDecision::Keep => {}
    }
    Ok(())
}
