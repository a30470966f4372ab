//! What each recipient is to be told about a connection's incident, decided in the
//! transaction that opens, escalates or closes it (which holds the connection's row, so two
//! nodes never decide for the same connection at once).
//!
//! - An incident of a kind a person can act on opens (or escalates to one): a first notice for
//!   each recipient, due after `mail.group_secs`, and a reminder for each day of the owner's
//!   schedule (counted from now). Notices of the kind it escalated from that were not sent yet
//!   are dropped: only what is true goes out.
//! - It closes: its unsent notices are dropped, messages only about it that have not gone out
//!   yet are withdrawn, and whoever was told gets one "restored".
//!
//! The unique (incident, recipient, kind, stage) makes each notice exist once, however often
//! a check repeats the decision.

use crate::db::connections::Connection;
use crate::db::incidents::Incident;
use crate::db::{DbError, Tx, jobs, mail as store};
use crate::ids::ConnectionId;
use crate::state::AppState;

/// Incident kinds that mail someone. "Having trouble for too long" is Meta's or the network's
/// doing: nobody can act on it, so it shows in the dashboard only.
pub fn mails_about(kind: &str) -> bool {
    matches!(
        kind,
        "reconnect_needed" | "expiry_at_risk" | "data_access_expiring"
    )
}

/// The kind of a "resolved" notice.
pub const RESTORED: &str = "restored";

/// What happened to the incident.
pub enum Change<'a> {
    /// Opened, or its kind or reason changed.
    Opened(&'a Incident),
    Closed(&'a Incident),
}

/// The reminder schedule as stored ("1,3,7"): days, ascending, each 1 to 60, at most 10.
pub fn parse_reminder_days(text: &str) -> Result<Vec<i64>, String> {
    let mut days = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let day: i64 = part
            .parse()
            .map_err(|_| format!("{part:?} is not a number of days"))?;
        if !(1..=60).contains(&day) {
            return Err(format!("{day} is not between 1 and 60 days"));
        }
        days.push(day);
    }
    days.sort_unstable();
    days.dedup();
    if days.len() > 10 {
        return Err("at most 10 reminders".to_owned());
    }
    Ok(days)
}

/// Who hears about `c`: the owner, the client who connected it through a link, and the extra
/// addresses set on it; nobody when the owner or the connection turned mail off.
pub async fn recipients(tx: &mut Tx, c: &Connection) -> Result<Vec<String>, DbError> {
    let owner = store::user_settings(&mut *tx, c.owner_id).await?;
    let (enabled, extra) = store::connection_settings(&mut *tx, c.id).await?;
    if !owner.notify_enabled || !enabled {
        return Ok(Vec::new());
    }
    let mut all = vec![owner.email];
    all.extend(c.client_email.clone());
    all.extend(
        extra
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
    );
    let mut seen = std::collections::HashSet::new();
    all.retain(|e| seen.insert(e.clone()));
    Ok(all)
}

/// Records what the incident's change means for each recipient. Runs in the caller's
/// transaction, which holds `c`'s row (lock order step 1); it writes notices and, last, makes
/// sure the compose job exists (step 3).
pub async fn on_incident(
    tx: &mut Tx,
    state: &AppState,
    c: &Connection,
    change: Change<'_>,
    now: i64,
) -> Result<(), DbError> {
    let group = state.config.mail.group_secs as i64;
    let mut due = None;
    match change {
        Change::Opened(incident) => {
            if !mails_about(&incident.kind) {
                store::drop_pending(&mut *tx, incident.id, None).await?;
                return Ok(());
            }
            store::drop_pending(&mut *tx, incident.id, Some(&incident.kind)).await?;
            let schedule = store::user_settings(&mut *tx, c.owner_id).await?;
            let days = parse_reminder_days(&schedule.reminder_days).unwrap_or_default();
            for recipient in recipients(tx, c).await? {
                let notice = |stage: i64, due_at: i64| store::NewNotice {
                    incident: incident.id,
                    connection: c.id,
                    recipient: &recipient,
                    kind: &incident.kind,
                    stage,
                    due_at,
                };
                store::add_notice(&mut *tx, &notice(0, now + group), now).await?;
                for (i, day) in days.iter().enumerate() {
                    store::add_notice(&mut *tx, &notice(i as i64 + 1, now + day * 86_400), now)
                        .await?;
                }
                due = Some(now + group);
            }
        }
        Change::Closed(incident) => {
            store::drop_pending(&mut *tx, incident.id, None).await?;
            // A message about it still waiting (the server was down) would now be wrong.
            store::withdraw_for_incident(&mut *tx, incident.id).await?;
            for recipient in store::told_about(&mut *tx, incident.id).await? {
                let restored = store::NewNotice {
                    incident: incident.id,
                    connection: c.id,
                    recipient: &recipient,
                    kind: RESTORED,
                    stage: 0,
                    due_at: now + group,
                };
                store::add_notice(&mut *tx, &restored, now).await?;
                due = Some(now + group);
            }
        }
    }
    if let Some(due) = due {
        // The compose job polls every minute; this only makes sure it exists.
        jobs::ensure(
            &mut *tx,
            super::COMPOSE_JOB,
            super::COMPOSE_SUBJECT,
            due,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Before connection `id` is deleted (the caller holds its row): messages only about it that
/// have not gone out are withdrawn (its notices go with the row).
pub async fn connection_deleted(tx: &mut Tx, id: ConnectionId) -> Result<(), DbError> {
    store::withdraw_for_connection(&mut *tx, id).await?;
    Ok(())
}

/// After who hears about `c` changed (an address added or removed, mail turned on or off):
/// nobody still on the list loses a notice, nobody taken off it gets one, and someone added
/// while an incident is open is told about it (and reminded) from now. The caller's
/// transaction holds `c`'s row.
pub async fn recipients_changed(
    tx: &mut Tx,
    state: &AppState,
    c: &Connection,
    now: i64,
) -> Result<(), DbError> {
    let current = recipients(tx, c).await?;
    store::drop_pending_except(&mut *tx, c.id, &current).await?;
    if let Some(open) = crate::db::incidents::open_for(&mut *tx, c.id).await? {
        on_incident(tx, state, c, Change::Opened(&open), now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_days_parse_sorted_and_bounded() {
        assert_eq!(parse_reminder_days("7, 1,3").unwrap(), vec![1, 3, 7]);
        assert_eq!(parse_reminder_days("").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_reminder_days("2,2").unwrap(), vec![2]);
        assert!(parse_reminder_days("0").is_err());
        assert!(parse_reminder_days("61").is_err());
        assert!(parse_reminder_days("x").is_err());
        assert!(parse_reminder_days("1,2,3,4,5,6,7,8,9,10,11").is_err());
    }

    #[test]
    fn only_what_a_person_can_act_on_is_mailed() {
        assert!(mails_about("reconnect_needed"));
        assert!(mails_about("expiry_at_risk"));
        assert!(mails_about("data_access_expiring"));
        assert!(!mails_about("degraded_too_long"));
    }
}
