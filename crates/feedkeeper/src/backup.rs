//! `feedkeeper backup FILE` and `feedkeeper restore FILE`: a consistent copy of the embedded
//! SQLite database taken while nodes serve and write (`VACUUM INTO`: one read transaction, so
//! the copy is the database at one moment), and putting such a copy back.
//!
//! A backup holds tokens sealed under the token keys (`security.token_keys`): without those
//! keys it restores, but no connection works until its account logs in again. Keep the keys
//! apart from the backups, and both. PostgreSQL is backed up with its own tools (`pg_dump`),
//! as the README says.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use anyhow::{Context as _, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

use crate::config::Config;

/// What a backup or restore holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub connections: i64,
    pub widgets: i64,
    pub posts: i64,
}

/// The embedded database's file, or why there is none to back up or restore.
fn database_file(config: &Config) -> anyhow::Result<PathBuf> {
    let url = config.database_url();
    let Some(path) = url.strip_prefix("sqlite://") else {
        bail!(
            "storage.database_url points at PostgreSQL: back it up with pg_dump and restore it \
             with pg_restore (see the README), and keep the token keys with it"
        );
    };
    Ok(PathBuf::from(path.split('?').next().unwrap_or(path)))
}

async fn open(path: &Path, read_only: bool) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .read_only(read_only)
        .create_if_missing(false)
        .connect()
        .await
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Checks a database file whole and counts what it holds.
async fn inspect(path: &Path) -> anyhow::Result<Contents> {
    let mut db = open(path, true).await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .with_context(|| format!("{} is not an SQLite database", path.display()))?;
    if check != "ok" {
        bail!("{} is damaged: {check}", path.display());
    }
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let mut contents = [0i64; 3];
    for (slot, table) in contents.iter_mut().zip(["connections", "widgets", "posts"]) {
        *slot = sqlx::query_scalar(&count(table))
            .fetch_one(&mut db)
            .await
            .with_context(|| format!("{} is not a feedkeeper database", path.display()))?;
    }
    db.close().await?;
    Ok(Contents {
        connections: contents[0],
        widgets: contents[1],
        posts: contents[2],
    })
}

/// Writes a consistent copy of the embedded database to `file` (which must not exist), while
/// nodes go on serving, and checks it.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<Contents> {
    let live = database_file(config)?;
    if !live.exists() {
        bail!("there is no database at {} to back up", live.display());
    }
    if file.exists() {
        bail!(
            "{} exists: choose a new file for the backup",
            file.display()
        );
    }
    let mut db = open(&live, false).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(file.to_string_lossy().into_owned())
        .execute(&mut db)
        .await
        .with_context(|| format!("cannot write the backup to {}", file.display()))?;
    db.close().await?;
    inspect(file).await
}

/// Puts the backup `file` in place of the embedded database. Refuses while any node has the
/// database open, and over an existing database unless `replace`. The schema is then brought up
/// to date (a backup of an older version works; one of a newer version is refused).
pub async fn restore(config: &Config, file: &Path, replace: bool) -> anyhow::Result<Contents> {
    let target = database_file(config)?;
    let contents = inspect(file).await?;
    let newest: Option<i64> = {
        let mut backup = open(file, true).await?;
        let newest = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut backup)
            .await
            .context("the backup has no migration record: not a feedkeeper database")?;
        backup.close().await?;
        newest
    };
    let known = crate::db::latest_migration(crate::config::DatabaseKind::Sqlite);
    if newest.unwrap_or(0) > known {
        bail!(
            "the backup is of a newer feedkeeper (schema {}, this one knows {known}): restore it \
             with that version",
            newest.unwrap_or(0)
        );
    }
    if target.exists() {
        if !replace {
            bail!(
                "{} exists: stop every node, then pass --replace to put the backup in its place",
                target.display()
            );
        }
        // Leaving WAL mode needs the database to itself: it fails while any node has it open.
        let mut current = open(&target, false).await?;
        let left_wal = sqlx::query_scalar::<_, String>("PRAGMA journal_mode = DELETE")
            .fetch_one(&mut current)
            .await;
        current.close().await?;
        if !matches!(left_wal.as_deref(), Ok("delete")) {
            bail!(
                "{} is in use by a running node: stop every node first",
                target.display()
            );
        }
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // The copy is made beside the target and renamed over it, so the database is either the
    // old one or the whole backup; the old one's write-ahead log must not be applied to it.
    let staged = target.with_extension("db.restoring");
    std::fs::copy(file, &staged)
        .with_context(|| format!("cannot copy {} to {}", file.display(), staged.display()))?;
    std::fs::File::open(&staged)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", target.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", side.display())),
        }
    }
    std::fs::rename(&staged, &target)?;
    if let Some(dir) = target.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    // Opened as the nodes open it (back in WAL mode), and brought up to date.
    let db = crate::db::Db::connect(&config.database_url()).await?;
    db.migrate().await?;
    db.close().await;
    Ok(contents)
}
