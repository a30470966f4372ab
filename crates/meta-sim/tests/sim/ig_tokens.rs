//! Instagram token lifecycle: short → long exchange, the 24-hour refresh rule, GET-only
//! refresh, same/new refreshed strings, expiry wording, and token-prefix checks.

use serde_json::json;

use super::support::*;

fn me(token: &str) -> String {
    format!("/graph.instagram.com/v23.0/me?fields=username&access_token={token}")
}

fn refresh(token: &str) -> String {
    format!(
        "/graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token={token}"
    )
}

#[tokio::test]
async fn short_token_exchanges_for_a_long_one() {
    let h = harness().await;
    h.account("cafe", 0);
    let short = h.ig_short_token("cafe").await;
    let r = h
        .get(&format!(
            "/graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret={IG_SECRET}&access_token={short}"
        ))
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 5_183_944);
    let long = v["access_token"].as_str().expect("token");
    assert!(long.starts_with("IGAA") && long != short);

    // The short token dies after an hour; the long one lives on.
    h.sim.advance_clock(3_601);
    let dead = h.get(&me(&short)).await;
    assert_eq!(dead.graph_error(), (190, Some(463)));
    assert!(
        dead.message()
            .starts_with("Error validating access token: Session has expired on ")
    );
    assert!(dead.message().contains(". The current time is "));
    assert_eq!(h.get(&me(long)).await.status, 200);
    let r = h
        .get(&format!(
            "/graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret={IG_SECRET}&access_token={short}"
        ))
        .await;
    assert_eq!(r.graph_error(), (190, Some(463)));

    let wrong_secret = h
        .get(&format!(
            "/graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret=nope&access_token={long}"
        ))
        .await;
    assert_eq!(wrong_secret.graph_error().0, 1);
}

#[tokio::test]
async fn exchange_can_be_switched_off() {
    let h = harness().await;
    h.account("cafe", 0);
    let short = h.ig_short_token("cafe").await;
    h.sim
        .patch_settings(&json!({"ig_exchange_supported": false}))
        .expect("settings");
    let r = h
        .get(&format!(
            "/graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret={IG_SECRET}&access_token={short}"
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "Unsupported request - method type: get");
}

#[tokio::test]
async fn refresh_follows_the_24_hour_rule() {
    let h = harness().await;
    h.account("cafe", 0);
    let long = h.ig_long_token("cafe").await;

    h.sim.advance_clock(23 * 3_600);
    let early = h.get(&refresh(&long)).await;
    assert_eq!(early.status, 400);
    assert_eq!(early.graph_error(), (100, None));
    assert!(
        early.message().contains("too new to be refreshed"),
        "{}",
        early.message()
    );

    h.sim.advance_clock(2 * 3_600);
    let ok = h.get(&refresh(&long)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let v = ok.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 5_183_944);
    let fresh = v["access_token"].as_str().expect("token").to_owned();
    assert_ne!(fresh, long, "refresh_returns_new_token defaults to true");
    // The old string keeps working until its own expiry.
    assert_eq!(h.get(&me(&long)).await.status, 200);
    // The new one counts its 24 hours from now.
    assert_eq!(h.get(&refresh(&fresh)).await.graph_error(), (100, None));

    // Past the old token's 60 days it is expired and cannot be refreshed; the new one lives.
    h.sim.advance_clock(59 * 86_400);
    let expired = h.get(&refresh(&long)).await;
    assert_eq!(expired.graph_error(), (190, Some(463)));
    assert!(expired.message().contains("Session has expired on"));
    assert!(expired.message().ends_with(" PST.") || expired.message().ends_with(" PDT."));
    assert_eq!(h.get(&me(&fresh)).await.status, 200);
}

#[tokio::test]
async fn refresh_can_return_the_same_string() {
    let h = harness().await;
    h.account("cafe", 0);
    h.sim
        .patch_settings(&json!({"refresh_returns_new_token": false}))
        .expect("settings");
    let long = h.ig_long_token("cafe").await;
    h.sim.advance_clock(50 * 86_400);
    let v = h.get(&refresh(&long)).await.json();
    assert_eq!(v["access_token"], json!(long));
    // The expiry moved: 20 more days would have killed the original.
    h.sim.advance_clock(20 * 86_400);
    assert_eq!(h.get(&me(&long)).await.status, 200);
}

#[tokio::test]
async fn refresh_is_get_only_and_needs_a_long_token() {
    let h = harness().await;
    h.account("cafe", 0);
    let long = h.ig_long_token("cafe").await;
    h.sim.advance_clock(2 * 86_400);
    let r = h.read(h.http.post(h.url(&refresh(&long)))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.graph_error(), (100, None));
    assert_eq!(r.message(), "Unsupported request - method type: post");

    let short = h.ig_short_token("cafe").await;
    let r = h.get(&refresh(&short)).await;
    assert_eq!(r.graph_error(), (100, None));
}

#[tokio::test]
async fn tokens_are_checked_by_prefix_and_presence() {
    let h = harness().await;
    h.account("cafe", 0);
    let r = h.get("/graph.instagram.com/me?fields=id").await;
    assert_eq!(r.graph_error(), (2500, None));
    assert_eq!(
        r.message(),
        "An active access token must be used to query information about the current user."
    );
    for bad in ["EAAsomething", "IGAAgarbled", "%00%FF"] {
        let r = h
            .get(&format!("/graph.instagram.com/me?access_token={bad}"))
            .await;
        assert_eq!(r.graph_error(), (190, None), "{bad}");
        assert_eq!(
            r.message(),
            "Invalid OAuth access token - Cannot parse access token"
        );
        let e = &r.json()["error"];
        assert_eq!(e["type"], "OAuthException");
        assert!(e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // Authorization: Bearer works as well as the query parameter.
    let long = h.ig_long_token("cafe").await;
    let r = h
        .read(
            h.http
                .get(h.url("/graph.instagram.com/me?fields=username"))
                .bearer_auth(&long),
        )
        .await;
    assert_eq!(r.json(), json!({"username": "cafe"}));
}

#[tokio::test]
async fn dashboard_tokens_skip_the_login() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.sim.generate_token("cafe").expect("token");
    assert_eq!(t.expires_in, 5_183_944);
    assert_eq!(h.get(&me(&t.access_token)).await.json()["username"], "cafe");
}
