//! The edge every response passes: security headers, request ids, limits, timeouts, panics.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use feedkeeper::state::AppState;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::TestApp;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    for path in ["/", "/login", "/healthz", "/no-such-page", "/connections/1"] {
        let reply = http.get(app.url(path)).send().await.unwrap();
        let h = reply.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let id = h["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 16, "{path}: a request id");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over http"
        );
        if h.get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"))
        {
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            // Forms may go to us, and redirect to Meta's login pages.
            assert!(
                csp.contains("form-action 'self' http://127.0.0.1:"),
                "{path}: {csp}"
            );
        }
    }
}

#[tokio::test]
async fn https_deployments_get_hsts_and_host_only_cookies() {
    let app = TestApp::spawn_with(|c| c.server.public_url = "https://feeds.example".into()).await;
    let reply = reqwest::get(app.url("/login")).await.unwrap();
    assert_eq!(
        reply.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookies: Vec<_> = reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-fk_prelogin=") && c.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let app = TestApp::spawn_with(|c| c.server.max_body_bytes = 4096).await;
    let reply = reqwest::Client::new()
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}", "a".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() {
    let app = TestApp::spawn_with(|c| c.server.header_read_timeout_secs = 1).await;
    let addr = app.state.config.server.listen;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server never let go of a half-sent request"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

async fn boom() -> &'static str {
    panic!("a handler bug")
}

/// The app's edge around routes that misbehave.
async fn misbehaving(app: &TestApp) -> String {
    let routes: Router<AppState> = Router::new().route("/boom", get(boom)).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let router = feedkeeper::app::with_edge(routes, app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_panicking_handler_answers_a_plain_500_with_a_request_id() {
    let app = TestApp::spawn().await;
    let base = misbehaving(&app).await;
    let reply = reqwest::get(format!("{base}/boom")).await.unwrap();
    assert_eq!(reply.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.headers().contains_key("x-request-id"));
    assert_eq!(reply.headers()["x-content-type-options"], "nosniff");
    let body = reply.text().await.unwrap();
    assert!(body.contains("Something went wrong") && !body.contains("a handler bug"));
    // The server lives on.
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_that_takes_too_long_times_out() {
    let app = TestApp::spawn_with(|c| c.server.request_timeout_secs = 1).await;
    let base = misbehaving(&app).await;
    let started = Instant::now();
    let reply = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(reply.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(10));
}
