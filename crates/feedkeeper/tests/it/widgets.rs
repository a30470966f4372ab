//! Widgets over real HTTP: made and edited in the dashboard (every problem shown, nothing saved
//! half-way, tenants apart), served publicly from memory with ETags, compression and CDN-friendly
//! caching, fresh on every node within a poll, never with an expired image, and the JSON feed
//! checked against its published schema.

use std::io::Read as _;

use axum::http::StatusCode;
use feedkeeper::connections::SYNC_JOB;
use feedkeeper::db::{jobs, widgets as stored};
use feedkeeper::jobs::run_due_now;
use meta_sim::{MediaKind, NewMedia};
use serde_json::Value;

use feedkeeper::widgets::cache::Served;

use crate::dashboard::{connect_instagram, user_id};
use crate::helpers::{Session, TestApp};

/// The fields of a valid widget form for `connection`.
fn form<'a>(csrf: &'a str, connection: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", "Shop website"),
        ("connection_id", connection),
        ("layout", "grid"),
        ("columns_desktop", "4"),
        ("columns_tablet", "3"),
        ("columns_mobile", "2"),
        ("posts", "12"),
        ("spacing", "8"),
        ("radius", "6"),
        ("captions", "below"),
        ("theme", "auto"),
        ("lightbox", "on"),
        ("header", "on"),
        ("follow_button", "on"),
        ("show_images", "on"),
        ("show_videos", "on"),
        ("show_reels", "on"),
        ("show_carousels", "on"),
    ]
}

/// The widget's public id, read from its page's embed code.
fn public_id(page: &str) -> String {
    let at = page.find("data-widget=&#34;").expect("embed code") + "data-widget=&#34;".len();
    page[at..at + 22].to_owned()
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// A shop with a hostile caption, connected and synced; returns the owner's browser and the
/// connection id.
async fn shop(app: &TestApp) -> (Session, String) {
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(app, "owner@example.com").await;
    let c = connect_instagram(app, owner, "shop").await;
    app.sim
        .post_media(
            "shop",
            NewMedia {
                kind: MediaKind::Image,
                caption: Some(
                    "<img src=x onerror=alert(1)> Fresh bread by @the.baker #bread #sale".into(),
                ),
                ..Default::default()
            },
        )
        .unwrap();
    run_due_now(&app.state, "test").await.unwrap();
    (browser, c.id.to_string())
}

#[tokio::test]
async fn a_widget_is_made_in_the_dashboard_and_served_to_any_website() {
    let app = TestApp::spawn().await;
    let (browser, connection) = shop(&app).await;

    // Every problem at once, beside its field, and nothing stored.
    let mut bad = form(&browser.csrf, &connection);
    bad.retain(|(k, _)| !k.starts_with("show_"));
    bad.iter_mut().for_each(|(k, v)| match *k {
        "name" => *v = "",
        "posts" => *v = "500",
        "layout" => *v = "carousel",
        _ => {}
    });
    let refused = browser.post("/widgets", &bad).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    for message in [
        "Give the widget a name",
        "Number of posts must be a whole number from 1 to 50",
        "Choose grid, slider or masonry",
        "Show at least one kind of post",
    ] {
        assert!(
            refused.body.contains(message),
            "{message}: {}",
            refused.body
        );
    }
    let owner = user_id(&app, "owner@example.com").await;
    assert!(
        stored::list_owned(&app.state.db, owner)
            .await
            .unwrap()
            .is_empty()
    );

    let made = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let page = browser.get(made.location().unwrap()).await;
    assert!(
        page.body.contains("data-copy=\"embed-code\""),
        "{}",
        page.body
    );
    let id = public_id(&page.body);
    assert!(page.body.contains(&format!(
        "{}/embed.js",
        app.url("/").as_str().trim_end_matches('/')
    )));

    // The public document: no cookies, framable anywhere, cacheable, escaped.
    let calls = app.sim.requests(None).len();
    let doc = get(&app, &format!("/w/{id}"), &[]).await;
    assert_eq!(doc.status(), StatusCode::OK);
    let h = doc.headers().clone();
    assert!(h.get("set-cookie").is_none());
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors *") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    // In an origin of its own, not the dashboard's: no script in it could use a session.
    assert!(
        csp.contains("sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox")
            && !csp.contains("allow-same-origin"),
        "{csp}"
    );
    assert!(h.get("x-frame-options").is_none());
    let cache = h["cache-control"].to_str().unwrap();
    assert!(
        cache.contains("stale-while-revalidate") && cache.contains("stale-if-error"),
        "{cache}"
    );
    let etag = h["etag"].to_str().unwrap().to_owned();
    let html = doc.text().await.unwrap();
    assert!(
        !html.contains("<img src=x"),
        "the caption is escaped: {html}"
    );
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{html}"
    );
    assert!(html.contains("href=\"https://www.instagram.com/explore/tags/bread/\""));
    assert!(html.contains("href=\"https://www.instagram.com/the.baker/\""));
    assert!(html.contains("class=\"fk fk-grid fk-captions-below\""));
    assert_eq!(
        app.sim.requests(None).len(),
        calls,
        "no call to Meta on the request path"
    );

    // Revalidation and compression.
    let again = get(&app, &format!("/w/{id}"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let br = get(
        &app,
        &format!("/w/{id}"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["vary"], "Accept-Encoding");
    let mut plain = Vec::new();
    brotli::Decompressor::new(&br.bytes().await.unwrap()[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), html);
    let gz = get(&app, &format!("/w/{id}"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, html);

    // The serving threads take `/w/{id}` straight to its handler; an address the router must
    // decode (an escaped character) goes through the router: both answer alike (the feed, a
    // revalidation, compression, an unknown widget), and HEAD too.
    let escape = |path: &str| {
        let (head, tail) = path.split_at(3);
        format!("{head}%{:02X}{}", tail.as_bytes()[0], &tail[1..])
    };
    let cases = [
        (format!("/w/{id}"), vec![]),
        (format!("/w/{id}"), vec![("accept-encoding", "br")]),
        (format!("/w/{id}"), vec![("if-none-match", etag.as_str())]),
        (format!("/w/{id}.json"), vec![("accept-encoding", "gzip")]),
        ("/w/AAAAAAAAAAAAAAAAAAAAAA".to_owned(), vec![]),
    ];
    for (path, headers) in &cases {
        let direct = get(&app, path, headers).await;
        let routed = get(&app, &escape(path), headers).await;
        assert_eq!(direct.status(), routed.status(), "{path} {headers:?}");
        let headers = |r: &reqwest::Response| {
            let mut h: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(name, _)| *name != "date")
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            h.sort();
            h
        };
        assert_eq!(headers(&direct), headers(&routed), "{path}");
        assert_eq!(direct.bytes().await.unwrap(), routed.bytes().await.unwrap());
    }
    let http = reqwest::Client::new();
    for path in [format!("/w/{id}"), escape(&format!("/w/{id}"))] {
        let head = http.head(app.url(&path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()["content-length"].to_str().unwrap(),
            html.len().to_string()
        );
    }
    let post = http
        .post(app.url(&format!("/w/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The embed script.
    let embed = get(&app, "/embed.js", &[]).await;
    assert_eq!(embed.status(), StatusCode::OK);
    assert!(
        embed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(embed.text().await.unwrap().contains("feedkeeper-widget"));

    // Another user can neither see nor change it, nor point a widget at someone else's account.
    let other = app.signup_and_login("other@example.com").await;
    let edit_path = made.location().unwrap().to_owned();
    assert_eq!(other.get(&edit_path).await.status, StatusCode::NOT_FOUND);
    let stolen = other
        .post(&edit_path, &form(&other.csrf, &connection))
        .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    let theirs = other
        .post("/widgets", &form(&other.csrf, &connection))
        .await;
    assert_eq!(
        theirs.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        theirs.body
    );
    assert!(theirs.body.contains("Choose one of your own accounts"));

    // The connection's page shows its latest posts (a preview of a standard widget), and a
    // preview never shows another tenant's posts.
    let detail = browser.get(&format!("/connections/{connection}")).await;
    assert!(
        detail.body.contains(&format!(
            "src=\"/widgets/preview?connection_id={connection}\""
        )),
        "{}",
        detail.body
    );
    let mine = browser
        .get(&format!("/widgets/preview?connection_id={connection}"))
        .await;
    assert!(mine.body.contains("Fresh bread"), "{}", mine.body);
    let preview_csp = mine.headers["content-security-policy"].to_str().unwrap();
    assert!(
        preview_csp.contains("frame-ancestors 'self'")
            && preview_csp.contains("sandbox allow-scripts")
            && !preview_csp.contains("allow-same-origin"),
        "{preview_csp}"
    );
    let snooped = other
        .get(&format!("/widgets/preview?connection_id={connection}"))
        .await;
    assert!(!snooped.body.contains("Fresh bread") && !snooped.body.contains("@shop"));
    // A preview shows every valid setting whatever else is invalid (no name typed yet, a
    // number out of range), and asks for an account while none is chosen.
    let partial = browser
        .get(&format!(
            "/widgets/preview?connection_id={connection}&layout=slider&theme=dark\
             &captions=below&columns_desktop=99&posts=12&spacing=8&radius=6&columns_tablet=3\
             &columns_mobile=2&show_images=on&show_videos=on&show_reels=on&show_carousels=on"
        ))
        .await;
    assert!(
        partial.body.contains("fk-slider")
            && partial.body.contains("fk-theme-dark")
            && partial.body.contains("fk-captions-below")
            && partial.body.contains("Fresh bread"),
        "{}",
        partial.body
    );
    let unchosen = browser.get("/widgets/preview?layout=grid").await;
    assert!(
        unchosen
            .body
            .contains("Choose the Instagram account to show")
            && !unchosen.body.contains("No posts to show yet"),
        "{}",
        unchosen.body
    );
    // The hide list takes only posts, and names what it did not understand, keeping the text.
    let mut hide = form(&browser.csrf, &connection);
    hide.push(("hidden_posts", "foo bar\nhttps://example.com/not-a-post"));
    let refused = browser.post(&edit_path, &hide).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Not a link to an Instagram post")
            && refused.body.contains("https://example.com/not-a-post")
            && refused
                .body
                .contains("foo bar\nhttps://example.com/not-a-post</textarea>"),
        "{}",
        refused.body
    );

    // An edit shows at once on this node.
    let mut slider = form(&browser.csrf, &connection);
    slider.iter_mut().for_each(|(k, v)| {
        if *k == "layout" {
            *v = "slider"
        }
    });
    let saved = browser.post(&edit_path, &slider).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let html = get(&app, &format!("/w/{id}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("fk-slider") && html.contains("class=\"fk-next\""));

    // Duplicate, then delete: the deleted one is gone (410), unknown ids are 404.
    let dup = browser
        .post(
            &format!("{edit_path}/duplicate"),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(dup.status, StatusCode::SEE_OTHER);
    let dup_page = browser.get(dup.location().unwrap()).await;
    assert_ne!(public_id(&dup_page.body), id);
    assert!(dup_page.body.contains("Shop website (copy)"));
    let deleted = browser
        .post(&format!("{edit_path}/delete"), &[("csrf", &browser.csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, &format!("/w/{id}"), &[]).await.status(),
        StatusCode::GONE
    );
    assert_eq!(
        get(&app, &format!("/w/{id}.json"), &[]).await.status(),
        StatusCode::GONE
    );
    assert_eq!(
        get(&app, "/w/AAAAAAAAAAAAAAAAAAAAAA", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/w/not-an-id", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

// ---- The JSON feed against its schema ------------------------------------------------------

/// Checks `value` against the subset of JSON Schema the feed's schema uses (type, const, enum,
/// required, properties, additionalProperties, items, minimum, $ref to $defs). Returns the
/// problems, with their paths.
fn validate(schema: &Value, root: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return validate(&root["$defs"][name], root, value, path, problems);
    }
    if let Some(expected) = schema.get("const")
        && value != expected
    {
        problems.push(format!("{path}: {value} is not {expected}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let number_ok = actual == "integer" && types.contains(&"number");
        if !(types.contains(&actual) || number_ok) {
            problems.push(format!("{path}: {actual} is not {types:?}"));
            return;
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        problems.push(format!("{path}: {n} < {min}"));
    }
    if let Value::Object(fields) = value {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !fields.contains_key(name.as_str().unwrap_or_default()) {
                problems.push(format!("{path}: missing {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => validate(sub, root, field, &format!("{path}.{name}"), problems),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{path}: unexpected field {name}"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, root, item, &format!("{path}[{i}]"), problems);
        }
    }
}

#[test]
fn the_schema_validator_catches_what_it_should() {
    let schema: Value =
        serde_json::from_str(include_str!("../../../../docs/widget-feed.schema.json")).unwrap();
    let mut problems = Vec::new();
    let wrong =
        serde_json::json!({"schema_version": 1, "widget": {"id": 1}, "posts": [{}], "extra": true});
    validate(&schema, &schema, &wrong, "$", &mut problems);
    for expected in [
        "$.schema_version",
        "missing \"health\"",
        "$.widget.id",
        "unexpected field extra",
        "$.posts[0]: missing \"id\"",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:#?}"
        );
    }
}

#[tokio::test]
async fn the_json_feed_matches_its_published_schema() {
    let app = TestApp::spawn().await;
    let (browser, connection) = shop(&app).await;
    // Every shape: a reel, a carousel with a video, a copyrighted reel, no caption.
    for new in [
        NewMedia {
            kind: MediaKind::Reels,
            caption: Some("A reel".into()),
            ..Default::default()
        },
        NewMedia {
            kind: MediaKind::CarouselAlbum,
            children: vec![meta_sim::ChildKind::Video, meta_sim::ChildKind::Image],
            ..Default::default()
        },
        NewMedia {
            kind: MediaKind::Reels,
            copyrighted: true,
            ..Default::default()
        },
    ] {
        app.sim.post_media("shop", new).unwrap();
    }
    let now = app.state.clock.now();
    jobs::schedule(&app.state.db, SYNC_JOB, &connection, now, now)
        .await
        .unwrap();
    run_due_now(&app.state, "test").await.unwrap();
    let id = widget_made(&browser, &connection).await;

    let reply = get(&app, &format!("/w/{id}.json"), &[]).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "application/json");
    assert_eq!(reply.headers()["access-control-allow-origin"], "*");
    let feed: Value = reply.json().await.unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../../../../docs/widget-feed.schema.json")).unwrap();
    let mut problems = Vec::new();
    validate(&schema, &schema, &feed, "$", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}\n{feed:#}");

    let posts = feed["posts"].as_array().unwrap();
    assert!(posts.len() >= 4, "{feed:#}");
    let bread = posts
        .iter()
        .find(|p| p["hashtags"] == serde_json::json!(["bread", "sale"]))
        .unwrap();
    assert_eq!(bread["mentions"], serde_json::json!(["the.baker"]));
    assert_eq!(
        bread["caption_text"],
        "<img src=x onerror=alert(1)> Fresh bread by @the.baker"
    );
    assert!(
        posts
            .iter()
            .any(|p| p["is_reel"] == true && p["thumbnail_url"].is_string())
    );
    assert!(
        posts
            .iter()
            .any(|p| p["children"].as_array().is_some_and(|c| c.len() == 2))
    );
    assert_eq!(feed["health"]["status"], "ok");
    assert_eq!(feed["profile"]["username"], "shop");
    assert!(feed["profile"]["picture_url"].is_string(), "{feed:#}");
}

/// A widget made in the dashboard from the valid form for `connection`: its public id.
async fn widget_made(browser: &Session, connection: &str) -> String {
    let made = browser
        .post("/widgets", &form(&browser.csrf, connection))
        .await;
    public_id(&browser.get(made.location().unwrap()).await.body)
}

/// Waits (a few seconds at most) until the node's poller has read the change log.
async fn trusted_soon(node: &feedkeeper::state::AppState) {
    let wait_until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.widgets.trusted() {
        assert!(
            std::time::Instant::now() < wait_until,
            "the poller never read the change log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A second node on the app's database, with its own, empty memory (not polling by itself).
async fn other_node(app: &TestApp) -> feedkeeper::state::AppState {
    feedkeeper::state::AppState::build((*app.state.config).clone(), app.state.clock.clone())
        .await
        .unwrap()
}

/// A widget made in the dashboard (its connection and public id), and a second node on the same
/// database with its own, empty cache.
async fn widget_and_second_node(app: &TestApp) -> (String, String, feedkeeper::state::AppState) {
    let (browser, connection) = shop(app).await;
    let id = widget_made(&browser, &connection).await;
    let node = other_node(app).await;
    (connection, id, node)
}

fn rendered(served: Served) -> std::sync::Arc<feedkeeper::widgets::cache::Rendered> {
    match served {
        Served::Found(r) => r,
        other => panic!("the widget renders: {other:?}"),
    }
}

/// Reads the change log on `node` until it trusts its memory.
async fn poll(node: &feedkeeper::state::AppState) -> feedkeeper::widgets::Polled {
    let polled = feedkeeper::widgets::poll_changes(node).await.unwrap();
    assert!(node.widgets.trusted());
    polled
}

#[tokio::test]
async fn requests_that_miss_the_cache_together_wait_for_one_rendering() {
    let app = TestApp::spawn().await;
    // A node that has rendered nothing yet (a restart, a CDN purge): eight requests at once.
    let (_, id, node) = widget_and_second_node(&app).await;
    poll(&node).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (node, id) = (node.clone(), id.clone());
        requests.spawn(async move { feedkeeper::widgets::served(&node, &id).await });
    }
    let made: Vec<_> = requests
        .join_all()
        .await
        .into_iter()
        .map(rendered)
        .collect();
    assert!(
        made.iter().all(|r| std::sync::Arc::ptr_eq(r, &made[0])),
        "one rendering, served to all eight"
    );
    assert_eq!(node.widgets.loads(), 1, "read from the database once");
}

#[tokio::test]
async fn unknown_addresses_never_reach_the_database_once_a_node_has_read_its_list() {
    let app = TestApp::spawn().await;
    let (_, id, node) = widget_and_second_node(&app).await;
    // Before its first read of the change log, a node asks the database, one lookup for many
    // requests at once on one address.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    assert!(feedkeeper::widgets::is_public_id(unknown));
    let held = node.widgets.rendering_turn(unknown);
    let holding = held.lock().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let node = node.clone();
        requests.spawn(async move { feedkeeper::widgets::served(&node, unknown).await });
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    drop(holding);
    drop(held);
    for served in requests.join_all().await {
        assert!(matches!(served, Served::NotFound));
    }
    assert_eq!(node.widgets.loads(), 1, "one lookup for all eight");

    // Once it has read the list of addresses, a flood of random ones costs it nothing.
    poll(&node).await;
    for _ in 0..2000 {
        let random = feedkeeper::widgets::new_public_id();
        assert!(matches!(
            feedkeeper::widgets::served(&node, &random).await,
            Served::NotFound
        ));
    }
    assert_eq!(node.widgets.loads(), 1, "no lookup for any of them");
    // The real widget still renders; a malformed address is refused before anything.
    rendered(feedkeeper::widgets::served(&node, &id).await);
    assert!(matches!(
        feedkeeper::widgets::served(&node, "AAAAAAAAAAAAAAAAAAAAAB").await,
        Served::NotFound
    ));
    assert_eq!(node.widgets.loads(), 2);

    // The same over HTTP on the app's own node (its poller reads the log every second).
    trusted_soon(&app.state).await;
    let loads = app.state.widgets.loads();
    for _ in 0..50 {
        let random = feedkeeper::widgets::new_public_id();
        let answer = get(&app, &format!("/w/{random}"), &[]).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(app.state.widgets.loads(), loads);
}

#[tokio::test]
async fn when_the_database_cannot_answer_in_time_the_answer_is_503_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.widgets.public_db_concurrency = 1;
        c.widgets.public_db_timeout_ms = 100;
    })
    .await;
    let (_, id, _) = widget_and_second_node(&app).await;
    // Every slot for the database on the public path is taken (a flood of widgets not in
    // memory): the next one waits a moment, then is told to come back.
    app.state.widgets.evict(&id);
    let taken = app.state.widgets.public_db.acquire().await.unwrap();
    let answer = get(&app, &format!("/w/{id}"), &[]).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "5");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    drop(taken);
    let answer = get(&app, &format!("/w/{id}"), &[]).await;
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_node_sees_a_change_within_a_poll_and_no_expired_image_is_served() {
    let app = TestApp::spawn().await;
    let (connection, id, other) = widget_and_second_node(&app).await;
    poll(&other).await;
    let first = rendered(feedkeeper::widgets::served(&other, &id).await);
    // A new post arrives through this node's sync.
    app.sim
        .post_media(
            "shop",
            NewMedia {
                caption: Some("Brand new".into()),
                ..Default::default()
            },
        )
        .unwrap();
    app.advance(60);
    let now = app.state.clock.now();
    jobs::schedule(&app.state.db, SYNC_JOB, &connection, now, now)
        .await
        .unwrap();
    run_due_now(&app.state, "test").await.unwrap();
    // Until its poll, the other node serves what it has from memory.
    let cached = rendered(feedkeeper::widgets::served(&other, &id).await);
    assert!(std::sync::Arc::ptr_eq(&cached, &first));
    assert!(poll(&other).await.dropped >= 1);
    let fresh = rendered(feedkeeper::widgets::served(&other, &id).await);
    assert_ne!(fresh.html.etag, first.html.etag);
    assert!(String::from_utf8_lossy(&fresh.html.identity).contains("Brand new"));
    // A poll that finds nothing new drops nothing.
    app.advance(120);
    assert_eq!(poll(&other).await.dropped, 0);

    // Meta is down for days: syncs fail, and Instagram's image addresses expire. The widget keeps
    // every post, shown from feedkeeper's own copies: no expired address is ever served.
    app.sim
        .set_outage(meta_sim::Outage {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    app.advance(6 * 86_400);
    run_due_now(&app.state, "test").await.unwrap();
    let html = get(&app, &format!("/w/{id}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Brand new"), "{html}");
    assert!(
        !html.contains("oe="),
        "no Instagram address is left: {html}"
    );
    let feed: Value = get(&app, &format!("/w/{id}.json"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(!feed["posts"].as_array().unwrap().is_empty());
    assert!(!feed.to_string().contains("oe="), "{feed:#}");
    let picture = feed["profile"]["picture_url"].as_str().unwrap();
    assert!(
        picture.contains("/i/"),
        "the stored profile picture: {picture}"
    );
}

#[tokio::test]
async fn a_disconnected_account_leaves_every_nodes_widgets_at_once() {
    let app = TestApp::spawn().await;
    let (browser, connection) = shop(&app).await;
    let made = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    let edit_path = made.location().unwrap().to_owned();
    let id = public_id(&browser.get(&edit_path).await.body);
    let other = other_node(&app).await;
    poll(&other).await;
    let shows = |served: Served| {
        String::from_utf8_lossy(&rendered(served).html.identity).contains("Fresh bread")
    };
    assert!(shows(feedkeeper::widgets::served(&other, &id).await));

    let gone = browser
        .post(
            &format!("/connections/{connection}/disconnect"),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    poll(&other).await;
    assert!(!shows(feedkeeper::widgets::served(&other, &id).await));
    let feed: Value = get(&app, &format!("/w/{id}.json"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            feed["health"]["status"].as_str(),
            feed["posts"].as_array().map(Vec::len)
        ),
        (Some("disconnected"), Some(0))
    );
    // The dashboard says so, and the widget can be pointed at another account.
    let list = browser.get("/widgets").await;
    assert!(
        list.body.contains("No account (it was disconnected)"),
        "{}",
        list.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_poller_stalled_serves_no_deleted_widget_or_purged_posts() {
    let app = TestApp::spawn_with(|c| {
        c.widgets.poll_interval_ms = 100;
        c.widgets.poll_stale_secs = 2;
        c.lifecycle.deauthorized_grace_days = 0;
    })
    .await;
    let (browser, connection) = shop(&app).await;
    let owner = user_id(&app, "owner@example.com").await;
    let kept = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    let kept = public_id(&browser.get(kept.location().unwrap()).await.body);
    let deleted = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    let deleted_path = deleted.location().unwrap().to_owned();
    let deleted = public_id(&browser.get(&deleted_path).await.body);
    // The app's node has both in memory, showing the shop's posts.
    for id in [&kept, &deleted] {
        let body = get(&app, &format!("/w/{id}"), &[])
            .await
            .text()
            .await
            .unwrap();
        assert!(body.contains("Fresh bread"));
    }
    assert!(app.state.widgets.trusted());

    // Its poller stalls (a starved pool, a partition) ...
    let stalled = feedkeeper::failpoint::arm(feedkeeper::failpoint::WIDGET_POLL, &app.state.node);
    stalled.reached().await;
    // ... while another node deletes one widget and purges the shop's data (Meta says the app
    // was removed; the grace period is zero here).
    let other = other_node(&app).await;
    let widget_id = deleted_path
        .trim_start_matches("/widgets/")
        .parse()
        .map(feedkeeper::ids::WidgetId)
        .unwrap();
    assert!(
        feedkeeper::widgets::delete(&other, owner, widget_id)
            .await
            .unwrap()
    );
    let c: i64 = connection.parse().unwrap();
    feedkeeper::connections::deauthorize(&other, feedkeeper::ids::ConnectionId(c))
        .await
        .unwrap();
    let report = run_due_now(&other, "other").await.unwrap();
    assert_eq!(report.purge.finished, 1, "{report:?}");

    // Once the stall outlasts widgets.poll_stale_secs, the node trusts nothing in memory.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert!(!app.state.widgets.trusted());
    let answer = get(&app, &format!("/w/{deleted}"), &[]).await;
    assert_eq!(answer.status(), StatusCode::GONE);
    let body = get(&app, &format!("/w/{kept}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains("Fresh bread"), "purged posts served: {body}");

    // It recovers and catches up from where it left off.
    stalled.release();
    trusted_soon(&app.state).await;
    let loads = app.state.widgets.loads();
    assert_eq!(
        get(&app, &format!("/w/{deleted}"), &[]).await.status(),
        StatusCode::GONE
    );
    let body = get(&app, &format!("/w/{kept}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains("Fresh bread"), "purged posts served: {body}");
    let body = get(&app, &format!("/w/{kept}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains("Fresh bread"));
    assert!(
        app.state.widgets.loads() - loads <= 1,
        "served from memory again"
    );
}

#[tokio::test]
async fn writers_with_skewed_clocks_are_seen_by_every_node() {
    let app = TestApp::spawn().await;
    let (browser, connection) = shop(&app).await;
    let owner = user_id(&app, "owner@example.com").await;
    let made = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    let path = made.location().unwrap().to_owned();
    let id = public_id(&browser.get(&path).await.body);
    let reader = other_node(&app).await;
    poll(&reader).await;
    assert!(
        String::from_utf8_lossy(
            &rendered(feedkeeper::widgets::served(&reader, &id).await)
                .html
                .identity
        )
        .contains("Fresh bread")
    );
    // A writer whose clock is an hour behind the reader's (and one a day ahead) changes the
    // widget: the reader drops what it had all the same.
    for skew in [-3600, 86_400] {
        let writer = feedkeeper::state::AppState::build(
            (*app.state.config).clone(),
            feedkeeper::clock::Clock::manual(app.state.clock.now() + skew),
        )
        .await
        .unwrap();
        let before = rendered(feedkeeper::widgets::served(&reader, &id).await);
        let settings = feedkeeper::widgets::settings::WidgetSettings {
            header: skew > 0,
            ..Default::default()
        };
        let widget_id = path
            .trim_start_matches("/widgets/")
            .parse()
            .map(feedkeeper::ids::WidgetId)
            .unwrap();
        feedkeeper::widgets::update(
            &writer,
            owner,
            widget_id,
            "Skewed",
            feedkeeper::ids::ConnectionId(connection.parse().unwrap()),
            &settings,
        )
        .await
        .unwrap();
        assert_eq!(poll(&reader).await.dropped, 1, "skew {skew}");
        let after = rendered(feedkeeper::widgets::served(&reader, &id).await);
        assert!(!std::sync::Arc::ptr_eq(&before, &after));
    }
}

#[tokio::test]
async fn one_owner_may_have_only_so_many_widgets() {
    let app = TestApp::spawn_with(|c| c.widgets.max_per_user = 2).await;
    let (browser, connection) = shop(&app).await;
    for _ in 0..2 {
        let made = browser
            .post("/widgets", &form(&browser.csrf, &connection))
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER);
    }
    let refused = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Nothing was saved: you have 2 widgets"),
        "{}",
        refused.body
    );
    let owner = user_id(&app, "owner@example.com").await;
    assert_eq!(
        stored::list_owned(&app.state.db, owner)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn what_a_hostile_meta_sends_never_reaches_a_widget() {
    let app = TestApp::spawn().await;
    app.sim
        .patch_settings(&serde_json::json!({"hostile_content": true}))
        .unwrap();
    let (browser, connection) = shop(&app).await;
    let id = widget_made(&browser, &connection).await;
    let c = feedkeeper::ids::ConnectionId(connection.parse().unwrap());
    let stored_posts = feedkeeper::db::posts::list_posts(&app.state.db, c, 100)
        .await
        .unwrap();
    assert!(!stored_posts.is_empty());
    for p in &stored_posts {
        let caption = p.caption.as_deref().unwrap_or_default();
        assert!(caption.chars().count() <= feedkeeper::feeds::MAX_CAPTION_CHARS);
        assert_eq!(p.permalink, None, "a javascript: permalink is not kept");
    }
    let html = get(&app, &format!("/w/{id}"), &[])
        .await
        .text()
        .await
        .unwrap();
    let json = get(&app, &format!("/w/{id}.json"), &[])
        .await
        .text()
        .await
        .unwrap();
    for body in [&html, &json] {
        for hostile in [
            "javascript:",
            "evil.example",
            "http://scontent",
            "<script>alert",
            "<img src=x",
        ] {
            assert!(!body.contains(hostile), "{hostile} reached the widget");
        }
        assert!(
            body.len() < 200_000,
            "one post adds at most its bounded caption"
        );
    }
    // Posts with an image on the list still show (their captions as text).
    let feed: Value = serde_json::from_str(&json).unwrap();
    assert!(!feed["posts"].as_array().unwrap().is_empty(), "{feed:#}");
    assert_eq!(feed["profile"]["website"], Value::Null);
    assert_eq!(feed["profile"]["picture_url"], Value::Null);
}

#[test]
fn every_text_from_instagram_is_marked_untrusted_in_the_schema() {
    let schema: Value =
        serde_json::from_str(include_str!("../../../../docs/widget-feed.schema.json")).unwrap();
    // Ours, not Instagram's words: ids, times, and names from a fixed list.
    let ours = ["id", "timestamp", "media_type", "urls_expire_at"];
    for (object, properties) in [
        ("profile", &schema["properties"]["profile"]["properties"]),
        ("post", &schema["$defs"]["post"]["properties"]),
        ("child", &schema["$defs"]["child"]["properties"]),
    ] {
        for (name, field) in properties.as_object().unwrap() {
            let texts = |f: &Value| {
                f["type"] == "string"
                    || f["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&Value::from("string")))
            };
            let is_text = texts(field) || texts(&field["items"]);
            if !is_text || ours.contains(&name.as_str()) {
                continue;
            }
            let marked = field["x-untrusted"] == true || field["items"]["x-untrusted"] == true;
            assert!(
                marked,
                "{object}.{name} is Instagram's text but not marked untrusted"
            );
            assert!(
                field["description"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Untrusted"),
                "{object}.{name}"
            );
        }
    }
}

#[tokio::test]
async fn widgets_say_when_their_account_needs_the_owner_and_a_disconnect_names_them() {
    let app = TestApp::spawn().await;
    let (browser, connection) = shop(&app).await;
    let made = browser
        .post("/widgets", &form(&browser.csrf, &connection))
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let widget_page = made.location().unwrap().to_owned();
    let list = browser.get("/widgets").await.body;
    assert!(list.contains("status-ok\">Live<"), "{list}");

    // The login dies: the list and the widget's page say since when its posts are frozen,
    // why, and offer the way out.
    app.sim
        .apply_event("shop", meta_sim::AccountEvent::PasswordChanged)
        .await
        .unwrap();
    app.advance(2 * 3600);
    run_due_now(&app.state, "test").await.unwrap();
    let list = browser.get("/widgets").await.body;
    assert!(
        list.contains("Posts frozen since") && list.contains("@shop needs reconnecting"),
        "{list}"
    );
    assert!(
        list.contains(&format!("href=\"/connections/{connection}\""))
            && list.contains("Reconnect @shop"),
        "{list}"
    );
    let page = browser.get(&widget_page).await.body;
    assert!(page.contains("Posts frozen since"), "{page}");

    // Disconnecting names the widget it empties; afterwards the widget's page says so, and
    // visitors are not told "No posts to show yet".
    let confirm = browser
        .get(&format!("/connections/{connection}/disconnect"))
        .await
        .body;
    assert!(
        confirm.contains("This widget will show nothing")
            && confirm.contains("<li>Shop website</li>"),
        "{confirm}"
    );
    let gone = browser
        .post(
            &format!("/connections/{connection}/disconnect"),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    let page = browser.get(&widget_page).await.body;
    assert!(page.contains("its account was disconnected"), "{page}");
    let id = public_id(&page);
    let html = get(&app, &format!("/w/{id}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("No posts to show yet"), "{html}");
}

/// A widget's uncompressed document (large: long captions) leaves from its file with
/// `sendfile`, byte for byte what its compressed form holds; a node that has not started
/// serving keeps it in memory only, and its answers are the same.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn large_plain_answers_are_sent_from_files_and_arrive_whole() {
    use feedkeeper::zero_copy::{MIN_LEN, bytes_sent_from_files, is_file_backed};

    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let connection = connect_instagram(&app, owner, "shop").await.id.to_string();
    for n in 0..12 {
        let caption = format!("{n}: {}", "Fresh bread and a long story. ".repeat(60));
        app.sim
            .post_media(
                "shop",
                NewMedia {
                    kind: MediaKind::Image,
                    caption: Some(caption),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    run_due_now(&app.state, "test").await.unwrap();
    let id = widget_made(&browser, &connection).await;

    let sent_before = bytes_sent_from_files();
    let plain = get(&app, &format!("/w/{id}"), &[])
        .await
        .bytes()
        .await
        .unwrap();
    assert!(plain.len() >= MIN_LEN, "only {} bytes", plain.len());
    // The count is the process's (exact under nextest, one process per test; other tests may
    // add to it under `cargo test`, which is why the rendering itself is checked below too).
    // Counted just after the kernel took the bytes, so perhaps a moment after they arrived.
    let wait_until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bytes_sent_from_files() - sent_before < plain.len() as u64 {
        assert!(
            std::time::Instant::now() < wait_until,
            "the document was copied, not sent from its file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rendering = rendered(feedkeeper::widgets::served(&app.state, &id).await);
    assert!(is_file_backed(&rendering.html.identity));
    assert_eq!(&rendering.html.identity[..], &plain[..]);
    let br = get(&app, &format!("/w/{id}"), &[("accept-encoding", "br")]).await;
    assert_eq!(br.headers()["content-encoding"], "br");
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&br.bytes().await.unwrap()[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(
        decoded == plain,
        "the compressed and plain documents differ"
    );

    let node = other_node(&app).await;
    poll(&node).await;
    let there = rendered(feedkeeper::widgets::served(&node, &id).await);
    assert!(!is_file_backed(&there.html.identity));
    assert_eq!(&there.html.identity[..], &plain[..]);
}
