//! Rate limits: usage headers as integer percentages, BUC (80002) and app (4) blocks that
//! persist while called, and forced throttles for codes 4/17/32/613/80002.

use meta_sim::{Throttle, ThrottleScope};
use serde_json::{Value, json};

use super::support::*;

fn me(token: &str) -> String {
    format!("/graph.instagram.com/me?fields=username&access_token={token}")
}

#[tokio::test]
async fn instagram_account_budget_shows_usage_then_blocks() {
    let h = harness().await;
    let acct = h.account("cafe", 0);
    h.sim
        .patch_settings(&json!({"ig_account_calls_per_day": 4}))
        .expect("settings");
    let t = h.ig_long_token("cafe").await;
    for expected in [25, 50, 75, 100] {
        let r = h.get(&me(&t)).await;
        assert_eq!(r.status, 200);
        let usage: Value =
            serde_json::from_str(&r.header("x-business-use-case-usage").expect("BUC header"))
                .expect("json");
        let entry = &usage[&acct.ig_user_id][0];
        assert_eq!(entry["type"], "instagram");
        assert_eq!(entry["call_count"], expected);
        assert_eq!(entry["estimated_time_to_regain_access"], 0);
        assert!(
            r.header("x-app-usage").is_none(),
            "IG tokens get the BUC header only"
        );
    }
    let blocked = h.get(&me(&t)).await;
    assert_eq!(blocked.status, 400);
    assert_eq!(blocked.graph_error(), (80_002, Some(2_446_079)));
    assert_eq!(
        blocked.message(),
        "There have been too many calls to this Instagram account. Wait a bit and try again."
    );
    let usage: Value =
        serde_json::from_str(&blocked.header("x-business-use-case-usage").expect("header"))
            .expect("json");
    assert!(usage[&acct.ig_user_id][0]["estimated_time_to_regain_access"].as_i64() > Some(0));

    // Calls while blocked keep counting: four more an hour later keep the window full…
    h.sim.advance_clock(3_600);
    for _ in 0..4 {
        assert_eq!(h.get(&me(&t)).await.graph_error().0, 80_002);
    }
    // …so a day after the first calls the account is still blocked,
    h.sim.advance_clock(23 * 3_600 + 1);
    assert_eq!(h.get(&me(&t)).await.graph_error().0, 80_002);
    // and only a day after the blocked calls does it recover.
    h.sim.advance_clock(24 * 3_600);
    assert_eq!(h.get(&me(&t)).await.status, 200);
}

#[tokio::test]
async fn app_budget_applies_to_user_tokens_on_the_facebook_host() {
    let h = harness().await;
    h.page_account("cafe", "owner", 0);
    h.sim
        .patch_settings(&json!({"app_calls_per_hour": 2}))
        .expect("settings");
    let user = h.fb_user_token("owner", FB_SCOPES).await;
    let path = format!("/graph.facebook.com/v23.0/me?access_token={user}");
    let first = h.get(&path).await;
    let usage: Value =
        serde_json::from_str(&first.header("x-app-usage").expect("header")).expect("json");
    assert_eq!(usage["call_count"], 50);
    assert!(usage["total_time"].is_u64() && usage["total_cputime"].is_u64());
    assert!(first.header("x-business-use-case-usage").is_none());
    assert_eq!(h.get(&path).await.status, 200);
    let blocked = h.get(&path).await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.graph_error(), (4, None));
    assert_eq!(blocked.message(), "(#4) Application request limit reached");
    h.sim.advance_clock(3_601);
    assert_eq!(h.get(&path).await.status, 200);
}

#[tokio::test]
async fn no_usage_header_below_one_percent() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.ig_long_token("cafe").await;
    assert!(
        h.get(&me(&t))
            .await
            .header("x-business-use-case-usage")
            .is_none()
    );
}

#[tokio::test]
async fn forced_throttles_produce_each_code_and_extend_while_called() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 0);
    h.account("other", 0);
    let t = h.ig_long_token("cafe").await;
    let other = h.ig_long_token("other").await;
    let user = h
        .fb_long_token(&h.fb_user_token("owner", FB_SCOPES).await)
        .await;
    let (_, page) = h.page_token(&user).await;

    let cases = [
        (ThrottleScope::App, 4, 403),
        (ThrottleScope::User, 17, 400),
        (ThrottleScope::Custom, 613, 400),
        (ThrottleScope::Account, 80_002, 400),
    ];
    for (scope, code, status) in cases {
        h.sim
            .throttle(Throttle {
                scope,
                account: Some("cafe".into()),
                secs: 600,
            })
            .expect("throttle");
        let r = h.get(&me(&t)).await;
        assert_eq!(
            (r.status.as_u16(), r.graph_error().0),
            (status, code),
            "{scope:?}"
        );
        assert_eq!(r.json()["error"]["is_transient"], true);
        assert_eq!(
            h.get(&me(&other)).await.status,
            200,
            "only cafe is throttled"
        );
        h.sim.clear_throttles();
    }

    // Page throttle hits Page tokens only.
    h.sim
        .throttle(Throttle {
            scope: ThrottleScope::Page,
            account: None,
            secs: 600,
        })
        .expect("throttle");
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}?fields=username&access_token={page}",
            acct.ig_user_id
        ))
        .await;
    assert_eq!(r.graph_error().0, 32);
    assert_eq!(h.get(&me(&t)).await.status, 200);
    h.sim.clear_throttles();

    // Calling while blocked restarts the block.
    h.sim
        .throttle(Throttle {
            scope: ThrottleScope::User,
            account: None,
            secs: 600,
        })
        .expect("throttle");
    h.sim.advance_clock(500);
    assert_eq!(h.get(&me(&t)).await.graph_error().0, 17);
    h.sim.advance_clock(500);
    assert_eq!(
        h.get(&me(&t)).await.graph_error().0,
        17,
        "extended by the call at 500 s"
    );
    h.sim.advance_clock(601);
    assert_eq!(h.get(&me(&t)).await.status, 200);

    // Through the control API too.
    let r = h
        .send_json(
            reqwest::Method::POST,
            "/__sim/throttle",
            r#"{"scope":"custom","secs":60}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.get(&me(&t)).await.graph_error().0, 613);
}
