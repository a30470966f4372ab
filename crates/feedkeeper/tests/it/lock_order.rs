//! Writers about one connection racing each other inside their transactions: every pair that
//! once deadlocked on PostgreSQL (each side took the connection row and job rows in another
//! order). One side is held inside its transaction at a failpoint, the other runs until it
//! waits for a lock, then the first goes on: both must end without an error, and without the
//! safety net (the retry of a transaction PostgreSQL ended as a deadlock) having been needed.
//! On SQLite the same races run too (writers queue on the database's one write lock).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use feedkeeper::clock::wall_ms;
use feedkeeper::connections::{self, Actor, LIFECYCLE_JOB, PURGE_JOB, SYNC_JOB, lifecycle};
use feedkeeper::db::connections::{Connection, Status};
use feedkeeper::db::{self, Db, DbError, jobs};
use feedkeeper::failpoint;
use feedkeeper::feeds::sync;
use feedkeeper::ids::ConnectionId;
use feedkeeper::meta::signed_request;
use feedkeeper::widgets::settings::WidgetSettings;
use meta_sim::{AccountEvent, Outage};

use crate::lifecycle::{DAY, HOUR, World};

const LEASE_MS: i64 = 60_000;

/// Claims `kind`'s job of connection `id` for a node of its own (as a worker would).
async fn claim(w: &World, kind: &str, id: ConnectionId) -> jobs::Lease {
    let now = w.clock.now();
    jobs::schedule(&w.state.db, kind, &id.to_string(), now, now)
        .await
        .unwrap();
    jobs::claim_one(
        &w.state.db,
        kind,
        &id.to_string(),
        "held-node",
        wall_ms(),
        LEASE_MS,
    )
    .await
    .unwrap()
    .and_then(|job| job.lease())
    .unwrap_or_else(|| panic!("the {kind} job of {id} could not be claimed"))
}

/// Whether a statement of this database is waiting for a lock another transaction holds.
async fn someone_waits_for_a_lock(db: &Db) -> bool {
    const SQL: &str = "SELECT COUNT(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'";
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar::<_, i64>(SQL)
                .fetch_one(pool)
                .await
                .unwrap()
                > 0
        }
        // SQLite writers wait inside the driver (busy timeout), invisible from here.
        Db::Sqlite(_) => false,
    }
}

/// Runs `held` until it parks at `point` inside its transaction, then `other` until it waits
/// for a lock (or ends, or a few seconds pass), then lets `held` go on. Returns both results.
async fn race<H, O, T>(
    w: &World,
    point: &str,
    id: ConnectionId,
    held: H,
    other: O,
) -> (Result<(), String>, T)
where
    H: Future<Output = Result<(), String>> + Send + 'static,
    O: Future<Output = T>,
{
    let retries_before = db::conflict_retries();
    let parked = failpoint::arm(point, &failpoint::key(&w.state, id));
    let held = tokio::spawn(held);
    tokio::time::timeout(Duration::from_secs(20), parked.reached())
        .await
        .unwrap_or_else(|_| panic!("the held side never reached {point}"));
    let other_done = Arc::new(AtomicBool::new(false));
    let waited = Arc::new(AtomicBool::new(false));
    let release = async {
        // SQLite's waits cannot be seen: a moment is enough for the other side to be waiting.
        let patience = match w.state.db {
            Db::Postgres(_) => Duration::from_secs(5),
            Db::Sqlite(_) => Duration::from_millis(300),
        };
        let until = tokio::time::Instant::now() + patience;
        while !other_done.load(Ordering::SeqCst) && tokio::time::Instant::now() < until {
            if someone_waits_for_a_lock(&w.state.db).await {
                waited.store(true, Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Give the waiting statement a moment to be well inside its wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        parked.release();
    };
    let other = async {
        let result = other.await;
        other_done.store(true, Ordering::SeqCst);
        result
    };
    let (other, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(other, release)
    })
    .await
    .expect("the race ended");
    let held = tokio::time::timeout(Duration::from_secs(60), held)
        .await
        .expect("the held side ended")
        .expect("the held side did not panic");
    assert_eq!(
        db::conflict_retries(),
        retries_before,
        "a transaction had to be retried after a deadlock: the lock order is broken"
    );
    // On PostgreSQL the race was real: the other side waited for the held one's lock.
    if let Db::Postgres(_) = w.state.db {
        assert!(
            waited.load(Ordering::SeqCst),
            "the other side never waited for a lock: the race was not exercised"
        );
    }
    (held, other)
}

fn ok<T>(what: &str, result: Result<T, impl std::fmt::Display>) -> Result<(), String> {
    result
        .map(|_| ())
        .map_err(|e| format!("{what} failed: {e}"))
}

/// A connected account whose sync ran once (so it has a feed and a sync job).
async fn connected(w: &World, name: &str) -> (feedkeeper::ids::UserId, Connection) {
    let owner = w.user(&format!("{name}@example.com")).await;
    let c = w.connect_instagram(owner, name).await;
    (owner, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_racing_a_sync_store_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "sync_vs_reconnect").await;
    let lease = claim(&w, SYNC_JOB, c.id).await;
    let state = w.state.clone();
    let held = async move {
        ok(
            "sync",
            sync::sync_connection(&state, c.id, &lease, LEASE_MS).await,
        )
    };
    let (held, again) = race(
        &w,
        failpoint::SYNC_STORE_TX,
        c.id,
        held,
        w.connect_instagram(owner, "sync_vs_reconnect"),
    )
    .await;
    held.unwrap();
    assert_eq!((again.id, again.status()), (c.id, Status::Active));
    assert!(
        jobs::get(&w.state.db, SYNC_JOB, &c.id.to_string())
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_racing_a_lifecycle_check_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "check_vs_reconnect").await;
    w.advance(7 * HOUR);
    let lease = claim(&w, LIFECYCLE_JOB, c.id).await;
    let state = w.state.clone();
    let held = async move {
        ok(
            "check",
            lifecycle::check_and_apply(&state, c.id, &lease, LEASE_MS, Actor::Worker).await,
        )
    };
    let (held, again) = race(
        &w,
        failpoint::LIFECYCLE_TX,
        c.id,
        held,
        w.connect_instagram(owner, "check_vs_reconnect"),
    )
    .await;
    held.unwrap();
    assert_eq!(again.status(), Status::Active);
    assert_eq!(w.reload(&c).await.status(), Status::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_accounts_sync_store_racing_its_lifecycle_check_does_not_deadlock() {
    let w = World::new().await;
    let (_, c) = connected(&w, "degraded_race").await;
    // Meta fails for a while: the check finds the connection degraded.
    w.sim
        .set_outage(Outage {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    w.advance(7 * HOUR);
    let lease = claim(&w, LIFECYCLE_JOB, c.id).await;
    lifecycle::check_and_apply(&w.state, c.id, &lease, LEASE_MS, Actor::Worker)
        .await
        .unwrap();
    jobs::finish(&w.state.db, &lease, Some(w.clock.now()))
        .await
        .unwrap();
    assert_eq!(w.reload(&c).await.status(), Status::Degraded);
    w.sim.clear_outage();

    // The lifecycle check is held inside its transaction; the sync (Meta answers again) stores
    // its posts and asks the lifecycle to confirm the login.
    let lease = claim(&w, LIFECYCLE_JOB, c.id).await;
    let state = w.state.clone();
    let held = async move {
        ok(
            "check",
            lifecycle::check_and_apply(&state, c.id, &lease, LEASE_MS, Actor::Worker).await,
        )
    };
    let sync_lease = claim(&w, SYNC_JOB, c.id).await;
    let (held, synced) = race(
        &w,
        failpoint::LIFECYCLE_TX,
        c.id,
        held,
        sync::sync_connection(&w.state, c.id, &sync_lease, LEASE_MS),
    )
    .await;
    held.unwrap();
    let synced = synced.expect("the sync stored its posts");
    assert!(!synced.stale && synced.error.is_none(), "{synced:?}");
    assert_eq!(w.reload(&c).await.status(), Status::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_racing_a_reconnect_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "leaving").await;
    let state = w.state.clone();
    let held = async move { ok("disconnect", connections::disconnect(&state, c.id).await) };
    let (held, again) = race(
        &w,
        failpoint::DISCONNECT_TX,
        c.id,
        held,
        w.connect_instagram(owner, "leaving"),
    )
    .await;
    held.unwrap();
    // The disconnect went first; the login after it is a new connection, with its jobs.
    assert_ne!(again.id, c.id);
    assert!(matches!(
        feedkeeper::db::connections::get(&w.state.db, c.id).await,
        Err(DbError::NotFound)
    ));
    for kind in [LIFECYCLE_JOB, SYNC_JOB] {
        assert!(
            jobs::get(&w.state.db, kind, &again.id.to_string())
                .await
                .is_ok(),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_deletion_racing_a_reconnect_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "forget_race").await;
    let now = w.clock.now();
    let request = signed_request::sign(
        &format!(
            r#"{{"user_id":"{}","algorithm":"HMAC-SHA256","issued_at":{now}}}"#,
            c.ig_user_id
        ),
        "sim-instagram-secret",
    );
    let url = format!("{}/meta/data-deletion", w.base_url);
    let held = async move {
        let answer = reqwest::Client::new()
            .post(url)
            .form(&[("signed_request", request)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match answer.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("data deletion answered {status}")),
        }
    };
    let (held, again) = race(
        &w,
        failpoint::DATA_DELETION_TX,
        c.id,
        held,
        w.connect_instagram(owner, "forget_race"),
    )
    .await;
    held.unwrap();
    assert_ne!(again.id, c.id, "the deletion went first");
    assert_eq!(again.status(), Status::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_racing_a_reconnect_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "purged_race").await;
    w.sim
        .apply_event("purged_race", AccountEvent::AppRemoved)
        .await
        .unwrap();
    assert!(w.reload(&c).await.deauthorized_at.is_some());
    w.advance(31 * DAY);
    let lease = claim(&w, PURGE_JOB, c.id).await;
    let state = w.state.clone();
    let held = async move {
        ok(
            "purge",
            connections::purge_if_due(&state, c.id, &lease).await,
        )
    };
    let (held, again) = race(
        &w,
        failpoint::PURGE_TX,
        c.id,
        held,
        w.connect_instagram(owner, "purged_race"),
    )
    .await;
    held.unwrap();
    // Purged first, then reconnected: the same connection with a token again.
    assert_eq!(again.id, c.id);
    let after = w.reload(&c).await;
    assert!(after.token_sealed.is_some() && after.data_purged_at.is_none());
    assert_eq!(after.status(), Status::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_widget_racing_a_disconnect_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = connected(&w, "widget_race").await;
    let state = w.state.clone();
    let held = async move {
        ok(
            "widget",
            feedkeeper::widgets::create(&state, owner, "Race", c.id, &WidgetSettings::default())
                .await,
        )
    };
    let (held, disconnected) = race(
        &w,
        failpoint::WIDGET_CREATE_TX,
        c.id,
        held,
        connections::disconnect(&w.state, c.id),
    )
    .await;
    held.unwrap();
    assert!(disconnected.expect("disconnected"));
    let widgets = feedkeeper::db::widgets::list_owned(&w.state.db, owner)
        .await
        .unwrap();
    assert_eq!(widgets.len(), 1);
    assert_eq!(widgets[0].connection_id, None, "it shows nothing now");
}

/// An account whose password changed, found broken, its first notice due now.
async fn broken_with_mail_due(w: &World, name: &str) -> (feedkeeper::ids::UserId, Connection) {
    let (owner, c) = connected(w, name).await;
    w.sim
        .apply_event(name, AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.advance(8 * HOUR);
    w.pass().await;
    assert_eq!(w.reload(&c).await.status(), Status::NeedsReconnect);
    w.advance(w.state.config.mail.group_secs as i64 + 1);
    (owner, c)
}

async fn subjects(w: &World, owner: feedkeeper::ids::UserId) -> Vec<String> {
    let mut all: Vec<String> = db::mail::list_owned_messages(&w.state.db, owner, None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .collect();
    all.reverse();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_racing_the_mail_composer_does_not_deadlock_and_says_restored() {
    let w = World::new().await;
    let (owner, c) = broken_with_mail_due(&w, "mail_vs_reconnect").await;
    let state = w.state.clone();
    let held = async move { ok("compose", feedkeeper::mail::compose::run(&state).await) };
    let (held, again) = race(
        &w,
        failpoint::MAIL_COMPOSE_TX,
        c.id,
        held,
        w.connect_instagram(owner, "mail_vs_reconnect"),
    )
    .await;
    held.unwrap();
    assert_eq!(again.status(), Status::Active);
    // The alert was written before the reconnect took the row, and withdrawn by it before it
    // went out: nobody hears of a break that is already fixed, nor that it is fixed.
    w.advance(61);
    w.pass().await;
    let messages = db::mail::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.subject.as_str(), m.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("@mail_vs_reconnect needs reconnecting", "withdrawn")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_racing_the_mail_composer_does_not_deadlock() {
    let w = World::new().await;
    let (owner, c) = broken_with_mail_due(&w, "mail_vs_disconnect").await;
    let state = w.state.clone();
    let held = async move { ok("compose", feedkeeper::mail::compose::run(&state).await) };
    let (held, gone) = race(
        &w,
        failpoint::MAIL_COMPOSE_TX,
        c.id,
        held,
        connections::disconnect(&w.state, c.id),
    )
    .await;
    held.unwrap();
    assert!(gone.unwrap());
    assert_eq!(
        subjects(&w, owner).await,
        ["@mail_vs_disconnect needs reconnecting"]
    );
}
