//! Meta's deauthorize and data-deletion callbacks, as the simulator sends them, and forgeries.

use feedkeeper::db::connections::Status;
use feedkeeper::db::{audit, connections as stored};
use feedkeeper::meta::signed_request;
use meta_sim::AccountEvent;

use crate::lifecycle::{DAY, World};

/// A world whose simulated Meta app has our callback URLs (as `TestApp` registers them).
async fn with_callbacks() -> World {
    let w = World::new().await;
    let app = w.sim.app();
    assert_eq!(
        app.deauthorize_callback_url,
        Some(format!("{}/meta/deauthorize", w.base_url))
    );
    w
}

#[tokio::test]
async fn app_removal_needs_a_reconnect_at_once_and_deletes_data_after_the_grace_period() {
    let w = with_callbacks().await;
    let owner = w.user("o@example.com").await;
    let c = w.connect_instagram(owner, "leaver").await;
    let outcome = w
        .sim
        .apply_event("leaver", AccountEvent::AppRemoved)
        .await
        .unwrap();
    assert!(
        outcome.deliveries.iter().all(|d| d.status == Some(200)),
        "{:?}",
        outcome.deliveries
    );

    let now_dead = w.reload(&c).await;
    assert_eq!(now_dead.status(), Status::NeedsReconnect);
    assert_eq!(now_dead.reason.as_deref(), Some("app_removed"));
    assert!(now_dead.deauthorized_at.is_some());
    assert_eq!(w.open_incident(&c).await.unwrap().kind, "reconnect_needed");
    let log = audit::list(&w.state.db, c.id, 10).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "meta" && e.meta_subcode == Some(458)),
        "{log:?}"
    );

    // Within the grace period the data stays; after it, it goes.
    w.advance(29 * DAY);
    w.pass().await;
    assert!(w.reload(&c).await.token_sealed.is_some());
    w.advance(2 * DAY);
    let report = w.pass().await;
    assert_eq!(report.purge.finished, 1);
    let purged = w.reload(&c).await;
    assert!(purged.token_sealed.is_none() && purged.data_purged_at.is_some());
    // Reconnecting revives it, with a new token.
    let again = w.connect_instagram(owner, "leaver").await;
    assert_eq!((again.id, again.status()), (c.id, Status::Active));
    assert!(
        again.token_sealed.is_some()
            && again.deauthorized_at.is_none()
            && again.data_purged_at.is_none()
    );
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_keeps_the_data() {
    let w = with_callbacks().await;
    let owner = w.user("o@example.com").await;
    let c = w.connect_instagram(owner, "changed_mind").await;
    w.sim
        .apply_event("changed_mind", AccountEvent::AppRemoved)
        .await
        .unwrap();
    w.advance(3 * DAY);
    w.connect_instagram(owner, "changed_mind").await;
    w.advance(40 * DAY);
    w.pass().await;
    assert!(w.reload(&c).await.token_sealed.is_some());
}

#[tokio::test]
async fn a_data_deletion_request_deletes_everything_and_has_a_status_page() {
    let w = with_callbacks().await;
    let owner = w.user("o@example.com").await;
    let other_owner = w.user("agency@example.com").await;
    let a = w.connect_instagram(owner, "forget_me").await;
    let b = w.connect_instagram(other_owner, "forget_me").await;
    let keep = w.connect_instagram(owner, "stays").await;
    let outcome = w
        .sim
        .apply_event("forget_me", AccountEvent::DataDeletionRequested)
        .await
        .unwrap();
    let answer = &outcome.record.data_deletion[0];
    let url = answer["url"].as_str().expect("a status URL");
    let code = answer["confirmation_code"]
        .as_str()
        .expect("a confirmation code");
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()) && code.len() >= 8);
    assert!(url.starts_with(&w.base_url) && url.ends_with(code));

    for gone in [&a, &b] {
        assert!(matches!(
            stored::get(&w.state.db, gone.id).await,
            Err(feedkeeper::db::DbError::NotFound)
        ));
    }
    assert!(stored::get(&w.state.db, keep.id).await.is_ok());

    let page = reqwest::get(url).await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains(code)
            && text.contains("Completed")
            && text.contains("2 connected Instagram accounts"),
        "{text}"
    );
    let missing = reqwest::get(format!("{}/meta/deletion/NOSUCHCODE", w.base_url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let hostile = reqwest::get(format!("{}/meta/deletion/%3Cscript%3E", w.base_url))
        .await
        .unwrap();
    assert_eq!(hostile.status(), 404);
    assert!(!hostile.text().await.unwrap().contains("<script>"));
}

#[tokio::test]
async fn forged_altered_and_malformed_callbacks_are_refused() {
    let w = with_callbacks().await;
    let owner = w.user("o@example.com").await;
    let c = w.connect_instagram(owner, "target").await;
    let ig_user_id = c.ig_user_id.clone();
    let now = w.clock.now();
    let payload =
        format!(r#"{{"user_id":"{ig_user_id}","algorithm":"HMAC-SHA256","issued_at":{now}}}"#);
    let forged = signed_request::sign(&payload, "not-the-app-secret");
    let genuine = signed_request::sign(&payload, "sim-instagram-secret");
    let (sig, body) = genuine.split_once('.').unwrap();
    let other = signed_request::sign(
        &format!(r#"{{"user_id":"1","algorithm":"HMAC-SHA256","issued_at":{now}}}"#),
        "sim-instagram-secret",
    );
    // Genuinely signed, but captured long ago, from the future, or with no time at all.
    let stale = signed_request::sign(
        &format!(
            r#"{{"user_id":"{ig_user_id}","algorithm":"HMAC-SHA256","issued_at":{}}}"#,
            now - 2 * DAY
        ),
        "sim-instagram-secret",
    );
    let future = signed_request::sign(
        &format!(
            r#"{{"user_id":"{ig_user_id}","algorithm":"HMAC-SHA256","issued_at":{}}}"#,
            now + DAY
        ),
        "sim-instagram-secret",
    );
    let timeless = signed_request::sign(
        &format!(r#"{{"user_id":"{ig_user_id}","algorithm":"HMAC-SHA256"}}"#),
        "sim-instagram-secret",
    );
    let spliced = format!("{}.{body}", other.split_once('.').unwrap().0);
    let tampered = format!("{sig}.{}A", &body[..body.len() - 1]);

    let http = reqwest::Client::new();
    for endpoint in ["deauthorize", "data-deletion"] {
        let url = format!("{}/meta/{endpoint}", w.base_url);
        for bad in [
            forged.as_str(),
            spliced.as_str(),
            tampered.as_str(),
            stale.as_str(),
            future.as_str(),
            timeless.as_str(),
            "",
            "garbage",
            "a.b",
        ] {
            let reply = http
                .post(&url)
                .form(&[("signed_request", bad)])
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 400, "{endpoint} accepted {bad:?}");
        }
        let reply = http
            .post(&url)
            .form(&[("something_else", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400);
        let reply = http
            .post(&url)
            .body("{not a form")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_client_error());
        let reply = http.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), 405);
    }
    let untouched = w.reload(&c).await;
    assert_eq!(
        untouched.status(),
        Status::Active,
        "no forgery changed anything"
    );

    // The genuine one (signed by us exactly as Meta would) works.
    let reply = http
        .post(format!("{}/meta/deauthorize", w.base_url))
        .form(&[("signed_request", genuine.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(w.reload(&c).await.reason.as_deref(), Some("app_removed"));
}

#[tokio::test]
async fn callbacks_naming_the_app_scoped_id_or_the_facebook_user_find_the_connection() {
    let w = with_callbacks().await;
    w.sim
        .patch_settings(&serde_json::json!({"user_id_source": "app_scoped"}))
        .unwrap();
    let owner = w.user("o@example.com").await;
    let ig = w.connect_instagram(owner, "scoped").await;
    let fb = w.connect_facebook(owner, "paged").await;
    w.sim
        .apply_event("scoped", AccountEvent::AppRemoved)
        .await
        .unwrap();
    w.sim
        .apply_event("paged", AccountEvent::AppRemoved)
        .await
        .unwrap();
    for c in [ig, fb] {
        let c = w.reload(&c).await;
        assert_eq!(c.reason.as_deref(), Some("app_removed"), "{}", c.username);
        assert!(c.deauthorized_at.is_some(), "{}", c.username);
    }
}

#[tokio::test]
async fn a_replayed_callback_does_nothing() {
    let w = with_callbacks().await;
    let owner = w.user("o@example.com").await;
    let c = w.connect_instagram(owner, "replayed").await;
    let http = reqwest::Client::new();
    let now = w.clock.now();
    let sign = |user: &str| {
        signed_request::sign(
            &format!(r#"{{"user_id":"{user}","algorithm":"HMAC-SHA256","issued_at":{now}}}"#),
            "sim-instagram-secret",
        )
    };
    let post = |endpoint: &'static str, body: String| {
        let http = http.clone();
        let url = format!("{}/meta/{endpoint}", w.base_url);
        async move {
            http.post(url)
                .form(&[("signed_request", body)])
                .send()
                .await
                .unwrap()
        }
    };

    // A removal, then the person reconnects; the captured removal replayed changes nothing.
    let removal = sign(&c.ig_user_id);
    assert_eq!(post("deauthorize", removal.clone()).await.status(), 200);
    assert_eq!(w.reload(&c).await.status(), Status::NeedsReconnect);
    w.advance(600);
    let again = w.connect_instagram(owner, "replayed").await;
    assert_eq!(again.status(), Status::Active);
    assert_eq!(post("deauthorize", removal).await.status(), 200);
    let after = w.reload(&c).await;
    assert_eq!(after.status(), Status::Active, "the replay was ignored");
    assert!(after.deauthorized_at.is_none());

    // A deletion request, then the person connects anew; the replay deletes nothing and Meta
    // gets the first answer again.
    let deletion = sign(&c.ig_user_id);
    let first: serde_json::Value = post("data-deletion", deletion.clone())
        .await
        .json()
        .await
        .unwrap();
    assert!(matches!(
        stored::get(&w.state.db, c.id).await,
        Err(feedkeeper::db::DbError::NotFound)
    ));
    let fresh = w.connect_instagram(owner, "replayed").await;
    let (signature, payload) = deletion.split_once('.').unwrap();
    // Replayed as captured, and with the signature padded (another string, the same callback).
    let padded = format!("{signature}=.{payload}");
    for replayed in [deletion.clone(), padded] {
        let replay = post("data-deletion", replayed).await;
        assert_eq!(replay.status(), 200);
        let second: serde_json::Value = replay.json().await.unwrap();
        assert_eq!(first, second);
        assert!(
            stored::get(&w.state.db, fresh.id).await.is_ok(),
            "not deleted again"
        );
    }
    // Padding that is not canonical is refused outright.
    let stray = format!("{signature}==.{payload}");
    assert_eq!(post("data-deletion", stray).await.status(), 400);
}
