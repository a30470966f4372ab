//! Widgets: what a website embeds, and everything about them except HTTP.
//!
//! - [`settings`]: the options a widget has, the dashboard form, and its checks.
//! - [`caption`]: untrusted captions split into text, hashtags and mentions.
//! - [`render`]: the widget as an HTML document for an iframe, and as the JSON feed.
//! - [`cache`]: rendered output kept in memory per widget version, with every node noticing a
//!   change within seconds without a database query per request.
//!
//! A widget shows the stored feed of one connection (`feeds`); nothing here calls Meta. When the
//! connection's login is dead or Meta is down the last good posts keep showing, except images
//! whose signed URL has expired, which are left out (never served broken).

pub mod cache;
pub mod caption;
pub mod render;
pub mod settings;

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::UnixSeconds;
use crate::db::connections::{self as stored, RowLock, Status};
use crate::db::posts::{self, PostRow, ProfileRow};
use crate::db::widgets::{self as store, NewWidget, Widget};
use crate::db::{DbError, Tx};
use crate::failpoint;
use crate::ids::{ConnectionId, UserId, WidgetId};
use crate::state::AppState;
use cache::{Encoded, Rendered, Served, Unkept};
use settings::WidgetSettings;

/// A new unguessable public id: 128 random bits, URL-safe.
pub fn new_public_id() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether a string could be a public id (checked before any database read).
pub fn is_public_id(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The settings stored with a widget; a value we cannot read falls back to the defaults (and
/// says so in the log) rather than taking the widget down.
pub fn settings_of(w: &Widget) -> WidgetSettings {
    serde_json::from_str(&w.settings).unwrap_or_else(|e| {
        tracing::error!(widget = %w.id, error = %e, "stored widget settings are unreadable");
        WidgetSettings::default()
    })
}

/// The health of the account behind a widget, as the JSON feed reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Fresh posts arrive.
    Ok,
    /// Meta has trouble answering; the last good posts show meanwhile.
    Degraded,
    /// The account's login must be renewed by a person; the last good posts show meanwhile.
    NeedsReconnect,
    /// No account is chosen (it was disconnected), or its data was deleted.
    Disconnected,
}

/// What a widget shows: its settings and the posts that pass its filters, newest first.
#[derive(Clone, Debug)]
pub struct WidgetData {
    pub public_id: String,
    pub settings: WidgetSettings,
    pub profile: Option<ProfileRow>,
    pub posts: Vec<PostRow>,
    pub health: Health,
    pub last_synced_at: Option<UnixSeconds>,
    /// What the output was made from: it is stale as soon as one of these moves.
    pub stamp: Stamp,
    /// The earliest expiry among the image URLs shown: the output must be remade before it.
    pub urls_expire_at: Option<UnixSeconds>,
}

/// The versions a rendering was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub widget_version: i64,
    pub feed_version: i64,
    pub health: Option<&'static str>,
}

/// A widget looked up by its public id.
pub enum Lookup {
    NotFound,
    /// Deleted by its owner.
    Gone,
    Found(Box<WidgetData>),
}

/// Whether a post is one of the kinds a widget shows.
fn shows_kind(s: &WidgetSettings, p: &PostRow) -> bool {
    match (p.media_type.as_str(), p.product_type.as_deref()) {
        ("VIDEO", Some("REELS")) => s.types.reels,
        ("VIDEO", _) => s.types.videos,
        ("CAROUSEL_ALBUM", _) => s.types.carousels,
        _ => s.types.images,
    }
}

/// The posts a widget shows: of the chosen kinds, passing the word filters, not hidden by hand,
/// with an image to show whose URL has not expired; at most `settings.posts`.
pub fn visible_posts(s: &WidgetSettings, all: Vec<PostRow>, now: UnixSeconds) -> Vec<PostRow> {
    all.into_iter()
        .filter(|p| shows_kind(s, p))
        .filter(|p| caption::passes(p.caption.as_deref(), &s.include_words, &s.exclude_words))
        .filter(|p| {
            !s.hidden_posts
                .iter()
                .any(|h| *h == p.media_id || p.shortcode.as_deref().is_some_and(|code| code == h))
        })
        .filter(|p| crate::feeds::display_image(p).is_some())
        .filter(|p| p.urls_expire_at.is_none_or(|t| t > now))
        .take(s.posts as usize)
        .collect()
}

/// Reads everything a widget's output is made from.
pub async fn load(state: &AppState, public_id: &str) -> Result<Lookup, DbError> {
    if !is_public_id(public_id) {
        return Ok(Lookup::NotFound);
    }
    let Some(w) = store::by_public_id(&state.db, public_id).await? else {
        return Ok(Lookup::NotFound);
    };
    if w.deleted_at.is_some() {
        return Ok(Lookup::Gone);
    }
    let settings = settings_of(&w);
    let now = state.clock.now();
    let connection = match w.connection_id {
        Some(id) => match stored::get(&state.db, id).await {
            Ok(c) => Some(c),
            Err(DbError::NotFound) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let (health, feed_version, profile, all, last_synced_at) = match &connection {
        Some(c) if c.data_purged_at.is_none() => {
            let feed = posts::feed(&state.db, c.id).await?;
            let profile = posts::profile(&state.db, c.id).await?;
            let all =
                posts::list_posts(&state.db, c.id, state.config.sync.max_posts as i64).await?;
            let health = match c.status() {
                Status::Active => Health::Ok,
                Status::Degraded => Health::Degraded,
                Status::NeedsReconnect => Health::NeedsReconnect,
            };
            (
                health,
                feed.map_or(0, |f| f.version),
                profile,
                all,
                c.last_sync_at,
            )
        }
        _ => (Health::Disconnected, 0, None, Vec::new(), None),
    };
    let posts = visible_posts(&settings, all, now);
    // The profile picture is a signed CDN URL too: shown while it works, never after.
    let mut profile = profile;
    let picture_expiry = profile
        .as_ref()
        .and_then(|p| p.picture_url.as_deref())
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| crate::meta::cdn::expiry(&u).ok().flatten());
    if let Some(p) = profile.as_mut()
        && picture_expiry.is_some_and(|t| t <= now)
    {
        p.picture_url = None;
    }
    let urls_expire_at = posts
        .iter()
        .filter_map(|p| p.urls_expire_at)
        .chain(picture_expiry.filter(|&t| t > now))
        .min();
    let health_name = match health {
        Health::Ok => "ok",
        Health::Degraded => "degraded",
        Health::NeedsReconnect => "needs_reconnect",
        Health::Disconnected => "disconnected",
    };
    Ok(Lookup::Found(Box::new(WidgetData {
        public_id: w.public_id.clone(),
        settings,
        profile,
        posts,
        health,
        last_synced_at,
        stamp: Stamp {
            widget_version: w.version,
            feed_version,
            health: Some(health_name),
        },
        urls_expire_at,
    })))
}

/// Why a widget could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("choose one of your own accounts")]
    NotYourConnection,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Locks the connection a widget is saved for (the first statement of the saving transaction,
/// as the lock order wants it; a disconnect then waits for the save, or the save for it) and
/// checks that it is the owner's.
async fn lock_owned_connection(
    tx: &mut Tx,
    owner: UserId,
    connection: ConnectionId,
) -> Result<(), SaveError> {
    match stored::lock(&mut *tx, connection, RowLock::Change).await? {
        Some(c) if c.owner_id == owner => Ok(()),
        _ => Err(SaveError::NotYourConnection),
    }
}

/// Creates a widget for one of the owner's connections; the connection is synced more often
/// from now on.
pub async fn create(
    state: &AppState,
    owner: UserId,
    name: &str,
    connection: ConnectionId,
    settings: &WidgetSettings,
) -> Result<Widget, SaveError> {
    let now = state.clock.now();
    let public_id = new_public_id();
    let json = serde_json::to_string(settings)
        .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
    let created = crate::db::retry_conflicts("widget create", || async {
        let mut tx = state.db.begin().await?;
        match lock_owned_connection(&mut tx, owner, connection).await {
            Ok(()) => {}
            Err(SaveError::NotYourConnection) => return Ok(None),
            Err(SaveError::Db(e)) => return Err(e),
        }
        failpoint::hit(
            failpoint::WIDGET_CREATE_TX,
            &failpoint::key(state, connection),
        )
        .await;
        let id = store::create(
            &mut tx,
            &NewWidget {
                public_id: &public_id,
                owner_id: owner,
                connection_id: connection,
                name,
                settings: &json,
            },
            now,
        )
        .await?;
        // A shown account should not wait up to an hour for its next sync.
        crate::db::jobs::schedule(
            &mut tx,
            crate::connections::SYNC_JOB,
            &connection.to_string(),
            now,
            now,
        )
        .await?;
        let widget = store::get_owned(&mut tx, owner, id).await?;
        tx.commit().await?;
        Ok(Some(widget))
    })
    .await?;
    created.ok_or(SaveError::NotYourConnection)
}

/// Saves new settings for the owner's widget.
pub async fn update(
    state: &AppState,
    owner: UserId,
    id: WidgetId,
    name: &str,
    connection: ConnectionId,
    settings: &WidgetSettings,
) -> Result<(), SaveError> {
    let now = state.clock.now();
    let json = serde_json::to_string(settings)
        .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
    crate::db::retry_conflicts("widget update", || async {
        let mut tx = state.db.begin().await?;
        match lock_owned_connection(&mut tx, owner, connection).await {
            Ok(()) => {}
            Err(SaveError::NotYourConnection) => return Ok(Err(SaveError::NotYourConnection)),
            Err(SaveError::Db(e)) => return Err(e),
        }
        if !store::update_owned(&mut tx, owner, id, name, connection, &json, now).await? {
            return Ok(Err(DbError::NotFound.into()));
        }
        tx.commit().await?;
        Ok(Ok(()))
    })
    .await?
}

// ---- Serving from memory -------------------------------------------------------------------

/// What `public_id` leads to: the rendering from this node's memory, or made now and kept.
pub async fn served(state: &AppState, public_id: &str) -> Result<Served, DbError> {
    let now = state.clock.now();
    if let Some(served) = state.widgets.fresh(public_id, now) {
        return Ok(served);
    }
    if !is_public_id(public_id) {
        return Ok(Served::NotFound);
    }
    // One rendering per widget at a time on this node; those who waited serve it, or share
    // its failure.
    let turn = state.widgets.rendering_turn(public_id);
    let waited_since = std::time::Instant::now();
    let mut turn_state = turn.lock().await;
    let now = state.clock.now();
    if let Some(served) = state.widgets.fresh(public_id, now) {
        return Ok(served);
    }
    match turn_state.unkept_since(waited_since) {
        Some(Unkept::Failed) => {
            return Err(DbError::Other(sqlx::Error::Protocol(
                "the rendering this request waited for failed".into(),
            )));
        }
        Some(Unkept::Missing) => return Ok(Served::NotFound),
        None => {}
    }
    let result = render_and_keep(state, public_id, now).await;
    match result {
        Err(_) => turn_state.record(Unkept::Failed),
        Ok(Served::NotFound) => turn_state.record(Unkept::Missing),
        Ok(_) => {}
    }
    result
}

/// Renders a widget from the database and keeps the rendering.
async fn render_and_keep(
    state: &AppState,
    public_id: &str,
    now: UnixSeconds,
) -> Result<Served, DbError> {
    state.widgets.count_load();
    let data = match load(state, public_id).await? {
        Lookup::NotFound => return Ok(Served::NotFound),
        Lookup::Gone => {
            state.widgets.remember_gone(public_id);
            return Ok(Served::Gone);
        }
        Lookup::Found(data) => data,
    };
    let broken =
        |e: Box<dyn std::error::Error + Send + Sync>| DbError::Other(sqlx::Error::Decode(e));
    let doc = render::document(&state.config, &data).map_err(|e| broken(Box::new(e)))?;
    let json = render::json(&data).map_err(|e| broken(Box::new(e)))?;
    // Compression at quality 11 takes a few milliseconds: off the async threads.
    let rendered = tokio::task::spawn_blocking(move || Rendered {
        html: Encoded::new(doc.html.into_bytes()),
        json: Encoded::new(json.into_bytes()),
        csp: axum::http::HeaderValue::from_str(&doc.csp)
            .unwrap_or(axum::http::HeaderValue::from_static("default-src 'none'")),
        made_at: now,
        valid_until: data.urls_expire_at,
    })
    .await
    .map_err(|e| broken(Box::new(e)))?;
    let rendered = Arc::new(rendered);
    state.widgets.insert(public_id, rendered.clone());
    Ok(Served::Found(rendered))
}

/// Drops this node's renderings of widgets the database reports changed (by any node) in the
/// look-back window. Returns how many were dropped.
pub async fn drop_changed(state: &AppState) -> Result<usize, DbError> {
    let since = state.clock.now() - cache::LOOK_BACK_SECS;
    let changed = store::changed_since(&state.db, since).await?;
    Ok(state.widgets.drop_older(changed))
}

/// Keeps this node's cache fresh until `shutdown` turns true (one small query per poll).
pub fn spawn_poller(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cache::POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = drop_changed(&state).await {
                tracing::warn!(error = %e, "could not look for changed widgets");
            }
        }
    })
}
