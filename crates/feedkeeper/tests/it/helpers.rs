//! Shared test helpers: a fresh database per test on either backend.

use std::sync::atomic::{AtomicU32, Ordering};

use feedkeeper::db::Db;

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
                db.migrate().await.expect("migrate postgres");
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
                db.migrate().await.expect("migrate sqlite");
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
