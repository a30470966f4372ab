//! The maintenance worker: one recurring job that sweeps what expires (OAuth states, pending
//! Facebook Page choices with their sealed Page tokens, the widget change log) and, after a key rotation, seals stored
//! tokens again under the current key a batch at a time (see `crate::keys`), and removes images
//! no widget shows any more (`images::cleanup`), and makes sure every message waiting to be
//! sent has a live job (`mail::ensure_jobs`).

use anyhow::Context as _;

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::db::{oauth_states, page_choices, widget_changes};
use crate::state::AppState;

/// The job kind, and its one subject.
pub const MAINTENANCE_JOB: &str = "maintenance";
pub const SUBJECT: &str = "all";
/// How often it runs.
const EVERY_SECS: i64 = 3600;
/// Objects in the image store that no row knows of are removed once this old (seconds): a
/// fetch that stored an original and is about to record it is long done by then.
const ORPHAN_AGE_SECS: i64 = 3600;
/// Finished webhook deliveries are kept in the log this long (seconds).
const WEBHOOK_LOG_SECS: i64 = 30 * 86_400;
/// Revoked API keys stay listed (refused) this long, then are deleted.
const REVOKED_KEYS_KEPT_SECS: i64 = 30 * 86_400;
/// Tokens resealed per run; when more remain, the next run follows in a minute.
const RESEAL_BATCH: i64 = 500;

#[derive(Clone, Copy, Debug, Default)]
pub struct MaintenanceWork;

impl Work for MaintenanceWork {
    fn kind(&self) -> &'static str {
        MAINTENANCE_JOB
    }

    fn concurrency(&self, _: &AppState) -> usize {
        1
    }

    async fn run(&self, state: &AppState, _: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let now = state.clock.now();
        let states = oauth_states::delete_expired(&state.db, now)
            .await
            .context("sweeping OAuth states")?;
        let choices = page_choices::sweep_expired(&state.db, now)
            .await
            .context("sweeping Page choices")?;
        let reseal = crate::keys::reseal(state, RESEAL_BATCH)
            .await
            .context("resealing tokens")?;
        let mut tx = state.db.begin().await?;
        let changes = widget_changes::trim(&mut tx)
            .await
            .context("trimming the widget change log")?;
        tx.commit().await?;
        let images = crate::images::cleanup::clean_up(state, ORPHAN_AGE_SECS)
            .await
            .context("removing unused images")?;
        let avif_scheduled = crate::db::images::schedule_missing_avif(&state.db, now)
            .await
            .context("scheduling AVIF for older images")?;
        let mail_jobs = crate::mail::ensure_jobs(state, now)
            .await
            .context("making sure every message has its job")?;
        let webhook_log = crate::db::webhooks::prune(&state.db, now - WEBHOOK_LOG_SECS)
            .await
            .context("pruning the webhook delivery log")?;
        let api_answers =
            crate::db::api::prune_answers(&state.db, now - crate::http::api::IDEMPOTENCY_SECS)
                .await
                .context("forgetting the API's kept answers")?;
        let revoked_keys =
            crate::db::api::prune_revoked_keys(&state.db, now - REVOKED_KEYS_KEPT_SECS)
                .await
                .context("deleting long-revoked API keys")?;
        if states + choices + changes > 0
            || reseal.resealed > 0
            || images.unused + images.orphans > 0
            || avif_scheduled > 0
            || mail_jobs > 0
            || webhook_log > 0
            || api_answers > 0
            || revoked_keys > 0
        {
            tracing::info!(
                oauth_states = states,
                page_choices = choices,
                resealed = reseal.resealed,
                widget_changes = changes,
                unused_images = images.unused,
                orphaned_objects = images.orphans,
                avif_scheduled,
                mail_jobs,
                webhook_log,
                api_answers,
                revoked_keys,
                "maintenance"
            );
        }
        let now = state.clock.now();
        Ok(Some(if reseal.resealed as i64 >= RESEAL_BATCH {
            now + 60
        } else {
            now + EVERY_SECS
        }))
    }
}
