//! Stored images and the pictures that use them (`images`, `image_refs`; see `images/`).
//!
//! Writes about a connection's pictures run in that connection's transactions (the sync's, the
//! fetch job's), after its row lock, as the lock order wants. An image row is shared by every
//! picture with the same bytes; the foreign key from `image_refs` keeps a used image from being
//! deleted.

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::{ConnectionId, UserId};
use crate::images::Format;

/// The `media_id` and `item_id` of a profile picture's reference.
pub const PROFILE_ITEM: &str = "@profile";

/// A picture as the sync saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub media_id: String,
    pub item_id: String,
    pub url: String,
    pub path: String,
    pub expires_at: Option<UnixSeconds>,
}

/// A picture whose original is still to be fetched.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Wanted {
    pub media_id: String,
    pub item_id: String,
    pub source_url: String,
    pub source_path: String,
    pub source_expires_at: Option<i64>,
    pub attempts: i64,
}

/// An image row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ImageRow {
    pub key: String,
    pub width: i64,
    pub height: i64,
    pub source_format: String,
    pub original_bytes: i64,
    pub widths: Option<String>,
    /// The encodings made (`images::parse_formats`).
    pub formats: Option<String>,
    pub variant_bytes: i64,
    pub placeholder: Option<String>,
    pub color: Option<String>,
    pub failed: Option<String>,
    pub created_at: i64,
    /// Set while no picture uses the image (it is removed a while later).
    pub unreferenced_since: Option<i64>,
}

impl ImageRow {
    /// The widths made, once the variants exist.
    pub fn made_widths(&self) -> Option<Vec<u32>> {
        let widths: Vec<u32> = self
            .widths
            .as_deref()?
            .split(',')
            .filter_map(|w| w.parse().ok())
            .collect();
        (!widths.is_empty()).then_some(widths)
    }
}

/// A ready image a connection's widget can show, by picture.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Shown {
    pub media_id: String,
    pub item_id: String,
    pub key: String,
    pub width: i64,
    pub height: i64,
    pub widths: String,
    pub formats: Option<String>,
    pub placeholder: Option<String>,
    pub color: Option<String>,
}

const IMAGE_COLUMNS: &str = "key, width, height, source_format, original_bytes, widths,
    formats, variant_bytes, placeholder, color, failed, created_at, unreferenced_since";

/// Records the pictures of a sync: new ones and new URLs of known ones, and forgets the
/// pictures of posts that left the feed and of children that left a post. `posts` are the
/// posts of this sync (a partial sync leaves the others' pictures alone).
pub async fn record_sources(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    sources: &[Source],
    posts: &[String],
) -> Result<(), DbError> {
    const UPSERT: &str = "INSERT INTO image_refs (connection_id, media_id, item_id, source_url,
            source_path, source_expires_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (connection_id, media_id, item_id) DO UPDATE SET
            source_url = excluded.source_url, source_path = excluded.source_path,
            source_expires_at = excluded.source_expires_at,
            attempts = CASE WHEN image_refs.source_path = excluded.source_path
                THEN image_refs.attempts ELSE 0 END,
            retry_at = CASE WHEN image_refs.source_url = excluded.source_url
                THEN image_refs.retry_at ELSE NULL END";
    let mut ex: Ex<'_> = db.into();
    for s in sources {
        on_pool!(ex.reborrow(), conn => sqlx::query(UPSERT)
            .bind(connection)
            .bind(&s.media_id)
            .bind(&s.item_id)
            .bind(&s.url)
            .bind(&s.path)
            .bind(s.expires_at)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    // Pictures of posts no longer stored.
    const GONE_POSTS: &str = "DELETE FROM image_refs WHERE connection_id = $1 AND media_id <> $2
        AND media_id NOT IN (SELECT media_id FROM posts WHERE connection_id = $1)";
    on_pool!(ex.reborrow(), conn => sqlx::query(GONE_POSTS).bind(connection).bind(PROFILE_ITEM).execute(conn).await.map(|_| ()))?;
    // Pictures of this sync's posts (and profile) that it no longer lists.
    let current: Vec<(ConnectionId, String, String)> = on_pool!(ex.reborrow(), conn => sqlx::query_as(
        "SELECT connection_id, media_id, item_id FROM image_refs WHERE connection_id = $1")
        .bind(connection).fetch_all(conn).await)?;
    for (_, media_id, item_id) in current {
        let covered = media_id == PROFILE_ITEM || posts.contains(&media_id);
        let listed = sources
            .iter()
            .any(|s| s.media_id == media_id && s.item_id == item_id);
        if covered && !listed {
            on_pool!(ex.reborrow(), conn => sqlx::query(
                "DELETE FROM image_refs WHERE connection_id = $1 AND media_id = $2 AND item_id = $3")
                .bind(connection).bind(&media_id).bind(&item_id).execute(conn).await.map(|_| ()))?;
        }
    }
    Ok(())
}

/// The condition of a picture whose original is to be fetched: never fetched from this path,
/// not waiting out a failure, not given up on.
const WANTED: &str = "(fetched_path IS NULL OR fetched_path <> source_path)
    AND (retry_at IS NULL OR retry_at <= $2)";

/// Whether any picture of the connection waits for its original.
pub async fn any_wanted(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    now: UnixSeconds,
) -> Result<bool, DbError> {
    let sql = format!("SELECT COUNT(*) FROM image_refs WHERE connection_id = $1 AND {WANTED}");
    let n: i64 = on_pool!(db, conn => sqlx::query_scalar(&sql).bind(connection).bind(now).fetch_one(conn).await)?;
    Ok(n > 0)
}

/// The connection's pictures waiting for their originals (at most `limit`).
pub async fn wanted(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    now: UnixSeconds,
    limit: i64,
) -> Result<Vec<Wanted>, DbError> {
    let sql = format!(
        "SELECT media_id, item_id, source_url, source_path, source_expires_at, attempts
         FROM image_refs WHERE connection_id = $1 AND {WANTED}
         ORDER BY media_id, item_id LIMIT $3"
    );
    Ok(
        on_pool!(db, conn => sqlx::query_as(&sql).bind(connection).bind(now).bind(limit).fetch_all(conn).await)?,
    )
}

/// When the connection's earliest waiting failure may be tried again.
pub async fn next_retry(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
) -> Result<Option<UnixSeconds>, DbError> {
    const SQL: &str = "SELECT MIN(retry_at) FROM image_refs WHERE connection_id = $1
        AND (fetched_path IS NULL OR fetched_path <> source_path) AND retry_at IS NOT NULL";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).bind(connection).fetch_one(conn).await)?)
}

/// The image stored under `key`, if any.
pub async fn get(db: impl Into<Ex<'_>>, key: &str) -> Result<Option<ImageRow>, DbError> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE key = $1");
    Ok(on_pool!(db, conn => sqlx::query_as(&sql).bind(key).fetch_optional(conn).await)?)
}

/// What is known of an original when it is first stored.
#[derive(Clone, Debug)]
pub struct NewImage<'a> {
    pub key: &'a str,
    pub width: i64,
    pub height: i64,
    pub source_format: &'a str,
    pub original_bytes: i64,
}

/// Points a picture at a stored original (recording the image if it is new, and marking it
/// used).
pub async fn attach(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    wanted: &Wanted,
    image: &NewImage<'_>,
    now: UnixSeconds,
) -> Result<(), DbError> {
    let mut ex: Ex<'_> = db.into();
    const INSERT: &str = "INSERT INTO images (key, width, height, source_format, original_bytes,
            created_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (key) DO UPDATE SET unreferenced_since = NULL";
    on_pool!(ex.reborrow(), conn => sqlx::query(INSERT)
        .bind(image.key)
        .bind(image.width)
        .bind(image.height)
        .bind(image.source_format)
        .bind(image.original_bytes)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    const POINT: &str = "UPDATE image_refs SET image_key = $4, fetched_path = $5, attempts = 0,
            last_error = NULL, retry_at = NULL
        WHERE connection_id = $1 AND media_id = $2 AND item_id = $3";
    on_pool!(ex.reborrow(), conn => sqlx::query(POINT)
        .bind(connection)
        .bind(&wanted.media_id)
        .bind(&wanted.item_id)
        .bind(image.key)
        .bind(&wanted.source_path)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Records a failed fetch of a picture (one still waiting for its original). `retry_at`: when to try again (`None`: not before its
/// URL changes).
pub async fn record_failure(
    db: impl Into<Ex<'_>>,
    connection: ConnectionId,
    wanted: &Wanted,
    error: &str,
    retry_at: Option<UnixSeconds>,
    give_up_at: UnixSeconds,
) -> Result<(), DbError> {
    // A picture given up on waits for a new URL (`retry_at` far ahead; a new path resets it).
    const SQL: &str = "UPDATE image_refs SET attempts = attempts + 1, last_error = $5,
            retry_at = $6
        WHERE connection_id = $1 AND media_id = $2 AND item_id = $3 AND source_path = $4
            AND (fetched_path IS NULL OR fetched_path <> source_path)";
    on_pool!(db, conn => sqlx::query(SQL)
        .bind(connection)
        .bind(&wanted.media_id)
        .bind(&wanted.item_id)
        .bind(&wanted.source_path)
        .bind(error)
        .bind(retry_at.unwrap_or(give_up_at))
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Records an image's variants as made.
#[allow(clippy::too_many_arguments)]
pub async fn mark_ready(
    db: impl Into<Ex<'_>>,
    key: &str,
    width: i64,
    height: i64,
    widths: &[u32],
    variant_bytes: i64,
    placeholder: &str,
    color: &str,
    now: UnixSeconds,
) -> Result<bool, DbError> {
    let widths: Vec<String> = widths.iter().map(u32::to_string).collect();
    const SQL: &str = "UPDATE images SET width = $2, height = $3, widths = $4, variant_bytes = $5,
        placeholder = $6, color = $7, ready_at = $8, failed = NULL, formats = NULL WHERE key = $1";
    let n = on_pool!(db, conn => sqlx::query(SQL)
        .bind(key)
        .bind(width)
        .bind(height)
        .bind(widths.join(","))
        .bind(variant_bytes)
        .bind(placeholder)
        .bind(color)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Records the encodings the AVIF job settled on (with AVIF, or without it when it could not be
/// made) and the bytes it added, on the image row created at `created_at` (the one whose
/// objects were written: the same bytes deleted and fetched again are a new row); `false` if
/// that row is gone, not ready, or settled already.
pub async fn add_formats(
    db: impl Into<Ex<'_>>,
    key: &str,
    created_at: i64,
    formats: &[Format],
    added_bytes: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE images SET formats = $2, variant_bytes = variant_bytes + $3
        WHERE key = $1 AND widths IS NOT NULL AND formats IS NULL AND created_at = $4";
    let n = on_pool!(db, conn => sqlx::query(SQL)
        .bind(key)
        .bind(crate::images::formats_text(formats))
        .bind(added_bytes)
        .bind(created_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Creates the AVIF job of every ready image still in use whose AVIF is not settled and that
/// has no such job (images made before AVIF existed here, or whose job was lost): one anti-join
/// insert, which never touches an existing job row (a dead one stays dead).
pub async fn schedule_missing_avif(
    db: impl Into<Ex<'_>>,
    now: UnixSeconds,
) -> Result<u64, DbError> {
    const SQL: &str = "INSERT INTO jobs (kind, subject, due_at, created_at)
        SELECT $1, i.key, $2, $2 FROM images i
        WHERE i.widths IS NOT NULL AND i.formats IS NULL AND i.failed IS NULL
          AND i.unreferenced_since IS NULL
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = $1 AND j.subject = i.key)
        ORDER BY i.key LIMIT 1000
        ON CONFLICT (kind, subject) DO NOTHING";
    let n = on_pool!(db, conn => sqlx::query(SQL)
        .bind(crate::images::AVIF_JOB)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}

/// Records why no variants can be made of an image (its pictures fall back to Instagram's URL
/// while it works).
pub async fn mark_failed(db: impl Into<Ex<'_>>, key: &str, reason: &str) -> Result<(), DbError> {
    on_pool!(db, conn => sqlx::query("UPDATE images SET failed = $2 WHERE key = $1")
        .bind(key).bind(reason).execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// Images whose variants are still to be made (neither ready nor failed).
pub async fn pending(db: impl Into<Ex<'_>>) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT key FROM images WHERE widths IS NULL AND failed IS NULL ORDER BY key";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).fetch_all(conn).await)?)
}

/// Every image whose variants are made.
pub async fn ready(db: impl Into<Ex<'_>>) -> Result<Vec<ImageRow>, DbError> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE widths IS NOT NULL ORDER BY key");
    Ok(on_pool!(db, conn => sqlx::query_as(&sql).fetch_all(conn).await)?)
}

/// The connections whose pictures use an image.
pub async fn connections_using(
    db: impl Into<Ex<'_>>,
    key: &str,
) -> Result<Vec<ConnectionId>, DbError> {
    const SQL: &str = "SELECT DISTINCT connection_id FROM image_refs WHERE image_key = $1
        ORDER BY connection_id";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).bind(key).fetch_all(conn).await)?)
}

/// An image whose original is lost (removed by a clean-up that raced a new use): its pictures
/// are fetched again, and the row goes. Returns the connections to fetch for.
pub async fn forget(db: impl Into<Ex<'_>>, key: &str) -> Result<Vec<ConnectionId>, DbError> {
    let mut ex: Ex<'_> = db.into();
    let using = connections_using(ex.reborrow(), key).await?;
    on_pool!(ex.reborrow(), conn => sqlx::query(
        "UPDATE image_refs SET image_key = NULL, fetched_path = NULL, retry_at = NULL
         WHERE image_key = $1")
        .bind(key).execute(conn).await.map(|_| ()))?;
    on_pool!(ex.reborrow(), conn => sqlx::query("DELETE FROM images WHERE key = $1")
        .bind(key).execute(conn).await.map(|_| ()))?;
    Ok(using)
}

/// The ready images of a connection's pictures.
pub async fn shown(db: impl Into<Ex<'_>>, connection: ConnectionId) -> Result<Vec<Shown>, DbError> {
    const SQL: &str = "SELECT r.media_id, r.item_id, i.key, i.width, i.height, i.widths,
            i.formats, i.placeholder, i.color
        FROM image_refs r JOIN images i ON i.key = r.image_key
        WHERE r.connection_id = $1 AND i.widths IS NOT NULL";
    Ok(on_pool!(db, conn => sqlx::query_as(SQL).bind(connection).fetch_all(conn).await)?)
}

/// Marks images no picture uses as unused since `now` (the clean-up removes them later).
pub async fn mark_unused(db: impl Into<Ex<'_>>, now: UnixSeconds) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE images SET unreferenced_since = $1 WHERE unreferenced_since IS NULL
        AND NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.image_key = images.key)";
    Ok(
        on_pool!(db, conn => sqlx::query(SQL).bind(now).execute(conn).await.map(|r| r.rows_affected()))?,
    )
}

/// Clears the mark of images a picture uses again (one that took an image up while the mark
/// was being set is seen here on the next clean-up).
pub async fn unmark_used(db: impl Into<Ex<'_>>) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE images SET unreferenced_since = NULL
        WHERE unreferenced_since IS NOT NULL
        AND EXISTS (SELECT 1 FROM image_refs r WHERE r.image_key = images.key)";
    Ok(on_pool!(db, conn => sqlx::query(SQL).execute(conn).await.map(|r| r.rows_affected()))?)
}

/// Images unused since before `cutoff` (at most `limit`).
pub async fn unused_since(
    db: impl Into<Ex<'_>>,
    cutoff: UnixSeconds,
    limit: i64,
) -> Result<Vec<ImageRow>, DbError> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE unreferenced_since IS NOT NULL
         AND unreferenced_since <= $1 ORDER BY unreferenced_since LIMIT $2"
    );
    Ok(on_pool!(db, conn => sqlx::query_as(&sql).bind(cutoff).bind(limit).fetch_all(conn).await)?)
}

/// Deletes an image's row if still unused (a picture that took it up again meanwhile keeps
/// it). Returns whether it went: only then may its objects be removed.
pub async fn delete_if_unused(db: impl Into<Ex<'_>>, key: &str) -> Result<bool, DbError> {
    const SQL: &str = "DELETE FROM images WHERE key = $1 AND unreferenced_since IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.image_key = $1)";
    let n = on_pool!(db, conn => sqlx::query(SQL).bind(key).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Whether an image row exists (the orphan sweep asks for each key it finds in the store).
pub async fn exists(db: impl Into<Ex<'_>>, key: &str) -> Result<bool, DbError> {
    let n: i64 = on_pool!(db, conn => sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE key = $1")
        .bind(key).fetch_one(conn).await)?;
    Ok(n > 0)
}

/// Bytes stored for the images a user's connections show (an image shared with another user
/// counts for both).
pub async fn bytes_for_user(db: impl Into<Ex<'_>>, user: UserId) -> Result<i64, DbError> {
    const SQL: &str = "SELECT CAST(COALESCE(SUM(i.original_bytes + i.variant_bytes), 0) AS BIGINT)
        FROM images i WHERE i.key IN (
            SELECT r.image_key FROM image_refs r JOIN connections c ON c.id = r.connection_id
            WHERE c.owner_id = $1 AND r.image_key IS NOT NULL)";
    Ok(on_pool!(db, conn => sqlx::query_scalar(SQL).bind(user).fetch_one(conn).await)?)
}

/// Counts for `feedkeeper doctor`: images stored, ready, failed, bytes, and pictures of
/// accounts a widget shows still waiting for their originals.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub images: i64,
    pub ready: i64,
    pub failed: i64,
    pub bytes: i64,
    pub waiting_pictures: i64,
}

pub async fn totals(db: impl Into<Ex<'_>>) -> Result<Totals, DbError> {
    let mut ex: Ex<'_> = db.into();
    const IMAGES: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN widths IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
        CAST(COALESCE(SUM(CASE WHEN failed IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
        CAST(COALESCE(SUM(original_bytes + variant_bytes), 0) AS BIGINT) FROM images";
    let (images, ready, failed, bytes): (i64, i64, i64, i64) =
        on_pool!(ex.reborrow(), conn => sqlx::query_as(IMAGES).fetch_one(conn).await)?;
    // Only accounts a widget shows have their pictures stored.
    const WAITING: &str = "SELECT COUNT(*) FROM image_refs
        WHERE (fetched_path IS NULL OR fetched_path <> source_path)
        AND connection_id IN (SELECT connection_id FROM widgets WHERE deleted_at IS NULL)";
    let waiting_pictures: i64 =
        on_pool!(ex.reborrow(), conn => sqlx::query_scalar(WAITING).fetch_one(conn).await)?;
    Ok(Totals {
        images,
        ready,
        failed,
        bytes,
        waiting_pictures,
    })
}
