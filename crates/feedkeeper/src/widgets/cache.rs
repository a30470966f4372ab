//! What a node keeps in memory to answer `/w/{id}` without the database: the **directory** of
//! every widget address (live or deleted), and the **renderings** of the widgets asked for
//! (HTML and JSON, each in three encodings), bounded in bytes with the least recently used
//! going first. This file is the store; `widgets::served` fills it and `widgets::poll_changes`
//! keeps it current.
//!
//! Current on many nodes, without a query per request: every node reads the change log
//! (`db::widget_changes`) once a second from where it left off. Changes are numbered in commit
//! order by the database, so no change is missed whatever the nodes' clocks say or however late
//! a transaction commits; each rendering remembers how far the log had been read when its data
//! was loaded, and a later change of its widget drops it. While a node cannot read the log for
//! longer than `widgets.poll_stale_secs`, it trusts nothing in memory (requests go to the
//! database, bounded) and drops its renderings.
//!
//! Memory ceiling per node: `widgets.cache_bytes` for renderings, plus about 64 bytes per widget
//! address in the database (the directory), plus the changes of the last minute.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderValue;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::clock::UnixSeconds;
use crate::config::WidgetsConfig;
use crate::db::widget_changes::{Change, Now, Position};
use crate::zero_copy::BodyFiles;

/// A public id, decoded: 16 random bytes (22 URL-safe base64 characters on the wire).
pub type PublicKey = [u8; 16];

/// The key of a well-formed public id; `None` for anything else (answered 404 at once).
pub fn key_of(public_id: &str) -> Option<PublicKey> {
    if public_id.len() != 22 {
        return None;
    }
    let mut key = [0u8; 16];
    // Canonical encodings only: the decoder refuses stray bits in the last character.
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(public_id, &mut key) {
        Ok(16) => Some(key),
        _ => None,
    }
}

/// How long the changes a node has applied are remembered, so that a rendering that loaded its
/// data before a change and finishes after it is not kept (renderings take far less).
const RECENT: Duration = Duration::from_secs(60);

/// gzip level and brotli quality on the request path: a heavy widget compresses in a few
/// milliseconds (brotli 11 took ~250 ms for 6 % less; see docs/benchmarks.md).
const GZIP_LEVEL: u32 = 6;
const BROTLI_QUALITY: i32 = 5;

/// Bodies at least this large are kept in a memory map of their own (see [`kept`]).
const MAPPED_FROM: usize = 64 * 1024;
/// At most this many at once: the kernel limits a process's maps (`vm.max_map_count`, 65 530
/// by default), and the heap needs some too. Beyond it bodies go on the heap.
const MAX_MAPPED: usize = 16_384;
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// A body's own memory map, counted while it lives.
struct Mapped(memmap2::Mmap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A finished body as the cache keeps it, exactly its size. A large one gets an anonymous
/// memory map of its own, given back to the system whole when the last copy is dropped: from
/// the allocator's heap, the memory of renderings the cache had dropped stayed with the process
/// (a node grew to 2.5× `widgets.cache_bytes` in the memory benchmark). Small ones, which
/// would waste most of a page each, stay on the heap, trimmed to their length. With `files`,
/// a large body is also written to a file of its own there, from which it is sent.
fn kept(body: Vec<u8>, files: Option<&BodyFiles>) -> Bytes {
    let body = in_memory(body);
    // Large ones also get a file, to be sent with `sendfile` (see `zero_copy`).
    match files {
        Some(files) => files.back(body),
        None => body,
    }
}

/// A body's bytes in memory, as [`kept`] describes.
fn in_memory(mut body: Vec<u8>) -> Bytes {
    if body.len() >= MAPPED_FROM {
        // Counted first, so that threads racing here never pass the limit together.
        if MAPPED.fetch_add(1, Ordering::Relaxed) < MAX_MAPPED {
            let mapped = memmap2::MmapMut::map_anon(body.len()).and_then(|mut map| {
                map.copy_from_slice(&body);
                map.make_read_only()
            });
            if let Ok(map) = mapped {
                return Bytes::from_owner(Mapped(map));
            }
        }
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
    body.shrink_to_fit();
    Bytes::from(body)
}

/// One body in its three encodings.
#[derive(Debug)]
pub struct Encoded {
    pub identity: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
    /// A weak validator of the content (quoted, as the header wants it): the three encodings
    /// are the same representation's content, so one weak tag serves them all.
    pub etag: String,
    /// The same, ready to send.
    pub etag_header: HeaderValue,
}

impl Encoded {
    /// A fixed text (a script), encoded once.
    pub fn from_text(text: &str) -> Encoded {
        Encoded::new(text.as_bytes().to_vec(), None)
    }

    /// Compresses `body` both ways (CPU work: call it off the async threads). With `files`,
    /// the large encodings are also kept in files there and sent from them.
    pub fn new(body: Vec<u8>, files: Option<&BodyFiles>) -> Encoded {
        Encoded::with_digest(&Sha256::digest(&body).into(), body, files)
    }

    fn with_digest(digest: &[u8; 32], body: Vec<u8>, files: Option<&BodyFiles>) -> Encoded {
        let etag = format!("W/\"{}\"", &hex::encode(digest)[..32]);
        let mut gz =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        // Writing into a Vec cannot fail.
        let gzip = gz
            .write_all(&body)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let mut brotli = Vec::new();
        // A window no larger than the body: the encoder's buffers are sized by it (a 4 MiB
        // window for a 30 KB document is 4 MiB allocated for nothing).
        let window = (usize::BITS - body.len().max(1).leading_zeros()).clamp(10, 22);
        let params = brotli::enc::BrotliEncoderParams {
            quality: BROTLI_QUALITY,
            lgwin: window as i32,
            size_hint: body.len(),
            ..Default::default()
        };
        if brotli::BrotliCompress(&mut body.as_slice(), &mut brotli, &params).is_err() {
            brotli.clear();
        }
        Encoded {
            identity: kept(body, files),
            gzip: kept(gzip, files),
            brotli: kept(brotli, files),
            // Hex in quotes is always a valid header value.
            etag_header: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
            etag,
        }
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.identity.len() + self.gzip.len() + self.brotli.len() + self.etag.len()
    }
}

/// A widget's output, ready to serve.
#[derive(Debug)]
pub struct Rendered {
    /// Shared by every widget whose document is the same (same settings, same feed).
    pub html: Arc<Encoded>,
    pub json: Encoded,
    /// The document's Content-Security-Policy, ready to send.
    pub csp: HeaderValue,
    /// The first image URL in it expires then: it must be made again before.
    pub valid_until: Option<UnixSeconds>,
    /// How far the change log had been applied when its data was loaded: a later change of
    /// its widget drops it.
    pub seq: i64,
}

impl Rendered {
    /// What it costs the cache, in bytes (the shared document counted in full: a ceiling).
    fn weight(&self) -> u32 {
        let bytes = self.html.size() + self.json.size() + self.csp.len() + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// What a public id leads to.
#[derive(Clone, Debug)]
pub enum Served {
    Found(Arc<Rendered>),
    Gone,
    NotFound,
    /// The database could not be asked in time (too many requests need it at once, or it is
    /// slow): try again shortly.
    Busy,
    /// The database failed.
    Failed,
}

/// What memory says about an address.
#[derive(Clone, Debug)]
pub enum Hit {
    Rendered(Arc<Rendered>),
    Gone,
    NotFound,
    /// A widget not rendered yet (or memory is not to be trusted now): render it.
    Miss,
}

/// What became of a rendering offered to [`WidgetCache::keep`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Kept,
    /// Memory is not trusted now: the rendering is right, but may not be kept.
    Untrusted,
    /// A change newer than its data is known: it must not be served again.
    Stale,
}

/// Whether an address is a live widget or a deleted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Live,
    Gone,
}

/// Every widget address in the database, as of the change log's position `applied`.
#[derive(Debug, Default)]
struct Directory {
    ids: HashMap<PublicKey, Known>,
    /// Changes up to this number are applied.
    applied: i64,
    /// Where reading the log continues: after this change (number, public id).
    cursor: (i64, String),
    /// Where the last start-over read the list of addresses: a rendering whose data is older
    /// cannot be judged by the changes remembered since, so it is not kept.
    floor: i64,
    /// Set once the whole list was read at start.
    loaded: bool,
}

/// Changes applied in the last [`RECENT`], by address.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<(Instant, PublicKey, i64)>,
    latest: HashMap<PublicKey, i64>,
}

impl Recent {
    fn note(&mut self, key: PublicKey, seq: i64, at: Instant) {
        self.order.push_back((at, key, seq));
        let latest = self.latest.entry(key).or_insert(seq);
        *latest = (*latest).max(seq);
        while let Some(&(t, k, s)) = self.order.front() {
            if at.duration_since(t) < RECENT {
                break;
            }
            self.order.pop_front();
            // Forgotten with its newest change.
            if self.latest.get(&k) == Some(&s) {
                self.latest.remove(&k);
            }
        }
    }
}

/// The per-node store.
pub struct WidgetCache {
    renderings: moka::sync::Cache<PublicKey, Arc<Rendered>>,
    directory: RwLock<Directory>,
    recent: Mutex<Recent>,
    /// Documents by content, so widgets with the same output share one copy (and one
    /// compression).
    documents: Mutex<HashMap<[u8; 32], Weak<Encoded>>>,
    /// One turn per widget being rendered: requests that miss the cache together wait for one
    /// rendering instead of each making their own (a CDN purge of a popular widget).
    rendering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TurnState>>>>,
    /// Bounds the public path's use of the database (`widgets.public_db_concurrency`).
    pub public_db: tokio::sync::Semaphore,
    /// Bounds renderings in progress on this node (`widgets.max_concurrent_renderings`).
    pub render_slots: Arc<tokio::sync::Semaphore>,
    /// How long the public path waits for the database (and a rendering slot) in all.
    pub public_db_timeout: Duration,
    /// How many times this node has read a widget from the database to render it.
    loads: AtomicU64,
    /// Requests answered from memory: a rendering, a known-missing or gone address; and those
    /// memory could not answer (see [`WidgetCache::lookups`]).
    hits: AtomicU64,
    unknown: AtomicU64,
    misses: AtomicU64,
    /// Milliseconds after `started` of the last successful read of the change log (0: never).
    last_poll_ok_ms: AtomicU64,
    started: Instant,
    stale_after: Duration,
    /// Where large bodies also get a file, to be sent with `sendfile` (`server.send_from_files`).
    body_files: OnceLock<BodyFiles>,
}

impl std::fmt::Debug for WidgetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WidgetCache")
            .field("renderings", &self.renderings.entry_count())
            .field("bytes", &self.renderings.weighted_size())
            .finish_non_exhaustive()
    }
}

impl Default for WidgetCache {
    fn default() -> Self {
        WidgetCache::new(&WidgetsConfig::default())
    }
}

impl WidgetCache {
    pub fn new(config: &WidgetsConfig) -> WidgetCache {
        WidgetCache {
            renderings: moka::sync::Cache::builder()
                .max_capacity(config.cache_bytes)
                .weigher(|_, r: &Arc<Rendered>| r.weight())
                .build(),
            directory: RwLock::default(),
            recent: Mutex::default(),
            documents: Mutex::default(),
            rendering: Mutex::default(),
            public_db: tokio::sync::Semaphore::new(config.public_db_concurrency as usize),
            render_slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_renderings as usize,
            )),
            public_db_timeout: Duration::from_millis(config.public_db_timeout_ms),
            loads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            last_poll_ok_ms: AtomicU64::new(0),
            started: Instant::now(),
            stale_after: Duration::from_secs(config.poll_stale_secs),
            body_files: OnceLock::new(),
        }
    }

    /// From now on, large bodies also get a file in `files` (see `zero_copy`); set once, by
    /// the server as it starts (a later call changes nothing).
    pub fn send_from_files(&self, files: BodyFiles) {
        let _ = self.body_files.set(files);
    }

    fn dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn dir_mut(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn since_start_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether memory may answer: the list of addresses was read, and the change log was read
    /// recently enough that nothing it holds can be stale for long.
    pub fn trusted(&self) -> bool {
        let last = self.last_poll_ok_ms.load(Ordering::Relaxed);
        last != 0
            && self.since_start_ms().saturating_sub(last)
                < u64::try_from(self.stale_after.as_millis()).unwrap_or(u64::MAX)
    }

    /// What memory says about `key` at `now`: the hot path (no database, no await).
    pub fn lookup(&self, key: &PublicKey, now: UnixSeconds) -> Hit {
        if !self.trusted() {
            return Hit::Miss;
        }
        if let Some(r) = self.renderings.get(key)
            && r.valid_until.is_none_or(|t| t > now)
        {
            return Hit::Rendered(r);
        }
        match self.dir().ids.get(key) {
            None => Hit::NotFound,
            Some(Known::Gone) => Hit::Gone,
            Some(Known::Live) => Hit::Miss,
        }
    }

    /// How far the change log is applied: what a rendering starting now will have seen.
    pub fn applied_through(&self) -> i64 {
        self.dir().applied
    }

    /// Keeps a rendering, unless memory is not trusted now, or its data is older than what
    /// the log has told this node since (a change of its widget applied while it was being
    /// made, or a start-over after which older data cannot be judged).
    pub fn keep(&self, key: PublicKey, rendered: Arc<Rendered>) -> Kept {
        if !self.trusted() {
            return Kept::Untrusted;
        }
        // The same locks, in the same order, as `apply`: a change is either applied before
        // the check (and refuses the rendering) or after the insert (and drops it).
        let dir = self.dir();
        let recent = self.recent();
        let newer = recent
            .latest
            .get(&key)
            .is_some_and(|&seq| seq > rendered.seq);
        if newer || rendered.seq < dir.floor {
            return Kept::Stale;
        }
        self.renderings.insert(key, rendered);
        Kept::Kept
    }

    /// A widget made or deleted on this node: known at once, before the change log says so.
    pub fn learn(&self, public_id: &str, deleted: bool) {
        if let Some(key) = key_of(public_id) {
            let known = if deleted { Known::Gone } else { Known::Live };
            self.dir_mut().ids.insert(key, known);
            self.renderings.invalidate(&key);
        }
    }

    /// Drops one widget's rendering (after a change made on this node).
    pub fn evict(&self, public_id: &str) {
        if let Some(key) = key_of(public_id) {
            self.renderings.invalidate(&key);
        }
    }

    /// Whether the list of addresses still has to be read (at start, or after falling behind
    /// the log's trimming).
    pub fn needs_directory(&self, position: Position) -> bool {
        let dir = self.dir();
        !dir.loaded || position.trimmed_through > dir.applied
    }

    /// Starts over from the whole list of addresses, read at log position `position` (read
    /// before the list): every rendering goes.
    pub fn reset(&self, ids: Vec<(String, bool)>, position: Position) {
        let ids = ids
            .into_iter()
            .filter_map(|(id, gone)| {
                Some((key_of(&id)?, if gone { Known::Gone } else { Known::Live }))
            })
            .collect();
        *self.dir_mut() = Directory {
            ids,
            applied: position.seq,
            cursor: (position.seq, String::new()),
            floor: position.seq,
            loaded: true,
        };
        *self.recent() = Recent::default();
        self.renderings.invalidate_all();
    }

    /// Where reading the change log continues.
    pub fn cursor(&self) -> (i64, String) {
        self.dir().cursor.clone()
    }

    /// Applies changes read from the log (in log order). `complete`: nothing after them was
    /// left unread, so everything up to the last one is applied. Returns how many renderings
    /// were dropped.
    pub fn apply(&self, changes: &[Change], complete: bool) -> usize {
        let now = Instant::now();
        let mut dropped = 0;
        let mut dir = self.dir_mut();
        let mut recent = self.recent();
        for change in changes {
            let Some(key) = key_of(&change.public_id) else {
                continue;
            };
            match change.now {
                Now::Live => dir.ids.insert(key, Known::Live),
                Now::Gone => dir.ids.insert(key, Known::Gone),
                Now::Missing => dir.ids.remove(&key),
            };
            recent.note(key, change.seq, now);
            if self
                .renderings
                .get(&key)
                .is_some_and(|r| r.seq < change.seq)
            {
                self.renderings.invalidate(&key);
                dropped += 1;
            }
        }
        if let Some(last) = changes.last() {
            dir.cursor = (last.seq, last.public_id.clone());
        }
        // A page that ended inside one change's rows leaves that change unapplied until a page
        // that is not full follows.
        dir.applied = if complete {
            dir.cursor.0
        } else {
            dir.cursor.0 - 1
        };
        dropped
    }

    /// The change log was read up to date.
    pub fn poll_succeeded(&self) {
        self.last_poll_ok_ms
            .store(self.since_start_ms(), Ordering::Relaxed);
    }

    /// The change log could not be read. Once that has lasted too long, every rendering goes
    /// (they may show what was since deleted). Returns whether they went now.
    pub fn poll_failed(&self) -> bool {
        if self.trusted() || self.renderings.entry_count() == 0 {
            return false;
        }
        self.renderings.invalidate_all();
        true
    }

    /// Rendered documents by content: the one already held for these bytes, or these bytes
    /// encoded (and remembered). CPU work: call it off the async threads.
    pub fn document(&self, body: Vec<u8>) -> Arc<Encoded> {
        let digest: [u8; 32] = Sha256::digest(&body).into();
        if let Some(held) = self.documents().get(&digest).and_then(Weak::upgrade) {
            return held;
        }
        let encoded = Arc::new(Encoded::with_digest(&digest, body, self.body_files.get()));
        let mut documents = self.documents();
        // Forget documents no rendering holds any more, now and then.
        if documents.len() >= 64 && documents.len().is_power_of_two() {
            documents.retain(|_, d| d.strong_count() > 0);
        }
        documents.insert(digest, Arc::downgrade(&encoded));
        encoded
    }

    /// `body` encoded, its large encodings in files if this node sends from files. CPU work:
    /// call it off the async threads.
    pub fn encoded(&self, body: Vec<u8>) -> Encoded {
        Encoded::new(body, self.body_files.get())
    }

    fn documents(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Weak<Encoded>>> {
        self.documents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a read of a widget from the database (see [`WidgetCache::loads`]).
    pub fn count_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what memory said to a request (the first lookup of each, not the look again in
    /// a rendering turn).
    pub fn count_lookup(&self, hit: &Hit) {
        let counter = match hit {
            Hit::Rendered(_) | Hit::Gone => &self.hits,
            Hit::NotFound => &self.unknown,
            Hit::Miss => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered from memory (a rendering or a gone address), refused from memory (an
    /// address that does not exist), and that memory could not answer, since the start.
    pub fn lookups(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }

    /// How many times this node has read a widget from the database to render it.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Renderings held, and their weight in bytes (after pending evictions run).
    pub fn usage(&self) -> (u64, u64) {
        self.renderings.run_pending_tasks();
        (
            self.renderings.entry_count(),
            self.renderings.weighted_size(),
        )
    }

    fn turns(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<TurnState>>>> {
        self.rendering.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in the turn to render `public_id`: lock it, look again with
    /// [`WidgetCache::lookup`], and render only if still missing.
    pub fn rendering_turn<'a>(&'a self, public_id: &'a str) -> Turn<'a> {
        let turn = self
            .turns()
            .entry(public_id.to_owned())
            .or_default()
            .clone();
        Turn {
            cache: self,
            public_id,
            turn,
        }
    }
}

/// What a widget's rendering turn remembers: how its last rendering ended when it made nothing
/// to keep, and when, so that those who waited for it share that answer instead of each trying
/// again, one after another (a flood on one address makes one lookup, not one each).
#[derive(Debug, Default)]
pub struct TurnState {
    unkept: Option<(Instant, Unkept)>,
}

/// A rendering whose answer others may share instead of rendering again.
#[derive(Clone, Debug)]
pub enum Unkept {
    /// It ended without a rendering to keep (missing, gone, busy, failed).
    Answer(Served),
    /// It made a rendering that may not be kept (memory is not trusted now).
    Made(Arc<Rendered>),
}

impl TurnState {
    /// How the last rendering ended, if it ended after `since` and left nothing in memory.
    pub fn unkept_since(&self, since: Instant) -> Option<Unkept> {
        self.unkept
            .as_ref()
            .and_then(|(at, unkept)| (*at >= since).then(|| unkept.clone()))
    }

    /// Records a rendering that left nothing in memory, now.
    pub fn record(&mut self, unkept: Unkept) {
        self.unkept = Some((Instant::now(), unkept));
    }
}

/// A place in a widget's rendering turn; lock it with [`Turn::lock`]. Dropped (also when the
/// request is abandoned), it forgets the turn if nobody else holds it.
pub struct Turn<'a> {
    cache: &'a WidgetCache,
    public_id: &'a str,
    turn: Arc<tokio::sync::Mutex<TurnState>>,
}

impl Turn<'_> {
    /// Waits for the turn.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, TurnState> {
        self.turn.lock().await
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut rendering = self.cache.turns();
        // Ours and the map's: no one else holds it. (One taken from the map just before is
        // still a working lock: its holder finds the rendering already made.)
        if Arc::strong_count(&self.turn) <= 2 {
            rendering.remove(self.public_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendering(seq: i64, text: &str) -> Arc<Rendered> {
        Arc::new(Rendered {
            html: Arc::new(Encoded::from_text(text)),
            json: Encoded::from_text("{}"),
            csp: HeaderValue::from_static("default-src 'none'"),
            valid_until: None,
            seq,
        })
    }

    fn trusted_cache() -> WidgetCache {
        let cache = WidgetCache::default();
        cache.reset(
            vec![("AAAAAAAAAAAAAAAAAAAAAA".into(), false)],
            Position {
                seq: 10,
                trimmed_through: 0,
            },
        );
        cache.poll_succeeded();
        cache
    }

    #[test]
    fn only_canonical_ids_have_a_key() {
        assert!(key_of("AAAAAAAAAAAAAAAAAAAAAA").is_some());
        assert!(key_of("AAAAAAAAAAAAAAAAAAAAAB").is_none(), "stray bits");
        assert!(key_of("AAAAAAAAAAAAAAAAAAAAA").is_none());
        assert!(key_of("AAAAAAAAAAAAAAAAAAAA+A").is_none());
        assert!(key_of("AAAAAAAAAAAAAAAAAAAAA=").is_none());
    }

    #[test]
    fn unknown_addresses_are_answered_from_memory_once_trusted() {
        let cache = WidgetCache::default();
        let unknown = key_of("BBBBBBBBBBBBBBBBBBBBBA").unwrap();
        assert!(
            matches!(cache.lookup(&unknown, 0), Hit::Miss),
            "not read yet"
        );
        let cache = trusted_cache();
        assert!(matches!(cache.lookup(&unknown, 0), Hit::NotFound));
        let known = key_of("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert!(matches!(cache.lookup(&known, 0), Hit::Miss));
    }

    #[test]
    fn a_change_drops_older_renderings_and_refuses_late_ones() {
        let cache = trusted_cache();
        let key = key_of("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(cache.keep(key, rendering(10, "a")), Kept::Kept);
        let change = |seq, now| Change {
            seq,
            public_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            now,
        };
        assert_eq!(cache.apply(&[change(11, Now::Live)], true), 1);
        assert_eq!(cache.applied_through(), 11);
        // A rendering that loaded before change 11 and finishes after it is not kept.
        assert_eq!(cache.keep(key, rendering(10, "late")), Kept::Stale);
        assert_eq!(cache.keep(key, rendering(11, "fresh")), Kept::Kept);
        assert!(matches!(cache.lookup(&key, 0), Hit::Rendered(_)));
        // A deletion: gone from memory, answered 410 from then on.
        cache.apply(&[change(12, Now::Gone)], true);
        assert!(matches!(cache.lookup(&key, 0), Hit::Gone));
    }

    #[test]
    fn a_rendering_older_than_a_start_over_is_not_kept() {
        // Loaded before the node read its list of addresses at change 10 (say, at start).
        let cache = trusted_cache();
        let key = key_of("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(cache.keep(key, rendering(0, "old")), Kept::Stale);
        assert_eq!(cache.keep(key, rendering(10, "new")), Kept::Kept);
        let untrusted = WidgetCache::default();
        assert_eq!(untrusted.keep(key, rendering(10, "x")), Kept::Untrusted);
    }

    #[test]
    fn an_incomplete_page_leaves_its_last_change_unapplied() {
        let cache = trusted_cache();
        let changes = [Change {
            seq: 12,
            public_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            now: Now::Live,
        }];
        cache.apply(&changes, false);
        assert_eq!(cache.applied_through(), 11);
        assert_eq!(cache.cursor(), (12, "AAAAAAAAAAAAAAAAAAAAAA".to_owned()));
        // An empty page after it: nothing more of change 12 exists, so it is applied.
        cache.apply(&[], true);
        assert_eq!(cache.applied_through(), 12);
    }

    #[test]
    fn renderings_stay_within_their_bytes_least_recently_used_out() {
        let cache = WidgetCache::new(&WidgetsConfig {
            cache_bytes: 1024 * 1024,
            ..WidgetsConfig::default()
        });
        cache.reset(
            Vec::new(),
            Position {
                seq: 10,
                trimmed_through: 0,
            },
        );
        cache.poll_succeeded();
        // 400 renderings of about 40 KB each (16 MB) into a 1 MiB cache; one is read often.
        let favourite = key_of("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        cache.keep(favourite, rendering(10, &"f".repeat(20_000)));
        for i in 0..400u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_be_bytes());
            key[15] = 1;
            // Incompressible, so every encoding is as large as the text.
            let text: String = (0..20_000)
                .map(|j| char::from(b'a' + ((j * 7 + i as usize * 13) % 26) as u8))
                .collect();
            cache.keep(key, rendering(10, &text));
            assert!(cache.renderings.get(&favourite).is_some() || i < 10);
        }
        let (entries, bytes) = cache.usage();
        assert!(
            bytes <= 1024 * 1024,
            "{bytes} bytes in {entries} renderings"
        );
        assert!(entries > 5, "{entries}");
        assert!(
            cache.renderings.get(&favourite).is_some(),
            "the one in use stays"
        );
    }

    #[test]
    fn identical_documents_are_held_once() {
        let cache = WidgetCache::default();
        let a = cache.document(b"<p>same</p>".to_vec());
        let b = cache.document(b"<p>same</p>".to_vec());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.etag.starts_with("W/\""));
        let c = cache.document(b"<p>other</p>".to_vec());
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[tokio::test]
    async fn turns_are_forgotten_when_their_last_holder_leaves_even_mid_wait() {
        let cache = WidgetCache::default();
        let first = cache.rendering_turn("abc");
        let held = first.lock().await;
        // A second request waits for the turn, then is abandoned (its client went away).
        let waiting = async {
            let second = cache.rendering_turn("abc");
            let _state = second.lock().await;
        };
        let abandoned = tokio::time::timeout(Duration::from_millis(20), waiting).await;
        assert!(abandoned.is_err(), "it was still waiting");
        assert_eq!(cache.turns().len(), 1, "the first still holds it");
        drop(held);
        drop(first);
        assert!(cache.turns().is_empty(), "nobody holds it: forgotten");
    }
}
