//! `feedkeeper backup` and `restore` on the embedded SQLite database: a backup taken while
//! widgets are being written restores into a fresh data directory with every connection, widget
//! and post, and every token still opens with the same keys; a restore never overwrites a
//! database a node has open, nor one that exists without `--replace`. On PostgreSQL the commands
//! point at pg_dump instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use feedkeeper::clock::Clock;
use feedkeeper::db::connections as stored;
use feedkeeper::state::AppState;
use feedkeeper::widgets::settings::WidgetSettings;

use crate::dashboard::{connect_instagram, user_id};
use crate::helpers::TestApp;

/// A user with an account connected per name, a widget for each, and their posts synced.
async fn owner_with_synced_widgets(
    app: &TestApp,
    email: &str,
    names: &[&str],
) -> (
    feedkeeper::ids::UserId,
    Vec<feedkeeper::db::connections::Connection>,
) {
    let _session = app.signup_and_login(email).await;
    let owner = user_id(app, email).await;
    let mut connections = Vec::new();
    for name in names {
        connections.push(connect_instagram(app, owner, name).await);
    }
    for c in &connections {
        feedkeeper::widgets::create(&app.state, owner, "w", c.id, &WidgetSettings::default())
            .await
            .unwrap();
    }
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    (owner, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_whole_and_its_tokens_open() {
    let app = TestApp::spawn().await;
    if crate::helpers::postgres_admin_url().is_some() {
        let refused = feedkeeper::backup::backup(&app.state.config, std::path::Path::new("x.db"))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("pg_dump"), "{refused}");
        return;
    }
    let (owner, connections) = owner_with_synced_widgets(
        &app,
        "saved@example.com",
        &["kept_one", "kept_two", "kept_three"],
    )
    .await;

    // Widgets keep being written while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (state, stop, written, c) = (
            app.state.clone(),
            stop.clone(),
            written.clone(),
            connections[0].id,
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                feedkeeper::widgets::create(&state, owner, "busy", c, &WidgetSettings::default())
                    .await
                    .unwrap();
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while written.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let place = tempfile::tempdir().unwrap();
    let file = place.path().join("feedkeeper-backup.db");
    let held = feedkeeper::backup::backup(&app.state.config, &file)
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(held.connections, 3);
    assert!(held.widgets >= 6, "{held:?}");
    assert!(held.posts >= 6, "{held:?}");
    // A backup never overwrites a file.
    let again = feedkeeper::backup::backup(&app.state.config, &file)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("exists"), "{again}");

    // Restored into a fresh data directory, with the same token keys.
    let fresh = tempfile::tempdir().unwrap();
    let mut config = (*app.state.config).clone();
    config.storage.database_url = String::new();
    config.storage.data_dir = fresh.path().to_owned();
    let restored = feedkeeper::backup::restore(&config, &file, false)
        .await
        .unwrap();
    assert_eq!(restored, held);
    let state = AppState::build(config.clone(), Clock::manual(crate::helpers::T0))
        .await
        .unwrap();
    let back = stored::list_all(&state.db).await.unwrap();
    assert_eq!(back.len(), 3);
    for c in &back {
        let original = connections.iter().find(|o| o.id == c.id).unwrap();
        assert_eq!(c.username, original.username);
        feedkeeper::connections::open_token(&state, c).expect("the token opens with the same keys");
    }
    let widgets = feedkeeper::db::widgets::list_owned(&state.db, owner)
        .await
        .unwrap();
    assert_eq!(widgets.len() as i64, held.widgets);

    // Not over a database in use, nor over one that exists without --replace.
    let exists = feedkeeper::backup::restore(&config, &file, false)
        .await
        .unwrap_err();
    assert!(exists.to_string().contains("--replace"), "{exists}");
    let in_use = feedkeeper::backup::restore(&config, &file, true)
        .await
        .unwrap_err();
    assert!(in_use.to_string().contains("in use"), "{in_use}");
    state.db.close().await;
    let replaced = feedkeeper::backup::restore(&config, &file, true)
        .await
        .unwrap();
    assert_eq!(replaced, held);
    // A file that is not a database is refused, and nothing is touched.
    let junk = place.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    assert!(
        feedkeeper::backup::restore(&config, &junk, true)
            .await
            .is_err()
    );
    let state = AppState::build(config, Clock::manual(crate::helpers::T0))
        .await
        .unwrap();
    assert_eq!(stored::list_all(&state.db).await.unwrap().len(), 3);
}

/// Runs a command off the runtime's threads (the app keeps serving meanwhile).
async fn run(program: &'static str, args: Vec<std::ffi::OsString>) -> std::process::Output {
    tokio::task::spawn_blocking(move || std::process::Command::new(program).args(args).output())
        .await
        .unwrap()
        .expect("pg_dump and pg_restore come with PostgreSQL")
}

/// Rows of `table` (a name from this file, never input).
async fn count(db: &feedkeeper::db::Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match db {
        feedkeeper::db::Db::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await,
        feedkeeper::db::Db::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await,
    }
    .unwrap()
}

/// The README's PostgreSQL path, with the real tools: `pg_dump -Fc` while widgets are being
/// written, `pg_restore` into a new database, and everything is there and every token opens
/// with the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backups_are_pg_dump_and_pg_restore() {
    if crate::helpers::postgres_admin_url().is_none() {
        eprintln!("SKIPPED: needs PostgreSQL (TEST_DATABASE_URL); CI's second pass runs it");
        return;
    }
    let app = TestApp::spawn().await;
    let (owner, connections) =
        owner_with_synced_widgets(&app, "dumped@example.com", &["dumped_one", "dumped_two"]).await;
    let source = app.state.config.database_url();

    // Widgets keep being written while the dump runs: it is one consistent snapshot anyway.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (state, stop, c) = (app.state.clone(), stop.clone(), connections[0].id);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                feedkeeper::widgets::create(&state, owner, "busy", c, &WidgetSettings::default())
                    .await
                    .unwrap();
            }
        })
    };
    let place = tempfile::tempdir().unwrap();
    let dump = place.path().join("feedkeeper.dump");
    let dumped = run(
        "pg_dump",
        vec![
            "-Fc".into(),
            "-f".into(),
            dump.clone().into(),
            source.into(),
        ],
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );

    // Into a new, empty database.
    let target = crate::helpers::TestDb::empty().await;
    let restored = run(
        "pg_restore",
        vec![
            "--no-owner".into(),
            "-d".into(),
            target.url().into(),
            dump.into(),
        ],
    )
    .await;
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let mut config = (*app.state.config).clone();
    config.storage.database_url = target.url();
    let state = AppState::build(config, Clock::manual(crate::helpers::T0))
        .await
        .unwrap();
    let back = stored::list_all(&state.db).await.unwrap();
    assert_eq!(back.len(), 2);
    for c in &back {
        feedkeeper::connections::open_token(&state, c).expect("the token opens with the same keys");
    }
    let posts = count(&state.db, "posts").await;
    assert!(posts >= 4, "{posts} posts");
    assert_eq!(posts, count(&app.state.db, "posts").await);
    assert!(count(&state.db, "widgets").await >= 2);
    assert!(count(&state.db, "widgets").await <= count(&app.state.db, "widgets").await);
    assert_eq!(
        state.db.applied_migration().await.unwrap(),
        feedkeeper::db::latest_migration(state.db.kind())
    );
}
