//! The binary as a user runs it: help, print-config, config errors, migrate, demo, serve.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestDb;
use crate::lifecycle::World;

pub(crate) fn feedkeeper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_feedkeeper"));
    // The tests' own environment must not leak config into the binary.
    for (key, _) in std::env::vars() {
        if key.starts_with("FEEDKEEPER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Kills the child when the test ends, pass or fail.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn version_names_the_release_and_its_database_schema() {
    let out = feedkeeper().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let schema = feedkeeper::db::latest_migration(feedkeeper::config::DatabaseKind::Sqlite);
    assert!(schema >= 19, "{schema}");
    assert_eq!(
        text.trim(),
        format!(
            "feedkeeper {} (database schema {schema})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// The commands against the binary: a backup of a database, refused over an existing file,
/// and a restore into another data directory.
#[test]
fn backup_and_restore_run_from_the_command_line() {
    let from = tempfile::tempdir().unwrap();
    let to = tempfile::tempdir().unwrap();
    let migrate = feedkeeper()
        .args(["migrate"])
        .env("FEEDKEEPER_STORAGE__DATA_DIR", from.path())
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    let file = from.path().join("copy.db");
    let backup = feedkeeper()
        .arg("backup")
        .arg(&file)
        .env("FEEDKEEPER_STORAGE__DATA_DIR", from.path())
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    let said = String::from_utf8_lossy(&backup.stdout);
    assert!(
        said.contains("0 connections") && said.contains("token keys"),
        "{said}"
    );
    let again = feedkeeper()
        .arg("backup")
        .arg(&file)
        .env("FEEDKEEPER_STORAGE__DATA_DIR", from.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{again:?}"
    );
    let restore = feedkeeper()
        .arg("restore")
        .arg(&file)
        .env("FEEDKEEPER_STORAGE__DATA_DIR", to.path())
        .output()
        .unwrap();
    assert!(restore.status.success(), "{restore:?}");
    assert!(to.path().join("feedkeeper.db").exists());
}

#[test]
fn help_lists_every_subcommand() {
    let out = feedkeeper().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "serve",
        "demo",
        "migrate",
        "print-config",
        "simulate-meta",
        "backup",
        "restore",
        "ready",
    ] {
        assert!(text.contains(sub), "--help lacks {sub}: {text}");
    }
}

#[test]
fn print_config_prints_the_commented_defaults() {
    let out = feedkeeper().arg("print-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("instagram_graph_url = \"https://graph.instagram.com\""));
    assert!(text.contains("# "));
    feedkeeper::config::Config::from_toml(&text).expect("printed config parses");
}

#[test]
fn a_bad_config_value_fails_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[meta]\ngraph_api_version = \"latest\"\n").unwrap();
    let out = feedkeeper()
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("meta.graph_api_version"), "{err}");

    let out = feedkeeper()
        .arg("serve")
        .env("FEEDKEEPER_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen"), "{err}");

    let out = feedkeeper()
        .arg("serve")
        .env("FEEDKEEPER_META__TYPO", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("typo"));
}

#[tokio::test]
async fn migrate_brings_the_configured_database_up_to_date() {
    let t = TestDb::new().await;
    let out = feedkeeper()
        .arg("migrate")
        .env("FEEDKEEPER_STORAGE__DATABASE_URL", t.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

/// Reads the child's stdout until a line contains `marker`; returns all lines read.
fn read_until(child: &mut Child, marker: &str) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains(marker);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    panic!("never printed {marker:?}; got {lines:#?}");
}

fn url_after(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(|rest| rest.trim().trim_end_matches('/').to_owned())
        })
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"))
}

#[tokio::test]
async fn demo_runs_the_service_and_the_simulator_with_accounts_to_log_in_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = feedkeeper()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--simulator-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = read_until(&mut child, "Ctrl-C");
    let _guard = Running(child);
    let dashboard = url_after(&lines, "Dashboard:");
    let simulator = url_after(&lines, "Meta simulator:");
    assert!(lines.iter().any(|l| l.contains("password")), "{lines:#?}");

    let http = reqwest::Client::new();
    let page = http.get(format!("{dashboard}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("Demo") && body.contains(&simulator), "{body}");
    assert_eq!(
        http.get(format!("{dashboard}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The simulator is up and has the demo accounts.
    let accounts: serde_json::Value = http
        .get(format!("{simulator}/__sim/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        accounts.as_array().is_some_and(|a| a.len() >= 3),
        "{accounts}"
    );
    // SQLite and the generated token key live in the data directory.
    assert!(dir.path().join("feedkeeper.db").exists());
    let key = std::fs::read_to_string(dir.path().join("token-key")).unwrap();
    feedkeeper::crypto::NamedKey::parse(&key).unwrap();
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_token_key() {
    let t = TestDb::new().await;
    let out = feedkeeper()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FEEDKEEPER_STORAGE__DATABASE_URL", t.url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("security.token_keys") && err.contains("generate-key"),
        "{err}"
    );
}

#[test]
fn generated_keys_are_fresh_and_valid() {
    let make = || {
        let out = feedkeeper()
            .args(["generate-key", "--id", "2026-11"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (make(), make());
    assert_ne!(a, b);
    assert!(a.starts_with("2026-11:"));
    feedkeeper::crypto::NamedKey::parse(&a).unwrap();
    let out = feedkeeper()
        .args(["generate-key", "--id", "bad id!"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn serve_answers_health_checks_on_the_configured_database() {
    let t = TestDb::new().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let key = feedkeeper().arg("generate-key").output().unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let child = feedkeeper()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("FEEDKEEPER_STORAGE__DATABASE_URL", t.url())
        .env("FEEDKEEPER_SECURITY__TOKEN_KEYS", key)
        .spawn()
        .unwrap();
    let _guard = Running(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("serve never became ready: {other:?}"),
        }
    }
    let page = http
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign up"), "{page}");

    // The container health check: `feedkeeper ready` asks the configured listener.
    let ready = feedkeeper()
        .arg("ready")
        .env("FEEDKEEPER_SERVER__LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(ready.status.success(), "{ready:?}");
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "ready\n");
    let nobody = feedkeeper()
        .args(["ready", "--url", "http://127.0.0.1:9/readyz"])
        .output()
        .unwrap();
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no answer"));
}

// Multi-threaded: the simulator runs in this test's runtime while the binary blocks a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_can_be_listed_and_checked_from_the_command_line() {
    let w = World::new().await;
    w.at_system_time();
    let owner = w.user("ops@example.com").await;
    let healthy = w.connect_instagram(owner, "cli_shop").await;
    let broken = w.connect_instagram(owner, "cli_broken").await;
    w.sim
        .apply_event("cli_broken", meta_sim::AccountEvent::PasswordChanged)
        .await
        .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = feedkeeper();
        cmd.args(args).envs(w.binary_env());
        cmd.output().unwrap()
    };

    let out = run(&["connections", "refresh", &healthy.id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("@cli_shop: active"));

    let out = run(&["connections", "refresh", &broken.id.to_string()]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("needs_reconnect (password_changed)"),
        "{text}"
    );

    let out = run(&["connections", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("@cli_shop")
            && table.contains("ops@example.com")
            && table.contains("password_changed"),
        "{table}"
    );

    let out = run(&["connections", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let text = rows.to_string();
    let token = feedkeeper::connections::open_token(&w.state, &w.reload(&healthy).await).unwrap();
    assert!(!text.contains(token.expose()) && !text.contains("token_sealed"));

    let out = run(&["connections", "refresh", "999999"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no connection 999999"));
    let out = run(&["connections", "refresh", "abc"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_meta_apps_and_reports_a_wrong_secret() {
    let w = World::new().await;
    w.at_system_time();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = feedkeeper();
        cmd.arg("doctor").envs(w.binary_env());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Meta accepts the Instagram app's id and secret"),
        "{text}"
    );
    assert!(
        text.contains("Meta accepts the Facebook app's id and secret"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("image store") && l.contains("writable")),
        "{text}"
    );

    // An image store that cannot be written (a bucket on a server that is not there) fails.
    let out = run(&[
        ("FEEDKEEPER_IMAGES__STORE", "s3://missing-bucket"),
        ("FEEDKEEPER_IMAGES__S3_ENDPOINT", "http://127.0.0.1:9"),
        ("FEEDKEEPER_IMAGES__S3_ALLOW_HTTP", "true"),
        ("FEEDKEEPER_IMAGES__S3_ACCESS_KEY_ID", "x"),
        ("FEEDKEEPER_IMAGES__S3_SECRET_ACCESS_KEY", "y"),
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("image store")),
        "{text}"
    );

    let out = run(&[("FEEDKEEPER_META__FACEBOOK_APP_SECRET", "wrong-secret")]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("Facebook app") && l.contains("secret")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reseal_moves_every_token_to_the_new_key_so_the_old_one_can_go() {
    let w = World::new().await;
    w.at_system_time();
    let owner = w.user("keys@example.com").await;
    let c = w.connect_instagram(owner, "rotated").await;
    let token = feedkeeper::connections::open_token(&w.state, &w.reload(&c).await).unwrap();
    let old = w.state.config.security.token_keys[0].expose().to_owned();
    let new = feedkeeper::crypto::NamedKey::generate("new").to_config_string();
    let run = |keys: &str, args: &[&str]| {
        let mut cmd = feedkeeper();
        cmd.args(args)
            .envs(w.binary_env())
            .env("FEEDKEEPER_SECURITY__TOKEN_KEYS", keys);
        cmd.output().unwrap()
    };
    let out = run(&format!("{new},{old}"), &["keys", "reseal"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 value(s) sealed again") && text.contains("may remove"),
        "{text}"
    );
    let sealed = w.reload(&c).await.token_sealed.unwrap();
    assert!(sealed.starts_with("v2.new."), "{sealed}");
    // With the old key gone, the token still opens, and a check works.
    let keys = [feedkeeper::crypto::NamedKey::parse(&new).unwrap()];
    let cipher =
        feedkeeper::crypto::TokenCipher::new(&keys, feedkeeper::crypto::Purpose::Tokens).unwrap();
    assert_eq!(
        cipher
            .open(&sealed, &feedkeeper::connections::token_context(c.id))
            .unwrap(),
        token.expose()
    );
    let out = run(&new, &["connections", "refresh", &c.id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_can_be_listed_made_due_and_revived_from_the_command_line() {
    let w = World::new().await;
    w.at_system_time();
    let owner = w.user("jobs@example.com").await;
    let c = w.connect_instagram(owner, "queued").await;
    let run = |args: &[&str]| {
        let mut cmd = feedkeeper();
        cmd.args(args).envs(w.binary_env());
        cmd.output().unwrap()
    };
    let out = run(&["connections", "check", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 connection check(s) are due now"));
    let job = feedkeeper::db::jobs::get(&w.state.db, "lifecycle", &c.id.to_string())
        .await
        .unwrap();
    assert!(job.due_at <= feedkeeper::clock::Clock::System.now());
    // A job that failed for good: listed, then revived.
    let claimed =
        feedkeeper::db::jobs::claim_one(&w.state.db, "lifecycle", &c.id.to_string(), "n", 0, 1)
            .await
            .unwrap()
            .unwrap();
    feedkeeper::db::jobs::fail(
        &w.state.db,
        &claimed.lease().unwrap(),
        "disk on fire",
        0,
        true,
        0,
    )
    .await
    .unwrap();
    let out = run(&["jobs", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("lifecycle") && text.contains("disk on fire"),
        "{text}"
    );
    let out = run(&["jobs", "retry", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 job(s) are due again"));
    assert!(
        feedkeeper::db::jobs::list_dead(&w.state.db)
            .await
            .unwrap()
            .is_empty()
    );
    let out = run(&["jobs", "retry", "424242"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not dead"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_invite_users_and_give_them_a_way_back_in() {
    let w = World::new().await;
    w.at_system_time();
    let run = |args: &[&str]| {
        let mut cmd = feedkeeper();
        cmd.args(args).envs(w.binary_env());
        cmd.output().unwrap()
    };
    // The link a command prints, as a path on this test's server.
    let link_path = |out: &std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text
            .find("/reset/")
            .unwrap_or_else(|| panic!("no link in {text}"));
        text[at..].lines().next().unwrap().trim().to_owned()
    };
    let out = run(&["users", "create", "Invited@Example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let invite = link_path(&out);
    let again = run(&["users", "create", "invited@example.com"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let nobody = run(&["users", "reset-password", "nobody@example.com"]);
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no account"));

    // The invited person opens the link and chooses a password: logged in, on the dashboard.
    let browser = w.app.browser();
    let page = browser.get(&invite).await;
    assert_eq!(page.status, reqwest::StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("invited@example.com"));
    let mut form = page.form(&invite);
    form.set("password", "short")
        .set("password_confirm", "short");
    let refused = browser.submit(&form).await;
    assert_eq!(refused.status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let mut form = refused.form(&invite);
    form.set("password", "correct horse battery")
        .set("password_confirm", "correct horse battery");
    let saved = browser.submit(&form).await;
    assert_eq!(
        saved.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        saved.body
    );
    assert_eq!(saved.location(), Some("/connections"));
    assert_eq!(
        browser.get("/connections").await.status,
        reqwest::StatusCode::OK
    );
    // It works once.
    let reused = w.app.browser().get(&invite).await;
    assert_eq!(reused.status, reqwest::StatusCode::FORBIDDEN);
    assert!(reused.body.contains("expired or has been used"));

    // Forgot it: a reset link; the new password works, the old session ends.
    let out = run(&["users", "reset-password", "invited@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reset = link_path(&out);
    let other = w.app.browser();
    let mut form = other.get(&reset).await.form(&reset);
    form.set("password", "a brand new passphrase")
        .set("password_confirm", "a brand new passphrase");
    assert_eq!(
        other.submit(&form).await.status,
        reqwest::StatusCode::SEE_OTHER
    );
    assert_ne!(
        browser.get("/connections").await.status,
        reqwest::StatusCode::OK,
        "the earlier session ended"
    );
    // An expired link does not work.
    let out = run(&["users", "reset-password", "invited@example.com"]);
    let late = link_path(&out);
    w.advance(2 * 3600);
    assert_eq!(
        w.app.browser().get(&late).await.status,
        reqwest::StatusCode::FORBIDDEN
    );
}
