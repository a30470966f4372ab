//! Due-time rows with leases: the queue every background worker claims from.
//!
//! A job is one `(kind, subject)` pair, e.g. ("lifecycle", connection id). A claim sets a lease:
//! the node's name (for people), a random token (for fencing) and an expiry on the wall clock in
//! milliseconds, renewed while the job runs. Only the holder of the token may renew, finish, fail
//! or release the job; an expired lease makes it claimable again, so a crashed node's work is
//! taken over. Due times are in the service's clock (seconds), which tests move; leases are not,
//! since they are about processes being alive, not about the domain. On PostgreSQL, claims skip
//! rows another node is claiming at the same moment (`FOR UPDATE SKIP LOCKED`); SQLite has a
//! single writer.

use serde::Serialize;

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::config::DatabaseKind;

/// A claimed (or listed) job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub due_at: i64,
    /// The node holding the lease, if any.
    pub lease_owner: Option<String>,
    /// The claim's fencing token; never shown.
    #[serde(skip)]
    pub lease_token: Option<String>,
    pub lease_expires_ms: Option<i64>,
    /// Claims since the job last succeeded.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Set when the job failed too often; it then waits for an operator (`feedkeeper jobs retry`).
    pub dead_at: Option<i64>,
}

impl Job {
    /// The lease this job was claimed under (`None` for a listed, unclaimed job).
    pub fn lease(&self) -> Option<Lease> {
        Some(Lease {
            job_id: self.id,
            token: self.lease_token.clone()?,
        })
    }
}

/// Proof of a claim: writes about the job (and, through [`hold`], about what it works on) succeed
/// only while the token still matches, so a node whose lease ran out changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub job_id: i64,
    pub token: String,
}

const JOB_COLUMNS: &str = "id, kind, subject, due_at, lease_owner, lease_token, lease_expires_ms,
    attempts, last_error, last_error_at, dead_at";

fn new_lease_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// What scheduling a job that exists does: an idle one is moved to the new time; a running one
/// is asked to run again then (`requested_due_at`, the earliest asked, applied when it
/// finishes); a dead one comes back with its attempts reset. Every statement that schedules
/// jobs ends with it.
macro_rules! reschedule_on_conflict {
    () => {
        "ON CONFLICT (kind, subject) DO UPDATE SET
            due_at = CASE WHEN jobs.lease_token IS NULL THEN excluded.due_at ELSE jobs.due_at END,
            requested_due_at = CASE
                WHEN jobs.lease_token IS NULL THEN NULL
                WHEN jobs.requested_due_at IS NOT NULL AND jobs.requested_due_at < excluded.due_at
                    THEN jobs.requested_due_at
                ELSE excluded.due_at END,
            dead_at = NULL,
            attempts = CASE WHEN jobs.dead_at IS NULL THEN jobs.attempts ELSE 0 END"
    };
}
pub(crate) use reschedule_on_conflict;

/// Makes `(kind, subject)` due at `due_at`, creating it if needed, and revives a dead job. A job
/// running right now keeps its lease; the request is remembered and honoured when it finishes
/// (the earlier of the two times wins), so asking during a run is never lost.
pub async fn schedule(
    db: impl Into<Ex<'_>>,
    kind: &str,
    subject: &str,
    due_at: UnixSeconds,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = concat!(
        "INSERT INTO jobs (kind, subject, due_at, created_at) VALUES ($1, $2, $3, $4) ",
        reschedule_on_conflict!()
    );
    on_pool!(db, conn => sqlx::query(SQL).bind(kind).bind(subject).bind(due_at).bind(now).execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// Creates `(kind, subject)` due at `due_at` unless it exists (a recurring job every node makes
/// sure of at start, without moving its schedule).
pub async fn ensure(
    db: impl Into<Ex<'_>>,
    kind: &str,
    subject: &str,
    due_at: UnixSeconds,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO jobs (kind, subject, due_at, created_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (kind, subject) DO NOTHING";
    on_pool!(db, conn => sqlx::query(SQL).bind(kind).bind(subject).bind(due_at).bind(now).execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// Makes a `kind` job, due `now`, for every connection holding a token that has none (connections
/// from before that kind existed). Returns how many were made. An anti-join: it only inserts
/// missing rows, so it never waits behind the transactions that hold existing ones (an insert
/// of a key another transaction is updating waits for it, even with `DO NOTHING`).
pub async fn ensure_for_connections(
    db: impl Into<Ex<'_>>,
    kind: &str,
    now: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "INSERT INTO jobs (kind, subject, due_at, created_at)
        SELECT $1, CAST(c.id AS TEXT), $2, $2 FROM connections c
        WHERE c.token_sealed IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = $1 AND j.subject = CAST(c.id AS TEXT))
        ON CONFLICT (kind, subject) DO NOTHING";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(kind).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Claims up to `limit` due jobs of `kind` for `owner`, leased until `now_ms + lease_ms` (wall
/// clock). Dead jobs and jobs under a live lease are skipped.
#[allow(clippy::too_many_arguments)]
pub async fn claim_due(
    db: impl Into<Ex<'_>>,
    kind: &str,
    owner: &str,
    now: UnixSeconds,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let ex: Ex = db.into();
    // The only query that differs between backends: PostgreSQL must lock the chosen rows and skip
    // rows locked by a concurrent claim; SQLite runs one write at a time, so the plain form is
    // already atomic.
    let lock = match ex.kind() {
        DatabaseKind::Postgres => "FOR UPDATE SKIP LOCKED",
        DatabaseKind::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_token = $2, lease_expires_ms = $3,
             attempts = attempts + 1,
             abandoned = CASE WHEN lease_token IS NULL THEN 0 ELSE abandoned + 1 END
         WHERE id IN (
             SELECT id FROM jobs
             WHERE kind = $4 AND due_at <= $5 AND dead_at IS NULL
               AND (lease_token IS NULL OR lease_expires_ms <= $6)
             ORDER BY due_at, id
             LIMIT $7 {lock})
         RETURNING {JOB_COLUMNS}"
    );
    let mut jobs: Vec<Job> = on_pool!(ex, conn => sqlx::query_as(&sql)
        .bind(owner)
        .bind(new_lease_token())
        .bind(now_ms + lease_ms)
        .bind(kind)
        .bind(now)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(conn)
        .await)?;
    jobs.sort_by_key(|j| (j.due_at, j.id));
    Ok(jobs)
}

/// Parks for an operator the due jobs of `kind` whose last `max_attempts` claims all ended
/// without a result: their lease ran out each time (the process died while running them, as a
/// job that crashes its process would make it do forever). Failed runs do not count: they
/// ended, and their own back-off and dead state apply. Returns them.
pub async fn bury_abandoned(
    db: impl Into<Ex<'_>>,
    kind: &str,
    now: UnixSeconds,
    now_ms: i64,
    max_attempts: i64,
) -> Result<Vec<Job>, DbError> {
    let ex: Ex = db.into();
    let lock = match ex.kind() {
        DatabaseKind::Postgres => "FOR UPDATE SKIP LOCKED",
        DatabaseKind::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET dead_at = $1, last_error_at = $1,
             last_error = 'claimed ' || CAST(abandoned + 1 AS TEXT) || ' times in a row without \
                 ending: the node running it stopped each time (did the job crash the process?)',
             lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL
         WHERE id IN (
             SELECT id FROM jobs
             WHERE kind = $2 AND due_at <= $1 AND dead_at IS NULL AND abandoned + 1 >= $3
               AND lease_token IS NOT NULL AND lease_expires_ms <= $4
             {lock})
         RETURNING {JOB_COLUMNS}"
    );
    Ok(on_pool!(ex, conn => sqlx::query_as(&sql)
        .bind(now)
        .bind(kind)
        .bind(max_attempts)
        .bind(now_ms)
        .fetch_all(conn)
        .await)?)
}

/// Claims one job by name whatever its due time (a person asked for it now), unless another
/// claim holds it. Dead jobs are revived. `None` when it does not exist or is busy.
pub async fn claim_one(
    db: impl Into<Ex<'_>>,
    kind: &str,
    subject: &str,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<Job>, DbError> {
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_token = $2, lease_expires_ms = $3,
             attempts = attempts + 1, dead_at = NULL,
             abandoned = CASE WHEN lease_token IS NULL THEN 0 ELSE abandoned + 1 END
         WHERE kind = $4 AND subject = $5 AND (lease_token IS NULL OR lease_expires_ms <= $6)
         RETURNING {JOB_COLUMNS}"
    );
    Ok(on_pool!(db, conn => sqlx::query_as(&sql)
        .bind(owner)
        .bind(new_lease_token())
        .bind(now_ms + lease_ms)
        .bind(kind)
        .bind(subject)
        .bind(now_ms)
        .fetch_optional(conn)
        .await)?)
}

/// Extends a lease the caller still holds; `false` when it was lost (taken over after expiring,
/// or released). Inside a transaction this is also the fence for the transaction's other writes:
/// it locks the job row, so no other node can take the job over until the transaction ends.
pub async fn hold(
    db: impl Into<Ex<'_>>,
    lease: &Lease,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE jobs SET lease_expires_ms = $1 WHERE id = $2 AND lease_token = $3";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(now_ms + lease_ms).bind(lease.job_id).bind(&lease.token).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether the caller still holds `lease`. Inside a transaction this is the fence for the
/// transaction's other writes: it locks the job row (PostgreSQL; SQLite's write lock is already
/// held), so no other node can take the job over until the transaction ends.
pub async fn is_held(db: impl Into<Ex<'_>>, lease: &Lease) -> Result<bool, DbError> {
    const SQL: &str =
        "UPDATE jobs SET lease_owner = lease_owner WHERE id = $1 AND lease_token = $2";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(lease.job_id).bind(&lease.token).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends a lease on a successful run: the job becomes due again at `next_due` (or earlier, if
/// someone asked for it during the run), or is removed when `None` and nobody asked. Returns
/// `false` if the lease was lost, in which case nothing changes.
pub async fn finish(
    db: impl Into<Ex<'_>>,
    lease: &Lease,
    next_due: Option<UnixSeconds>,
) -> Result<bool, DbError> {
    let mut ex: Ex = db.into();
    if next_due.is_none() {
        const DELETE: &str =
            "DELETE FROM jobs WHERE id = $1 AND lease_token = $2 AND requested_due_at IS NULL";
        let n = on_pool!(ex.re(), conn => sqlx::query(DELETE).bind(lease.job_id).bind(&lease.token).execute(conn).await.map(|r| r.rows_affected()))?;
        if n == 1 {
            return Ok(true);
        }
    }
    const SQL: &str = "UPDATE jobs SET
            due_at = CASE
                WHEN requested_due_at IS NOT NULL AND ($1 IS NULL OR requested_due_at < $1)
                    THEN requested_due_at
                ELSE $1 END,
            requested_due_at = NULL, lease_owner = NULL, lease_token = NULL,
            lease_expires_ms = NULL, attempts = 0, last_error = NULL, last_error_at = NULL,
            dead_at = NULL
        WHERE id = $2 AND lease_token = $3 AND ($1 IS NOT NULL OR requested_due_at IS NOT NULL)";
    let n = on_pool!(ex, conn => sqlx::query(SQL).bind(next_due).bind(lease.job_id).bind(&lease.token).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends a lease on a failed run, recording why and when to try again (or, once `dead` is set,
/// parking the job for an operator). The attempt count is kept so the caller backs off further
/// each time. A request to run made during the run (a reconnect) is news the failure knew
/// nothing of: it is honoured, and keeps the job from going dead. Returns `false` if the lease
/// was lost.
pub async fn fail(
    db: impl Into<Ex<'_>>,
    lease: &Lease,
    error: &str,
    retry_at: UnixSeconds,
    dead: bool,
    now: UnixSeconds,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE jobs SET
            due_at = CASE WHEN requested_due_at IS NOT NULL AND requested_due_at < $1
                THEN requested_due_at ELSE $1 END,
            dead_at = CASE WHEN $4 AND requested_due_at IS NULL THEN $3 ELSE NULL END,
            lease_owner = NULL, lease_token = NULL, lease_expires_ms = NULL,
            requested_due_at = NULL, last_error = $2, last_error_at = $3
        WHERE id = $5 AND lease_token = $6";
    let n = on_pool!(db, conn => sqlx::query(SQL)
        .bind(retry_at)
        .bind(error)
        .bind(now)
        .bind(dead)
        .bind(lease.job_id)
        .bind(&lease.token)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives a claimed job back untouched (a node shutting down before it could run it): due as it
/// was, and the claim does not count as an attempt.
pub async fn release(db: impl Into<Ex<'_>>, lease: &Lease) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,
        lease_expires_ms = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
        due_at = CASE WHEN requested_due_at IS NOT NULL AND requested_due_at < due_at
            THEN requested_due_at ELSE due_at END,
        requested_due_at = NULL
        WHERE id = $1 AND lease_token = $2";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(lease.job_id).bind(&lease.token).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes every job about `subject` (e.g. when a connection is deleted).
pub async fn cancel_for_subject(db: impl Into<Ex<'_>>, subject: &str) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM jobs WHERE subject = $1";
    Ok(
        on_pool!(db, conn => sqlx::query(SQL).bind(subject).execute(conn).await.map(|r| r.rows_affected()))?,
    )
}

/// Removes the job `(kind, subject)`, if any.
pub async fn cancel(db: impl Into<Ex<'_>>, kind: &str, subject: &str) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM jobs WHERE kind = $1 AND subject = $2";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(kind).bind(subject).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The job for `(kind, subject)`, if any.
pub async fn get(db: impl Into<Ex<'_>>, kind: &str, subject: &str) -> Result<Job, DbError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND subject = $2");
    Ok(on_pool!(db, conn => sqlx::query_as(&sql).bind(kind).bind(subject).fetch_one(conn).await)?)
}

/// Dead jobs, oldest first (for operators).
pub async fn list_dead(db: impl Into<Ex<'_>>) -> Result<Vec<Job>, DbError> {
    let sql =
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE dead_at IS NOT NULL ORDER BY dead_at, id");
    Ok(on_pool!(db, conn => sqlx::query_as(&sql).fetch_all(conn).await)?)
}

/// Makes dead jobs due again with a clean attempt count: one job by id, or all of them.
/// Returns how many were revived.
pub async fn retry_dead(
    db: impl Into<Ex<'_>>,
    id: Option<i64>,
    now: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE jobs SET dead_at = NULL, attempts = 0, abandoned = 0, due_at = $1
        WHERE dead_at IS NOT NULL AND ($2 IS NULL OR id = $2)";
    Ok(
        on_pool!(db, conn => sqlx::query(SQL).bind(now).bind(id).execute(conn).await.map(|r| r.rows_affected()))?,
    )
}

/// Makes every live job of `kind` due now (an operator's "check everything"); jobs running right
/// now run again when they finish. Returns how many.
pub async fn make_all_due(
    db: impl Into<Ex<'_>>,
    kind: &str,
    now: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE jobs SET
            due_at = CASE WHEN lease_token IS NULL AND due_at > $1 THEN $1 ELSE due_at END,
            requested_due_at = CASE WHEN lease_token IS NULL THEN NULL ELSE $1 END
        WHERE kind = $2 AND dead_at IS NULL";
    Ok(
        on_pool!(db, conn => sqlx::query(SQL).bind(now).bind(kind).execute(conn).await.map(|r| r.rows_affected()))?,
    )
}

/// How many jobs of one kind are in each state, for the status page and `feedkeeper jobs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct KindCounts {
    pub kind: String,
    /// Waiting for a later due time.
    pub scheduled: i64,
    /// Due and not claimed (a growing number means the workers fall behind).
    pub due: i64,
    /// Under a live lease.
    pub running: i64,
    /// Failed too often; waiting for an operator.
    pub dead: i64,
    /// When the longest-waiting due job became due (`None` when none is due).
    pub oldest_due_at: Option<i64>,
}

pub async fn counts(
    db: impl Into<Ex<'_>>,
    now: UnixSeconds,
    now_ms: i64,
) -> Result<Vec<KindCounts>, DbError> {
    const SQL: &str = "SELECT kind,
            COALESCE(SUM(CASE WHEN dead_at IS NULL AND due_at > $1
                AND (lease_token IS NULL OR lease_expires_ms <= $2) THEN 1 ELSE 0 END), 0) AS scheduled,
            COALESCE(SUM(CASE WHEN dead_at IS NULL AND due_at <= $1
                AND (lease_token IS NULL OR lease_expires_ms <= $2) THEN 1 ELSE 0 END), 0) AS due,
            COALESCE(SUM(CASE WHEN lease_token IS NOT NULL AND lease_expires_ms > $2
                THEN 1 ELSE 0 END), 0) AS running,
            COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS dead,
            MIN(CASE WHEN dead_at IS NULL AND due_at <= $1
                AND (lease_token IS NULL OR lease_expires_ms <= $2) THEN due_at END) AS oldest_due_at
        FROM jobs GROUP BY kind ORDER BY kind";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).bind(now).bind(now_ms).fetch_all(conn).await)?)
}

/// Who holds leases now, for the status page: (node, jobs held).
pub async fn lease_holders(
    db: impl Into<Ex<'_>>,
    now_ms: i64,
) -> Result<Vec<(String, i64)>, DbError> {
    const SQL: &str = "SELECT lease_owner, COUNT(*) FROM jobs
        WHERE lease_token IS NOT NULL AND lease_expires_ms > $1 AND lease_owner IS NOT NULL
        GROUP BY lease_owner ORDER BY lease_owner";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).bind(now_ms).fetch_all(conn).await)?)
}
