//! Feeds: what each connected account shows, kept fresh by the sync worker.
//!
//! A feed is the account's profile and its newest posts as stored by [`sync`], plus a version
//! that moves only when something a widget shows changed (so a sync that finds nothing new costs
//! widgets nothing). This module turns Meta's answers into stored rows: every CDN URL is checked
//! against the allow-list (`meta.cdn_hosts`) and its expiry read, and every field Meta may omit
//! stays optional. Widgets read feeds; they never call Meta.

pub mod sync;

use sha2::{Digest as _, Sha256};

use crate::clock::UnixSeconds;
use crate::config::{Config, HostPattern};
use crate::db::posts::{ChildRow, PostRow, ProfileRow};
use crate::meta::cdn;
use crate::meta::types::{Media, MediaType, Profile};

/// The CDN hosts images may come from, parsed (the config was validated at start).
pub fn cdn_patterns(config: &Config) -> Vec<HostPattern> {
    config
        .meta
        .cdn_hosts
        .iter()
        .filter_map(|p| HostPattern::parse(p).ok())
        .collect()
}

/// A CDN URL we are willing to put in a widget, with its expiry; `None` for anything else (a
/// host off the allow-list, plain http off this machine, garbage).
fn checked_url(raw: Option<&str>, allowed: &[HostPattern]) -> (Option<String>, Option<i64>) {
    match raw.map(|r| cdn::parse(r, allowed)) {
        Some(Ok(url)) => (Some(url.url.to_string()), url.expires_at),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "an image URL from Meta was refused");
            (None, None)
        }
        None => (None, None),
    }
}

fn type_name(t: Option<&MediaType>) -> String {
    match t {
        Some(MediaType::Image) | None => "IMAGE".to_owned(),
        Some(MediaType::Video) => "VIDEO".to_owned(),
        Some(MediaType::CarouselAlbum) => "CAROUSEL_ALBUM".to_owned(),
        Some(MediaType::Other(other)) => {
            bounded(Some(other), MAX_WORD_CHARS).unwrap_or_else(|| "IMAGE".to_owned())
        }
    }
}

fn earliest(times: impl IntoIterator<Item = Option<i64>>) -> Option<i64> {
    times.into_iter().flatten().min()
}

/// The most of each text one account or post may add to a widget, in characters: what
/// Instagram itself allows (a caption 2 200, a biography 150, a username 30, a name 64), a
/// little more for alt text. Longer text from Meta (or anything posing as it) is cut.
pub const MAX_CAPTION_CHARS: usize = 2_200;
const MAX_BIOGRAPHY_CHARS: usize = 150;
const MAX_USERNAME_CHARS: usize = 30;
const MAX_NAME_CHARS: usize = 64;
const MAX_ALT_TEXT_CHARS: usize = 1_000;
/// Carousels hold at most 20 items on Instagram.
const MAX_CHILDREN: usize = 20;
/// Ids, shortcodes and product types are short words.
const MAX_WORD_CHARS: usize = 64;
const MAX_URL_CHARS: usize = 2_048;

/// Text as stored: trimmed of nothing, cut to `max` characters (an ellipsis marks the cut);
/// `None` when empty.
fn bounded(text: Option<&str>, max: usize) -> Option<String> {
    let text = text.filter(|t| !t.trim().is_empty())?;
    match text.char_indices().nth(max) {
        None => Some(text.to_owned()),
        Some((cut, _)) => {
            let mut kept: String = text[..cut].to_owned();
            kept.pop();
            kept.push('…');
            Some(kept)
        }
    }
}

/// A website a profile links to: an absolute http(s) address, or nothing (it ends up as a
/// link on other people's sites).
fn web_link(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    if raw.len() > MAX_URL_CHARS {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then(|| url.to_string())
}

/// The profile as stored; `fallback_username` when Meta left the username out.
pub fn profile_row(p: &Profile, fallback_username: &str, allowed: &[HostPattern]) -> ProfileRow {
    let (picture_url, _) = checked_url(p.profile_picture_url.as_deref(), allowed);
    ProfileRow {
        username: bounded(p.username.as_deref(), MAX_USERNAME_CHARS)
            .unwrap_or_else(|| fallback_username.to_owned()),
        name: bounded(p.name.as_deref(), MAX_NAME_CHARS),
        biography: bounded(p.biography.as_deref(), MAX_BIOGRAPHY_CHARS),
        website: web_link(p.website.as_deref()),
        picture_url,
        followers_count: p.followers_count,
        follows_count: p.follows_count,
        media_count: p.media_count,
    }
}

/// When the profile picture's URL expires.
pub fn profile_picture_expiry(p: &Profile, allowed: &[HostPattern]) -> Option<i64> {
    checked_url(p.profile_picture_url.as_deref(), allowed).1
}

/// Whether Meta's id for a post can be stored (ids are short numbers; anything else is not a
/// post to keep).
pub fn is_post_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_WORD_CHARS
}

/// One post as stored. A post without a time is placed at `now` (Meta sends one whenever it is
/// asked for; this only keeps an odd answer from failing the sync).
pub fn post_row(m: &Media, allowed: &[HostPattern], now: UnixSeconds) -> PostRow {
    let (media_url, media_expiry) = checked_url(m.media_url.as_deref(), allowed);
    let (thumbnail_url, thumbnail_expiry) = checked_url(m.thumbnail_url.as_deref(), allowed);
    let mut expiries = vec![media_expiry, thumbnail_expiry];
    let children = m
        .children
        .iter()
        .take(MAX_CHILDREN)
        .map(|child| {
            let (media_url, a) = checked_url(child.media_url.as_deref(), allowed);
            let (thumbnail_url, b) = checked_url(child.thumbnail_url.as_deref(), allowed);
            expiries.extend([a, b]);
            ChildRow {
                id: bounded(Some(&child.id), MAX_WORD_CHARS).unwrap_or_default(),
                media_type: type_name(child.media_type.as_ref()),
                media_url,
                thumbnail_url,
                alt_text: bounded(child.alt_text.as_deref(), MAX_ALT_TEXT_CHARS),
            }
        })
        .collect();
    PostRow {
        media_id: m.id.clone(),
        posted_at: m.timestamp.unwrap_or(now),
        media_type: type_name(m.media_type.as_ref()),
        product_type: bounded(m.media_product_type.as_deref(), MAX_WORD_CHARS),
        caption: bounded(m.caption.as_deref(), MAX_CAPTION_CHARS),
        permalink: m
            .permalink
            .clone()
            .filter(|p| p.len() <= MAX_URL_CHARS && is_instagram_link(p)),
        shortcode: bounded(m.shortcode.as_deref(), MAX_WORD_CHARS),
        media_url,
        thumbnail_url,
        alt_text: bounded(m.alt_text.as_deref(), MAX_ALT_TEXT_CHARS),
        like_count: m.like_count,
        comments_count: m.comments_count,
        children,
        urls_expire_at: earliest(expiries),
    }
}

/// Permalinks end up as links on other people's sites: only Instagram's own https pages.
fn is_instagram_link(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host_str().is_some_and(|h| {
                h.eq_ignore_ascii_case("www.instagram.com")
                    || h.eq_ignore_ascii_case("instagram.com")
            })
    })
}

/// The still image a widget shows for a post: the image, a video's poster, or the first child's.
/// `None` when Meta withheld every URL (a reel with licensed music and no cover): such posts are
/// kept but not shown.
pub fn display_image(p: &PostRow) -> Option<&str> {
    display_picture(p).map(|(_, url)| url)
}

/// The still image of one item: a video's poster, else the image (a video Meta withheld shows
/// its poster too).
fn still<'a>(
    media_type: &str,
    media_url: &'a Option<String>,
    thumbnail_url: &'a Option<String>,
) -> Option<&'a str> {
    match media_type {
        "VIDEO" => thumbnail_url.as_deref(),
        _ => media_url.as_deref().or(thumbnail_url.as_deref()),
    }
}

/// Every picture of a post as `(item id, Instagram's URL)`: a carousel's children in order, or
/// the post itself. The item id names the picture's stored copy (`db::images`).
pub fn pictures(p: &PostRow) -> Vec<(&str, &str)> {
    if p.children.is_empty() {
        still(&p.media_type, &p.media_url, &p.thumbnail_url)
            .map(|url| (p.media_id.as_str(), url))
            .into_iter()
            .collect()
    } else {
        let children: Vec<(&str, &str)> = p
            .children
            .iter()
            .filter(|c| !c.id.is_empty())
            .filter_map(|c| {
                still(&c.media_type, &c.media_url, &c.thumbnail_url).map(|url| (c.id.as_str(), url))
            })
            .collect();
        if children.is_empty() {
            // An album whose children came without URLs (or ids), but with one of its own.
            still("IMAGE", &p.media_url, &p.thumbnail_url)
                .map(|url| (p.media_id.as_str(), url))
                .into_iter()
                .collect()
        } else {
            children
        }
    }
}

/// The picture a widget's tile shows for a post: its first (a carousel's first child's).
pub fn display_picture(p: &PostRow) -> Option<(&str, &str)> {
    pictures(p).into_iter().next()
}

/// The pictures a sync found, as image references to record: each post's and the profile's.
pub fn picture_sources(posts: &[PostRow], profile: &ProfileRow) -> Vec<crate::db::images::Source> {
    use crate::db::images::{PROFILE_ITEM, Source};
    let source = |media_id: &str, item_id: &str, raw: &str| {
        let url = url::Url::parse(raw).ok()?;
        Some(Source {
            media_id: media_id.to_owned(),
            item_id: item_id.to_owned(),
            url: raw.to_owned(),
            path: url.path().to_owned(),
            expires_at: cdn::expiry(&url).ok().flatten(),
        })
    };
    let mut sources: Vec<Source> = posts
        .iter()
        .flat_map(|p| {
            let mut seen = std::collections::HashSet::new();
            pictures(p)
                .into_iter()
                .filter(move |(item, _)| seen.insert(item.to_owned()))
                .filter_map(|(item, raw)| source(&p.media_id, item, raw))
                .collect::<Vec<_>>()
        })
        .collect();
    if let Some(raw) = profile.picture_url.as_deref() {
        sources.extend(source(PROFILE_ITEM, PROFILE_ITEM, raw));
    }
    sources
}

/// A fingerprint of the feed as shown: equal feeds hash equal, whatever order the rows were
/// stored in (`posts` come newest first).
pub fn content_hash(profile: &ProfileRow, posts: &[PostRow]) -> String {
    let mut hasher = Sha256::new();
    // Serializing plain rows cannot fail; an empty string would only mean "changed".
    hasher.update(serde_json::to_vec(profile).unwrap_or_default());
    for post in posts {
        hasher.update(b"\n");
        hasher.update(serde_json::to_vec(post).unwrap_or_default());
    }
    hex::encode(hasher.finalize())
}

/// The earliest URL expiry among the posts and the profile picture.
pub fn urls_expire_at(posts: &[PostRow], picture_expiry: Option<i64>) -> Option<i64> {
    earliest(
        posts
            .iter()
            .map(|p| p.urls_expire_at)
            .chain(std::iter::once(picture_expiry)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<HostPattern> {
        vec![HostPattern::parse("*.cdninstagram.com").unwrap()]
    }

    fn media(json: serde_json::Value) -> Media {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn texts_are_cut_to_what_instagram_allows_and_websites_must_be_web_links() {
        assert_eq!(bounded(Some("short"), 10).as_deref(), Some("short"));
        assert_eq!(bounded(Some("   "), 10), None);
        let cut = bounded(Some(&"é".repeat(3000)), MAX_CAPTION_CHARS).unwrap();
        assert_eq!(cut.chars().count(), MAX_CAPTION_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(
            web_link(Some("https://shop.example/a?b=1")).as_deref(),
            Some("https://shop.example/a?b=1")
        );
        for refused in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            "shop.example",
            "ftp://shop.example",
            "",
        ] {
            assert_eq!(web_link(Some(refused)), None, "{refused}");
        }
        let m = media(serde_json::json!({
            "id": "1",
            "caption": "x".repeat(100_000),
            "permalink": "javascript:alert(1)",
            "alt_text": "y".repeat(5_000),
            "children": {"data": (0..50).map(|i| serde_json::json!({"id": i.to_string()})).collect::<Vec<_>>()},
        }));
        let row = post_row(&m, &allowed(), 0);
        assert_eq!(row.caption.unwrap().chars().count(), MAX_CAPTION_CHARS);
        assert_eq!(row.alt_text.unwrap().chars().count(), MAX_ALT_TEXT_CHARS);
        assert_eq!(row.permalink, None);
        assert_eq!(row.children.len(), MAX_CHILDREN);
        assert!(is_post_id("17900000000000001") && !is_post_id(&"1".repeat(65)));
    }

    #[test]
    fn urls_off_the_allow_list_or_not_https_are_dropped() {
        let m = media(serde_json::json!({
            "id": "1", "media_type": "IMAGE",
            "media_url": "https://evil.example/x.jpg",
            "permalink": "javascript:alert(1)",
            "timestamp": "2026-01-02T03:04:05+0000",
        }));
        let row = post_row(&m, &allowed(), 0);
        assert_eq!(row.media_url, None);
        assert_eq!(row.permalink, None);
        assert_eq!(display_image(&row), None);
        let m = media(serde_json::json!({
            "id": "2", "media_type": "IMAGE",
            "media_url": "https://scontent-iad3-1.cdninstagram.com/v/a.jpg?oe=650CEAF2&oh=00_x",
            "permalink": "https://www.instagram.com/p/abc/",
        }));
        let row = post_row(&m, &allowed(), 99);
        assert_eq!(row.urls_expire_at, Some(0x650C_EAF2));
        assert_eq!(row.posted_at, 99, "a post without a time is placed now");
        assert!(display_image(&row).is_some());
        assert!(row.permalink.is_some());
    }

    #[test]
    fn videos_show_their_poster_and_carousels_their_first_child() {
        let cdn = "https://scontent.cdninstagram.com/v/";
        let reel = media(serde_json::json!({
            "id": "3", "media_type": "VIDEO", "media_product_type": "REELS",
            "media_url": format!("{cdn}v.mp4?oe=10"), "thumbnail_url": format!("{cdn}t.jpg?oe=20"),
        }));
        let row = post_row(&reel, &allowed(), 0);
        assert_eq!(
            display_image(&row),
            Some(format!("{cdn}t.jpg?oe=20").as_str())
        );
        assert_eq!(row.urls_expire_at, Some(0x10));
        let album = media(serde_json::json!({
            "id": "4", "media_type": "CAROUSEL_ALBUM",
            "children": {"data": [
                {"id": "5", "media_type": "VIDEO", "thumbnail_url": format!("{cdn}c.jpg?oe=30")},
                {"id": "6", "media_type": "IMAGE", "media_url": format!("{cdn}d.jpg?oe=5")},
            ]},
        }));
        let row = post_row(&album, &allowed(), 0);
        assert_eq!(
            display_image(&row),
            Some(format!("{cdn}c.jpg?oe=30").as_str())
        );
        assert_eq!(row.urls_expire_at, Some(5));
        // A copyrighted reel: nothing to show, kept without failing.
        let withheld = media(serde_json::json!({"id": "7", "media_type": "VIDEO"}));
        assert_eq!(display_image(&post_row(&withheld, &allowed(), 0)), None);
        // A type Meta adds tomorrow is kept as it is called.
        let odd = media(serde_json::json!({"id": "8", "media_type": "HOLOGRAM"}));
        assert_eq!(post_row(&odd, &allowed(), 0).media_type, "HOLOGRAM");
    }

    #[test]
    fn the_hash_changes_with_what_is_shown_only() {
        let profile = ProfileRow {
            username: "shop".into(),
            ..Default::default()
        };
        let post = PostRow {
            media_id: "1".into(),
            caption: Some("hello".into()),
            ..Default::default()
        };
        let a = content_hash(&profile, std::slice::from_ref(&post));
        assert_eq!(a, content_hash(&profile, std::slice::from_ref(&post)));
        let edited = PostRow {
            caption: Some("hello!".into()),
            ..post.clone()
        };
        assert_ne!(a, content_hash(&profile, &[edited]));
        assert_ne!(a, content_hash(&profile, &[]));
    }
}
