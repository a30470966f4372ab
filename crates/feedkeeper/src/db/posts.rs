//! A connection's feed as the sync worker stores it: the profile, the newest posts, and the
//! feed's version and sync progress (`feeds`).
//!
//! Rows arrive already checked (`feeds::sync` turns Meta's answers into them); this file only
//! stores and reads. Every write of one sync is made in the caller's transaction.

use serde::{Deserialize, Serialize};

use super::{DbError, Ex, on_pool};
use crate::clock::UnixSeconds;
use crate::ids::ConnectionId;

/// An account's public profile, as a widget header shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ProfileRow {
    pub username: String,
    pub name: Option<String>,
    pub biography: Option<String>,
    pub website: Option<String>,
    pub picture_url: Option<String>,
    pub followers_count: Option<i64>,
    pub follows_count: Option<i64>,
    pub media_count: Option<i64>,
}

/// A carousel child.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRow {
    pub id: String,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
}

/// One post as stored (the times of the row itself are not part of it: two syncs that saw the
/// same post produce equal values, which is what the feed's hash relies on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PostRow {
    pub media_id: String,
    pub posted_at: UnixSeconds,
    pub media_type: String,
    pub product_type: Option<String>,
    pub caption: Option<String>,
    pub permalink: Option<String>,
    pub shortcode: Option<String>,
    pub media_url: Option<String>,
    pub thumbnail_url: Option<String>,
    pub alt_text: Option<String>,
    pub like_count: Option<i64>,
    pub comments_count: Option<i64>,
    pub children: Vec<ChildRow>,
    pub urls_expire_at: Option<UnixSeconds>,
}

/// The row as read (children still JSON).
#[derive(sqlx::FromRow)]
struct RawPost {
    media_id: String,
    posted_at: i64,
    media_type: String,
    product_type: Option<String>,
    caption: Option<String>,
    permalink: Option<String>,
    shortcode: Option<String>,
    media_url: Option<String>,
    thumbnail_url: Option<String>,
    alt_text: Option<String>,
    like_count: Option<i64>,
    comments_count: Option<i64>,
    children: Option<String>,
    urls_expire_at: Option<i64>,
}

impl From<RawPost> for PostRow {
    fn from(r: RawPost) -> Self {
        // Children are written by us as JSON; a row we cannot read shows the post without them
        // rather than failing the whole feed.
        let children = r
            .children
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        PostRow {
            media_id: r.media_id,
            posted_at: r.posted_at,
            media_type: r.media_type,
            product_type: r.product_type,
            caption: r.caption,
            permalink: r.permalink,
            shortcode: r.shortcode,
            media_url: r.media_url,
            thumbnail_url: r.thumbnail_url,
            alt_text: r.alt_text,
            like_count: r.like_count,
            comments_count: r.comments_count,
            children,
            urls_expire_at: r.urls_expire_at,
        }
    }
}

/// A feed's version and the sync's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct FeedRow {
    pub version: i64,
    pub content_hash: String,
    pub resume_after: Option<String>,
    pub last_complete_at: Option<i64>,
    pub urls_expire_at: Option<i64>,
    pub failures: i64,
    pub last_error: Option<String>,
    /// When the version last moved (widget caches look for recent ones).
    pub updated_at: i64,
}

const POST_COLUMNS: &str = "media_id, posted_at, media_type, product_type, caption, permalink,
    shortcode, media_url, thumbnail_url, alt_text, like_count, comments_count, children,
    urls_expire_at";

/// Stores (or replaces) the profile.
pub async fn store_profile(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    p: &ProfileRow,
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO profiles (connection_id, username, name, biography, website,
            picture_url, followers_count, follows_count, media_count, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (connection_id) DO UPDATE SET username = excluded.username,
            name = excluded.name, biography = excluded.biography, website = excluded.website,
            picture_url = excluded.picture_url, followers_count = excluded.followers_count,
            follows_count = excluded.follows_count, media_count = excluded.media_count,
            updated_at = excluded.updated_at";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(id)
        .bind(&p.username)
        .bind(&p.name)
        .bind(&p.biography)
        .bind(&p.website)
        .bind(&p.picture_url)
        .bind(p.followers_count)
        .bind(p.follows_count)
        .bind(p.media_count)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The stored profile, if a sync stored one.
pub async fn profile(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
) -> Result<Option<ProfileRow>, DbError> {
    const SQL: &str = "SELECT username, name, biography, website, picture_url, followers_count,
        follows_count, media_count FROM profiles WHERE connection_id = $1";
    let found = on_pool!(db, pool => sqlx::query_as(SQL).bind(id).fetch_optional(pool).await)?;
    Ok(found)
}

/// Stores posts, replacing earlier versions of the same posts (their first-seen time is kept).
pub async fn store_posts(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    posts: &[PostRow],
    now: UnixSeconds,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO posts (connection_id, media_id, posted_at, media_type,
            product_type, caption, permalink, shortcode, media_url, thumbnail_url, alt_text,
            like_count, comments_count, children, urls_expire_at, first_seen_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)
        ON CONFLICT (connection_id, media_id) DO UPDATE SET posted_at = excluded.posted_at,
            media_type = excluded.media_type, product_type = excluded.product_type,
            caption = excluded.caption, permalink = excluded.permalink,
            shortcode = excluded.shortcode, media_url = excluded.media_url,
            thumbnail_url = excluded.thumbnail_url, alt_text = excluded.alt_text,
            like_count = excluded.like_count, comments_count = excluded.comments_count,
            children = excluded.children, urls_expire_at = excluded.urls_expire_at,
            updated_at = excluded.updated_at";
    let mut ex: Ex<'_> = db.into();
    for p in posts {
        let children = if p.children.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&p.children)
                    .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?,
            )
        };
        on_pool!(ex.reborrow(), pool => sqlx::query(SQL)
            .bind(id)
            .bind(&p.media_id)
            .bind(p.posted_at)
            .bind(&p.media_type)
            .bind(&p.product_type)
            .bind(&p.caption)
            .bind(&p.permalink)
            .bind(&p.shortcode)
            .bind(&p.media_url)
            .bind(&p.thumbnail_url)
            .bind(&p.alt_text)
            .bind(p.like_count)
            .bind(p.comments_count)
            .bind(&children)
            .bind(p.urls_expire_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// Removes every post of the connection whose id is not in `keep` (deleted or archived on
/// Instagram, or fallen out of the window a feed keeps). Returns how many went.
pub async fn delete_posts_except(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    keep: &[String],
) -> Result<u64, DbError> {
    let placeholders: Vec<String> = (0..keep.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = if keep.is_empty() {
        "DELETE FROM posts WHERE connection_id = $1".to_owned()
    } else {
        format!(
            "DELETE FROM posts WHERE connection_id = $1 AND media_id NOT IN ({})",
            placeholders.join(", ")
        )
    };
    let n = on_pool!(db, pool => {
        let mut query = sqlx::query(&sql).bind(id);
        for media_id in keep {
            query = query.bind(media_id);
        }
        query.execute(pool).await.map(|r| r.rows_affected())
    })?;
    Ok(n)
}

/// Keeps only the newest `keep` posts of the connection.
pub async fn trim_posts(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    keep: i64,
) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM posts WHERE connection_id = $1 AND media_id NOT IN (
        SELECT media_id FROM posts WHERE connection_id = $1
        ORDER BY posted_at DESC, media_id DESC LIMIT $2)";
    let n = on_pool!(db, pool => sqlx::query(SQL).bind(id).bind(keep).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n)
}

/// The newest `limit` posts, newest first.
pub async fn list_posts(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    limit: i64,
) -> Result<Vec<PostRow>, DbError> {
    let sql = format!(
        "SELECT {POST_COLUMNS} FROM posts WHERE connection_id = $1
         ORDER BY posted_at DESC, media_id DESC LIMIT $2"
    );
    let rows: Vec<RawPost> =
        on_pool!(db, pool => sqlx::query_as(&sql).bind(id).bind(limit).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(PostRow::from).collect())
}

/// The feed's version and sync progress, if it was ever synced.
pub async fn feed(db: impl Into<Ex<'_>>, id: ConnectionId) -> Result<Option<FeedRow>, DbError> {
    const SQL: &str = "SELECT version, content_hash, resume_after, last_complete_at,
        urls_expire_at, failures, last_error, updated_at FROM feeds WHERE connection_id = $1";
    let found = on_pool!(db, pool => sqlx::query_as(SQL).bind(id).fetch_optional(pool).await)?;
    Ok(found)
}

/// Stores the feed's row as given.
pub async fn store_feed(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    f: &FeedRow,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO feeds (connection_id, version, content_hash, resume_after,
            last_complete_at, urls_expire_at, failures, last_error, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (connection_id) DO UPDATE SET version = excluded.version,
            content_hash = excluded.content_hash, resume_after = excluded.resume_after,
            last_complete_at = excluded.last_complete_at, urls_expire_at = excluded.urls_expire_at,
            failures = excluded.failures, last_error = excluded.last_error,
            updated_at = excluded.updated_at";
    on_pool!(db, pool => sqlx::query(SQL)
        .bind(id)
        .bind(f.version)
        .bind(&f.content_hash)
        .bind(&f.resume_after)
        .bind(f.last_complete_at)
        .bind(f.urls_expire_at)
        .bind(f.failures)
        .bind(&f.last_error)
        .bind(f.updated_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Counts a failed sync (creating the feed's row for a connection never synced) and returns
/// the failures in a row. Only the failure columns change.
pub async fn record_failure(
    db: impl Into<Ex<'_>>,
    id: ConnectionId,
    message: &str,
    now: UnixSeconds,
) -> Result<i64, DbError> {
    const SQL: &str = "INSERT INTO feeds (connection_id, version, content_hash, failures,
            last_error, updated_at) VALUES ($1, 0, '', 1, $2, $3)
        ON CONFLICT (connection_id) DO UPDATE SET failures = feeds.failures + 1,
            last_error = excluded.last_error
        RETURNING failures";
    Ok(
        on_pool!(db, pool => sqlx::query_scalar(SQL).bind(id).bind(message).bind(now).fetch_one(pool).await)?,
    )
}

/// Deletes everything the sync stored for a connection (its data is being purged).
pub async fn delete_all(db: impl Into<Ex<'_>>, id: ConnectionId) -> Result<(), DbError> {
    let mut ex: Ex<'_> = db.into();
    for sql in [
        "DELETE FROM image_refs WHERE connection_id = $1",
        "DELETE FROM posts WHERE connection_id = $1",
        "DELETE FROM profiles WHERE connection_id = $1",
        "DELETE FROM feeds WHERE connection_id = $1",
    ] {
        on_pool!(ex.reborrow(), pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()))?;
    }
    Ok(())
}
