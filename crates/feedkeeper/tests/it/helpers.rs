//! Shared test helpers: a fresh database per test on either backend ([`TestDb`]), and the app
//! running on a real socket with a cookie-keeping browser ([`TestApp`], [`Session`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use feedkeeper::clock::Clock;
use feedkeeper::config::{Config, Secret};
use feedkeeper::db::Db;
use feedkeeper::state::AppState;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use url::Url;

use crate::browser::{self, Form};

/// The PostgreSQL server to test against, if any (`postgres://user@host/db`, any existing db).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// A migrated database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        TestDb::create(true).await
    }

    /// A database with no schema yet (for tests of migrating it).
    pub async fn empty() -> TestDb {
        TestDb::create(false).await
    }

    async fn create(migrated: bool) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        match postgres_admin_url() {
            Some(admin_url) => {
                let name = format!(
                    "fk_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    rand::random::<u32>()
                );
                let admin = Db::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                if let Db::Postgres(pool) = &admin {
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(pool)
                        .await
                        .expect("create test database");
                }
                admin.close().await;
                let db = Db::connect(&with_database(&admin_url, &name))
                    .await
                    .unwrap();
                if migrated {
                    db.migrate().await.expect("migrate postgres");
                }
                TestDb {
                    db,
                    _dir: None,
                    postgres: Some((admin_url, name)),
                }
            }
            None => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let db = Db::connect(&url).await.unwrap();
                if migrated {
                    db.migrate().await.expect("migrate sqlite");
                }
                TestDb {
                    db,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
        }
    }

    /// The URL of this test's database (for running the binary against it).
    pub fn url(&self) -> String {
        match (&self.postgres, &self._dir) {
            (Some((admin, name)), _) => with_database(admin, name),
            (None, Some(dir)) => format!("sqlite://{}", dir.path().join("test.db").display()),
            (None, None) => unreachable!("a TestDb is either PostgreSQL or SQLite"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup. The
        // test's own pool belongs to the test's (now blocked) runtime, so it is not touched here:
        // `WITH (FORCE)` ends its sessions.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(Db::Postgres(pool)) = Db::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

// ---------------------------------------------------------------------------------------------
// A running app and a cookie-keeping browser, for tests of the dashboard over real HTTP.
// ---------------------------------------------------------------------------------------------

/// Where a [`TestApp`]'s manual clock starts (2025-06-15 UTC).
pub const T0: i64 = 1_750_000_000;

/// The password [`TestApp::signup_and_login`] signs up with.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// feedkeeper serving on `127.0.0.1:<free port>` over a fresh [`TestDb`], with a token key, a
/// manual clock at [`T0`] (`app.state.clock.advance(..)` moves it) and `public_url` set to its
/// own address. The server stops when the `TestApp` is dropped.
pub struct TestApp {
    pub state: AppState,
    /// Our Meta, with the app's redirect and callback URLs registered to this server.
    pub sim: meta_sim::Simulator,
    _sim_server: meta_sim::RunningSim,
    /// `http://127.0.0.1:<port>/`.
    pub base: Url,
    /// Kept so the database lives as long as the app (`state.db` is the pool to use).
    _db: TestDb,
    _data_dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<anyhow::Result<feedkeeper::app::ServingThreads>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// Starts the app with the test configuration.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts the app after `configure` has changed the test configuration (e.g. an https
    /// `server.public_url`, or Meta endpoints pointing at a simulator). The result must validate.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::spawn_full(configure, false).await
    }

    /// As `feedkeeper demo` runs: the simulator's demo accounts, shown to new users.
    pub async fn spawn_demo() -> TestApp {
        TestApp::spawn_full(|_| {}, true).await
    }

    async fn spawn_full(configure: impl FnOnce(&mut Config), demo: bool) -> TestApp {
        let db = TestDb::new().await;
        let data_dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sim = meta_sim::Simulator::new(meta_sim::SimOptions {
            seed: 5,
            start_time: T0,
            ..Default::default()
        });
        let sim_server = meta_sim::start(sim.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.set_app(meta_sim::AppConfig {
            redirect_uris: vec![
                format!("http://{addr}/connect/instagram/callback"),
                format!("http://{addr}/connect/facebook/callback"),
            ],
            deauthorize_callback_url: Some(format!("http://{addr}/meta/deauthorize")),
            data_deletion_callback_url: Some(format!("http://{addr}/meta/data-deletion")),
            ..sim.app()
        });
        let mut config = Config::default();
        feedkeeper::cli::point_at_simulator(&mut config, &sim_server.base_url, &sim.app()).unwrap();
        config.server.listen = addr;
        config.server.public_url = format!("http://{addr}");
        config.storage.data_dir = data_dir.path().to_owned();
        config.storage.database_url = db.url();
        config.security.token_keys = vec![Secret::new(
            feedkeeper::crypto::NamedKey::generate("t").to_config_string(),
        )];
        // Tests sign up many users; closed sign-up has its own test.
        config.accounts.open_signup = true;
        configure(&mut config);
        config.validate().expect("the test configuration is valid");
        let mut state = AppState::build(config, Clock::manual(T0))
            .await
            .expect("app state");
        if demo {
            let accounts = sim.seed_demo().expect("demo accounts");
            state = state.with_demo(feedkeeper::state::DemoInfo {
                simulator_url: sim_server.base_url.clone(),
                accounts: accounts
                    .into_iter()
                    .map(|a| feedkeeper::state::DemoAccount {
                        username: a.username,
                        password: a.password,
                        description: a.description,
                    })
                    .collect(),
            });
        }
        // The real edge and server loop, as `serve` runs them (the per-address rate limit sees
        // the peer address).
        let server = tokio::spawn(feedkeeper::app::serve_http(
            state.clone(),
            listener,
            std::future::pending(),
        ));
        TestApp {
            state,
            sim,
            _sim_server: sim_server,
            base: Url::parse(&format!("http://{addr}/")).unwrap(),
            _db: db,
            _data_dir: data_dir,
            server,
        }
    }

    /// Moves our clock and Meta's together.
    pub fn advance(&self, secs: i64) {
        self.state.clock.advance(secs);
        self.sim.advance_clock(secs);
    }

    /// An account on the simulated Instagram (business unless `kind` says otherwise).
    pub fn instagram_account(
        &self,
        username: &str,
        kind: meta_sim::AccountKind,
        facebook_page: bool,
    ) {
        self.sim
            .create_account(meta_sim::NewAccount {
                username: username.into(),
                kind,
                facebook_page,
                posts: 2,
                ..Default::default()
            })
            .unwrap();
    }

    /// `path` on this app.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a path")
    }

    /// A browser with no cookies yet.
    pub fn browser(&self) -> Session {
        Session {
            http: browser::client(),
            base: self.base.clone(),
            cookies: Mutex::new(BTreeMap::new()),
            csrf: String::new(),
        }
    }

    /// Signs `email` up with [`TEST_PASSWORD`] through the sign-up page and returns the
    /// logged-in browser, its CSRF token in [`Session::csrf`].
    pub async fn signup_and_login(&self, email: &str) -> Session {
        let mut session = self.browser();
        let mut form = session.get("/signup").await.form("/signup");
        form.set("email", email)
            .set("password", TEST_PASSWORD)
            .set("password_confirm", TEST_PASSWORD);
        let reply = session.submit(&form).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "sign-up: {}",
            reply.body
        );
        session.csrf = session.fetch_csrf().await;
        session
    }

    /// Logs an existing user in from a new browser and returns it (CSRF token included).
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let mut session = self.browser();
        let mut form = session.get("/login").await.form("/login");
        form.set("email", email).set("password", password);
        let reply = session.submit(&form).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "log-in: {}",
            reply.body
        );
        session.csrf = session.fetch_csrf().await;
        session
    }
}

/// A browser: keeps the cookies the app sets (by hand: reqwest's cookie store is not enabled)
/// and never follows redirects, so tests see every `Location`.
pub struct Session {
    http: reqwest::Client,
    base: Url,
    cookies: Mutex<BTreeMap<String, String>>,
    /// The logged-in session's CSRF token (empty before log-in); send it as `csrf` in POSTs.
    pub csrf: String,
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// The page's address (the base for its forms' actions).
    pub url: Url,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The redirect target, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` line of the reply.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The form on this page that posts to `action_path` (panics, showing the page, if none).
    pub fn form(&self, action_path: &str) -> Form {
        browser::forms(&self.url, &self.body)
            .into_iter()
            .find(|f| f.action.path() == action_path)
            .unwrap_or_else(|| {
                panic!(
                    "no form posting to {action_path} on {}: {}",
                    self.url, self.body
                )
            })
    }
}

impl Session {
    /// `GET path` with this browser's cookies.
    pub async fn get(&self, path: &str) -> Reply {
        let url = self.base.join(path).expect("a path");
        let request = self.http.get(url.clone());
        self.send(url, request).await
    }

    /// `POST path` with `fields` form-encoded (add `("csrf", &session.csrf)` yourself: tests of
    /// CSRF need to leave it out).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let url = self.base.join(path).expect("a path");
        let request = self.http.post(url.clone()).form(fields);
        self.send(url, request).await
    }

    /// `POST path` as `multipart/form-data` (a form with a file input): text `fields`, and
    /// `files` as (field name, file name, bytes).
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Reply {
        const BOUNDARY: &str = "feedkeeper-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, file_name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                     filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let url = self.base.join(path).expect("a path");
        let request = self
            .http
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        self.send(url, request).await
    }

    /// Submits a form read from a page.
    pub async fn submit(&self, form: &Form) -> Reply {
        let request = self.http.post(form.action.clone()).form(&form.fields);
        self.send(form.action.clone(), request).await
    }

    /// Submits a form with one more request header (as a proxy in front would add it).
    pub async fn submit_with_header(&self, form: &Form, name: &str, value: &str) -> Reply {
        let request = self
            .http
            .post(form.action.clone())
            .header(name, value)
            .form(&form.fields);
        self.send(form.action.clone(), request).await
    }

    /// The value of cookie `name`, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Sets (or, with `None`, removes) a cookie, as if the app had.
    pub fn set_cookie(&self, name: &str, value: Option<&str>) {
        let mut jar = self.cookies.lock().unwrap();
        match value {
            Some(v) => jar.insert(name.to_owned(), v.to_owned()),
            None => jar.remove(name),
        };
    }

    /// The session's CSRF token, read from the logout form of the account page.
    pub async fn fetch_csrf(&self) -> String {
        let page = self.get("/account").await;
        assert_eq!(page.status, StatusCode::OK, "/account: {}", page.body);
        let form = page.form("/logout");
        form.fields
            .iter()
            .find(|(n, _)| n == "csrf")
            .map(|(_, v)| v.clone())
            .expect("the logout form carries a csrf field")
    }

    async fn send(&self, url: Url, request: reqwest::RequestBuilder) -> Reply {
        let cookie_header = {
            let jar = self.cookies.lock().unwrap();
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let request = if cookie_header.is_empty() {
            request
        } else {
            request.header(COOKIE, cookie_header)
        };
        let response = request.send().await.expect("request to the test app");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let reply = Reply {
            status,
            url,
            headers,
            body,
        };
        for line in reply.set_cookies() {
            self.store_cookie(&line);
        }
        reply
    }

    fn store_cookie(&self, line: &str) {
        let mut parts = line.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let removed =
            value.is_empty() || parts.any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
        self.set_cookie(name, (!removed).then_some(value));
    }
}

/// Runs every due job of one kind on `state`, as one pass of one node's worker.
pub async fn run_kind<W: feedkeeper::jobs::runner::Work>(
    state: &AppState,
    work: W,
) -> feedkeeper::jobs::runner::Report {
    let settings = feedkeeper::jobs::runner::RunnerSettings::from_state(state, &state.node);
    feedkeeper::jobs::runner::run_due(state, &std::sync::Arc::new(work), &settings)
        .await
        .unwrap()
}
