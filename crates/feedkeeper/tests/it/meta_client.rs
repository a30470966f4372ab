//! The Meta client against the simulator, over real HTTP on loopback: every endpoint, and every
//! class of failure the simulator can produce, ends in the right typed value or `Action`.

use feedkeeper::clock::Clock;
use feedkeeper::config::MetaConfig;
use feedkeeper::meta::oauth::parse_callback;
use feedkeeper::meta::{
    AccessToken, Action, ExpiringToken, Failure, MediaType, MetaClient, ReconnectReason,
};
use meta_sim::{AccountEvent, NewAccount, NewMedia, SimOptions, Simulator};

use crate::sim_login;

const REDIRECT_URI: &str = "http://127.0.0.1:9/connect/callback";
const DAY: i64 = 86_400;

/// A simulator on loopback and a client pointed at it, sharing one moving clock.
struct Harness {
    sim: Simulator,
    running: meta_sim::RunningSim,
    client: MetaClient,
    clock: Clock,
}

impl Harness {
    async fn new() -> Harness {
        Self::with_timeout(10).await
    }

    async fn with_timeout(request_timeout_secs: u64) -> Harness {
        let sim = Simulator::new(SimOptions {
            seed: 42,
            ..Default::default()
        });
        let running = meta_sim::start(sim.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let clock = Clock::manual(sim.now());
        let client = MetaClient::new(
            &meta_config(&running.base_url, &sim, request_timeout_secs),
            clock.clone(),
        )
        .unwrap();
        Harness {
            sim,
            running,
            client,
            clock,
        }
    }

    /// Moves Meta's clock and ours together.
    fn advance(&self, secs: i64) {
        self.sim.advance_clock(secs);
        self.clock.advance(secs);
    }

    fn account(&self, username: &str, posts: u32) -> meta_sim::AccountInfo {
        self.sim
            .create_account(NewAccount {
                username: username.into(),
                posts,
                ..Default::default()
            })
            .unwrap()
    }

    /// Logs `username` in through the simulated Instagram pages; returns where Meta redirects.
    async fn instagram_login(&self, username: &str, password: &str, allow: bool) -> String {
        sim_login::instagram(
            &self.client,
            REDIRECT_URI,
            "state-123",
            username,
            password,
            allow,
        )
        .await
    }

    /// A long-lived Instagram Login token for a fresh login of `username`.
    async fn instagram_token(&self, username: &str) -> ExpiringToken {
        let location = self.instagram_login(username, "sim-password", true).await;
        let callback = parse_callback(&location).unwrap();
        let short = self
            .client
            .exchange_instagram_code(&callback.code, REDIRECT_URI)
            .await
            .unwrap();
        self.client
            .exchange_for_long_lived(&short.access_token)
            .await
            .unwrap()
    }

    /// Logs a Facebook user in through the simulated dialog; returns the redirect.
    async fn facebook_login(&self, fb_user: &str, password: &str) -> String {
        sim_login::facebook(&self.client, REDIRECT_URI, "fb-state", fb_user, password).await
    }
}

fn meta_config(base: &str, sim: &Simulator, request_timeout_secs: u64) -> MetaConfig {
    let mut config = feedkeeper::config::Config::default();
    feedkeeper::cli::point_at_simulator(&mut config, base, &sim.app()).unwrap();
    MetaConfig {
        request_timeout_secs,
        connect_timeout_secs: 2,
        ..config.meta
    }
}

fn reason(
    result: Result<impl std::fmt::Debug, feedkeeper::meta::MetaError>,
) -> Option<ReconnectReason> {
    result.expect_err("the call should fail").reconnect_reason()
}

// ---- Instagram Login ---------------------------------------------------------------------------

#[tokio::test]
async fn instagram_login_end_to_end() {
    let h = Harness::new().await;
    let account = h.account("cafe_rosa", 3);
    let location = h.instagram_login("cafe_rosa", "sim-password", true).await;
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert!(location.ends_with("#_"), "Meta appends #_: {location}");
    let callback = parse_callback(&location).unwrap();
    assert_eq!(callback.state.as_deref(), Some("state-123"));

    let short = h
        .client
        .exchange_instagram_code(&callback.code, REDIRECT_URI)
        .await
        .unwrap();
    assert_eq!(short.user_id, account.ig_user_id);
    assert!(
        short
            .permissions
            .iter()
            .any(|p| p == "instagram_business_basic")
    );
    // A code works once.
    let again = h
        .client
        .exchange_instagram_code(&callback.code, REDIRECT_URI)
        .await
        .unwrap_err();
    assert!(matches!(again.failure, Failure::Meta { .. }), "{again}");

    let long = h
        .client
        .exchange_for_long_lived(&short.access_token)
        .await
        .unwrap();
    let lifetime = long.expires_at.unwrap() - h.clock.now();
    assert!(
        (59 * DAY..=60 * DAY).contains(&lifetime),
        "lifetime {lifetime}"
    );

    let profile = h
        .client
        .instagram_profile(&long.access_token)
        .await
        .unwrap();
    assert_eq!(profile.professional_id(), account.ig_user_id);
    assert_ne!(
        profile.id, account.ig_user_id,
        "id is app-scoped, user_id is the professional id"
    );
    assert_eq!(profile.username.as_deref(), Some("cafe_rosa"));
    assert_eq!(profile.account_type.as_deref(), Some("BUSINESS"));
    assert!(!profile.is_personal());
}

#[tokio::test]
async fn a_cancelled_login_is_a_denied_callback() {
    let h = Harness::new().await;
    h.account("shy_user", 0);
    let location = h.instagram_login("shy_user", "sim-password", false).await;
    let err = parse_callback(&location).unwrap_err();
    assert!(
        matches!(err.failure, Failure::Denied { ref reason, .. } if reason == "user_denied"),
        "{err}"
    );
}

#[tokio::test]
async fn both_code_exchange_shapes_and_id_types_parse() {
    let h = Harness::new().await;
    let account = h.account("shapes", 0);
    for patch in [
        serde_json::json!({"code_exchange_shape": "wrapped", "user_id_type": "string", "permissions_type": "array"}),
        serde_json::json!({"code_exchange_shape": "flat", "user_id_type": "number", "permissions_type": "string"}),
        serde_json::json!({"code_exchange_shape": "wrapped", "user_id_type": "number", "permissions_type": "string"}),
    ] {
        h.sim.patch_settings(&patch).unwrap();
        let location = h.instagram_login("shapes", "sim-password", true).await;
        let code = parse_callback(&location).unwrap().code;
        let short = h
            .client
            .exchange_instagram_code(&code, REDIRECT_URI)
            .await
            .unwrap();
        assert_eq!(short.user_id, account.ig_user_id, "{patch}");
        assert_eq!(
            short.permissions,
            vec!["instagram_business_basic".to_owned()],
            "{patch}"
        );
    }
}

#[tokio::test]
async fn when_ig_exchange_is_unsupported_the_code_token_is_kept() {
    let h = Harness::new().await;
    h.account("postiz_case", 0);
    h.sim
        .patch_settings(&serde_json::json!({"ig_exchange_supported": false}))
        .unwrap();
    let location = h.instagram_login("postiz_case", "sim-password", true).await;
    let code = parse_callback(&location).unwrap().code;
    let short = h
        .client
        .exchange_instagram_code(&code, REDIRECT_URI)
        .await
        .unwrap();
    let strict = h
        .client
        .exchange_for_long_lived(&short.access_token)
        .await
        .unwrap_err();
    assert_eq!(strict.action, Action::Bug, "{strict}");
    let kept = h
        .client
        .obtain_long_lived(&short.access_token)
        .await
        .unwrap();
    assert_eq!(kept.access_token, short.access_token);
    assert_eq!(kept.expires_at, None);
}

#[tokio::test]
async fn refresh_follows_the_24_hour_rule_and_dies_after_expiry() {
    let h = Harness::new().await;
    h.account("refresher", 0);
    let token = h.instagram_token("refresher").await;

    h.advance(23 * 3600);
    let too_early = h
        .client
        .refresh_long_lived(&token.access_token)
        .await
        .unwrap_err();
    assert_eq!(
        too_early.action,
        Action::Bug,
        "a too-young token is our scheduling bug: {too_early}"
    );

    h.advance(2 * 3600);
    let refreshed = h
        .client
        .refresh_long_lived(&token.access_token)
        .await
        .unwrap();
    let lifetime = refreshed.expires_at.unwrap() - h.clock.now();
    assert!(
        (59 * DAY..=60 * DAY).contains(&lifetime),
        "refreshed for 60 days, got {lifetime}"
    );
    // The profile works with the token we were given back.
    h.client
        .instagram_profile(&refreshed.access_token)
        .await
        .unwrap();

    h.advance(61 * DAY);
    let expired = h.client.refresh_long_lived(&refreshed.access_token).await;
    assert_eq!(reason(expired), Some(ReconnectReason::Expired));
    let expired = h.client.instagram_profile(&refreshed.access_token).await;
    assert_eq!(reason(expired), Some(ReconnectReason::Expired));
}

#[tokio::test]
async fn refresh_works_whether_or_not_the_string_changes() {
    let h = Harness::new().await;
    h.account("same_string", 0);
    h.sim
        .patch_settings(&serde_json::json!({"refresh_returns_new_token": false}))
        .unwrap();
    let token = h.instagram_token("same_string").await;
    h.advance(2 * DAY);
    let refreshed = h
        .client
        .refresh_long_lived(&token.access_token)
        .await
        .unwrap();
    assert_eq!(refreshed.access_token, token.access_token);
    assert!(refreshed.expires_at > token.expires_at);

    h.sim
        .patch_settings(&serde_json::json!({"refresh_returns_new_token": true}))
        .unwrap();
    h.advance(2 * DAY);
    let renewed = h
        .client
        .refresh_long_lived(&refreshed.access_token)
        .await
        .unwrap();
    assert_ne!(renewed.access_token, refreshed.access_token);
    h.client
        .instagram_profile(&renewed.access_token)
        .await
        .unwrap();
}

// ---- revocations -------------------------------------------------------------------------------

#[tokio::test]
async fn every_revocation_kind_maps_to_its_reason() {
    let h = Harness::new().await;
    let cases = [
        (
            AccountEvent::PasswordChanged,
            ReconnectReason::PasswordChanged,
        ),
        (
            AccountEvent::TwoFactorEnabled,
            ReconnectReason::PasswordChanged,
        ),
        (AccountEvent::SuspiciousLogin, ReconnectReason::Checkpoint),
        (AccountEvent::AppRemoved, ReconnectReason::AppRemoved),
        (AccountEvent::TokenInvalidated, ReconnectReason::Unknown),
        (
            AccountEvent::PermissionRevoked {
                scope: "instagram_business_basic".into(),
            },
            ReconnectReason::PermissionMissing,
        ),
    ];
    for (i, (event, expected)) in cases.into_iter().enumerate() {
        let name = format!("victim_{i}");
        h.account(&name, 2);
        let token = h.instagram_token(&name).await;
        let profile = h
            .client
            .instagram_profile(&token.access_token)
            .await
            .unwrap();
        h.sim.apply_event(&name, event.clone()).await.unwrap();
        let media = h
            .client
            .media_page(&token.access_token, profile.professional_id(), 25)
            .await;
        assert_eq!(reason(media), Some(expected), "{event:?}");
        if expected != ReconnectReason::PermissionMissing {
            let refresh = h.client.refresh_long_lived(&token.access_token).await;
            assert_eq!(reason(refresh), Some(expected), "{event:?} on refresh");
        }
    }
}

#[tokio::test]
async fn an_api_breaking_change_needs_every_account_to_log_in_again() {
    let h = Harness::new().await;
    h.account("before_change", 1);
    let token = h.instagram_token("before_change").await;
    h.sim
        .apply_global_event(meta_sim::GlobalEvent::ApiBreakingChange);
    assert_eq!(
        reason(h.client.instagram_profile(&token.access_token).await),
        Some(ReconnectReason::Unknown)
    );
    // A fresh login works again.
    let fresh = h.instagram_token("before_change").await;
    h.client
        .instagram_profile(&fresh.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_personal_account_logs_in_but_cannot_serve_media() {
    let h = Harness::new().await;
    h.sim
        .create_account(NewAccount {
            username: "just_me".into(),
            kind: meta_sim::AccountKind::Personal,
            ..Default::default()
        })
        .unwrap();
    let token = h.instagram_token("just_me").await;
    let profile = h
        .client
        .instagram_profile(&token.access_token)
        .await
        .unwrap();
    assert!(profile.is_personal());
    let media = h
        .client
        .media_page(&token.access_token, profile.professional_id(), 25)
        .await;
    assert_eq!(reason(media), Some(ReconnectReason::PermissionMissing));
}

// ---- media ------------------------------------------------------------------------------------

#[tokio::test]
async fn media_pages_are_followed_to_the_end_newest_first() {
    let h = Harness::new().await;
    let account = h.account("prolific", 0);
    for i in 0..30 {
        h.advance(60);
        h.sim
            .post_media("prolific", NewMedia::image(&format!("post {i}")))
            .unwrap();
    }
    let token = h.instagram_token("prolific").await;
    let first = h
        .client
        .media_page(&token.access_token, &account.ig_user_id, 25)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 25);
    assert!(first.next.is_some());
    let second = h
        .client
        .next_media_page(&token.access_token, first.next.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 5);
    assert!(second.next.is_none(), "no next on the last page");

    let all = h
        .client
        .recent_media(&token.access_token, &account.ig_user_id, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(all[0].caption.as_deref(), Some("post 29"));
    let times: Vec<_> = all.iter().map(|m| m.timestamp.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let few = h
        .client
        .recent_media(&token.access_token, &account.ig_user_id, 7)
        .await
        .unwrap();
    assert_eq!(few.len(), 7);
}

#[tokio::test]
async fn every_media_kind_parses_with_its_absent_fields() {
    let h = Harness::new().await;
    let account = h.account("variety", 0);
    h.sim.post_media("variety", NewMedia::image("")).unwrap();
    h.sim
        .post_media("variety", NewMedia::video("a video"))
        .unwrap();
    h.sim
        .post_media("variety", NewMedia::reel("a reel"))
        .unwrap();
    h.sim
        .post_media("variety", NewMedia::reel("licensed music").copyrighted())
        .unwrap();
    h.sim
        .post_media("variety", NewMedia::carousel("three", 3))
        .unwrap();
    let token = h.instagram_token("variety").await;
    let media = h
        .client
        .recent_media(&token.access_token, &account.ig_user_id, 10)
        .await
        .unwrap();
    assert_eq!(media.len(), 5);
    let by_caption = |c: Option<&str>| media.iter().find(|m| m.caption.as_deref() == c).unwrap();

    let image = by_caption(None);
    assert_eq!(image.media_type, Some(MediaType::Image));
    assert!(image.media_url.is_some() && image.thumbnail_url.is_none());

    let video = by_caption(Some("a video"));
    assert_eq!(video.media_type, Some(MediaType::Video));
    assert!(video.thumbnail_url.is_some() && !video.is_reel());

    let reel = by_caption(Some("a reel"));
    assert_eq!(reel.media_type, Some(MediaType::Video), "reels are VIDEO");
    assert!(reel.is_reel());

    let licensed = by_caption(Some("licensed music"));
    assert!(
        licensed.media_url.is_none(),
        "copyrighted media has no media_url"
    );

    let carousel = by_caption(Some("three"));
    assert_eq!(carousel.media_type, Some(MediaType::CarouselAlbum));
    assert_eq!(carousel.children.len(), 3);
    assert!(
        carousel
            .children
            .iter()
            .all(|c| c.permalink.is_none() && c.media_url.is_some())
    );
    assert!(carousel.display_image_url().is_some());

    // One post by id; a deleted one is gone.
    let single = h
        .client
        .media(&token.access_token, &image.id)
        .await
        .unwrap();
    assert_eq!(single.id, image.id);
    h.sim.delete_media(&image.id).unwrap();
    let gone = h
        .client
        .media(&token.access_token, &image.id)
        .await
        .unwrap_err();
    assert_eq!(gone.action, Action::Gone, "{gone}");
}

#[tokio::test]
async fn the_cdn_urls_the_client_gets_carry_a_readable_expiry() {
    let h = Harness::new().await;
    let account = h.account("cdn_user", 1);
    let token = h.instagram_token("cdn_user").await;
    let post = h
        .client
        .recent_media(&token.access_token, &account.ig_user_id, 1)
        .await
        .unwrap()
        .remove(0);
    let url = post.display_image_url().unwrap();
    let patterns = vec![feedkeeper::config::HostPattern::parse("127.0.0.1").unwrap()];
    let parsed = feedkeeper::meta::cdn::parse(url, &patterns).unwrap();
    let expires = parsed.expires_at.unwrap();
    assert!(expires > h.clock.now() && expires < h.clock.now() + 8 * DAY);
}

// ---- rate limits and outages ----------------------------------------------------------------------

#[tokio::test]
async fn usage_headers_are_recorded_and_throttling_backs_off() {
    let h = Harness::new().await;
    let account = h.account("busy", 1);
    let token = h.instagram_token("busy").await;
    h.sim
        .patch_settings(&serde_json::json!({"ig_account_calls_per_day": 10}))
        .unwrap();
    let mut last = None;
    for _ in 0..30 {
        match h.client.instagram_profile(&token.access_token).await {
            Ok(_) => continue,
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let observed = h
        .client
        .usage()
        .get(&account.ig_user_id)
        .expect("BUC usage recorded");
    assert!(observed.percent >= 50, "{observed:?}");
    let err = last.expect("the tiny budget ran out");
    assert_eq!(err.code(), Some(80_002), "{err}");
    assert!(
        matches!(err.action, Action::BackOff { until } if until > h.clock.now()),
        "{err}"
    );
}

#[tokio::test]
async fn forced_throttles_of_every_kind_back_off() {
    let h = Harness::new().await;
    h.account("throttled", 1);
    let token = h.instagram_token("throttled").await;
    for scope in [
        meta_sim::ThrottleScope::App,
        meta_sim::ThrottleScope::User,
        meta_sim::ThrottleScope::Custom,
        meta_sim::ThrottleScope::Account,
    ] {
        h.sim.clear_throttles();
        h.sim
            .throttle(meta_sim::Throttle {
                scope,
                account: Some("throttled".into()),
                secs: 600,
            })
            .unwrap();
        let err = h
            .client
            .instagram_profile(&token.access_token)
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(i64::from(scope.code())),
            "{scope:?}: {err}"
        );
        assert!(
            matches!(err.action, Action::BackOff { .. }),
            "{scope:?}: {err}"
        );
    }
}

#[tokio::test]
async fn outages_of_every_kind_are_retryable() {
    let h = Harness::with_timeout(1).await;
    h.account("outage", 1);
    let token = h.instagram_token("outage").await;
    for (field, expect_timeout) in [
        ("error_rate", false),
        ("malformed_rate", false),
        ("html_rate", false),
        ("empty_rate", false),
        ("timeout_rate", true),
    ] {
        let outage: meta_sim::Outage =
            serde_json::from_value(serde_json::json!({ field: 1.0 })).unwrap();
        h.sim.set_outage(outage).unwrap();
        let err = h
            .client
            .instagram_profile(&token.access_token)
            .await
            .unwrap_err();
        assert_eq!(err.action, Action::Retry, "{field}: {err}");
        assert_eq!(
            err.failure == Failure::Timeout,
            expect_timeout,
            "{field}: {err}"
        );
    }
    h.sim.clear_outage();
    h.client
        .instagram_profile(&token.access_token)
        .await
        .unwrap();
}

// ---- Facebook Login ---------------------------------------------------------------------------

#[tokio::test]
async fn facebook_login_reaches_the_instagram_account_through_a_page() {
    let h = Harness::new().await;
    let account = h
        .sim
        .create_account(NewAccount {
            username: "bistro".into(),
            facebook_page: true,
            posts: 4,
            ..Default::default()
        })
        .unwrap();
    let location = h.facebook_login("bistro", "sim-password").await;
    let callback = parse_callback(&location).unwrap();
    assert_eq!(callback.state.as_deref(), Some("fb-state"));

    let short = h
        .client
        .exchange_facebook_code(&callback.code, REDIRECT_URI)
        .await
        .unwrap();
    assert!(short.access_token.expose().starts_with("EA"));
    let long = h
        .client
        .exchange_facebook_long_lived(&short.access_token)
        .await
        .unwrap();
    assert!(long.expires_at.unwrap() - h.clock.now() > 50 * DAY);

    let pages = h.client.facebook_pages(&long.access_token).await.unwrap();
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    assert_eq!(
        page.instagram_business_account.as_deref(),
        Some(account.ig_user_id.as_str())
    );

    let profile = h
        .client
        .facebook_instagram_profile(&page.access_token, &account.ig_user_id)
        .await
        .unwrap();
    assert_eq!(profile.professional_id(), account.ig_user_id);
    let media = h
        .client
        .recent_media(&page.access_token, &account.ig_user_id, 10)
        .await
        .unwrap();
    assert_eq!(media.len(), 4);

    let info = h.client.debug_token(&page.access_token).await.unwrap();
    assert!(info.is_valid);
    assert_eq!(info.token_type.as_deref(), Some("PAGE"));
    assert_eq!(
        info.expires_at, None,
        "Page tokens from long-lived user tokens never expire"
    );
    assert!(
        info.data_access_expires_at
            .is_some_and(|t| t > h.clock.now())
    );

    // A password change kills the Page token too; debug_token says so.
    h.sim
        .apply_event("bistro", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    let info = h.client.debug_token(&page.access_token).await.unwrap();
    assert!(!info.is_valid);
    assert_eq!(
        info.error.as_ref().map(|e| (e.0, e.1)),
        Some((190, Some(460)))
    );
    let media = h
        .client
        .media_page(&page.access_token, &account.ig_user_id, 10)
        .await;
    assert_eq!(reason(media), Some(ReconnectReason::PasswordChanged));
}

#[tokio::test]
async fn tokens_never_cross_to_the_other_host() {
    let h = Harness::new().await;
    h.account("crossing", 1);
    let token = h.instagram_token("crossing").await;
    let before = h.sim.requests(None).len();
    let err = h
        .client
        .facebook_pages(&token.access_token)
        .await
        .unwrap_err();
    assert!(matches!(err.failure, Failure::Refused { .. }));
    let err = h
        .client
        .instagram_profile(&AccessToken::new("EAAsomething"))
        .await
        .unwrap_err();
    assert!(matches!(err.failure, Failure::Refused { .. }));
    assert_eq!(h.sim.requests(None).len(), before, "nothing was sent");
    drop(h.running);
}

#[tokio::test]
async fn calls_refused_together_for_an_unknown_field_all_ask_again() {
    let h = Harness::new().await;
    let account = h.account("together", 3);
    let token = h.instagram_token("together").await;
    h.sim
        .patch_settings(&serde_json::json!({ "unknown_fields": ["alt_text"], "latency_ms": 50 }))
        .unwrap();
    let seq = h.sim.requests(None).last().map(|r| r.seq);
    // Both ask with alt_text before either answer arrives; both are refused; both ask again.
    let (a, b) = tokio::join!(
        h.client
            .media_page(&token.access_token, &account.ig_user_id, 25),
        h.client
            .media_page(&token.access_token, &account.ig_user_id, 25),
    );
    assert_eq!(a.unwrap().items.len(), 3);
    assert_eq!(b.unwrap().items.len(), 3);
    let refused = h
        .sim
        .requests(seq)
        .iter()
        .filter(|r| r.query.contains("alt_text"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(refused, [Some(400), Some(400)], "both went out with it");
}
