//! The job runner on its own: failures and panics stay with their job, back off, and go dead for
//! an operator; shutdown hands back what it cannot finish.

use std::sync::Arc;
use std::time::Duration;

use feedkeeper::clock::UnixSeconds;
use feedkeeper::db::jobs;
use feedkeeper::jobs::runner::{self, Claimed, RunnerSettings, Work};
use feedkeeper::state::AppState;

use crate::helpers::TestApp;

/// A kind of work that succeeds, fails or panics depending on the job's subject.
struct Flaky;

impl Work for Flaky {
    fn kind(&self) -> &'static str {
        "test_flaky"
    }
    fn concurrency(&self, _: &AppState) -> usize {
        2
    }
    async fn paused_until(&self, _: &AppState, _: UnixSeconds) -> anyhow::Result<Option<i64>> {
        Ok(None)
    }
    async fn run(&self, state: &AppState, job: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        match job.job.subject.as_str() {
            "ok" => Ok(Some(state.clock.now() + 3600)),
            "done" => Ok(None),
            "bad" => anyhow::bail!("the disk is full"),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(None)
            }
            _ => panic!("a bug in the work"),
        }
    }
}

#[tokio::test]
async fn a_failure_or_a_panic_stays_with_its_job_backs_off_and_goes_dead() {
    let app = TestApp::spawn_with(|c| c.workers.max_attempts = 3).await;
    let db = &app.state.db;
    let now = app.state.clock.now();
    for subject in ["ok", "done", "bad", "boom"] {
        jobs::schedule(db, "test_flaky", subject, now, now)
            .await
            .unwrap();
    }
    let settings = RunnerSettings::from_state(&app.state, "n");
    let work = Arc::new(Flaky);
    let report = runner::run_due(&app.state, &work, &settings).await.unwrap();
    assert_eq!((report.finished, report.failed), (2, 2), "{report:?}");
    assert_eq!(
        jobs::get(db, "test_flaky", "ok").await.unwrap().due_at,
        now + 3600
    );
    assert!(
        jobs::get(db, "test_flaky", "done").await.is_err(),
        "finished for good"
    );
    let bad = jobs::get(db, "test_flaky", "bad").await.unwrap();
    assert_eq!(bad.last_error.as_deref(), Some("the disk is full"));
    assert_eq!(bad.due_at, now + runner::retry_delay(1));
    let boom = jobs::get(db, "test_flaky", "boom").await.unwrap();
    assert_eq!(boom.last_error.as_deref(), Some("the job panicked"));

    // Retried with growing delays; after the third attempt, dead.
    for attempt in 2..=3 {
        app.advance(runner::retry_delay(attempt - 1));
        let report = runner::run_due(&app.state, &work, &settings).await.unwrap();
        assert_eq!(report.failed, 2, "attempt {attempt}: {report:?}");
    }
    let dead = jobs::list_dead(db).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    app.advance(30 * 86_400);
    let report = runner::run_due(&app.state, &work, &settings).await.unwrap();
    assert_eq!(
        report.failed + report.finished,
        1,
        "only `ok` runs: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_the_jobs_it_cannot_finish() {
    let app = TestApp::spawn_with(|c| c.workers.shutdown_grace_secs = 1).await;
    let db = &app.state.db;
    let now = app.state.clock.now();
    jobs::schedule(db, "test_flaky", "slow", now, now)
        .await
        .unwrap();
    let settings = RunnerSettings::from_state(&app.state, "stopping-node");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = runner::spawn(app.state.clone(), Flaky, settings, stopped);
    // Wait until the job runs.
    for _ in 0..100 {
        if jobs::get(db, "test_flaky", "slow")
            .await
            .unwrap()
            .lease_owner
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = jobs::get(db, "test_flaky", "slow").await.unwrap();
    assert_eq!(held.lease_owner.as_deref(), Some("stopping-node"));
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stops within its grace period")
        .unwrap();
    let released = jobs::get(db, "test_flaky", "slow").await.unwrap();
    assert_eq!(released.lease_owner, None, "handed back, not stranded");
    assert_eq!((released.due_at, released.attempts), (now, 0));
}

/// A kind of work that keeps "calling Meta" (counting) for as long as it is let run.
struct Endless {
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Work for Endless {
    fn kind(&self) -> &'static str {
        "test_endless"
    }
    fn concurrency(&self, _: &AppState) -> usize {
        1
    }
    async fn paused_until(&self, _: &AppState, _: UnixSeconds) -> anyhow::Result<Option<i64>> {
        Ok(None)
    }
    async fn run(&self, _: &AppState, _: &Claimed) -> anyhow::Result<Option<UnixSeconds>> {
        loop {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs one statement on the test database (to act as another node would).
async fn execute(db: &feedkeeper::db::Db, sql: &str) {
    match db {
        feedkeeper::db::Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        feedkeeper::db::Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_lease_is_lost_is_stopped() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let now = app.state.clock.now();
    jobs::schedule(db, "test_endless", "x", now, now)
        .await
        .unwrap();
    let mut settings = RunnerSettings::from_state(&app.state, "stalled-node");
    settings.lease_ms = 300;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let work = Arc::new(Endless {
        calls: calls.clone(),
    });
    let state = app.state.clone();
    let pass = tokio::spawn(async move { runner::run_due(&state, &work, &settings).await });
    while calls.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another node takes the job over (as after this node stalled past its lease).
    execute(
        db,
        "UPDATE jobs SET lease_owner = 'thief', lease_token = 'stolen', \
         lease_expires_ms = 99999999999999 WHERE kind = 'test_endless'",
    )
    .await;
    let report = tokio::time::timeout(Duration::from_secs(5), pass)
        .await
        .expect("the job was stopped within a renewal")
        .unwrap()
        .unwrap();
    assert_eq!((report.lost, report.finished), (1, 0), "{report:?}");
    let stopped_at = calls.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        stopped_at,
        "it no longer runs"
    );
    let job = jobs::get(db, "test_endless", "x").await.unwrap();
    assert_eq!(
        job.lease_owner.as_deref(),
        Some("thief"),
        "the thief's claim stands"
    );
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_node_goes_dead() {
    let app = TestApp::spawn_with(|c| c.workers.max_attempts = 3).await;
    let db = &app.state.db;
    let now = app.state.clock.now();
    jobs::schedule(db, "test_flaky", "ok", now, now)
        .await
        .unwrap();
    // Three nodes in a row claim it and die while running it: their leases run out unended.
    for node in ["doomed-1", "doomed-2", "doomed-3"] {
        let claimed = jobs::claim_due(
            db,
            "test_flaky",
            node,
            now,
            feedkeeper::clock::wall_ms(),
            1,
            10,
        )
        .await
        .unwrap();
        assert_eq!(claimed.len(), 1, "{node}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let settings = RunnerSettings::from_state(&app.state, "next-node");
    let report = runner::run_due(&app.state, &Arc::new(Flaky), &settings)
        .await
        .unwrap();
    assert_eq!(
        (report.finished, report.failed),
        (0, 0),
        "not run again: {report:?}"
    );
    let dead = jobs::list_dead(db).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].lease_owner.is_none());
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("claimed 3 times"),
        "{dead:?}"
    );
    // An operator's retry brings it back, and it runs.
    jobs::retry_dead(db, Some(dead[0].id), now).await.unwrap();
    let report = runner::run_due(&app.state, &Arc::new(Flaky), &settings)
        .await
        .unwrap();
    assert_eq!(report.finished, 1, "{report:?}");
}
