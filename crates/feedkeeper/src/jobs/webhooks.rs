//! The webhook worker: `webhook-delivery` makes one delivery's attempts (a job per delivery).
//! The rules live in `crate::webhooks::deliver`.

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::state::AppState;
use crate::webhooks;

#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveryWork;

impl Work for DeliveryWork {
    fn kind(&self) -> &'static str {
        webhooks::DELIVERY_JOB
    }

    fn concurrency(&self, state: &AppState) -> usize {
        state.config.webhooks.concurrency as usize
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let id = webhooks::parse_delivery_subject(&job.job.subject).ok_or_else(|| {
            anyhow::anyhow!(
                "a webhook-delivery job's subject must name a delivery: {:?}",
                job.job.subject
            )
        })?;
        webhooks::deliver::attempt(state, id).await
    }
}
