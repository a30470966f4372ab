//! Test harness: a simulator on a free port, a non-redirecting HTTP client, and helpers that
//! drive the Instagram and Facebook login forms with plain POSTs, as feedkeeper's tests will.

use meta_sim::{NewAccount, RunningSim, SimOptions, Simulator};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Accepted because no redirect URIs are registered and it is on 127.0.0.1.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const IG_APP: &str = "1000000000000001";
pub const IG_SECRET: &str = "sim-instagram-secret";
pub const FB_APP: &str = "2000000000000002";
pub const FB_SECRET: &str = "sim-facebook-secret";

pub struct Harness {
    pub running: RunningSim,
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub base: String,
}

/// A response read fully.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn location(&self) -> url::Url {
        let loc = self.header("location").expect("a Location header");
        url::Url::parse(&loc).expect("an absolute Location")
    }

    /// `(code, subcode)` of a Graph error.
    pub fn graph_error(&self) -> (i64, Option<i64>) {
        let v = self.json();
        let e = &v["error"];
        (
            e["code"]
                .as_i64()
                .unwrap_or_else(|| panic!("no error code: {v}")),
            e["error_subcode"].as_i64(),
        )
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub async fn harness() -> Harness {
    harness_with(SimOptions {
        seed: 7,
        ..SimOptions::default()
    })
    .await
}

pub async fn harness_with(options: SimOptions) -> Harness {
    let sim = Simulator::new(options);
    let running = meta_sim::start(sim.clone(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Harness {
        base: running.base_url.clone(),
        sim,
        running,
        http,
    }
}

/// The `value` of the first `<input name="…">` in `html`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_owned())
}

pub fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.read(self.http.get(self.url(path))).await
    }

    pub async fn get_url(&self, url: impl reqwest::IntoUrl) -> Reply {
        self.read(self.http.get(url)).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.read(self.http.post(self.url(path)).form(form)).await
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &str) -> Reply {
        self.read(
            self.http
                .request(method, self.url(path))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn read(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn account(&self, username: &str, posts: u32) -> meta_sim::AccountInfo {
        self.sim
            .create_account(NewAccount {
                username: username.into(),
                password: Some("pw".into()),
                posts,
                ..NewAccount::default()
            })
            .expect("account created")
    }

    pub fn page_account(&self, username: &str, fb_user: &str, posts: u32) -> meta_sim::AccountInfo {
        self.sim
            .create_account(NewAccount {
                username: username.into(),
                password: Some("pw".into()),
                facebook_page: true,
                facebook_user: Some(fb_user.into()),
                posts,
                ..NewAccount::default()
            })
            .expect("account created")
    }

    pub fn authorize_query(&self, scope: &str, state: &str) -> Vec<(String, String)> {
        vec![
            ("client_id".into(), IG_APP.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("response_type".into(), "code".into()),
            ("scope".into(), scope.into()),
            ("state".into(), state.into()),
        ]
    }

    /// POSTs the Instagram login form; returns the consent page.
    pub async fn ig_login(&self, username: &str, password: &str) -> Reply {
        let mut form = self.authorize_query("instagram_business_basic", "st4te");
        form.push(("step".into(), "login".into()));
        form.push(("username".into(), username.into()));
        form.push(("password".into(), password.into()));
        self.read(
            self.http
                .post(self.url("/www.instagram.com/oauth/authorize"))
                .form(&form),
        )
        .await
    }

    /// Logs in and allows; returns the redirect.
    pub async fn ig_allow(&self, username: &str) -> Reply {
        let consent = self.ig_login(username, "pw").await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        let ticket = input_value(&consent.text, "login_ticket").expect("a login_ticket");
        self.post_form(
            "/www.instagram.com/oauth/authorize",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "allow"),
            ],
        )
        .await
    }

    /// The whole Instagram flow up to the authorization code.
    pub async fn ig_code(&self, username: &str) -> String {
        let redirect = self.ig_allow(username).await;
        assert_eq!(redirect.status, 302, "{}", redirect.text);
        query_value(&redirect.location(), "code").expect("a code")
    }

    pub async fn exchange_code(&self, code: &str) -> Reply {
        self.post_form(
            "/api.instagram.com/oauth/access_token",
            &[
                ("client_id", IG_APP),
                ("client_secret", IG_SECRET),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
                ("code", code),
            ],
        )
        .await
    }

    pub async fn ig_short_token(&self, username: &str) -> String {
        let code = self.ig_code(username).await;
        let r = self.exchange_code(&code).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn ig_long_token(&self, username: &str) -> String {
        let short = self.ig_short_token(username).await;
        let r = self
            .get(&format!(
                "/graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret={IG_SECRET}&access_token={short}"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().expect("token").to_owned()
    }

    pub fn fb_dialog_query(&self, scope: &str) -> Vec<(String, String)> {
        vec![
            ("client_id".into(), FB_APP.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("state".into(), "fbst".into()),
            ("scope".into(), scope.into()),
            ("response_type".into(), "code".into()),
        ]
    }

    /// Facebook login + consent accepting everything; returns the redirect.
    pub async fn fb_allow(&self, fb_user: &str, scope: &str) -> Reply {
        let mut form = self.fb_dialog_query(scope);
        form.push(("step".into(), "login".into()));
        form.push(("email".into(), fb_user.into()));
        form.push(("pass".into(), "pw".into()));
        let consent = self
            .read(
                self.http
                    .post(self.url("/www.facebook.com/v23.0/dialog/oauth"))
                    .form(&form),
            )
            .await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        let ticket = input_value(&consent.text, "login_ticket").expect("a login_ticket");
        self.post_form(
            "/www.facebook.com/v23.0/dialog/oauth",
            &[
                ("step", "consent"),
                ("login_ticket", &ticket),
                ("action", "allow"),
            ],
        )
        .await
    }

    pub async fn fb_user_token(&self, fb_user: &str, scope: &str) -> String {
        let redirect = self.fb_allow(fb_user, scope).await;
        assert_eq!(redirect.status, 302, "{}", redirect.text);
        let code = query_value(&redirect.location(), "code").expect("code");
        let r = self
            .get(&format!(
                "/graph.facebook.com/v23.0/oauth/access_token?client_id={FB_APP}&redirect_uri={}&client_secret={FB_SECRET}&code={code}",
                urlencode(REDIRECT)
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn fb_long_token(&self, short: &str) -> String {
        let r = self
            .get(&format!(
                "/graph.facebook.com/v23.0/oauth/access_token?grant_type=fb_exchange_token&client_id={FB_APP}&client_secret={FB_SECRET}&fb_exchange_token={short}"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().expect("token").to_owned()
    }

    /// `/me/accounts` → (page id, page token) of the first page.
    pub async fn page_token(&self, user_token: &str) -> (String, String) {
        let r = self
            .get(&format!(
                "/graph.facebook.com/v23.0/me/accounts?fields=name,access_token&access_token={user_token}"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        (
            v["data"][0]["id"].as_str().expect("page id").to_owned(),
            v["data"][0]["access_token"]
                .as_str()
                .expect("page token")
                .to_owned(),
        )
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub const FB_SCOPES: &str = "instagram_basic,pages_show_list,pages_read_engagement";
