//! The CDN: signed URLs stable within a window, real JPEGs of realistic size, and the
//! 403/404 answers for expired, tampered and deleted media.

use meta_sim::{Aspect, NewMedia};
use serde_json::json;

use super::support::*;

/// (width, height) from a JPEG's SOF marker.
fn jpeg_size(bytes: &[u8]) -> Option<(u16, u16)> {
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

async fn media_url(h: &Harness, token: &str, id: &str, field: &str) -> String {
    let v = h
        .get(&format!(
            "/graph.instagram.com/{id}?fields={field}&access_token={token}"
        ))
        .await
        .json();
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {v}"))
        .to_owned()
}

#[tokio::test]
async fn urls_are_stable_within_a_window_and_serve_real_jpegs() {
    let h = harness().await;
    h.account("cafe", 0);
    let portrait = h
        .sim
        .post_media(
            "cafe",
            NewMedia {
                aspect: Aspect::Portrait,
                ..NewMedia::image("p")
            },
        )
        .expect("posted");
    let square = h
        .sim
        .post_media(
            "cafe",
            NewMedia {
                aspect: Aspect::Square,
                ..NewMedia::image("s")
            },
        )
        .expect("posted");
    let t = h.ig_long_token("cafe").await;

    let first = media_url(&h, &t, &portrait.id, "media_url").await;
    h.sim.advance_clock(60);
    let again = media_url(&h, &t, &portrait.id, "media_url").await;
    assert_eq!(first, again, "identical within one window");
    let parts = meta_sim::cdn::parse_signed_url(&first).expect("parses");
    assert!(parts.signature.len() > 20);
    assert!(first.contains("&oh=00_") && first.contains("&_nc_ht=scontent.cdninstagram.com"));

    let r = h.http.get(&first).send().await.expect("fetched");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(
        r.headers()["cache-control"],
        "max-age=1209600, no-transform"
    );
    assert_eq!(r.headers()["cross-origin-resource-policy"], "same-origin");
    let bytes = r.bytes().await.expect("body");
    assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    assert_eq!(jpeg_size(&bytes), Some((1080, 1350)));
    assert!(
        (100_000..2_000_000).contains(&bytes.len()),
        "realistic size, got {} bytes",
        bytes.len()
    );

    let sq = media_url(&h, &t, &square.id, "media_url").await;
    let sq_bytes = h
        .http
        .get(&sq)
        .send()
        .await
        .expect("fetched")
        .bytes()
        .await
        .expect("body");
    assert_eq!(jpeg_size(&sq_bytes), Some((1080, 1080)));
    assert_ne!(sq_bytes, bytes, "distinct images");

    // A new window hands out a new URL; the old one still works until its `oe`.
    h.sim.advance_clock(3_600);
    let later = media_url(&h, &t, &portrait.id, "media_url").await;
    assert_ne!(later, first);
    let later_parts = meta_sim::cdn::parse_signed_url(&later).expect("parses");
    assert_eq!(later_parts.expires_at - parts.expires_at, 3_600);
    assert_eq!(
        h.http.get(&first).send().await.expect("fetched").status(),
        200
    );

    // The corp header is a setting.
    h.sim
        .patch_settings(&json!({"cdn_corp_header": false}))
        .expect("settings");
    let r = h.http.get(&later).send().await.expect("fetched");
    assert!(r.headers().get("cross-origin-resource-policy").is_none());
}

#[tokio::test]
async fn expired_tampered_and_deleted_urls_fail_like_instagram() {
    let h = harness().await;
    h.account("cafe", 0);
    let post = h
        .sim
        .post_media("cafe", NewMedia::image("p"))
        .expect("posted");
    let t = h.ig_long_token("cafe").await;
    let url = media_url(&h, &t, &post.id, "media_url").await;
    let expires = meta_sim::cdn::parse_signed_url(&url)
        .expect("parses")
        .expires_at;
    let window_start = h.sim.now() - h.sim.now().rem_euclid(3_600);
    assert_eq!(expires, window_start + 108 * 3_600);

    // Tampered: change one character of the signature, or an unsigned-looking parameter.
    let at = url.find("oh=00_").expect("oh") + 8;
    let mut chars: Vec<char> = url.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for bad in [
        tampered,
        url.replace("_nc_cat=", "_nc_cat=1"),
        format!("{url}&x=1"),
    ] {
        let r = h.get_url(&bad).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
        assert_eq!(r.text, "URL signature mismatch");
    }

    // Deleted: valid signature, no media.
    let gone = h
        .sim
        .post_media("cafe", NewMedia::image("gone"))
        .expect("posted");
    let gone_url = media_url(&h, &t, &gone.id, "media_url").await;
    h.sim.delete_media(&gone.id).expect("deleted");
    assert_eq!(h.get_url(&gone_url).await.status, 404);

    h.sim.set_clock(expires + 1);
    let r = h.get_url(&url).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.text, "URL signature expired");
    assert_eq!(r.header("content-length").as_deref(), Some("21"));
}

#[tokio::test]
async fn posters_profiles_and_videos_are_served() {
    let h = harness().await;
    h.account("cafe", 0);
    let reel = h
        .sim
        .post_media("cafe", NewMedia::reel("r"))
        .expect("posted");
    let t = h.ig_long_token("cafe").await;
    let poster = media_url(&h, &t, &reel.id, "thumbnail_url").await;
    let bytes = h
        .http
        .get(&poster)
        .send()
        .await
        .expect("fetched")
        .bytes()
        .await
        .expect("body");
    assert_eq!(jpeg_size(&bytes), Some((1080, 1920)));
    let video = media_url(&h, &t, &reel.id, "media_url").await;
    let r = h.http.get(&video).send().await.expect("fetched");
    assert_eq!(r.headers()["content-type"], "video/mp4");
    let me = h
        .get(&format!(
            "/graph.instagram.com/me?fields=profile_picture_url&access_token={t}"
        ))
        .await
        .json();
    let pic = me["profile_picture_url"].as_str().expect("url");
    let bytes = h
        .http
        .get(pic)
        .send()
        .await
        .expect("fetched")
        .bytes()
        .await
        .expect("body");
    assert_eq!(jpeg_size(&bytes), Some((320, 320)));
}
