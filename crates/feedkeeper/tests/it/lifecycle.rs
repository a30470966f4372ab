//! The token lifecycle against the simulator, with time moved by the clock: months of refreshes,
//! every revocation kind, outages short and long, reconnects, and the incidents they open and
//! close.

use feedkeeper::clock::Clock;
use feedkeeper::connections::{self, Actor};
use feedkeeper::db::connections::{Connection, Status};
use feedkeeper::db::{audit, connections as stored, incidents};
use feedkeeper::ids::UserId;
use feedkeeper::jobs::{PassReport, run_due_now};
use feedkeeper::meta::oauth::parse_callback;
use feedkeeper::state::AppState;
use meta_sim::{AccountEvent, NewAccount, Outage, Simulator};

use crate::helpers::TestApp;
use crate::sim_login;

pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// The service and the simulator sharing one clock that only the test moves: a [`TestApp`]
/// probing every six hours, with helpers for lifecycle scenarios.
pub struct World {
    pub sim: Simulator,
    /// Where this world's feedkeeper serves HTTP (Meta's callbacks reach it here).
    pub base_url: String,
    pub state: AppState,
    pub clock: Clock,
    pub app: TestApp,
}

impl World {
    pub async fn new() -> World {
        World::with(|_| {}).await
    }

    /// A world with more configuration changed.
    pub async fn with(configure: impl FnOnce(&mut feedkeeper::config::Config)) -> World {
        let app = TestApp::spawn_with(|c| {
            c.lifecycle.probe_interval_minutes = 6 * 60;
            configure(c);
        })
        .await;
        World {
            sim: app.sim.clone(),
            base_url: app.state.config.public_url(),
            state: app.state.clone(),
            clock: app.state.clock.clone(),
            app,
        }
    }

    /// Moves both clocks to the machine's time (for running the real binary against this world).
    pub fn at_system_time(&self) {
        let now = Clock::System.now();
        self.sim.set_clock(now);
        self.clock.set(now);
    }

    /// Environment variables that point the `feedkeeper` binary at this world.
    pub fn binary_env(&self) -> Vec<(String, String)> {
        let c = &self.state.config;
        vec![
            ("FEEDKEEPER_STORAGE__DATABASE_URL".into(), c.database_url()),
            (
                "FEEDKEEPER_STORAGE__DATA_DIR".into(),
                c.storage.data_dir.display().to_string(),
            ),
            // The simulator's CDN, for the images.
            (
                "FEEDKEEPER_META__CDN_HOSTS".into(),
                serde_json::to_string(&c.meta.cdn_hosts).unwrap(),
            ),
            (
                "FEEDKEEPER_SECURITY__TOKEN_KEYS".into(),
                c.security.token_keys[0].expose().to_owned(),
            ),
            (
                "FEEDKEEPER_META__INSTAGRAM_OAUTH_URL".into(),
                c.meta.instagram_oauth_url.to_string(),
            ),
            (
                "FEEDKEEPER_META__INSTAGRAM_API_URL".into(),
                c.meta.instagram_api_url.to_string(),
            ),
            (
                "FEEDKEEPER_META__INSTAGRAM_GRAPH_URL".into(),
                c.meta.instagram_graph_url.to_string(),
            ),
            (
                "FEEDKEEPER_META__FACEBOOK_WWW_URL".into(),
                c.meta.facebook_www_url.to_string(),
            ),
            (
                "FEEDKEEPER_META__FACEBOOK_GRAPH_URL".into(),
                c.meta.facebook_graph_url.to_string(),
            ),
            (
                "FEEDKEEPER_META__INSTAGRAM_APP_ID".into(),
                c.meta.instagram_app_id.clone(),
            ),
            (
                "FEEDKEEPER_META__INSTAGRAM_APP_SECRET".into(),
                c.meta.instagram_app_secret.expose().to_owned(),
            ),
            (
                "FEEDKEEPER_META__FACEBOOK_APP_ID".into(),
                c.meta.facebook_app_id.clone(),
            ),
            (
                "FEEDKEEPER_META__FACEBOOK_APP_SECRET".into(),
                c.meta.facebook_app_secret.expose().to_owned(),
            ),
        ]
    }

    pub fn advance(&self, secs: i64) {
        self.sim.advance_clock(secs);
        self.clock.advance(secs);
    }

    pub async fn user(&self, email: &str) -> UserId {
        let sql = "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES ($1, 'x', 0, 0) RETURNING id";
        let id: i64 = match &self.state.db {
            feedkeeper::db::Db::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(email)
                .fetch_one(p)
                .await
                .unwrap(),
            feedkeeper::db::Db::Postgres(p) => sqlx::query_scalar(sql)
                .bind(email)
                .fetch_one(p)
                .await
                .unwrap(),
        };
        UserId(id)
    }

    /// A business account on the simulator, connected through the real Instagram Login pages.
    pub async fn connect_instagram(&self, owner: UserId, username: &str) -> Connection {
        if self.sim.account(username).is_err() {
            self.sim
                .create_account(NewAccount {
                    username: username.into(),
                    posts: 1,
                    ..Default::default()
                })
                .unwrap();
        }
        let redirect = format!("{}/connect/instagram/callback", self.base_url);
        let location = sim_login::instagram(
            &self.state.meta,
            &redirect,
            "s",
            username,
            "sim-password",
            true,
        )
        .await;
        let code = parse_callback(&location).unwrap().code;
        let short = self
            .state
            .meta
            .exchange_instagram_code(&code, &redirect)
            .await
            .unwrap();
        let long = self
            .state
            .meta
            .obtain_long_lived(&short.access_token)
            .await
            .unwrap();
        connections::connect_instagram(&self.state, owner, &long, None, Actor::User, None)
            .await
            .unwrap()
    }

    /// An account with a Facebook Page, connected through Facebook Login.
    pub async fn connect_facebook(&self, owner: UserId, username: &str) -> Connection {
        if self.sim.account(username).is_err() {
            self.sim
                .create_account(NewAccount {
                    username: username.into(),
                    facebook_page: true,
                    posts: 1,
                    ..Default::default()
                })
                .unwrap();
        }
        let redirect = format!("{}/connect/facebook/callback", self.base_url);
        let location =
            sim_login::facebook(&self.state.meta, &redirect, "s", username, "sim-password").await;
        let code = parse_callback(&location).unwrap().code;
        let meta = &self.state.meta;
        let short = meta.exchange_facebook_code(&code, &redirect).await.unwrap();
        let long = meta
            .exchange_facebook_long_lived(&short.access_token)
            .await
            .unwrap();
        let pages = meta.facebook_pages(&long.access_token).await.unwrap();
        connections::connect_facebook_page(
            &self.state,
            owner,
            &pages[0],
            None,
            None,
            Actor::User,
            None,
        )
        .await
        .unwrap()
    }

    pub async fn pass(&self) -> PassReport {
        run_due_now(&self.state, "test-node").await.unwrap()
    }

    pub async fn reload(&self, c: &Connection) -> Connection {
        stored::get(&self.state.db, c.id).await.unwrap()
    }

    pub async fn open_incident(&self, c: &Connection) -> Option<incidents::Incident> {
        incidents::open_for(&self.state.db, c.id).await.unwrap()
    }

    /// Audit rows showing a call Meta refused for our timing: a refresh of a token younger than
    /// 24 h (code 100) or of an expired token (190/463). The policy must make neither.
    pub async fn timing_refusals(&self, cs: &[&Connection]) -> Vec<String> {
        let mut found = Vec::new();
        for c in cs {
            for e in audit::list(&self.state.db, c.id, 10_000).await.unwrap() {
                if e.meta_code == Some(100)
                    || (e.meta_code == Some(190) && e.meta_subcode == Some(463))
                {
                    found.push(format!("{}: {e:?}", c.username));
                }
            }
        }
        found
    }
}

#[tokio::test]
async fn a_180_day_run_keeps_healthy_tokens_alive_and_catches_every_revocation() {
    let w = World::new().await;
    let owner = w.user("agency@example.com").await;
    let mut ig = Vec::new();
    for i in 0..8 {
        ig.push(w.connect_instagram(owner, &format!("shop_{i}")).await);
    }
    let fb = w.connect_facebook(owner, "harbor").await;

    // Day 10..: one revocation of each kind on its own account.
    let revocations = [
        (AccountEvent::PasswordChanged, "password_changed"),
        (AccountEvent::TwoFactorEnabled, "password_changed"),
        (AccountEvent::SuspiciousLogin, "checkpoint"),
        (AccountEvent::AppRemoved, "app_removed"),
        (AccountEvent::TokenInvalidated, "unknown"),
        (
            AccountEvent::PermissionRevoked {
                scope: "instagram_business_basic".into(),
            },
            "permission_missing",
        ),
    ];
    let step = 6 * HOUR;
    let mut revoked = Vec::new();
    let mut fb_relogins = 0;
    let mut reconnected = false;
    for tick in 0..(180 * DAY / step) {
        w.advance(step);
        let day = (tick + 1) * step / DAY;
        let on_day_start = ((tick + 1) * step) % DAY == 0;
        if on_day_start && (10..16).contains(&day) {
            let i = (day - 10) as usize;
            let (event, reason) = &revocations[i];
            w.sim
                .apply_event(&format!("shop_{i}"), event.clone())
                .await
                .unwrap();
            w.pass().await;
            let c = w.reload(&ig[i]).await;
            assert_eq!(
                c.status(),
                Status::NeedsReconnect,
                "{event:?} not seen within one pass"
            );
            assert_eq!(c.reason.as_deref(), Some(*reason), "{event:?}");
            let incident = w
                .open_incident(&c)
                .await
                .expect("an incident opens at once");
            assert_eq!(incident.kind, "reconnect_needed");
            revoked.push(i);
            continue;
        }
        // Day 50: a short outage of Instagram's graph host never opens an incident.
        if on_day_start && day == 50 {
            w.sim
                .set_outage(Outage {
                    error_rate: 1.0,
                    hosts: Some(vec!["graph.instagram.com".into()]),
                    ..Default::default()
                })
                .unwrap();
            for _ in 0..3 {
                w.advance(HOUR);
                w.pass().await;
            }
            let healthy = w.reload(&ig[7]).await;
            assert_eq!(healthy.status(), Status::Degraded, "the outage was noticed");
            w.sim.clear_outage();
        }
        // Facebook data access runs out 90 days after a login: the connection warns first, and
        // its owner acts on the warning by logging in again, which resolves it.
        if let Some(incident) = w.open_incident(&fb).await {
            assert_eq!(incident.kind, "data_access_expiring", "day {day}");
            let again = w.connect_facebook(owner, "harbor").await;
            assert_eq!(again.id, fb.id, "reconnecting updates the same connection");
            assert!(w.open_incident(&again).await.is_none());
            fb_relogins += 1;
        }
        // Day 100: the first victim reconnects: same connection, active, incident resolved.
        if on_day_start && day == 100 && !reconnected {
            let again = w.connect_instagram(owner, "shop_0").await;
            assert_eq!(again.id, ig[0].id);
            assert_eq!(again.status(), Status::Active);
            let closed = incidents::list(&w.state.db, again.id).await.unwrap();
            assert!(closed.iter().all(|i| i.closed_at.is_some()), "{closed:?}");
            revoked.retain(|i| *i != 0);
            reconnected = true;
        }
        w.pass().await;
        let now = w.clock.now();
        for (i, c) in ig.iter().enumerate() {
            let c = w.reload(c).await;
            if revoked.contains(&i) {
                assert_eq!(c.status(), Status::NeedsReconnect);
                continue;
            }
            assert!(
                c.token_expires_at.unwrap() > now,
                "shop_{i}'s token expired on day {day}"
            );
            assert_ne!(
                c.status(),
                Status::NeedsReconnect,
                "shop_{i} on day {day}: {:?}",
                c.last_error
            );
        }
        let f = w.reload(&fb).await;
        assert_eq!(
            f.status(),
            Status::Active,
            "facebook connection on day {day}: {:?}",
            f.last_error
        );
    }
    let all: Vec<&Connection> = ig.iter().chain([&fb]).collect();
    let refusals = w.timing_refusals(&all).await;
    assert!(refusals.is_empty(), "{refusals:#?}");
    // The healthy ones were refreshed all along, and the short outage left no incident.
    for c in &ig[6..] {
        let c = w.reload(c).await;
        assert_eq!(c.status(), Status::Active);
        assert!(c.last_refresh_at.unwrap() > w.clock.now() - 4 * DAY);
        let history = incidents::list(&w.state.db, c.id).await.unwrap();
        assert!(history.is_empty(), "short outage opened {history:?}");
        let log = audit::list(&w.state.db, c.id, 1000).await.unwrap();
        assert!(log.iter().filter(|e| e.event == "refreshed").count() >= 50);
        assert!(
            log.iter()
                .any(|e| e.to_status.as_deref() == Some("degraded") && e.meta_code == Some(2))
        );
    }
    assert!(reconnected);
    assert_eq!(fb_relogins, 2, "warned before day 90 and day 166");
}

#[tokio::test]
async fn a_long_outage_opens_an_incident_that_escalates_as_expiry_nears() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "cafe").await;
    w.advance(2 * DAY);
    w.pass().await;
    w.sim
        .set_outage(Outage {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..(70 * DAY / (6 * HOUR)) {
        w.advance(6 * HOUR);
        w.pass().await;
        if let Some(i) = w.open_incident(&c).await
            && kinds.last() != Some(&i.kind)
        {
            kinds.push(i.kind.clone());
        }
    }
    assert_eq!(
        kinds,
        ["degraded_too_long", "expiry_at_risk", "reconnect_needed"]
    );
    let dead = w.reload(&c).await;
    assert_eq!(dead.reason.as_deref(), Some("expired"));
    assert!(
        w.timing_refusals(&[&c]).await.is_empty(),
        "never refreshed after expiry"
    );
    let refreshes_after_expiry = w
        .sim
        .requests(None)
        .into_iter()
        .filter(|r| {
            r.path.contains("refresh_access_token")
                && dead.token_expires_at.is_some_and(|e| r.time >= e)
        })
        .count();
    assert_eq!(refreshes_after_expiry, 0);
    // Meta comes back; only a new login helps now, and it revives the same connection.
    w.sim.clear_outage();
    w.pass().await;
    assert_eq!(w.reload(&c).await.status(), Status::NeedsReconnect);
    let again = w.connect_instagram(owner, "cafe").await;
    assert_eq!((again.id, again.status()), (c.id, Status::Active));
    assert!(w.open_incident(&again).await.is_none());
}

/// Everything the database holds, as text: the SQLite files byte for byte, or every row of every
/// table on PostgreSQL.
pub async fn database_dump(w: &World) -> String {
    match &w.state.db {
        feedkeeper::db::Db::Sqlite(pool) => {
            sqlx::query("PRAGMA wal_checkpoint(FULL)")
                .execute(pool)
                .await
                .unwrap();
            let path = w
                .state
                .config
                .database_url()
                .trim_start_matches("sqlite://")
                .to_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        feedkeeper::db::Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let mut dump = String::new();
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t"))
                        .fetch_all(pool)
                        .await
                        .unwrap();
                dump.push_str(&rows.join("\n"));
            }
            dump
        }
    }
}

#[tokio::test]
async fn the_database_never_holds_a_token_in_clear() {
    let w = World::new().await;
    let owner = w.user("secret@example.com").await;
    let c = w.connect_instagram(owner, "vault").await;
    let f = w.connect_facebook(owner, "vault_fb").await;
    let token = connections::open_token(&w.state, &w.reload(&c).await).unwrap();
    let page_token = connections::open_token(&w.state, &w.reload(&f).await).unwrap();
    w.advance(4 * DAY);
    w.pass().await;
    let refreshed = connections::open_token(&w.state, &w.reload(&c).await).unwrap();
    assert_ne!(
        refreshed, token,
        "the simulator hands out a new string on refresh"
    );
    let dump = database_dump(&w).await;
    assert!(
        dump.contains("vault"),
        "the dump is readable: it holds the username"
    );
    for secret in [&token, &page_token, &refreshed] {
        assert!(
            !dump.contains(secret.expose()),
            "a token is stored in clear"
        );
    }
}

#[tokio::test]
async fn an_app_wide_throttle_pauses_every_check_on_every_node() {
    let w = World::new().await;
    let owner = w.user("busy@example.com").await;
    let mut all = Vec::new();
    for name in ["one", "two", "three"] {
        all.push(w.connect_instagram(owner, name).await);
    }
    w.advance(7 * HOUR);
    w.sim
        .throttle(meta_sim::Throttle {
            scope: meta_sim::ThrottleScope::App,
            account: None,
            secs: 3600,
        })
        .unwrap();
    let report = w.pass().await;
    let until = report
        .lifecycle
        .paused_until
        .unwrap_or_else(|| panic!("code 4 pauses the app: {report:?}"));
    assert!(until > w.clock.now());

    // Any node, while paused: no call to Meta at all.
    w.advance(5 * 60);
    let before = w.sim.requests(None).len();
    let other_node = run_due_now(&w.state, "another-node").await.unwrap();
    assert_eq!(other_node.lifecycle.finished, 0);
    assert_eq!(other_node.lifecycle.paused_until, Some(until));
    assert_eq!(
        w.sim.requests(None).len(),
        before,
        "paused nodes do not call Meta"
    );

    // After the throttle, every connection recovers by itself; no incident for a short pause.
    w.sim.clear_throttles();
    w.advance(2 * HOUR);
    w.pass().await;
    for c in &all {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_loop_checks_due_connections_and_stops_on_shutdown() {
    let w = World::new().await;
    let owner = w.user("loop@example.com").await;
    let c = w.connect_instagram(owner, "looped").await;
    w.sim
        .apply_event("looped", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.advance(7 * HOUR);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = feedkeeper::jobs::spawn(w.state.clone(), "loop-node", stopped).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if w.reload(&c).await.status() == Status::NeedsReconnect {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the loop never checked the connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), workers)
        .await
        .expect("workers stop on shutdown")
        .unwrap();
}
