//! The developer API over real HTTP: keys made on the dashboard (shown once) and revoked; every
//! route refusing a second owner's key on the first owner's ids (the routes are read from the
//! OpenAPI document itself, so a new route is covered the day it is added); problem documents
//! for bad JSON, unknown fields, wrong types, ranges, routes and methods; pages; idempotent
//! creates (once, also when repeated at the same moment); rate limits; and schemathesis run
//! against the served document with a real key.

use std::collections::BTreeSet;

use feedkeeper::db::{api as key_store, incidents, users};
use feedkeeper::ids::UserId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::connect_instagram;
use crate::helpers::{Session, TestApp};

/// An API client with one key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem document with `status`.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            "application/problem+json",
            "{}",
            self.body
        );
        let p = self.json();
        assert_eq!(p["status"], status, "{p}");
        assert!(!p["title"].as_str().unwrap().is_empty());
        assert!(!p["detail"].as_str().unwrap().is_empty());
        p
    }
}

impl Client {
    fn new(app: &TestApp, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: app.url("/").to_string().trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body), &[]).await
    }
}

/// Makes a key on the dashboard's API page and reads it off the page it leads to (shown once).
async fn make_key(session: &Session, name: &str) -> String {
    let reply = session
        .post("/api", &[("csrf", session.csrf.as_str()), ("name", name)])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), Some("/api"));
    let page = session.get("/api").await;
    let shown = page
        .body
        .find("id=\"api-key\"")
        .expect("the new key is shown");
    let start = shown + page.body[shown..].find("fk_").unwrap();
    let key: String = page.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let again = session.get("/api").await;
    assert!(!again.body.contains(&key), "a key is shown once only");
    key
}

async fn owner(app: &TestApp, email: &str) -> UserId {
    users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn app_with_fast_keys() -> TestApp {
    TestApp::spawn_with(|c| {
        c.api.requests_per_minute = 1_000_000;
        c.webhooks.allow_private_addresses = true;
    })
    .await
}

#[tokio::test]
async fn keys_are_shown_once_work_and_stop_when_revoked() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("dev@example.com").await;
    let key = make_key(&session, "Reporting script").await;
    let api = Client::new(&app, &key);

    let answer = api.get("/api/v1/connections").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json(), json!({ "data": [], "next_cursor": null }));
    assert_eq!(answer.header("ratelimit-limit"), "1000000");
    assert!(!answer.header("ratelimit-remaining").is_empty());
    assert_eq!(answer.header("ratelimit-policy"), "1000000;w=60");

    // The page lists it by prefix, with when it was last used; the secret is never stored.
    let page = session.get("/api").await;
    let prefix = &key[..15];
    assert!(page.body.contains(prefix), "{}", page.body);
    let stored = key_store::list_keys(&app.state.db, owner(&app, "dev@example.com").await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].last_used_at.is_some());
    assert!(!stored[0].secret_hash.contains(&key[16..]));

    // No key, a malformed one, a wrong secret: 401 problems asking for a Bearer key.
    let anonymous = reqwest::Client::new()
        .get(app.url("/api/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    for wrong in [
        "nonsense".to_owned(),
        format!("{}x", &key),
        format!("{}{}", &key[..16], "A".repeat(43)),
    ] {
        Client::new(&app, &wrong)
            .get("/api/v1/connections")
            .await
            .problem(401);
    }

    // Revoked on the dashboard: refused at once.
    let reply = session
        .post(
            &format!("/api/keys/{}/revoke", stored[0].id),
            &[("csrf", session.csrf.as_str())],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let refused = api.get("/api/v1/connections").await.problem(401);
    assert!(refused["detail"].as_str().unwrap().contains("revoked"));
    assert!(session.get("/api").await.body.contains("Revoked on"));

    // Another user cannot revoke it (404), nor see it.
    let other = app.signup_and_login("other@example.com").await;
    let reply = other
        .post(
            &format!("/api/keys/{}/revoke", stored[0].id),
            &[("csrf", other.csrf.as_str())],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(!other.get("/api").await.body.contains(prefix));
}

/// What the first owner has, for the second owner's key to try.
struct Owned {
    connection: i64,
    widget: i64,
    link: i64,
    incident: i64,
    endpoint: i64,
    /// Strings only the first owner's data holds.
    markers: Vec<String>,
}

async fn first_owners_things(app: &TestApp, api: &Client, owner: UserId) -> Owned {
    let c = connect_instagram(app, owner, "first_owner_shop").await;
    let (incident, _) = incidents::open_or_update(
        &app.state.db,
        c.id,
        "reconnect_needed",
        Some("The password was changed."),
        app.state.clock.now(),
    )
    .await
    .unwrap();
    let widget = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "First owner's widget", "connection_id": c.id.0 }),
        )
        .await;
    assert_eq!(widget.status, StatusCode::CREATED, "{}", widget.body);
    let widget = widget.json();
    let link = api
        .post(
            "/api/v1/client-links",
            json!({ "label": "First owner's client" }),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    let endpoint = api
        .post(
            "/api/v1/webhook-endpoints",
            json!({ "url": "http://127.0.0.1:9/first-owner-hook" }),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{}", endpoint.body);
    Owned {
        connection: c.id.0,
        widget: widget["id"].as_i64().unwrap(),
        link: link.json()["id"].as_i64().unwrap(),
        incident: incident.id.0,
        endpoint: endpoint.json()["id"].as_i64().unwrap(),
        markers: vec![
            "first_owner_shop".into(),
            "First owner".into(),
            "first-owner-hook".into(),
            widget["public_id"].as_str().unwrap().to_owned(),
        ],
    }
}

#[tokio::test]
async fn a_second_owners_key_never_reaches_the_first_owners_data() {
    let app = app_with_fast_keys().await;
    let first = app.signup_and_login("first@example.com").await;
    let first_api = Client::new(&app, &make_key(&first, "first").await);
    let theirs =
        first_owners_things(&app, &first_api, owner(&app, "first@example.com").await).await;
    let second = app.signup_and_login("second@example.com").await;
    let api = Client::new(&app, &make_key(&second, "second").await);

    // Every operation of the document, with the first owner's ids in its path.
    let doc = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut tried = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let tag = operation["tags"][0].as_str().unwrap_or("");
            let id = match (tag, path.as_str()) {
                (_, p) if p.starts_with("/api/v1/connections/") => theirs.connection,
                ("widgets", _) => theirs.widget,
                ("links", _) => theirs.link,
                ("incidents", _) => theirs.incident,
                ("webhooks", _) => theirs.endpoint,
                _ => 0,
            };
            let concrete = path.replace("{id}", &id.to_string());
            // Bodies that would be accepted were the ids the caller's own.
            let body = match (method, tag) {
                _ if path.ends_with("/reconnect-links") => Some(json!({ "expires_days": 2 })),
                ("post", "widgets") => {
                    Some(json!({ "name": "x", "connection_id": theirs.connection }))
                }
                ("patch", "widgets") => Some(json!({ "name": "taken over" })),
                ("post", "links") => Some(json!({ "label": "x" })),
                ("post", "webhooks") | ("patch", "webhooks") => {
                    Some(json!({ "url": "http://127.0.0.1:9/second-owner-hook" }))
                }
                ("post", _) => Some(json!({})),
                _ => None,
            };
            let answer = api.send(&method.to_uppercase(), &concrete, body, &[]).await;
            if path.contains("{id}") {
                answer.problem(404);
            } else if method == "post" && tag == "widgets" {
                // The first owner's connection is refused as if it did not exist.
                let p = answer.problem(422);
                assert_eq!(p["errors"][0]["field"], "connection_id");
            } else {
                assert!(
                    answer.status.is_success(),
                    "{method} {concrete}: {}",
                    answer.body
                );
                for marker in &theirs.markers {
                    assert!(
                        !answer.body.contains(marker.as_str()),
                        "{method} {concrete} shows {marker}: {}",
                        answer.body
                    );
                }
            }
            tried.insert(format!("{method} {path}"));
        }
    }
    assert!(tried.len() >= 20, "every operation was tried: {tried:?}");
    // A filter naming the first owner's connection finds nothing either.
    let filtered = api
        .get(&format!(
            "/api/v1/incidents?connection_id={}",
            theirs.connection
        ))
        .await;
    assert_eq!(filtered.json()["data"], json!([]));

    // And the first owner still has all of it, unchanged.
    let widget = first_api
        .get(&format!("/api/v1/widgets/{}", theirs.widget))
        .await
        .json();
    assert_eq!(widget["name"], "First owner's widget");
    assert_eq!(
        first_api
            .get(&format!("/api/v1/connections/{}", theirs.connection))
            .await
            .status,
        StatusCode::OK
    );
    let link = first_api
        .get(&format!("/api/v1/client-links/{}", theirs.link))
        .await
        .json();
    assert_eq!(link["status"], "active");
    let incidents = first_api.get("/api/v1/incidents?open=true").await.json();
    assert_eq!(incidents["data"][0]["kind"], "reconnect_needed");
    assert_eq!(
        first_api
            .get(&format!("/api/v1/webhook-endpoints/{}", theirs.endpoint))
            .await
            .json()["url"],
        "http://127.0.0.1:9/first-owner-hook"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_problem_documents() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("strict@example.com").await;
    let api = Client::new(&app, &make_key(&session, "strict").await);
    let c = connect_instagram(&app, owner(&app, "strict@example.com").await, "strict_shop").await;

    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut r = reqwest::Client::new()
            .post(app.url("/api/v1/widgets"))
            .header("authorization", format!("Bearer {}", api.key))
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        async move {
            let response = r.send().await.unwrap();
            Answer {
                status: response.status(),
                headers: response.headers().clone(),
                body: response.text().await.unwrap(),
            }
        }
    };
    let p = raw("{\"name\": ", Some("application/json"))
        .await
        .problem(400);
    assert!(
        p["detail"].as_str().unwrap().contains("not valid JSON"),
        "{p}"
    );
    raw("{}", None).await.problem(415);
    raw("{}", Some("text/plain")).await.problem(415);

    let unknown = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "w", "connection_id": c.id.0, "colour": "red" }),
        )
        .await
        .problem(422);
    assert!(
        unknown["detail"].as_str().unwrap().contains("colour"),
        "{unknown}"
    );
    let wrong_type = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "w", "connection_id": "one" }),
        )
        .await
        .problem(422);
    assert!(
        wrong_type["errors"][0]["field"]
            .as_str()
            .unwrap()
            .contains("connection_id"),
        "{wrong_type}"
    );
    let missing = api
        .post("/api/v1/widgets", json!({ "name": "w" }))
        .await
        .problem(422);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("connection_id"),
        "{missing}"
    );
    let bad_enum = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "w", "connection_id": c.id.0, "settings": { "layout": "carousel" } }),
        )
        .await
        .problem(422);
    assert!(
        bad_enum["detail"].as_str().unwrap().contains("carousel"),
        "{bad_enum}"
    );
    // Out of range: every problem at once, each naming its field.
    let ranges = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "", "connection_id": c.id.0,
                    "settings": { "columns_desktop": 40, "posts": 0 } }),
        )
        .await
        .problem(422);
    let fields: BTreeSet<&str> = ranges["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["name", "settings.columns_desktop", "settings.posts"]),
        "{ranges}"
    );

    api.get("/api/v1/widgets?limit=0").await.problem(400);
    api.get("/api/v1/widgets?limit=many").await.problem(400);
    api.get("/api/v1/widgets?cursor=%2A%2A").await.problem(400);
    api.get("/api/v1/widgets/not-a-number").await.problem(404);
    api.get("/api/v1/widgets/99999").await.problem(404);
    api.get("/api/v1/no-such-thing").await.problem(404);
    api.send("PUT", "/api/v1/widgets", Some(json!({})), &[])
        .await
        .problem(405);
    let bad_key = api
        .send(
            "POST",
            "/api/v1/client-links",
            Some(json!({ "label": "x" })),
            &[("idempotency-key", "")],
        )
        .await
        .problem(400);
    assert!(
        bad_key["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    // Nothing was stored by any of these.
    let widgets = api.get("/api/v1/widgets").await.json();
    assert_eq!(widgets["data"], json!([]));
}

#[tokio::test]
async fn widgets_are_made_changed_paged_and_deleted() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("builder@example.com").await;
    let api = Client::new(&app, &make_key(&session, "builder").await);
    let c = connect_instagram(
        &app,
        owner(&app, "builder@example.com").await,
        "builder_shop",
    )
    .await;

    let mut ids = Vec::new();
    for n in 0..3 {
        let made = api
            .post(
                "/api/v1/widgets",
                json!({ "name": format!("Widget {n}"), "connection_id": c.id.0,
                        "settings": { "layout": "slider", "columns_desktop": 5,
                                      "types": { "reels": false },
                                      "exclude_words": ["#ad", "sponsored"] } }),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let w = made.json();
        assert_eq!(
            made.header("location"),
            format!("/api/v1/widgets/{}", w["id"])
        );
        assert_eq!(w["settings"]["layout"], "slider");
        assert_eq!(w["settings"]["columns_desktop"], 5);
        assert_eq!(w["settings"]["types"]["reels"], false);
        assert_eq!(w["settings"]["types"]["images"], true);
        assert_eq!(w["settings"]["exclude_words"], json!(["#ad", "sponsored"]));
        assert!(w["embed"]["html"].as_str().unwrap().contains("embed.js"));
        ids.push(w["id"].as_i64().unwrap());
    }

    // Pages of two: all three, once each, in order.
    let first = api.get("/api/v1/widgets?limit=2").await.json();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = api
        .get(&format!("/api/v1/widgets?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(second["next_cursor"], Value::Null);
    let seen: Vec<i64> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, ids);

    // A change touches only what it names.
    let changed = api
        .send(
            "PATCH",
            &format!("/api/v1/widgets/{}", ids[0]),
            Some(json!({ "name": "Renamed", "settings": { "theme": "dark" } })),
            &[],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let w = changed.json();
    assert_eq!(w["name"], "Renamed");
    assert_eq!(w["settings"]["theme"], "dark");
    assert_eq!(w["settings"]["layout"], "slider");
    api.send(
        "PATCH",
        &format!("/api/v1/widgets/{}", ids[0]),
        Some(json!({ "settings": { "spacing": 1000 } })),
        &[],
    )
    .await
    .problem(422);

    // Its feed is the public feed document.
    let feed = api.get(&format!("/api/v1/widgets/{}/feed", ids[0])).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.body);
    assert!(feed.json()["posts"].is_array());

    // Deleted: gone from the API, and its public address answers 410.
    let public_id = w["public_id"].as_str().unwrap().to_owned();
    let gone = api
        .send("DELETE", &format!("/api/v1/widgets/{}", ids[0]), None, &[])
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    api.get(&format!("/api/v1/widgets/{}", ids[0]))
        .await
        .problem(404);
    api.send("DELETE", &format!("/api/v1/widgets/{}", ids[0]), None, &[])
        .await
        .problem(404);
    let public = reqwest::get(app.url(&format!("/w/{public_id}")))
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::GONE);

    // Connections: read, checked, disconnected.
    let listed = api.get("/api/v1/connections").await.json();
    assert_eq!(listed["data"][0]["username"], "builder_shop");
    assert_eq!(listed["data"][0]["status"], "active");
    assert!(
        listed["data"][0]["token_expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(!listed.to_string().contains("token_sealed"));
    let checked = api
        .post(&format!("/api/v1/connections/{}/check", c.id), json!({}))
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    assert_eq!(checked.json()["outcome"], "checked");
    let reconnect = api
        .post(
            &format!("/api/v1/connections/{}/reconnect-links", c.id),
            json!({ "expires_days": 3 }),
        )
        .await;
    assert_eq!(reconnect.status, StatusCode::CREATED, "{}", reconnect.body);
    let link = reconnect.json();
    assert_eq!(link["kind"], "reconnect");
    let url = link["url"].as_str().unwrap();
    let landing = reqwest::get(url).await.unwrap();
    assert_eq!(landing.status(), StatusCode::OK);
    assert!(
        !api.get(&format!("/api/v1/client-links/{}", link["id"]))
            .await
            .body
            .contains(url),
        "the address is shown in the create's answer only"
    );
    let bye = api
        .send(
            "DELETE",
            &format!("/api/v1/connections/{}", c.id),
            None,
            &[],
        )
        .await;
    assert_eq!(bye.status, StatusCode::NO_CONTENT, "{}", bye.body);
    api.get(&format!("/api/v1/connections/{}", c.id))
        .await
        .problem(404);
    // Its reconnect link went with it.
    api.get(&format!("/api/v1/client-links/{}", link["id"]))
        .await
        .problem(404);
}

#[tokio::test]
async fn creates_with_an_idempotency_key_happen_once() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("careful@example.com").await;
    let api = Client::new(&app, &make_key(&session, "careful").await);
    let body = json!({ "label": "Client A", "client_email": "client@example.com" });
    let key = [("idempotency-key", "4f0c7d1e-retry-me")];

    let first = api
        .send("POST", "/api/v1/client-links", Some(body.clone()), &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = api
        .send("POST", "/api/v1/client-links", Some(body.clone()), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body, first.body,
        "the same answer, the same link address"
    );
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("location"), first.header("location"));

    // The same key for another request: refused, nothing made.
    let other = api
        .send(
            "POST",
            "/api/v1/client-links",
            Some(json!({ "label": "Client B" })),
            &key,
        )
        .await
        .problem(422);
    assert_eq!(other["errors"][0]["field"], "Idempotency-Key");

    // Eight repeats at the same moment with a fresh key: one link, eight equal answers.
    let fresh = [("idempotency-key", "all-at-once")];
    let answers = futures_util::future::join_all((0..8).map(|_| {
        api.send(
            "POST",
            "/api/v1/client-links",
            Some(json!({ "label": "Rush" })),
            &fresh,
        )
    }))
    .await;
    let bodies: BTreeSet<&str> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            a.body.as_str()
        })
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let links = api.get("/api/v1/client-links").await.json();
    let labels: Vec<&str> = links["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Client A", "Rush"]);

    // The kept answers are sealed: the link's address is not in the database in clear.
    let url = first.json()["url"].as_str().unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap();
    const KEPT: &str = "SELECT body FROM api_idempotency";
    let kept: Vec<String> = match &app.state.db {
        feedkeeper::db::Db::Sqlite(pool) => sqlx::query_scalar(KEPT).fetch_all(pool).await,
        feedkeeper::db::Db::Postgres(pool) => sqlx::query_scalar(KEPT).fetch_all(pool).await,
    }
    .unwrap();
    assert_eq!(kept.len(), 2, "one kept answer per key");
    assert!(
        kept.iter()
            .all(|body| !body.contains(token) && !body.contains("Client A"))
    );

    // Without a key, each create is its own.
    for _ in 0..2 {
        let made = api
            .post("/api/v1/client-links", json!({ "label": "No key" }))
            .await;
        assert_eq!(made.status, StatusCode::CREATED);
    }
    let all = api.get("/api/v1/client-links").await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_the_limit_headers() {
    let app = TestApp::spawn_with(|c| c.api.requests_per_minute = 3).await;
    let session = app.signup_and_login("busy@example.com").await;
    let api = Client::new(&app, &make_key(&session, "busy").await);
    for left in ["2", "1", "0"] {
        let answer = api.get("/api/v1/widgets").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("ratelimit-remaining"), left);
        assert_eq!(answer.header("ratelimit-limit"), "3");
    }
    let refused = api.get("/api/v1/widgets").await;
    refused.problem(429);
    let retry: u64 = refused.header("retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(refused.header("ratelimit-remaining"), "0");
    // Another key of the same owner has its own budget.
    let other = Client::new(&app, &make_key(&session, "second").await);
    assert_eq!(other.get("/api/v1/widgets").await.status, StatusCode::OK);
}

#[tokio::test]
async fn webhook_endpoints_are_managed_through_the_api() {
    let app = TestApp::spawn_with(|c| c.api.requests_per_minute = 1_000_000).await;
    let session = app.signup_and_login("hooks@example.com").await;
    let api = Client::new(&app, &make_key(&session, "hooks").await);

    // Private addresses are refused unless the operator allows them.
    let p = api
        .post(
            "/api/v1/webhook-endpoints",
            json!({ "url": "http://127.0.0.1:8080/hook" }),
        )
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "url");
    api.post(
        "/api/v1/webhook-endpoints",
        json!({ "url": "ftp://example.com/" }),
    )
    .await
    .problem(422);
    api.post(
        "/api/v1/webhook-endpoints",
        json!({ "url": "https://example.com/h", "events": ["connection.exploded"] }),
    )
    .await
    .problem(422);

    let made = api
        .post(
            "/api/v1/webhook-endpoints",
            json!({ "url": "https://hooks.example.com/feedkeeper",
                    "events": ["connection.needs_reconnect", "feed.updated"] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let e = made.json();
    assert!(e["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        e["events"],
        json!(["connection.needs_reconnect", "feed.updated"])
    );
    let id = e["id"].as_i64().unwrap();
    let read = api
        .get(&format!("/api/v1/webhook-endpoints/{id}"))
        .await
        .json();
    assert!(
        read.get("secret").is_none(),
        "the secret is shown once: {read}"
    );

    let off = api
        .send(
            "PATCH",
            &format!("/api/v1/webhook-endpoints/{id}"),
            Some(json!({ "enabled": false, "events": [] })),
            &[],
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.json()["enabled"], false);
    assert_eq!(off.json()["events"], json!([]));
    let test = api
        .post(&format!("/api/v1/webhook-endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.body);
    assert_eq!(test.json()["sent"], true);
    let again = api
        .post(&format!("/api/v1/webhook-endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(again.json()["sent"], false, "one test at a time");
    // The dashboard shows the same endpoint.
    assert!(
        session
            .get("/webhooks")
            .await
            .body
            .contains("hooks.example.com/feedkeeper")
    );
    let deleted = api
        .send(
            "DELETE",
            &format!("/api/v1/webhook-endpoints/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    api.get(&format!("/api/v1/webhook-endpoints/{id}"))
        .await
        .problem(404);
}

#[tokio::test]
async fn the_openapi_document_is_served_to_anyone() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    for path in [
        "/api/v1/connections",
        "/api/v1/connections/{id}",
        "/api/v1/connections/{id}/check",
        "/api/v1/connections/{id}/reconnect-links",
        "/api/v1/widgets",
        "/api/v1/widgets/{id}",
        "/api/v1/widgets/{id}/feed",
        "/api/v1/client-links",
        "/api/v1/client-links/{id}",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/webhook-endpoints",
        "/api/v1/webhook-endpoints/{id}",
        "/api/v1/webhook-endpoints/{id}/test",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    // The document the server serves is the one the code generates.
    assert_eq!(
        doc,
        serde_json::to_value(feedkeeper::http::api::openapi()).unwrap()
    );
}

/// schemathesis (from PyPI) against the served document with a real key, over an account with
/// a connection, a widget, a link, an incident and an endpoint: no server error, no answer
/// outside the schema, bad input refused. `SCHEMATHESIS=require` (as `.ci/run` sets) fails when
/// it is not installed; otherwise the test says so and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong() {
    let installed = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert_ne!(
            std::env::var("SCHEMATHESIS").as_deref(),
            Ok("require"),
            "schemathesis is not installed (pip install schemathesis)"
        );
        eprintln!("schemathesis is not installed: skipping (SCHEMATHESIS=require makes this fail)");
        return;
    }
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("fuzz@example.com").await;
    let key = make_key(&session, "schemathesis").await;
    let api = Client::new(&app, &key);
    first_owners_things(&app, &api, owner(&app, "fuzz@example.com").await).await;
    let schema = app.url("/api/v1/openapi.json").to_string();
    let report = tempfile::tempdir().unwrap();
    let report_dir = report.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args(["run", &schema])
            .args(["--header", &format!("Authorization: Bearer {key}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_headers_conformance,response_schema_conformance,\
                 negative_data_rejection,missing_required_header,unsupported_method,\
                 ignored_auth",
            ])
            // One worker: CPython 3.11's `ast` is not thread-safe, and hypothesis parses
            // sources while describing strategies (a crash of the tool, not of ours).
            .args(["--max-examples", "40", "--seed", "7", "--workers", "1"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--generation-database", "none"])
            .args(["--no-color", "--report-dir"])
            .arg(&report_dir)
            .env("SCHEMATHESIS_TELEMETRY", "false")
            // What it leaves behind (its and hypothesis's example databases) goes with the
            // temporary directory.
            .current_dir(&report_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[tokio::test]
async fn wrong_keys_from_an_address_do_not_stop_the_keys_in_use_there() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("shared-nat@example.com").await;
    let key = make_key(&session, "in use").await;
    let api = Client::new(&app, &key);
    assert_eq!(api.get("/api/v1/widgets").await.status, StatusCode::OK);
    // Someone else behind the same address (here: loopback) sends made-up keys.
    let forged = format!("{}{}", &key[..16], "B".repeat(43));
    let mut limited = 0;
    for _ in 0..40 {
        let answer = Client::new(&app, &forged).get("/api/v1/widgets").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let p = answer.problem(429);
            assert!(
                p["detail"].as_str().unwrap().contains("wrong API keys"),
                "{p}"
            );
            limited += 1;
        } else {
            answer.problem(401);
        }
    }
    assert!(limited >= 5, "the address was limited ({limited})");
    // The key in use goes on working: from memory, and once memory must ask the database
    // again (whether it was revoked), without counting against the address.
    assert_eq!(api.get("/api/v1/widgets").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_secs(
        feedkeeper::accounts::api_keys::KNOWN_SECS + 1,
    ))
    .await;
    assert_eq!(api.get("/api/v1/widgets").await.status, StatusCode::OK);
    // The scheme's name is case-insensitive.
    let lower = reqwest::Client::new()
        .get(app.url("/api/v1/widgets"))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);
}

#[tokio::test]
async fn refusals_made_before_the_api_are_problem_documents_too() {
    let app = TestApp::spawn_with(|c| {
        c.api.requests_per_minute = 1_000_000;
        c.server.max_body_bytes = 4096;
    })
    .await;
    let session = app.signup_and_login("big@example.com").await;
    let api = Client::new(&app, &make_key(&session, "big").await);
    let huge = json!({ "label": "x".repeat(10_000) });
    let answer = api.post("/api/v1/client-links", huge).await;
    let p = answer.problem(413);
    assert!(p["detail"].as_str().unwrap().contains("too large"), "{p}");
    assert_eq!(answer.header("cache-control"), "no-store");
    // Every answer of the API, good ones included, is kept out of caches.
    let ok = api.get("/api/v1/connections").await;
    assert_eq!(ok.header("cache-control"), "no-store");
    // The dashboard's own refusals stay pages.
    let page = reqwest::Client::new()
        .post(app.url("/api/keys/1/revoke"))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn a_repeated_create_at_the_limit_gets_the_first_answer_not_the_limit() {
    let app = TestApp::spawn_with(|c| {
        c.api.requests_per_minute = 1_000_000;
        c.webhooks.max_per_user = 1;
    })
    .await;
    let session = app.signup_and_login("limit@example.com").await;
    let api = Client::new(&app, &make_key(&session, "limit").await);
    let body = json!({ "url": "https://hooks.example.com/one" });
    let key = [("idempotency-key", "only-one")];
    let answers = futures_util::future::join_all((0..6).map(|_| {
        api.send(
            "POST",
            "/api/v1/webhook-endpoints",
            Some(body.clone()),
            &key,
        )
    }))
    .await;
    let bodies: BTreeSet<&str> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            a.body.as_str()
        })
        .collect();
    assert_eq!(bodies.len(), 1, "one endpoint, one secret: {bodies:?}");
    // A new request is at the limit.
    api.post(
        "/api/v1/webhook-endpoints",
        json!({ "url": "https://hooks.example.com/two" }),
    )
    .await
    .problem(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_sent_at_once_to_one_widget_all_stay() {
    let app = app_with_fast_keys().await;
    let session = app.signup_and_login("many-hands@example.com").await;
    let api = Client::new(&app, &make_key(&session, "hands").await);
    let c = connect_instagram(
        &app,
        owner(&app, "many-hands@example.com").await,
        "hands_shop",
    )
    .await;
    let w = api
        .post(
            "/api/v1/widgets",
            json!({ "name": "Shared", "connection_id": c.id.0 }),
        )
        .await
        .json();
    let path = format!("/api/v1/widgets/{}", w["id"]);
    let changes = [
        json!({ "name": "Renamed" }),
        json!({ "settings": { "theme": "dark" } }),
        json!({ "settings": { "spacing": 3 } }),
        json!({ "settings": { "radius": 17 } }),
        json!({ "settings": { "layout": "masonry" } }),
        json!({ "settings": { "captions": "below" } }),
    ];
    let answers = futures_util::future::join_all(
        changes
            .iter()
            .map(|c| api.send("PATCH", &path, Some(c.clone()), &[])),
    )
    .await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let now = api.get(&path).await.json();
    assert_eq!(now["name"], "Renamed");
    let s = &now["settings"];
    assert_eq!(
        (
            &s["theme"],
            &s["spacing"],
            &s["radius"],
            &s["layout"],
            &s["captions"]
        ),
        (
            &json!("dark"),
            &json!(3),
            &json!(17),
            &json!("masonry"),
            &json!("below")
        ),
        "no change undid another: {now}"
    );
}
