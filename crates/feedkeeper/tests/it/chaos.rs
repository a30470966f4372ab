//! Two `feedkeeper serve` processes on one database, checks due all the time, one process
//! killed with SIGKILL and restarted every few seconds, while accounts are revoked and
//! reconnected. The simulator's request log is the witness: no account is ever checked by two
//! calls at once, every reconnected account ends active and scheduled, no job is lost or stuck,
//! the SMTP server (`smtp_sink`) received every message the outbox says was sent, and the
//! webhook receiver every event.
//! Runs on SQLite and, in CI's second pass, on PostgreSQL; `CHAOS_SECS` sets its length.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use feedkeeper::clock::Clock;
use feedkeeper::connections::{LIFECYCLE_JOB, SYNC_JOB};
use feedkeeper::db::connections::Status;
use feedkeeper::db::jobs;
use meta_sim::AccountEvent;

use crate::cli::{Running, feedkeeper};
use crate::lifecycle::World;

const ACCOUNTS: usize = 24;
/// Accounts a widget shows (their images are stored by the nodes).
const SHOWN: usize = 4;

/// `feedkeeper serve` on `listen` as a node of `w` named `name`: leases of `lease_secs`, a
/// second's grace and poll, JSON logs to `log`.
pub(crate) fn node_command(
    w: &World,
    name: &str,
    listen: &str,
    lease_secs: u64,
    log: &std::path::Path,
) -> std::process::Command {
    let log = std::fs::File::create(log).unwrap();
    let mut command = feedkeeper();
    command
        .args(["serve", "--listen", listen])
        .envs(w.binary_env())
        .env("FEEDKEEPER_WORKERS__NODE_NAME", name)
        .env("FEEDKEEPER_WORKERS__LEASE_SECS", lease_secs.to_string())
        .env("FEEDKEEPER_WORKERS__SHUTDOWN_GRACE_SECS", "1")
        .env("FEEDKEEPER_LIFECYCLE__WORKER_POLL_SECS", "1")
        .env("RUST_LOG", "feedkeeper=info")
        .env("FEEDKEEPER_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// Starts one node; its log goes to `log`.
fn start_node(w: &World, smtp_port: u16, name: &str, log: &std::path::Path) -> Running {
    let child = node_command(w, name, "127.0.0.1:0", 3, log)
        .env("FEEDKEEPER_MAIL__SMTP_HOST", "127.0.0.1")
        .env("FEEDKEEPER_MAIL__SMTP_PORT", smtp_port.to_string())
        .env("FEEDKEEPER_MAIL__SMTP_SECURITY", "none")
        .env("FEEDKEEPER_MAIL__GROUP_SECS", "1")
        .env("FEEDKEEPER_MAIL__FROM", "alerts@chaos.test")
        // The webhook receiver is on this machine.
        .env("FEEDKEEPER_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES", "true")
        .spawn()
        .unwrap();
    Running(child)
}

/// Lines of the nodes' logs that show something going wrong that a kill does not excuse: a
/// database conflict (even one retried), a pool timeout, a lost lease.
fn unexpected_log_lines(dir: &std::path::Path) -> Vec<String> {
    // SQLSTATEs as they appear in a log line (quoted: a bare 40001 also stands in timestamps).
    const TROUBLE: [&str; 7] = [
        "\"40P01\"",
        "\"40001\"",
        "deadlock",
        "PoolTimedOut",
        "pool timed out",
        "lease lost",
        "lease was lost",
    ];
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            if TROUBLE.iter().any(|t| line.contains(t)) {
                let name = path.file_name().unwrap().to_string_lossy();
                found.push(format!("{name}: {line}"));
            }
        }
    }
    found
}

fn chaos_secs() -> u64 {
    std::env::var("CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_two_nodes_one_killed_again_and_again_never_check_twice_or_lose_work() {
    let w = World::new().await;
    w.at_system_time();
    // Every Meta call takes a while, so checks overlap reconnects and kills often.
    w.sim.set_latency(Duration::from_millis(80));
    let owner = w.user("chaos@example.com").await;
    // Windows in which this test itself talked to Meta about an account (its connects and
    // reconnects): those calls are not checks.
    let mut own_calls: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        let name = format!("chaos_{i}");
        let from = feedkeeper::clock::wall_ms();
        accounts.push((name.clone(), w.connect_instagram(owner, &name).await));
        let to = feedkeeper::clock::wall_ms();
        own_calls.entry(name).or_default().push((from, to));
    }
    // A widget shows a few of the accounts, so the nodes also store their images (fetch and
    // variants jobs, a few dozen images) while one of them is killed again and again.
    for (name, c) in accounts.iter().take(SHOWN) {
        feedkeeper::widgets::create(
            &w.state,
            owner,
            name,
            c.id,
            &feedkeeper::widgets::settings::WidgetSettings::default(),
        )
        .await
        .unwrap();
    }
    // A webhook endpoint hears every event; its receiver counts each webhook-id it gets.
    let hooks = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook_listener.local_addr().unwrap());
    let seen = hooks.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                *seen.lock().unwrap().entry(id).or_default() += 1;
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(hook_listener, receiver).await.unwrap() });
    let sealed = feedkeeper::webhooks::seal_secret(
        &w.state,
        owner,
        &feedkeeper::webhooks::signing::new_secret(),
    );
    let endpoint = feedkeeper::db::webhooks::create_endpoint(
        &w.state.db,
        owner,
        &hook_url,
        "",
        &sealed,
        Clock::System.now(),
    )
    .await
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let smtp = crate::smtp_sink::SmtpSink::start().await;
    let steady = start_node(&w, smtp.port, "steady", &logs.path().join("steady.log"));
    let mut victim = Some(start_node(
        &w,
        smtp.port,
        "victim-0",
        &logs.path().join("victim-0.log"),
    ));

    let mut revoked: HashSet<String> = HashSet::new();
    let mut reconnected: HashSet<String> = HashSet::new();
    let mut rng = 7u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let started = Instant::now();
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_secs(3);
    while started.elapsed() < Duration::from_secs(chaos_secs()) {
        // Checks due all the time.
        jobs::make_all_due(&w.state.db, LIFECYCLE_JOB, Clock::System.now())
            .await
            .unwrap();
        // Revoke one account, or reconnect a revoked one.
        let (name, _) = &accounts[(next() % ACCOUNTS as u64) as usize];
        if revoked.remove(name) {
            let from = feedkeeper::clock::wall_ms();
            w.connect_instagram(owner, name).await;
            let to = feedkeeper::clock::wall_ms();
            own_calls.entry(name.clone()).or_default().push((from, to));
            reconnected.insert(name.clone());
        } else {
            w.sim
                .apply_event(name, AccountEvent::PasswordChanged)
                .await
                .unwrap();
            revoked.insert(name.clone());
            reconnected.remove(name);
        }
        if Instant::now() >= next_kill {
            drop(victim.take()); // SIGKILL
            kills += 1;
            let log = logs.path().join(format!("victim-{kills}.log"));
            victim = Some(start_node(&w, smtp.port, &format!("victim-{kills}"), &log));
            next_kill = Instant::now() + Duration::from_millis(3000 + next() % 4000);
        }
        tokio::time::sleep(Duration::from_millis(150 + next() % 200)).await;
    }
    // Everyone revoked gets reconnected, then the nodes settle: one more round of checks.
    for name in revoked.drain() {
        let from = feedkeeper::clock::wall_ms();
        w.connect_instagram(owner, &name).await;
        let to = feedkeeper::clock::wall_ms();
        own_calls.entry(name.clone()).or_default().push((from, to));
        reconnected.insert(name);
    }
    jobs::make_all_due(&w.state.db, LIFECYCLE_JOB, Clock::System.now())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = jobs::counts(
            &w.state.db,
            Clock::System.now(),
            feedkeeper::clock::wall_ms(),
        )
        .await
        .unwrap();
        let lifecycle = counts.iter().find(|k| k.kind == LIFECYCLE_JOB).unwrap();
        if lifecycle.due == 0 && lifecycle.running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "jobs never settled: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every picture stored and made into variants, whatever the kills interrupted.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let totals = feedkeeper::db::images::totals(&w.state.db).await.unwrap();
        let pending = feedkeeper::db::images::pending(&w.state.db).await.unwrap();
        if totals.images > 0 && pending.is_empty() && totals.waiting_pictures == 0 {
            assert_eq!(totals.failed, 0, "{totals:?}");
            break;
        }
        if Instant::now() >= deadline {
            let mut jobs_of = Vec::new();
            for key in &pending {
                jobs_of.push(jobs::get(&w.state.db, feedkeeper::images::VARIANTS_JOB, key).await);
            }
            let kept = logs.keep();
            panic!(
                "images never settled: {totals:?}, pending {pending:?}, jobs {jobs_of:?}, logs in {}",
                kept.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every message written to the outbox is delivered (the compose job polls each minute).
    let deadline = Instant::now() + Duration::from_secs(150);
    let messages = loop {
        let notices = feedkeeper::db::mail::all_notices(&w.state.db)
            .await
            .unwrap();
        let now = Clock::System.now();
        let waiting = notices
            .iter()
            .filter(|n| !n.composed && n.due_at < now)
            .count();
        let counts = feedkeeper::db::mail::count_by_status(&w.state.db)
            .await
            .unwrap();
        let pending: i64 = counts
            .iter()
            .filter(|(s, _)| s == "pending")
            .map(|(_, n)| n)
            .sum();
        if waiting == 0 && pending == 0 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "mail never settled: {waiting} notices due, {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Every webhook delivery is made (the first attempt follows at once).
    let deadline = Instant::now() + Duration::from_secs(60);
    let deliveries = loop {
        let all = feedkeeper::db::webhooks::list_deliveries(&w.state.db, endpoint.id, 100_000)
            .await
            .unwrap();
        if all.iter().all(|d| d.status != "pending") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks never settled: {:?}",
            all.iter()
                .filter(|d| d.status == "pending")
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    drop(victim);
    drop(steady);
    w.sim.set_latency(Duration::ZERO);
    assert!(
        deliveries
            .iter()
            .any(|d| d.event_type == "connection.needs_reconnect"),
        "the revocations made events"
    );
    let got = hooks.lock().unwrap().clone();
    for d in &deliveries {
        assert_eq!(d.status, "delivered", "{d:?}");
        assert!(
            got.contains_key(&d.event_id),
            "{} never arrived",
            d.event_id
        );
    }
    assert_eq!(
        got.len(),
        deliveries.len(),
        "events the database does not know arrived"
    );
    let hook_repeats: usize = got.values().map(|n| n - 1).sum();
    assert!(
        hook_repeats <= kills as usize,
        "{hook_repeats} repeats, {kills} kills"
    );
    eprintln!(
        "chaos webhooks: {} deliveries, {hook_repeats} repeats, {kills} kills",
        deliveries.len()
    );
    // Sent, or withdrawn: still waiting when its account was reconnected (which this test
    // does often); one already on its way then may still arrive.
    assert!(
        messages
            .iter()
            .all(|(status, _)| status == "sent" || status == "withdrawn"),
        "{messages:?}"
    );
    let received = smtp.received();
    let mut received_ids: HashMap<String, usize> = HashMap::new();
    for m in &received {
        *received_ids
            .entry(m.header("Message-ID").unwrap())
            .or_default() += 1;
    }
    let sent_ids = feedkeeper::db::mail::sent_message_ids(&w.state.db)
        .await
        .unwrap();
    assert!(!sent_ids.is_empty(), "the revocations were mailed");
    for id in &sent_ids {
        assert!(
            received_ids.contains_key(id),
            "{id} was recorded sent but never arrived"
        );
    }
    let duplicates: usize = received_ids.values().map(|n| n - 1).sum();
    let withdrawn = feedkeeper::db::mail::message_ids_with_status(&w.state.db, "withdrawn")
        .await
        .unwrap();
    for id in received_ids.keys() {
        assert!(
            sent_ids.contains(id) || withdrawn.contains(id),
            "the server got a message the outbox does not know: {id}"
        );
    }
    // A kill between the server's answer and the record costs one resend, with the same id.
    assert!(
        duplicates <= kills as usize,
        "{duplicates} duplicates, {kills} kills"
    );
    eprintln!(
        "chaos mail: {} messages, {} received, {duplicates} duplicates, {kills} kills",
        sent_ids.len(),
        received.len()
    );
    // No image is recorded ready without every one of its objects whole in the store.
    let store = &w.state.images.store;
    for image in feedkeeper::db::images::ready(&w.state.db).await.unwrap() {
        let key = feedkeeper::images::ImageKey::parse(&image.key).unwrap();
        assert!(
            store.exists(&key.original_path()).await.unwrap(),
            "{image:?}"
        );
        for width in image.made_widths().unwrap() {
            for format in feedkeeper::images::parse_formats(image.formats.as_deref()) {
                let bytes = store
                    .get(&key.variant_path(width, format))
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{image:?} lacks {width} {format:?}"));
                let (w, _) = feedkeeper::images::process::variant_size(&bytes, format)
                    .unwrap_or_else(|e| panic!("{image:?} {width} {format:?}: {e}"));
                assert_eq!(w, width, "{image:?} {format:?}");
            }
        }
    }
    for kind in [
        feedkeeper::images::FETCH_JOB,
        feedkeeper::images::VARIANTS_JOB,
        feedkeeper::images::AVIF_JOB,
        feedkeeper::mail::COMPOSE_JOB,
        feedkeeper::mail::SEND_JOB,
        feedkeeper::webhooks::DELIVERY_JOB,
    ] {
        let dead: Vec<_> = jobs::list_dead(&w.state.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == kind)
            .collect();
        assert!(dead.is_empty(), "dead {kind} jobs: {dead:?}");
    }
    let trouble = unexpected_log_lines(logs.path());
    assert!(
        trouble.is_empty(),
        "the nodes logged trouble:\n{}",
        trouble.join("\n")
    );

    // No account was ever checked by two calls at once, nor synced by two syncs at once (a
    // check and a sync of one account may overlap: syncs only read).
    let is_sync = |r: &meta_sim::RequestRecord| {
        r.path.ends_with("/media") || r.query.contains("followers_count")
    };
    let syncs: Vec<_> = w
        .sim
        .requests(None)
        .into_iter()
        .filter(|r| r.path.ends_with("/media") && r.account.is_some())
        .collect();
    assert!(!syncs.is_empty(), "the nodes synced");
    for (i, a) in syncs.iter().enumerate() {
        for b in &syncs[i + 1..] {
            let overlap = a.started_at_ms < b.ended_at_ms && b.started_at_ms < a.ended_at_ms;
            assert!(
                a.account != b.account || !overlap,
                "@{} was synced twice at once: {a:?} and {b:?}",
                a.account.as_deref().unwrap_or("?")
            );
        }
    }
    let checks: Vec<_> = w
        .sim
        .requests(None)
        .into_iter()
        .filter(|r| r.host.contains("graph") && r.account.is_some() && !is_sync(r))
        .filter(|r| {
            let name = r.account.as_deref().unwrap();
            !own_calls.get(name).is_some_and(|windows| {
                windows
                    .iter()
                    .any(|(from, to)| r.started_at_ms >= *from && r.ended_at_ms <= *to)
            })
        })
        .collect();
    assert!(
        checks.len() > ACCOUNTS,
        "the nodes checked: {}",
        checks.len()
    );
    for (i, a) in checks.iter().enumerate() {
        for b in &checks[i + 1..] {
            // Strictly overlapping: one call ending in the millisecond the next one starts is
            // one after the other.
            let overlap = a.started_at_ms < b.ended_at_ms && b.started_at_ms < a.ended_at_ms;
            assert!(
                a.account != b.account || !overlap,
                "@{} was checked twice at once: {a:?} and {b:?}",
                a.account.as_deref().unwrap_or("?")
            );
        }
    }

    // Every account ends active (all were reconnected) and scheduled; no job lost or stuck.
    let now_ms = feedkeeper::clock::wall_ms();
    for (name, c) in &accounts {
        let c = w.reload(c).await;
        assert_eq!(
            c.status(),
            Status::Active,
            "@{name} ended {:?}: {:?} (kills: {kills})",
            c.status(),
            c.last_error
        );
        let job = jobs::get(&w.state.db, LIFECYCLE_JOB, &c.id.to_string())
            .await
            .unwrap_or_else(|e| panic!("@{name} lost its job: {e}"));
        assert!(job.dead_at.is_none(), "@{name}: dead job {job:?}");
        assert!(
            job.lease_expires_ms.is_none_or(|t| t <= now_ms + 3_000),
            "@{name}: stuck lease {job:?}"
        );
        assert!(job.due_at > Clock::System.now() - 5, "@{name}: {job:?}");
        let sync = jobs::get(&w.state.db, SYNC_JOB, &c.id.to_string())
            .await
            .unwrap_or_else(|e| panic!("@{name} lost its sync job: {e}"));
        assert!(sync.dead_at.is_none(), "@{name}: dead sync job {sync:?}");
    }
    assert!(kills >= chaos_secs() / 8, "only {kills} kills");
    assert!(!reconnected.is_empty());
}

#[test]
fn the_log_check_finds_conflicts_and_lost_leases_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("node.log"),
        concat!(
            r#"{"timestamp":"2026-12-06T18:04:36.440001Z","level":"INFO","fields":{"message":"meta call failed"}}"#,
            "\n",
            r#"{"level":"WARN","fields":{"message":"the database ended a transaction to resolve a conflict; running it again","transaction":"connect","code":"40P01"}}"#,
            "\n",
            r#"{"level":"WARN","fields":{"message":"lease lost while the job ran; the job was stopped"}}"#,
            "\n",
        ),
    )
    .unwrap();
    let found = unexpected_log_lines(dir.path());
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("40P01") && found[1].contains("lease lost"));
}
