//! Webhooks against a real HTTP receiver on loopback: events follow incidents and feeds,
//! signatures verify with the Standard Webhooks recipe (implemented here from the
//! specification, not from our code), a failing receiver gets its retries, a rotation signs
//! with both secrets, private addresses and redirects are refused, endpoints that fail for a
//! day are turned off, and nobody reaches another owner's endpoints.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use feedkeeper::db::{users, webhooks as store};
use feedkeeper::ids::UserId;
use meta_sim::AccountEvent;

use crate::helpers::Session;
use crate::lifecycle::{DAY, HOUR, World};

/// What the receiver got.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: String,
}

struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
    /// Requests that reached the redirect's target (must stay 0).
    target_hits: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let target_hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (g, s, t) = (got.clone(), status.clone(), target_hits.clone());
        let target = format!("{base}/target");
        let app = axum::Router::new()
            .route(
                "/hook",
                post(move |headers: HeaderMap, body: String| {
                    let (g, s) = (g.clone(), s.clone());
                    async move {
                        g.lock().unwrap().push(Got { headers, body });
                        StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                    }
                }),
            )
            .route(
                "/redirect",
                post(move || {
                    let target = target.clone();
                    async move { (StatusCode::FOUND, [("location", target)]) }
                }),
            )
            .route(
                "/target",
                post(move || {
                    let t = t.clone();
                    async move {
                        t.fetch_add(1, Ordering::SeqCst);
                        StatusCode::OK
                    }
                }),
            );
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base,
            got,
            status,
            target_hits,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// The Standard Webhooks verification, written from the specification
/// (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md, "Verifying
/// webhook authenticity"): the signed content is `{webhook-id}.{webhook-timestamp}.{body}`;
/// the key is the secret after `whsec_`, base64-decoded; the signature is
/// base64(HMAC-SHA256(key, content)); `webhook-signature` lists `v1,<signature>` entries
/// separated by spaces, any of which may match; the timestamp must be within five minutes.
fn verify(secret: &str, headers: &HeaderMap, body: &str, now: i64) -> bool {
    use hmac::Mac as _;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > 300 {
        return false;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}

async fn owner_of(w: &World, email: &str) -> UserId {
    users::find_by_email(&w.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Adds an endpoint through the form and reads its secret off the page it leads to.
async fn add_endpoint(session: &Session, url: &str, events: &[&str]) -> (i64, String) {
    let mut fields = vec![("csrf", session.csrf.as_str()), ("url", url)];
    for e in events {
        fields.push((e, "on"));
    }
    let reply = session.post("/webhooks", &fields).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.location().unwrap().to_owned();
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    let page = session.get(&location).await;
    let start = page.body.find("whsec_").expect("the secret is shown once");
    let secret: String = page.body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<')
        .collect();
    let again = session.get(&location).await;
    assert!(!again.body.contains("whsec_"), "shown only once");
    (id, secret)
}

fn events_of(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| {
            let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn allowing_loopback() -> World {
    World::with(|c| c.webhooks.allow_private_addresses = true).await
}

#[tokio::test]
async fn events_follow_incidents_and_feeds_and_verify_with_the_specifications_recipe() {
    let receiver = Receiver::start().await;
    let w = allowing_loopback().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let owner = owner_of(&w, "dev@example.com").await;
    let (_, secret) = add_endpoint(&session, &format!("{}/hook", receiver.base), &[]).await;
    let c = w.connect_instagram(owner, "bakery").await;
    w.pass().await;
    w.sim
        .apply_event("bakery", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    w.advance(8 * HOUR);
    w.pass().await;
    w.connect_instagram(owner, "bakery").await;
    w.pass().await;
    let got = receiver.got();
    let types = events_of(&got);
    assert_eq!(
        types,
        [
            "feed.updated",
            "connection.needs_reconnect",
            "connection.restored"
        ],
        "{types:?}"
    );
    for g in &got {
        // Each was sent at its own moment of the test's clock: verified as on arrival.
        let now: i64 = g.headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(verify(&secret, &g.headers, &g.body, now), "{:?}", g.headers);
        assert!(!verify(&secret, &g.headers, &g.body, now + 301), "too old");
        assert!(!verify(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &g.headers,
            &g.body,
            now
        ));
        assert_eq!(g.headers["content-type"], "application/json");
        assert!(
            g.headers["webhook-id"]
                .to_str()
                .unwrap()
                .starts_with("msg_")
        );
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["data"]["connection_id"], c.id.0);
        assert_eq!(v["data"]["username"], "bakery");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(
            !g.body.to_lowercase().contains("token\":\""),
            "no token: {}",
            g.body
        );
    }
    let broken: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(broken["data"]["status"], "needs_reconnect");
    assert_eq!(broken["data"]["reason"], "password_changed");
    // A tampered body does not verify.
    let sent: i64 = got[1].headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(!verify(
        &secret,
        &got[1].headers,
        &got[1].body.replace("bakery", "bakerz"),
        sent
    ));
}

#[tokio::test]
async fn a_failing_receiver_gets_its_retries_with_the_same_id() {
    let receiver = Receiver::start().await;
    let w = allowing_loopback().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let (id, secret) = add_endpoint(&session, &format!("{}/hook", receiver.base), &[]).await;
    receiver.status.store(500, Ordering::SeqCst);
    let test = session
        .post(&format!("/webhooks/{id}/test"), &[("csrf", &session.csrf)])
        .await;
    assert_eq!(test.status, StatusCode::SEE_OTHER);
    w.pass().await;
    w.advance(5);
    w.pass().await;
    assert_eq!(receiver.got().len(), 2, "tried again after 5 s");
    w.advance(60);
    w.pass().await;
    assert_eq!(receiver.got().len(), 2, "not before 5 minutes");
    receiver.status.store(204, Ordering::SeqCst);
    w.advance(300);
    w.pass().await;
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got
        .iter()
        .map(|g| g.headers["webhook-id"].clone())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one id on every attempt");
    assert!(verify(
        &secret,
        &got[2].headers,
        &got[2].body,
        w.clock.now()
    ));
    let deliveries = store::list_deliveries(&w.state.db, id, 10).await.unwrap();
    assert_eq!(deliveries[0].status, "delivered");
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].last_status, Some(204));
    let page = session.get(&format!("/webhooks/{id}")).await;
    assert!(page.body.contains("Delivered"), "{}", page.body);
    assert!(page.body.contains("feedkeeper.test"));
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_a_day() {
    let receiver = Receiver::start().await;
    let w = allowing_loopback().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let (id, old) = add_endpoint(&session, &format!("{}/hook", receiver.base), &[]).await;
    let rotated = session
        .post(
            &format!("/webhooks/{id}/rotate"),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER);
    let page = session.get(&format!("/webhooks/{id}")).await;
    let start = page.body.find("whsec_").unwrap();
    let new: String = page.body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<')
        .collect();
    assert_ne!(new, old);
    session
        .post(&format!("/webhooks/{id}/test"), &[("csrf", &session.csrf)])
        .await;
    w.pass().await;
    let g = &receiver.got()[0];
    let now = w.clock.now();
    assert!(verify(&old, &g.headers, &g.body, now) && verify(&new, &g.headers, &g.body, now));
    w.advance(DAY + 1);
    session
        .post(&format!("/webhooks/{id}/test"), &[("csrf", &session.csrf)])
        .await;
    w.pass().await;
    let g = &receiver.got()[1];
    let now = w.clock.now();
    assert!(verify(&new, &g.headers, &g.body, now));
    assert!(
        !verify(&old, &g.headers, &g.body, now),
        "the old secret stopped"
    );
}

#[tokio::test]
async fn private_addresses_local_names_and_redirects_are_refused() {
    let receiver = Receiver::start().await;
    let w = World::new().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.8/hook".to_owned(),
        format!("http://localhost:{port}/hook"),
        // A name (with a trailing dot, past a check of the spelling) that leads to this machine.
        format!("http://localhost.:{port}/hook"),
        "ftp://example.com/hook".to_owned(),
    ] {
        let reply = session
            .post("/webhooks", &[("csrf", &session.csrf), ("url", &url)])
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert!(reply.body.contains("The address"), "{url}: {}", reply.body);
    }
    // An endpoint stored before (or by another way) is checked again at every attempt: the
    // name is resolved and its loopback address refused; nothing reaches the receiver. The
    // name: one this machine's /etc/hosts gives a loopback address (a name the spelling check
    // cannot know), or else "localhost." (refused by its spelling).
    let loopback_name = std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("127.") || l.starts_with("::1"))
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|name| !name.starts_with("localhost") && !name.starts_with('#'))
        .unwrap_or_else(|| "localhost.".to_owned());
    eprintln!("a name for this machine: {loopback_name}");
    let owner = owner_of(&w, "dev@example.com").await;
    let sealed = feedkeeper::webhooks::seal_secret(
        &w.state,
        owner,
        &feedkeeper::webhooks::signing::new_secret(),
    );
    let endpoint = store::create_endpoint(
        &w.state.db,
        owner,
        &format!("http://{loopback_name}:{port}/hook"),
        "",
        &sealed,
        w.clock.now(),
    )
    .await
    .unwrap();
    session
        .post(
            &format!("/webhooks/{}/test", endpoint.id),
            &[("csrf", &session.csrf)],
        )
        .await;
    w.pass().await;
    assert!(receiver.got().is_empty());
    let d = &store::list_deliveries(&w.state.db, endpoint.id, 1)
        .await
        .unwrap()[0];
    assert_eq!(d.last_status, None, "{d:?}");
    assert!(d.last_error.is_some(), "{d:?}");

    // Redirects are not followed, even to an allowed address.
    let w = allowing_loopback().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let (id, _) = add_endpoint(&session, &format!("{}/redirect", receiver.base), &[]).await;
    session
        .post(&format!("/webhooks/{id}/test"), &[("csrf", &session.csrf)])
        .await;
    w.pass().await;
    let d = &store::list_deliveries(&w.state.db, id, 1).await.unwrap()[0];
    assert_eq!(d.last_status, Some(302));
    assert!(d.last_error.as_deref().unwrap().contains("not followed"));
    assert_eq!(receiver.target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_endpoint_failing_for_a_day_is_turned_off_and_its_owner_told() {
    let receiver = Receiver::start().await;
    let w = allowing_loopback().await;
    let session = w.app.signup_and_login("dev@example.com").await;
    let owner = owner_of(&w, "dev@example.com").await;
    let (id, _) = add_endpoint(&session, &format!("{}/hook", receiver.base), &[]).await;
    receiver.status.store(503, Ordering::SeqCst);
    session
        .post(&format!("/webhooks/{id}/test"), &[("csrf", &session.csrf)])
        .await;
    for wait in std::iter::once(0).chain(feedkeeper::webhooks::deliver::RETRY_SCHEDULE) {
        w.advance(wait);
        w.pass().await;
    }
    assert_eq!(
        receiver.got().len(),
        8,
        "the first attempt and seven retries"
    );
    let e = store::get_endpoint(&w.state.db, id).await.unwrap();
    assert!(!e.enabled);
    assert!(
        e.disabled_reason
            .unwrap()
            .contains("failed for more than a day")
    );
    let mail = feedkeeper::db::mail::list_owned_messages(&w.state.db, owner, None, 5)
        .await
        .unwrap();
    assert!(
        mail.iter()
            .any(|m| m.subject == "A webhook endpoint was turned off"),
        "{mail:?}"
    );
    // Off: new events are not written for it; turned on again, they are.
    let c = w.connect_instagram(owner, "bakery").await;
    w.pass().await;
    assert_eq!(receiver.got().len(), 8);
    let on = session
        .post(
            &format!("/webhooks/{id}/toggle"),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER);
    receiver.status.store(200, Ordering::SeqCst);
    feedkeeper::connections::disconnect(&w.state, c.id)
        .await
        .unwrap();
    let c = w.connect_instagram(owner, "bakery").await;
    let _ = c;
    w.pass().await;
    assert_eq!(events_of(&receiver.got()[8..]), ["feed.updated"]);
}

#[tokio::test]
async fn nobody_reaches_another_owners_endpoints() {
    let w = allowing_loopback().await;
    let alice = w.app.signup_and_login("alice@example.com").await;
    let mallory = w.app.signup_and_login("mallory@example.com").await;
    let (id, secret) = add_endpoint(&alice, "http://127.0.0.1:9/hook", &[]).await;
    assert_eq!(
        mallory.get(&format!("/webhooks/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    for action in ["test", "rotate", "toggle", "delete"] {
        let reply = mallory
            .post(
                &format!("/webhooks/{id}/{action}"),
                &[("csrf", &mallory.csrf)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert!(!mallory.get("/webhooks").await.body.contains("127.0.0.1:9"));
    let e = store::get_endpoint(&w.state.db, id).await.unwrap();
    assert!(e.enabled);
    assert!(
        store::list_deliveries(&w.state.db, id, 5)
            .await
            .unwrap()
            .is_empty()
    );
    // The secret is sealed at rest.
    assert!(!e.secret_sealed.contains(&secret[6..]));
}
