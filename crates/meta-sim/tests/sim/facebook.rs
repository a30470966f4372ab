//! Facebook Login and graph.facebook.com: dialog, code exchange, long-lived tokens, Pages and
//! Page tokens, the Instagram account behind a Page, and debug_token.

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn dialog_login_consent_and_code_exchange() {
    let h = harness().await;
    h.page_account("cafe", "owner", 2);
    let q = h.fb_dialog_query(FB_SCOPES);
    let page = h
        .read(
            h.http
                .get(h.url("/www.facebook.com/v25.0/dialog/oauth"))
                .query(&q),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"email\"") && page.text.contains("name=\"pass\""));

    let redirect = h.fb_allow("owner", FB_SCOPES).await;
    assert_eq!(redirect.status, 302);
    let loc = redirect.header("location").expect("location");
    assert!(loc.ends_with("#_=_"), "{loc}");
    let url = redirect.location();
    assert_eq!(query_value(&url, "state").as_deref(), Some("fbst"));
    let code = query_value(&url, "code").expect("code");

    let exchange = |code: String| {
        h.get_url(h.url(&format!(
            "/graph.facebook.com/v23.0/oauth/access_token?client_id={FB_APP}&redirect_uri={}&client_secret={FB_SECRET}&code={code}",
            urlencode(REDIRECT)
        )))
    };
    let r = exchange(code.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(
        v["access_token"]
            .as_str()
            .expect("token")
            .starts_with("EAA")
    );
    assert_eq!(v["token_type"], "bearer");
    let ttl = v["expires_in"].as_i64().expect("expires_in");
    assert!(
        (3_600..=7_200).contains(&ttl),
        "short-lived: hours, got {ttl}"
    );
    let again = exchange(code).await;
    assert_eq!(again.graph_error(), (100, Some(36009)));

    // Cancel.
    let mut form = h.fb_dialog_query(FB_SCOPES);
    form.extend([
        ("step".into(), "login".into()),
        ("email".into(), "owner".into()),
        ("pass".into(), "pw".into()),
    ]);
    let consent = h
        .read(
            h.http
                .post(h.url("/www.facebook.com/dialog/oauth"))
                .form(&form),
        )
        .await;
    assert!(consent.text.contains("name=\"page_id\""));
    let ticket = input_value(&consent.text, "login_ticket").expect("ticket");
    let r = h
        .post_form(
            "/www.facebook.com/dialog/oauth",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "cancel"),
            ],
        )
        .await;
    let url = r.location();
    assert_eq!(query_value(&url, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_value(&url, "error_code").as_deref(), Some("200"));
    assert_eq!(
        query_value(&url, "error_reason").as_deref(),
        Some("user_denied")
    );
    assert_eq!(
        query_value(&url, "error_description").as_deref(),
        Some("Permissions error")
    );

    // Wrong app id and unknown scopes are refused on the dialog.
    let mut bad = h.fb_dialog_query(FB_SCOPES);
    bad[0].1 = IG_APP.into();
    let r = h
        .read(
            h.http
                .get(h.url("/www.facebook.com/v25.0/dialog/oauth"))
                .query(&bad),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("Invalid App ID"));
}

#[tokio::test]
async fn pages_page_tokens_and_the_instagram_account() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 3);
    let short = h.fb_user_token("owner", FB_SCOPES).await;
    let long = h.fb_long_token(&short).await;
    assert_ne!(long, short);

    let accounts = h
        .get(&format!(
            "/graph.facebook.com/v23.0/me/accounts?fields=name,access_token&access_token={long}"
        ))
        .await
        .json();
    let page = &accounts["data"][0];
    assert_eq!(page["id"], json!(acct.page_id.clone().expect("page id")));
    assert_eq!(page["name"], "Cafe");
    let page_token = page["access_token"]
        .as_str()
        .expect("page token")
        .to_owned();
    assert!(page_token.starts_with("EAA"));

    // With a Page token, /me is the Page.
    let me = h
        .get(&format!("/graph.facebook.com/v23.0/me?fields=instagram_business_account&access_token={page_token}"))
        .await
        .json();
    assert_eq!(
        me["instagram_business_account"]["id"],
        json!(acct.ig_user_id)
    );
    // With a user token there is no such field.
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/me?fields=instagram_business_account&access_token={long}"
        ))
        .await;
    assert_eq!(r.graph_error(), (100, None));
    // The page node through the user token.
    let node = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}?fields=access_token,instagram_business_account,name&access_token={long}",
            acct.page_id.clone().expect("page")
        ))
        .await
        .json();
    assert_eq!(
        node["access_token"],
        json!(page_token),
        "the same Page token each time"
    );

    // The IG user node: here `id` is the 17841… id.
    let ig = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}?fields=biography,id,username,website,followers_count,media_count,profile_picture_url,name&access_token={page_token}",
            acct.ig_user_id
        ))
        .await
        .json();
    assert_eq!(ig["id"], json!(acct.ig_user_id));
    assert_eq!(ig["username"], "cafe");
    assert_eq!(ig["media_count"], 3);
    let media = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}/media?fields=id,media_type,media_product_type,permalink&access_token={long}",
            acct.ig_user_id
        ))
        .await
        .json();
    let first_id = media["data"][0]["id"]
        .as_str()
        .expect("media id")
        .to_owned();
    assert_eq!(media["data"].as_array().map(Vec::len), Some(3));
    let one = h
        .get(&format!(
            "/graph.facebook.com/{first_id}?fields=media_type&access_token={page_token}"
        ))
        .await;
    assert_eq!(one.status, 200, "{}", one.text);

    // Host prefix rules.
    let ig_token = h.ig_long_token("cafe").await;
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/me?access_token={ig_token}"
        ))
        .await;
    assert_eq!(r.graph_error(), (190, None));
    assert_eq!(
        r.message(),
        "Invalid OAuth access token - Cannot parse access token"
    );
}

#[tokio::test]
async fn media_needs_instagram_basic_and_pages_read_engagement() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 1);
    let user = h.fb_user_token("owner", "pages_show_list").await;
    let r = h
        .get(&format!(
            "/graph.facebook.com/v23.0/{}/media?access_token={user}",
            acct.ig_user_id
        ))
        .await;
    assert_eq!(r.graph_error(), (10, None));
}

#[tokio::test]
async fn debug_token_describes_user_and_page_tokens() {
    let h = harness().await;
    let acct = h.page_account("cafe", "owner", 0);
    let now = h.sim.now();
    let short = h.fb_user_token("owner", FB_SCOPES).await;
    let long = h.fb_long_token(&short).await;
    let (_, page_token) = h.page_token(&long).await;
    let (_, short_page) = h.page_token(&short).await;
    let debug = |t: String| {
        h.get_url(h.url(&format!(
            "/graph.facebook.com/v23.0/debug_token?input_token={t}&access_token={FB_APP}|{FB_SECRET}"
        )))
    };

    let d = debug(page_token.clone()).await.json();
    let data = &d["data"];
    assert_eq!(data["type"], "PAGE");
    assert_eq!(
        data["expires_at"], 0,
        "Page tokens from long-lived user tokens never expire"
    );
    assert_eq!(data["is_valid"], true);
    assert_eq!(data["app_id"], FB_APP);
    assert_eq!(data["data_access_expires_at"], now + 90 * 86_400);
    assert_eq!(
        data["profile_id"],
        json!(acct.page_id.clone().expect("page"))
    );
    assert!(
        data["scopes"]
            .as_array()
            .expect("scopes")
            .contains(&json!("instagram_basic"))
    );
    let granular = data["granular_scopes"].as_array().expect("granular");
    assert!(
        granular.contains(&json!({"scope": "instagram_basic", "target_ids": [acct.ig_user_id]}))
    );

    let d = debug(short_page).await.json();
    assert_eq!(d["data"]["expires_at"], now + 3_600);
    let d = debug(long.clone()).await.json();
    assert_eq!(d["data"]["type"], "USER");
    assert_eq!(
        d["data"]["user_id"],
        json!(acct.facebook_user_id.clone().expect("fb id"))
    );
    assert_eq!(d["data"]["issued_at"], now);

    // Invalid tokens: is_valid false with an error.
    let d = debug("EAAgarbage".into()).await.json();
    assert_eq!(d["data"]["is_valid"], false);
    assert_eq!(d["data"]["error"]["code"], 190);

    // Data access runs out 90 days after consent, even for non-expiring Page tokens.
    h.sim.advance_clock(90 * 86_400);
    let r = h
        .get(&format!("/graph.facebook.com/me?access_token={page_token}"))
        .await;
    assert_eq!(r.graph_error(), (190, None));
    assert!(r.message().contains("Data access has expired"));
    let d = debug(page_token).await.json();
    assert_eq!(d["data"]["is_valid"], false);

    // A wrong app secret is refused.
    let r = h
        .get(&format!(
            "/graph.facebook.com/debug_token?input_token={long}&access_token={FB_APP}|nope"
        ))
        .await;
    assert_eq!(r.graph_error().0, 190);
}
