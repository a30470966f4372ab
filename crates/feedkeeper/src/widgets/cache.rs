//! Rendered widgets in memory: each widget's HTML and JSON, made once, stored with gzip and
//! brotli copies and an ETag, and served without touching the database.
//!
//! Staying fresh on many nodes, without a query per request: every node polls once a second for
//! widgets whose settings, feed or account health changed recently (`db::widgets::
//! changed_since`, an indexed look at `updated_at`) and drops those renderings; the next request
//! makes them again. The look-back window is far longer than a poll, so a change committed late,
//! or stamped by a node whose clock is a little behind, is still seen. A rendering also ends
//! before the first image URL in it expires.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::{Lookup, render};
use crate::clock::UnixSeconds;
use crate::db::DbError;
use crate::state::AppState;

/// How often each node looks for changed widgets.
pub const POLL: Duration = Duration::from_secs(1);
/// How far back each look reaches (late commits, clock differences between nodes).
const LOOK_BACK_SECS: i64 = 30;
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

    fn new(body: Vec<u8>) -> Encoded {
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
    made_at: UnixSeconds,
    /// The first image URL in it expires then: it must be made again before.
    valid_until: Option<UnixSeconds>,
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

    /// The rendering for `public_id`: from memory, or made now (and kept).
    pub async fn get(&self, state: &AppState, public_id: &str) -> Result<Served, DbError> {
        let now = state.clock.now();
        match self.read().get(public_id) {
            Some(Entry::Found(r)) if r.valid_until.is_none_or(|t| t > now) => {
                return Ok(Served::Found(r.clone()));
            }
            Some(Entry::Gone) => return Ok(Served::Gone),
            _ => {}
        }
        let made_at = now;
        let served = match super::load(state, public_id).await? {
            Lookup::NotFound => return Ok(Served::NotFound),
            Lookup::Gone => {
                self.write().insert(public_id.to_owned(), Entry::Gone);
                return Ok(Served::Gone);
            }
            Lookup::Found(data) => {
                let doc = render::document(&state.config, &data)
                    .map_err(|e| DbError::Other(sqlx::Error::Decode(Box::new(e))))?;
                let json = render::json(&data)
                    .map_err(|e| DbError::Other(sqlx::Error::Decode(Box::new(e))))?;
                // Compression at quality 11 takes a few milliseconds: off the async threads.
                let rendered = tokio::task::spawn_blocking(move || Rendered {
                    html: Encoded::new(doc.html.into_bytes()),
                    json: Encoded::new(json.into_bytes()),
                    csp: HeaderValue::from_str(&doc.csp)
                        .unwrap_or(HeaderValue::from_static("default-src 'none'")),
                    made_at,
                    valid_until: data.urls_expire_at,
                })
                .await
                .map_err(|e| DbError::Other(sqlx::Error::Decode(Box::new(e))))?;
                Arc::new(rendered)
            }
        };
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
        entries.insert(public_id.to_owned(), Entry::Found(served.clone()));
        Ok(Served::Found(served))
    }

    /// Drops one widget's rendering (after a change made on this node).
    pub fn evict(&self, public_id: &str) {
        self.write().remove(public_id);
    }

    /// Drops renderings older than the changes the database reports since `now - LOOK_BACK`.
    /// Returns how many were dropped.
    pub async fn drop_changed(&self, state: &AppState) -> Result<usize, DbError> {
        let since = state.clock.now() - LOOK_BACK_SECS;
        let changed = crate::db::widgets::changed_since(&state.db, since).await?;
        if changed.is_empty() {
            return Ok(0);
        }
        let mut entries = self.write();
        let mut dropped = 0;
        for (public_id, changed_at) in changed {
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
        Ok(dropped)
    }
}

/// Keeps this node's cache fresh until `shutdown` turns true.
pub fn spawn_poller(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = state.widgets.drop_changed(&state).await {
                tracing::warn!(error = %e, "could not look for changed widgets");
            }
        }
    })
}
