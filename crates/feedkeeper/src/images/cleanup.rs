//! Removing what no widget shows: images whose last picture went (a deleted post, a deleted
//! connection, purged data) leave the store `images.unused_grace_secs` later (caches may still
//! show their addresses until then), and objects no row knows of (a process killed between
//! storing an original and recording it) are swept once they are old enough that no fetch can
//! still be about to record them. Run by the maintenance job.

use std::collections::HashSet;

use super::{FORMATS, ImageKey};
use crate::db::images as rows;
use crate::state::AppState;

/// Images looked at per run.
const BATCH: i64 = 500;

/// What a clean-up removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanUp {
    /// Images no picture used any more.
    pub unused: usize,
    /// Objects no image row knew of.
    pub orphans: usize,
}

/// Removes unused images, and orphaned objects older than `orphan_age_secs` (wall clock).
pub async fn clean_up(state: &AppState, orphan_age_secs: i64) -> anyhow::Result<CleanUp> {
    let now = state.clock.now();
    let mut report = CleanUp::default();
    rows::unmark_used(&state.db).await?;
    rows::mark_unused(&state.db, now).await?;
    let cutoff = now - state.config.images.unused_grace_secs as i64;
    for image in rows::unused_since(&state.db, cutoff, BATCH).await? {
        // The row goes first (only if still unused): a picture taking the image up again
        // meanwhile keeps it, and a crash after this leaves orphans for the sweep below.
        if !rows::delete_if_unused(&state.db, &image.key).await? {
            continue;
        }
        if let Some(key) = ImageKey::parse(&image.key) {
            let store = &state.images.store;
            let mut paths = vec![key.original_path()];
            for width in image.made_widths().unwrap_or_default() {
                for format in FORMATS {
                    paths.push(key.variant_path(width, format));
                }
            }
            for path in paths {
                // The same bytes fetched again since the row went: the new row owns the
                // objects (the orphan sweep removes what is left if it goes too).
                if rows::exists(&state.db, &image.key).await? {
                    break;
                }
                store.delete(&path).await?;
            }
        }
        report.unused += 1;
    }
    report.orphans = sweep_orphans(state, orphan_age_secs).await?;
    Ok(report)
}

/// Deletes objects whose key has no image row, when older than `min_age_secs`. Each is looked
/// at again just before it goes: an object written since the listing (the same bytes stored
/// again, a variant being made) stays.
async fn sweep_orphans(state: &AppState, min_age_secs: i64) -> anyhow::Result<usize> {
    let store = &state.images.store;
    let mut with_row: HashSet<String> = HashSet::new();
    let mut removed = 0;
    for prefix in ["originals", "variants"] {
        for object in store.list(prefix).await? {
            let old_enough =
                |modified: i64| crate::clock::wall_ms() / 1000 - modified >= min_age_secs;
            if !old_enough(object.last_modified) {
                continue;
            }
            let key = object.path.parts().nth(1).map(|p| p.as_ref().to_owned());
            if let Some(key) = key.as_deref().filter(|k| ImageKey::parse(k).is_some()) {
                if with_row.contains(key) {
                    continue;
                }
                // Only a row seen is remembered: one not seen is asked for again each time.
                if rows::exists(&state.db, key).await? {
                    with_row.insert(key.to_owned());
                    continue;
                }
            }
            match store.modified(&object.path).await? {
                Some(modified) if old_enough(modified) => {}
                _ => continue,
            }
            if let Some(key) = key.as_deref().filter(|k| ImageKey::parse(k).is_some())
                && rows::exists(&state.db, key).await?
            {
                continue;
            }
            store.delete(&object.path).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
