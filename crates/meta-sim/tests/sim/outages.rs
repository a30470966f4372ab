//! Outages: every failure kind, host filtering, and clearing.

use std::time::Duration;

use meta_sim::Outage;

use super::support::*;

fn me(token: &str) -> String {
    format!("/graph.instagram.com/me?fields=username&access_token={token}")
}

#[tokio::test]
async fn each_failure_kind_looks_right() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.ig_long_token("cafe").await;

    h.sim
        .set_outage(Outage {
            error_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.graph_error(), (2, None));
    assert_eq!(r.json()["error"]["is_transient"], true);
    assert_eq!(
        r.message(),
        "An unexpected error has occurred. Please retry your request later."
    );

    h.sim
        .set_outage(Outage {
            html_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.status, 502);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );

    h.sim
        .set_outage(Outage {
            malformed_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.text).is_err(),
        "truncated JSON"
    );

    h.sim
        .set_outage(Outage {
            empty_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.status, 200);
    assert!(r.text.is_empty());

    h.sim
        .set_outage(Outage {
            timeout_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");
    let err = h
        .http
        .get(h.url(&me(&t)))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the request hangs");
    assert!(err.is_timeout());

    let r = h
        .send_json(reqwest::Method::DELETE, "/__sim/outage", "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get(&me(&t)).await.status, 200);
    let log = h.sim.requests(None);
    assert!(
        log.iter().any(|r| r.status.is_none()),
        "the hung request is logged without a status"
    );
}

#[tokio::test]
async fn outages_can_target_hosts_and_rates() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.ig_long_token("cafe").await;
    let r = h
        .send_json(
            reqwest::Method::PUT,
            "/__sim/outage",
            r#"{"error_rate":1.0,"hosts":["graph.facebook.com"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.get(&me(&t)).await.status, 200);
    assert_eq!(h.get("/graph.facebook.com/me").await.status, 500);

    // Half the requests fail, deterministically for the seed.
    h.sim
        .set_outage(Outage {
            error_rate: 0.5,
            ..Outage::default()
        })
        .expect("outage");
    let mut failures = 0;
    for _ in 0..40 {
        if h.get(&me(&t)).await.status == 500 {
            failures += 1;
        }
    }
    assert!((8..=32).contains(&failures), "{failures} of 40");

    let r = h
        .send_json(
            reqwest::Method::PUT,
            "/__sim/outage",
            r#"{"error_rate":0.8,"html_rate":0.8}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("more than 1")
    );
}
