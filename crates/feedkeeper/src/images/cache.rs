//! Serving variants: from this node's memory (`images.cache_bytes`, least recently used out),
//! else from the store through a few slots (`images.serve_concurrency`) within
//! `images.serve_timeout_ms`. A variant never changes once made, so what is in memory is
//! always right; an address nobody made is answered "not found" by the store, never by a fetch
//! from anywhere else, and never through the database.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::Semaphore;

use super::store::ImageStore;
use super::{Format, ImageKey};
use crate::config::ImagesConfig;

/// What a request for a variant gets.
pub enum Served {
    Found(Bytes),
    NotFound,
    /// The store's slots stayed busy, or it failed: try again shortly.
    Busy,
}

type VariantId = (ImageKey, u32, Format);

/// The node's variants in memory and its slots for reading the store.
pub struct ImageCache {
    variants: moka::sync::Cache<VariantId, Bytes>,
    /// Recent addresses the store did not have (a scanner's, or a variant being made): a miss
    /// costs the store once every ten seconds per address.
    missing: moka::sync::Cache<VariantId, ()>,
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl std::fmt::Debug for ImageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCache")
            .field("entries", &self.variants.entry_count())
            .finish()
    }
}

impl ImageCache {
    pub fn new(config: &ImagesConfig) -> ImageCache {
        ImageCache {
            variants: moka::sync::Cache::builder()
                .max_capacity(config.cache_bytes)
                .weigher(|_, bytes: &Bytes| {
                    u32::try_from(bytes.len().saturating_add(64)).unwrap_or(u32::MAX)
                })
                // A removed image (a purged account's) leaves memory within the hour.
                .time_to_live(Duration::from_secs(3600))
                .build(),
            missing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
            slots: Arc::new(Semaphore::new(
                usize::try_from(config.serve_concurrency).unwrap_or(16),
            )),
            wait: Duration::from_millis(config.serve_timeout_ms),
        }
    }

    /// What memory alone says of the variant: its bytes, or that the store lately had none
    /// (`None`: ask the store, with [`ImageCache::get_later`]).
    pub fn get_now(&self, key: ImageKey, width: u32, format: Format) -> Option<Served> {
        let id = (key, width, format);
        if let Some(bytes) = self.variants.get(&id) {
            return Some(Served::Found(bytes));
        }
        self.missing.contains_key(&id).then_some(Served::NotFound)
    }

    /// The variant from the store, when [`ImageCache::get_now`] had no answer.
    pub async fn get_later(
        &self,
        store: &ImageStore,
        key: ImageKey,
        width: u32,
        format: Format,
    ) -> Served {
        // Boxed: the store's futures are kilobytes, and the serving threads' future for the hot
        // routes has room for this path; inline, every answer from memory would be that size.
        Box::pin(self.read(store, (key, width, format))).await
    }

    /// [`ImageCache::get_later`]: through a slot, within the wait.
    async fn read(&self, store: &ImageStore, id: VariantId) -> Served {
        let (key, width, format) = id;
        let read = async {
            let _slot = self.slots.acquire().await.ok()?;
            Some(store.get(&key.variant_path(width, format)).await)
        };
        match tokio::time::timeout(self.wait, read).await {
            Ok(Some(Ok(Some(bytes)))) => {
                self.variants.insert(id, bytes.clone());
                Served::Found(bytes)
            }
            Ok(Some(Ok(None))) => {
                // An AVIF variant may be missing only until its pass is recorded (seconds after
                // the image's other addresses are public): its absence is not remembered.
                if format != Format::Avif {
                    self.missing.insert(id, ());
                }
                Served::NotFound
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "an image could not be read from the store");
                Served::Busy
            }
            Ok(None) | Err(_) => Served::Busy,
        }
    }
}
