//! The one job runner every background worker plugs into.
//!
//! A worker is a [`Work`]: a job kind, how many of its jobs may run at once on a node, an
//! optional pause (Meta throttling the whole app), and the work for one job. The runner claims
//! no more jobs than it has free slots, renews each lease while its job runs (so a short lease is
//! safe and a killed node strands little for long), isolates a failure or a panic to its job,
//! retries failed jobs with exponential back-off until they go dead for an operator, and on
//! shutdown finishes what it can within a grace period and hands the rest back. It never decides
//! what a job means: the work returns when the job is next due.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::{UnixSeconds, wall_ms};
use crate::db::jobs::{self, Job, Lease};
use crate::state::AppState;

/// One kind of background work.
pub trait Work: Send + Sync + 'static {
    /// The job kind this work claims (`jobs.kind`).
    fn kind(&self) -> &'static str;

    /// Jobs of this kind in flight at once on one node.
    fn concurrency(&self, state: &AppState) -> usize;

    /// Until when no job of this kind may start, on any node (`None`: not paused). Most kinds
    /// are never paused; the ones that call Meta's API follow its app-wide throttling.
    fn paused_until(
        &self,
        _state: &AppState,
        _now: UnixSeconds,
    ) -> impl Future<Output = anyhow::Result<Option<UnixSeconds>>> + Send {
        async { Ok(None) }
    }

    /// Does one job. Returns when it is next due (`None`: nothing left to do, the job is
    /// removed). An error (or a panic) counts as a failed attempt and is retried with back-off.
    /// Writes about what the job works on should be fenced with [`Claimed::lease`].
    fn run(
        &self,
        state: &AppState,
        job: &Claimed,
    ) -> impl Future<Output = anyhow::Result<Option<UnixSeconds>>> + Send;
}

/// A job this node holds.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub job: Job,
    pub lease: Lease,
    /// The lease length, for renewing it.
    pub lease_ms: i64,
}

/// First retry of a failed job after this long, doubled per attempt up to [`MAX_RETRY_SECS`].
const FIRST_RETRY_SECS: i64 = 30;
const MAX_RETRY_SECS: i64 = 3600;

/// When a job that failed its `attempts`-th time in a row runs again.
pub fn retry_delay(attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 20) as u32 - 1;
    FIRST_RETRY_SECS
        .saturating_mul(1_i64 << doublings.min(16))
        .min(MAX_RETRY_SECS)
}

/// What a run of the runner did (a [`run_due`] pass, or a node's life so far).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Jobs that ran to the end.
    pub finished: usize,
    /// Jobs that failed (error or panic) and will be retried, or went dead.
    pub failed: usize,
    /// Jobs whose lease another node had taken over by the time they ended.
    pub lost: usize,
    /// Set when the kind is paused: nothing was claimed after that.
    pub paused_until: Option<UnixSeconds>,
}

/// The runner's settings for one node, from `[workers]`.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    pub node: Arc<str>,
    pub lease_ms: i64,
    pub max_attempts: i64,
    pub grace: Duration,
    pub poll: Duration,
}

impl RunnerSettings {
    pub fn from_state(state: &AppState, node: &str) -> RunnerSettings {
        let w = &state.config.workers;
        RunnerSettings {
            node: Arc::from(node),
            lease_ms: (w.lease_secs as i64).saturating_mul(1000),
            max_attempts: w.max_attempts as i64,
            grace: Duration::from_secs(w.shutdown_grace_secs),
            poll: Duration::from_secs(state.config.lifecycle.worker_poll_secs),
        }
    }
}

/// The jobs in flight on this node for one kind.
struct InFlight {
    tasks: JoinSet<anyhow::Result<Option<UnixSeconds>>>,
    claims: HashMap<tokio::task::Id, Claimed>,
}

impl InFlight {
    fn new() -> Self {
        InFlight {
            tasks: JoinSet::new(),
            claims: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.claims.len()
    }

    /// Claims as many due jobs as there are free slots and starts them. Returns how many, or the
    /// pause that stopped it.
    async fn fill<W: Work>(
        &mut self,
        state: &AppState,
        work: &Arc<W>,
        settings: &RunnerSettings,
    ) -> anyhow::Result<Result<usize, UnixSeconds>> {
        let free = work.concurrency(state).saturating_sub(self.len());
        if free == 0 {
            return Ok(Ok(0));
        }
        let now = state.clock.now();
        if let Some(until) = work.paused_until(state, now).await? {
            return Ok(Err(until));
        }
        for job in jobs::bury_abandoned(
            &state.db,
            work.kind(),
            now,
            wall_ms(),
            settings.max_attempts,
        )
        .await?
        {
            tracing::error!(kind = %job.kind, subject = %job.subject, attempts = job.attempts,
                "job claimed too often without ending (the node running it stopped each time); \
                 it waits for an operator (feedkeeper jobs retry)");
        }
        let claimed = jobs::claim_due(
            &state.db,
            work.kind(),
            &settings.node,
            now,
            wall_ms(),
            settings.lease_ms,
            free as i64,
        )
        .await?;
        let count = claimed.len();
        for job in claimed {
            let Some(lease) = job.lease() else { continue };
            let claim = Claimed {
                job,
                lease,
                lease_ms: settings.lease_ms,
            };
            let (state, work, task_claim) = (state.clone(), work.clone(), claim.clone());
            let handle = self
                .tasks
                .spawn(async move { run_leased(&state, &*work, &task_claim).await });
            self.claims.insert(handle.id(), claim);
        }
        Ok(Ok(count))
    }

    /// Waits for the next job to end. Cancel-safe: a job's end is either returned or still
    /// waiting in the set.
    async fn next_done(&mut self) -> Option<(Claimed, anyhow::Result<Option<UnixSeconds>>)> {
        let done = self.tasks.join_next_with_id().await?;
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            Err(e) => {
                let detail = if e.is_panic() {
                    "the job panicked"
                } else {
                    "the job was cancelled"
                };
                (e.id(), Err(anyhow::anyhow!(detail)))
            }
        };
        let claim = self.claims.remove(&id)?;
        Some((claim, result))
    }

    /// Waits for the next job to end and records its result.
    async fn settle_next(
        &mut self,
        state: &AppState,
        kind: &str,
        settings: &RunnerSettings,
        report: &mut Report,
    ) {
        if let Some((claim, result)) = self.next_done().await {
            record(state, kind, settings, &claim, result, report).await;
        }
    }

    /// Shutdown: waits up to the grace period for running jobs, then stops the rest and hands
    /// their leases back so another node (or this one, restarted) runs them at once.
    async fn stop(
        &mut self,
        state: &AppState,
        kind: &str,
        settings: &RunnerSettings,
        report: &mut Report,
    ) {
        let deadline = tokio::time::Instant::now() + settings.grace;
        while self.len() > 0 {
            match tokio::time::timeout_at(deadline, self.next_done()).await {
                Ok(Some((claim, result))) => {
                    record(state, kind, settings, &claim, result, report).await
                }
                // The deadline passed, or no task is left though claims remain.
                Ok(None) | Err(_) => break,
            }
        }
        if self.len() == 0 {
            return;
        }
        self.tasks.abort_all();
        // A job may have ended between the deadline and the abort: its end is recorded like any
        // other (handing it back would run it again). The rest were stopped: handed back.
        while let Some(done) = self.tasks.join_next_with_id().await {
            let (id, ended) = match done {
                Ok((id, result)) => (id, Some(result)),
                Err(e) if e.is_panic() => (e.id(), Some(Err(anyhow::anyhow!("the job panicked")))),
                Err(e) => (e.id(), None),
            };
            let Some(claim) = self.claims.remove(&id) else {
                continue;
            };
            match ended {
                Some(result) => record(state, kind, settings, &claim, result, report).await,
                None => hand_back(state, kind, &claim, report).await,
            }
        }
    }
}

/// A job's end found its lease taken over by another node (this one stalled past it).
fn lease_lost(state: &AppState, kind: &str, subject: &str, report: &mut Report) {
    state.metrics.job_ended(kind, "lost");
    report.lost += 1;
    tracing::warn!(kind, %subject, "lease lost: another node took this job over");
}

/// Gives a stopped job's lease back, so another node (or this one, restarted) runs it at its
/// next look instead of when the lease would have run out.
async fn hand_back(state: &AppState, kind: &str, claim: &Claimed, report: &mut Report) {
    let subject = &claim.job.subject;
    match jobs::release(&state.db, &claim.lease).await {
        Ok(true) => {
            state.metrics.job_ended(kind, "handed_back");
            tracing::info!(kind, %subject, "job handed back on shutdown");
        }
        Ok(false) => lease_lost(state, kind, subject, report),
        Err(e) => {
            state.metrics.job_ended(kind, "unrecorded");
            tracing::warn!(kind, %subject, error = %e,
                "could not hand a job back; its lease will run out");
        }
    }
}

/// Runs one job while renewing its lease every third of the lease length. A job whose lease is
/// lost (another node took it over after this one stalled) is stopped at once: its writes would
/// be refused by the fence anyway, and its calls to Meta would be spent for nothing.
async fn run_leased<W: Work>(
    state: &AppState,
    work: &W,
    claim: &Claimed,
) -> anyhow::Result<Option<UnixSeconds>> {
    let job = work.run(state, claim);
    tokio::pin!(job);
    let every = Duration::from_millis((claim.lease_ms / 3).max(50) as u64);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            result = &mut job => return result,
            _ = renew.tick() => {
                match jobs::hold(&state.db, &claim.lease, wall_ms(), claim.lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(kind = %claim.job.kind, subject = %claim.job.subject,
                            "lease lost while the job ran; the job was stopped");
                        anyhow::bail!("the job's lease was lost while it ran; it was stopped");
                    }
                    Err(e) => tracing::warn!(kind = %claim.job.kind, error = %e, "lease renewal failed"),
                }
            }
        }
    }
}

/// Ends a job's lease with its result: the next due time, or a retry with back-off (dead after
/// too many attempts in a row). A database error here is logged: the lease then runs out and
/// the job runs again, which every work tolerates.
async fn record(
    state: &AppState,
    kind: &str,
    settings: &RunnerSettings,
    claim: &Claimed,
    result: anyhow::Result<Option<UnixSeconds>>,
    report: &mut Report,
) {
    let subject = &claim.job.subject;
    let mut outcome = "finished";
    let written = match result {
        Ok(next) => {
            report.finished += 1;
            jobs::finish(&state.db, &claim.lease, next).await
        }
        Err(error) => {
            report.failed += 1;
            let attempts = claim.job.attempts;
            let dead = attempts >= settings.max_attempts;
            outcome = if dead { "dead" } else { "retried" };
            let now = state.clock.now();
            if dead {
                tracing::error!(kind, %subject, attempts, error = format!("{error:#}"),
                    "job failed too often; it waits for an operator (feedkeeper jobs retry)");
            } else {
                tracing::warn!(kind, %subject, attempts, error = format!("{error:#}"), "job failed; will retry");
            }
            jobs::fail(
                &state.db,
                &claim.lease,
                &format!("{error:#}"),
                now + retry_delay(attempts),
                dead,
                now,
            )
            .await
        }
    };
    match written {
        Ok(true) => state.metrics.job_ended(kind, outcome),
        Ok(false) => lease_lost(state, kind, subject, report),
        Err(e) => {
            state.metrics.job_ended(kind, "unrecorded");
            tracing::error!(kind, %subject, error = %e, "could not record a job's end")
        }
    }
}

/// Claims and runs every due job of `work`'s kind now, at most `concurrency` at a time, until
/// none is due (or the kind is paused). Tests drive workers with it one pass at a time, and
/// `feedkeeper jobs run` uses it.
pub async fn run_due<W: Work>(
    state: &AppState,
    work: &Arc<W>,
    settings: &RunnerSettings,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut running = InFlight::new();
    loop {
        match running.fill(state, work, settings).await {
            Ok(Ok(_)) => {}
            Ok(Err(until)) => report.paused_until = Some(until),
            Err(e) => {
                running
                    .stop(state, work.kind(), settings, &mut report)
                    .await;
                return Err(e);
            }
        }
        if running.len() == 0 {
            return Ok(report);
        }
        running
            .settle_next(state, work.kind(), settings, &mut report)
            .await;
        if report.paused_until.is_some() {
            // Let what runs end; claim nothing more.
            while running.len() > 0 {
                running
                    .settle_next(state, work.kind(), settings, &mut report)
                    .await;
            }
            return Ok(report);
        }
    }
}

/// Runs `work` on this node until `shutdown` turns true: claims whenever a slot is free and
/// work is due, looks again every poll interval, and stops gracefully.
pub fn spawn<W: Work>(
    state: AppState,
    work: W,
    settings: RunnerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Report> {
    let work = Arc::new(work);
    tokio::spawn(async move {
        let kind = work.kind();
        // Marks the worker dead for `/healthz` if its loop ends any other way than by shutdown
        // (a panic unwinding through it).
        let mut alive = Alive {
            state: state.clone(),
            kind,
            stopped: false,
        };
        let mut report = Report::default();
        let mut running = InFlight::new();
        state.metrics.job_kind_started(kind);
        tracing::info!(kind, node = %settings.node, "worker started");
        while !*shutdown.borrow() {
            state.worker_beats.beat(kind);
            let claimed = match running.fill(&state, &work, &settings).await {
                Ok(Ok(n)) => n,
                Ok(Err(until)) => {
                    report.paused_until = Some(until);
                    0
                }
                Err(e) => {
                    tracing::error!(kind, error = format!("{e:#}"), "could not claim jobs");
                    0
                }
            };
            // Look again at once while claims keep filling slots; otherwise wait for a job to
            // end, the poll interval, or shutdown.
            if claimed > 0 && running.len() < work.concurrency(&state) {
                continue;
            }
            let ended = tokio::select! {
                done = running.next_done(), if running.len() > 0 => done,
                _ = tokio::time::sleep(settings.poll) => None,
                _ = shutdown.changed() => None,
            };
            if let Some((claim, result)) = ended {
                record(&state, kind, &settings, &claim, result, &mut report).await;
            }
        }
        state.worker_beats.stopped(kind);
        alive.stopped = true;
        running.stop(&state, kind, &settings, &mut report).await;
        tracing::info!(kind, node = %settings.node, ?report, "worker stopped");
        report
    })
}

/// A worker's loop, alive until dropped: dropped without `stopped` set, it was cut short.
struct Alive {
    state: AppState,
    kind: &'static str,
    stopped: bool,
}

impl Drop for Alive {
    fn drop(&mut self) {
        if !self.stopped {
            self.state.worker_beats.died(self.kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(retry_delay(1), 30);
        assert_eq!(retry_delay(2), 60);
        assert_eq!(retry_delay(5), 480);
        assert_eq!(retry_delay(8), 3600);
        assert_eq!(retry_delay(1000), 3600);
    }
}
