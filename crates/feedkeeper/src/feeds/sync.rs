//! One sync of one connection: fetch its profile and newest posts from Meta, store them, and
//! move the feed's version only if something shown changed.
//!
//! - Pages: Meta's `paging.next` is followed until the feed holds `sync.max_posts`. When a later
//!   page fails (Meta throttles or errs mid-way), what was fetched is kept and that page's
//!   address is stored without its token; the next sync fetches the head again, then continues
//!   from there.
//! - Deletions: a post missing from a complete listing is gone from Instagram (deleted or
//!   archived) and leaves the feed. An incomplete or resumed listing deletes nothing.
//! - Failures follow the client's classification: reconnect-needed goes to the lifecycle at
//!   once (the one place that changes a connection's status); Meta's back-off is honoured (the
//!   whole app pauses on an app-wide throttle); other errors retry with a growing delay, and
//!   after a few in a row the lifecycle is asked to check the login.
//! - Account changes: a new username is stored (the dashboard follows it); an account switched
//!   to personal, or no longer linked to the Facebook Page it was connected through, needs a
//!   reconnect with that reason (the lifecycle does not heal it while the cause remains).
//! - Writes happen in one transaction fenced by the job's lease: a sync that lost its lease (a
//!   stale node) stores nothing.

use std::collections::HashSet;

use crate::clock::{UnixSeconds, wall_ms};
use crate::connections::lifecycle::{self, Applied, Fence, Outcome};
use crate::connections::{self, Actor, LIFECYCLE_JOB};
use crate::db::connections::{self as stored, Connection, LoginKind, RowLock, Status};
use crate::db::images;
use crate::db::jobs::{self, Lease};
use crate::db::posts::{self, FeedRow, PostRow, ProfileRow};
use crate::db::{DbError, meta_pauses};
use crate::failpoint;
use crate::ids::ConnectionId;
use crate::meta::{AccessToken, Action, Media, MediaPage, MetaError, Profile, ReconnectReason};
use crate::state::AppState;

/// After this many failed syncs in a row, the lifecycle is asked to check the login.
const FAILURES_BEFORE_LIFECYCLE_CHECK: i64 = 3;
/// The first retry of a failed sync, doubled per failure up to the normal interval.
const FIRST_RETRY_SECS: i64 = 60;

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Something shown changed: the feed has a new version.
    pub changed: bool,
    /// The listing was complete (deleted posts were removed).
    pub complete: bool,
    /// Posts now in the feed.
    pub posts: usize,
    /// The sync failed (wholly or after some pages); Meta's words.
    pub error: Option<String>,
    /// The lease was lost before storing: nothing was written.
    pub stale: bool,
    /// When the next sync is due (`None`: the connection is gone; the job ends).
    pub next_due: Option<UnixSeconds>,
}

/// Syncs connection `id` under the sync job's `lease`.
pub async fn sync_connection(
    state: &AppState,
    id: ConnectionId,
    lease: &Lease,
    lease_ms: i64,
) -> Result<SyncReport, DbError> {
    let c = match stored::get(&state.db, id).await {
        Ok(c) => c,
        Err(DbError::NotFound) => return Ok(SyncReport::default()),
        Err(e) => return Err(e),
    };
    let now = state.clock.now();
    // Accounts a widget shows are synced more often.
    let shown = crate::db::widgets::shows_connection(&state.db, id).await?;
    if c.token_sealed.is_none() {
        // Its data was deleted: only a new login (which schedules a sync) brings posts back.
        return Ok(SyncReport::default());
    }
    if c.status() == Status::NeedsReconnect {
        // Meta will refuse; the widget keeps the last good posts. Look again later in case the
        // lifecycle finds the login working after all.
        return Ok(SyncReport {
            next_due: Some(next_due(state, &c, shown, None, now)),
            ..Default::default()
        });
    }
    if !jobs::hold(&state.db, lease, wall_ms(), lease_ms).await? {
        return Ok(SyncReport {
            stale: true,
            ..Default::default()
        });
    }
    let feed = posts::feed(&state.db, id).await?;
    // Resuming counts the posts stored by the interrupted sync towards the feed's size.
    let known: HashSet<String> = match feed.as_ref().and_then(|f| f.resume_after.as_ref()) {
        Some(_) => posts::list_posts(&state.db, id, state.config.sync.max_posts as i64)
            .await?
            .into_iter()
            .map(|p| p.media_id)
            .collect(),
        None => HashSet::new(),
    };
    let fetched = match connections::open_token(state, &c) {
        Ok(token) => fetch(state, &c, &token, feed.as_ref(), known).await,
        Err(e) => Err(e),
    };
    match fetched {
        Ok(fetched) => store(state, &c, shown, feed, fetched, lease).await,
        Err(error) => failed(state, &c, shown, None, error, lease).await,
    }
}

/// What the calls to Meta brought back, when at least the profile and the first page came.
struct Fetched {
    profile: Profile,
    items: Vec<Media>,
    /// Every page up to the feed's size (or the end) was fetched from the head in this sync.
    complete: bool,
    /// Where to continue next time, when a later page failed.
    resume_after: Option<String>,
    /// The failure of a later page.
    error: Option<MetaError>,
}

async fn fetch(
    state: &AppState,
    c: &Connection,
    token: &AccessToken,
    feed: Option<&FeedRow>,
    mut known: HashSet<String>,
) -> Result<Fetched, MetaError> {
    let meta = &state.meta;
    let profile = match c.login_kind() {
        LoginKind::Instagram => meta.instagram_profile(token).await?,
        LoginKind::Facebook => match meta.facebook_instagram_profile(token, &c.ig_user_id).await {
            Ok(profile) => profile,
            Err(e) => return Err(page_link_problem(state, c, token, e).await),
        },
    };
    if profile.is_personal() {
        return Err(MetaError::account_changed(
            "graph.instagram.com /me",
            ReconnectReason::NotProfessional,
            format!("Meta reports @{} as a personal account", c.username),
        ));
    }
    let max = state.config.sync.max_posts as usize;
    let page_size = state.config.sync.page_size.min(state.config.sync.max_posts) as u32;
    let first = meta.media_page(token, &c.ig_user_id, page_size).await?;
    // Pages are followed by Meta's own `paging.next` addresses, never rebuilt from cursors.
    let mut next = first.next.clone();
    let mut items = first.items;
    // An earlier sync stopped part-way: continue where it did rather than walking the pages it
    // already stored again.
    let mut resumed = false;
    if let Some(stored) = feed.and_then(|f| f.resume_after.as_deref())
        && next.is_some()
        && items.len() < max
    {
        match meta.resume_point(token, stored) {
            Ok(url) => {
                next = Some(url);
                resumed = true;
            }
            // Not an address of our Meta host any more (configuration changed): start over.
            Err(e) => tracing::warn!(connection = %c.id, error = %e, "sync resume point dropped"),
        }
    }
    if !resumed {
        known.clear();
    }
    known.extend(items.iter().map(|m| m.id.clone()));
    let mut error = None;
    let mut resume_after = None;
    // Whether the next address followed is the stored one.
    let mut at_stored_point = resumed;
    while known.len() < max {
        let Some(url) = next.take() else { break };
        match meta.next_media_page(token, &url).await {
            Ok(page) if page.items.is_empty() => break,
            Ok(page) => {
                next = page.next.clone();
                known.extend(page.items.iter().map(|m| m.id.clone()));
                items.extend(page.items);
            }
            Err(e) => {
                // Keep the address to resume from, unless it was the stored one and Meta
                // refused it outright (a cursor or field it no longer takes): kept, it would
                // fail the same way every time; dropped, the next sync walks from the newest.
                let refused = matches!(e.action, Action::Bug | Action::Gone);
                if !(refused && at_stored_point) {
                    resume_after = Some(MediaPage::without_token(&url));
                } else {
                    tracing::warn!(connection = %c.id, error = %e, "sync resume point refused by Meta; dropped");
                }
                error = Some(e);
                break;
            }
        }
        at_stored_point = false;
    }
    // A resumed listing can overlap what the head returned.
    let mut seen = HashSet::new();
    items.retain(|m| seen.insert(m.id.clone()));
    items.truncate(max);
    Ok(Fetched {
        profile,
        items,
        complete: error.is_none() && !resumed,
        resume_after,
        error,
    })
}

/// A business connection's profile read failed with "no such object" or "no permission": if
/// the Page no longer links this Instagram account (unlinked, switched to personal, deleted),
/// that is the reason, in words a person can act on; otherwise Meta's error stands.
async fn page_link_problem(
    state: &AppState,
    c: &Connection,
    token: &AccessToken,
    error: MetaError,
) -> MetaError {
    if c.fb_page_id.is_none() || !matches!(error.code(), Some(100) | Some(10)) {
        return error;
    }
    match lifecycle::still_linked(state, c, token).await {
        Err(unlinked) if unlinked.reconnect_reason() == Some(ReconnectReason::Unlinked) => unlinked,
        // Still linked, or the Page could not be asked: Meta's error stands.
        _ => error,
    }
}

/// What [`write_feed`] did.
enum Written {
    /// Stored: whether something shown changed, posts that left, the feed now, and when its
    /// first image URL expires.
    Stored {
        changed: bool,
        removed: u64,
        kept: usize,
        urls_expire_at: Option<UnixSeconds>,
        failures: i64,
    },
    /// The lease was lost: nothing was written.
    Stale,
    /// The connection was disconnected while Meta answered.
    Gone,
}

/// Stores what was fetched.
async fn store(
    state: &AppState,
    c: &Connection,
    shown: bool,
    feed: Option<FeedRow>,
    fetched: Fetched,
    lease: &Lease,
) -> Result<SyncReport, DbError> {
    let now = state.clock.now();
    let allowed = super::cdn_patterns(&state.config);
    let profile_row = super::profile_row(&fetched.profile, &c.username, &allowed);
    let rows: Vec<_> = fetched
        .items
        .iter()
        .filter(|m| super::is_post_id(&m.id))
        .map(|m| super::post_row(m, &allowed, now))
        .collect();
    let picture_expiry = super::profile_picture_expiry(&fetched.profile, &allowed);
    let previous = feed.unwrap_or_default();
    let written = crate::db::retry_conflicts("sync store", || {
        write_feed(
            state,
            c,
            shown,
            lease,
            &profile_row,
            &rows,
            &previous,
            &fetched,
            picture_expiry,
        )
    })
    .await?;
    let (changed, removed, kept, urls_expire_at, failures) = match written {
        Written::Stored {
            changed,
            removed,
            kept,
            urls_expire_at,
            failures,
        } => (changed, removed, kept, urls_expire_at, failures),
        Written::Stale => {
            tracing::warn!(connection = %c.id, "sync result discarded: the job's lease was lost");
            return Ok(SyncReport {
                stale: true,
                ..Default::default()
            });
        }
        Written::Gone => return Ok(SyncReport::default()),
    };
    if removed > 0 {
        tracing::info!(connection = %c.id, removed, "posts gone from Instagram left the feed");
    }
    if changed {
        tracing::info!(connection = %c.id, posts = kept, "feed changed");
    }
    let mut report = SyncReport {
        changed,
        complete: fetched.complete,
        posts: kept,
        error: None,
        stale: false,
        next_due: Some(next_due(state, c, shown, urls_expire_at, now)),
    };
    if let Some(error) = fetched.error {
        // Part-way: the pages fetched are stored; the rest follows the failure's rules.
        let after = failed(state, c, shown, Some(failures), error, lease).await?;
        report.error = after.error;
        report.next_due = after.next_due;
    }
    Ok(report)
}

/// The transaction of [`store`], fenced by the lease.
#[allow(clippy::too_many_arguments)]
async fn write_feed(
    state: &AppState,
    c: &Connection,
    shown: bool,
    lease: &Lease,
    profile_row: &ProfileRow,
    rows: &[PostRow],
    previous: &FeedRow,
    fetched: &Fetched,
    picture_expiry: Option<UnixSeconds>,
) -> Result<Written, DbError> {
    let now = state.clock.now();
    let max = state.config.sync.max_posts as i64;
    let mut tx = state.db.begin().await?;
    // Lock order: the connection's row, then the fence, then its other jobs.
    if stored::lock(&mut tx, c.id, RowLock::Change)
        .await?
        .is_none()
    {
        return Ok(Written::Gone);
    }
    if !jobs::is_held(&mut tx, lease).await? {
        return Ok(Written::Stale);
    }
    failpoint::hit(failpoint::SYNC_STORE_TX, &failpoint::key(state, c.id)).await;
    // The newest post before this store: posts after it are news for `feed.updated`.
    let newest_before = posts::list_posts(&mut tx, c.id, max)
        .await?
        .iter()
        .map(|p| p.posted_at)
        .max();
    posts::store_profile(&mut tx, c.id, profile_row, now).await?;
    posts::store_posts(&mut tx, c.id, rows, now).await?;
    let removed = if fetched.complete {
        let keep: Vec<String> = rows.iter().map(|r| r.media_id.clone()).collect();
        posts::delete_posts_except(&mut tx, c.id, &keep).await?
    } else {
        0
    };
    // Older posts than the feed keeps (a resumed listing may reach past the window).
    posts::trim_posts(&mut tx, c.id, max).await?;
    let kept = posts::list_posts(&mut tx, c.id, max).await?;
    let hash = super::content_hash(profile_row, &kept);
    let changed = previous.content_hash != hash;
    let failures = if fetched.error.is_some() {
        previous.failures + 1
    } else {
        0
    };
    let urls_expire_at = super::urls_expire_at(&kept, picture_expiry);
    posts::store_feed(
        &mut tx,
        c.id,
        &FeedRow {
            version: previous.version + i64::from(changed),
            content_hash: hash,
            resume_after: fetched.resume_after.clone(),
            last_complete_at: if fetched.complete {
                Some(now)
            } else {
                previous.last_complete_at
            },
            urls_expire_at,
            failures,
            last_error: fetched.error.as_ref().map(MetaError::message),
            updated_at: if changed { now } else { previous.updated_at },
        },
    )
    .await?;
    // A renamed account shows its new name in the dashboard too.
    stored::mark_synced(
        &mut tx,
        c.id,
        &profile_row.username,
        profile_row.name.as_deref(),
        now,
    )
    .await?;
    if c.status() == Status::Degraded && fetched.error.is_none() {
        // Meta answers again: let the lifecycle confirm the login and heal the status.
        jobs::schedule(&mut tx, LIFECYCLE_JOB, &c.id.to_string(), now, now).await?;
    }
    // The pictures seen: new ones (and pictures of posts that left) for the image store, which
    // fetches them for accounts a widget shows.
    let batch: Vec<String> = rows.iter().map(|r| r.media_id.clone()).collect();
    let sources = super::picture_sources(rows, profile_row);
    images::record_sources(&mut tx, c.id, &sources, &batch).await?;
    if shown && images::any_wanted(&mut tx, c.id, now).await? {
        jobs::schedule(
            &mut tx,
            crate::images::FETCH_JOB,
            &c.id.to_string(),
            now,
            now,
        )
        .await?;
    }
    // `feed.updated` says which posts are new (newer than the newest before; older posts a
    // resumed listing finds, or posts moved into the window by a deletion, are not) and how
    // many were deleted on Instagram; a renewed picture address or a new like count changes
    // the feed's version but is not news for a receiver.
    let new_ids: Vec<&str> = kept
        .iter()
        .filter(|p| newest_before.is_none_or(|newest| p.posted_at > newest))
        .map(|p| p.media_id.as_str())
        .collect();
    if !new_ids.is_empty() || removed > 0 {
        let mut data = crate::webhooks::connection_data(c);
        data["username"] = profile_row.username.clone().into();
        data["posts"] = kept.len().into();
        data["new_posts"] = new_ids.len().into();
        data["new_media_ids"] = new_ids.into();
        data["deleted_posts"] = removed.into();
        data["newest_post_at"] = kept
            .iter()
            .map(|p| p.posted_at)
            .max()
            .map(crate::webhooks::rfc3339)
            .into();
        crate::webhooks::emit(
            &mut tx,
            c.owner_id,
            crate::webhooks::FEED_UPDATED,
            data,
            now,
        )
        .await?;
    }
    // Widgets show the posts and when they were last synced.
    crate::db::widget_changes::record_for(&mut tx, c.id).await?;
    tx.commit().await?;
    Ok(Written::Stored {
        changed,
        removed,
        kept: kept.len(),
        urls_expire_at,
        failures,
    })
}

/// A sync that failed: decide, by Meta's classification, what happens to the connection and when
/// to try again. `counted`: the failures in a row, when the caller already counted this one.
async fn failed(
    state: &AppState,
    c: &Connection,
    shown: bool,
    counted: Option<i64>,
    error: MetaError,
    lease: &Lease,
) -> Result<SyncReport, DbError> {
    let now = state.clock.now();
    let message = error.message();
    tracing::warn!(connection = %c.id, error = %error, "sync failed");
    let failures = match counted {
        Some(failures) => failures,
        None => {
            // Counted under the lease, touching only the failure columns: a stale node never
            // writes back an older feed over a newer one.
            let counted = crate::db::retry_conflicts("sync failure", || async {
                let mut tx = state.db.begin().await?;
                // Lock order: the connection's row, then the fence.
                if stored::lock(&mut tx, c.id, RowLock::Change)
                    .await?
                    .is_none()
                {
                    return Ok(None);
                }
                if !jobs::is_held(&mut tx, lease).await? {
                    return Ok(Some(None));
                }
                let failures = posts::record_failure(&mut tx, c.id, &message, now).await?;
                tx.commit().await?;
                Ok(Some(Some(failures)))
            })
            .await?;
            match counted {
                Some(Some(failures)) => failures,
                Some(None) => {
                    return Ok(SyncReport {
                        stale: true,
                        ..Default::default()
                    });
                }
                // Disconnected meanwhile: nothing left to sync.
                None => return Ok(SyncReport::default()),
            }
        }
    };
    let retry = (FIRST_RETRY_SECS << (failures.clamp(1, 12) - 1))
        .min(state.config.sync.interval_secs as i64);
    let next = match error.action {
        Action::Reconnect { .. } | Action::Operator { .. } => {
            // Meta's final word on this login (or on the app's configuration): the lifecycle
            // records it, opens the incident and tells the owner, as if its own check found it.
            let applied = match lifecycle::apply(
                state,
                c,
                Outcome::Failed(error),
                Actor::Worker,
                Fence::Lease(lease),
            )
            .await
            {
                Ok(applied) => applied,
                Err(DbError::NotFound) => return Ok(SyncReport::default()),
                Err(e) => return Err(e),
            };
            if let Applied::Stale(_) = applied {
                // The login changed meanwhile (renewed, reconnected): let the lifecycle look.
                jobs::schedule(&state.db, LIFECYCLE_JOB, &c.id.to_string(), now, now).await?;
            }
            next_due(state, c, shown, None, now)
        }
        Action::BackOff { until } => {
            if error.code() == Some(4) {
                meta_pauses::pause(&state.db, meta_pauses::APP, until, &message, now).await?;
            }
            until.max(now + FIRST_RETRY_SECS)
        }
        Action::Retry | Action::Bug | Action::Gone => {
            if failures >= FAILURES_BEFORE_LIFECYCLE_CHECK {
                jobs::schedule(&state.db, LIFECYCLE_JOB, &c.id.to_string(), now, now).await?;
            }
            now + retry
        }
    };
    Ok(SyncReport {
        error: Some(message),
        next_due: Some(next),
        ..Default::default()
    })
}

/// When to sync next: the interval (shorter for accounts a widget shows; slower when Meta's
/// usage headers near the limit), spread by up to a tenth so accounts do not align, and before
/// the feed's image URLs expire.
fn next_due(
    state: &AppState,
    c: &Connection,
    shown: bool,
    urls_expire_at: Option<UnixSeconds>,
    now: UnixSeconds,
) -> UnixSeconds {
    let sync = &state.config.sync;
    let mut interval = if shown {
        sync.widget_interval_secs as i64
    } else {
        sync.interval_secs as i64
    };
    let usage = state.meta.usage();
    let busy = [
        Some("app"),
        Some(c.ig_user_id.as_str()),
        c.fb_page_id.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|scope| usage.get(scope))
    .any(|seen| u64::from(seen.percent) >= sync.slow_down_at_percent);
    if busy {
        interval = interval.saturating_mul(4);
    }
    let spread = (interval as f64 * 0.1 * rand::random::<f64>()) as i64;
    let mut due = now + interval - spread;
    if let Some(expires) = urls_expire_at {
        due = due.min(expires - sync.url_renew_margin_secs as i64);
    }
    due.max(now + FIRST_RETRY_SECS)
}
