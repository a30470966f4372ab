//! What the database says at a metrics scrape: job queues, connections by status, the soonest
//! token expiry, sync lag, open incidents, and the mail, webhook and image backlogs.
//! Read-only: a handful of aggregate queries, the backlogs over partial indexes (migration
//! 0020); no lock is taken.

use super::connections::Status;
use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::metrics::{DbSnapshot, JobQueue, quantile};

/// Fills the database's part of `snapshot` as of `now` (`now_ms` for leases).
pub async fn fill(
    db: impl Into<Ex<'_>>,
    snapshot: &mut DbSnapshot,
    now: UnixSeconds,
    now_ms: i64,
) -> Result<(), DbError> {
    let mut ex: Ex = db.into();

    snapshot.jobs = super::jobs::counts(ex.re(), now, now_ms)
        .await?
        .into_iter()
        .map(|k| JobQueue {
            oldest_due_secs: k.oldest_due_at.map_or(0, |due| (now - due).max(0)),
            kind: k.kind,
            waiting: k.due,
            running: k.running,
            dead: k.dead,
        })
        .collect();

    const STATUSES: &str =
        "SELECT status, COUNT(*) FROM connections GROUP BY status ORDER BY status";
    let counted: Vec<(String, i64)> =
        on_pool!(ex.re(), pool => sqlx::query_as(STATUSES).fetch_all(pool).await)?;
    // Every status has a series, at 0 when no connection has it.
    snapshot.connections = Status::ALL
        .into_iter()
        .map(|status| {
            let count = counted
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            (status.as_str().to_owned(), count)
        })
        .collect();

    // A token in use: sealed, expiring (a Page token may never expire), and not already given
    // up on (a connection that needs a reconnect is counted by its status instead).
    const EXPIRY: &str = "SELECT MIN(token_expires_at) FROM connections
        WHERE status <> 'needs_reconnect' AND token_sealed IS NOT NULL
          AND token_expires_at IS NOT NULL AND token_expires_at > 0";
    snapshot.soonest_token_expiry =
        on_pool!(ex.re(), pool => sqlx::query_scalar(EXPIRY).fetch_one(pool).await)?;

    // One number per synced account: bounded by the accounts, read at scrape intervals.
    const LAGS: &str = "SELECT COALESCE(last_sync_at, created_at) FROM connections
        WHERE status <> 'needs_reconnect' AND token_sealed IS NOT NULL";
    let synced: Vec<i64> =
        on_pool!(ex.re(), pool => sqlx::query_scalar(LAGS).fetch_all(pool).await)?;
    let mut lags: Vec<i64> = synced.iter().map(|at| (now - at).max(0)).collect();
    snapshot.sync_lag = quantile(&mut lags, 0.5).zip(quantile(&mut lags, 0.99));

    const MAIL: &str =
        "SELECT COUNT(*), MIN(created_at) FROM mail_messages WHERE status = 'pending'";
    let (pending, oldest): (i64, Option<i64>) =
        on_pool!(ex.re(), pool => sqlx::query_as(MAIL).fetch_one(pool).await)?;
    snapshot.mail_pending = pending;
    snapshot.mail_oldest_secs = oldest.map_or(0, |at| (now - at).max(0));

    const INCIDENTS: &str =
        "SELECT COUNT(*), MIN(opened_at) FROM incidents WHERE closed_at IS NULL";
    let (open, oldest): (i64, Option<i64>) =
        on_pool!(ex.re(), pool => sqlx::query_as(INCIDENTS).fetch_one(pool).await)?;
    snapshot.incidents_open = open;
    snapshot.incidents_oldest_secs = oldest.map_or(0, |at| (now - at).max(0));

    const WEBHOOKS: &str = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'";
    snapshot.webhooks_pending =
        on_pool!(ex.re(), pool => sqlx::query_scalar(WEBHOOKS).fetch_one(pool).await)?;

    const UNFETCHED: &str = "SELECT COUNT(*) FROM image_refs WHERE image_key IS NULL";
    snapshot.images_unfetched =
        on_pool!(ex.re(), pool => sqlx::query_scalar(UNFETCHED).fetch_one(pool).await)?;
    const UNPROCESSED: &str = "SELECT COUNT(*) FROM images WHERE widths IS NULL AND failed IS NULL";
    snapshot.images_unprocessed =
        on_pool!(ex, pool => sqlx::query_scalar(UNPROCESSED).fetch_one(pool).await)?;
    Ok(())
}
