//! The mail workers: `mail-compose` folds due notices into messages (one recurring job), and
//! `mail-send` delivers one message (a job per message). The rules live in `crate::mail`.

use super::runner::{Claimed, Work};
use crate::clock::UnixSeconds;
use crate::mail;
use crate::state::AppState;

#[derive(Clone, Copy, Debug, Default)]
pub struct ComposeWork;

impl Work for ComposeWork {
    fn kind(&self) -> &'static str {
        mail::COMPOSE_JOB
    }

    fn concurrency(&self, _: &AppState) -> usize {
        1
    }

    async fn run(&self, state: &AppState, _: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let (report, next) = mail::compose::run(state).await?;
        if report.messages + report.dropped > 0 {
            tracing::info!(
                messages = report.messages,
                notices = report.notices,
                dropped = report.dropped,
                "mail composed"
            );
        }
        Ok(Some(next))
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SendWork;

impl Work for SendWork {
    fn kind(&self) -> &'static str {
        mail::SEND_JOB
    }

    fn concurrency(&self, state: &AppState) -> usize {
        state.config.mail.send_concurrency as usize
    }

    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        let id = mail::parse_send_subject(&job.job.subject).ok_or_else(|| {
            anyhow::anyhow!(
                "a mail-send job's subject must name a message: {:?}",
                job.job.subject
            )
        })?;
        mail::send::send_one(state, id).await
    }
}
