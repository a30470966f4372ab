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
        // The health check has a lighter edge of its own (no request id, no request slot).
        if path != "/healthz" {
            let id = h["x-request-id"].to_str().unwrap();
            assert_eq!(id.len(), 16, "{path}: a request id");
        }
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

/// A connection to the app from the loopback address `from` (127.0.0.x: each is another client).
async fn connect_from(app: &TestApp, from: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    socket
        .connect(app.state.config.server.listen)
        .await
        .unwrap()
}

/// Sends `request` and reads the answer's status line (or `None` if the connection closed).
async fn status_of(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Option<String> {
    stream.write_all(request).await.ok()?;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn connections_are_capped_per_node_and_per_client_address() {
    let app = TestApp::spawn_with(|c| {
        c.server.max_connections = 6;
        c.server.max_connections_per_address = 3;
    })
    .await;
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Three from one address are served; a fourth from it is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(&app, [127, 0, 0, 2]).await;
        assert_eq!(
            status_of(&mut c, get).await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
        held.push(c);
    }
    let mut fourth = connect_from(&app, [127, 0, 0, 2]).await;
    assert_eq!(
        status_of(&mut fourth, get).await,
        None,
        "over the address's limit"
    );
    // Other addresses still get in, up to the node's limit.
    for last in 3..6 {
        let mut c = connect_from(&app, [127, 0, 0, last]).await;
        assert_eq!(
            status_of(&mut c, get).await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
        held.push(c);
    }
    let mut seventh = connect_from(&app, [127, 0, 0, 9]).await;
    assert_eq!(
        status_of(&mut seventh, get).await,
        None,
        "over the node's limit"
    );
    // A connection that closes makes room (once the server has noticed).
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from(&app, [127, 0, 0, 2]).await;
        if status_of(&mut again, get).await.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(Instant::now() < deadline, "no room made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_leave_health_checks_and_log_in_answering() {
    feedkeeper::http::server::raise_open_file_limit();
    let app = TestApp::spawn_with(|c| {
        c.server.body_read_timeout_secs = 3;
        c.server.max_concurrent_requests = 64;
    })
    .await;
    app.signup_and_login("someone@example.com").await;
    // 1 200 connections, each sending the head of a callback and ten bytes of its body, then
    // nothing: no login needed, no request slot taken.
    let head = b"POST /meta/deauthorize HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n\
        signed_req";
    let mut trickling = Vec::new();
    for i in 0..1200u32 {
        let mut c = connect_from(&app, [127, 0, 1 + (i / 200) as u8, 2]).await;
        c.write_all(head).await.unwrap();
        trickling.push(c);
    }
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(2), reqwest::get(app.url("/healthz")))
        .await
        .expect("/healthz answered while bodies trickle")
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let login = tokio::time::timeout(
        Duration::from_secs(2),
        app.login("someone@example.com", crate::helpers::TEST_PASSWORD),
    )
    .await;
    assert!(login.is_ok(), "log-in answered while bodies trickle");
    // Each trickling body is cut off once it stops arriving, with 408.
    let mut first = trickling.remove(0);
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut buf))
        .await
        .expect("the trickling request was cut off")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_cut_off() {
    let app = TestApp::spawn_with(|c| c.server.write_timeout_secs = 1).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(app.state.config.server.listen)
        .await
        .unwrap();
    // Many requests in one go (pipelined), and not a byte of the answers read.
    let one = b"GET /static/app.css HTTP/1.1\r\nHost: x\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 2000).collect();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&many)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The server gave up on it: what it wrote before ends, then the connection is closed.
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(ended.is_ok(), "the connection was never closed");
    let answers = String::from_utf8_lossy(&buf)
        .matches("HTTP/1.1 200")
        .count();
    assert!(answers < 2000, "all {answers} answers were written");
}

#[tokio::test]
async fn request_heads_are_bounded_and_must_name_one_host() {
    let app = TestApp::spawn().await;
    let mut c = connect_from(&app, [127, 0, 0, 1]).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let status = status_of(&mut c, huge.as_bytes()).await;
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 431 Request Header Fields Too Large")
    );
    for request in [
        &b"GET /healthz HTTP/1.1\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /w/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n\r\n",
    ] {
        let mut c = connect_from(&app, [127, 0, 0, 1]).await;
        assert_eq!(
            status_of(&mut c, request).await.as_deref(),
            Some("HTTP/1.1 400 Bad Request"),
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    // HTTP/1.0 may leave it out.
    let mut c = connect_from(&app, [127, 0, 0, 1]).await;
    assert_eq!(
        status_of(&mut c, b"GET /healthz HTTP/1.0\r\n\r\n")
            .await
            .as_deref(),
        Some("HTTP/1.0 200 OK")
    );
}

#[tokio::test]
async fn request_ids_are_ours_and_the_clients_is_kept_apart() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    for theirs in ["evil", "0123456789abcdef", &"x".repeat(8000)] {
        let reply = http
            .get(app.url("/login"))
            .header("x-request-id", theirs)
            .send()
            .await
            .unwrap();
        let id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, theirs, "a client cannot choose our id");
    }
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    // Nobody trusted: a forged X-Forwarded-For changes nothing, so failed log-ins from one
    // address with ever-new forged addresses still run into the per-address limit.
    for (trusted, locked_out) in [(vec![], true), (vec!["127.0.0.1".to_owned()], false)] {
        let app = TestApp::spawn_with(|c| c.server.trusted_proxies = trusted.clone()).await;
        let mut last = StatusCode::OK;
        for i in 0..=feedkeeper::accounts::rate_limit::MAX_FAILURES_PER_ADDRESS {
            let session = app.browser();
            let mut form = session.get("/login").await.form("/login");
            form.set("email", &format!("nobody{i}@example.com"))
                .set("password", "wrong password entirely");
            let reply = session
                .submit_with_header(&form, "x-forwarded-for", &format!("198.51.100.{}", i % 250))
                .await;
            last = reply.status;
        }
        assert_eq!(
            last == StatusCode::TOO_MANY_REQUESTS,
            locked_out,
            "trusted proxies {trusted:?}: the last attempt was {last}"
        );
    }
}

#[tokio::test]
async fn bodies_held_at_once_share_one_budget() {
    let app = TestApp::spawn_with(|c| {
        c.server.max_body_bytes = 8 * 1024;
        c.server.max_buffered_body_bytes = 8 * 1024;
    })
    .await;
    let head = |length: usize| {
        format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    };
    // One body of 6 KiB arrives in part and waits for the rest: it holds 6 KiB of the budget.
    let mut first = connect_from(&app, [127, 0, 0, 2]).await;
    first.write_all(head(7 * 1024).as_bytes()).await.unwrap();
    first.write_all(&[b'a'; 6 * 1024]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another of 6 KiB meanwhile does not fit: 503, come back shortly.
    let mut second = connect_from(&app, [127, 0, 0, 3]).await;
    let mut request = head(6 * 1024).into_bytes();
    request.extend_from_slice(&[b'b'; 6 * 1024]);
    let status = status_of(&mut second, &request).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    // Once the first is answered, its share is back.
    first.write_all(&[b'a'; 1024]).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "));
    let mut third = connect_from(&app, [127, 0, 0, 4]).await;
    let status = status_of(&mut third, &request).await.unwrap_or_default();
    assert!(!status.contains("503"), "{status}");
}
