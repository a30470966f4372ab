//! Business Login for Instagram: the authorize window, its forms, the redirect and the code
//! exchange in every configured shape.

use meta_sim::{AccountKind, AppConfig, AppMode, NewAccount};
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn full_login_through_the_html_forms() {
    let h = harness().await;
    let acct = h.account("cafe", 3);
    let query: Vec<(String, String)> = h.authorize_query(
        "instagram_business_basic,instagram_business_manage_comments",
        "xyz 1",
    );
    let page = h
        .read(
            h.http
                .get(h.url("/www.instagram.com/oauth/authorize"))
                .query(&query),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
    for name in [
        "username",
        "password",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
    ] {
        assert!(
            page.text.contains(&format!("name=\"{name}\"")),
            "form lacks {name}"
        );
    }

    let mut form = query.clone();
    form.extend([
        ("step".into(), "login".into()),
        ("username".into(), "cafe".into()),
        ("password".into(), "pw".into()),
    ]);
    let consent = h
        .read(
            h.http
                .post(h.url("/www.instagram.com/oauth/authorize"))
                .form(&form),
        )
        .await;
    assert_eq!(consent.status, 200);
    let ticket = input_value(&consent.text, "login_ticket").expect("ticket");
    assert_eq!(consent.header("x-sim-login-ticket"), Some(ticket.clone()));
    assert!(
        consent
            .text
            .contains("value=\"instagram_business_manage_comments\" checked")
    );
    assert!(consent.text.contains("name=\"action\" value=\"allow\""));
    assert!(consent.text.contains("name=\"action\" value=\"cancel\""));

    let redirect = h
        .post_form(
            "/www.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(redirect.status, 302);
    let loc = redirect.header("location").expect("location");
    assert!(loc.starts_with(&format!("{REDIRECT}?code=")), "{loc}");
    assert!(loc.ends_with("#_"), "code carries the #_ suffix: {loc}");
    let url = redirect.location();
    assert_eq!(query_value(&url, "state").as_deref(), Some("xyz 1"));
    assert_eq!(url.fragment(), Some("_"));
    let code = query_value(&url, "code").expect("code");

    let r = h.exchange_code(&code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(
        v["access_token"]
            .as_str()
            .expect("token")
            .starts_with("IGAA")
    );
    assert_eq!(
        v["user_id"].as_u64().expect("numeric user_id").to_string(),
        acct.ig_user_id
    );
    assert_eq!(
        v["permissions"],
        "instagram_business_basic,instagram_business_manage_comments"
    );

    // The code is single use.
    let again = h.exchange_code(&code).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json(),
        json!({"error_type": "OAuthException", "code": 400, "error_message": "This authorization code has been used"})
    );
    // The ticket is single use too.
    let reuse = h
        .post_form(
            "/www.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(reuse.status, 400);
    assert!(reuse.text.contains("Invalid login_ticket"));
}

#[tokio::test]
async fn unticked_scopes_are_not_granted() {
    let h = harness().await;
    h.account("cafe", 0);
    let mut form = h.authorize_query(
        "instagram_business_basic,instagram_business_manage_comments",
        "s",
    );
    form.extend([
        ("step".into(), "login".into()),
        ("username".into(), "cafe".into()),
        ("password".into(), "pw".into()),
    ]);
    let consent = h
        .read(
            h.http
                .post(h.url("/api.instagram.com/oauth/authorize"))
                .form(&form),
        )
        .await;
    let ticket = input_value(&consent.text, "login_ticket").expect("ticket");
    // A browser always sends the required scope's hidden field; the user unticked comments.
    let redirect = h
        .post_form(
            "/api.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("scope", "instagram_business_basic"),
                ("action", "allow"),
            ],
        )
        .await;
    let code = query_value(&redirect.location(), "code").expect("code");
    assert_eq!(
        h.exchange_code(&code).await.json()["permissions"],
        "instagram_business_basic"
    );
}

#[tokio::test]
async fn cancel_redirects_with_access_denied() {
    let h = harness().await;
    h.account("cafe", 0);
    let consent = h.ig_login("cafe", "pw").await;
    let ticket = input_value(&consent.text, "login_ticket").expect("ticket");
    let r = h
        .post_form(
            "/www.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "cancel"),
            ],
        )
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").expect("location"),
        format!(
            "{REDIRECT}?error=access_denied&error_reason=user_denied&error_description=The+user+denied+your+request.&state=st4te"
        )
    );
}

#[tokio::test]
async fn authorize_refuses_bad_requests() {
    let h = harness().await;
    let page = |q: Vec<(String, String)>| {
        let req = h
            .http
            .get(h.url("/www.instagram.com/oauth/authorize"))
            .query(&q);
        h.read(req)
    };
    let mut q = h.authorize_query("instagram_business_basic", "s");
    q[0].1 = FB_APP.into();
    let r = page(q).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Invalid platform app"), "{}", r.text);

    let mut q = h.authorize_query("instagram_business_basic", "s");
    q[1].1 = "https://evil.example/cb".into();
    let r = page(q).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Invalid redirect_uri"));

    let r = page(h.authorize_query("business_basic", "s")).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Invalid scope: [business_basic]"));

    let r = page(h.authorize_query("instagram_business_content_publish", "s")).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Invalid scope"));

    // Registered URIs match exactly; loopback is no longer automatic.
    h.sim.set_app(AppConfig {
        redirect_uris: vec!["https://app.example/cb".into()],
        ..AppConfig::default()
    });
    let r = page(h.authorize_query("instagram_business_basic", "s")).await;
    assert!(r.text.contains("Invalid redirect_uri"));
    let mut q = h.authorize_query("instagram_business_basic", "s");
    q[1].1 = "https://app.example/cb".into();
    assert_eq!(page(q).await.status, 200);
}

#[tokio::test]
async fn wrong_password_shows_the_form_again() {
    let h = harness().await;
    h.account("cafe", 0);
    let r = h.ig_login("cafe", "nope").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("your password was incorrect"));
    assert!(r.text.contains("name=\"password\""));
    assert!(input_value(&r.text, "login_ticket").is_none());
    let r = h.ig_login("nobody", "pw").await;
    assert!(r.text.contains("belong to an account"), "{}", r.text);
}

#[tokio::test]
async fn development_mode_admits_testers_only() {
    let h = harness().await;
    h.account("cafe", 0);
    h.account("tester", 0);
    h.sim.set_app(AppConfig {
        mode: AppMode::Development,
        testers: vec!["tester".into()],
        ..AppConfig::default()
    });
    let r = h.ig_login("cafe", "pw").await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Insufficient developer role"));
    assert_eq!(h.ig_login("tester", "pw").await.status, 200);
}

#[tokio::test]
async fn exchange_errors_use_the_flat_shape() {
    let h = harness().await;
    h.account("cafe", 0);
    let code = h.ig_code("cafe").await;
    let post = |pairs: Vec<(&'static str, String)>| {
        let req = h
            .http
            .post(h.url("/api.instagram.com/oauth/access_token"))
            .form(&pairs);
        h.read(req)
    };
    let base = |code: &str| {
        vec![
            ("client_id", IG_APP.to_owned()),
            ("client_secret", IG_SECRET.to_owned()),
            ("grant_type", "authorization_code".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code", code.to_owned()),
        ]
    };
    let cases: Vec<(usize, String, &str)> = vec![
        (1, "wrong".into(), "Error validating client secret."),
        (0, FB_APP.into(), "Invalid platform app"),
        (
            3,
            "http://127.0.0.1:9/other".into(),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        ),
        (4, format!("{code}#_"), "Invalid authorization code"),
        (4, "AQunknown".into(), "Invalid authorization code"),
    ];
    for (index, value, message) in cases {
        let mut form = base(&code);
        form[index].1 = value;
        let r = post(form).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"error_type": "OAuthException", "code": 400, "error_message": message})
        );
    }
    // Failed attempts did not burn the code; an expired one is refused.
    let later = h.ig_code("cafe").await;
    h.sim.advance_clock(601);
    let r = post(base(&later)).await;
    assert_eq!(
        r.json()["error_message"],
        "This authorization code has expired"
    );
    assert_eq!(
        post(base(&code)).await.json()["error_message"],
        "This authorization code has expired"
    );
}

#[tokio::test]
async fn wrapped_shape_and_string_ids_and_permission_arrays() {
    let h = harness().await;
    let acct = h.account("cafe", 0);
    h.sim
        .patch_settings(&json!({
            "code_exchange_shape": "wrapped",
            "user_id_type": "string",
            "permissions_type": "array",
            "user_id_source": "app_scoped",
        }))
        .expect("settings");
    let code = h.ig_code("cafe").await;
    let v = h.exchange_code(&code).await.json();
    let item = &v["data"][0];
    assert!(
        item["access_token"]
            .as_str()
            .expect("token")
            .starts_with("IGAA")
    );
    assert_eq!(item["user_id"], json!(acct.app_scoped_id));
    assert_eq!(item["permissions"], json!(["instagram_business_basic"]));
}

#[tokio::test]
async fn multipart_exchange_works() {
    let h = harness().await;
    h.account("cafe", 0);
    let code = h.ig_code("cafe").await;
    let mut body = String::new();
    for (k, v) in [
        ("client_id", IG_APP),
        ("client_secret", IG_SECRET),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
        ("code", code.as_str()),
    ] {
        body.push_str(&format!(
            "--BOUNDARY\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str("--BOUNDARY--\r\n");
    let r = h
        .read(
            h.http
                .post(h.url("/api.instagram.com/oauth/access_token"))
                .header("content-type", "multipart/form-data; boundary=BOUNDARY")
                .body(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn personal_accounts_log_in_but_cannot_read_media() {
    let h = harness().await;
    h.sim
        .create_account(NewAccount {
            username: "me.personal".into(),
            password: Some("pw".into()),
            kind: AccountKind::Personal,
            posts: 2,
            ..NewAccount::default()
        })
        .expect("account");
    let token = h.ig_short_token("me.personal").await;
    let me = h
        .get(&format!(
            "/graph.instagram.com/me?fields=account_type,username&access_token={token}"
        ))
        .await;
    assert_eq!(me.json()["account_type"], "PERSONAL");
    let media = h
        .get(&format!(
            "/graph.instagram.com/me/media?access_token={token}"
        ))
        .await;
    assert_eq!(media.graph_error(), (10, None));
    assert_eq!(
        media.message(),
        "(#10) Application does not have permission for this action"
    );

    h.sim
        .patch_settings(&json!({"personal_account_login": "refused"}))
        .expect("settings");
    let page = h.ig_login("me.personal", "pw").await;
    assert!(page.text.contains("personal account"));
    assert!(!page.text.contains("value=\"allow\""));
    let ticket = input_value(&page.text, "login_ticket").expect("ticket");
    let r = h
        .post_form(
            "/www.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "cancel"),
            ],
        )
        .await;
    assert_eq!(
        query_value(&r.location(), "error").as_deref(),
        Some("access_denied")
    );
}
