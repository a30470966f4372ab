//! Dashboard accounts over HTTP: sign-up, log-in, log-out, password change, sessions, CSRF, the
//! log-in rate limit and `next`. Run on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use axum::body::Body;
use axum::http::{Method, Request};
use feedkeeper::db::Db;
use reqwest::StatusCode;
use tower::ServiceExt as _;

use crate::helpers::{Session, T0, TEST_PASSWORD, TestApp};

const LOGIN_FAILED: &str = "The email or password is not correct.";

/// Fills and submits the log-in form in `browser`.
async fn log_in(
    browser: &Session,
    email: &str,
    password: &str,
    next: Option<&str>,
) -> crate::helpers::Reply {
    let path = match next {
        Some(next) => format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => "/login".to_owned(),
    };
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut form = page.form("/login");
    form.set("email", email).set("password", password);
    browser.submit(&form).await
}

/// Fills and submits the sign-up form in a new browser.
async fn sign_up(
    app: &TestApp,
    email: &str,
    password: &str,
    confirm: &str,
) -> (Session, crate::helpers::Reply) {
    let browser = app.browser();
    let mut form = browser.get("/signup").await.form("/signup");
    form.set("email", email)
        .set("password", password)
        .set("password_confirm", confirm);
    let reply = browser.submit(&form).await;
    (browser, reply)
}

/// `(token_hash, csrf_token)` of every session row.
async fn session_rows(db: &Db) -> Vec<(String, String)> {
    const SQL: &str = "SELECT token_hash, csrf_token FROM sessions ORDER BY id";
    match db {
        Db::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn accounts_signup_logs_in_and_lands_on_the_dashboard() {
    let app = TestApp::spawn().await;
    let front = app.browser().get("/").await;
    assert!(front.body.contains("href=\"/signup\""), "{}", front.body);
    assert!(front.body.contains("href=\"/login\""));

    let (browser, reply) = sign_up(&app, "  Ada@Example.COM ", TEST_PASSWORD, TEST_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), Some("/connections"));
    assert!(browser.cookie("fk_session").is_some());
    assert_eq!(
        browser.cookie("fk_prelogin"),
        None,
        "the pre-login cookie is dropped"
    );

    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.body.contains("ada@example.com"),
        "email is normalized"
    );
    for nav in [
        "href=\"/connections\"",
        "href=\"/links\"",
        "href=\"/account\"",
        "action=\"/logout\"",
    ] {
        assert!(account.body.contains(nav), "layout lacks {nav}");
    }
    assert_eq!(account.headers["cache-control"], "no-store");
    assert_eq!(account.headers["x-frame-options"], "DENY");

    // A logged-in visit to the forms goes straight on.
    assert_eq!(browser.get("/login").await.location(), Some("/connections"));
    assert_eq!(
        browser.get("/signup?next=/links").await.location(),
        Some("/links")
    );
}

#[tokio::test]
async fn accounts_signup_refuses_a_duplicate_email_clearly() {
    let app = TestApp::spawn().await;
    app.signup_and_login("dup@example.com").await;
    let (browser, reply) = sign_up(&app, " DUP@example.com", TEST_PASSWORD, TEST_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("An account with this email already exists"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("value=\"DUP@example.com\""),
        "the input is kept"
    );
    assert_eq!(browser.cookie("fk_session"), None);
}

#[tokio::test]
async fn accounts_signup_explains_bad_emails_and_passwords_and_keeps_the_email() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "not-an-email",
            TEST_PASSWORD,
            TEST_PASSWORD,
            "it needs an @",
        ),
        ("a@b", TEST_PASSWORD, TEST_PASSWORD, "like name@example.com"),
        (
            "",
            TEST_PASSWORD,
            TEST_PASSWORD,
            "Enter your email address.",
        ),
        (
            "ok@example.com",
            "short-pw",
            "short-pw",
            "at least 10 characters",
        ),
        (
            "ok@example.com",
            &"x".repeat(1025),
            &"x".repeat(1025),
            "at most 1024 characters",
        ),
        (
            "ok@example.com",
            TEST_PASSWORD,
            "something else entirely",
            "do not match",
        ),
    ];
    for (i, (email, password, confirm, message)) in cases.into_iter().enumerate() {
        let (browser, reply) = sign_up(&app, email, password, confirm).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{email}");
        assert!(
            reply.body.contains(message),
            "{email:?}: wanted {message:?} in {}",
            reply.body
        );
        assert!(
            reply.body.contains(&format!("value=\"{email}\"")),
            "the email is kept"
        );
        assert!(
            !reply.body.contains(password),
            "a password is never sent back"
        );
        assert_eq!(browser.cookie("fk_session"), None);
        // The re-rendered form works: it carries a fresh token.
        let mut form = reply.form("/signup");
        let fresh = format!("fixed{i}@example.com");
        form.set("email", &fresh)
            .set("password", TEST_PASSWORD)
            .set("password_confirm", TEST_PASSWORD);
        assert_eq!(
            browser.submit(&form).await.status,
            StatusCode::SEE_OTHER,
            "{email}"
        );
    }
    // Markup in the input is escaped, not rendered.
    let (_, reply) = sign_up(&app, "<script>x</script>", TEST_PASSWORD, TEST_PASSWORD).await;
    assert!(!reply.body.contains("<script>x"), "{}", reply.body);
}

#[tokio::test]
async fn accounts_login_wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.signup_and_login("known@example.com").await;

    let browser = app.browser();
    let wrong = log_in(&browser, "known@example.com", "not the password", None).await;
    let unknown = log_in(&browser, "nobody@example.com", "not the password", None).await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(reply.body.contains(LOGIN_FAILED), "{}", reply.body);
        assert!(!reply.body.contains("not the password"));
    }
    assert!(wrong.body.contains("value=\"known@example.com\""));
    assert_eq!(browser.cookie("fk_session"), None);

    let ok = log_in(&browser, " KNOWN@example.com ", TEST_PASSWORD, None).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), Some("/connections"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn accounts_login_rate_limit_per_email_says_how_long_to_wait() {
    let app = TestApp::spawn().await;
    app.signup_and_login("target@example.com").await;
    let browser = app.browser();
    for _ in 0..10 {
        let reply = log_in(&browser, "target@example.com", "guess-guess-guess", None).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Now even the right password is refused, with how long to wait.
    let limited = log_in(&browser, "target@example.com", TEST_PASSWORD, None).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.headers["retry-after"], "900");
    assert!(
        limited.body.contains("Please wait 15 minutes"),
        "{}",
        limited.body
    );
    assert_eq!(browser.cookie("fk_session"), None);

    // Other emails are not affected.
    app.signup_and_login("bystander@example.com").await;
    let other = log_in(&app.browser(), "bystander@example.com", TEST_PASSWORD, None).await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);

    // The wait shrinks as time passes, and the window ends.
    app.state.clock.advance(14 * 60);
    let later = log_in(&browser, "target@example.com", TEST_PASSWORD, None).await;
    assert_eq!(later.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(later.headers["retry-after"], "60");
    assert!(
        later.body.contains("Please wait 1 minute "),
        "{}",
        later.body
    );
    app.state.clock.advance(60);
    let ok = log_in(&browser, "target@example.com", TEST_PASSWORD, None).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_parallel_wrong_passwords_stop_at_the_limit() {
    let app = TestApp::spawn().await;
    app.signup_and_login("parallel@example.com").await;
    // 40 guesses at once, each from its own browser: the limit is 10 per email, and every
    // attempt is recorded before its password is checked, so no more than 10 get an answer.
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40 {
        let browser = app.browser();
        guesses.spawn(async move {
            log_in(
                &browser,
                "parallel@example.com",
                &format!("guess-{i}-guess"),
                None,
            )
            .await
            .status
        });
    }
    let mut answered = 0;
    let mut limited = 0;
    while let Some(status) = guesses.join_next().await {
        match status.unwrap() {
            StatusCode::UNPROCESSABLE_ENTITY => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // (Racing requests may refuse each other, so fewer may be checked: the safe side.)
    assert!(answered <= 10, "{answered} guesses were checked");
    assert_eq!(answered + limited, 40);
    // The refused ones were not kept: the window holds exactly the failures that were checked.
    for _ in answered..10 {
        let reply = log_in(
            &app.browser(),
            "parallel@example.com",
            "one-more-guess",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let blocked = log_in(&app.browser(), "parallel@example.com", TEST_PASSWORD, None).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn accounts_login_rate_limit_per_client_address() {
    let app = TestApp::spawn().await;
    app.signup_and_login("victim@example.com").await;
    let browser = app.browser();
    // Password spraying: one guess each for many emails, all from 127.0.0.1.
    for i in 0..30 {
        let reply = log_in(
            &browser,
            &format!("user{i}@example.com"),
            "Summer2025!!",
            None,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt {i}"
        );
    }
    let limited = log_in(&browser, "victim@example.com", TEST_PASSWORD, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.body.contains("15 minutes"));
}

#[tokio::test]
async fn accounts_logout_ends_the_session_for_good() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("leaving@example.com").await;
    let old_cookie = browser.cookie("fk_session").unwrap();

    let reply = browser.post("/logout", &[("csrf", &browser.csrf)]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/login?bye=1"));
    assert!(
        reply
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("fk_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(browser.cookie("fk_session"), None);
    assert!(
        session_rows(&app.state.db).await.is_empty(),
        "the row is deleted"
    );

    // Replaying the old cookie gets nowhere.
    browser.set_cookie("fk_session", Some(&old_cookie));
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login?next=%2Faccount"));
    let post = browser
        .post(
            "/account/password",
            &[("csrf", &browser.csrf), ("current_password", TEST_PASSWORD)],
        )
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert!(post.body.contains("Log in"), "{}", post.body);
}

#[tokio::test]
async fn accounts_password_change_needs_the_current_password_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let laptop = app.signup_and_login("owner@example.com").await;
    let phone = app.login("owner@example.com", TEST_PASSWORD).await;
    let new_password = "a brand new passphrase";

    let change = |current: &'static str, new: &'static str, confirm: &'static str| {
        let csrf = laptop.csrf.clone();
        let laptop = &laptop;
        async move {
            laptop
                .post(
                    "/account/password",
                    &[
                        ("csrf", &csrf),
                        ("current_password", current),
                        ("new_password", new),
                        ("new_password_confirm", confirm),
                    ],
                )
                .await
        }
    };
    let wrong = change("not my password", new_password, new_password).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.body.contains("Your current password is not correct."),
        "{}",
        wrong.body
    );
    let short = change(TEST_PASSWORD, "short", "short").await;
    assert!(
        short.body.contains("at least 10 characters"),
        "{}",
        short.body
    );
    let mismatch = change(TEST_PASSWORD, new_password, "another passphrase").await;
    assert!(mismatch.body.contains("do not match"), "{}", mismatch.body);
    assert_eq!(
        phone.get("/account").await.status,
        StatusCode::OK,
        "nothing changed yet"
    );

    let done = change(TEST_PASSWORD, new_password, new_password).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), Some("/account"));
    let account = laptop.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "this session goes on");
    assert!(
        account.body.contains("Your password has been changed."),
        "{}",
        account.body
    );
    let again = laptop.get("/account").await;
    assert!(
        !again.body.contains("Your password has been changed."),
        "a flash shows once"
    );

    assert_eq!(
        phone.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "other sessions end"
    );
    assert_eq!(session_rows(&app.state.db).await.len(), 1);

    let old = log_in(&app.browser(), "owner@example.com", TEST_PASSWORD, None).await;
    assert!(old.body.contains(LOGIN_FAILED));
    let new = log_in(&app.browser(), "owner@example.com", new_password, None).await;
    assert_eq!(new.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn accounts_every_post_needs_a_valid_csrf_token() {
    let app = TestApp::spawn().await;
    let user = app.signup_and_login("csrf@example.com").await;
    let other = app.signup_and_login("other@example.com").await;
    let bad_tokens: [Option<&str>; 3] = [None, Some("wrong"), Some(&other.csrf)];

    for token in bad_tokens {
        let with = |mut fields: Vec<(&'static str, String)>| {
            if let Some(t) = token {
                fields.push(("csrf", t.to_owned()));
            }
            fields
        };
        let posts = [
            ("/logout", with(vec![])),
            (
                "/account/password",
                with(vec![
                    ("current_password", TEST_PASSWORD.into()),
                    ("new_password", "a brand new passphrase".into()),
                    ("new_password_confirm", "a brand new passphrase".into()),
                ]),
            ),
        ];
        for (path, fields) in posts {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = user.post(path, &fields).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} with {token:?}");
            assert!(reply.body.contains("reload the page"), "{}", reply.body);
        }
    }
    // Nothing happened: still logged in, password unchanged.
    assert_eq!(user.get("/account").await.status, StatusCode::OK);
    assert_eq!(
        log_in(&app.browser(), "csrf@example.com", TEST_PASSWORD, None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // The pre-login forms: no token, a made-up one, one minted for another browser, and a
    // right token without its cookie (what a cross-site POST looks like under SameSite=Lax).
    let browser = app.browser();
    let signup = browser.get("/signup").await.form("/signup");
    let login = browser.get("/login").await.form("/login");
    let stranger = app.browser();
    let strangers_token = stranger
        .get("/login")
        .await
        .form("/login")
        .fields
        .into_iter()
        .find(|(n, _)| n == "csrf")
        .unwrap()
        .1;
    for mut form in [signup, login] {
        form.set("email", "new@example.com")
            .set("password", TEST_PASSWORD)
            .set("password_confirm", TEST_PASSWORD);
        let mut no_token = form.clone();
        no_token.fields.retain(|(n, _)| n != "csrf");
        let mut made_up = form.clone();
        made_up.set("csrf", "v1.t.AAAA");
        let mut foreign = form.clone();
        foreign.set("csrf", &strangers_token);
        for attempt in [&no_token, &made_up, &foreign] {
            let reply = browser.submit(attempt).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{}: {:?}",
                form.action,
                attempt.fields
            );
            assert!(reply.body.contains("Reload the page"), "{}", reply.body);
        }
        let cookieless = app.browser().submit(&form).await;
        assert_eq!(cookieless.status, StatusCode::FORBIDDEN);
    }
    // An old form expires.
    let mut late = browser.get("/login").await.form("/login");
    late.set("email", "csrf@example.com")
        .set("password", TEST_PASSWORD);
    app.state.clock.advance(2 * 3600);
    assert_eq!(browser.submit(&late).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn accounts_session_cookie_flags() {
    let app = TestApp::spawn().await;
    let (_, reply) = sign_up(&app, "flags@example.com", TEST_PASSWORD, TEST_PASSWORD).await;
    let session = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("fk_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=7776000"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    let value = session
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("fk_session=");
    assert_eq!(value.len(), 43, "32 bytes, base64url: {value}");

    let https =
        TestApp::spawn_with(|c| c.server.public_url = "https://feeds.example.com".into()).await;
    let prelogin = https.browser().get("/login").await;
    assert!(
        prelogin
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-fk_prelogin=") && c.contains("; Secure"))
    );
    // Over https the names carry the __Host- prefix: no other site on a parent domain can set
    // or overwrite them.
    let (_, reply) = sign_up(&https, "flags@example.com", TEST_PASSWORD, TEST_PASSWORD).await;
    let session = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-fk_session="))
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
}

#[tokio::test]
async fn accounts_next_never_leads_off_site() {
    let app = TestApp::spawn().await;
    app.signup_and_login("next@example.com").await;
    for (next, lands) in [
        ("/links?client=7", "/links?client=7"),
        ("//evil.example/x", "/connections"),
        ("/\\evil.example", "/connections"),
        ("https://evil.example/", "/connections"),
        ("javascript:alert(1)", "/connections"),
    ] {
        let reply = log_in(
            &app.browser(),
            "next@example.com",
            TEST_PASSWORD,
            Some(next),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(reply.location(), Some(lands), "next={next}");
    }
    // A tampered hidden field is checked as well as the query.
    let browser = app.browser();
    let mut form = browser.get("/login?next=/account").await.form("/login");
    assert!(form.fields.contains(&("next".into(), "/account".into())));
    form.set("email", "next@example.com")
        .set("password", TEST_PASSWORD)
        .set("next", "//evil.example");
    assert_eq!(browser.submit(&form).await.location(), Some("/connections"));

    // A page asked for without a session comes back after log-in.
    let browser = app.browser();
    let redirect = browser.get("/account?tab=password").await;
    assert_eq!(
        redirect.location(),
        Some("/login?next=%2Faccount%3Ftab%3Dpassword")
    );
    let reply = log_in(
        &browser,
        "next@example.com",
        TEST_PASSWORD,
        Some("/account?tab=password"),
    )
    .await;
    assert_eq!(reply.location(), Some("/account?tab=password"));
}

#[tokio::test]
async fn accounts_the_database_never_holds_a_raw_session_token() {
    let app = TestApp::spawn().await;
    let a = app.signup_and_login("one@example.com").await;
    let b = app.login("one@example.com", TEST_PASSWORD).await;
    let rows = session_rows(&app.state.db).await;
    assert_eq!(rows.len(), 2);
    for browser in [&a, &b] {
        let token = browser.cookie("fk_session").unwrap();
        for (hash, csrf) in &rows {
            assert!(
                !hash.contains(&token) && !csrf.contains(&token),
                "raw token stored"
            );
        }
        assert!(
            rows.iter().any(|(hash, _)| *hash == sha256_hex(&token)),
            "stored as SHA-256"
        );
    }
    // The password is not stored either.
    const SQL: &str = "SELECT password_hash FROM users";
    let hashes: Vec<String> = match &app.state.db {
        Db::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await.unwrap(),
    };
    assert!(hashes[0].starts_with("$argon2id$") && !hashes[0].contains(TEST_PASSWORD));
}

#[tokio::test]
async fn accounts_sessions_end_when_idle_or_too_old() {
    let app = TestApp::spawn().await;
    let idle = app.signup_and_login("idle@example.com").await;
    let busy = app.login("idle@example.com", TEST_PASSWORD).await;

    // Used every 20 days, a session outlives the 30-day idle limit...
    for _ in 0..4 {
        app.state.clock.advance(20 * 86_400);
        assert_eq!(busy.get("/account").await.status, StatusCode::OK);
    }
    // ...while one left alone for over 30 days has ended.
    assert_eq!(idle.get("/account").await.status, StatusCode::SEE_OTHER);
    // At 90 days after log-in, every session ends, used or not.
    assert_eq!(app.state.clock.now(), T0 + 80 * 86_400);
    app.state.clock.advance(10 * 86_400);
    assert_eq!(busy.get("/account").await.status, StatusCode::SEE_OTHER);
    // Ended sessions are swept at the next log-in.
    app.login("idle@example.com", TEST_PASSWORD).await;
    assert_eq!(session_rows(&app.state.db).await.len(), 1);
}

#[tokio::test]
async fn accounts_pages_need_a_session_in_process() {
    let app = TestApp::spawn().await;
    let router = feedkeeper::app::router(app.state.clone());
    let request = |method: Method, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("csrf=x"))
            .unwrap()
    };
    let get = router
        .clone()
        .oneshot(request(Method::GET, "/account"))
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::SEE_OTHER);
    assert_eq!(get.headers()["location"], "/login?next=%2Faccount");
    let post = router
        .clone()
        .oneshot(request(Method::POST, "/account/password"))
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    // A session cookie that was never issued is no session.
    let forged = Request::builder()
        .uri("/account")
        .header("cookie", format!("fk_session={}", "A".repeat(43)))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router.clone().oneshot(forged).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    // Logging out without a session just leads to the log-in page.
    let logout = router
        .oneshot(request(Method::POST, "/logout"))
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(logout.headers()["location"], "/login");
}

#[tokio::test]
async fn accounts_stylesheet_is_served_and_cached_long() {
    let app = TestApp::spawn().await;
    let login = app.browser().get("/login").await;
    let href = login
        .body
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the layout links the stylesheet")
        .to_owned();
    assert!(href.starts_with("/static/app.css?v="), "{href}");
    let css = reqwest::get(app.url(&href)).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(css.text().await.unwrap().contains(".card"));
}

#[tokio::test]
async fn sign_up_closes_after_the_first_account_unless_opened() {
    let app = TestApp::spawn_with(|c| c.accounts.open_signup = false).await;
    app.signup_and_login("operator@example.com").await;
    let stranger = app.browser();
    let page = stranger.get("/signup").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Sign-up is closed"), "{}", page.body);
    // Posting the form anyway changes nothing.
    let login_page = stranger.get("/login").await;
    let form = login_page.form("/login");
    let csrf = form
        .fields
        .iter()
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap();
    let reply = stranger
        .post(
            "/signup",
            &[
                ("csrf", csrf.as_str()),
                ("email", "stranger@example.com"),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
            ],
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    let db = &app.state.db;
    assert!(
        feedkeeper::db::users::find_by_email(db, "stranger@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn accounts_logging_out_says_so_and_a_wrong_password_keeps_the_email() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("bye@example.com").await;
    let reply = browser.post("/logout", &[("csrf", &browser.csrf)]).await;
    let page = browser.get(reply.location().unwrap()).await;
    assert!(page.body.contains("You are logged out."), "{}", page.body);
    // A wrong password: the email stays, and the cursor waits in the password field.
    let wrong = log_in(&browser, "bye@example.com", "not-my-password", None).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("value=\"bye@example.com\""));
    let password_input = wrong
        .body
        .lines()
        .find(|l| l.contains("id=\"password\""))
        .unwrap();
    assert!(password_input.contains("autofocus"), "{password_input}");
    let email_input = wrong
        .body
        .lines()
        .find(|l| l.contains("id=\"email\""))
        .unwrap();
    assert!(!email_input.contains("autofocus"), "{email_input}");
}

#[tokio::test]
async fn accounts_sign_up_names_every_problem_at_once() {
    let app = TestApp::spawn().await;
    let (_, reply) = sign_up(&app, "not-an-email", "short", "different").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = &reply.body;
    assert!(body.contains("at least 10 characters"), "{body}");
    assert!(body.contains("do not match"), "{body}");
    assert!(
        body.contains("value=\"not-an-email\""),
        "the input is kept: {body}"
    );
    // And the email's own problem, whatever its wording, is in the same message.
    let message = body
        .lines()
        .find(|l| l.contains("notice-error"))
        .unwrap_or_default();
    assert!(message.matches('.').count() >= 3, "{message}");
}
