//! The log every node's widget cache follows: which public ids' output changed, numbered in
//! commit order by one counter (see migrations/*/0011_widget_changes.sql).
//!
//! A writer calls [`record`] as the **last** statement of its transaction: the counter's row is
//! locked from there until the commit, so changes are numbered in the order they become visible
//! and a node that has read change N has seen every change before it. Taking the counter last
//! keeps it out of every other wait (the lock order in ARCHITECTURE.md). Numbers have no gaps
//! (a transaction that does not commit takes its number back with it), so a node that finds
//! one missing knows the log was trimmed past it. No application clock is read here.

use super::{DbError, Ex, Tx, on_pool};
use crate::config::DatabaseKind;
use crate::ids::ConnectionId;

/// Changes are kept this long; a node that could not read them in time starts over.
pub const KEEP_SECS: i64 = 86_400;

/// Records that what `public_ids` show changed (their settings, their account's feed or health,
/// their existence). Must be the last statement of the transaction. Nothing to record, nothing
/// done (the counter is not touched).
pub async fn record(tx: &mut Tx, public_ids: &[String]) -> Result<(), DbError> {
    if public_ids.is_empty() {
        return Ok(());
    }
    const NEXT: &str = "UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq";
    let mut ex: Ex<'_> = tx.into();
    // The database's clock, for trimming: a writer whose own clock is off must not have its
    // change trimmed before the other nodes read it.
    let clock = database_now(ex.kind());
    let now: i64 = on_pool!(ex.re(), conn => sqlx::query_scalar(clock).fetch_one(conn).await)?;
    let seq: i64 = on_pool!(ex.re(), conn => sqlx::query_scalar(NEXT).fetch_one(conn).await)?;
    let mut ids: Vec<&str> = public_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    // A few hundred ids at most (the widgets of one account), in bounded batches.
    for batch in ids.chunks(200) {
        let values: Vec<String> = (0..batch.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO widget_changes (seq, public_id, created_at) VALUES {}",
            values.join(", ")
        );
        on_pool!(ex.re(), conn => {
            let mut query = sqlx::query(&sql).bind(seq).bind(now);
            for id in batch {
                query = query.bind(*id);
            }
            query.execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// The public ids of the live widgets showing `connection`: what a change of the connection's
/// feed or health must [`record`] (a deleted widget answers 410 whatever its account does, and
/// the per-user limit bounds live ones). Read inside the writer's transaction, after it locked
/// the connection (widgets are made and moved to it under that lock too).
pub async fn showing(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT public_id FROM widgets
        WHERE connection_id = $1 AND deleted_at IS NULL ORDER BY public_id";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).bind(connection).fetch_all(conn).await)?)
}

/// Records a change of everything shown of `connection` (its feed, health or data): [`showing`]
/// then [`record`], as the last statements of the transaction.
pub async fn record_for(tx: &mut Tx, connection: ConnectionId) -> Result<(), DbError> {
    let shown = showing(&mut *tx, connection).await?;
    record(tx, &shown).await
}

/// The database's "now", in Unix seconds.
fn database_now(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
        DatabaseKind::Sqlite => "SELECT CAST(strftime('%s', 'now') AS INTEGER)",
    }
}

/// Where the log stands: the last change number, and how far it was trimmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Position {
    pub seq: i64,
    pub trimmed_through: i64,
}

pub async fn position(db: impl Into<Ex<'_>>) -> Result<Position, DbError> {
    const SQL: &str = "SELECT seq, trimmed_through FROM change_counter WHERE id = 1";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).fetch_one(conn).await)?)
}

/// What became of a changed public id, as of the read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Now {
    Live,
    /// Deleted by its owner (answers 410).
    Gone,
    /// No such widget any more (its owner's account was removed).
    Missing,
}

/// One change read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub public_id: String,
    pub now: Now,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    seq: i64,
    public_id: String,
    deleted_at: Option<i64>,
    widget_id: Option<i64>,
}

/// Up to `limit` changes after `(seq, public_id)`, in log order, with what each id is now.
pub async fn after(
    db: impl Into<Ex<'_>>,
    seq: i64,
    public_id: &str,
    limit: i64,
) -> Result<Vec<Change>, DbError> {
    // A row comparison: an index condition on the primary key on both backends.
    const SQL: &str = "SELECT c.seq, c.public_id, w.deleted_at, w.id AS widget_id
        FROM widget_changes c LEFT JOIN widgets w ON w.public_id = c.public_id
        WHERE (c.seq, c.public_id) > ($1, $2)
        ORDER BY c.seq, c.public_id LIMIT $3";
    let rows: Vec<ChangeRow> = on_pool!(db, conn => sqlx::query_as(SQL)
        .bind(seq)
        .bind(public_id)
        .bind(limit)
        .fetch_all(conn)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|r| Change {
            seq: r.seq,
            public_id: r.public_id,
            now: match (r.widget_id, r.deleted_at) {
                (None, _) => Now::Missing,
                (Some(_), Some(_)) => Now::Gone,
                (Some(_), None) => Now::Live,
            },
        })
        .collect())
}

/// Every widget's public id, and whether it was deleted: a node's list of addresses at start.
pub async fn all_public_ids(db: impl Into<Ex<'_>>) -> Result<Vec<(String, bool)>, DbError> {
    const SQL: &str = "SELECT public_id, deleted_at IS NOT NULL FROM widgets";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).fetch_all(conn).await)?)
}

/// Deletes changes recorded more than [`KEEP_SECS`] ago (by the database's clock) and notes how
/// far the log was trimmed. Returns how many went.
pub async fn trim(tx: &mut Tx) -> Result<u64, DbError> {
    const LAST: &str = "SELECT MAX(seq) FROM widget_changes WHERE created_at < $1";
    const DELETE: &str = "DELETE FROM widget_changes WHERE seq <= $1";
    // The counter's row last, as every writer takes it.
    const NOTE: &str = "UPDATE change_counter SET trimmed_through = $1
        WHERE id = 1 AND trimmed_through < $1";
    let mut ex: Ex<'_> = tx.into();
    let clock = database_now(ex.kind());
    let now: i64 = on_pool!(ex.re(), conn => sqlx::query_scalar(clock).fetch_one(conn).await)?;
    let cutoff = now - KEEP_SECS;
    let last: Option<i64> =
        on_pool!(ex.re(), conn => sqlx::query_scalar(LAST).bind(cutoff).fetch_one(conn).await)?;
    let Some(last) = last else { return Ok(0) };
    let n = on_pool!(ex.re(), conn => sqlx::query(DELETE).bind(last).execute(conn).await.map(|r| r.rows_affected()))?;
    on_pool!(ex, conn => sqlx::query(NOTE).bind(last).execute(conn).await.map(|_| ()))?;
    Ok(n)
}
