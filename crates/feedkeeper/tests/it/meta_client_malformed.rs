//! The client against replies no sane Meta would send: it must give a clear, classified error and
//! never panic. A tiny canned server stands in, since the simulator is too well-behaved for this.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use feedkeeper::clock::Clock;
use feedkeeper::config::MetaConfig;
use feedkeeper::meta::{AccessToken, Action, Failure, MetaClient};

/// Serves `body` with `status` and `content_type` for every path; returns a client pointed at it.
async fn client_for(status: u16, content_type: &'static str, body: &'static str) -> MetaClient {
    let app = Router::new().fallback(get(move || async move {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", content_type.parse().unwrap());
        (StatusCode::from_u16(status).unwrap(), headers, body).into_response()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = MetaConfig {
        instagram_graph_url: format!("{base}/graph.instagram.com").parse().unwrap(),
        facebook_graph_url: format!("{base}/graph.facebook.com").parse().unwrap(),
        request_timeout_secs: 2,
        ..MetaConfig::default()
    };
    MetaClient::new(&config, Clock::manual(1_000)).unwrap()
}

fn token() -> AccessToken {
    AccessToken::new("IGAAtesttoken0123456789")
}

#[tokio::test]
async fn unreadable_replies_are_retryable_errors() {
    let cases: &[(u16, &str, &str)] = &[
        (200, "application/json", "{\"id\":\"1\",\"username\":"), // truncated
        (200, "application/json", ""),                            // empty
        (200, "application/json", "{\"id\":{\"nested\":true}}"),  // wrong type
        (200, "text/html", "<html><body>OK</body></html>"),       // HTML on success
        (502, "text/html", "<html><h1>502 Bad Gateway</h1></html>"), // HTML error page
        (500, "application/json", "{\"error\":\"boom\"}"),        // error of an unknown shape
        (503, "text/plain", ""),                                  // empty error
    ];
    for (status, content_type, body) in cases {
        let client = client_for(*status, content_type, body).await;
        let err = client.instagram_profile(&token()).await.unwrap_err();
        assert_eq!(err.action, Action::Retry, "{status} {body:?} gave {err}");
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn an_error_object_inside_a_200_is_still_an_error() {
    let client = client_for(
        200,
        "application/json",
        r#"{"error":{"message":"Error validating access token: The session has been invalidated because the user changed their password","type":"OAuthException","code":190,"error_subcode":460}}"#,
    )
    .await;
    let err = client.instagram_profile(&token()).await.unwrap_err();
    assert_eq!(
        err.reconnect_reason(),
        Some(feedkeeper::meta::ReconnectReason::PasswordChanged)
    );
}

#[tokio::test]
async fn a_client_error_without_an_error_object_is_a_bug_in_our_request() {
    let client = client_for(404, "text/html", "<html>Not Found</html>").await;
    let err = client.instagram_profile(&token()).await.unwrap_err();
    assert_eq!(err.action, Action::Bug);
    assert!(matches!(
        err.failure,
        Failure::Http {
            http_status: 404,
            ..
        }
    ));
}

#[tokio::test]
async fn media_pages_with_wrong_types_are_rejected_clearly() {
    let client = client_for(
        200,
        "application/json",
        r#"{"data":[{"id":"1","like_count":"many"}]}"#,
    )
    .await;
    let err = client.media_page(&token(), "17841", 25).await.unwrap_err();
    assert!(err.message().contains("unreadable reply"), "{err}");
    let client = client_for(200, "application/json", r#"{"data":{"not":"a list"}}"#).await;
    assert!(client.media_page(&token(), "17841", 25).await.is_err());
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let client = client_for(
        200,
        "application/json",
        r#"{"data":[{"id":"1"}],"paging":{"next":"https://evil.example/steal?access_token=IGAAtesttoken0123456789"}}"#,
    )
    .await;
    let err = client.media_page(&token(), "17841", 25).await.unwrap_err();
    assert_eq!(err.action, Action::Bug);
    assert!(err.message().contains("evil.example"));
    assert!(!err.to_string().contains("IGAAtesttoken"));
}

#[tokio::test]
async fn a_hanging_server_times_out_and_is_retryable() {
    let app = Router::new().fallback(get(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = MetaConfig {
        instagram_graph_url: base.parse().unwrap(),
        request_timeout_secs: 1,
        ..MetaConfig::default()
    };
    let client = MetaClient::new(&config, Clock::manual(0)).unwrap();
    let err = client.instagram_profile(&token()).await.unwrap_err();
    assert_eq!(err.failure, Failure::Timeout);
    assert_eq!(err.action, Action::Retry);
}

#[tokio::test]
async fn nothing_is_sent_with_a_token_of_the_wrong_family() {
    // The server would answer 200; the client must refuse before calling.
    let client = client_for(200, "application/json", r#"{"id":"1"}"#).await;
    let err = client
        .instagram_profile(&AccessToken::new("EAAfacebooktoken"))
        .await
        .unwrap_err();
    assert!(matches!(err.failure, Failure::Refused { .. }));
    let err = client
        .instagram_profile(&AccessToken::new("garbled"))
        .await
        .unwrap_err();
    assert!(err.message().contains("corrupted"));
}
