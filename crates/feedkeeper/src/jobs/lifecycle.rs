//! The lifecycle worker: refreshes tokens before they expire, probes them for revocation, and
//! deletes the data of connections whose app removal outlived the grace period.

use anyhow::Context as _;
use serde::Serialize;

use crate::app::AppState;
use crate::connections::{Actor, LIFECYCLE_JOB, lifecycle};
use crate::db::connections::{self, Status};
use crate::db::{DbError, audit, jobs, meta_pauses};
use crate::ids::ConnectionId;
use crate::meta::Action;

/// How long a claimed check may take before another node may take it over.
const LEASE_SECS: i64 = 300;
const BATCH: i64 = 25;
/// Checks in flight at once on one node: Meta answers in ~100 ms, so one at a time would cap a
/// node at a few hundred connections a minute; more than this would only queue at Meta.
const CONCURRENCY: usize = 8;
/// Bound on batches per pass, so one pass always ends; the rest waits for the next tick.
const MAX_BATCHES: usize = 40;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub checked: usize,
    pub failed: usize,
    pub purged: usize,
    /// Set when Meta throttles the whole app: no check runs before this time, on any node.
    pub paused_until: Option<i64>,
}

/// One pass: every due check, then due purges.
pub async fn run_once(state: &AppState, node: &str, now: i64) -> anyhow::Result<PassReport> {
    let mut report = PassReport {
        purged: purge_deauthorized(state, now).await?,
        ..PassReport::default()
    };
    // Calling while Meta throttles the app extends the block; due checks wait, unclaimed.
    if let Some(until) = meta_pauses::paused_until(&state.db, meta_pauses::APP, now).await? {
        report.paused_until = Some(until);
        return Ok(report);
    }
    for _ in 0..MAX_BATCHES {
        let due = jobs::claim_due(&state.db, LIFECYCLE_JOB, node, now, LEASE_SECS, BATCH)
            .await
            .context("claiming lifecycle checks")?;
        if due.is_empty() {
            break;
        }
        let mut running = tokio::task::JoinSet::new();
        for job in due {
            if running.len() >= CONCURRENCY
                && let Some(done) = running.join_next().await
            {
                record(state, node, now, done?, &mut report).await?;
            }
            let state = state.clone();
            running.spawn(async move {
                let result = check_one(&state, &job.subject, now).await;
                (job, result)
            });
        }
        while let Some(done) = running.join_next().await {
            record(state, node, now, done?, &mut report).await?;
        }
        if let Some(until) = meta_pauses::paused_until(&state.db, meta_pauses::APP, now).await? {
            report.paused_until = Some(until);
            break;
        }
    }
    Ok(report)
}

/// Finishes a job after its check: the next due time, or a retry in a minute on failure.
async fn record(
    state: &AppState,
    node: &str,
    now: i64,
    (job, result): (jobs::Job, anyhow::Result<Option<i64>>),
    report: &mut PassReport,
) -> anyhow::Result<()> {
    match result {
        Ok(next) => {
            jobs::finish(&state.db, job.id, node, next).await?;
            report.checked += 1;
        }
        Err(e) => {
            // A database hiccup: try this connection again in a minute.
            tracing::error!(error = ?e, subject = %job.subject, "lifecycle check failed");
            jobs::fail(&state.db, job.id, node, &e.to_string(), now + 60).await?;
            report.failed += 1;
        }
    }
    Ok(())
}

/// Checks one connection; returns when it is next due (`None`: nothing left to do).
async fn check_one(state: &AppState, subject: &str, now: i64) -> anyhow::Result<Option<i64>> {
    let Ok(id) = subject.parse::<ConnectionId>() else {
        tracing::warn!(subject, "dropping a lifecycle job with a malformed subject");
        return Ok(None);
    };
    let connection = match connections::get(&state.db, id).await {
        Ok(c) => c,
        Err(DbError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if connection.status() == Status::NeedsReconnect || connection.token_sealed.is_none() {
        return Ok(None);
    }
    let outcome = lifecycle::check(state, &connection, now).await;
    if let lifecycle::Outcome::Failed(error) = &outcome
        && error.code() == Some(4)
        && let Action::BackOff { until } = error.action
    {
        meta_pauses::pause(&state.db, meta_pauses::APP, until, &error.message(), now).await?;
        tracing::warn!(until, "Meta throttles the whole app; pausing every check");
    }
    let updated = lifecycle::apply(state, &connection, outcome, Actor::Worker, now).await?;
    Ok(state.policy().next_due(&updated, now, rand::random()))
}

/// Deletes the data of connections deauthorized longer ago than the grace period.
async fn purge_deauthorized(state: &AppState, now: i64) -> anyhow::Result<usize> {
    let cutoff = now - state.policy().deauthorized_grace;
    let due = connections::due_for_purge(&state.db, cutoff).await?;
    for c in &due {
        connections::purge_data(&state.db, c.id, now).await?;
        jobs::cancel_for_subject(&state.db, &c.id.to_string()).await?;
        audit::record(
            &state.db,
            c.id,
            now,
            &audit::NewEntry {
                event: "data_purged",
                detail: Some("the app was removed on Instagram and the grace period ended"),
                actor: Actor::Worker.as_str(),
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(connection = %c.id, "deauthorized connection's data deleted");
    }
    Ok(due.len())
}
