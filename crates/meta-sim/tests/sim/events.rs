//! Account events: each revocation's exact code/subcode/message on Instagram and Facebook
//! tokens, and the signed_request callbacks for app removal and data deletion.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use meta_sim::{AccountEvent, AppConfig, CallbackKind, GlobalEvent};
use serde_json::json;

use super::support::*;

const PASSWORD: &str = "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.";

fn me(token: &str) -> String {
    format!("/graph.instagram.com/me?fields=username&access_token={token}")
}

/// A tiny callback receiver: records each form body, answers data-deletion style JSON.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    async fn record(
        State(seen): State<Arc<Mutex<Vec<String>>>>,
        body: String,
    ) -> axum::Json<serde_json::Value> {
        seen.lock().expect("lock").push(body);
        axum::Json(
            json!({"url": "https://app.example/deletion?id=abc123", "confirmation_code": "abc123"}),
        )
    }
    let app = axum::Router::new()
        .route("/deauth", post(record))
        .route("/delete", post(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn signed_request_of(form_body: &str) -> String {
    url::form_urlencoded::parse(form_body.as_bytes())
        .find(|(k, _)| k == "signed_request")
        .map(|(_, v)| v.into_owned())
        .expect("signed_request field")
}

/// Checks the HMAC by hand, independent of the crate's own verifier.
fn verify_by_hand(secret: &str, signed: &str) -> serde_json::Value {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    let (sig, payload) = signed.split_once('.').expect("two parts");
    assert!(!signed.contains('='), "no padding");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(payload.as_bytes());
    let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(sig, expected, "HMAC-SHA256 over the payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

#[tokio::test]
async fn password_change_and_two_factor_kill_every_token_of_the_person() {
    let h = harness().await;
    h.page_account("cafe", "owner", 1);
    h.account("bystander", 0);
    let ig = h.ig_long_token("cafe").await;
    let other = h.ig_long_token("bystander").await;
    let user = h.fb_user_token("owner", FB_SCOPES).await;
    let (_, page) = h.page_token(&h.fb_long_token(&user).await).await;

    h.sim
        .apply_event("cafe", AccountEvent::PasswordChanged)
        .await
        .expect("applied");
    let r = h.get(&me(&ig)).await;
    assert_eq!(r.graph_error(), (190, Some(460)));
    assert_eq!(r.message(), PASSWORD);
    for t in [&user, &page] {
        let r = h
            .get(&format!("/graph.facebook.com/v23.0/me?access_token={t}"))
            .await;
        assert_eq!(r.graph_error(), (190, Some(460)));
        assert_eq!(r.message(), PASSWORD);
    }
    assert_eq!(
        h.get(&me(&other)).await.status,
        200,
        "other people are unaffected"
    );

    // A new login works again; two-factor kills it the same way.
    let fresh = h.ig_long_token("cafe").await;
    assert_eq!(h.get(&me(&fresh)).await.status, 200);
    h.sim
        .apply_event("cafe", AccountEvent::TwoFactorEnabled)
        .await
        .expect("applied");
    let r = h.get(&me(&fresh)).await;
    assert_eq!(r.graph_error(), (190, Some(460)));
    assert_eq!(r.message(), PASSWORD);
}

#[tokio::test]
async fn invalidation_checkpoint_and_api_break() {
    let h = harness().await;
    h.account("cafe", 0);
    let t = h.ig_long_token("cafe").await;
    h.sim
        .apply_event("cafe", AccountEvent::TokenInvalidated)
        .await
        .expect("applied");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.graph_error(), (190, Some(467)));
    assert_eq!(
        r.message(),
        "Error validating access token: The access token is invalid."
    );

    let t = h.ig_long_token("cafe").await;
    h.sim
        .apply_event("cafe", AccountEvent::SuspiciousLogin)
        .await
        .expect("applied");
    let r = h.get(&me(&t)).await;
    assert_eq!(r.graph_error(), (190, Some(459)));
    assert_eq!(
        r.json()["error"]["error_data"]["checkpoint_url"],
        "https://www.instagram.com/challenge/"
    );
    // Logging in through the simulated login page clears the checkpoint.
    let consent = h.ig_login("cafe", "pw").await;
    assert!(consent.text.contains("unusual activity"));
    assert_eq!(h.get(&me(&t)).await.status, 200);

    h.sim.apply_global_event(GlobalEvent::ApiBreakingChange);
    let r = h.get(&me(&t)).await;
    assert_eq!(r.graph_error(), (190, None));
    assert_eq!(
        r.message(),
        "Error validating access token: The session is invalid because the user logged out."
    );
    let fresh = h.ig_long_token("cafe").await;
    assert_eq!(h.get(&me(&fresh)).await.status, 200);
}

#[tokio::test]
async fn permission_revoked_gives_code_10_or_200() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 1);
    let ig = h.ig_long_token("cafe").await;
    let user = h.fb_user_token("owner", FB_SCOPES).await;
    h.sim
        .apply_event(
            "cafe",
            AccountEvent::PermissionRevoked {
                scope: "instagram_business_basic".into(),
            },
        )
        .await
        .expect("applied");
    let r = h
        .get(&format!("/graph.instagram.com/me/media?access_token={ig}"))
        .await;
    assert_eq!(r.graph_error(), (10, None));

    h.sim
        .apply_event(
            "cafe",
            AccountEvent::PermissionRevoked {
                scope: "instagram_basic".into(),
            },
        )
        .await
        .expect("applied");
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}/media?access_token={user}",
            acct.ig_user_id
        ))
        .await;
    assert_eq!(r.graph_error(), (10, None));
    h.sim
        .apply_event(
            "cafe",
            AccountEvent::PermissionRevoked {
                scope: "pages_show_list".into(),
            },
        )
        .await
        .expect("applied");
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/me/accounts?access_token={user}"
        ))
        .await;
    assert_eq!(r.graph_error(), (200, None));
}

#[tokio::test]
async fn app_removal_revokes_and_posts_signed_requests() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 0);
    let (base, seen) = receiver().await;
    h.sim.set_app(AppConfig {
        deauthorize_callback_url: Some(format!("{base}/deauth")),
        data_deletion_callback_url: Some(format!("{base}/delete")),
        ..AppConfig::default()
    });
    let ig = h.ig_long_token("cafe").await;
    let fb = h.fb_user_token("owner", FB_SCOPES).await;

    let outcome = h
        .sim
        .apply_event("cafe", AccountEvent::AppRemoved)
        .await
        .expect("applied");
    assert_eq!(
        outcome.deliveries.len(),
        2,
        "one per connection (Instagram and Facebook)"
    );
    assert!(outcome.deliveries.iter().all(|d| d.status == Some(200)));

    let r = h.get(&me(&ig)).await;
    assert_eq!(r.graph_error(), (190, Some(458)));
    assert_eq!(
        r.message(),
        format!("Error validating access token: The user has not authorized application {IG_APP}.")
    );
    let r = h
        .get(&format!("/graph.facebook.com/me?access_token={fb}"))
        .await;
    assert_eq!(r.graph_error(), (190, Some(458)));
    assert!(r.message().contains(FB_APP));

    let bodies = seen.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2);
    let ig_payload = verify_by_hand(IG_SECRET, &signed_request_of(&bodies[0]));
    assert_eq!(ig_payload["user_id"], json!(acct.ig_user_id));
    assert_eq!(ig_payload["algorithm"], "HMAC-SHA256");
    assert_eq!(ig_payload["issued_at"], json!(h.sim.now()));
    let fb_payload = verify_by_hand(FB_SECRET, &signed_request_of(&bodies[1]));
    assert_eq!(
        fb_payload["user_id"],
        json!(acct.facebook_user_id.clone().expect("fb id"))
    );
    // The crate's own verifier agrees.
    assert!(meta_sim::signed_request::verify(IG_SECRET, &signed_request_of(&bodies[0])).is_ok());

    let deliveries = h.get("/__sim/deliveries").await.json();
    assert_eq!(deliveries[0]["kind"], "deauthorize");
    assert_eq!(deliveries[0]["status"], 200);
}

#[tokio::test]
async fn data_deletion_posts_and_records_the_confirmation() {
    let h = harness().await;
    let acct = h.account("cafe", 0);
    let (base, seen) = receiver().await;
    h.sim.set_app(AppConfig {
        data_deletion_callback_url: Some(format!("{base}/delete")),
        ..AppConfig::default()
    });
    let ig = h.ig_long_token("cafe").await;
    let r = h
        .send_json(
            reqwest::Method::POST,
            "/__sim/accounts/cafe/events",
            r#"{"event":"data_deletion_requested"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["deliveries"][0]["kind"], "data_deletion");
    assert_eq!(
        v["record"]["data_deletion"][0]["confirmation_code"],
        "abc123"
    );
    assert_eq!(
        v["record"]["data_deletion"][0]["url"],
        "https://app.example/deletion?id=abc123"
    );
    let body = seen.lock().expect("lock")[0].clone();
    assert_eq!(
        verify_by_hand(IG_SECRET, &signed_request_of(&body))["user_id"],
        json!(acct.ig_user_id)
    );
    assert_eq!(
        h.get(&me(&ig)).await.status,
        200,
        "deletion requests do not revoke"
    );
    let events = h.sim.events();
    assert_eq!(
        events.last().map(|e| e.event.as_str()),
        Some("data_deletion_requested")
    );
    assert_eq!(h.sim.deliveries()[0].kind, CallbackKind::DataDeletion);
}
