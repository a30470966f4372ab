//! graph.instagram.com data: `/me` field selection, media lists and paging, media object
//! shapes (carousels, reels, copyright, thumbnails) and access to single objects.

use meta_sim::{ChildKind, NewMedia};
use serde_json::{Value, json};

use super::support::*;

#[tokio::test]
async fn me_returns_only_requested_fields() {
    let h = harness().await;
    let acct = h.account("cafe", 3);
    let t = h.ig_long_token("cafe").await;
    let get = |q: &str| h.get_url(h.url(&format!("/graph.instagram.com/me?{q}&access_token={t}")));

    let v = get("").await.json();
    assert_eq!(v, json!({"id": acct.app_scoped_id}));

    let v = get("fields=id,user_id,username").await.json();
    assert_eq!(v["user_id"], json!(acct.ig_user_id));
    assert_ne!(v["id"], v["user_id"]);
    assert!(acct.ig_user_id.starts_with("17841"));
    assert_eq!(v.as_object().map(|o| o.len()), Some(3));

    let all = "fields=user_id,username,name,account_type,profile_picture_url,followers_count,follows_count,media_count,biography,website";
    let v = get(all).await.json();
    assert_eq!(v["account_type"], "BUSINESS");
    assert_eq!(v["media_count"], 3);
    assert!(
        v["profile_picture_url"]
            .as_str()
            .expect("url")
            .contains("/scontent.cdninstagram.com/v/")
    );
    // Unset fields are absent, never null.
    for absent in ["name", "biography", "website", "id"] {
        assert!(v.get(absent).is_none(), "{absent} should be absent: {v}");
    }
    assert!(!v.to_string().contains("null"));

    let r = get("fields=username,bogus").await;
    assert_eq!(r.graph_error(), (100, None));
    assert_eq!(
        r.message(),
        "(#100) Tried accessing nonexisting field (bogus) on node type (User)"
    );

    // `/{user_id}` and `/{app-scoped id}` both name the same node.
    for id in [&acct.ig_user_id, &acct.app_scoped_id] {
        let r = h
            .get(&format!(
                "/graph.instagram.com/v21.0/{id}?fields=username&access_token={t}"
            ))
            .await;
        assert_eq!(r.json()["username"], "cafe");
    }
}

#[tokio::test]
async fn media_pages_follow_next_until_absent() {
    let h = harness().await;
    h.account("cafe", 30);
    let t = h.ig_long_token("cafe").await;
    let first = h
        .get(&format!(
            "/graph.instagram.com/v23.0/me/media?fields=id,timestamp&access_token={t}"
        ))
        .await
        .json();
    let data = first["data"].as_array().expect("data");
    assert_eq!(data.len(), 25);
    assert!(first["paging"].get("previous").is_none());
    let next = first["paging"]["next"].as_str().expect("next");
    assert!(next.contains("access_token="));
    assert!(next.starts_with(&format!("{}/graph.instagram.com/v23.0/me/media?", h.base)));
    let stamps: Vec<&str> = data
        .iter()
        .filter_map(|m| m["timestamp"].as_str())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let second = h.get_url(next).await.json();
    assert_eq!(second["data"].as_array().map(Vec::len), Some(5));
    assert!(
        second["paging"].get("next").is_none(),
        "no next on the last page"
    );
    let previous = second["paging"]["previous"].as_str().expect("previous");
    let back = h.get_url(previous).await.json();
    assert_eq!(back["data"][0], first["data"][0]);

    let ids: Vec<&Value> = data
        .iter()
        .chain(second["data"].as_array().into_iter().flatten())
        .collect();
    let mut unique: Vec<String> = ids.iter().map(|v| v["id"].to_string()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 30);

    // Above 100 the limit is clamped: 120 posts come as 100 + 20.
    for i in 0..90 {
        h.sim
            .post_media("cafe", NewMedia::image(&format!("extra {i}")))
            .expect("posted");
    }
    let all = h
        .get(&format!(
            "/graph.instagram.com/me/media?limit=150&access_token={t}"
        ))
        .await
        .json();
    assert_eq!(all["data"].as_array().map(Vec::len), Some(100));
    let rest = h
        .get_url(all["paging"]["next"].as_str().expect("next"))
        .await
        .json();
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(20));
    assert!(rest["paging"].get("next").is_none());

    h.sim
        .patch_settings(&json!({"media_limit_over_100": "error"}))
        .expect("settings");
    let r = h
        .get(&format!(
            "/graph.instagram.com/me/media?limit=101&access_token={t}"
        ))
        .await;
    assert_eq!(r.graph_error(), (100, None));
}

#[tokio::test]
async fn since_and_until_filter_by_time() {
    let h = harness().await;
    h.account("cafe", 0);
    let now = h.sim.now();
    for i in 0..4 {
        h.sim
            .post_media("cafe", NewMedia::image("x").at(now - i * 1_000))
            .expect("posted");
    }
    let t = h.ig_long_token("cafe").await;
    let v = h
        .get(&format!(
            "/graph.instagram.com/me/media?since={}&until={}&access_token={t}",
            now - 2_000,
            now - 1_000
        ))
        .await
        .json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn media_objects_have_the_right_shape() {
    let h = harness().await;
    let acct = h.account("cafe", 0);
    let sim = &h.sim;
    let image = sim.post_media("cafe", NewMedia::image("")).expect("image");
    let carousel = sim
        .post_media(
            "cafe",
            NewMedia {
                children: vec![ChildKind::Image, ChildKind::Video],
                ..NewMedia::carousel("slides", 0)
            },
        )
        .expect("carousel");
    let reel = sim
        .post_media("cafe", NewMedia::reel("reel"))
        .expect("reel");
    let licensed = sim
        .post_media("cafe", NewMedia::reel("music").copyrighted())
        .expect("licensed");
    let t = h.ig_long_token("cafe").await;

    let fields = "id,caption,media_type,media_product_type,media_url,thumbnail_url,permalink,shortcode,timestamp,username,like_count,comments_count,children%7Bid,media_type,media_url,thumbnail_url,timestamp,permalink%7D";
    let list = h
        .get(&format!(
            "/graph.instagram.com/me/media?fields={fields}&access_token={t}"
        ))
        .await
        .json();
    let by_id = |id: &str| -> Value {
        list["data"]
            .as_array()
            .and_then(|d| d.iter().find(|m| m["id"] == id).cloned())
            .unwrap_or_else(|| panic!("{id} missing"))
    };

    let img = by_id(&image.id);
    assert!(img.get("caption").is_none(), "no caption → absent");
    assert_eq!(img["media_type"], "IMAGE");
    assert_eq!(img["media_product_type"], "FEED");
    assert!(
        img.get("thumbnail_url").is_none(),
        "thumbnail only on video"
    );
    assert!(img.get("children").is_none());
    assert_eq!(img["username"], "cafe");
    let ts = img["timestamp"].as_str().expect("timestamp");
    assert!(ts.ends_with("+0000") && ts.len() == 24, "{ts}");
    assert_eq!(
        img["permalink"],
        format!("https://www.instagram.com/p/{}/", image.shortcode)
    );

    let car = by_id(&carousel.id);
    assert_eq!(car["media_type"], "CAROUSEL_ALBUM");
    let kids = car["children"]["data"].as_array().expect("children.data");
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0]["media_type"], "IMAGE");
    assert!(
        kids[0].get("permalink").is_none(),
        "no permalink on children"
    );
    assert!(kids[0].get("thumbnail_url").is_none());
    assert_eq!(kids[1]["media_type"], "VIDEO");
    assert!(kids[1]["thumbnail_url"].as_str().is_some());
    assert!(
        kids[1]["media_url"]
            .as_str()
            .expect("url")
            .contains(".mp4?")
    );

    let r = by_id(&reel.id);
    assert_eq!(r["media_type"], "VIDEO");
    assert_eq!(r["media_product_type"], "REELS");
    assert!(
        r["thumbnail_url"]
            .as_str()
            .expect("thumb")
            .contains("_n.jpg?")
    );
    assert_eq!(
        r["permalink"],
        format!("https://www.instagram.com/reel/{}/", reel.shortcode)
    );

    let lic = by_id(&licensed.id);
    assert!(lic.get("media_url").is_none(), "copyrighted → no media_url");
    assert!(lic.get("thumbnail_url").is_some());

    // Raw braces work as well as %7B%7D.
    let raw = h
        .get_url(&format!(
            "{}/graph.instagram.com/{}?fields=children{{id,media_type}}&access_token={t}",
            h.base, carousel.id
        ))
        .await
        .json();
    assert_eq!(raw["children"]["data"][1]["media_type"], "VIDEO");
    let single = h
        .get(&format!(
            "/graph.instagram.com/{}?access_token={t}",
            image.id
        ))
        .await
        .json();
    assert_eq!(single, json!({"id": image.id}));
    let child = h
        .get(&format!(
            "/graph.instagram.com/{}?fields=id,media_type&access_token={t}",
            carousel.children[1].id
        ))
        .await
        .json();
    assert_eq!(child["media_type"], "VIDEO");
    let _ = acct;
}

#[tokio::test]
async fn other_peoples_and_deleted_media_do_not_exist() {
    let h = harness().await;
    h.account("cafe", 0);
    let other = h.account("other", 0);
    let theirs = h
        .sim
        .post_media("other", NewMedia::image("x"))
        .expect("theirs");
    let mine = h
        .sim
        .post_media("cafe", NewMedia::image("y"))
        .expect("mine");
    let t = h.ig_long_token("cafe").await;
    for id in [&theirs.id, &other.ig_user_id] {
        let path = if *id == other.ig_user_id {
            format!("/graph.instagram.com/{id}/media?access_token={t}")
        } else {
            format!("/graph.instagram.com/{id}?fields=id&access_token={t}")
        };
        let r = h.get(&path).await;
        assert_eq!(r.graph_error(), (100, Some(33)), "{id}");
        assert_eq!(
            r.message(),
            format!(
                "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            )
        );
    }
    h.sim.delete_media(&mine.id).expect("deleted");
    let r = h
        .get(&format!(
            "/graph.instagram.com/{}?fields=id&access_token={t}",
            mine.id
        ))
        .await;
    assert_eq!(r.graph_error(), (100, Some(33)));
    let list = h
        .get(&format!("/graph.instagram.com/me/media?access_token={t}"))
        .await
        .json();
    assert_eq!(list, json!({"data": []}));
}

#[tokio::test]
async fn fields_are_checked_against_the_version_that_serves_the_call() {
    let h = harness().await;
    h.account("versions", 2);
    let t = h.ig_long_token("versions").await;
    let media = |version: &str, fields: &str| {
        h.get_url(h.url(&format!(
            "/graph.instagram.com{version}/me/media?fields={fields}&access_token={t}"
        )))
    };

    // Unversioned: the app's default version; a current version: itself.
    let r = media("", "id,alt_text").await;
    assert_eq!(r.header("facebook-api-version").as_deref(), Some("v23.0"));
    assert_eq!(r.json()["data"].as_array().map(Vec::len), Some(2));
    let r = media("/v24.0", "id").await;
    assert_eq!(r.header("facebook-api-version").as_deref(), Some("v24.0"));

    // v13 was the last version to accept video_title, but v13 is long gone: the call is served
    // by the oldest available version, where the field does not exist.
    let r = media("/v13.0", "id,video_title").await;
    assert_eq!(r.header("facebook-api-version").as_deref(), Some("v21.0"));
    assert_eq!(r.graph_error(), (100, None));
    assert_eq!(
        r.message(),
        "(#100) Tried accessing nonexisting field (video_title) on node type (IGMedia)"
    );
    // While v13 was still available it was accepted (and omitted from the answer).
    h.sim
        .patch_settings(&json!({ "oldest_graph_version": 13 }))
        .unwrap();
    let r = media("/v13.0", "id,video_title").await;
    let v = r.json();
    assert!(v["data"][0].get("video_title").is_none(), "{v}");
    assert!(v["data"][0].get("id").is_some(), "{v}");

    // A Meta that does not know a newer field refuses the whole call, children included.
    h.sim
        .patch_settings(&json!({ "unknown_fields": ["alt_text"] }))
        .unwrap();
    for fields in ["id,alt_text", "id,children%7Bid,alt_text%7D"] {
        let r = media("", fields).await;
        assert_eq!(r.graph_error(), (100, None), "{fields}");
        assert!(
            r.message().contains("nonexisting field (alt_text)"),
            "{fields}"
        );
    }
    let bad = h
        .sim
        .patch_settings(&json!({ "oldest_graph_version": 30 }))
        .unwrap_err();
    assert!(bad.to_string().contains("oldest_graph_version"), "{bad}");
}
