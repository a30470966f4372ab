//! What an operator's tooling reads: `/metrics` (parsed with a Prometheus text-format parser,
//! as a scraper would), and `/readyz` as a load balancer probes it.

use std::collections::HashMap;
use std::time::Duration;

use feedkeeper::db::Db;
use meta_sim::AccountEvent;
use prometheus_parse::{Sample, Scrape, Value};

use crate::helpers::TestApp;
use crate::lifecycle::World;

/// A client that gives up on a hung answer with a message, well before nextest's limit.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Scrapes `/metrics` on `base`, with `token` as the bearer when given.
async fn scrape(base: &url::Url, token: Option<&str>) -> Scrape {
    // A scrape within a second of the last one shares its database part: wait that out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut request = client().get(base.join("metrics").unwrap());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The samples of `family` whose labels include every pair of `labels`.
fn samples<'a>(scrape: &'a Scrape, family: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == family)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("not a single number: {other:?}"),
    }
}

/// The one value of `family` with `labels` (0 when the series does not exist yet).
fn value(scrape: &Scrape, family: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, family, labels);
    assert!(found.len() <= 1, "{family} {labels:?}: {found:?}");
    found.first().map_or(0.0, |s| number(&s.value))
}

#[tokio::test]
async fn metrics_have_every_family_with_its_labels_and_move_when_work_happens() {
    let w = World::with(|c| c.metrics.token = feedkeeper::config::Secret::new("scrape-me")).await;
    let base = &w.app.base;

    // Without the token: refused, and it says how to get in.
    let refused = reqwest::get(base.join("metrics").unwrap()).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));

    // A small per-account budget, so each call is a visible share of it and Meta reports usage
    // (it sends the header from 1 % on).
    w.sim
        .patch_settings(&serde_json::json!({"ig_account_calls_per_day": 100}))
        .unwrap();
    let owner = w.user("ops@example.com").await;
    let shop = w.connect_instagram(owner, "ops_shop").await;
    let widget = feedkeeper::widgets::create(
        &w.state,
        owner,
        "Shop",
        shop.id,
        &feedkeeper::widgets::settings::WidgetSettings::default(),
    )
    .await
    .unwrap();
    let before = scrape(base, Some("scrape-me")).await;
    let synced_before = value(
        &before,
        "feedkeeper_jobs_ended_total",
        &[("kind", "sync"), ("outcome", "finished")],
    );
    // The first sync is waiting, and has been due for as long as the clock says.
    assert!(value(&before, "feedkeeper_jobs_waiting", &[("kind", "sync")]) >= 1.0);
    assert_eq!(
        samples(
            &before,
            "feedkeeper_jobs_oldest_due_seconds",
            &[("kind", "sync")]
        )
        .len(),
        1
    );

    // Work happens: a pass syncs the account and stores its pictures; the widget is read.
    w.pass().await;
    // The pass's changes to the widget applied to memory first: applied by the poller after a
    // rendering (a busy machine), they would drop it, and the next read would miss again.
    feedkeeper::widgets::poll_changes(&w.state).await.unwrap();
    for _ in 0..3 {
        let page = reqwest::get(base.join(&format!("w/{}", widget.public_id)).unwrap())
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
    }
    let nobodys = feedkeeper::widgets::new_public_id();
    let unknown = reqwest::get(base.join(&format!("w/{nobodys}")).unwrap())
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let after = scrape(base, Some("scrape-me")).await;

    assert!(
        value(
            &after,
            "feedkeeper_jobs_ended_total",
            &[("kind", "sync"), ("outcome", "finished")]
        ) > synced_before,
        "a sync raises the sync counter"
    );
    assert_eq!(
        value(&after, "feedkeeper_jobs_waiting", &[("kind", "sync")]),
        0.0
    );
    // Requests by route pattern (never the raw path), method and status, and their latency.
    assert_eq!(
        value(
            &after,
            "feedkeeper_http_requests_total",
            &[("route", "/w/:id"), ("method", "GET"), ("status", "200")]
        ),
        3.0
    );
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("route").is_none_or(|r| !r.contains(&nobodys))),
        "a raw path became a label"
    );
    let latency = samples(
        &after,
        "feedkeeper_http_request_duration_seconds",
        &[("route", "/w/:id")],
    );
    match &latency[..] {
        [s] => match &s.value {
            Value::Histogram(buckets) => {
                assert!(buckets.iter().any(|b| b.count >= 3.0), "{buckets:?}")
            }
            other => panic!("latency is not a histogram: {other:?}"),
        },
        other => panic!("latency samples: {other:?}"),
    }
    // Meta's calls by host and outcome, and the usage Meta reported.
    let meta_ok: f64 = samples(&after, "feedkeeper_meta_calls_total", &[("outcome", "ok")])
        .iter()
        .map(|s| number(&s.value))
        .sum();
    assert!(meta_ok >= 2.0, "meta calls: {meta_ok}");
    assert!(
        samples(&after, "feedkeeper_meta_calls_total", &[])
            .iter()
            .all(|s| s.labels.get("host") == Some("127.0.0.1")),
        "hosts are the simulator's"
    );
    let usage = samples(&after, "feedkeeper_meta_usage_percent", &[]);
    assert!(
        value(
            &after,
            "feedkeeper_meta_usage_percent",
            &[("scope", "account_max")]
        ) >= 1.0,
        "Meta's usage headers were not reported: {usage:?}"
    );
    assert!(
        usage
            .iter()
            .all(|s| matches!(s.labels.get("scope"), Some("app" | "account_max"))),
        "{usage:?}"
    );
    // The widget cache: three reads, at least two from memory; the unknown address refused
    // from memory.
    let lookups = |outcome| {
        value(
            &after,
            "feedkeeper_widget_cache_lookups_total",
            &[("outcome", outcome)],
        )
    };
    assert!(lookups("hit") >= 2.0, "hits {}", lookups("hit"));
    assert!(lookups("miss") >= 1.0);
    assert_eq!(lookups("unknown"), 1.0);
    // Connections, the soonest expiry (the fresh token's: about 60 days off), sync lag.
    assert_eq!(
        value(&after, "feedkeeper_connections", &[("status", "active")]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "feedkeeper_connections",
            &[("status", "needs_reconnect")]
        ),
        0.0
    );
    // Every status has its series, at 0 when no connection has it.
    for status in ["active", "degraded", "needs_reconnect"] {
        assert_eq!(
            samples(&after, "feedkeeper_connections", &[("status", status)]).len(),
            1,
            "{status}"
        );
    }
    let expiry = value(
        &after,
        "feedkeeper_token_soonest_expiry_timestamp_seconds",
        &[],
    );
    let now = w.clock.now() as f64;
    assert!(
        expiry > now + 50.0 * 86_400.0 && expiry <= now + 61.0 * 86_400.0,
        "expiry {expiry} at {now}"
    );
    for p in ["50", "99"] {
        assert_eq!(
            samples(&after, "feedkeeper_sync_lag_seconds", &[("percentile", p)]).len(),
            1
        );
    }
    assert_eq!(value(&after, "feedkeeper_db_up", &[]), 1.0);
    assert_eq!(value(&after, "feedkeeper_incidents_open", &[]), 0.0);
    // Backlogs and pools.
    for family in [
        "feedkeeper_mail_pending",
        "feedkeeper_mail_oldest_pending_seconds",
        "feedkeeper_webhook_deliveries_pending",
        "feedkeeper_images_unfetched",
        "feedkeeper_images_unprocessed",
        "feedkeeper_widget_cache_entries",
        "feedkeeper_db_conflict_retries_total",
        "feedkeeper_incidents_oldest_open_seconds",
        "feedkeeper_uptime_seconds",
    ] {
        assert_eq!(samples(&after, family, &[]).len(), 1, "{family}");
    }
    assert_eq!(
        value(&after, "feedkeeper_images_unfetched", &[]),
        0.0,
        "the pass stored every picture"
    );
    for pool in ["workers", "serving"] {
        for state in ["busy", "idle"] {
            assert_eq!(
                samples(
                    &after,
                    "feedkeeper_db_pool_connections",
                    &[("pool", pool), ("state", state)]
                )
                .len(),
                1,
                "{pool} {state}"
            );
        }
    }
    let build = samples(&after, "feedkeeper_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert_eq!(
        build[0].labels.get("version"),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // A revoked token: the next pass finds it, and the gauge moves.
    w.sim
        .apply_event("ops_shop", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.advance(7 * 3600);
    w.pass().await;
    let revoked = scrape(base, Some("scrape-me")).await;
    assert_eq!(
        value(
            &revoked,
            "feedkeeper_connections",
            &[("status", "needs_reconnect")]
        ),
        1.0
    );
    assert_eq!(
        value(&revoked, "feedkeeper_connections", &[("status", "active")]),
        0.0
    );
    assert!(
        value(
            &revoked,
            "feedkeeper_meta_calls_total",
            &[("outcome", "reconnect")]
        ) >= 1.0,
        "the refused call is counted by what it calls for"
    );
    assert_eq!(value(&revoked, "feedkeeper_incidents_open", &[]), 1.0);
    // Every outcome of a worker's kind has its series from the start (for `increase()`).
    assert_eq!(
        samples(
            &revoked,
            "feedkeeper_meta_calls_total",
            &[("outcome", "operator")]
        )
        .len(),
        1
    );
    // No token in use any more: no soonest expiry to alert on.
    assert!(
        samples(
            &revoked,
            "feedkeeper_token_soonest_expiry_timestamp_seconds",
            &[]
        )
        .is_empty()
    );
}

/// GETs `/readyz`: its status and body.
async fn ready(base: &url::Url) -> (u16, String) {
    let response = client()
        .get(base.join("readyz").unwrap())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `/readyz` until it answers `status` (the verdict is kept for a second).
async fn ready_becomes(base: &url::Url, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (got, body) = ready(base).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {got} ({body}), wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_says_not_ready_while_the_schema_is_behind_this_release() {
    let app = TestApp::spawn().await;
    assert_eq!(ready(&app.base).await, (200, "ready\n".to_owned()));
    // As if the newest migration had not run (or failed half-way).
    let latest = feedkeeper::db::latest_migration(app.state.db.kind());
    let mark = |success: bool| {
        let sql =
            format!("UPDATE _sqlx_migrations SET success = {success} WHERE version = {latest}");
        let db = app.state.db.clone();
        async move {
            match &db {
                Db::Sqlite(pool) => sqlx::query(&sql).execute(pool).await.map(|_| ()),
                Db::Postgres(pool) => sqlx::query(&sql).execute(pool).await.map(|_| ()),
            }
            .unwrap()
        }
    };
    mark(false).await;
    let why = ready_becomes(&app.base, 503).await;
    assert!(why.contains("feedkeeper migrate"), "{why}");
    mark(true).await;
    ready_becomes(&app.base, 200).await;
}

/// A TCP relay to PostgreSQL that the test can cut for one node: `Refuse` closes every open
/// connection and refuses new ones (the database stopped), `Hang` keeps connections open but
/// carries nothing either way (a database or network that stops answering), `Up` relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    Refuse,
    Hang,
}

struct Relay {
    addr: std::net::SocketAddr,
    link: tokio::sync::watch::Sender<Link>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watching) = tokio::sync::watch::channel(Link::Up);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut changes = watching.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let link = *changes.borrow_and_update();
                    match link {
                        Link::Refuse => return,
                        // Held open, silent, until the link changes.
                        Link::Hang => {
                            let _ = changes.changed().await;
                            return;
                        }
                        Link::Up => {}
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = changes.wait_for(|l| *l != Link::Up) => {}
                    }
                    let link = *changes.borrow();
                    if link == Link::Hang {
                        let _ = changes.wait_for(|l| *l != Link::Hang).await;
                    }
                });
            }
        });
        Relay { addr, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// A node whose database goes through a [`Relay`] (`None` without PostgreSQL).
async fn app_behind_relay() -> Option<(TestApp, Relay)> {
    let Some(admin) = crate::helpers::postgres_admin_url() else {
        eprintln!(
            "SKIPPED: cutting the database off needs PostgreSQL (TEST_DATABASE_URL); CI's \
             second pass runs it"
        );
        return None;
    };
    let admin = url::Url::parse(&admin).unwrap();
    let target = format!(
        "{}:{}",
        admin.host_str().unwrap(),
        admin.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    let relayed = relay.addr;
    let app = TestApp::spawn_with(move |c| {
        let mut url = url::Url::parse(&c.storage.database_url).unwrap();
        url.set_host(Some(&relayed.ip().to_string())).unwrap();
        url.set_port(Some(relayed.port())).unwrap();
        c.storage.database_url = url.to_string();
    })
    .await;
    Some((app, relay))
}

#[tokio::test]
async fn readyz_goes_503_while_the_database_is_down_and_200_when_it_is_back() {
    let Some((app, relay)) = app_behind_relay().await else {
        return;
    };
    assert_eq!(ready(&app.base).await.0, 200);
    relay.set(Link::Refuse);
    let why = ready_becomes(&app.base, 503).await;
    assert!(why.contains("database unavailable"), "{why}");
    // Liveness never depends on the database.
    let live = reqwest::get(app.base.join("healthz").unwrap())
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    // Back without a restart: the pools open new connections.
    relay.set(Link::Up);
    ready_becomes(&app.base, 200).await;
}

/// A database that stops answering (no error, no reset) costs a probe or a scrape a bounded
/// wait: `/readyz` says so within seconds, and `/metrics` still serves the node's own numbers
/// with `feedkeeper_db_up 0`.
#[tokio::test]
async fn a_database_that_hangs_makes_probes_and_scrapes_wait_seconds_not_minutes() {
    let Some((app, relay)) = app_behind_relay().await else {
        return;
    };
    assert_eq!(ready(&app.base).await.0, 200);
    assert_eq!(
        value(&scrape(&app.base, None).await, "feedkeeper_db_up", &[]),
        1.0
    );
    relay.set(Link::Hang);
    let started = std::time::Instant::now();
    let why = ready_becomes(&app.base, 503).await;
    assert!(why.contains("database unavailable"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let hung = scrape(&app.base, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(value(&hung, "feedkeeper_db_up", &[]), 0.0);
    assert!(samples(&hung, "feedkeeper_connections", &[]).is_empty());
    assert_eq!(samples(&hung, "feedkeeper_build_info", &[]).len(), 1);
    relay.set(Link::Up);
    ready_becomes(&app.base, 200).await;
}

/// The per-route label keeps a ceiling: a thousand random paths make one series.
#[tokio::test]
async fn random_paths_do_not_make_new_series() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    for i in 0..200 {
        client
            .get(app.base.join(&format!("no/such/{i}")).unwrap())
            .send()
            .await
            .unwrap();
        client
            .get(
                app.base
                    .join(&format!("w/{}", feedkeeper::widgets::new_public_id()))
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let scraped = scrape(&app.base, None).await;
    let mut routes: HashMap<String, f64> = HashMap::new();
    for s in samples(&scraped, "feedkeeper_http_requests_total", &[]) {
        *routes
            .entry(s.labels.get("route").unwrap().to_owned())
            .or_default() += number(&s.value);
    }
    assert_eq!(routes.get("(none)"), Some(&200.0), "{routes:?}");
    assert_eq!(routes.get("/w/:id"), Some(&200.0), "{routes:?}");
    assert!(routes.len() <= 3, "{routes:?}");
}

/// Nodes starting together on a new database migrate it once between them: every one of them
/// succeeds and finds the schema complete.
#[tokio::test]
async fn nodes_migrating_a_new_database_at_once_all_succeed() {
    let t = crate::helpers::TestDb::empty().await;
    let children: Vec<_> = (0..4)
        .map(|_| {
            crate::cli::feedkeeper()
                .arg("migrate")
                .env("FEEDKEEPER_STORAGE__DATABASE_URL", t.url())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        t.db.applied_migration().await.unwrap(),
        feedkeeper::db::latest_migration(t.db.kind())
    );
}
