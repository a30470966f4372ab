//! The request log as a race detector: each record names the account and token family of the
//! call and its wall-clock span, and `latency_ms` holds Meta-host answers back (never the
//! control API) so concurrent calls overlap.

use std::time::{Duration, Instant};

use meta_sim::{Outage, RequestRecord};
use reqwest::Method;

use super::support::*;

fn ig_me(token: &str) -> String {
    format!("/graph.instagram.com/v23.0/me?fields=username&access_token={token}")
}

fn last_seq(h: &Harness) -> u64 {
    h.sim.requests(None).last().map_or(0, |r| r.seq)
}

/// The single record logged after `seq`.
fn only_since(h: &Harness, seq: u64) -> RequestRecord {
    let mut log = h.sim.requests(Some(seq));
    assert_eq!(log.len(), 1, "{log:#?}");
    log.remove(0)
}

fn assert_names(record: &RequestRecord, account: Option<&str>, family: Option<&str>) {
    assert_eq!(record.account.as_deref(), account, "{record:#?}");
    assert_eq!(record.token_family.as_deref(), family, "{record:#?}");
    assert!(
        record.started_at_ms <= record.ended_at_ms,
        "a span never runs backwards: {record:#?}"
    );
}

#[tokio::test]
async fn instagram_calls_name_their_account_and_family() {
    let h = harness().await;
    h.account("cafe", 1);
    h.account("bakery", 1);
    let before_login = last_seq(&h);
    let token = h.ig_long_token("cafe").await;

    // The code exchange and the short→long exchange already name the account.
    let login = h.sim.requests(Some(before_login));
    let exchanges: Vec<&RequestRecord> = login
        .iter()
        .filter(|r| r.path.ends_with("access_token"))
        .collect();
    assert_eq!(exchanges.len(), 2, "{login:#?}");
    for r in exchanges {
        assert_names(r, Some("cafe"), Some("instagram_user"));
    }
    // The login form carries no credential.
    let form = login
        .iter()
        .find(|r| r.host == "www.instagram.com")
        .expect("the login form is logged");
    assert_names(form, None, None);

    let seq = last_seq(&h);
    let r = h.get(&ig_me(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_names(&only_since(&h, seq), Some("cafe"), Some("instagram_user"));
    let before_me = seq;

    // An unknown token names nothing, and the call is still logged.
    let seq = last_seq(&h);
    let r = h.get(&ig_me("IGAAnot-a-token")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_names(&only_since(&h, seq), None, None);

    // The control API serves the new fields, and never the token.
    let log = h.get(&format!("/__sim/requests?since={before_me}")).await;
    let entry = &log.json()[0];
    assert_eq!(entry["account"], "cafe");
    assert_eq!(entry["token_family"], "instagram_user");
    assert!(entry["started_at_ms"].as_i64().is_some_and(|t| t > 0));
    assert!(entry["ended_at_ms"].as_i64().is_some_and(|t| t > 0));
    assert!(!log.text.contains(&token), "no token in the log");
}

#[tokio::test]
async fn facebook_calls_name_the_page_account_and_family() {
    let h = harness().await;
    h.page_account("harbor", "owner", 1);
    let user_token = h.fb_user_token("owner", FB_SCOPES).await;

    let seq = last_seq(&h);
    let (_, page_token) = h.page_token(&user_token).await;
    // A user token reaches the account through the one Page it shares.
    assert_names(&only_since(&h, seq), Some("harbor"), Some("facebook_user"));

    let seq = last_seq(&h);
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/me?fields=name&access_token={page_token}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_names(&only_since(&h, seq), Some("harbor"), Some("facebook_page"));

    // `debug_token` with the app token is about the inspected token.
    let seq = last_seq(&h);
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/debug_token?input_token={page_token}&access_token={FB_APP}|{FB_SECRET}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_names(&only_since(&h, seq), Some("harbor"), Some("app"));

    let all = h.get("/__sim/requests").await.text;
    assert!(
        !all.contains(&page_token) && !all.contains(&user_token),
        "no token in the log"
    );
}

#[tokio::test]
async fn latency_holds_meta_answers_back() {
    let h = harness().await;
    h.account("cafe", 1);
    let token = h.sim.generate_token("cafe").expect("token").access_token;

    let r = h
        .send_json(Method::PATCH, "/__sim/settings", r#"{"latency_ms":300}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["latency_ms"], 300);
    assert_eq!(h.sim.latency(), Duration::from_millis(300));

    let seq = last_seq(&h);
    let clock = Instant::now();
    let r = h.get(&ig_me(&token)).await;
    let took = clock.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= Duration::from_millis(300), "took only {took:?}");
    let record = only_since(&h, seq);
    assert!(
        record.ended_at_ms - record.started_at_ms >= 300,
        "{record:#?}"
    );

    // The control API is never delayed.
    h.sim.set_latency(Duration::from_secs(30));
    let r = h
        .read(
            h.http
                .get(h.url("/__sim/settings"))
                .timeout(Duration::from_secs(5)),
        )
        .await;
    assert_eq!(r.json()["latency_ms"], 30_000);
    h.sim.set_latency(Duration::ZERO);
    assert_eq!(h.sim.settings().latency_ms, 0);
}

#[tokio::test]
async fn concurrent_calls_overlap_and_sequential_ones_do_not() {
    let h = harness().await;
    h.account("cafe", 1);
    let token = h.sim.generate_token("cafe").expect("token").access_token;
    h.sim.set_latency(Duration::from_millis(300));

    let seq = last_seq(&h);
    let me = ig_me(&token);
    let (a, b) = tokio::join!(h.get(&me), h.get(&me));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(b.status, 200, "{}", b.text);
    let log = h.sim.requests(Some(seq));
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log[0].overlaps(&log[1]), "{log:#?}");
    assert!(log[1].overlaps(&log[0]), "{log:#?}");

    let seq = last_seq(&h);
    h.get(&me).await;
    // Both ends count and times have millisecond resolution: a call starting in the very
    // millisecond the previous one ended would count as overlapping.
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.get(&me).await;
    let log = h.sim.requests(Some(seq));
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log[1].started_at_ms > log[0].ended_at_ms, "{log:#?}");
    assert!(!log[0].overlaps(&log[1]), "{log:#?}");
    assert!(!log[1].overlaps(&log[0]), "{log:#?}");
}

#[tokio::test]
async fn a_hanging_call_ends_when_its_hang_does() {
    let h = harness().await;
    h.account("cafe", 1);
    let token = h.sim.generate_token("cafe").expect("token").access_token;
    h.sim
        .patch_settings(&serde_json::json!({"outage_hang_secs": 1}))
        .expect("settings");
    h.sim
        .set_outage(Outage {
            timeout_rate: 1.0,
            ..Outage::default()
        })
        .expect("outage");

    let seq = last_seq(&h);
    let r = h.get(&ig_me(&token)).await;
    assert_eq!(r.status, 504);
    let record = only_since(&h, seq);
    assert_eq!(record.status, None);
    assert_names(&record, Some("cafe"), Some("instagram_user"));
    assert!(
        record.ended_at_ms - record.started_at_ms >= 1_000,
        "{record:#?}"
    );
}
