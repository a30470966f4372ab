//! The image store end to end, against the simulator's CDN: every picture a widget shows is
//! fetched once, made into variants, served first-party with immutable caching, and still
//! shown after Instagram's URLs expired and the login died. The fetcher refuses every address
//! that is not Instagram's CDN.

use std::collections::HashMap;
use std::net::IpAddr;

use feedkeeper::db::Db;
use feedkeeper::images::fetch::{FetchError, Fetcher};
use feedkeeper::jobs::run_due_now;
use feedkeeper::widgets::settings::WidgetSettings;
use meta_sim::{AccountEvent, ChildKind, MediaKind, NewMedia};
use serde_json::Value;

use crate::dashboard::{connect_instagram, user_id};
use crate::helpers::TestApp;

/// A shop with a photo, an album of two photos and a reel, synced, with its images stored, and
/// a widget of it. Returns the widget's public id.
async fn shop_with_widget(app: &TestApp) -> String {
    app.signup_and_login("owner@example.com").await;
    let owner = user_id(app, "owner@example.com").await;
    let c = connect_instagram(app, owner, "shop").await;
    for media in [
        NewMedia {
            kind: MediaKind::Image,
            caption: Some("A loaf".into()),
            ..Default::default()
        },
        NewMedia {
            kind: MediaKind::CarouselAlbum,
            children: vec![ChildKind::Image, ChildKind::Image],
            ..Default::default()
        },
        NewMedia {
            kind: MediaKind::Reels,
            ..Default::default()
        },
    ] {
        app.sim.post_media("shop", media).unwrap();
    }
    let widget =
        feedkeeper::widgets::create(&app.state, owner, "Shop", c.id, &WidgetSettings::default())
            .await
            .unwrap();
    let pass = run_due_now(&app.state, "test").await.unwrap();
    assert!(pass.image_fetch.finished >= 1, "{pass:?}");
    // At least the photo, two album children, the reel's poster and the profile picture.
    assert!(pass.image_variants.finished >= 5, "{pass:?}");
    assert_eq!(pass.image_variants.failed, 0, "{pass:?}");
    widget.public_id
}

/// An image address whose signature was changed.
fn forged(address: &str) -> String {
    let (segment_end, _) = address.rmatch_indices('/').next().unwrap();
    let last = &address[segment_end - 1..segment_end];
    let other = if last == "A" { "B" } else { "A" };
    format!(
        "{}{other}{}",
        &address[..segment_end - 1],
        &address[segment_end..]
    )
}

/// A shop with one photo, connected, and a widget of it; nothing synced yet. Returns the
/// connection.
async fn shop_with_one_post_shown(app: &TestApp) -> feedkeeper::db::connections::Connection {
    app.signup_and_login("owner@example.com").await;
    let owner = user_id(app, "owner@example.com").await;
    let c = connect_instagram(app, owner, "shop").await;
    app.sim.post_media("shop", NewMedia::default()).unwrap();
    feedkeeper::widgets::create(&app.state, owner, "Shop", c.id, &WidgetSettings::default())
        .await
        .unwrap();
    c
}

async fn feed_of(app: &TestApp, id: &str) -> Value {
    reqwest::get(app.url(&format!("/w/{id}.json")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn text(app: &TestApp, path: &str) -> String {
    reqwest::get(app.url(path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Every image address in a document's `src`, `srcset` and `data-src` attributes.
fn image_addresses(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "srcset=\"", "poster=\""] {
        for part in html.split(attribute).skip(1) {
            let value = &part[..part.find('"').unwrap()];
            for candidate in value.split(", ") {
                found.push(candidate.split(' ').next().unwrap().to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn widgets_show_stored_images_after_the_urls_expired_and_the_login_died() {
    let app = TestApp::spawn().await;
    let id = shop_with_widget(&app).await;
    let own = format!("{}i/", app.url("/"));
    // The owner sees what their widgets' images take.
    let browser = app
        .login("owner@example.com", crate::helpers::TEST_PASSWORD)
        .await;
    let account = browser.get("/account").await.body;
    assert!(
        account.contains("id=\"image-storage\">") && account.contains(" MB</dd>"),
        "{account}"
    );
    let shown = feed_of(&app, &id).await["posts"].as_array().unwrap().len();
    assert!(shown >= 3);
    let html = text(&app, &format!("/w/{id}")).await;
    assert_eq!(html.matches("<picture>").count(), shown, "{html}");
    assert!(html.contains("type=\"image/webp\""));
    // AVIF, made in each image's second pass, is offered first.
    assert_eq!(
        html.matches("<picture><source type=\"image/avif\"").count(),
        shown,
        "{html}"
    );
    assert!(html.contains("width=\"1080\""));
    // The first row (four columns) loads at once, the rest when scrolled to; placeholders are
    // in the page's own style block.
    assert_eq!(
        html.matches("loading=\"lazy\"").count(),
        shown.saturating_sub(4),
        "{html}"
    );
    assert!(html.contains("url(data:image/webp;base64,"));
    let addresses: Vec<String> = image_addresses(&html)
        .into_iter()
        .filter(|a| a.starts_with("http"))
        .collect();
    // Only the reel's video itself still plays from Instagram.
    let instagram: Vec<&String> = addresses.iter().filter(|a| !a.starts_with(&own)).collect();
    assert!(
        instagram.iter().all(|a| a.contains(".mp4")),
        "{instagram:?}"
    );
    assert!(addresses.len() > 10);

    // Served first-party, cacheable forever, and usable from any site.
    let client = reqwest::Client::new();
    let one = addresses
        .iter()
        .find(|a| a.starts_with(&own) && a.ends_with("/320.webp"))
        .unwrap();
    let response = client.get(one).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["cross-origin-resource-policy"], "cross-origin");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..4], b"RIFF");
    let again = client
        .get(one)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let head = client.head(one).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        body.len().to_string().as_str()
    );
    // The serving threads take this address straight to its handler; one the router must
    // decode (an escaped character in the file name) goes through the router, alike.
    let escaped = one.replace("/320.webp", "/320%2Ewebp");
    let routed = client.get(&escaped).send().await.unwrap();
    assert_eq!(routed.status(), 200);
    let headers = |h: &reqwest::header::HeaderMap| {
        let mut h: Vec<(String, String)> = h
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(headers(routed.headers()), headers(&h));
    assert_eq!(routed.bytes().await.unwrap(), body);
    let jpeg = one.replace("/320.webp", "/320.jpg");
    let response = client.get(&jpeg).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(&response.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    let avif = one.replace("/320.webp", "/320.avif");
    let response = client.get(&avif).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/avif");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        feedkeeper::images::process::variant_size(&body, feedkeeper::images::Format::Avif)
            .map(|(width, _)| width),
        Ok(320)
    );

    // Only what was made is served: no other width, no made-up key, nothing else.
    for path in [
        one.replace("/320.webp", "/321.webp"),
        one.replace("/320.webp", "/320.png"),
        format!("{own}AAAAAAAAAAAAAAAAAAAAAA/320.webp"),
        // A real key with a forged signature, or none.
        forged(one),
        one.replace(&one[own.len() + 22..own.len() + 30], ""),
        format!("{own}not-a-key/320.webp"),
        format!("{own}..%2F..%2Ffeedkeeper.db/320.jpg"),
    ] {
        assert_eq!(
            client.get(&path).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }

    // The owner changes their password: the login dies. A week later every Instagram URL has
    // expired; the widget still shows every post, from its own copies.
    app.sim
        .apply_event("shop", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    app.advance(7 * 86_400);
    run_due_now(&app.state, "test").await.unwrap();
    let html = text(&app, &format!("/w/{id}")).await;
    assert_eq!(html.matches("<picture>").count(), shown, "{html}");
    assert!(!html.contains("No posts to show yet"));
    assert!(
        image_addresses(&html)
            .iter()
            .filter(|a| a.starts_with("http"))
            .all(|a| a.starts_with(&own)),
        "no expired address is left: {html}"
    );
    let feed = feed_of(&app, &id).await;
    assert_eq!(feed["schema_version"], 3);
    assert_eq!(feed["health"]["status"], "needs_reconnect");
    let posts = feed["posts"].as_array().unwrap();
    assert_eq!(posts.len(), shown);
    for post in posts {
        let display = post["display_url"].as_str().unwrap();
        assert!(display.starts_with(&own), "{post}");
        let image = &post["image"];
        // Three widths (or fewer, never upscaled) in AVIF, WebP and JPEG.
        assert_eq!(image["sizes"].as_array().unwrap().len(), 9, "{post}");
        assert_eq!(image["sizes"][0]["format"], "avif", "{post}");
        assert!(image["placeholder"].as_str().unwrap().len() < 1024);
        assert!(image["color"].as_str().unwrap().starts_with('#'));
        assert!(post["urls_expire_at"].is_null(), "{post}");
    }
    let album = posts
        .iter()
        .find(|p| p["media_type"] == "CAROUSEL_ALBUM")
        .unwrap();
    for child in album["children"].as_array().unwrap() {
        assert!(
            child["media_url"].as_str().unwrap().starts_with(&own),
            "{child}"
        );
    }
    let picture = feed["profile"]["picture_url"].as_str().unwrap();
    assert!(picture.starts_with(&own), "{picture}");
    assert!(
        !feed.to_string().contains("oe="),
        "no Instagram address is left in the feed"
    );
}

#[tokio::test]
async fn a_picture_whose_url_expired_before_it_was_fetched_asks_for_a_fresh_url() {
    let app = TestApp::spawn().await;
    let c = shop_with_one_post_shown(&app).await;
    // The sync stores the URLs; the images are not fetched before they expire.
    crate::helpers::run_kind(&app.state, feedkeeper::jobs::sync::SyncWork).await;
    app.advance(7 * 86_400);
    let fetch = crate::helpers::run_kind(&app.state, feedkeeper::jobs::images::FetchWork).await;
    assert_eq!(fetch.finished, 1);
    // A sync is due now: it brings fresh URLs, and the pictures are fetched with them.
    let due = feedkeeper::db::jobs::get(&app.state.db, "sync", &c.id.to_string())
        .await
        .unwrap();
    assert!(due.due_at <= app.state.clock.now(), "{due:?}");
    app.advance(3600);
    run_due_now(&app.state, "test").await.unwrap();
    let totals = feedkeeper::db::images::totals(&app.state.db).await.unwrap();
    assert_eq!(totals.waiting_pictures, 0, "{totals:?}");
    assert_eq!(totals.failed, 0, "{totals:?}");
    assert!(
        totals.ready >= 2,
        "the post and the profile picture: {totals:?}"
    );
}

fn config_for(app: &TestApp, hosts: &[&str]) -> feedkeeper::config::Config {
    let mut config = (*app.state.config).clone();
    config.meta.cdn_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    config
}

/// A misbehaving CDN on this machine: a redirect, an error page, a huge file, a hang.
async fn bad_cdn() -> String {
    use axum::response::IntoResponse;
    let router = axum::Router::new()
        .route(
            "/redirect.jpg",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("https://scontent.cdninstagram.com/a.jpg")
            }),
        )
        .route(
            "/page.jpg",
            axum::routing::get(|| async {
                (
                    [("content-type", "text/html")],
                    "<html>Something went wrong</html>",
                )
                    .into_response()
            }),
        )
        .route(
            "/huge.jpg",
            axum::routing::get(|| async {
                ([("content-type", "image/jpeg")], vec![0u8; 3 * 1024 * 1024]).into_response()
            }),
        )
        .route(
            "/hang.jpg",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/expired.jpg",
            axum::routing::get(|| async {
                (axum::http::StatusCode::FORBIDDEN, "URL signature expired").into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_fetcher_refuses_every_address_that_is_not_instagrams_cdn() {
    let app = TestApp::spawn().await;
    let mut config = config_for(&app, &["*.cdninstagram.com", "127.0.0.1", "10.1.2.3"]);
    config.images.max_bytes = 1024 * 1024;
    config.images.fetch_timeout_secs = 1;
    // A CDN name whose DNS answers with a private or loopback address.
    let fixed: HashMap<String, Vec<IpAddr>> = [
        ("evil.cdninstagram.com", "10.0.0.7"),
        ("loop.cdninstagram.com", "127.0.0.1"),
        ("meta.cdninstagram.com", "169.254.169.254"),
        ("mixed.cdninstagram.com", "::1"),
    ]
    .into_iter()
    .map(|(name, ip)| (name.to_owned(), vec![ip.parse().unwrap()]))
    .collect();
    let fetcher = Fetcher::with_fixed_names(&config, fixed).unwrap();
    for (url, why) in [
        ("https://evil.example/a.jpg", "a host off the list"),
        ("http://scontent.cdninstagram.com/a.jpg", "plain http"),
        (
            "https://evil.cdninstagram.com/a.jpg",
            "a name leading to a private address",
        ),
        (
            "https://loop.cdninstagram.com/a.jpg",
            "a name leading to loopback",
        ),
        (
            "https://meta.cdninstagram.com/a.jpg",
            "a name leading to link-local",
        ),
        (
            "https://mixed.cdninstagram.com/a.jpg",
            "a name leading to ::1",
        ),
        (
            "https://10.1.2.3/a.jpg",
            "a private address by number, even listed",
        ),
        ("https://localhost/a.jpg", "localhost by name"),
        ("ftp://scontent.cdninstagram.com/a.jpg", "another scheme"),
        (
            "https://user@scontent.cdninstagram.com/a.jpg",
            "credentials",
        ),
    ] {
        match fetcher.fetch(url).await {
            Err(FetchError::Refused(_)) => {}
            other => panic!("{why}: {url} gave {other:?}"),
        }
    }
    // What a broken or hostile CDN (here, the listed simulator address) can answer.
    let cdn = bad_cdn().await;
    let fetched = fetcher.fetch(&format!("{cdn}/redirect.jpg")).await;
    assert!(
        matches!(fetched, Err(FetchError::Refused(_))),
        "a redirect is not followed: {fetched:?}"
    );
    let fetched = fetcher.fetch(&format!("{cdn}/page.jpg")).await;
    assert!(
        matches!(fetched, Err(FetchError::NotAnImage(_))),
        "{fetched:?}"
    );
    let fetched = fetcher.fetch(&format!("{cdn}/huge.jpg")).await;
    assert!(
        matches!(fetched, Err(FetchError::TooLarge(_))),
        "{fetched:?}"
    );
    let fetched = fetcher.fetch(&format!("{cdn}/expired.jpg")).await;
    assert_eq!(fetched.unwrap_err(), FetchError::Expired);
    let started = std::time::Instant::now();
    let fetched = fetcher.fetch(&format!("{cdn}/hang.jpg")).await;
    assert_eq!(fetched.unwrap_err(), FetchError::Timeout);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn images_no_widget_shows_and_orphaned_objects_leave_the_store() {
    let app = TestApp::spawn_with(|c| c.images.unused_grace_secs = 0).await;
    let id = shop_with_widget(&app).await;
    let before = feedkeeper::db::images::totals(&app.state.db).await.unwrap();
    // An original stored by a fetch that died before recording it.
    let orphan = feedkeeper::images::ImageKey::of(b"never recorded");
    app.state
        .images
        .store
        .put(
            &orphan.original_path(),
            axum::body::Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    // A post is deleted on Instagram: the next sync drops it and its pictures.
    let gone = app.sim.list_media("shop").unwrap()[0].id.clone();
    app.sim.delete_media(&gone).unwrap();
    app.advance(3600);
    run_due_now(&app.state, "test").await.unwrap();
    let cleaned = feedkeeper::images::cleanup::clean_up(&app.state, 0)
        .await
        .unwrap();
    assert!(cleaned.unused >= 1, "{cleaned:?}");
    assert_eq!(cleaned.orphans, 1, "{cleaned:?}");
    assert!(
        !app.state
            .images
            .store
            .exists(&orphan.original_path())
            .await
            .unwrap()
    );
    let after = feedkeeper::db::images::totals(&app.state.db).await.unwrap();
    assert_eq!(
        after.images,
        before.images - cleaned.unused as i64,
        "{after:?}"
    );
    // What widgets still show is all there.
    let feed = feed_of(&app, &id).await;
    let client = reqwest::Client::new();
    for post in feed["posts"].as_array().unwrap() {
        let url = post["display_url"].as_str().unwrap();
        assert_eq!(client.get(url).send().await.unwrap().status(), 200, "{url}");
    }
    // A second clean-up finds nothing more.
    let again = feedkeeper::images::cleanup::clean_up(&app.state, 0)
        .await
        .unwrap();
    assert_eq!(again, feedkeeper::images::cleanup::CleanUp::default());
}

/// An S3-compatible server for the tests: `TEST_S3_ENDPOINT` if set, else `moto_server` (from
/// PyPI: `pip install 'moto[server]'`) started here on a free port. `None` when neither is
/// available, which fails the test when `S3_TESTS=require` (as CI sets it).
struct S3Server {
    endpoint: String,
    child: Option<std::process::Child>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn s3_server() -> Option<S3Server> {
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        return Some(S3Server {
            endpoint,
            child: None,
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("S3_TESTS").as_deref() != Ok("require"),
                "S3_TESTS=require but moto_server could not start: {e}"
            );
            eprintln!("skipping the S3 part: no TEST_S3_ENDPOINT and no moto_server ({e})");
            return None;
        }
    };
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Some(server)
}

#[tokio::test]
async fn on_an_s3_bucket_images_are_stored_served_and_cleaned_up_the_same() {
    let Some(s3) = s3_server().await else { return };
    let bucket = format!("fk-test-{}", rand::random::<u32>());
    let created = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3.endpoint))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let endpoint = s3.endpoint.clone();
    let app = TestApp::spawn_with(move |c| {
        c.images.store = format!("s3://{bucket}/images");
        c.images.s3_endpoint = endpoint;
        c.images.s3_allow_http = true;
        c.images.s3_region = "us-east-1".into();
        c.images.s3_access_key_id = "test".into();
        c.images.s3_secret_access_key = feedkeeper::config::Secret::new("test");
        c.images.unused_grace_secs = 0;
    })
    .await;
    assert!(app.state.images.store.describe.starts_with("s3://"));
    let id = shop_with_widget(&app).await;
    let feed = feed_of(&app, &id).await;
    let client = reqwest::Client::new();
    for post in feed["posts"].as_array().unwrap() {
        for (size, mime) in [(0, "image/avif"), (3, "image/webp"), (6, "image/jpeg")] {
            let url = post["image"]["sizes"][size]["url"].as_str().unwrap();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            assert_eq!(response.headers()["content-type"], mime);
        }
    }
    let orphan = feedkeeper::images::ImageKey::of(b"orphan on s3");
    app.state
        .images
        .store
        .put(
            &orphan.variant_path(320, feedkeeper::images::Format::Jpeg),
            axum::body::Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    let cleaned = feedkeeper::images::cleanup::clean_up(&app.state, 0)
        .await
        .unwrap();
    assert_eq!(cleaned.orphans, 1, "{cleaned:?}");
}

#[tokio::test]
async fn two_nodes_never_make_one_images_variants_at_once() {
    let app = TestApp::spawn().await;
    shop_with_one_post_shown(&app).await;
    crate::helpers::run_kind(&app.state, feedkeeper::jobs::sync::SyncWork).await;
    crate::helpers::run_kind(&app.state, feedkeeper::jobs::images::FetchWork).await;
    let waiting = feedkeeper::db::images::totals(&app.state.db).await.unwrap();
    assert!(waiting.images >= 2 && waiting.ready == 0, "{waiting:?}");
    // Node A makes one image's variants and is held after storing them, before recording
    // them; node B, on the same database, runs every due variants job meanwhile.
    let other =
        feedkeeper::state::AppState::build((*app.state.config).clone(), app.state.clock.clone())
            .await
            .unwrap();
    let keys = feedkeeper::db::images::pending(&app.state.db)
        .await
        .unwrap();
    let held_key = keys[0].clone();
    let held = feedkeeper::failpoint::arm(feedkeeper::failpoint::IMAGE_VARIANTS_STORED, &held_key);
    let node_a = app.state.clone();
    let a = tokio::spawn(async move {
        crate::helpers::run_kind(&node_a, feedkeeper::jobs::images::VariantsWork).await
    });
    held.reached().await;
    let b = crate::helpers::run_kind(&other, feedkeeper::jobs::images::VariantsWork).await;
    held.release();
    let a = a.await.unwrap();
    // Every image made exactly once between them; the held one by A alone.
    assert_eq!(a.finished + b.finished, keys.len(), "a {a:?}, b {b:?}");
    assert_eq!(a.finished, 1, "a {a:?}, b {b:?}");
    assert_eq!(a.failed + b.failed + a.lost + b.lost, 0, "a {a:?}, b {b:?}");
    let held_row = feedkeeper::db::images::get(&app.state.db, &held_key)
        .await
        .unwrap()
        .unwrap();
    assert!(held_row.widths.is_some());
    // AVIF follows in a job of its own, scheduled with the ready record, once per image.
    assert_eq!(held_row.formats, None);
    let avif_a = avif_on(&app.state).await;
    let avif_b = avif_on(&other).await;
    assert_eq!(avif_a.finished + avif_b.finished, keys.len());
    for key in &keys {
        let row = feedkeeper::db::images::get(&app.state.db, key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.formats.as_deref(), Some("avif,webp,jpeg"), "{row:?}");
    }
    let done = feedkeeper::db::images::totals(&app.state.db).await.unwrap();
    assert_eq!(done.ready, done.images, "{done:?}");
}

#[tokio::test]
async fn webp_behind_jpg_names_and_wide_photos_are_judged_by_their_bytes() {
    let app = TestApp::spawn().await;
    app.sim
        .patch_settings(&serde_json::json!({"cdn_mixed_formats": true}))
        .unwrap();
    let id = shop_with_widget(&app).await;
    let formats: Vec<String> = {
        let rows = feedkeeper::db::images::ready(&app.state.db).await.unwrap();
        rows.iter().map(|r| r.source_format.clone()).collect()
    };
    assert!(
        formats.iter().any(|f| f == "webp") && formats.iter().any(|f| f == "jpeg"),
        "the simulator's mix was stored by what the bytes are: {formats:?}"
    );
    let rows = feedkeeper::db::images::ready(&app.state.db).await.unwrap();
    assert_eq!(
        rows.len(),
        feedkeeper::db::images::totals(&app.state.db)
            .await
            .unwrap()
            .images as usize,
        "every picture made into variants"
    );
    // Sizes follow each picture's own ratio.
    for post in feed_of(&app, &id).await["posts"].as_array().unwrap() {
        let image = &post["image"];
        let (w, h) = (
            image["width"].as_u64().unwrap(),
            image["height"].as_u64().unwrap(),
        );
        for size in image["sizes"].as_array().unwrap() {
            let (sw, sh) = (
                size["width"].as_u64().unwrap(),
                size["height"].as_u64().unwrap(),
            );
            assert!((sh * w).abs_diff(h * sw) <= w, "{post}");
        }
    }
}

#[tokio::test]
async fn images_made_before_avif_get_it_from_a_job_of_their_own_once() {
    let app = TestApp::spawn().await;
    let id = shop_with_widget(&app).await;
    // As an upgrade finds them: WebP and JPEG made, no formats recorded.
    const SQL: &str = "UPDATE images SET formats = NULL";
    match &app.state.db {
        Db::Sqlite(pool) => sqlx::query(SQL).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(SQL).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    let before = feedkeeper::db::images::ready(&app.state.db).await.unwrap();
    assert!(before.len() >= 5);
    // One image's original is gone: its second pass cannot make AVIF and says so once.
    let lost = feedkeeper::images::ImageKey::parse(&before[0].key).unwrap();
    app.state
        .images
        .store
        .delete(&lost.original_path())
        .await
        .unwrap();

    let now = app.state.clock.now();
    let scheduled = feedkeeper::db::images::schedule_missing_avif(&app.state.db, now)
        .await
        .unwrap();
    assert_eq!(scheduled as usize, before.len());
    let pass = crate::helpers::run_kind(&app.state, feedkeeper::jobs::images::AvifWork).await;
    assert_eq!(pass.finished, before.len(), "{pass:?}");
    for row in feedkeeper::db::images::ready(&app.state.db).await.unwrap() {
        let expected = if row.key == before[0].key {
            "webp,jpeg"
        } else {
            "avif,webp,jpeg"
        };
        assert_eq!(row.formats.as_deref(), Some(expected), "{row:?}");
        assert!(row.variant_bytes > 0);
    }
    // Nothing is scheduled again, and the widget offers what exists.
    let again = feedkeeper::db::images::schedule_missing_avif(&app.state.db, now)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let feed = feed_of(&app, &id).await;
    for post in feed["posts"].as_array().unwrap() {
        for size in post["image"]["sizes"].as_array().unwrap() {
            let response = reqwest::get(size["url"].as_str().unwrap()).await.unwrap();
            assert_eq!(response.status(), 200, "{size}");
        }
    }
}

async fn avif_on(state: &feedkeeper::state::AppState) -> feedkeeper::jobs::runner::Report {
    crate::helpers::run_kind(state, feedkeeper::jobs::images::AvifWork).await
}
