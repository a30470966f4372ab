//! The image workers: [`FetchWork`] stores a connection's missing originals, [`VariantsWork`]
//! makes one image's WebP and JPEG variants, [`AvifWork`] its AVIF ones afterwards. Thin: what
//! they do lives in `images::ingest`.

use anyhow::Context as _;

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::ids::ConnectionId;
use crate::images::ingest::{self, AvifOutcome, VariantsOutcome};
use crate::images::{AVIF_JOB, FETCH_JOB, ImageKey, VARIANTS_JOB};
use crate::state::AppState;

/// Fetch jobs in flight at once on one node (each fetches `images.fetch_concurrency` originals
/// at a time).
const FETCH_JOBS_PER_NODE: usize = 2;

/// One fetch job per connection (subject: the connection id). Never paused: the CDN is not
/// the API, and Meta's throttling does not apply to it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchWork;

impl Work for FetchWork {
    fn kind(&self) -> &'static str {
        FETCH_JOB
    }

    fn concurrency(&self, _state: &AppState) -> usize {
        FETCH_JOBS_PER_NODE
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Ok(id) = job.job.subject.parse::<ConnectionId>() else {
            tracing::warn!(subject = %job.job.subject, "dropping an image fetch job with a malformed subject");
            return Ok(None);
        };
        let report = ingest::fetch_for_connection(state, id, &job.lease)
            .await
            .with_context(|| format!("storing the images of connection {id}"))?;
        if report.stored > 0 || report.failed > 0 {
            tracing::info!(connection = %id, stored = report.stored, failed = report.failed,
                "images fetched");
        }
        Ok(report.next_due)
    }
}

/// One variants job per image (subject: the image key).
#[derive(Clone, Copy, Debug, Default)]
pub struct VariantsWork;

impl Work for VariantsWork {
    fn kind(&self) -> &'static str {
        VARIANTS_JOB
    }

    /// As many as the image pool has threads: more would only wait for one.
    fn concurrency(&self, state: &AppState) -> usize {
        state.config.images.process_concurrency.max(1) as usize
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Some(key) = ImageKey::parse(&job.job.subject) else {
            tracing::warn!(subject = %job.job.subject, "dropping an image variants job with a malformed subject");
            return Ok(None);
        };
        let outcome = ingest::make_variants(state, key, &job.lease)
            .await
            .with_context(|| format!("making the variants of image {key}"))?;
        match outcome {
            VariantsOutcome::Made { variants, bytes } => {
                tracing::info!(image = %key, variants, bytes, "image variants made");
            }
            VariantsOutcome::Retry => {
                anyhow::bail!("the pictures using image {key} changed meanwhile")
            }
            _ => {}
        }
        Ok(None)
    }
}

/// One AVIF job per image (subject: the image key), scheduled when its other variants are
/// recorded. A kind of its own, one at a time per node: new images' WebP and JPEG never queue
/// behind a backlog of AVIF (at most behind one encode, for a thread of the image pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct AvifWork;

impl Work for AvifWork {
    fn kind(&self) -> &'static str {
        AVIF_JOB
    }

    fn concurrency(&self, _state: &AppState) -> usize {
        1
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let Some(key) = ImageKey::parse(&job.job.subject) else {
            tracing::warn!(subject = %job.job.subject, "dropping an AVIF job with a malformed subject");
            return Ok(None);
        };
        let outcome = ingest::make_avif(state, key, &job.lease)
            .await
            .with_context(|| format!("making the AVIF variants of image {key}"))?;
        if let AvifOutcome::Made { variants, bytes } = outcome {
            tracing::info!(image = %key, variants, bytes, "image AVIF variants made");
        }
        Ok(None)
    }
}
