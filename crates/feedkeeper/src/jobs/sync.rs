//! The sync worker: [`SyncWork`] fetches each connection's profile and posts on its schedule.
//! Thin: what a sync does lives in `feeds::sync`.

use anyhow::Context as _;

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::connections::SYNC_JOB;
use crate::db::meta_pauses;
use crate::feeds::sync;
use crate::ids::ConnectionId;
use crate::state::AppState;

/// One sync per job (subject: the connection id).
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncWork;

impl Work for SyncWork {
    fn kind(&self) -> &'static str {
        SYNC_JOB
    }

    fn concurrency(&self, state: &AppState) -> usize {
        state.config.sync.concurrency as usize
    }

    /// While Meta throttles the whole app, calling extends the block: no sync starts anywhere.
    async fn paused_until(
        &self,
        state: &AppState,
        now: UnixSeconds,
    ) -> anyhow::Result<Option<UnixSeconds>> {
        Ok(meta_pauses::paused_until(&state.db, meta_pauses::APP, now).await?)
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Ok(id) = job.job.subject.parse::<ConnectionId>() else {
            tracing::warn!(subject = %job.job.subject, "dropping a sync job with a malformed subject");
            return Ok(None);
        };
        let report = sync::sync_connection(state, id, &job.lease, job.lease_ms)
            .await
            .with_context(|| format!("syncing connection {id}"))?;
        Ok(report.next_due)
    }
}
