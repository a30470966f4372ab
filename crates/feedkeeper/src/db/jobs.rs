//! Due-time rows with leases: the queue every background worker claims from.
//!
//! A job is one `(kind, subject)` pair, e.g. ("refresh_token", connection id). Claiming sets a
//! lease; only the lease holder may finish or fail it; an expired lease makes the job claimable
//! again, so a crashed node's work is taken over. On PostgreSQL, claims skip rows another node is
//! claiming at the same moment (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer.

use serde::Serialize;

use super::{Db, DbError, on_pool};
use crate::clock::UnixSeconds;

/// A claimed (or listed) job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub due_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Claims since the job last succeeded.
    pub attempts: i64,
    pub last_error: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, kind, subject, due_at, lease_owner, lease_until, attempts, last_error";

/// Makes `(kind, subject)` due at `due_at`, creating it if needed. An existing job keeps its
/// lease: a running worker finishes first, and its `finish` sets the next due time.
pub async fn schedule(
    db: &Db,
    kind: &str,
    subject: &str,
    due_at: UnixSeconds,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO jobs (kind, subject, due_at, created_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (kind, subject) DO UPDATE SET due_at = excluded.due_at";
    on_pool!(db, pool => sqlx::query(SQL).bind(kind).bind(subject).bind(due_at).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Claims up to `limit` due jobs of `kind` for `owner` until `now + lease_secs`.
pub async fn claim_due(
    db: &Db,
    kind: &str,
    owner: &str,
    now: UnixSeconds,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    // The only query that differs between backends: PostgreSQL must lock the chosen rows and skip
    // rows locked by a concurrent claim; SQLite runs one write at a time, so the plain form is
    // already atomic.
    let lock = match db {
        Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
         WHERE id IN (
             SELECT id FROM jobs
             WHERE kind = $3 AND due_at <= $4 AND (lease_until IS NULL OR lease_until <= $4)
             ORDER BY due_at, id
             LIMIT $5 {lock})
         RETURNING {JOB_COLUMNS}"
    );
    let mut jobs: Vec<Job> = on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(owner)
        .bind(now + lease_secs)
        .bind(kind)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
    jobs.sort_by_key(|j| (j.due_at, j.id));
    Ok(jobs)
}

/// Ends `owner`'s lease on a successful run: the job becomes due again at `next_due`, or is
/// removed when `None`. Returns `false` if the lease was lost (expired and taken by another node),
/// in which case nothing changes.
pub async fn finish(
    db: &Db,
    id: i64,
    owner: &str,
    next_due: Option<UnixSeconds>,
) -> Result<bool, DbError> {
    let result = match next_due {
        Some(due) => {
            const SQL: &str = "UPDATE jobs SET due_at = $1, lease_owner = NULL, lease_until = NULL,
                attempts = 0, last_error = NULL WHERE id = $2 AND lease_owner = $3";
            on_pool!(db, pool => sqlx::query(SQL).bind(due).bind(id).bind(owner).execute(pool).await.map(|r| r.rows_affected()))?
        }
        None => {
            const SQL: &str = "DELETE FROM jobs WHERE id = $1 AND lease_owner = $2";
            on_pool!(db, pool => sqlx::query(SQL).bind(id).bind(owner).execute(pool).await.map(|r| r.rows_affected()))?
        }
    };
    Ok(result == 1)
}

/// Ends `owner`'s lease on a failed run, recording why and when to try again. The attempt count
/// is kept so callers can back off further each time. Returns `false` if the lease was lost.
pub async fn fail(
    db: &Db,
    id: i64,
    owner: &str,
    error: &str,
    retry_at: UnixSeconds,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE jobs SET due_at = $1, lease_owner = NULL, lease_until = NULL,
        last_error = $2 WHERE id = $3 AND lease_owner = $4";
    let affected = on_pool!(db, pool => sqlx::query(SQL).bind(retry_at).bind(error).bind(id).bind(owner).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(affected == 1)
}

/// Removes every job about `subject` (e.g. when a connection is deleted).
pub async fn cancel_for_subject(db: &Db, subject: &str) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM jobs WHERE subject = $1";
    Ok(
        on_pool!(db, pool => sqlx::query(SQL).bind(subject).execute(pool).await.map(|r| r.rows_affected()))?,
    )
}

/// The job for `(kind, subject)`, if any.
pub async fn get(db: &Db, kind: &str, subject: &str) -> Result<Job, DbError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND subject = $2");
    Ok(on_pool!(db, pool => sqlx::query_as(&sql).bind(kind).bind(subject).fetch_one(pool).await)?)
}
