//! Background workers: each claims due rows from the lease queue (`db::jobs`) and does one kind
//! of work. Each has a `run_once(state, node, now)` so tests drive them one pass at a time; in
//! production [`spawn`] runs them in a loop on every node until shutdown.

pub mod lifecycle;

use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;

/// This node's name in leases: the host name plus a random suffix, so two processes on one host
/// never share a lease.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".to_owned());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Runs every worker until `shutdown` turns true. A failing pass is logged and retried on the
/// next tick; it never stops the loop.
pub fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let node = node_name();
    let poll = Duration::from_secs(state.config.lifecycle.worker_poll_secs);
    tokio::spawn(async move {
        tracing::info!(node = %node, "background workers started");
        loop {
            let now = state.clock.now();
            match lifecycle::run_once(&state, &node, now).await {
                Ok(report) if report.checked > 0 || report.purged > 0 => {
                    tracing::debug!(?report, "lifecycle pass")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "lifecycle pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        tracing::info!("background workers stopped");
    })
}
