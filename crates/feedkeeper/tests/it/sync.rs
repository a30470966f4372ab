//! The sync worker against the simulator: every media shape, both login families, paging and
//! resuming, deletions and edits, quiet syncs, outages, throttling, revocation, and image URLs
//! renewed before they expire.

use feedkeeper::connections::SYNC_JOB;
use feedkeeper::db::connections::{Connection, Status};
use feedkeeper::db::jobs;
use feedkeeper::db::posts::{self, FeedRow, PostRow};
use feedkeeper::feeds;
use meta_sim::{AccountEvent, ChildKind, MediaKind, NewAccount, NewMedia};

use crate::lifecycle::World;

async fn feed(w: &World, c: &Connection) -> FeedRow {
    posts::feed(&w.state.db, c.id)
        .await
        .unwrap()
        .expect("the connection was synced")
}

async fn stored_posts(w: &World, c: &Connection) -> Vec<PostRow> {
    posts::list_posts(&w.state.db, c.id, 1000).await.unwrap()
}

/// Makes the connection's sync due now and runs every due job once.
async fn sync_now(w: &World, c: &Connection) {
    let now = w.state.clock.now();
    jobs::schedule(&w.state.db, SYNC_JOB, &c.id.to_string(), now, now)
        .await
        .unwrap();
    w.pass().await;
}

async fn sync_due_at(w: &World, c: &Connection) -> i64 {
    jobs::get(&w.state.db, SYNC_JOB, &c.id.to_string())
        .await
        .unwrap()
        .due_at
}

fn post(kind: MediaKind, caption: Option<&str>) -> NewMedia {
    NewMedia {
        kind,
        caption: caption.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_media_shape_is_stored_and_a_quiet_sync_changes_nothing() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    w.sim
        .create_account(NewAccount {
            username: "shapes".into(),
            name: Some("Shapes & Co".into()),
            biography: Some("We post everything".into()),
            website: Some("https://shapes.example".into()),
            followers_count: Some(1234),
            ..Default::default()
        })
        .unwrap();
    let mut posted = Vec::new();
    for (i, new) in [
        post(MediaKind::Image, Some("An image #bread @baker")),
        post(MediaKind::Video, Some("A video")),
        post(MediaKind::Reels, Some("A reel")),
        NewMedia {
            children: vec![ChildKind::Video, ChildKind::Image],
            ..post(MediaKind::CarouselAlbum, Some("A carousel"))
        },
        NewMedia {
            copyrighted: true,
            ..post(MediaKind::Reels, Some("Licensed music"))
        },
        post(MediaKind::Image, None),
    ]
    .into_iter()
    .enumerate()
    {
        let new = NewMedia {
            timestamp: Some(w.sim.now() - 3600 * (10 - i as i64)),
            ..new
        };
        posted.push(w.sim.post_media("shapes", new).unwrap());
    }
    // The connect schedules a sync at once: the first pass fetches the feed.
    let c = w.connect_instagram(owner, "shapes").await;
    w.pass().await;

    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 6, "{stored:#?}");
    // Newest first.
    assert_eq!(stored[0].media_id, posted[5].id);
    let by_id = |id: &str| stored.iter().find(|p| p.media_id == id).unwrap();
    let image = by_id(&posted[0].id);
    assert_eq!(image.media_type, "IMAGE");
    assert_eq!(image.caption.as_deref(), Some("An image #bread @baker"));
    assert!(feeds::display_image(image).is_some());
    assert!(
        image
            .permalink
            .as_deref()
            .unwrap()
            .starts_with("https://www.instagram.com/")
    );
    let reel = by_id(&posted[2].id);
    assert_eq!(
        (reel.media_type.as_str(), reel.product_type.as_deref()),
        ("VIDEO", Some("REELS"))
    );
    assert_eq!(
        feeds::display_image(reel),
        reel.thumbnail_url.as_deref(),
        "the poster"
    );
    let album = by_id(&posted[3].id);
    assert_eq!(album.children.len(), 2);
    assert_eq!(album.children[0].media_type, "VIDEO");
    assert!(feeds::display_image(album).is_some());
    let withheld = by_id(&posted[4].id);
    assert_eq!(withheld.media_url, None, "Meta withholds licensed media");
    assert_eq!(by_id(&posted[5].id).caption, None);
    assert!(stored.iter().all(|p| p.urls_expire_at.is_some()));

    let profile = posts::profile(&w.state.db, c.id).await.unwrap().unwrap();
    assert_eq!(profile.username, "shapes");
    assert_eq!(profile.name.as_deref(), Some("Shapes & Co"));
    assert_eq!(profile.biography.as_deref(), Some("We post everything"));
    assert_eq!(profile.followers_count, Some(1234));
    assert_eq!(profile.media_count, Some(6));
    let first = feed(&w, &c).await;
    assert_eq!(first.version, 1);
    assert!(first.last_complete_at.is_some());
    assert_eq!(w.reload(&c).await.last_sync_at, Some(w.state.clock.now()));

    // Nothing changed on Instagram (and the CDN hands out the same URLs): same version.
    let calls = w.sim.requests(None).len();
    sync_now(&w, &c).await;
    assert!(w.sim.requests(None).len() > calls, "it did ask Meta");
    assert_eq!(feed(&w, &c).await.version, 1);

    // An edit, a deletion and a new post each move the version once per sync.
    w.sim
        .edit_caption(&posted[0].id, Some("Edited".into()))
        .unwrap();
    w.sim.delete_media(&posted[1].id).unwrap();
    sync_now(&w, &c).await;
    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 5);
    assert!(
        stored.iter().all(|p| p.media_id != posted[1].id),
        "deleted on Instagram"
    );
    assert_eq!(
        stored
            .iter()
            .find(|p| p.media_id == posted[0].id)
            .unwrap()
            .caption
            .as_deref(),
        Some("Edited")
    );
    assert_eq!(feed(&w, &c).await.version, 2);

    // Disconnecting removes the feed with the connection.
    feedkeeper::connections::disconnect(&w.state, c.id)
        .await
        .unwrap();
    assert!(stored_posts(&w, &c).await.is_empty());
    assert!(posts::feed(&w.state.db, c.id).await.unwrap().is_none());
}

#[tokio::test]
async fn business_connections_sync_through_the_page_token_on_the_facebook_host() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_facebook(owner, "fb_shop").await;
    w.sim
        .post_media("fb_shop", post(MediaKind::Image, Some("From the Page")))
        .unwrap();
    w.pass().await;
    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert!(
        stored
            .iter()
            .any(|p| p.caption.as_deref() == Some("From the Page"))
    );
    let hosts: Vec<String> = w
        .sim
        .requests(None)
        .iter()
        .filter(|r| r.path.ends_with("/media"))
        .map(|r| r.host.clone())
        .collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| h == "graph.facebook.com"),
        "{hosts:?}"
    );
    assert_eq!(
        posts::profile(&w.state.db, c.id)
            .await
            .unwrap()
            .unwrap()
            .username,
        "fb_shop"
    );
}

/// Media calls to graph hosts, with whether they asked for `alt_text` and their status.
fn media_calls(w: &World, since: Option<u64>) -> Vec<(bool, Option<u16>)> {
    w.sim
        .requests(since)
        .iter()
        .filter(|r| r.path.ends_with("/media"))
        .map(|r| (r.query.contains("alt_text"), r.status))
        .collect()
}

#[tokio::test]
async fn a_meta_that_does_not_know_a_field_costs_one_call_not_the_feed() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    let with_alt = NewMedia {
        alt_text: Some("A loaf on a board".into()),
        ..post(MediaKind::Image, Some("Bread"))
    };
    w.sim
        .create_account(NewAccount {
            username: "older_meta".into(),
            website: Some("https://older.example".into()),
            ..Default::default()
        })
        .unwrap();
    w.sim.post_media("older_meta", with_alt.clone()).unwrap();
    // First, the Meta we were built for: alt text arrives.
    let c = w.connect_instagram(owner, "older_meta").await;
    w.pass().await;
    let stored = stored_posts(&w, &c).await;
    assert!(
        stored
            .iter()
            .any(|p| p.alt_text.as_deref() == Some("A loaf on a board")),
        "{stored:#?}"
    );

    // Then a Meta (host, version) that does not know the fields: one whole call refused each.
    w.sim
        .patch_settings(&serde_json::json!({ "unknown_fields": ["alt_text", "website"] }))
        .unwrap();
    w.sim
        .post_media("older_meta", post(MediaKind::Image, Some("Rolls")))
        .unwrap();
    let seq = w.sim.requests(None).last().map(|r| r.seq);
    sync_now(&w, &c).await;
    assert_eq!(
        media_calls(&w, seq),
        [(true, Some(400)), (false, Some(200))],
        "refused once, then asked without it"
    );
    let stored = stored_posts(&w, &c).await;
    assert!(stored.iter().any(|p| p.caption.as_deref() == Some("Rolls")));
    assert!(stored.iter().all(|p| p.alt_text.is_none()), "{stored:#?}");
    assert_eq!(
        w.reload(&c).await.status(),
        Status::Active,
        "nobody is asked to reconnect"
    );
    let profile = posts::profile(&w.state.db, c.id).await.unwrap().unwrap();
    assert_eq!(profile.username, "older_meta");
    assert_eq!(profile.website, None, "asked without it");

    // Remembered: the next sync asks without them straight away.
    let seq = w.sim.requests(None).last().map(|r| r.seq);
    sync_now(&w, &c).await;
    assert_eq!(media_calls(&w, seq), [(false, Some(200))]);
    let profile_calls: Vec<Option<u16>> = w
        .sim
        .requests(seq)
        .iter()
        .filter(|r| r.query.contains("followers_count"))
        .map(|r| r.status)
        .collect();
    assert_eq!(profile_calls, [Some(200)]);

    // The Facebook host learns for itself.
    let business = w.connect_facebook(owner, "older_fb").await;
    w.pass().await;
    let profile = posts::profile(&w.state.db, business.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.username, "older_fb");
    assert!(!stored_posts(&w, &business).await.is_empty());
}

/// A world keeping 60 posts in pages of 25, and a connection to an account with 80 posts.
async fn paged_connection(username: &str) -> (World, Connection) {
    let w = World::with(|c| {
        c.sync.max_posts = 60;
        c.sync.page_size = 25;
    })
    .await;
    let owner = w.user("owner@example.com").await;
    w.sim
        .create_account(NewAccount {
            username: username.into(),
            posts: 80,
            ..Default::default()
        })
        .unwrap();
    let c = w.connect_instagram(owner, username).await;
    (w, c)
}

/// Sets Meta's per-account budget so that `username` has `more` Graph calls left today (the
/// data calls already made about it count; token exchanges do not), and returns the settings
/// for later changes.
fn budget_for_more_calls(w: &World, username: &str, more: u32) -> meta_sim::Settings {
    let made = w
        .sim
        .requests(None)
        .iter()
        .filter(|r| {
            r.account.as_deref() == Some(username)
                && r.host.starts_with("graph.")
                && !r.path.contains("access_token")
        })
        .count() as u32;
    let mut settings = w.sim.settings();
    settings.ig_account_calls_per_day = made + more;
    w.sim.set_settings(settings.clone()).unwrap();
    settings
}

#[tokio::test]
async fn a_stored_resume_point_meta_refuses_is_dropped_not_retried_forever() {
    let (w, c) = paged_connection("refused").await;
    // Cut the first sync short after one page (the budget runs out), so a page address with
    // today's fields is stored.
    let mut settings = budget_for_more_calls(&w, "refused", 2);
    w.pass().await;
    let stored_point = feed(&w, &c).await.resume_after.expect("a resume point");
    assert!(stored_point.contains("alt_text"), "{stored_point}");

    // Meta now refuses a field that address asks for: the head adapts, the stored address is
    // refused once and dropped.
    settings.ig_account_calls_per_day = 1000;
    settings.unknown_fields = vec!["alt_text".into()];
    w.sim.set_settings(settings).unwrap();
    w.advance(25 * 3600);
    let seq = w.sim.requests(None).last().map(|r| r.seq);
    sync_now(&w, &c).await;
    assert_eq!(
        media_calls(&w, seq),
        [(true, Some(400)), (false, Some(200)), (true, Some(400))]
    );
    assert_eq!(feed(&w, &c).await.resume_after, None, "dropped");

    // The next sync walks from the newest posts and completes.
    let seq = w.sim.requests(None).last().map(|r| r.seq);
    sync_now(&w, &c).await;
    assert_eq!(
        media_calls(&w, seq),
        [(false, Some(200)), (false, Some(200)), (false, Some(200))]
    );
    let done = feed(&w, &c).await;
    assert!(done.last_complete_at.is_some());
    assert_eq!(done.failures, 0);
    assert_eq!(stored_posts(&w, &c).await.len(), 60);
}

#[tokio::test]
async fn pages_are_followed_and_a_sync_cut_short_keeps_its_pages_and_resumes() {
    let (w, c) = paged_connection("prolific").await;
    // Meta's per-account budget runs out after the sync's profile and two pages (the connect's
    // own calls about the account count too).
    let mut settings = budget_for_more_calls(&w, "prolific", 3);
    let budget_start = w.sim.requests(None).len();
    w.pass().await;
    let partial = feed(&w, &c).await;
    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 50, "the two pages fetched are kept");
    let resume = partial.resume_after.clone().expect("where to resume");
    assert!(
        resume.contains("after=") && !resume.contains("access_token"),
        "Meta's next address, stored without the token: {resume}"
    );
    assert_eq!(partial.last_complete_at, None);
    assert_eq!(partial.failures, 1);
    assert!(w.sim.requests(None).len() > budget_start);
    // Throttled: the next sync waits for Meta, and the connection is not marked broken.
    assert!(sync_due_at(&w, &c).await > w.state.clock.now() + 60);
    assert_eq!(w.reload(&c).await.status(), Status::Active);

    // A day later the budget is back: the head again, then on from where it stopped.
    settings.ig_account_calls_per_day = 1000;
    w.sim.set_settings(settings).unwrap();
    w.advance(25 * 3600);
    let before = w.sim.requests(None).len();
    sync_now(&w, &c).await;
    let media_calls: Vec<String> = w.sim.requests(None)[before..]
        .iter()
        .filter(|r| r.path.ends_with("/media"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(
        media_calls.len(),
        2,
        "the head, then straight to the stored page: {media_calls:?}"
    );
    assert!(media_calls[1].contains("after="), "{media_calls:?}");
    let resumed = feed(&w, &c).await;
    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 60);
    assert_eq!(resumed.resume_after, None);
    assert_eq!(resumed.failures, 0);
    let newest: Vec<String> = w
        .sim
        .list_media("prolific")
        .unwrap()
        .into_iter()
        .take(60)
        .map(|m| m.id)
        .collect();
    let kept: Vec<String> = stored.iter().map(|p| p.media_id.clone()).collect();
    assert_eq!(kept, newest, "exactly the 60 newest, newest first");

    // A complete sync keeps the window: the oldest fall out when new posts arrive.
    for _ in 0..3 {
        w.sim
            .post_media("prolific", post(MediaKind::Image, Some("fresh")))
            .unwrap();
    }
    sync_now(&w, &c).await;
    let stored = stored_posts(&w, &c).await;
    assert_eq!(stored.len(), 60);
    assert_eq!(stored[0].caption.as_deref(), Some("fresh"));
    assert!(feed(&w, &c).await.last_complete_at.is_some());
}

#[tokio::test]
async fn outages_and_revocations_keep_the_last_good_posts() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "steady").await;
    w.pass().await;
    let good = stored_posts(&w, &c).await;
    assert_eq!(good.len(), 1);
    let version = feed(&w, &c).await.version;

    // Meta is down: nothing lost, retried soon, the connection keeps its status.
    w.sim
        .set_outage(meta_sim::Outage {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    sync_now(&w, &c).await;
    let down = feed(&w, &c).await;
    assert_eq!(down.failures, 1);
    assert!(down.last_error.is_some());
    assert_eq!(down.version, version);
    assert_eq!(stored_posts(&w, &c).await, good);
    let retry = sync_due_at(&w, &c).await - w.state.clock.now();
    assert!((60..=120).contains(&retry), "{retry}");
    w.sim.clear_outage();
    sync_now(&w, &c).await;
    assert_eq!(feed(&w, &c).await.failures, 0);

    // The password changes: the sync hands Meta's answer to the lifecycle at once, and the
    // widget keeps the last good posts.
    w.sim
        .apply_event("steady", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.sim
        .post_media("steady", post(MediaKind::Image, Some("unseen")))
        .unwrap();
    sync_now(&w, &c).await;
    let now = w.reload(&c).await;
    assert_eq!(now.status(), Status::NeedsReconnect);
    assert_eq!(now.reason.as_deref(), Some("password_changed"));
    assert!(w.open_incident(&c).await.is_some());
    assert_eq!(stored_posts(&w, &c).await, good);
    // While it needs reconnecting, syncs do not call Meta.
    let calls = w.sim.requests(None).len();
    sync_now(&w, &c).await;
    assert_eq!(w.sim.requests(None).len(), calls);
}

#[tokio::test]
async fn image_urls_are_renewed_before_they_expire() {
    let w = World::with(|c| {
        // Far longer than a CDN URL lives: the URLs' expiry must set the pace.
        c.sync.interval_secs = 7 * 86_400;
    })
    .await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "fading").await;
    w.pass().await;
    let first = feed(&w, &c).await;
    let expires = first.urls_expire_at.expect("the simulator's URLs carry oe");
    let margin = w.state.config.sync.url_renew_margin_secs as i64;
    let due = sync_due_at(&w, &c).await;
    assert!(due <= expires - margin, "due {due}, URLs expire {expires}");
    assert!(due > w.state.clock.now());

    // At that time, the sync fetches fresh URLs: the feed never holds an expired one.
    w.advance(due - w.state.clock.now());
    w.pass().await;
    let renewed = feed(&w, &c).await;
    assert!(renewed.urls_expire_at.unwrap() > expires, "{renewed:?}");
    assert_eq!(renewed.version, first.version + 1, "new URLs are a change");
    assert!(
        stored_posts(&w, &c)
            .await
            .iter()
            .all(|p| p.urls_expire_at.unwrap() > w.state.clock.now())
    );
}

#[tokio::test]
async fn account_changes_end_in_a_clear_status_and_never_in_a_loop() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;

    // Renamed on Instagram: the feed and the dashboard follow the new name; nothing breaks.
    let renamed = w.connect_instagram(owner, "old_name").await;
    w.pass().await;
    w.sim
        .apply_event(
            "old_name",
            AccountEvent::UsernameChanged {
                username: "new_name".into(),
            },
        )
        .await
        .unwrap();
    sync_now(&w, &renamed).await;
    let now = w.reload(&renamed).await;
    assert_eq!(
        (now.username.as_str(), now.status()),
        ("new_name", Status::Active)
    );
    let profile = posts::profile(&w.state.db, renamed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.username, "new_name");

    // Switched to a personal account: needs reconnecting, saying why; the posts stay; later
    // checks neither call Meta for posts nor flip it back to active.
    let personal = w.connect_instagram(owner, "went_personal").await;
    w.pass().await;
    let kept = stored_posts(&w, &personal).await;
    w.sim
        .apply_event("went_personal", AccountEvent::SwitchedToPersonal)
        .await
        .unwrap();
    sync_now(&w, &personal).await;
    let now = w.reload(&personal).await;
    assert_eq!(now.status(), Status::NeedsReconnect);
    assert_eq!(now.reason.as_deref(), Some("not_professional"));
    assert_eq!(stored_posts(&w, &personal).await, kept);
    let reprobe = w.state.config.lifecycle.reconnect_reprobe_hours as i64 * 3600;
    w.advance(reprobe + 60);
    w.pass().await;
    let now = w.reload(&personal).await;
    assert_eq!(
        (now.status(), now.reason.as_deref()),
        (Status::NeedsReconnect, Some("not_professional")),
        "a working login of a personal account is not healed"
    );
    let media_calls = |w: &World, name: &str| {
        w.sim
            .requests(None)
            .iter()
            .filter(|r| r.account.as_deref() == Some(name) && r.path.ends_with("/media"))
            .count()
    };
    let before = media_calls(&w, "went_personal");
    sync_now(&w, &personal).await;
    assert_eq!(media_calls(&w, "went_personal"), before);
    // Switched back and reconnected: active again.
    w.sim
        .apply_event("went_personal", AccountEvent::SwitchedToProfessional)
        .await
        .unwrap();
    w.connect_instagram(owner, "went_personal").await;
    assert_eq!(w.reload(&personal).await.status(), Status::Active);

    // A business connection whose Instagram account was unlinked from its Page.
    let unlinked = w.connect_facebook(owner, "unlinked_shop").await;
    w.pass().await;
    w.sim
        .apply_event("unlinked_shop", AccountEvent::UnlinkedFromPage)
        .await
        .unwrap();
    sync_now(&w, &unlinked).await;
    let now = w.reload(&unlinked).await;
    assert_eq!(
        (now.status(), now.reason.as_deref()),
        (Status::NeedsReconnect, Some("unlinked")),
        "{:?}",
        now.last_error
    );
    assert!(w.open_incident(&unlinked).await.is_some());
    // The Page token still works, but that does not heal it while the Page links nothing.
    w.advance(reprobe + 60);
    w.pass().await;
    assert_eq!(
        w.reload(&unlinked).await.reason.as_deref(),
        Some("unlinked")
    );

    // A deleted account: Meta refuses its login; needs reconnecting, posts kept.
    let deleted = w.connect_instagram(owner, "gone_shop").await;
    w.pass().await;
    w.sim
        .apply_event("gone_shop", AccountEvent::AccountDeleted)
        .await
        .unwrap();
    sync_now(&w, &deleted).await;
    assert_eq!(w.reload(&deleted).await.status(), Status::NeedsReconnect);
    assert_eq!(stored_posts(&w, &deleted).await.len(), 1);
}

#[tokio::test]
async fn syncs_slow_down_before_meta_throttles() {
    let w = World::new().await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "busy").await;
    w.pass().await;
    let interval = w.state.config.sync.interval_secs as i64;
    let relaxed = sync_due_at(&w, &c).await - w.state.clock.now();
    assert!(relaxed <= interval, "{relaxed}");

    // Meta's usage header reports over 75 % of the account's allowance used (five calls of a
    // budget of six): four times slower.
    let mut settings = w.sim.settings();
    settings.ig_account_calls_per_day = 6;
    w.sim.set_settings(settings).unwrap();
    sync_now(&w, &c).await;
    let seen = w.state.meta.usage().get(&c.ig_user_id).map(|u| u.percent);
    assert!(seen.is_some_and(|p| p >= 75), "{seen:?}");
    let slowed = sync_due_at(&w, &c).await - w.state.clock.now();
    assert!(slowed > 2 * interval, "{slowed}");
}
