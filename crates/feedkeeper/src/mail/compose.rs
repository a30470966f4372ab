//! Folding due notices into messages: one message per owner and recipient per run, however
//! many of that owner's accounts it covers (fifty accounts breaking at once make one mail).
//!
//! Each message is one transaction: the connections' rows first, in ascending id order (lock
//! order step 1, so no incident can open or close under it), then the notices, the reconnect
//! links, the message and its `mail-send` job. Two nodes composing at once queue on the rows;
//! the second finds the notices already folded. A crash before the commit leaves the notices
//! due, to be folded again.

use crate::accounts::csrf::random_token;
use crate::accounts::session::hash_token;
use crate::clock::format_utc;
use crate::db::connections::{self as stored, Connection, RowLock};
use crate::db::links::{self as link_store, NewLink};
use crate::db::{DbError, incidents, mail as store};
use crate::ids::{ConnectionId, UserId};
use crate::meta::errors::ReconnectReason;
use crate::state::AppState;

use super::notices::RESTORED;
use super::templates::{self, AlertItem};
use super::{ALERTS, Outgoing};

/// How long the reconnect link in a mail works (a reminder brings a fresh one).
pub const LINK_DAYS: i64 = 14;
/// Owner–recipient pairs folded per run; more are left for the next run, at once.
const BATCH: i64 = 1000;
/// The compose job looks for due notices at least this often (seconds), and at least every
/// `mail.group_secs` when that is shorter: a notice waits at most about twice the hold.
pub const POLL_SECS: i64 = 60;

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Composed {
    pub messages: usize,
    /// Notices folded into those messages.
    pub notices: usize,
    /// Notices dropped: the recipient turned such mail off, or a later incident replaced them.
    pub dropped: usize,
}

/// Folds every due notice into messages. Returns what it did and when to run next.
pub async fn run(state: &AppState) -> anyhow::Result<(Composed, i64)> {
    let now = state.clock.now();
    let due = store::due_recipients(&state.db, now, BATCH).await?;
    let more = due.len() as i64 >= BATCH;
    let mut groups: Vec<(UserId, String, Vec<ConnectionId>)> = Vec::new();
    for (owner, recipient, connection) in due {
        match groups.last_mut() {
            Some((o, r, list)) if *o == owner && *r == recipient => list.push(connection),
            _ => groups.push((owner, recipient, vec![connection])),
        }
    }
    let mut report = Composed::default();
    let (mut failed, total) = (0, groups.len());
    let mut last_error = None;
    for (owner, recipient, connections) in groups {
        // One message that cannot be made (a database error) holds up nobody else's.
        match crate::db::retry_conflicts("compose mail", || {
            compose_one(state, owner, &recipient, &connections, now)
        })
        .await
        {
            Ok(one) => {
                report.messages += one.messages;
                report.notices += one.notices;
                report.dropped += one.dropped;
            }
            Err(e) => {
                tracing::error!(owner = %owner, error = %e, "a message could not be composed");
                failed += 1;
                last_error = Some(e);
            }
        }
    }
    if let Some(e) = last_error
        && failed == total
    {
        return Err(e.into());
    }
    let next = if more {
        now
    } else {
        let soonest = store::next_due(&state.db).await?.unwrap_or(i64::MAX);
        let poll = (state.config.mail.group_secs as i64).clamp(1, POLL_SECS);
        soonest.clamp(now, now + poll)
    };
    Ok((report, next))
}

/// One message for `recipient` about `owner`'s `connections` (those with due notices).
async fn compose_one(
    state: &AppState,
    owner: UserId,
    recipient: &str,
    connections: &[ConnectionId],
    now: i64,
) -> Result<Composed, DbError> {
    let mut report = Composed::default();
    let mut tx = state.db.begin().await?;
    let mut ids = connections.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut locked: Vec<Connection> = Vec::new();
    for id in &ids {
        if let Some(c) = stored::lock(&mut tx, *id, RowLock::Change).await? {
            locked.push(c);
        }
    }
    if let Some(first) = ids.first() {
        crate::failpoint::hit(
            crate::failpoint::MAIL_COMPOSE_TX,
            &crate::failpoint::key(state, *first),
        )
        .await;
    }
    let locked_ids: Vec<ConnectionId> = locked.iter().map(|c| c.id).collect();
    let notices = store::due_for(&mut tx, recipient, &locked_ids, now).await?;
    if notices.is_empty() {
        tx.commit().await?;
        return Ok(report);
    }
    if store::opted_out(&mut tx, owner, recipient, ALERTS).await? {
        let all: Vec<i64> = notices.iter().map(|n| n.id).collect();
        store::mark_composed(&mut tx, &all, None).await?;
        report.dropped = all.len();
        tx.commit().await?;
        return Ok(report);
    }
    // Someone taken off a connection's recipients (or mail turned off) since the notice was
    // written hears nothing more about it.
    let mut still_told = Vec::new();
    for c in &locked {
        if super::notices::recipients(&mut tx, c)
            .await?
            .iter()
            .any(|r| r == recipient)
        {
            still_told.push(c.id);
        }
    }
    let (notices, gone): (Vec<store::Notice>, Vec<store::Notice>) = notices
        .into_iter()
        .partition(|n| still_told.contains(&n.connection_id));
    let gone: Vec<i64> = gone.iter().map(|n| n.id).collect();
    store::drop_notices(&mut tx, &gone).await?;
    report.dropped += gone.len();
    let base = state.config.public_url();
    let mut items = Vec::new();
    let mut folded = Vec::new();
    let mut dropped = Vec::new();
    let mut reminders_only = true;
    for c in &locked {
        let mine: Vec<&store::Notice> =
            notices.iter().filter(|n| n.connection_id == c.id).collect();
        let Some(latest_incident) = mine.iter().map(|n| n.incident_id).max() else {
            continue;
        };
        // Only the newest incident's news: a "restored" followed at once by a new break says
        // the break, not both.
        let (current, older): (Vec<&store::Notice>, Vec<&store::Notice>) = mine
            .into_iter()
            .partition(|n| n.incident_id == latest_incident);
        dropped.extend(older.iter().map(|n| n.id));
        let Some(top) = current.iter().max_by_key(|n| (n.kind != RESTORED, n.stage)) else {
            continue;
        };
        let incident = incidents::get(&mut tx, top.incident_id).await?;
        // A first notice and a reminder due together (the compose job was down for days):
        // the reader has not been told yet, so it is the first notice, not a reminder.
        let reminder = top.stage > 0 && !current.iter().any(|n| n.stage == 0);
        let item = describe(&mut tx, c, top, reminder, &incident, &base, now).await?;
        reminders_only &= reminder;
        items.push(item);
        folded.extend(current.iter().map(|n| n.id));
    }
    if items.is_empty() {
        store::mark_composed(&mut tx, &dropped, None).await?;
        report.dropped = dropped.len();
        tx.commit().await?;
        return Ok(report);
    }
    let sender = super::sender_name(&mut tx, owner).await?;
    let subject = subject(&items, reminders_only);
    let intro = intro(&items, &sender);
    let body = templates::alert(&templates::Alert {
        subject: &subject,
        intro: &intro,
        items: &items,
        sender: &sender,
        recipient,
        dashboard_url: &format!("{base}/connections"),
        unsubscribe_url: &super::unsubscribe::address(state, owner, recipient, ALERTS),
    })
    // Our own templates over our own strings: a failure here is a bug, reported as such and
    // retried by the job like any failed write.
    .map_err(|e| DbError::Other(sqlx::Error::Protocol(format!("mail template: {e}"))))?;
    let message = super::enqueue(
        &mut tx,
        state,
        &Outgoing {
            user: owner,
            recipient,
            category: ALERTS,
            subject: &subject,
            body: &body,
        },
        now,
    )
    .await?;
    store::mark_composed(&mut tx, &folded, Some(message)).await?;
    store::mark_composed(&mut tx, &dropped, None).await?;
    tx.commit().await?;
    tracing::info!(
        message,
        accounts = items.len(),
        notices = folded.len(),
        "mail composed"
    );
    report.messages = 1;
    report.notices = folded.len();
    report.dropped = dropped.len();
    Ok(report)
}

/// One account's lines: what is the matter and, when someone must act, a fresh one-click
/// reconnect link (single-use, stored hashed; its secret exists only in this message).
async fn describe(
    tx: &mut crate::db::Tx,
    c: &Connection,
    notice: &store::Notice,
    reminder: bool,
    incident: &incidents::Incident,
    base: &str,
    now: i64,
) -> Result<AlertItem, DbError> {
    let date =
        |t: Option<i64>| t.map_or_else(|| "soon".to_owned(), |t| format!("on {}", format_utc(t)));
    let again = if reminder { "reminder: " } else { "" };
    let (headline, detail, broken) = match (notice.kind.as_str(), incident.kind.as_str()) {
        (RESTORED, "reconnect_needed") => (
            "is working again".to_owned(),
            "Its widgets show new posts again.".to_owned(),
            false,
        ),
        (RESTORED, "data_access_expiring") => (
            "is fine again".to_owned(),
            "Facebook data access was renewed; nothing stopped.".to_owned(),
            false,
        ),
        (RESTORED, _) => (
            "is fine again".to_owned(),
            "Its login was renewed; nothing stopped.".to_owned(),
            false,
        ),
        ("expiry_at_risk", _) => (
            format!("{again}its login expires {}", date(c.token_expires_at)),
            "feedkeeper could not renew it (Meta did not accept the renewal). Reconnect before \
             then, and its widgets stay current."
                .to_owned(),
            false,
        ),
        ("data_access_expiring", _) => (
            format!(
                "{again}Facebook data access ends {}",
                date(c.data_access_expires_at)
            ),
            "Facebook asks the account holder to log in again every 90 days. Reconnect before \
             then, and its widgets stay current."
                .to_owned(),
            false,
        ),
        _ => {
            let reason = incident
                .reason
                .as_deref()
                .or(c.reason.as_deref())
                .and_then(ReconnectReason::parse)
                .unwrap_or(ReconnectReason::Unknown);
            (
                if reminder {
                    "still needs reconnecting".to_owned()
                } else {
                    "needs reconnecting".to_owned()
                },
                format!(
                    "Instagram stopped accepting its login: {}. Its widgets keep showing the \
                     posts from before.",
                    reason.describe()
                ),
                true,
            )
        }
    };
    let link = if notice.kind == RESTORED {
        None
    } else {
        let token = random_token();
        link_store::create(
            &mut *tx,
            &NewLink {
                token_hash: &hash_token(&token),
                owner_id: c.owner_id,
                label: &format!("Reconnect @{} (mail)", c.username),
                client_email: c.client_email.as_deref(),
                connection_id: Some(c.id),
                single_use: true,
                expires_at: now + LINK_DAYS * 86_400,
            },
            now,
        )
        .await?;
        Some(format!("{base}/l/{token}"))
    };
    Ok(AlertItem {
        username: c.username.clone(),
        headline,
        detail: Some(detail),
        action: format!("Reconnect @{}", c.username),
        link,
        link_expires: format_utc(now + LINK_DAYS * 86_400),
        broken,
    })
}

/// The opening sentence: what is the matter with the accounts below, taken together.
fn intro(items: &[AlertItem], sender: &str) -> String {
    let acting = items.iter().filter(|i| i.link.is_some()).count();
    let one = acting == 1;
    if acting == 0 {
        return if items.len() == 1 {
            "Good news about this Instagram account:".to_owned()
        } else {
            "Good news about these Instagram accounts:".to_owned()
        };
    }
    let what = if one {
        "An Instagram account"
    } else {
        "Instagram accounts"
    };
    if items.iter().any(|i| i.broken) {
        format!(
            "{what} that {sender} shows on a website {} a new login. The widgets keep showing \
             the last posts and pictures meanwhile; reconnecting takes a minute.",
            if one { "needs" } else { "need" }
        )
    } else {
        format!(
            "{what} that {sender} shows on a website will stop updating unless {} reconnected \
             soon. Reconnecting takes a minute.",
            if one { "it is" } else { "they are" }
        )
    }
}

/// The subject line: the account's news when there is one, a count when there are several.
fn subject(items: &[AlertItem], reminders_only: bool) -> String {
    let needing = items.iter().filter(|i| i.link.is_some()).count();
    let restored = items.len() - needing;
    match items {
        [one] => format!(
            "{}@{} {}",
            if reminders_only && one.link.is_some() {
                "Reminder: "
            } else {
                ""
            },
            one.username,
            one.headline.trim_start_matches("reminder: ")
        ),
        _ if restored == 0 => format!("{needing} Instagram accounts need attention"),
        _ if needing == 0 => format!("{restored} Instagram accounts are working again"),
        _ => format!(
            "{needing} Instagram account{} need{} attention, {restored} working again",
            if needing == 1 { "" } else { "s" },
            if needing == 1 { "s" } else { "" },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, needs: bool, headline: &str) -> AlertItem {
        AlertItem {
            username: name.into(),
            headline: headline.into(),
            detail: None,
            action: String::new(),
            link: needs.then(|| "https://x.test/l/t".to_owned()),
            link_expires: String::new(),
            broken: needs,
        }
    }

    #[test]
    fn the_intro_says_broken_soon_or_good_news() {
        let mut soon = item("a", true, "its login expires");
        soon.broken = false;
        assert!(intro(&[item("a", true, "x")], "Acme").contains("needs a new login"));
        assert!(intro(&[soon.clone()], "Acme").contains("will stop updating unless it is"));
        assert!(intro(&[soon.clone(), item("b", true, "x")], "Acme").contains("need a new login"));
        assert!(intro(&[item("a", false, "is working again")], "Acme").starts_with("Good news"));
    }

    #[test]
    fn subjects_name_one_account_and_count_several() {
        assert_eq!(
            subject(&[item("shop", true, "needs reconnecting")], false),
            "@shop needs reconnecting"
        );
        assert_eq!(
            subject(&[item("shop", true, "still needs reconnecting")], true),
            "Reminder: @shop still needs reconnecting"
        );
        assert_eq!(
            subject(&[item("shop", false, "is working again")], false),
            "@shop is working again"
        );
        let many: Vec<_> = (0..50).map(|i| item(&format!("a{i}"), true, "x")).collect();
        assert_eq!(
            subject(&many, false),
            "50 Instagram accounts need attention"
        );
        assert_eq!(
            subject(&[item("a", true, "x"), item("b", false, "y")], false),
            "1 Instagram account needs attention, 1 working again"
        );
    }
}
