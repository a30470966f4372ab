//! The two jobs of the image store, as plain functions the workers (`jobs::images`) call.
//!
//! - [`fetch_for_connection`]: every picture of one connection whose original is not stored
//!   yet is fetched, judged by its bytes, stored under its key, and the picture pointed at it,
//!   in one transaction per picture fenced by the job's lease (the connection's row first, as
//!   the lock order wants). A URL past its expiry is not tried; one the CDN refuses as expired
//!   asks for a sync (a fresh URL comes only from the API).
//! - [`make_variants`]: one image's variants, placeholder and colour are made on the image
//!   pool, written to the store, then the image is marked ready and the widgets showing it are
//!   told, fenced by the lease of the image's own job, so no two nodes make it at once.
//!
//! A process killed anywhere in either leaves at most objects no row points at (removed by the
//! maintenance job) and a job that runs again.

use futures_util::StreamExt as _;

use super::fetch::FetchError;
use super::process::{self, Limits, Qualities};
use super::{AVIF_JOB, FETCH_JOB, FIRST_PASS, FORMATS, Format, ImageKey, VARIANTS_JOB};
use crate::clock::UnixSeconds;
use crate::connections::SYNC_JOB;
use crate::db::connections::{self as stored, RowLock};
use crate::db::images::{self as rows, NewImage, Wanted};
use crate::db::jobs::{self, Lease};
use crate::db::{DbError, widget_changes};
use crate::failpoint;
use crate::ids::ConnectionId;
use crate::state::AppState;

/// Pictures handled per run of a fetch job (the job runs again at once for the rest).
const PICTURES_PER_RUN: i64 = 100;
/// A transient failure (a 5xx, a timeout) is tried again after this, doubled per attempt, up to
/// [`MAX_RETRY_SECS`].
const FIRST_RETRY_SECS: i64 = 60;
const MAX_RETRY_SECS: i64 = 6 * 3600;
/// A picture refused for good (not an image, too large) waits for a new URL; it is looked at
/// again after this anyway.
const GIVE_UP_SECS: i64 = 7 * 86_400;
/// A URL the CDN called expired is not asked for again before a sync brought a new one, or
/// this long.
const EXPIRED_RETRY_SECS: i64 = 3600;

/// What one fetch job did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub stored: usize,
    pub failed: usize,
    /// The lease was lost: the job stopped.
    pub stale: bool,
    /// When to run again (`None`: nothing left to fetch).
    pub next_due: Option<UnixSeconds>,
}

/// Fetches the missing originals of connection `id`.
pub async fn fetch_for_connection(
    state: &AppState,
    id: ConnectionId,
    lease: &Lease,
) -> Result<FetchReport, DbError> {
    let now = state.clock.now();
    // Only what widgets show is stored (a widget made later schedules this job again).
    if !crate::db::widgets::shows_connection(&state.db, id).await? {
        return Ok(FetchReport::default());
    }
    let wanted = rows::wanted(&state.db, id, now, PICTURES_PER_RUN).await?;
    let mut report = FetchReport::default();
    let mut want_sync = false;
    let mut cdn_trouble = false;
    let concurrency = state.config.images.fetch_concurrency.max(1) as usize;
    // Each picture is fetched, judged, stored and recorded in its own future, so a slow store
    // or transaction never stalls the other fetches' bodies (their timeouts keep running).
    // None is ever dropped half-way (a future dropped inside its transaction could leave its
    // rows locked until the connection is used again): to stop early, the pictures not started
    // yet are skipped, and the ones under way finish.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pictures: Vec<_> = wanted
        .into_iter()
        .map(|w| {
            let (state, lease, stop) = (state.clone(), lease.clone(), stop.clone());
            async move {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(Picture::Skipped);
                }
                one_picture(&state, id, &lease, &w, now).await
            }
        })
        .collect();
    let mut results = futures_util::stream::iter(pictures).buffer_unordered(concurrency);
    let mut ended: Option<bool> = None;
    let mut first_error = None;
    while let Some(outcome) = results.next().await {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                first_error.get_or_insert(e);
                continue;
            }
        };
        match outcome {
            Picture::Stored => report.stored += 1,
            Picture::Skipped => {}
            Picture::Stale => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                ended.get_or_insert(true);
            }
            Picture::Gone => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                ended.get_or_insert(false);
            }
            Picture::Failed { expired, trouble } => {
                report.failed += 1;
                want_sync |= expired;
                // The CDN is down or unreachable: stop here rather than wait out every
                // picture's timeout; the job comes back when the first retry is due.
                if trouble {
                    cdn_trouble = true;
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
    drop(results);
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(stale) = ended {
        report.stale = stale;
        return Ok(report);
    }
    if want_sync {
        // Only the API hands out a fresh URL.
        jobs::schedule(&state.db, SYNC_JOB, &id.to_string(), now, now).await?;
    }
    report.next_due = if cdn_trouble {
        rows::next_retry(&state.db, id).await?
    } else if rows::any_wanted(&state.db, id, now).await? {
        Some(now)
    } else {
        rows::next_retry(&state.db, id).await?
    };
    Ok(report)
}

/// When a failed picture is tried again (`None`: only with a new URL).
fn retry_after(e: &FetchError, w: &Wanted, now: UnixSeconds) -> Option<UnixSeconds> {
    match e {
        FetchError::Expired => Some(now + EXPIRED_RETRY_SECS),
        e if e.is_transient() => {
            let doublings = w.attempts.clamp(0, 16) as u32;
            Some(now + (FIRST_RETRY_SECS << doublings).min(MAX_RETRY_SECS))
        }
        _ => None,
    }
}

enum Stored {
    Done,
    Stale,
    Gone,
}

/// What became of one picture.
enum Picture {
    Stored,
    /// Not started: the run was stopping.
    Skipped,
    /// Not stored: a sync is wanted (`expired`), or the CDN or store is in trouble.
    Failed {
        expired: bool,
        trouble: bool,
    },
    Stale,
    Gone,
}

/// Fetches, judges, stores and records one picture (or its failure).
async fn one_picture(
    state: &AppState,
    id: ConnectionId,
    lease: &Lease,
    w: &Wanted,
    now: UnixSeconds,
) -> Result<Picture, DbError> {
    let fetched = if w.source_expires_at.is_some_and(|t| t <= now) {
        Err(FetchError::Expired)
    } else {
        state.images.fetcher.fetch(&w.source_url).await
    };
    let outcome = match fetched {
        Ok(original) => store_original(state, id, lease, w, original.bytes).await?,
        Err(e) => Err((e.to_string(), retry_after(&e, w, now))),
    };
    let (message, retry_at) = match outcome {
        Ok(Stored::Done) => return Ok(Picture::Stored),
        Ok(Stored::Stale) => return Ok(Picture::Stale),
        Ok(Stored::Gone) => return Ok(Picture::Gone),
        Err(failure) => failure,
    };
    tracing::warn!(connection = %id, media = %w.media_id, item = %w.item_id,
        error = %message, "an image could not be stored");
    let recorded = crate::db::retry_conflicts("image fetch failure", || async {
        let mut tx = state.db.begin().await?;
        // Lock order: the connection's row, then the fence.
        if stored::lock(&mut tx, id, RowLock::Change).await?.is_none() {
            return Ok(Picture::Gone);
        }
        if !jobs::is_held(&mut tx, lease).await? {
            return Ok(Picture::Stale);
        }
        rows::record_failure(&mut tx, id, w, &message, retry_at, now + GIVE_UP_SECS).await?;
        tx.commit().await?;
        Ok(Picture::Failed {
            expired: message == FetchError::Expired.to_string(),
            trouble: matches!(retry_at, Some(t) if t - now < EXPIRED_RETRY_SECS),
        })
    })
    .await?;
    Ok(recorded)
}

/// Judges, stores and attaches one original.
async fn store_original(
    state: &AppState,
    id: ConnectionId,
    lease: &Lease,
    w: &Wanted,
    bytes: axum::body::Bytes,
) -> Result<Result<Stored, (String, Option<UnixSeconds>)>, DbError> {
    let limits = Limits {
        max_pixels: state.config.images.max_pixels,
    };
    let probed = match process::probe(&bytes, limits) {
        Ok(p) => p,
        Err(refused) => return Ok(Err((refused.to_string(), None))),
    };
    let key = ImageKey::of(&bytes);
    let key_text = key.to_string();
    let existing = rows::get(&state.db, &key_text).await?;
    let known = existing.is_some();
    let ready = existing.is_some_and(|row| row.widths.is_some() || row.failed.is_some());
    if !known
        && let Err(e) = state
            .images
            .store
            .put(&key.original_path(), bytes.clone())
            .await
    {
        let now = state.clock.now();
        return Ok(Err((e.to_string(), Some(now + FIRST_RETRY_SECS))));
    }
    let image = NewImage {
        key: &key_text,
        width: i64::from(probed.width),
        height: i64::from(probed.height),
        source_format: probed.format_name(),
        original_bytes: bytes.len() as i64,
    };
    let outcome = crate::db::retry_conflicts("image attach", || async {
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        // Lock order: the connection's row, then the fence, then the rest, jobs last.
        if stored::lock(&mut tx, id, RowLock::Change).await?.is_none() {
            return Ok(Stored::Gone);
        }
        if !jobs::is_held(&mut tx, lease).await? {
            return Ok(Stored::Stale);
        }
        failpoint::hit(failpoint::IMAGE_ATTACH_TX, &failpoint::key(state, id)).await;
        // The image's job row before its image row, as the variants job takes them (its
        // fence, then the image): a new image's variants are made, a ready one's job is
        // not scheduled.
        if !ready {
            jobs::schedule(&mut tx, VARIANTS_JOB, &key_text, now, now).await?;
        }
        rows::attach(&mut tx, id, w, &image, now).await?;
        tx.commit().await?;
        Ok(Stored::Done)
    })
    .await?;
    Ok(Ok(outcome))
}

/// What one variants job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariantsOutcome {
    /// The variants (WebP, JPEG) are made and shown; the image's AVIF job is scheduled.
    Made {
        variants: usize,
        bytes: usize,
    },
    /// Nothing to do (ready, failed before, or no such image).
    Nothing,
    /// The original cannot be used; the reason is recorded.
    Refused(String),
    /// The original was missing from the store: its pictures are fetched again.
    Lost,
    /// The pictures using the image changed while it was being forgotten: the job runs again.
    Retry,
    Stale,
}

/// Decodes an original and makes its variants in `formats` on the image pool, with the
/// configured limits and qualities (the variants job's and the AVIF job's one way to do it).
async fn make_on_pool(
    state: &AppState,
    original: axum::body::Bytes,
    formats: &'static [Format],
) -> anyhow::Result<Result<process::Made, process::Refused>> {
    let limits = Limits {
        max_pixels: state.config.images.max_pixels,
    };
    let qualities = Qualities::of(&state.config.images);
    state
        .images
        .pool
        .run(move || process::make_in(&original, limits, qualities, formats))
        .await
}

/// Writes every variant made to the store (each object whole or not at all); their bytes.
async fn store_variants(
    state: &AppState,
    key: ImageKey,
    made: &process::Made,
) -> anyhow::Result<usize> {
    let mut bytes = 0;
    for v in &made.variants {
        bytes += v.bytes.len();
        let body = axum::body::Bytes::from(v.bytes.clone());
        state
            .images
            .store
            .put(&key.variant_path(v.width, v.format), body)
            .await?;
    }
    Ok(bytes)
}

/// Makes the variants of image `key`.
pub async fn make_variants(
    state: &AppState,
    key: ImageKey,
    lease: &Lease,
) -> anyhow::Result<VariantsOutcome> {
    let key_text = key.to_string();
    let Some(row) = rows::get(&state.db, &key_text).await? else {
        return Ok(VariantsOutcome::Nothing);
    };
    if row.widths.is_some() || row.failed.is_some() {
        return Ok(VariantsOutcome::Nothing);
    }
    let Some(original) = state.images.store.get(&key.original_path()).await? else {
        return lost(state, &key_text, lease).await;
    };
    let made = match make_on_pool(state, original, &FIRST_PASS).await? {
        Ok(made) => made,
        Err(refused) => {
            let reason = refused.to_string();
            tracing::warn!(image = %key_text, error = %reason, "no variants can be made of an image");
            let recorded = crate::db::retry_conflicts("image failed", || async {
                let mut tx = state.db.begin().await?;
                if !jobs::is_held(&mut tx, lease).await? {
                    return Ok(false);
                }
                rows::mark_failed(&mut tx, &key_text, &reason).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
            return Ok(if recorded {
                VariantsOutcome::Refused(reason)
            } else {
                VariantsOutcome::Stale
            });
        }
    };
    let bytes = store_variants(state, key, &made).await?;
    let widths = made.widths();
    failpoint::hit(failpoint::IMAGE_VARIANTS_STORED, &key_text).await;
    let ready = crate::db::retry_conflicts("image ready", || async {
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        // Lock order: the fence (this image's `image-variants` job), its `image-avif` job row
        // (the next kind), the image, the widget change log last.
        if !jobs::is_held(&mut tx, lease).await? {
            return Ok(false);
        }
        failpoint::hit(failpoint::IMAGE_READY_TX, &key_text).await;
        jobs::schedule(&mut tx, AVIF_JOB, &key_text, now, now).await?;
        let marked = rows::mark_ready(
            &mut tx,
            &key_text,
            i64::from(made.width),
            i64::from(made.height),
            &widths,
            bytes as i64,
            &made.placeholder,
            &made.color,
            now,
        )
        .await?;
        if marked {
            for connection in rows::connections_using(&mut tx, &key_text).await? {
                widget_changes::record_for(&mut tx, connection).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    })
    .await?;
    if !ready {
        return Ok(VariantsOutcome::Stale);
    }
    Ok(VariantsOutcome::Made {
        variants: made.variants.len(),
        bytes,
    })
}

/// What one AVIF job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvifOutcome {
    /// The AVIF variants are made and offered.
    Made { variants: usize, bytes: usize },
    /// AVIF could not be made (the reason is logged and the image settled without it: it
    /// keeps WebP and JPEG and is not tried again).
    Without(String),
    /// Nothing to do (settled already, not ready, failed, or no such image).
    Nothing,
    /// This node's lease ended first; the job's next holder decides.
    Stale,
}

/// The most pixels an AVIF variant may have: Instagram's tallest (1080 × 1350) with room to
/// spare. Taller originals (which the other formats take) keep WebP and JPEG only: this bounds
/// the encoder's memory, which no decoder limit covers.
const AVIF_MAX_PIXELS: u64 = 1080 * 2160;

/// Makes the AVIF variants of a ready image (the widths its variants job made) and offers them.
/// A crash before the record leaves objects no address names yet: the job's next run makes
/// them again over the same paths.
pub async fn make_avif(
    state: &AppState,
    key: ImageKey,
    lease: &Lease,
) -> anyhow::Result<AvifOutcome> {
    let key_text = key.to_string();
    let Some(row) = rows::get(&state.db, &key_text).await? else {
        return Ok(AvifOutcome::Nothing);
    };
    let Some(widths) = row.made_widths() else {
        return Ok(AvifOutcome::Nothing);
    };
    // Settled, failed, or about to be removed (no picture uses it).
    if row.formats.is_some() || row.failed.is_some() || row.unreferenced_since.is_some() {
        return Ok(AvifOutcome::Nothing);
    }
    let largest = u64::from(widths.last().copied().unwrap_or(0));
    let tallest = u64::try_from(row.height)
        .unwrap_or(u64::MAX)
        .saturating_mul(largest)
        / u64::try_from(row.width.max(1)).unwrap_or(1);
    let made = if largest.saturating_mul(tallest) > AVIF_MAX_PIXELS {
        Err(format!(
            "{largest} × {tallest} pixels is more than AVIF is made for"
        ))
    } else {
        match state.images.store.get(&key.original_path()).await? {
            // Its WebP and JPEG still work; fetching the original again for AVIF alone could
            // lose the picture if Instagram's URL has expired.
            None => Err("the original is missing from the store".to_owned()),
            Some(original) => make_on_pool(state, original, &[Format::Avif])
                .await?
                .map_err(|refused| refused.to_string())
                .and_then(|made| {
                    if made.widths() == widths {
                        Ok(made)
                    } else {
                        Err(format!(
                            "the widths made ({:?}) differ from the others' ({widths:?})",
                            made.widths()
                        ))
                    }
                }),
        }
    };
    let (formats, variants, bytes) = match &made {
        Ok(made) => (
            FORMATS.to_vec(),
            made.variants.len(),
            store_variants(state, key, made).await?,
        ),
        Err(reason) => {
            tracing::warn!(image = %key_text, error = %reason, "no AVIF variants can be made of an image; it keeps WebP and JPEG");
            (FIRST_PASS.to_vec(), 0, 0)
        }
    };
    let recorded = crate::db::retry_conflicts("image formats", || async {
        let mut tx = state.db.begin().await?;
        // Lock order: the fence (this image's AVIF job), the image, the widget change log last.
        if !jobs::is_held(&mut tx, lease).await? {
            return Ok(false);
        }
        let added =
            rows::add_formats(&mut tx, &key_text, row.created_at, &formats, bytes as i64).await?;
        if added && variants > 0 {
            for connection in rows::connections_using(&mut tx, &key_text).await? {
                widget_changes::record_for(&mut tx, connection).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    })
    .await?;
    Ok(match (recorded, made) {
        (false, _) => AvifOutcome::Stale,
        (true, Ok(_)) => AvifOutcome::Made { variants, bytes },
        (true, Err(reason)) => AvifOutcome::Without(reason),
    })
}

/// The original is gone from the store: forget the image so its pictures are fetched again.
async fn lost(state: &AppState, key: &str, lease: &Lease) -> anyhow::Result<VariantsOutcome> {
    tracing::warn!(image = %key, "an image's original is missing from the store; fetching it again");
    let using = rows::connections_using(&state.db, key).await?;
    let outcome = crate::db::retry_conflicts("image lost", || async {
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        // Lock order: the connections' rows (ascending), then the fence, then the rest.
        for &connection in &using {
            stored::lock(&mut tx, connection, RowLock::Change).await?;
        }
        if !jobs::is_held(&mut tx, lease).await? {
            return Ok(VariantsOutcome::Stale);
        }
        // A connection that took the image up since it was read is not locked: start over.
        if rows::connections_using(&mut tx, key).await? != using {
            return Ok(VariantsOutcome::Retry);
        }
        for connection in rows::forget(&mut tx, key).await? {
            jobs::schedule(&mut tx, FETCH_JOB, &connection.to_string(), now, now).await?;
        }
        tx.commit().await?;
        Ok(VariantsOutcome::Lost)
    })
    .await?;
    Ok(outcome)
}
