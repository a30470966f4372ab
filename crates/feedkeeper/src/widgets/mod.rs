//! Widgets: what a website embeds, and everything about them except HTTP.
//!
//! - [`settings`]: the options a widget has, the dashboard form, and its checks.
//! - [`caption`]: untrusted captions split into text, hashtags and mentions.
//! - [`render`]: the widget as an HTML document for an iframe, and as the JSON feed.
//! - [`cache`]: rendered output kept in memory per widget version, with every node noticing a
//!   change within seconds without a database query per request.
//!
//! A widget shows the stored feed of one connection (`feeds`); nothing here calls Meta. When the
//! connection's login is dead or Meta is down the last good posts keep showing with their
//! stored images ([`pictures`]); a picture not stored yet shows Instagram's URL only while it
//! is valid, and is left out after (never served broken).

pub mod cache;
pub mod caption;
pub mod pictures;
pub mod render;
pub mod settings;

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::UnixSeconds;
use crate::db::connections::{self as stored, RowLock, Status};
use crate::db::posts::{self, PostRow, ProfileRow};
use crate::db::widgets::{self as store, NewWidget, Widget};
use crate::db::{DbError, Tx, widget_changes};
use crate::failpoint;
use crate::ids::{ConnectionId, UserId, WidgetId};
use crate::state::AppState;
use cache::{Hit, Rendered, Served, Unkept};
use settings::WidgetSettings;

/// A new unguessable public id: 128 random bits, URL-safe.
pub fn new_public_id() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether a string could be a public id (checked before any database read).
pub fn is_public_id(s: &str) -> bool {
    cache::key_of(s).is_some()
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
    /// The earliest expiry among the image URLs shown: the output must be remade before it.
    pub urls_expire_at: Option<UnixSeconds>,
    /// The stored images of the account, and where their addresses start.
    pub pictures: pictures::Pictures,
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
/// with a picture to show (stored, or Instagram's URL while valid); at most `settings.posts`.
pub fn visible_posts(
    s: &WidgetSettings,
    all: Vec<PostRow>,
    pictures: &pictures::Pictures,
) -> Vec<PostRow> {
    all.into_iter()
        .filter(|p| shows_kind(s, p))
        .filter(|p| caption::passes(p.caption.as_deref(), &s.include_words, &s.exclude_words))
        .filter(|p| {
            !s.hidden_posts
                .iter()
                .any(|h| *h == p.media_id || p.shortcode.as_deref().is_some_and(|code| code == h))
        })
        .filter(|p| {
            crate::feeds::display_picture(p)
                .and_then(|(item, url)| pictures.pick(item, Some(url)))
                .is_some()
        })
        .take(s.posts as usize)
        .collect()
}

/// The earliest expiry of the Instagram URLs a rendering of `posts` and `profile` includes
/// (pictures not stored yet, videos): it must be remade before then.
pub(crate) fn remote_expiry(
    posts: &[PostRow],
    profile: Option<&ProfileRow>,
    pictures: &pictures::Pictures,
) -> Option<UnixSeconds> {
    let mut earliest: Option<UnixSeconds> = None;
    let mut note = |t: Option<UnixSeconds>| {
        if let Some(t) = t {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
    };
    for p in posts {
        for (item, url) in crate::feeds::pictures(p) {
            note(
                pictures
                    .pick(item, Some(url))
                    .and_then(|pic| pic.expires_at()),
            );
        }
        let videos = std::iter::once((&p.media_type, &p.media_url))
            .chain(p.children.iter().map(|c| (&c.media_type, &c.media_url)));
        for (kind, url) in videos {
            if kind == "VIDEO" {
                note(
                    pictures
                        .remote(url.as_deref())
                        .and_then(pictures::expiry_of),
                );
            }
        }
    }
    if let Some(url) = profile.and_then(|p| p.picture_url.as_deref()) {
        note(
            pictures
                .pick(crate::db::images::PROFILE_ITEM, Some(url))
                .and_then(|pic| pic.expires_at()),
        );
    }
    earliest
}

/// Everything a widget's output is made from, for the account `connection` (none: an empty
/// widget).
pub async fn assemble(
    state: &AppState,
    public_id: String,
    settings: WidgetSettings,
    connection: Option<&stored::Connection>,
) -> Result<WidgetData, DbError> {
    let now = state.clock.now();
    let (health, profile, all, last_synced_at, shown) = match connection {
        Some(c) if c.data_purged_at.is_none() => {
            let profile = posts::profile(&state.db, c.id).await?;
            let all =
                posts::list_posts(&state.db, c.id, state.config.sync.max_posts as i64).await?;
            let shown = crate::db::images::shown(&state.db, c.id).await?;
            let health = match c.status() {
                Status::Active => Health::Ok,
                Status::Degraded => Health::Degraded,
                Status::NeedsReconnect => Health::NeedsReconnect,
            };
            (health, profile, all, c.last_sync_at, shown)
        }
        _ => (Health::Disconnected, None, Vec::new(), None, Vec::new()),
    };
    let pictures =
        pictures::Pictures::new(&state.config.public_url(), &state.images.signer, shown, now);
    let posts = visible_posts(&settings, all, &pictures);
    let urls_expire_at = remote_expiry(&posts, profile.as_ref(), &pictures);
    Ok(WidgetData {
        public_id,
        settings,
        profile,
        posts,
        health,
        last_synced_at,
        urls_expire_at,
        pictures,
    })
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
    let connection = match w.connection_id {
        Some(id) => match stored::get(&state.db, id).await {
            Ok(c) => Some(c),
            Err(DbError::NotFound) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let data = assemble(state, w.public_id.clone(), settings, connection.as_ref()).await?;
    Ok(Lookup::Found(Box::new(data)))
}

/// Why a widget could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("choose one of your own accounts")]
    NotYourConnection,
    #[error(
        "you have {limit} widgets, the most this server allows one account: delete one you no \
         longer use (or ask the server's operator for more)"
    )]
    TooMany { limit: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Locks the connection a widget is saved for (the first statement of the saving transaction,
/// as the lock order wants it; a disconnect then waits for the save, or the save for it) and
/// checks that it is the owner's. The outer error is the database's, the inner one the user's.
async fn lock_owned_connection(
    tx: &mut Tx,
    owner: UserId,
    connection: ConnectionId,
) -> Result<Result<(), SaveError>, DbError> {
    Ok(
        match stored::lock(&mut *tx, connection, RowLock::Change).await? {
            Some(c) if c.owner_id == owner => Ok(()),
            _ => Err(SaveError::NotYourConnection),
        },
    )
}

/// Creates a widget for one of the owner's connections, within the per-user limit; the
/// connection is synced more often from now on, and every node learns the new address.
pub async fn create(
    state: &AppState,
    owner: UserId,
    name: &str,
    connection: ConnectionId,
    settings: &WidgetSettings,
) -> Result<Widget, SaveError> {
    let public_id = new_public_id();
    let created = crate::db::retry_conflicts("widget create", || async {
        let mut tx = state.db.begin().await?;
        let widget = match create_in(
            state, &mut tx, owner, name, connection, settings, &public_id,
        )
        .await?
        {
            Ok(widget) => widget,
            Err(refused) => return Ok(Err(refused)),
        };
        tx.commit().await?;
        Ok(Ok(widget))
    })
    .await??;
    created_now(state, &created);
    Ok(created)
}

/// [`create`]'s writes, in a transaction of the caller's (which may add its own last writes, as
/// the API's kept answer does): it must begin with this call, which locks the connection's row
/// first. After the commit, call [`created_now`]. The outer error is the database's, the inner
/// one the user's.
pub async fn create_in(
    state: &AppState,
    tx: &mut Tx,
    owner: UserId,
    name: &str,
    connection: ConnectionId,
    settings: &WidgetSettings,
    public_id: &str,
) -> Result<Result<Widget, SaveError>, DbError> {
    let now = state.clock.now();
    let json = serde_json::to_string(settings)
        .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
    let limit = state.config.widgets.max_per_user;
    if let Err(refused) = lock_owned_connection(tx, owner, connection).await? {
        return Ok(Err(refused));
    }
    failpoint::hit(
        failpoint::WIDGET_CREATE_TX,
        &failpoint::key(state, connection),
    )
    .await;
    // The owner's row next, so two saves of one owner count one after the other.
    crate::db::users::lock(tx, owner).await?;
    if store::count_live(&mut *tx, owner).await? >= limit as i64 {
        return Ok(Err(SaveError::TooMany { limit }));
    }
    let id = store::create(
        &mut *tx,
        &NewWidget {
            public_id,
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
        &mut *tx,
        crate::connections::SYNC_JOB,
        &connection.to_string(),
        now,
        now,
    )
    .await?;
    let widget = store::get_owned(&mut *tx, owner, id).await?;
    widget_changes::record(&mut *tx, std::slice::from_ref(&widget.public_id)).await?;
    Ok(Ok(widget))
}

/// After a create committed: this node serves the new address at once (the others learn it
/// from the change log).
pub fn created_now(state: &AppState, widget: &Widget) {
    state.widgets.learn(&widget.public_id, false);
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
    update_at_version(state, owner, id, None, name, connection, settings).await
}

/// [`update`], only if the widget is still at `version` (when given): a change made from what
/// was read at that version cannot undo one saved meanwhile. A moved version is
/// `DbError::NotFound`, like a deleted widget (the caller reads it again to tell them apart).
pub async fn update_at_version(
    state: &AppState,
    owner: UserId,
    id: WidgetId,
    version: Option<i64>,
    name: &str,
    connection: ConnectionId,
    settings: &WidgetSettings,
) -> Result<(), SaveError> {
    let now = state.clock.now();
    let json = serde_json::to_string(settings)
        .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
    let public_id = crate::db::retry_conflicts("widget update", || async {
        let mut tx = state.db.begin().await?;
        if let Err(refused) = lock_owned_connection(&mut tx, owner, connection).await? {
            return Ok(Err(refused));
        }
        let Some(public_id) =
            store::update_owned(&mut tx, owner, id, version, name, connection, &json, now).await?
        else {
            return Ok(Err(DbError::NotFound.into()));
        };
        // The account may be newly shown: its pictures are stored now.
        crate::db::jobs::schedule(
            &mut tx,
            crate::images::FETCH_JOB,
            &connection.to_string(),
            now,
            now,
        )
        .await?;
        widget_changes::record(&mut tx, std::slice::from_ref(&public_id)).await?;
        tx.commit().await?;
        Ok(Ok(public_id))
    })
    .await??;
    state.widgets.evict(&public_id);
    Ok(())
}

/// Deletes the owner's widget: its address answers 410 Gone from then on, on every node.
/// Returns whether there was such a widget.
pub async fn delete(state: &AppState, owner: UserId, id: WidgetId) -> Result<bool, DbError> {
    let now = state.clock.now();
    let deleted = crate::db::retry_conflicts("widget delete", || async {
        let mut tx = state.db.begin().await?;
        let Some(public_id) = store::delete_owned(&mut tx, owner, id, now).await? else {
            return Ok(None);
        };
        widget_changes::record(&mut tx, std::slice::from_ref(&public_id)).await?;
        tx.commit().await?;
        Ok(Some(public_id))
    })
    .await?;
    if let Some(public_id) = &deleted {
        state.widgets.learn(public_id, true);
    }
    Ok(deleted.is_some())
}

// ---- Serving from memory -------------------------------------------------------------------

/// What `public_id` leads to: the rendering from this node's memory, or made now and kept.
/// An address memory does not know is answered without the database (once the node has read
/// the list of addresses); what must read the database waits for it only so long
/// (`widgets.public_db_timeout_ms`, among `widgets.public_db_concurrency` at once per node).
pub async fn served(state: &AppState, public_id: &str) -> Served {
    match served_now(state, public_id) {
        Ok(answer) => answer,
        Err(key) => served_later(state, public_id, key).await,
    }
}

/// [`served`] as far as memory alone goes: the answer, or the key to render it by
/// ([`served_later`]).
pub fn served_now(state: &AppState, public_id: &str) -> Result<Served, cache::PublicKey> {
    let Some(key) = cache::key_of(public_id) else {
        // Not even well formed: refused before memory is asked, counted with the unknown.
        state.widgets.count_lookup(&Hit::NotFound);
        return Ok(Served::NotFound);
    };
    let hit = state.widgets.lookup(&key, state.clock.now());
    state.widgets.count_lookup(&hit);
    answer_of(hit).ok_or(key)
}

/// [`served`] for an address memory had no answer for: rendered, or the answer found.
pub async fn served_later(state: &AppState, public_id: &str, key: cache::PublicKey) -> Served {
    // Boxed: a rendering's state (the turn, the database's futures) is kilobytes, and the
    // serving threads' future for the hot routes has room for this path; inline, every answer
    // from memory would be that size (it is moved whole several times per request).
    Box::pin(served_after_miss(state, public_id, key)).await
}

/// [`served`] when memory had no answer: one rendering per widget at a time on this node.
async fn served_after_miss(state: &AppState, public_id: &str, key: cache::PublicKey) -> Served {
    // Those who waited serve what the one before them rendered, or share its answer.
    let turn = state.widgets.rendering_turn(public_id);
    let waited_since = std::time::Instant::now();
    let mut turn_state = turn.lock().await;
    if let Some(answer) = from_memory(state, &key) {
        return answer;
    }
    match turn_state.unkept_since(waited_since) {
        Some(Unkept::Answer(answer)) => return answer,
        Some(Unkept::Made(rendered)) => return Served::Found(rendered),
        None => {}
    }
    let (served, kept) = render_and_keep(state, public_id, key).await;
    match (&served, kept) {
        // Right, but memory may not keep it now: those who waited share it.
        (Served::Found(rendered), Some(cache::Kept::Untrusted)) => {
            turn_state.record(Unkept::Made(rendered.clone()))
        }
        // Kept (they find it), or older than a change already known (they render again).
        (Served::Found(_), _) => {}
        (answer, _) => turn_state.record(Unkept::Answer(answer.clone())),
    }
    served
}

/// What memory alone answers for `key` now (`None`: it must be rendered).
fn from_memory(state: &AppState, key: &cache::PublicKey) -> Option<Served> {
    answer_of(state.widgets.lookup(key, state.clock.now()))
}

fn answer_of(hit: Hit) -> Option<Served> {
    match hit {
        Hit::Rendered(r) => Some(Served::Found(r)),
        Hit::Gone => Some(Served::Gone),
        Hit::NotFound => Some(Served::NotFound),
        Hit::Miss => None,
    }
}

/// Renders a widget from the database and offers the rendering to memory (what became of it,
/// when one was made).
async fn render_and_keep(
    state: &AppState,
    public_id: &str,
    key: cache::PublicKey,
) -> (Served, Option<cache::Kept>) {
    let cache = &state.widgets;
    let deadline = tokio::time::Instant::now() + cache.public_db_timeout;
    // What the log had told this node before the data is read: a later change drops it.
    let seq = cache.applied_through();
    let loaded = tokio::time::timeout_at(deadline, async {
        let _permit = cache.public_db.acquire().await;
        cache.count_load();
        load(state, public_id).await
    })
    .await;
    let data = match loaded {
        Err(_) => {
            tracing::warn!("a widget could not be read in time (the database is busy)");
            return (Served::Busy, None);
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a widget could not be read");
            return (Served::Failed, None);
        }
        Ok(Ok(Lookup::NotFound)) => return (Served::NotFound, None),
        Ok(Ok(Lookup::Gone)) => return (Served::Gone, None),
        Ok(Ok(Lookup::Found(data))) => data,
    };
    // The document, the feed and their compression: CPU work, in one blocking section off the
    // serving thread, a bounded number at a time on this node.
    let Ok(Ok(slot)) =
        tokio::time::timeout_at(deadline, cache.render_slots.clone().acquire_owned()).await
    else {
        tracing::warn!("a widget could not be rendered in time (rendering is busy)");
        return (Served::Busy, None);
    };
    let (config, widgets) = (state.config.clone(), cache.clone());
    let made = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        render_blocking(&config, &widgets, &data, seq)
    })
    .await;
    let rendered = match made {
        Ok(Ok(rendered)) => Arc::new(rendered),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a widget could not be rendered");
            return (Served::Failed, None);
        }
        Err(e) => {
            tracing::error!(error = %e, "a widget's rendering panicked");
            return (Served::Failed, None);
        }
    };
    let kept = cache.keep(key, rendered.clone());
    (Served::Found(rendered), Some(kept))
}

/// Makes a widget's output: the document (shared with widgets whose document is the same), the
/// feed, their encodings.
fn render_blocking(
    config: &crate::config::Config,
    cache: &cache::WidgetCache,
    data: &WidgetData,
    seq: i64,
) -> Result<Rendered, askama::Error> {
    let doc = render::document(config, data)?;
    let json = render::json(data).map_err(|e| askama::Error::Custom(Box::new(e)))?;
    Ok(Rendered {
        html: cache.document(doc.html.into_bytes()),
        json: cache.encoded(json.into_bytes()),
        csp: axum::http::HeaderValue::from_str(&doc.csp)
            .unwrap_or(axum::http::HeaderValue::from_static("default-src 'none'")),
        valid_until: data.urls_expire_at,
        seq,
    })
}

/// What one read of the change log did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// Changes read.
    pub changes: usize,
    /// Renderings dropped because of them.
    pub dropped: usize,
    /// The whole list of addresses was read again (at start, or after falling behind).
    pub reloaded: bool,
}

/// Changes read per query.
const POLL_PAGE: i64 = 2000;

/// Reads the change log from where this node left off and applies it to memory: new and
/// deleted addresses, renderings of changed widgets dropped.
pub async fn poll_changes(state: &AppState) -> Result<Polled, DbError> {
    let cache = &state.widgets;
    let mut polled = Polled::default();
    let start_over = async || {
        // The position first: a change after it is read from the log below.
        let position = widget_changes::position(&state.db).await?;
        let ids = widget_changes::all_public_ids(&state.db).await?;
        cache.reset(ids, position);
        Ok::<_, DbError>(())
    };
    let position = widget_changes::position(&state.db).await?;
    if cache.needs_directory(position) {
        start_over().await?;
        polled.reloaded = true;
    }
    loop {
        let (seq, public_id) = cache.cursor();
        let changes = widget_changes::after(&state.db, seq, &public_id, POLL_PAGE).await?;
        // Change numbers have no gaps: one missing was trimmed before this node read it (it
        // stood still for a day, or the trimming raced this poll).
        if changes.first().is_some_and(|c| c.seq > seq + 1) {
            start_over().await?;
            polled.reloaded = true;
            continue;
        }
        let complete = (changes.len() as i64) < POLL_PAGE;
        polled.changes += changes.len();
        polled.dropped += cache.apply(&changes, complete);
        if complete {
            break;
        }
    }
    cache.poll_succeeded();
    Ok(polled)
}

/// Keeps this node's memory current until `shutdown` turns true (one small query per poll).
pub fn spawn_poller(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(state.config.widgets.poll_interval_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            failpoint::hit(failpoint::WIDGET_POLL, &state.node).await;
            match poll_changes(&state).await {
                Ok(polled) => {
                    if failing {
                        tracing::info!(?polled, "reading widget changes again");
                    }
                    if polled.reloaded {
                        tracing::info!(
                            ?polled,
                            "read every widget address (at start, or past a trimmed change log)"
                        );
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "could not read widget changes");
                    }
                    failing = true;
                    if state.widgets.poll_failed() {
                        tracing::warn!(
                            "widget changes unread for too long: rendered widgets dropped"
                        );
                    }
                }
            }
        }
    })
}
