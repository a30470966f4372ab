//! The control API: JSON in and out, clear 400/404 errors for malformed input, the request
//! log with redaction, settings, clock, reset, the demo set and the index page.

use reqwest::Method;
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn malformed_input_gets_clear_json_errors() {
    let h = harness().await;
    let cases = [
        (
            Method::POST,
            "/__sim/accounts",
            r#"{"username": "cafe""#,
            400,
        ),
        (Method::POST, "/__sim/accounts", r#"{"username": 5}"#, 400),
        (
            Method::POST,
            "/__sim/accounts",
            r#"{"username": "cafe", "posts": "many"}"#,
            400,
        ),
        (
            Method::POST,
            "/__sim/accounts",
            r#"{"username": "cafe", "surprise": 1}"#,
            400,
        ),
        (Method::POST, "/__sim/accounts", "", 400),
        (
            Method::POST,
            "/__sim/accounts/nobody/media",
            r#"{"kind": "IMAGE"}"#,
            404,
        ),
        (
            Method::POST,
            "/__sim/accounts/nobody/events",
            r#"{"event": "password_changed"}"#,
            404,
        ),
        (Method::GET, "/__sim/accounts/nobody", "", 404),
        (
            Method::PATCH,
            "/__sim/settings",
            r#"{"no_such_setting": true}"#,
            400,
        ),
        (
            Method::PATCH,
            "/__sim/settings",
            r#"{"app_calls_per_hour": "lots"}"#,
            400,
        ),
        (
            Method::POST,
            "/__sim/clock",
            r#"{"advance_secs": 1, "set": 2}"#,
            400,
        ),
        (
            Method::POST,
            "/__sim/clock",
            r#"{"advance_secs": "soon"}"#,
            400,
        ),
        (
            Method::PUT,
            "/__sim/app",
            r#"{"redirect_uris": ["not a url"]}"#,
            400,
        ),
        (
            Method::POST,
            "/__sim/throttle",
            r#"{"scope": "galaxy", "secs": 5}"#,
            400,
        ),
        (
            Method::POST,
            "/__sim/events",
            r#"{"event": "password_changed"}"#,
            400,
        ),
        (Method::DELETE, "/__sim/media/123", "", 404),
        (Method::GET, "/__sim/requests?since=abc", "", 400),
        (Method::GET, "/__sim/nope", "", 404),
        (Method::DELETE, "/__sim/accounts", "", 405),
    ];
    for (method, path, body, status) in cases {
        let r = h.send_json(method.clone(), path, body).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {path} {body}: {}",
            r.text
        );
        let message = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "{method} {path}: {}", r.text);
    }
    let r = h
        .send_json(
            Method::PATCH,
            "/__sim/settings",
            r#"{"app_calls_per_hour": "lots"}"#,
        )
        .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("app_calls_per_hour")
    );
}

#[tokio::test]
async fn accounts_media_and_settings_round_trip() {
    let h = harness().await;
    let r = h
        .send_json(
            Method::POST,
            "/__sim/accounts",
            r#"{"username":"cafe","kind":"creator","facebook_page":true,"posts":2,"biography":"hi"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let acct = r.json();
    assert_eq!(acct["kind"], "creator");
    assert_eq!(acct["facebook_user"], "cafe");
    assert_eq!(acct["password"], "sim-password");
    assert_eq!(
        h.get("/__sim/accounts")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let r = h
        .send_json(
            Method::POST,
            "/__sim/accounts/cafe/media",
            r#"{"kind":"CAROUSEL_ALBUM","caption":"slides","children":["IMAGE","VIDEO"]}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let r = h
        .send_json(
            Method::PATCH,
            &format!("/__sim/media/{id}"),
            r#"{"caption":"new"}"#,
        )
        .await;
    assert_eq!(r.json()["caption"], "new");
    assert_eq!(
        h.get("/__sim/accounts/cafe/media")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let r = h
        .send_json(Method::DELETE, &format!("/__sim/media/{id}"), "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get("/__sim/accounts/cafe").await.json()["media_count"], 2);

    let s = h
        .send_json(
            Method::PATCH,
            "/__sim/settings",
            r#"{"refresh_returns_new_token":false}"#,
        )
        .await
        .json();
    assert_eq!(s["refresh_returns_new_token"], false);
    assert_eq!(
        h.get("/__sim/settings").await.json()["cdn_url_window_secs"],
        3_600
    );

    let c = h
        .send_json(Method::POST, "/__sim/clock", r#"{"advance_secs":86400}"#)
        .await
        .json();
    assert_eq!(c["now"], meta_sim::DEFAULT_START_TIME + 86_400);
    let c = h
        .send_json(Method::POST, "/__sim/clock", r#"{"set":1800000000}"#)
        .await
        .json();
    assert_eq!(c["now"], 1_800_000_000);
    assert_eq!(
        h.get("/__sim/clock").await.json()["iso"],
        "2027-01-15T08:00:00Z"
    );

    let r = h
        .send_json(
            Method::PUT,
            "/__sim/app",
            r#"{"redirect_uris":["https://app.example/cb"],"mode":"development","testers":["cafe"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.sim.app().testers, vec!["cafe".to_owned()]);
    assert_eq!(
        h.sim.app().instagram_app_id,
        IG_APP,
        "missing fields take defaults"
    );

    assert_eq!(
        h.send_json(Method::POST, "/__sim/reset", "").await.status,
        200
    );
    assert_eq!(h.get("/__sim/accounts").await.json(), json!([]));
    assert_eq!(h.sim.now(), meta_sim::DEFAULT_START_TIME);
}

#[tokio::test]
async fn request_log_redacts_secrets() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.ig_long_token("cafe").await;
    let before = h.sim.requests(None).last().map(|r| r.seq).unwrap_or(0);
    let graph = h.running.urls().instagram_graph_url;
    assert_eq!(graph, format!("{}/graph.instagram.com", h.base));
    h.get_url(format!("{graph}/v23.0/me?fields=id&access_token={t}"))
        .await;
    let log = h
        .get(&format!("/__sim/requests?since={before}"))
        .await
        .json();
    let entries = log.as_array().expect("array");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["host"], "graph.instagram.com");
    assert_eq!(entries[0]["path"], "/v23.0/me");
    assert_eq!(entries[0]["query"], "fields=id&access_token=[redacted]");
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[0]["method"], "GET");
    let all = h.get("/__sim/requests").await.text;
    assert!(
        !all.contains(&t) && !all.contains(IG_SECRET),
        "no secrets in the log"
    );
}

#[tokio::test]
async fn demo_set_and_index_page() {
    let h = harness().await;
    let r = h.send_json(Method::POST, "/__sim/demo", "").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let demo = r.json();
    assert_eq!(demo.as_array().map(Vec::len), Some(4));
    let bakery = h.sim.list_media("sunny.bakery").expect("media");
    assert_eq!(bakery.len(), 12);
    use meta_sim::MediaKind::*;
    for kind in [Image, Video, Reels, CarouselAlbum] {
        assert!(bakery.iter().any(|m| m.kind == kind), "{kind:?}");
    }
    assert!(bakery.iter().any(|m| m.kind == Reels && m.copyrighted));
    let accounts = h.sim.list_accounts();
    assert!(
        accounts
            .iter()
            .any(|a| a.kind == meta_sim::AccountKind::Creator)
    );
    assert!(
        accounts
            .iter()
            .any(|a| a.kind == meta_sim::AccountKind::Personal)
    );
    assert!(accounts.iter().any(|a| a.page_id.is_some()));
    // The demo logins work.
    let login = h
        .read(
            h.http
                .post(h.url("/www.instagram.com/oauth/authorize"))
                .form(&{
                    let mut f = h.authorize_query("instagram_business_basic", "s");
                    f.extend([
                        ("username".into(), "sunny.bakery".into()),
                        (
                            "password".into(),
                            demo[0]["password"].as_str().expect("pw").into(),
                        ),
                    ]);
                    f
                }),
        )
        .await;
    assert!(input_value(&login.text, "login_ticket").is_some());

    for path in ["/", "/__sim/"] {
        let page = h.get(path).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("graph.instagram.com"));
        assert!(page.text.contains("sunny.bakery"));
    }
    assert_eq!(
        h.send_json(Method::POST, "/__sim/demo", "").await.status,
        409
    );

    // The page's buttons break an account (or post to it) and come back saying what happened.
    let page = h.get("/__sim/").await;
    assert!(
        page.text
            .contains("action=\"/__sim/ui/accounts/sunny.bakery\"")
            && page.text.contains("value=\"password\"")
            && page.text.contains("Start an outage"),
        "{}",
        page.text
    );
    let token = h.sim.generate_token("sunny.bakery").expect("token");
    let pressed = h
        .read(
            h.http
                .post(h.url("/__sim/ui/accounts/sunny.bakery"))
                .form(&[("what", "password")]),
        )
        .await;
    assert_eq!(pressed.status, 303, "{}", pressed.text);
    let back = h.get("/__sim/?done=password").await;
    assert!(
        back.text.contains("The password was changed"),
        "{}",
        back.text
    );
    let me = h
        .get(&format!(
            "/graph.instagram.com/me?fields=id&access_token={}",
            token.access_token
        ))
        .await;
    assert_eq!(me.status, 400, "the old token no longer works: {}", me.text);
    let posts = h.sim.list_media("sunny.bakery").expect("media").len();
    h.read(
        h.http
            .post(h.url("/__sim/ui/accounts/sunny.bakery"))
            .form(&[("what", "post")]),
    )
    .await;
    assert_eq!(
        h.sim.list_media("sunny.bakery").expect("media").len(),
        posts + 1
    );
    h.read(h.http.post(h.url("/__sim/ui/outage")).form(&[("on", "1")]))
        .await;
    assert!(h.sim.outage().is_some());
    let page = h.get("/__sim/").await;
    assert!(page.text.contains("End the outage"), "{}", page.text);
    h.read(h.http.post(h.url("/__sim/ui/outage")).form(&[("on", "0")]))
        .await;
    assert!(h.sim.outage().is_none());
    // Another site's page cannot press them.
    let cross_site = h
        .read(
            h.http
                .post(h.url("/__sim/ui/outage"))
                .header("sec-fetch-site", "cross-site")
                .form(&[("on", "1")]),
        )
        .await;
    assert_eq!(cross_site.status, 400);
    assert!(h.sim.outage().is_none());
    let unknown = h
        .read(
            h.http
                .post(h.url("/__sim/ui/accounts/sunny.bakery"))
                .form(&[("what", "explode")]),
        )
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn same_seed_same_ids() {
    let a = harness().await;
    let b = harness().await;
    let x = a.account("cafe", 3);
    let y = b.account("cafe", 3);
    assert_eq!(x.ig_user_id, y.ig_user_id);
    assert_eq!(
        a.sim.list_media("cafe").expect("m"),
        b.sim.list_media("cafe").expect("m")
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let h = harness().await;
    let base = h.base.clone();
    assert_eq!(h.get("/__sim/clock").await.status, 200);
    let Harness { running, http, .. } = h;
    running.shutdown().await;
    assert!(
        http.get(format!("{base}/__sim/clock"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn garbage_requests_get_answers_not_crashes() {
    let h = harness().await;
    h.page_account("cafe", "owner", 3);
    let t = h.ig_long_token("cafe").await;
    let paths = [
        format!("/graph.instagram.com/me?fields=children%7Bchildren%7Bid%7D%7D&access_token={t}"),
        format!("/graph.instagram.com/me/media?fields=children%7Bid&access_token={t}"),
        format!("/graph.instagram.com/me/media?limit=-5&after=%FF%FE&access_token={t}"),
        format!("/graph.instagram.com/me/media?limit=abc&access_token={t}"),
        format!("/graph.instagram.com/me/media?since=yesterday&access_token={t}"),
        format!("/graph.instagram.com/me/media?before=QVFJOjE6&access_token={t}"),
        format!("/graph.instagram.com/%E2%82%AC/%25/x/y/z?access_token={t}"),
        format!("/graph.instagram.com/v99999999999999999999.0/me?access_token={t}"),
        "/graph.facebook.com/debug_token?input_token=&access_token=%7C".to_owned(),
        "/graph.facebook.com/oauth/access_token".to_owned(),
        "/www.instagram.com/oauth/authorize?client_id=%00&scope=%2C%2C".to_owned(),
        "/www.facebook.com/v1/dialog/oauth?config_id=".to_owned(),
        "/scontent.cdninstagram.com/v/t51.29350-15/_n.jpg?oh=00_&oe=zz".to_owned(),
        "/scontent.cdninstagram.com/".to_owned(),
        "/api.instagram.com/nothing/here".to_owned(),
    ];
    for p in &paths {
        let r = h.get(p).await;
        assert!(r.status.as_u16() < 500, "{p}: {} {}", r.status, r.text);
    }
    let posts: [(&str, &str, &[u8]); 4] = [
        (
            "/api.instagram.com/oauth/access_token",
            "multipart/form-data",
            b"--x\r\n",
        ),
        (
            "/api.instagram.com/oauth/access_token",
            "multipart/form-data; boundary=x",
            b"\xff\xfe--x--",
        ),
        (
            "/www.instagram.com/oauth/authorize",
            "application/x-www-form-urlencoded",
            b"step=consent&login_ticket=%ZZ",
        ),
        ("/www.facebook.com/dialog/oauth", "text/plain", b"\x00\x01"),
    ];
    for (path, ct, body) in posts {
        let r = h
            .read(
                h.http
                    .post(h.url(path))
                    .header("content-type", ct)
                    .body(body.to_vec()),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{path}: {} {}", r.status, r.text);
    }
    assert_eq!(h.get("/__sim/clock").await.status, 200);
}
