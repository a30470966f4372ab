//! Mail: the outbox (`mail_messages`), what recipients are still to be told about incidents
//! (`notices`), who turned mail off (`mail_optouts`), and the users' and connections' mail
//! settings. The rules (who, when, what) live in `crate::mail`; this file only stores and reads.
//!
//! Lock order: notices are written and folded into messages only by a transaction that holds
//! their connection's row (step 1 of the order in ARCHITECTURE.md); messages and opt-outs are
//! rows of their own that no other transaction waits on.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::ids::{ConnectionId, IncidentId, UserId};

/// A message in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MailMessage {
    pub id: i64,
    pub user_id: UserId,
    pub recipient: String,
    pub category: String,
    pub subject: String,
    #[serde(skip)]
    pub body_sealed: String,
    pub message_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str = "id, user_id, recipient, category, subject, body_sealed, message_id,
    status, attempts, last_error, created_at, sent_at";

/// A message to write.
pub struct NewMessage<'a> {
    pub user_id: UserId,
    pub recipient: &'a str,
    pub category: &'a str,
    pub subject: &'a str,
    pub body_sealed: &'a str,
    pub message_id: &'a str,
}

/// Writes a pending message; returns its id.
pub async fn insert_message(
    db: impl Into<Ex<'_>>,
    new: &NewMessage<'_>,
    now: i64,
) -> Result<i64, DbError> {
    const SQL: &str = "INSERT INTO mail_messages (user_id, recipient, category, subject,
            body_sealed, message_id, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING id";
    let (id,): (i64,) = on_pool!(db, pool => sqlx::query_as(SQL)
        .bind(new.user_id)
        .bind(new.recipient)
        .bind(new.category)
        .bind(new.subject)
        .bind(new.body_sealed)
        .bind(new.message_id)
        .bind(now)
        .fetch_one(pool)
        .await)?;
    Ok(id)
}

pub async fn get_message(db: impl Into<Ex<'_>>, id: i64) -> Result<MailMessage, DbError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM mail_messages WHERE id = $1");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).fetch_one(pool).await)?)
}

/// A message of `user`'s (their mailbox), or `NotFound`.
pub async fn get_owned_message(
    db: impl Into<Ex<'_>>,
    user: UserId,
    id: i64,
) -> Result<MailMessage, DbError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM mail_messages WHERE id = $1 AND user_id = $2");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(user).fetch_one(pool).await)?)
}

/// `user`'s messages, newest first, older than `before` (an id) when given.
pub async fn list_owned_messages(
    db: impl Into<Ex<'_>>,
    user: UserId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<MailMessage>, DbError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM mail_messages WHERE user_id = $1 AND id < $2
         ORDER BY id DESC LIMIT $3"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(user)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// The messages that told someone about `connection`, newest first.
pub async fn list_for_connection(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    limit: i64,
) -> Result<Vec<MailMessage>, DbError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM mail_messages WHERE id IN
            (SELECT message_id FROM notices WHERE connection_id = $1 AND message_id IS NOT NULL)
         ORDER BY id DESC LIMIT $2"
    );
    Ok(
        on_pool!(db, pool => sqlx::query_as(&sql).bind(connection).bind(limit).fetch_all(pool).await)?,
    )
}

/// Records how a delivery attempt ended: `status` 'sent', 'kept' or 'failed' (final), or
/// 'pending' with the error of an attempt to be repeated. Only a pending message changes, so
/// a late attempt never overwrites an earlier final outcome.
pub async fn record_attempt(
    db: impl Into<Ex<'_>>,
    id: i64,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE mail_messages SET status = $1, last_error = $2,
            attempts = attempts + 1,
            sent_at = CASE WHEN $1 IN ('sent', 'kept') THEN $3 ELSE sent_at END
         WHERE id = $4 AND status = 'pending'";
    let done = on_pool!(db, pool => sqlx::query(SQL)
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Counts of messages by status, for the status page and tests.
pub async fn count_by_status(db: impl Into<Ex<'_>>) -> Result<Vec<(String, i64)>, DbError> {
    const SQL: &str = "SELECT status, COUNT(*) FROM mail_messages GROUP BY status ORDER BY status";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).fetch_all(pool).await)?)
}

/// A notice still to be folded into a message, or one already folded.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Notice {
    pub id: i64,
    pub incident_id: IncidentId,
    pub connection_id: ConnectionId,
    pub recipient: String,
    pub kind: String,
    pub stage: i64,
    pub due_at: i64,
    pub message_id: Option<i64>,
    pub composed: bool,
}

const NOTICE_COLUMNS: &str =
    "id, incident_id, connection_id, recipient, kind, stage, due_at, message_id, composed";

/// A notice to write.
pub struct NewNotice<'a> {
    pub incident: IncidentId,
    pub connection: ConnectionId,
    pub recipient: &'a str,
    pub kind: &'a str,
    pub stage: i64,
    pub due_at: i64,
}

/// Writes a notice; one that exists already (same incident, recipient, kind and stage) is left
/// as it is: that is what makes a notice go out once.
pub async fn add_notice(
    db: impl Into<Ex<'_>>,
    new: &NewNotice<'_>,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO notices (incident_id, connection_id, recipient, kind, stage,
            due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (incident_id, recipient, kind, stage) DO NOTHING";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(new.incident)
        .bind(new.connection)
        .bind(new.recipient)
        .bind(new.kind)
        .bind(new.stage)
        .bind(new.due_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Drops an incident's notices not yet folded into a message (all of them, or those of other
/// kinds than `keep_kind`); returns how many.
pub async fn drop_pending(
    db: impl Into<Ex<'_>>,
    incident: IncidentId,
    keep_kind: Option<&str>,
) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM notices WHERE incident_id = $1 AND NOT composed
         AND ($2 IS NULL OR kind <> $2)";
    let done = on_pool!(db, pool => sqlx::query(SQL).bind(incident).bind(keep_kind).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done)
}

/// Drops a connection's notices not yet folded into a message for anyone not in `keep`
/// (someone removed from its recipients, or mail turned off); returns how many.
pub async fn drop_pending_except(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    keep: &[String],
) -> Result<u64, DbError> {
    let mut ex: Ex = db.into();
    const SQL: &str = "SELECT DISTINCT recipient FROM notices
         WHERE connection_id = $1 AND NOT composed";
    let pending: Vec<(String,)> =
        on_pool!(ex.re(), pool => sqlx::query_as(SQL).bind(connection).fetch_all(pool).await)?;
    let mut dropped = 0;
    for (recipient,) in pending {
        if keep.contains(&recipient) {
            continue;
        }
        const DROP: &str = "DELETE FROM notices
             WHERE connection_id = $1 AND recipient = $2 AND NOT composed";
        dropped += on_pool!(ex.re(), pool => sqlx::query(DROP)
            .bind(connection)
            .bind(&recipient)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(dropped)
}

/// The recipients who were told about `incident` (not counting `restored`): a message about
/// it was sent, kept, or is still on its way; not one that failed or was withdrawn.
pub async fn told_about(
    db: impl Into<Ex<'_>>,
    incident: IncidentId,
) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT DISTINCT n.recipient FROM notices n
         JOIN mail_messages m ON m.id = n.message_id
         WHERE n.incident_id = $1 AND n.kind <> 'restored'
           AND m.status IN ('pending', 'sent', 'kept')
         ORDER BY n.recipient";
    let rows: Vec<(String,)> =
        on_pool!(db, pool => sqlx::query_as(SQL).bind(incident).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// Withdraws the messages still waiting to be sent that are only about `incident` (it was
/// resolved before they went out); returns how many. The caller holds its connection's row.
pub async fn withdraw_for_incident(
    db: impl Into<Ex<'_>>,
    incident: IncidentId,
) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE mail_messages SET status = 'withdrawn'
         WHERE status = 'pending'
           AND id IN (SELECT message_id FROM notices WHERE incident_id = $1)
           AND NOT EXISTS (SELECT 1 FROM notices n
                           WHERE n.message_id = mail_messages.id AND n.incident_id <> $1)";
    Ok(on_pool!(db, pool => sqlx::query(SQL)
        .bind(incident)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Withdraws the messages still waiting to be sent that are only about `connection` (it is
/// being deleted); returns how many. The caller holds its row.
pub async fn withdraw_for_connection(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE mail_messages SET status = 'withdrawn'
         WHERE status = 'pending'
           AND id IN (SELECT message_id FROM notices WHERE connection_id = $1)
           AND NOT EXISTS (SELECT 1 FROM notices n
                           WHERE n.message_id = mail_messages.id AND n.connection_id <> $1)";
    Ok(on_pool!(db, pool => sqlx::query(SQL)
        .bind(connection)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Makes a `mail-send` job for every message waiting to be sent that has none, and brings
/// back dead ones (a database failure, retried too often): a message is never left pending
/// with nobody to send it. An anti-join, as `jobs::ensure_for_connections`. Returns how many.
pub async fn schedule_missing_sends(
    db: impl Into<Ex<'_>>,
    kind: &str,
    now: i64,
) -> Result<u64, DbError> {
    let mut ex: Ex = db.into();
    const MISSING: &str = "INSERT INTO jobs (kind, subject, due_at, created_at)
         SELECT $1, 'message-' || CAST(m.id AS TEXT), $2, $2 FROM mail_messages m
         WHERE m.status = 'pending' AND NOT EXISTS
             (SELECT 1 FROM jobs j WHERE j.kind = $1
              AND j.subject = 'message-' || CAST(m.id AS TEXT))
         ON CONFLICT (kind, subject) DO NOTHING";
    let made = on_pool!(ex.re(), pool => sqlx::query(MISSING)
        .bind(kind)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    const DEAD: &str = "UPDATE jobs SET dead_at = NULL, attempts = 0, due_at = $2
         WHERE kind = $1 AND dead_at IS NOT NULL";
    let revived = on_pool!(ex.re(), pool => sqlx::query(DEAD)
        .bind(kind)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(made + revived)
}

/// Who has notices due by `now`: (owner, recipient, connection) triples, ordered, at most
/// `limit`. Read without locks; the composer locks the connections and reads again.
pub async fn due_recipients(
    db: impl Into<Ex<'_>>,
    now: i64,
    limit: i64,
) -> Result<Vec<(UserId, String, ConnectionId)>, DbError> {
    const SQL: &str = "SELECT DISTINCT c.owner_id, n.recipient, n.connection_id
         FROM notices n JOIN connections c ON c.id = n.connection_id
         WHERE NOT n.composed AND n.due_at <= $1
         ORDER BY c.owner_id, n.recipient, n.connection_id LIMIT $2";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(now).bind(limit).fetch_all(pool).await)?)
}

/// When the next notice falls due, if any.
pub async fn next_due(db: impl Into<Ex<'_>>) -> Result<Option<i64>, DbError> {
    const SQL: &str = "SELECT MIN(due_at) FROM notices WHERE NOT composed";
    let (due,): (Option<i64>,) = on_pool!(db, pool => sqlx::query_as(SQL).fetch_one(pool).await)?;
    Ok(due)
}

/// `recipient`'s due notices about `connections` (whose rows the caller holds).
pub async fn due_for(
    db: impl Into<Ex<'_>>,
    recipient: &str,
    connections: &[ConnectionId],
    now: i64,
) -> Result<Vec<Notice>, DbError> {
    if connections.is_empty() {
        return Ok(Vec::new());
    }
    let ids = connections
        .iter()
        .map(|c| c.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // The ids are integers formatted here, never text from outside.
    let sql = format!(
        "SELECT {NOTICE_COLUMNS} FROM notices
         WHERE recipient = $1 AND NOT composed AND due_at <= $2 AND connection_id IN ({ids})
         ORDER BY connection_id, id"
    );
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(recipient).bind(now).fetch_all(pool).await)?)
}

/// Marks notices as dealt with: folded into `message` (or, with `None`, dropped unsent: the
/// recipient turned such mail off).
pub async fn mark_composed(
    db: impl Into<Ex<'_>>,
    ids: &[i64],
    message: Option<i64>,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "UPDATE notices SET composed = TRUE, message_id = $1 WHERE id IN ({list}) AND NOT composed"
    );
    on_pool!(db, pool => sqlx::query(&sql).bind(message).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Drops notices not yet folded into a message (the recipient is no longer told about that
/// connection).
pub async fn drop_notices(db: impl Into<Ex<'_>>, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!("DELETE FROM notices WHERE id IN ({list}) AND NOT composed");
    on_pool!(db, pool => sqlx::query(&sql).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every notice (for tests and the simulated-run report).
pub async fn all_notices(db: impl Into<Ex<'_>>) -> Result<Vec<Notice>, DbError> {
    let sql = format!("SELECT {NOTICE_COLUMNS} FROM notices ORDER BY id");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
}

/// `recipient` turned off `owner`'s `category` mail.
pub async fn opt_out(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    recipient: &str,
    category: &str,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO mail_optouts (owner_id, recipient, category, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (owner_id, recipient, category) DO NOTHING";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(owner)
        .bind(recipient)
        .bind(category)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// `recipient` wants `owner`'s `category` mail again.
pub async fn opt_in(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    recipient: &str,
    category: &str,
) -> Result<(), DbError> {
    const SQL: &str =
        "DELETE FROM mail_optouts WHERE owner_id = $1 AND recipient = $2 AND category = $3";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(owner)
        .bind(recipient)
        .bind(category)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn opted_out(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    recipient: &str,
    category: &str,
) -> Result<bool, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM mail_optouts
         WHERE owner_id = $1 AND recipient = $2 AND category = $3";
    let (n,): (i64,) = on_pool!(db, pool => sqlx::query_as(SQL)
        .bind(owner)
        .bind(recipient)
        .bind(category)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// The addresses that turned off `owner`'s `category` mail.
pub async fn opted_out_of(
    db: impl Into<Ex<'_>>,
    owner: UserId,
    category: &str,
) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT recipient FROM mail_optouts WHERE owner_id = $1 AND category = $2
         ORDER BY recipient";
    let rows: Vec<(String,)> =
        on_pool!(db, pool => sqlx::query_as(SQL).bind(owner).bind(category).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// A user's mail settings.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UserMailSettings {
    pub email: String,
    pub notify_enabled: bool,
    pub reminder_days: String,
}

pub async fn user_settings(
    db: impl Into<Ex<'_>>,
    user: UserId,
) -> Result<UserMailSettings, DbError> {
    const SQL: &str = "SELECT email, notify_enabled, reminder_days FROM users WHERE id = $1";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(user).fetch_one(pool).await)?)
}

pub async fn set_user_settings(
    db: impl Into<Ex<'_>>,
    user: UserId,
    enabled: bool,
    reminder_days: &str,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE users SET notify_enabled = $1, reminder_days = $2, updated_at = $3
         WHERE id = $4";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(enabled)
        .bind(reminder_days)
        .bind(now)
        .bind(user)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A connection's mail settings: on or off, and its extra recipients (comma-separated).
pub async fn connection_settings(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<(bool, String), DbError> {
    const SQL: &str = "SELECT notify_enabled, notify_extra FROM connections WHERE id = $1";
    Ok(on_pool!(db, pool => sqlx::query_as(SQL).bind(connection).fetch_one(pool).await)?)
}

/// Sets them; the caller's transaction holds the connection's row.
pub async fn set_connection_settings(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    enabled: bool,
    extra: &str,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE connections SET notify_enabled = $1, notify_extra = $2 WHERE id = $3";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(enabled)
        .bind(extra)
        .bind(connection)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The Message-IDs of every message recorded as sent (tests: each must have arrived).
pub async fn sent_message_ids(db: impl Into<Ex<'_>>) -> Result<Vec<String>, DbError> {
    message_ids_with_status(db, "sent").await
}

/// The Message-IDs of the messages in `status`.
pub async fn message_ids_with_status(
    db: impl Into<Ex<'_>>,
    status: &str,
) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT message_id FROM mail_messages WHERE status = $1 ORDER BY id";
    let rows: Vec<(String,)> =
        on_pool!(db, pool => sqlx::query_as(SQL).bind(status).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|(m,)| m).collect())
}
