//! The lifecycle workers: [`LifecycleWork`] refreshes tokens before they expire and probes them
//! for revocation; [`PurgeWork`] deletes the data of connections whose app removal outlived the
//! grace period. Both are thin: the rules live in `connections`.

use anyhow::Context as _;

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::connections::{self, Actor, LIFECYCLE_JOB, PURGE_JOB, lifecycle};
use crate::db::meta_pauses;
use crate::ids::ConnectionId;
use crate::state::AppState;

/// One lifecycle check per job (subject: the connection id).
#[derive(Clone, Copy, Debug, Default)]
pub struct LifecycleWork;

impl Work for LifecycleWork {
    fn kind(&self) -> &'static str {
        LIFECYCLE_JOB
    }

    /// Meta answers in ~100 ms, so one check at a time would cap a node at a few hundred
    /// connections a minute; many more would only queue at Meta.
    fn concurrency(&self, state: &AppState) -> usize {
        state.config.workers.lifecycle_concurrency as usize
    }

    /// While Meta throttles the whole app, calling extends the block: no check starts anywhere.
    async fn paused_until(
        &self,
        state: &AppState,
        now: UnixSeconds,
    ) -> anyhow::Result<Option<UnixSeconds>> {
        Ok(meta_pauses::paused_until(&state.db, meta_pauses::APP, now).await?)
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Ok(id) = job.job.subject.parse::<ConnectionId>() else {
            tracing::warn!(subject = %job.job.subject, "dropping a lifecycle job with a malformed subject");
            return Ok(None);
        };
        let report = lifecycle::check_and_apply(state, id, &job.lease, job.lease_ms, Actor::Worker)
            .await
            .with_context(|| format!("checking connection {id}"))?;
        Ok(report.next_due)
    }
}

/// Deletes a deauthorized connection's data when its grace period ends (subject: the id).
#[derive(Clone, Copy, Debug, Default)]
pub struct PurgeWork;

impl Work for PurgeWork {
    fn kind(&self) -> &'static str {
        PURGE_JOB
    }

    fn concurrency(&self, _: &AppState) -> usize {
        2
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Ok(id) = job.job.subject.parse::<ConnectionId>() else {
            tracing::warn!(subject = %job.job.subject, "dropping a purge job with a malformed subject");
            return Ok(None);
        };
        connections::purge_if_due(state, id, &job.lease)
            .await
            .with_context(|| format!("purging connection {id}"))
    }
}
