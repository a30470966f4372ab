//! The store: SQLite (embedded default) or PostgreSQL, chosen by the database URL.
//!
//! One SQL string per query runs on both backends (`$1` placeholders work on SQLite too; times are
//! `BIGINT` Unix seconds). Queries fork only where the backends really differ. Each table group has
//! its own file; nothing outside `db/` writes SQL.

pub mod api;
pub mod audit;
pub mod connections;
pub mod deletion_requests;
pub mod images;
pub mod incidents;
pub mod jobs;
pub mod links;
pub mod mail;
pub mod meta_pauses;
pub mod metrics;
pub mod oauth_states;
pub mod operator_problems;
pub mod organisations;
pub mod page_choices;
pub mod password_resets;
pub mod posts;
pub mod processed_callbacks;
pub mod sessions;
pub mod users;
pub mod webhooks;
pub mod widget_changes;
pub mod widgets;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::{DatabaseKind, database_kind};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The newest migration this build knows, for `kind`'s schema.
pub fn latest_migration(kind: DatabaseKind) -> i64 {
    let migrator = match kind {
        DatabaseKind::Sqlite => &SQLITE_MIGRATIONS,
        DatabaseKind::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Connections of the main pool (the workers', the change poller's, the CLI's) when nothing
/// else is said (`storage.pool_size`).
pub const MAIN_POOL: u32 = 16;

/// How long a query waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Where a query runs: straight on the pool (its own implicit transaction), or inside an open
/// [`Tx`] so that several writes commit together. Every query function takes
/// `impl Into<Ex<'_>>`, so callers pass `&state.db` or `&mut tx` alike.
pub enum Ex<'a> {
    Pool(&'a Db),
    Tx(&'a mut Tx),
}

impl Ex<'_> {
    /// The same executor again, for several statements in a row on one `Ex`.
    pub fn reborrow(&mut self) -> Ex<'_> {
        match self {
            Ex::Pool(db) => Ex::Pool(db),
            Ex::Tx(tx) => Ex::Tx(tx),
        }
    }
}

impl<'a> From<&'a Db> for Ex<'a> {
    fn from(db: &'a Db) -> Self {
        Ex::Pool(db)
    }
}

impl<'a> From<&'a mut Tx> for Ex<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Ex::Tx(tx)
    }
}

impl Ex<'_> {
    /// A shorter-lived copy, for functions that run several queries on one executor.
    pub fn re(&mut self) -> Ex<'_> {
        match self {
            Ex::Pool(db) => Ex::Pool(db),
            Ex::Tx(tx) => Ex::Tx(tx),
        }
    }

    /// Which backend the queries run on.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Ex::Pool(db) => db.kind(),
            Ex::Tx(tx) => match tx.0 {
                TxInner::Sqlite(_) => DatabaseKind::Sqlite,
                TxInner::Postgres(_) => DatabaseKind::Postgres,
            },
        }
    }
}

/// An open transaction on either backend. Dropped without [`Tx::commit`], it rolls back, so a
/// task cancelled half-way (or a process that dies) leaves nothing half-written.
pub struct Tx(TxInner);

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Makes every write of the transaction visible at once.
    pub async fn commit(self) -> Result<(), DbError> {
        match self.0 {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Runs the same expression on a connection of whichever backend `ex` (a `&Db`, a `&mut Tx` or
/// an [`Ex`]) holds. `$conn` is a `&mut SqliteConnection` or `&mut PgConnection`, so the body is
/// compiled once per backend, which is what lets one SQL string serve both. Outside a
/// transaction a pooled connection is taken for the one query.
macro_rules! on_pool {
    ($ex:expr, $conn:ident => $body:expr) => {
        match Into::<$crate::db::Ex<'_>>::into($ex) {
            $crate::db::Ex::Pool($crate::db::Db::Sqlite(pool)) => {
                let mut held = pool.acquire().await?;
                let $conn = &mut *held;
                $body
            }
            $crate::db::Ex::Pool($crate::db::Db::Postgres(pool)) => {
                let mut held = pool.acquire().await?;
                let $conn = &mut *held;
                $body
            }
            $crate::db::Ex::Tx(tx) => match tx.conn() {
                $crate::db::TxConn::Sqlite($conn) => $body,
                $crate::db::TxConn::Postgres($conn) => $body,
            },
        }
    };
}
pub(crate) use on_pool;

/// What can go wrong in the store, in terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    /// A unique or foreign-key constraint refused the write; carries the constraint name.
    #[error("conflict on {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                DbError::Conflict(db.constraint().unwrap_or("unknown").to_owned())
            }
            _ => DbError::Other(error),
        }
    }
}

impl DbError {
    /// The SQLSTATE of a transaction PostgreSQL ended so that it may simply be run again: a
    /// deadlock (`40P01`) or a serialization failure (`40001`).
    pub fn retryable_code(&self) -> Option<&'static str> {
        let DbError::Other(sqlx::Error::Database(db)) = self else {
            return None;
        };
        match db.code().as_deref() {
            Some("40P01") => Some("40P01"),
            Some("40001") => Some("40001"),
            _ => None,
        }
    }
}

/// Transactions run again by [`retry_conflicts`] since the process started.
static CONFLICT_RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many transactions had to be run again after PostgreSQL ended them as a deadlock or a
/// serialization failure, since the process started. With the lock order kept everywhere
/// (ARCHITECTURE.md) it stays 0; the retry is only a safety net.
pub fn conflict_retries() -> u64 {
    CONFLICT_RETRIES.load(Ordering::Relaxed)
}

/// Attempts of one transaction in [`retry_conflicts`].
const CONFLICT_ATTEMPTS: u32 = 4;

/// Runs `transaction` (a whole transaction, begin to commit: it must be safe to run again) and
/// runs it again, after a short random pause, when PostgreSQL ended it as a deadlock or a
/// serialization failure; at most [`CONFLICT_ATTEMPTS`] times. Each retry is logged and
/// counted ([`conflict_retries`]).
pub async fn retry_conflicts<T, F, Fut>(what: &str, mut transaction: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(e) if attempt < CONFLICT_ATTEMPTS && e.retryable_code().is_some() => {
                CONFLICT_RETRIES.fetch_add(1, Ordering::Relaxed);
                let code = e.retryable_code().unwrap_or_default();
                tracing::warn!(transaction = what, code, attempt, error = %e,
                    "the database ended a transaction to resolve a conflict; running it again");
                let pause = 10 + rand::random::<u64>() % (40 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The connection inside a [`Tx`], for [`on_pool!`].
#[doc(hidden)]
pub enum TxConn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl Tx {
    #[doc(hidden)]
    pub fn conn(&mut self) -> TxConn<'_> {
        match &mut self.0 {
            TxInner::Sqlite(tx) => TxConn::Sqlite(tx),
            TxInner::Postgres(tx) => TxConn::Postgres(tx),
        }
    }
}

impl Db {
    /// Connects to `url` (`sqlite:` or `postgres://`), creating a SQLite file if missing, with a
    /// pool of at most [`MAIN_POOL`] connections (the workers', the CLI's).
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Db::connect_with_pool(url, MAIN_POOL).await
    }

    /// The same with a pool of at most `max` connections.
    pub async fn connect_with_pool(url: &str, max: u32) -> anyhow::Result<Db> {
        use anyhow::Context as _;
        match database_kind(url)? {
            DatabaseKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .with_context(|| format!("invalid SQLite URL {url}"))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    // Writers queue rather than fail: SQLite allows one writer at a time.
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("cannot open SQLite database {url}"))?;
                Ok(Db::Sqlite(pool))
            }
            DatabaseKind::Postgres => {
                let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .context("cannot connect to PostgreSQL")?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    /// Another pool on the same database, of at most `max` connections, opened lazily by whoever
    /// first uses them. Each HTTP serving thread has one of its own: a PostgreSQL connection is
    /// driven by the runtime that opened it, so a busy (or failed) serving thread then stalls
    /// only its own connections, never the workers' pool.
    pub fn sibling(&self, max: u32) -> Db {
        match self {
            Db::Sqlite(pool) => Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
            Db::Postgres(pool) => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
        }
    }

    /// Brings the schema up to date; safe to run on every start and from several nodes at once:
    /// sqlx takes an advisory lock on PostgreSQL, and on SQLite a lock file beside the database
    /// (`<file>.migrate-lock`) makes a second process wait for the first to finish, then find
    /// nothing left to do.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => {
                let file = pool.connect_options().get_filename().to_owned();
                let _lock = migration_lock(&file).await?;
                SQLITE_MIGRATIONS.run(pool).await?
            }
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this is, for logs and the status page.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Db::Sqlite(_) => DatabaseKind::Sqlite,
            Db::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Connections open, idle among them, and the most the pool may open (metrics).
    pub fn pool_use(&self) -> (u32, u32, u32) {
        match self {
            Db::Sqlite(pool) => (
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            ),
            Db::Postgres(pool) => (
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            ),
        }
    }

    /// The newest migration applied to this database (0 before any).
    pub async fn applied_migration(&self) -> Result<i64, DbError> {
        const SQL: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let v: Option<i64> = on_pool!(self, conn => sqlx::query_scalar(SQL).fetch_one(conn).await)?;
        Ok(v.unwrap_or(0))
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, conn => sqlx::query("SELECT 1").execute(conn).await.map(|_| ()))?;
        Ok(())
    }

    /// Opens a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes could fail with "database is locked"
    /// when another writer got in between, where an immediate one simply waits its turn.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(Tx(match self {
            Db::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        }))
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// An exclusive lock on `<database>.migrate-lock`, held until dropped (the OS releases it if
/// the process dies). `None` for an in-memory database, which no other process can open.
async fn migration_lock(database: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    use anyhow::Context as _;
    if database.as_os_str().is_empty() || database == std::path::Path::new(":memory:") {
        return Ok(None);
    }
    let mut name = database.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => tracing::info!(
            lock = %path.display(),
            "another process is migrating the database; waiting for it"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Blocking until the other process's migration is done: on a thread of its own.
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("the migration lock's thread failed")?
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(dir: &str) -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_migration_files() {
        let sqlite = names("migrations/sqlite");
        let postgres = names("migrations/postgres");
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres differ"
        );
    }
}
