//! Where originals and variants live: a folder in the data directory (one node) or an
//! S3-compatible bucket (several nodes), both through `object_store`.
//!
//! Every write is whole or absent: the folder backend writes a staging file and renames it, S3
//! makes an object visible only when its upload completed. So a process killed half-way leaves
//! no half-written image to serve; at most an object no row knows of, which the maintenance job
//! removes ([`ImageStore::list`]).

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::config::{Config, ImageStoreLocation};

/// A store failure, with the store's words.
#[derive(Debug, thiserror::Error)]
#[error("image store: {0}")]
pub struct StoreError(String);

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// An object as listed.
#[derive(Clone, Debug)]
pub struct Listed {
    pub path: Path,
    pub size: u64,
    /// Unix seconds.
    pub last_modified: i64,
}

/// The image store, cheap to clone.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<dyn ObjectStore>,
    /// Where it is, for people (`feedkeeper doctor`, logs).
    pub describe: Arc<str>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("describe", &self.describe)
            .finish()
    }
}

impl ImageStore {
    /// Opens the store the config names (creating the folder when it is one).
    pub fn open(config: &Config) -> anyhow::Result<ImageStore> {
        let images = &config.images;
        match images.location() {
            ImageStoreLocation::DataDir => {
                // Created by the first write (commands that never store an image, such as
                // `migrate` on PostgreSQL, leave no folder behind).
                let dir = std::path::absolute(config.storage.data_dir.join("images"))?;
                let prefix = Path::from_absolute_path(&dir)?;
                let store = object_store::prefix::PrefixStore::new(
                    object_store::local::LocalFileSystem::new(),
                    prefix,
                );
                Ok(ImageStore {
                    inner: Arc::new(store),
                    describe: Arc::from(format!("folder {}", dir.display())),
                })
            }
            ImageStoreLocation::S3 { bucket, prefix } => {
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket);
                if !images.s3_endpoint.is_empty() {
                    builder = builder.with_endpoint(images.s3_endpoint.trim_end_matches('/'));
                }
                if !images.s3_region.is_empty() {
                    builder = builder.with_region(&images.s3_region);
                }
                if !images.s3_access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&images.s3_access_key_id)
                        .with_secret_access_key(images.s3_secret_access_key.expose());
                }
                builder = builder.with_allow_http(images.s3_allow_http);
                let store = builder.build()?;
                let describe = if prefix.is_empty() {
                    format!("s3://{bucket}")
                } else {
                    format!("s3://{bucket}/{prefix}")
                };
                let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
                };
                Ok(ImageStore {
                    inner,
                    describe: Arc::from(describe),
                })
            }
        }
    }

    /// Writes an object whole (replacing one of the same name, which for a content-addressed
    /// path holds the same bytes).
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads an object; `None` when there is none.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(path).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        match self.inner.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// When an object was last written (Unix seconds); `None` when there is none.
    pub async fn modified(&self, path: &Path) -> Result<Option<i64>, StoreError> {
        match self.inner.head(path).await {
            Ok(meta) => Ok(Some(meta.last_modified.timestamp())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an object; one already gone is fine.
    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix` (`originals`, `variants`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let prefix = Path::from(prefix);
        let found: Vec<_> = self.inner.list(Some(&prefix)).try_collect().await?;
        Ok(found
            .into_iter()
            .map(|meta| Listed {
                path: meta.location,
                size: meta.size,
                last_modified: meta.last_modified.timestamp(),
            })
            .collect())
    }
}
