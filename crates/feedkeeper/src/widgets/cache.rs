//! Rendered widgets in memory: each widget's HTML and JSON, made once, stored with gzip and
//! brotli copies and an ETag, and served without touching the database. This file is the store
//! itself; `widgets::served` fills it and `widgets::drop_changed` keeps it fresh.
//!
//! Staying fresh on many nodes, without a query per request: every node polls once a second for
//! widgets whose settings, feed or account health changed recently (`db::widgets::
//! changed_since`, an indexed look at `updated_at`) and drops those renderings; the next request
//! makes them again. The look-back window is far longer than a poll, so a change committed late,
//! or stamped by a node whose clock is a little behind, is still seen. A rendering also ends
//! before the first image URL in it expires.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderValue;
use sha2::{Digest as _, Sha256};

use crate::clock::UnixSeconds;

/// How often each node looks for changed widgets.
pub const POLL: Duration = Duration::from_secs(1);
/// How far back each look reaches (late commits, clock differences between nodes).
pub const LOOK_BACK_SECS: i64 = 30;
/// A rendering is dropped for a change stamped up to this long before it was made.
const CLOCK_SLACK_SECS: i64 = 10;
/// Renderings kept per node; beyond it the oldest go.
const MAX_ENTRIES: usize = 20_000;

/// One body in its three encodings.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub identity: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
    /// A strong validator of the identity bytes (quoted, as the header wants it).
    pub etag: String,
    /// The same, ready to send.
    pub etag_header: HeaderValue,
}

impl Encoded {
    /// A fixed text (a script), encoded once.
    pub fn from_text(text: &str) -> Encoded {
        Encoded::new(text.as_bytes().to_vec())
    }

    pub(crate) fn new(body: Vec<u8>) -> Encoded {
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail.
        let gzip = gz
            .write_all(&body)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let mut brotli = Vec::new();
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            ..Default::default()
        };
        if brotli::BrotliCompress(&mut body.as_slice(), &mut brotli, &params).is_err() {
            brotli.clear();
        }
        Encoded {
            identity: Bytes::from(body),
            gzip: Bytes::from(gzip),
            brotli: Bytes::from(brotli),
            // Hex in quotes is always a valid header value.
            etag_header: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
            etag,
        }
    }
}

/// A widget's output, ready to serve.
#[derive(Debug)]
pub struct Rendered {
    pub html: Encoded,
    pub json: Encoded,
    /// The document's Content-Security-Policy, ready to send.
    pub csp: HeaderValue,
    /// When it was made (app clock): a change stamped after this (less the slack) drops it.
    pub made_at: UnixSeconds,
    /// The first image URL in it expires then: it must be made again before.
    pub valid_until: Option<UnixSeconds>,
}

/// What a public id leads to.
#[derive(Clone, Debug)]
pub enum Served {
    Found(Arc<Rendered>),
    Gone,
    NotFound,
}

/// The per-node cache.
#[derive(Debug, Default)]
pub struct WidgetCache {
    entries: RwLock<HashMap<String, Entry>>,
    /// One turn per widget being rendered: requests that miss the cache together wait for one
    /// rendering instead of each making their own (a CDN purge of a popular widget).
    rendering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TurnState>>>>,
    /// How many times this node has read a widget from the database to render it.
    loads: AtomicU64,
}

/// What a widget's rendering turn remembers: how its last rendering ended when it made nothing
/// to keep, and when, so that those who waited for it share that answer instead of each trying
/// again, one after another (a flood on one unknown address makes one lookup, not one each).
#[derive(Debug, Default)]
pub struct TurnState {
    unkept: Option<(Instant, Unkept)>,
}

/// A rendering that left nothing in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unkept {
    /// It failed (the database, a broken row).
    Failed,
    /// There is no such widget.
    Missing,
}

impl TurnState {
    /// How the last rendering ended, if it ended after `since` and left nothing to serve.
    pub fn unkept_since(&self, since: Instant) -> Option<Unkept> {
        self.unkept
            .and_then(|(at, unkept)| (at >= since).then_some(unkept))
    }

    /// Records a rendering that left nothing to serve, now.
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

#[derive(Clone, Debug)]
enum Entry {
    Found(Arc<Rendered>),
    /// Deleted widgets stay gone; remembered so their embeds cost nothing.
    Gone,
}

impl WidgetCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// What memory holds for `public_id` that may be served at `now`, if anything.
    pub fn fresh(&self, public_id: &str, now: UnixSeconds) -> Option<Served> {
        match self.read().get(public_id) {
            Some(Entry::Found(r)) if r.valid_until.is_none_or(|t| t > now) => {
                Some(Served::Found(r.clone()))
            }
            Some(Entry::Gone) => Some(Served::Gone),
            _ => None,
        }
    }

    fn turns(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<TurnState>>>> {
        self.rendering.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in the turn to render `public_id`: lock it, look again with
    /// [`WidgetCache::fresh`], and render only if still missing.
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

    /// Counts a read of a widget from the database (see [`WidgetCache::loads`]).
    pub fn count_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times this node has read a widget from the database to render it.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Remembers a deleted widget.
    pub fn remember_gone(&self, public_id: &str) {
        self.write().insert(public_id.to_owned(), Entry::Gone);
    }

    /// Keeps a rendering.
    pub fn insert(&self, public_id: &str, rendered: Arc<Rendered>) {
        let mut entries = self.write();
        if entries.len() >= MAX_ENTRIES {
            // Rare: drop the oldest tenth rather than grow without end.
            let mut ages: Vec<(UnixSeconds, String)> = entries
                .iter()
                .filter_map(|(k, v)| match v {
                    Entry::Found(r) => Some((r.made_at, k.clone())),
                    Entry::Gone => None,
                })
                .collect();
            ages.sort();
            for (_, key) in ages.into_iter().take(MAX_ENTRIES / 10) {
                entries.remove(&key);
            }
        }
        entries.insert(public_id.to_owned(), Entry::Found(rendered));
    }

    /// Drops one widget's rendering (after a change made on this node).
    pub fn evict(&self, public_id: &str) {
        self.write().remove(public_id);
    }

    /// Drops the renderings made before (less the clock slack) the given changes of their
    /// widgets. Returns how many were dropped.
    pub fn drop_older(&self, changes: Vec<(String, UnixSeconds)>) -> usize {
        if changes.is_empty() {
            return 0;
        }
        let mut entries = self.write();
        let mut dropped = 0;
        for (public_id, changed_at) in changes {
            let stale = match entries.get(&public_id) {
                Some(Entry::Found(r)) => changed_at >= r.made_at - CLOCK_SLACK_SECS,
                // A deleted widget never comes back; anything else is not held.
                _ => false,
            };
            if stale {
                entries.remove(&public_id);
                dropped += 1;
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
