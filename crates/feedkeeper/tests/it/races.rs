//! The core under concurrency and crashes: checks racing reconnects, passes outliving their
//! leases, crashes between Meta's answer and the store, operator mistakes, false alarms.
//! Races are made deterministic with failpoints (a check parks at a chosen point) and the
//! simulator's latency setting; the simulator's request log is the witness.

use std::collections::HashMap;
use std::time::Duration;

use feedkeeper::connections::{Actor, LIFECYCLE_JOB};
use feedkeeper::db::connections::Status;
use feedkeeper::db::{audit, incidents, jobs, operator_problems};
use feedkeeper::failpoint;
use feedkeeper::jobs::run_due_now;
use feedkeeper::meta::signed_request;
use meta_sim::AccountEvent;

use crate::lifecycle::{DAY, HOUR, World};

/// The lifecycle job of a connection.
async fn job_of(w: &World, id: feedkeeper::ids::ConnectionId) -> jobs::Job {
    jobs::get(&w.state.db, LIFECYCLE_JOB, &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("connection {id} has no lifecycle job: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_racing_a_probe_of_the_old_token_ends_active_and_scheduled() {
    let w = World::new().await;
    let owner = w.user("race@example.com").await;
    let c = w.connect_instagram(owner, "racer").await;
    w.sim
        .apply_event("racer", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.advance(7 * HOUR);

    // The worker probes the old token; Meta answers "password changed"; the worker parks there.
    let parked = failpoint::arm(
        failpoint::AFTER_META_ANSWER,
        &failpoint::key(&w.state, c.id),
    );
    let state = w.state.clone();
    let pass = tokio::spawn(async move { run_due_now(&state, "slow-node").await.unwrap() });
    parked.reached().await;

    // Meanwhile the owner logs in again.
    let again = w.connect_instagram(owner, "racer").await;
    assert_eq!(again.status(), Status::Active);
    parked.release();
    pass.await.unwrap();

    let after = w.reload(&c).await;
    assert_eq!(
        after.status(),
        Status::Active,
        "the stale probe overwrote the reconnect: {:?}",
        after.last_error
    );
    assert!(w.open_incident(&c).await.is_none());
    let job = job_of(&w, c.id).await;
    assert!(job.lease_owner.is_none() && job.due_at > w.clock.now());
    let log = audit::list(&w.state.db, c.id, 100).await.unwrap();
    assert!(
        log.iter()
            .all(|e| e.to_status.as_deref() != Some("needs_reconnect")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_metas_answer_and_the_store_loses_no_token_and_no_job() {
    let w = World::with(|c| c.workers.lease_secs = 1).await;
    let owner = w.user("crash@example.com").await;
    let c = w.connect_instagram(owner, "crashy").await;
    let token_before = w.reload(&c).await.token_sealed;
    w.advance(4 * DAY);

    // Meta renews the token, then the process dies before anything is stored.
    let parked = failpoint::arm(
        failpoint::AFTER_META_ANSWER,
        &failpoint::key(&w.state, c.id),
    );
    let state = w.state.clone();
    let pass = tokio::spawn(async move { run_due_now(&state, "doomed-node").await });
    parked.reached().await;
    pass.abort();
    assert!(pass.await.unwrap_err().is_cancelled());

    let after_crash = w.reload(&c).await;
    assert_eq!(
        after_crash.token_sealed, token_before,
        "nothing half-written"
    );
    assert_eq!(after_crash.status(), Status::Active);
    let stranded = job_of(&w, c.id).await;
    assert_eq!(stranded.lease_owner.as_deref(), Some("doomed-node"));

    // Another node takes the job over once the (1 s) lease runs out, and renews the token.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = run_due_now(&w.state, "rescuer").await.unwrap();
    assert_eq!(report.lifecycle.finished, 1, "{report:?}");
    let rescued = w.reload(&c).await;
    assert_eq!(rescued.status(), Status::Active, "{:?}", rescued.last_error);
    assert_ne!(rescued.token_sealed, token_before, "renewed after all");
    assert!(rescued.last_refresh_at.is_some());
    let job = job_of(&w, c.id).await;
    assert!(job.lease_owner.is_none() && job.due_at > w.clock.now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_longer_than_its_lease_refreshes_nothing_twice() {
    let w = World::with(|c| {
        c.workers.lease_secs = 1;
        c.workers.lifecycle_concurrency = 2;
    })
    .await;
    let owner = w.user("many@example.com").await;
    let mut names = Vec::new();
    for i in 0..8 {
        let name = format!("slow_{i}");
        w.connect_instagram(owner, &name).await;
        names.push(name);
    }
    w.advance(4 * DAY);
    let since = w.sim.requests(None).last().map(|r| r.seq);
    // Every Meta call takes 400 ms: a pass of 8 refreshes, 2 at a time, outlives its 1 s lease
    // several times over; the clock also jumps mid-pass, and a second node runs beside it.
    w.sim.set_latency(Duration::from_millis(400));
    let (a, b) = (w.state.clone(), w.state.clone());
    let first = tokio::spawn(async move { run_due_now(&a, "node-a").await.unwrap() });
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.advance(600);
    let second = tokio::spawn(async move { run_due_now(&b, "node-b").await.unwrap() });
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    w.sim.set_latency(Duration::ZERO);
    assert_eq!(
        first.lifecycle.finished + second.lifecycle.finished,
        8,
        "{first:?} {second:?}"
    );
    assert_eq!(first.lifecycle.lost + second.lifecycle.lost, 0);

    let refreshes: Vec<_> = w
        .sim
        .requests(since)
        .into_iter()
        .filter(|r| r.path.contains("refresh_access_token"))
        .collect();
    let mut per_account: HashMap<String, usize> = HashMap::new();
    for r in &refreshes {
        *per_account
            .entry(r.account.clone().unwrap_or_default())
            .or_default() += 1;
    }
    for name in &names {
        assert_eq!(per_account.get(name), Some(&1), "{per_account:?}");
    }
    for c in stored_all(&w).await {
        assert_eq!(
            c.status(),
            Status::Active,
            "{}: {:?}",
            c.username,
            c.last_error
        );
        assert!(c.last_refresh_at.is_some());
    }
}

async fn stored_all(w: &World) -> Vec<feedkeeper::db::connections::Connection> {
    feedkeeper::db::connections::list_all(&w.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_app_secret_marks_no_connection_and_shows_one_operator_problem() {
    let w = World::new().await;
    let owner = w.user("ops@example.com").await;
    let pages = [
        w.connect_facebook(owner, "page_one").await,
        w.connect_facebook(owner, "page_two").await,
    ];
    // The operator rotated the Facebook app secret in Meta's dashboard but not in our config.
    let mut app = w.sim.app();
    let right_secret = app.facebook_app_secret.clone();
    app.facebook_app_secret = "rotated-secret".into();
    w.sim.set_app(app.clone());
    w.advance(7 * HOUR);
    w.pass().await;
    for c in &pages {
        let c = w.reload(c).await;
        assert_eq!(
            c.status(),
            Status::Active,
            "{}: {:?}",
            c.username,
            c.last_error
        );
        assert!(w.open_incident(&c).await.is_none());
    }
    let problems = operator_problems::open(&w.state.db).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, "facebook:app_credentials");
    assert_eq!(problems[0].occurrences, 2);

    // The operator fixes it: the next check clears the problem.
    app.facebook_app_secret = right_secret;
    w.sim.set_app(app);
    w.advance(7 * HOUR);
    w.pass().await;
    assert!(
        operator_problems::open(&w.state.db)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_needs_reconnect_connection_whose_token_works_again_heals() {
    let w = World::new().await;
    let owner = w.user("heal@example.com").await;
    let c = w.connect_instagram(owner, "false_alarm").await;
    // A removal callback arrives (genuinely signed), but the login in fact still works.
    let payload = format!(
        r#"{{"user_id":"{}","algorithm":"HMAC-SHA256","issued_at":{}}}"#,
        c.ig_user_id,
        w.clock.now()
    );
    let signed = signed_request::sign(&payload, "sim-instagram-secret");
    let reply = reqwest::Client::new()
        .post(format!("{}/meta/deauthorize", w.base_url))
        .form(&[("signed_request", signed)])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(w.reload(&c).await.status(), Status::NeedsReconnect);
    assert!(w.open_incident(&c).await.is_some());

    // Still probed (never refreshed) while it waits for a reconnect: the next probe heals it.
    w.advance(7 * HOUR);
    w.pass().await;
    let healed = w.reload(&c).await;
    assert_eq!(healed.status(), Status::Active, "{:?}", healed.last_error);
    assert!(
        healed.deauthorized_at.is_none(),
        "no purge pending any more"
    );
    assert!(w.open_incident(&c).await.is_none());
    let history = incidents::list(&w.state.db, c.id).await.unwrap();
    assert!(history.iter().all(|i| i.closed_at.is_some()));
    // The grace period passes: the data stays.
    w.advance(31 * DAY);
    w.pass().await;
    assert!(w.reload(&c).await.token_sealed.is_some());
    let log = audit::list(&w.state.db, c.id, 100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.detail.as_deref() == Some("Meta accepts the token again")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_now_shares_the_queue_with_the_worker() {
    let w = World::new().await;
    let owner = w.user("now@example.com").await;
    let c = w.connect_instagram(owner, "pressed").await;
    w.advance(7 * HOUR);
    // While the worker holds the check, "check now" does not run a second one beside it.
    let parked = failpoint::arm(
        failpoint::AFTER_META_ANSWER,
        &failpoint::key(&w.state, c.id),
    );
    let state = w.state.clone();
    let pass = tokio::spawn(async move { run_due_now(&state, "worker").await.unwrap() });
    parked.reached().await;
    let busy = feedkeeper::connections::check_now(&w.state, c.id, Actor::User, "web")
        .await
        .unwrap();
    assert!(
        matches!(&busy, feedkeeper::connections::CheckNow::Busy { node: Some(n) } if n == "worker"),
        "{busy:?}"
    );
    parked.release();
    pass.await.unwrap();
    // Once free it runs, then waits out its cooldown.
    let done = feedkeeper::connections::check_now(&w.state, c.id, Actor::User, "web")
        .await
        .unwrap();
    assert!(
        matches!(done, feedkeeper::connections::CheckNow::Checked(_)),
        "{done:?}"
    );
    let again = feedkeeper::connections::check_now(&w.state, c.id, Actor::User, "web")
        .await
        .unwrap();
    assert!(
        matches!(again, feedkeeper::connections::CheckNow::Cooldown { .. }),
        "{again:?}"
    );
    let job = job_of(&w, c.id).await;
    assert!(job.lease_owner.is_none() && job.due_at > w.clock.now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_same_string_refresh_defers_the_next_one_without_alarm() {
    // Meta may renew a token in place (same string, new expiry): after a crash between its
    // answer and our store, our record says "refresh due" while Meta says "too new".
    let w = World::with(|c| c.workers.lease_secs = 1).await;
    w.sim
        .patch_settings(&serde_json::json!({"refresh_returns_new_token": false}))
        .unwrap();
    let owner = w.user("inplace@example.com").await;
    let c = w.connect_instagram(owner, "inplace").await;
    w.advance(4 * DAY);
    let parked = failpoint::arm(
        failpoint::AFTER_META_ANSWER,
        &failpoint::key(&w.state, c.id),
    );
    let state = w.state.clone();
    let pass = tokio::spawn(async move { run_due_now(&state, "doomed-node").await });
    parked.reached().await;
    pass.abort();
    let _ = pass.await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    run_due_now(&w.state, "rescuer").await.unwrap();
    let after = w.reload(&c).await;
    assert_eq!(after.status(), Status::Active, "{:?}", after.last_error);
    assert_eq!(
        after.token_issued_at,
        Some(w.clock.now()),
        "the next refresh waits a day"
    );
    let log = audit::list(&w.state.db, c.id, 100).await.unwrap();
    assert!(
        log.iter().any(|e| e.event == "refresh_deferred"),
        "{log:#?}"
    );
    // A day later the refresh goes through.
    w.advance(DAY + HOUR);
    run_due_now(&w.state, "rescuer").await.unwrap();
    w.advance(3 * DAY);
    run_due_now(&w.state, "rescuer").await.unwrap();
    let later = w.reload(&c).await;
    assert_eq!(later.status(), Status::Active, "{:?}", later.last_error);
    assert!(
        later
            .last_refresh_at
            .is_some_and(|t| t > after.token_issued_at.unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_now_outlives_the_request_that_asked_for_it() {
    let w = World::with(|c| c.server.request_timeout_secs = 1).await;
    let browser = w.app.signup_and_login("impatient@example.com").await;
    let owner = crate::dashboard::user_id(&w.app, "impatient@example.com").await;
    let c = w.connect_instagram(owner, "slowpoke").await;
    w.advance(4 * DAY);
    let before = w.reload(&c).await;
    // Meta answers after the request has timed out.
    w.sim.set_latency(Duration::from_millis(1500));
    let answer = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(answer.status, reqwest::StatusCode::REQUEST_TIMEOUT);
    // The check goes on to its end: the renewed token is stored and the job handed back.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = w.reload(&c).await;
        let job = job_of(&w, c.id).await;
        if now.token_sealed != before.token_sealed && job.lease_owner.is_none() {
            assert!(now.last_refresh_at.is_some());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check was lost: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.sim.set_latency(Duration::ZERO);
}
