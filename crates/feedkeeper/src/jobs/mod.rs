//! Background work: the one [`runner`] every worker plugs into, and the workers. Each worker is
//! a [`runner::Work`] (a job kind, its concurrency, an optional pause, and the work for one
//! job); tests drive a kind one pass at a time with [`runner::run_due`], and in production
//! [`spawn`] runs every kind on every node until shutdown.

pub mod images;
pub mod lifecycle;
pub mod mail;
pub mod maintenance;
pub mod runner;
pub mod sync;
pub mod webhooks;

use tokio::sync::watch;

use crate::state::AppState;
use runner::{Report, RunnerSettings};

/// Runs every worker on this node until `shutdown` turns true; the handle ends when all have
/// stopped (each finishes or hands back its jobs). Makes sure the recurring jobs exist first.
pub async fn spawn(
    state: AppState,
    node: &str,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<Report>> {
    let now = state.clock.now();
    if let Err(e) = crate::db::jobs::ensure(
        &state.db,
        maintenance::MAINTENANCE_JOB,
        maintenance::SUBJECT,
        now,
        now,
    )
    .await
    {
        tracing::error!(error = %e, "could not schedule the maintenance job");
    }
    if let Err(e) = crate::mail::ensure_jobs(&state, now).await.map(|_| ()) {
        tracing::error!(error = %e, "could not schedule the mail job");
    }
    // Connections made before posts were synced get their first sync now.
    match crate::db::jobs::ensure_for_connections(&state.db, crate::connections::SYNC_JOB, now)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(connections = n, "scheduled a first sync"),
        Err(e) => tracing::error!(error = %e, "could not schedule syncs"),
    }
    let settings = RunnerSettings::from_state(&state, node);
    let workers = vec![
        runner::spawn(
            state.clone(),
            maintenance::MaintenanceWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            lifecycle::LifecycleWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            lifecycle::PurgeWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            sync::SyncWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            images::FetchWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            images::VariantsWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            images::AvifWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            mail::ComposeWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(
            state.clone(),
            mail::SendWork,
            settings.clone(),
            shutdown.clone(),
        ),
        runner::spawn(state, webhooks::DeliveryWork, settings, shutdown),
    ];
    tokio::spawn(async move {
        let mut reports = Vec::new();
        for worker in workers {
            match worker.await {
                Ok(report) => reports.push(report),
                Err(e) => tracing::error!(error = %e, "a worker ended abnormally"),
            }
        }
        reports
    })
}

/// What one pass over every kind did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub lifecycle: Report,
    pub purge: Report,
    pub maintenance: Report,
    pub sync: Report,
    pub image_fetch: Report,
    pub image_variants: Report,
    pub image_avif: Report,
    pub mail_compose: Report,
    pub mail_send: Report,
    pub webhook_delivery: Report,
}

/// Runs every job that is due now, kind by kind, on this node, and returns when none is left:
/// one pass, as tests and `feedkeeper jobs run` want it.
pub async fn run_due_now(state: &AppState, node: &str) -> anyhow::Result<PassReport> {
    let settings = RunnerSettings::from_state(state, node);
    let purge =
        runner::run_due(state, &std::sync::Arc::new(lifecycle::PurgeWork), &settings).await?;
    let lifecycle = runner::run_due(
        state,
        &std::sync::Arc::new(lifecycle::LifecycleWork),
        &settings,
    )
    .await?;
    let maintenance = runner::run_due(
        state,
        &std::sync::Arc::new(maintenance::MaintenanceWork),
        &settings,
    )
    .await?;
    // After the lifecycle: a connection found broken is not synced in the same pass.
    let sync = runner::run_due(state, &std::sync::Arc::new(sync::SyncWork), &settings).await?;
    // After the sync: the pictures it found are fetched, then made into variants.
    let image_fetch =
        runner::run_due(state, &std::sync::Arc::new(images::FetchWork), &settings).await?;
    let image_variants =
        runner::run_due(state, &std::sync::Arc::new(images::VariantsWork), &settings).await?;
    let image_avif =
        runner::run_due(state, &std::sync::Arc::new(images::AvifWork), &settings).await?;
    // Last: the incidents this pass opened or closed have their notices written.
    let mail_compose =
        runner::run_due(state, &std::sync::Arc::new(mail::ComposeWork), &settings).await?;
    let mail_send = runner::run_due(state, &std::sync::Arc::new(mail::SendWork), &settings).await?;
    let webhook_delivery = runner::run_due(
        state,
        &std::sync::Arc::new(webhooks::DeliveryWork),
        &settings,
    )
    .await?;
    Ok(PassReport {
        lifecycle,
        purge,
        maintenance,
        sync,
        image_fetch,
        image_variants,
        image_avif,
        mail_compose,
        mail_send,
        webhook_delivery,
    })
}
