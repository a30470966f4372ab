//! A rolling restart: two `feedkeeper serve` processes on one database (PostgreSQL in CI's
//! second pass), both refreshing tokens through a slow Meta, one of them serving a widget to
//! clients that keep asking; that one gets SIGTERM. Every request sent before the signal is
//! answered, the node exits 0, the jobs it was running are handed back and done by the other
//! node within seconds (the lease is two minutes), and no token is refreshed twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feedkeeper::clock::Clock;
use feedkeeper::connections::LIFECYCLE_JOB;
use feedkeeper::db::{Db, jobs};

use crate::cli::Running;
use crate::lifecycle::World;

const ACCOUNTS: usize = 16;
/// Far longer than the test: a job that was not handed back would wait this long.
const LEASE_SECS: u64 = 120;

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

fn start_node(w: &World, name: &str, port: u16, log: &std::path::Path) -> Running {
    let listen = format!("127.0.0.1:{port}");
    let child = crate::chaos::node_command(w, name, &listen, LEASE_SECS, log)
        .env("FEEDKEEPER_SERVER__SHUTDOWN_DRAIN_SECS", "2")
        .spawn()
        .unwrap();
    Running(child)
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            Ok(r) if r.status() == 200 => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("node on {port} never became ready: {other:?}"),
        }
    }
}

/// Rows of two integers (or a text and an integer) from `sql`, on either backend.
async fn pairs(db: &Db, sql: &str) -> Vec<(String, i64)> {
    match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .unwrap()
}

/// How many times each connection's token was refreshed (by connection id).
async fn refreshes(db: &Db) -> HashMap<String, i64> {
    pairs(
        db,
        "SELECT CAST(connection_id AS TEXT), COUNT(*) FROM audit_log
         WHERE event = 'refreshed' GROUP BY connection_id",
    )
    .await
    .into_iter()
    .collect()
}

/// The lifecycle jobs `node` holds now.
async fn held_by(db: &Db, node: &str) -> Vec<String> {
    let now_ms = feedkeeper::clock::wall_ms();
    pairs(
        db,
        &format!(
            "SELECT subject, CAST(0 AS BIGINT) FROM jobs WHERE kind = '{LIFECYCLE_JOB}' AND lease_owner = '{node}'
             AND lease_token IS NOT NULL AND lease_expires_ms > {now_ms}"
        ),
    )
    .await
    .into_iter()
    .map(|(subject, _)| subject)
    .collect()
}

/// What one client saw: when it sent a request, and whether the answer was a 200.
type Outcome = (Instant, Result<u16, String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_one_of_two_nodes_loses_no_request_and_no_job() {
    let w = World::new().await;
    w.at_system_time();
    let owner = w.user("rolling@example.com").await;
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        ids.push(w.connect_instagram(owner, &format!("rolling_{i}")).await.id);
    }
    let widget = feedkeeper::widgets::create(
        &w.state,
        owner,
        "Shop",
        ids[0],
        &feedkeeper::widgets::settings::WidgetSettings::default(),
    )
    .await
    .unwrap();
    // Every token is four days old on our side (due for its refresh) and two days old at Meta
    // (old enough to be refreshed); each call to Meta takes a while, so refreshes are under way
    // when the signal comes.
    let now = Clock::System.now();
    let backdate = format!(
        "UPDATE connections SET token_issued_at = {}",
        now - 4 * 86_400
    );
    match &w.state.db {
        Db::Sqlite(pool) => sqlx::query(&backdate).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(&backdate).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    w.sim.advance_clock(2 * 86_400);
    // Far longer than the grace (1 s), so a job under way at the signal is always handed back,
    // however loaded the machine is.
    w.sim.set_latency(Duration::from_millis(5000));

    let logs = tempfile::tempdir().unwrap();
    let (leaving_port, staying_port) = (free_port(), free_port());
    let mut leaving = start_node(
        &w,
        "leaving",
        leaving_port,
        &logs.path().join("leaving.log"),
    );
    let _staying = start_node(
        &w,
        "staying",
        staying_port,
        &logs.path().join("staying.log"),
    );
    wait_ready(leaving_port).await;
    wait_ready(staying_port).await;

    // Clients keep asking the leaving node for the widget, each on its keep-alive connection.
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop_clients = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (outcomes, stop) = (outcomes.clone(), stop_clients.clone());
        let url = format!("http://127.0.0.1:{leaving_port}/w/{}", widget.public_id);
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let result = match http.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes()
                            .await
                            .map(|_| status)
                            .map_err(|e| format!("{e:?}"))
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                let failed = result.is_err();
                outcomes.lock().unwrap().push((sent, result));
                if failed {
                    // The node is gone: ask less often.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    // Let the clients get going first (on a busy machine the leaving node can take a job before
    // they have sent more than a handful), then make every refresh due and wait until the
    // leaving node is running some.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| *r == Ok(200))
            .count();
        if answered > 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leaving node answered only {answered} requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    jobs::make_all_due(&w.state.db, LIFECYCLE_JOB, Clock::System.now())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let held = held_by(&w.state.db, "leaving").await;
        if !held.is_empty() {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the leaving node never took a job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let signalled = Instant::now();
    let pid = leaving.0.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = tokio::task::spawn_blocking(move || {
        let status = leaving.0.wait().unwrap();
        (status, leaving)
    })
    .await
    .unwrap();
    let stopped_after = signalled.elapsed();
    assert!(exit.0.success(), "the node exited with {:?}", exit.0);
    assert!(
        stopped_after < Duration::from_secs(15),
        "stopping took {stopped_after:?}"
    );
    stop_clients.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    // No request sent before the signal failed; the drain answered more after it.
    let outcomes = outcomes.lock().unwrap().clone();
    let before: Vec<_> = outcomes.iter().filter(|(at, _)| *at < signalled).collect();
    assert!(before.len() > 20, "only {} requests", before.len());
    let failed: Vec<_> = before.iter().filter(|(_, r)| *r != Ok(200)).collect();
    assert!(failed.is_empty(), "failed before the signal: {failed:?}");
    let drained = outcomes
        .iter()
        .filter(|(at, r)| *at >= signalled && *r == Ok(200))
        .count();
    assert!(drained > 0, "nothing was answered while draining");

    // The jobs it held were handed back (the grace is shorter than a call to Meta)...
    let log = std::fs::read_to_string(logs.path().join("leaving.log")).unwrap();
    let handed_back = log
        .lines()
        .filter(|l| l.contains("job handed back on shutdown"))
        .count();
    assert!(handed_back > 0, "nothing handed back of {held:?}:\n{log}");
    // ...and every token is refreshed within seconds, not the minute a lease lasts.
    let deadline = signalled + Duration::from_secs(30);
    loop {
        let done = refreshes(&w.state.db).await;
        if done.len() == ACCOUNTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {ACCOUNTS} refreshed {:?} after the signal; held by the leaving node: {held:?}",
            done.len(),
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken_over_in = signalled.elapsed();
    assert!(
        taken_over_in < Duration::from_secs(30),
        "took {taken_over_in:?}"
    );
    // Nothing ran twice: one refresh recorded per token, now and after a moment more. (A
    // refresh handed back while its call to Meta was under way may have reached Meta too; its
    // answer was dropped unused, and the old token stays valid until the new one is stored.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = refreshes(&w.state.db).await;
    assert!(
        done.values().all(|n| *n == 1),
        "refreshed more than once: {done:?}"
    );
    assert!(held_by(&w.state.db, "leaving").await.is_empty());
    eprintln!(
        "rolling restart: {} requests before the signal, {drained} answered while draining, \
         {handed_back} jobs handed back, stopped in {stopped_after:?}, all refreshed {taken_over_in:?} after the signal",
        before.len()
    );
}
