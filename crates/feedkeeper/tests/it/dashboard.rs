//! The dashboard's connections and client-link pages over real HTTP: what they show, what their
//! buttons do (check now, reconnect link, disconnect, create and revoke links), and that nobody
//! sees or touches another user's connections or links, forges a form, or injects HTML.

use axum::http::StatusCode;
use feedkeeper::connections::{self, Actor};
use feedkeeper::db::connections::{self as stored, Connection, LoginKind, LoginResult, Status};
use feedkeeper::db::{DbError, audit, incidents, links, users};
use feedkeeper::ids::UserId;
use feedkeeper::meta::{AccessToken, ExpiringToken};
use meta_sim::{AccountEvent, AccountKind};
use url::Url;

use crate::helpers::{Reply, Session, TestApp};
use crate::sim_login;

const DAY: i64 = 86_400;

pub(crate) async fn user_id(app: &TestApp, email: &str) -> UserId {
    users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// A business account on the simulator, connected with a token from the App Dashboard's
/// "Generate token" (no login pages: quick).
pub(crate) async fn connect_instagram(app: &TestApp, owner: UserId, username: &str) -> Connection {
    if app.sim.account(username).is_err() {
        app.instagram_account(username, AccountKind::Business, false);
    }
    let generated = app.sim.generate_token(username).unwrap();
    let token = ExpiringToken {
        access_token: AccessToken::new(generated.access_token),
        expires_at: Some(app.state.clock.now() + generated.expires_in),
    };
    connections::connect_instagram(&app.state, owner, &token, None, Actor::User, None)
        .await
        .unwrap()
}

/// The path and query of a URL on our server.
fn local(url: &str) -> String {
    let url = Url::parse(url).expect("an absolute URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Presses a login button (a POST answered with a redirect to Meta's dialog), logs in on Meta's
/// page and follows Meta's redirect back into `browser`.
async fn login_through(browser: &Session, start: Reply, credentials: &[(&str, &str)]) -> Reply {
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let dialog = Url::parse(start.location().unwrap()).unwrap();
    let back = sim_login::through_dialog(dialog, credentials, true).await;
    browser.get(&local(&back)).await
}

/// An account with a Facebook Page, connected by the owner with "Business connection with
/// Facebook" through the simulator's Facebook login.
async fn connect_facebook(app: &TestApp, browser: &Session, username: &str) -> Reply {
    app.instagram_account(username, AccountKind::Business, true);
    let start = browser
        .post("/connections/connect/facebook", &[("csrf", &browser.csrf)])
        .await;
    login_through(
        browser,
        start,
        &[("email", username), ("pass", "sim-password")],
    )
    .await
}

/// `text` as the pages show it (askama's HTML escaping).
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The address on a "link created" page.
fn link_url(page: &Reply) -> String {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let at = page.body.find("id=\"link-url\"").expect("the link's field");
    let rest = &page.body[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find("</textarea>").unwrap() + start;
    rest[start..end].replace("&#47;", "/").replace("&#38;", "&")
}

/// Follows the redirect a link-making POST answers with, to the page that shows the link once.
async fn shown(browser: &Session, made: Reply) -> Reply {
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let to = made.location().expect("a redirect").to_owned();
    assert!(to.ends_with("/created"), "{to}");
    browser.get(&to).await
}

/// A client link made through the form; returns its address.
async fn create_link(browser: &Session, label: &str, email: &str, single_use: bool) -> String {
    let mut fields = vec![
        ("csrf", browser.csrf.as_str()),
        ("label", label),
        ("client_email", email),
        ("expires_days", "7"),
    ];
    if single_use {
        fields.push(("single_use", "on"));
    }
    link_url(&shown(browser, browser.post("/links", &fields).await).await)
}

/// Submits the link form with these values; it must be refused (422). Returns the page.
async fn refused(browser: &Session, label: &str, email: &str, days: &str) -> String {
    let r = browser
        .post(
            "/links",
            &[
                ("csrf", browser.csrf.as_str()),
                ("label", label),
                ("client_email", email),
                ("expires_days", days),
                ("single_use", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.body
}

fn assert_redirect(reply: &Reply, to: &str) {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), Some(to));
}

#[tokio::test]
async fn the_list_shows_each_connection_in_plain_words_with_its_buttons() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;

    // Nothing yet: the page says how to start.
    let empty = browser.get("/connections").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(
        empty.body.contains("No accounts connected yet"),
        "{}",
        empty.body
    );
    assert!(empty.body.contains("create a client link"));
    empty.form("/connections/connect/instagram");
    empty.form("/connections/connect/facebook");
    assert!(empty.body.contains("Connect an Instagram account"));
    // The button says what it does; the badge keeps the seed's name.
    assert!(empty.body.contains("Connect through a Facebook Page"));

    let ig = connect_instagram(&app, owner, "bakery").await;
    let done = connect_facebook(&app, &browser, "harbor").await;
    assert_redirect(&done, "/connections");
    let fb = stored::list_owned(&app.state.db, owner)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.username == "harbor")
        .expect("the Facebook connection");
    assert_eq!(fb.login_kind(), LoginKind::Facebook);

    let page = browser.get("/connections").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("Connected @harbor."), "the flash: {body}");
    assert!(body.contains("@bakery") && body.contains("@harbor"));
    assert!(body.contains("Active"));
    let until = feedkeeper::clock::format_utc(ig.token_expires_at.unwrap());
    assert!(
        body.contains(&format!("Login valid until {until}")),
        "{body}"
    );
    assert_eq!(
        body.matches("<span class=\"tag\">Business connection FB</span>")
            .count(),
        1,
        "only harbor is one"
    );
    assert!(
        body.contains(">Connect through a Facebook Page</button>"),
        "the button says what it does"
    );
    assert!(body.contains(fb.fb_page_name.as_deref().unwrap()));
    // No "does not expire" beside a date by which Facebook wants a new login.
    assert!(body.contains("No end date (a Page login)"), "{body}");
    assert!(!body.contains("Does not expire"));
    let data_access = fb.data_access_expires_at.expect("Facebook logins have one");
    assert!(body.contains(&format!(
        "{} (Facebook asks for a new login every 90 days)",
        feedkeeper::clock::format_utc(data_access)
    )));
    assert!(body.contains("Last synced") && body.contains("never"));
    assert!(!body.contains("No accounts connected yet"));
    for c in [&ig, &fb] {
        page.form(&format!("/connections/{}/refresh", c.id));
        page.form(&format!("/connections/{}/reconnect", c.id));
        page.form(&format!("/connections/{}/reconnect-link", c.id));
        assert!(body.contains(&format!("href=\"/connections/{}\"", c.id)));
        assert!(body.contains(&format!("href=\"/connections/{}/disconnect\"", c.id)));
    }
    for label in [
        "Refresh now",
        "Reconnect",
        "Copy a reconnect link",
        "Details",
        "Disconnect",
    ] {
        assert!(body.contains(label), "{label}");
    }

    // Logged out: the page asks for a log-in, and buttons change nothing.
    let stranger = app.browser();
    let r = stranger.get("/connections").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/login"));
    let r = stranger
        .post(&format!("/connections/{}/disconnect", ig.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(stored::get(&app.state.db, ig.id).await.is_ok());
}

#[tokio::test]
async fn refresh_now_tells_the_outcome_and_the_detail_page_shows_the_history() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let c = connect_instagram(&app, owner, "bakery").await;

    // Healthy and young: a probe; back to the detail page as asked.
    let r = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf), ("back", "detail")],
        )
        .await;
    assert_redirect(&r, &format!("/connections/{}", c.id));
    let page = browser.get(&format!("/connections/{}", c.id)).await;
    assert!(
        page.body.contains("@bakery is active; login valid until"),
        "{}",
        page.body
    );
    // `back` is never a URL to follow.
    let r = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf), ("back", "https://evil.example/")],
        )
        .await;
    assert_redirect(&r, "/connections");

    // Old enough to renew: the login is renewed, and the page says until when.
    app.advance(4 * DAY);
    let r = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_redirect(&r, "/connections");
    let renewed = stored::get(&app.state.db, c.id).await.unwrap();
    let until = feedkeeper::clock::format_utc(renewed.token_expires_at.unwrap());
    assert!(renewed.token_expires_at > c.token_expires_at);
    let page = browser.get("/connections").await;
    assert!(
        page.body
            .contains(&format!("@bakery is active; login renewed until {until}")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Next automatic check:") && page.body.contains("(in "),
        "it says when the next check is: {}",
        page.body
    );
    // The next check is planned from what this one found.
    let job =
        feedkeeper::db::jobs::get(&app.state.db, connections::LIFECYCLE_JOB, &c.id.to_string())
            .await
            .unwrap();
    assert!(job.due_at > app.state.clock.now());

    // Pressed again at once: no second call to Meta within the cooldown, and it says so.
    let calls = app.sim.requests(None).len();
    browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    let page = browser.get("/connections").await;
    assert!(
        page.body.contains("@bakery was checked moments ago"),
        "{}",
        page.body
    );
    assert_eq!(
        app.sim.requests(None).len(),
        calls,
        "no call within the cooldown"
    );

    // The password changes on Instagram: "Refresh now" finds out at once, in plain words.
    app.advance(120);
    app.sim
        .apply_event("bakery", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    let r = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf), ("back", "list")],
        )
        .await;
    assert_redirect(&r, "/connections");
    let page = browser.get("/connections").await;
    let body = &page.body;
    assert!(
        body.contains("@bakery needs reconnecting: the password was changed on Instagram"),
        "{body}"
    );
    // A refused login shows no "valid until".
    assert!(body.contains("Meta no longer accepts this login"), "{body}");
    // Bad news in the colour of bad news, not the green of success.
    assert!(
        body.contains("class=\"notice notice-error\" role=\"status\">@bakery needs reconnecting"),
        "{body}"
    );
    assert!(body.contains("Needs reconnecting: the password was changed on Instagram (or Meta"));
    assert!(body.contains("Open incident: Waiting for a reconnect since"));
    // Said once: the status line has the reason; Meta's own words for it are not repeated.
    assert!(!body.contains("Last error"), "{body}");
    // The menu counts connections that need someone to act.
    assert!(
        body.contains(
            "Connections <span class=\"count\">1<span class=\"visually-hidden\"> need reconnecting"
        ),
        "{body}"
    );
    let now = stored::get(&app.state.db, c.id).await.unwrap();
    assert_eq!(now.status(), Status::NeedsReconnect);
    assert!(
        incidents::open_for(&app.state.db, c.id)
            .await
            .unwrap()
            .is_some()
    );

    // The detail page: incidents and the audit log, newest first.
    let page = browser.get(&format!("/connections/{}", c.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("Incidents") && body.contains("Audit log"));
    assert!(
        body.contains("<strong>open</strong>"),
        "the incident is open"
    );
    assert!(body.contains("Active → Needs reconnecting"), "{body}");
    assert!(
        body.contains("Meta error 190 / 460"),
        "Meta's code and subcode, for support: {body}"
    );
    assert!(
        !body.contains("[reconnect needed") && !body.contains("(#190/460)"),
        "no internal notation: {body}"
    );
    assert!(body.contains("Login renewed") && body.contains("Connected"));
    // Meta changed the password's consequences, not the person who pressed the button: the
    // status change is Meta's, the check was theirs.
    let summary = &body[..body.find("<h2>Incidents</h2>").unwrap()];
    assert_eq!(
        summary
            .matches("the password was changed on Instagram")
            .count(),
        1,
        "the reason once at the top: {summary}"
    );
    let row_of = |marker: &str| {
        let at = body.find(marker).unwrap();
        let end = at + body[at..].find("</tr>").unwrap();
        body[at..end].to_owned()
    };
    let change_row = row_of("Active → Needs reconnecting");
    assert!(
        change_row.contains("<td data-label=\"By\">Meta</td>"),
        "{change_row}"
    );
    assert!(
        change_row.contains("For support") && change_row.contains("Meta error 190 / 460: "),
        "Meta's message goes with its code: {change_row}"
    );
    assert!(
        row_of("<td data-label=\"Event\">Check requested</td>")
            .contains("<td data-label=\"By\">You</td>"),
        "the check was the user's"
    );
    let status_change = body.find("Active → Needs reconnecting").unwrap();
    let renewal = body.find("Login renewed").unwrap();
    let connected = body
        .rfind("<td data-label=\"Event\">Connected</td>")
        .unwrap();
    assert!(
        status_change < renewal && renewal < connected,
        "newest first"
    );
    assert_eq!(
        audit::list(&app.state.db, c.id, 1000).await.unwrap().len(),
        body.matches("<td data-label=\"By\">").count()
    );
}

#[tokio::test]
async fn refresh_now_during_an_outage_or_a_throttle_says_so_and_does_not_hammer_meta() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let c = connect_instagram(&app, owner, "bakery").await;
    let refresh = || async {
        let r = browser
            .post(
                &format!("/connections/{}/refresh", c.id),
                &[("csrf", &browser.csrf)],
            )
            .await;
        assert_redirect(&r, "/connections");
        browser.get("/connections").await.body
    };

    app.sim
        .set_outage(meta_sim::Outage {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    let body = refresh().await;
    // Meta answered, with an error: the words say so (not "did not answer").
    assert!(
        body.contains(
            "@bakery is having trouble: Meta answered with an error; retrying automatically"
        ),
        "{body}"
    );
    assert!(body.contains("notice-warn"), "{body}");
    assert!(
        body.contains("(Meta answered with an error)"),
        "a failed check still shows when it happened: {body}"
    );
    assert!(body.contains("Having trouble: Meta answered with an error; retrying automatically"));
    assert!(body.contains("Last error"));
    // No answer from Meta at all (a proxy's error page instead).
    app.sim
        .set_outage(meta_sim::Outage {
            html_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    app.advance(120);
    let body = refresh().await;
    assert!(
        body.contains("@bakery is having trouble: Meta did not answer; retrying automatically"),
        "{body}"
    );
    app.sim.clear_outage();
    app.advance(120);
    assert!(refresh().await.contains("@bakery is active"));

    // Throttled: one call learns it; the next press waits instead of asking again.
    app.sim
        .throttle(meta_sim::Throttle {
            scope: meta_sim::ThrottleScope::User,
            account: Some("bakery".into()),
            secs: 3600,
        })
        .unwrap();
    app.advance(120);
    refresh().await;
    let throttled = stored::get(&app.state.db, c.id).await.unwrap();
    assert_eq!(throttled.status(), Status::Degraded);
    assert!(throttled.backoff_until.unwrap() > app.state.clock.now() + 120);
    app.advance(120);
    let body = refresh().await;
    assert!(
        body.contains("asked feedkeeper to slow down for @bakery"),
        "{body}"
    );
    assert_eq!(
        stored::get(&app.state.db, c.id)
            .await
            .unwrap()
            .consecutive_failures,
        throttled.consecutive_failures,
        "no second call"
    );
}

#[tokio::test]
async fn a_reconnect_link_is_shown_once_and_works_once() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let c = connect_instagram(&app, owner, "bakery").await;
    app.sim
        .apply_event("bakery", AccountEvent::PasswordChanged)
        .await
        .unwrap();

    let page = browser
        .post(
            &format!("/connections/{}/reconnect-link", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    let created_path = page.location().unwrap_or_default().to_owned();
    let page = shown(&browser, page).await;
    // A reload shows the page again, without the secret and without making another link.
    let reloaded = browser.get(&created_path).await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert!(
        reloaded.body.contains("was shown once"),
        "{}",
        reloaded.body
    );
    assert!(!reloaded.body.contains("/l/"), "{}", reloaded.body);
    assert!(
        page.body.contains("data-copy=\"link-url\""),
        "a copy button"
    );
    assert!(
        page.body.contains("Reconnect link for @bakery"),
        "{}",
        page.body
    );
    assert!(page.body.contains("shown only once"));
    let url = link_url(&page);
    let public = app.state.config.public_url();
    assert!(url.starts_with(&format!("{public}/l/")), "{url}");
    let token = url.rsplit('/').next().unwrap().to_owned();
    let stored_link = &links::list_owned(&app.state.db, owner).await.unwrap()[0];
    assert_eq!(stored_link.connection_id, Some(c.id));
    assert!(stored_link.single_use);
    assert_eq!(stored_link.label, "Reconnect @bakery");
    assert_eq!(
        stored_link.expires_at,
        app.state.clock.now() + 7 * DAY,
        "a week"
    );
    assert_ne!(stored_link.token_hash, token, "only the hash is stored");
    assert!(!page.body.contains(&stored_link.token_hash));

    // The account holder opens it in their own browser and logs in.
    let client = app.browser();
    let landing = client.get(&local(&url)).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert!(landing.body.contains("Reconnect @bakery"));
    let start = client
        .submit(&landing.form(&format!("/l/{token}/instagram")))
        .await;
    let done = login_through(
        &client,
        start,
        &[("username", "bakery"), ("password", "sim-password")],
    )
    .await;
    let done = crate::connect_flows::follow_done(&client, done).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        stored::get(&app.state.db, c.id).await.unwrap().status(),
        Status::Active
    );

    // Used: the landing refuses, and the list says when it was used.
    let again = app.browser().get(&local(&url)).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("already been used"));
    let list = browser.get("/links").await;
    assert!(list.body.contains("Reconnect @bakery"), "{}", list.body);
    assert!(list.body.contains("Used on"));
    assert!(
        !list.body.contains("/revoke\""),
        "a spent link has nothing to revoke"
    );
}

#[tokio::test]
async fn client_links_are_validated_created_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;

    let page = browser.get("/links").await;
    assert_eq!(page.status, StatusCode::OK);
    let form = page.form("/links");
    let field = |name: &str| {
        form.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("expires_days").as_deref(), Some("7"));
    assert_eq!(
        field("single_use").as_deref(),
        Some("on"),
        "single use is ticked"
    );
    assert!(page.body.contains("No links yet"));

    // Refused forms come back with the reason and the input kept.
    let body = refused(&browser, "  ", "client@bakery.example", "7").await;
    assert!(body.contains("Give the link a label"));
    assert!(body.contains("value=\"client@bakery.example\""), "{body}");
    assert!(
        refused(&browser, &"x".repeat(101), "", "7")
            .await
            .contains("too long")
    );
    let body = refused(&browser, "Bakery site", "not-an-email", "7").await;
    assert!(body.contains("does not look right") && body.contains("value=\"Bakery site\""));
    for days in ["0", "31", "soon"] {
        let body = refused(&browser, "Bakery site", "", days).await;
        assert!(body.contains("from 1 to 30"), "{days}: {body}");
        assert!(body.contains(&format!("value=\"{days}\"")));
    }
    assert!(
        links::list_owned(&app.state.db, owner)
            .await
            .unwrap()
            .is_empty()
    );

    // A good one: shown once, then listed.
    let url = create_link(
        &browser,
        "Bakery & Co website",
        " Client@Bakery.example ",
        true,
    )
    .await;
    let landing = app.browser().get(&local(&url)).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(landing.body.contains(&escaped("Bakery & Co website")));
    let multi = create_link(&browser, "Harbor", "", false).await;
    assert_ne!(url, multi);

    let list = browser.get("/links").await;
    let body = &list.body;
    assert!(body.contains(&escaped("Bakery & Co website")));
    assert!(body.contains("client@bakery.example"));
    assert!(body.contains("Harbor"));
    assert_eq!(body.matches(">Active<").count(), 2, "{body}");
    assert_eq!(body.matches("(single use)").count(), 1);
    let stored_links = links::list_owned(&app.state.db, owner).await.unwrap();
    let bakery = stored_links.iter().find(|l| l.label != "Harbor").unwrap();
    assert_eq!(
        bakery.client_email.as_deref(),
        Some("client@bakery.example")
    );
    assert_eq!(bakery.expires_at, app.state.clock.now() + 7 * DAY);
    let revoke = list.form(&format!("/links/{}/revoke", bakery.id));

    // Revoked: it stops working, and says so to the client.
    let r = browser.submit(&revoke).await;
    assert_redirect(&r, "/links");
    let list = browser.get("/links").await;
    assert!(list.body.contains("Revoked the link"), "{}", list.body);
    assert!(list.body.contains("Revoked on"));
    assert!(
        !list
            .body
            .contains(&format!("/links/{}/revoke\"", bakery.id))
    );
    let withdrawn = app.browser().get(&local(&url)).await;
    assert_eq!(withdrawn.status, StatusCode::GONE);
    assert!(withdrawn.body.contains("withdrawn"));
    assert_eq!(
        app.browser().get(&local(&multi)).await.status,
        StatusCode::OK
    );

    // Expired links say so.
    app.advance(8 * DAY);
    let list = browser.get("/links").await;
    assert!(list.body.contains("Expired on"), "{}", list.body);
    assert!(!list.body.contains("/revoke\""));
}

#[tokio::test]
async fn disconnect_asks_first_then_deletes_the_connection() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let c = connect_instagram(&app, owner, "bakery").await;
    let keep = connect_instagram(&app, owner, "harbor").await;

    let confirm = browser
        .get(&format!("/connections/{}/disconnect", c.id))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Disconnect @bakery?"));
    let form = confirm.form(&format!("/connections/{}/disconnect", c.id));
    assert!(stored::get(&app.state.db, c.id).await.is_ok(), "only asked");

    let r = browser.submit(&form).await;
    assert_redirect(&r, "/connections");
    let list = browser.get("/connections").await;
    assert!(
        list.body
            .contains("Disconnected @bakery and deleted its data.")
    );
    assert!(!list.body.contains("@bakery<"));
    assert!(list.body.contains("@harbor"));
    assert!(matches!(
        stored::get(&app.state.db, c.id).await,
        Err(DbError::NotFound)
    ));
    assert!(
        audit::list(&app.state.db, c.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(stored::get(&app.state.db, keep.id).await.is_ok());
    for path in [
        format!("/connections/{}", c.id),
        format!("/connections/{}/disconnect", c.id),
    ] {
        assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND);
    }
    let again = browser
        .post(
            &format!("/connections/{}/disconnect", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_connections_and_links_answer_404_everywhere() {
    let app = TestApp::spawn().await;
    let alice = app.signup_and_login("alice@example.com").await;
    let alice_id = user_id(&app, "alice@example.com").await;
    let c = connect_instagram(&app, alice_id, "alices_shop").await;
    create_link(&alice, "Alice secret client", "client@alice.example", true).await;
    let link = links::list_owned(&app.state.db, alice_id).await.unwrap()[0].clone();
    let bob = app.signup_and_login("bob@example.com").await;
    let bob_id = user_id(&app, "bob@example.com").await;
    let audit_before = audit::list(&app.state.db, c.id, 1000).await.unwrap();

    // A missing id is the reference answer; another user's id must be indistinguishable.
    let missing = bob.get("/connections/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for id in [c.id.to_string(), "999999".into(), "abc".into(), "-1".into()] {
        for path in [
            format!("/connections/{id}"),
            format!("/connections/{id}/disconnect"),
        ] {
            let r = bob.get(&path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "GET {path}");
            assert_eq!(r.body, missing.body, "GET {path}");
        }
    }
    for id in [c.id.to_string(), "999999".into()] {
        for path in [
            format!("/connections/{id}/refresh"),
            format!("/connections/{id}/reconnect-link"),
            format!("/connections/{id}/disconnect"),
            format!("/connections/{id}/reconnect"),
        ] {
            let r = bob.post(&path, &[("csrf", &bob.csrf)]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "POST {path}");
            assert_eq!(r.body, missing.body, "POST {path}");
        }
    }
    for id in [link.id.to_string(), "999999".into(), "abc".into()] {
        let r = bob
            .post(&format!("/links/{id}/revoke"), &[("csrf", &bob.csrf)])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "revoke {id}");
        assert_eq!(r.body, missing.body);
    }

    // Nothing of Alice's changed, and nothing of hers shows in Bob's pages.
    let still = stored::get(&app.state.db, c.id).await.unwrap();
    assert_eq!(still.status(), Status::Active);
    assert_eq!(
        audit::list(&app.state.db, c.id, 1000).await.unwrap(),
        audit_before
    );
    let link_now = links::list_owned(&app.state.db, alice_id).await.unwrap();
    assert_eq!(link_now.len(), 1, "no reconnect link was made for Bob");
    assert!(link_now[0].revoked_at.is_none());
    assert!(
        links::list_owned(&app.state.db, bob_id)
            .await
            .unwrap()
            .is_empty()
    );
    for path in ["/connections", "/links"] {
        let page = bob.get(path).await;
        assert_eq!(page.status, StatusCode::OK);
        for secret in ["alices_shop", "Alice secret client", "client@alice.example"] {
            assert!(!page.body.contains(secret), "{path} shows {secret}");
        }
    }
    // Alice still sees her own.
    assert_eq!(
        alice.get(&format!("/connections/{}", c.id)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let c = connect_instagram(&app, owner, "bakery").await;
    create_link(&browser, "Bakery", "", true).await;
    let link = links::list_owned(&app.state.db, owner).await.unwrap()[0].clone();
    let other = app.signup_and_login("other@example.com").await;
    let audit_before = audit::list(&app.state.db, c.id, 1000).await.unwrap();

    let posts = [
        (format!("/connections/{}/refresh", c.id), vec![]),
        (format!("/connections/{}/reconnect-link", c.id), vec![]),
        (format!("/connections/{}/disconnect", c.id), vec![]),
        (format!("/links/{}/revoke", link.id), vec![]),
        (format!("/connections/{}/reconnect", c.id), vec![]),
        ("/connections/connect/instagram".to_owned(), vec![]),
        (
            "/links".to_owned(),
            vec![("label", "New"), ("expires_days", "7")],
        ),
    ];
    for (path, extra) in &posts {
        for csrf in [None, Some("wrong"), Some(other.csrf.as_str())] {
            let mut fields = extra.clone();
            if let Some(token) = csrf {
                fields.push(("csrf", token));
            }
            let r = browser.post(path, &fields).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {path} with {csrf:?}");
        }
    }
    assert_eq!(
        audit::list(&app.state.db, c.id, 1000).await.unwrap(),
        audit_before
    );
    let all = links::list_owned(&app.state.db, owner).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].revoked_at.is_none());
}

#[tokio::test]
async fn html_in_usernames_names_and_labels_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("owner@example.com").await;
    let owner = user_id(&app, "owner@example.com").await;
    let now = app.state.clock.now();
    // What Meta returns is not ours: a hostile username, name and Page name.
    let c = connections::connect(
        &app.state,
        &LoginResult {
            owner_id: owner,
            ig_user_id: "17841400000099999".into(),
            app_scoped_id: None,
            fb_user_id: None,
            username: "<script>alert(1)</script>".into(),
            display_name: Some("<img src=x onerror=alert(2)>".into()),
            account_type: Some("BUSINESS".into()),
            profile_picture_url: Some("javascript:alert(3)".into()),
            login_kind: LoginKind::Facebook,
            fb_page_id: Some("1".into()),
            fb_page_name: Some("<b>Page</b>".into()),
            token_issued_at: now,
            token_expires_at: None,
            data_access_expires_at: None,
            client: None,
        },
        &AccessToken::new("not-a-real-token"),
        Actor::User,
    )
    .await
    .unwrap();
    let check = |body: &str| {
        for raw in [
            "<script>alert(1)",
            "<img src=x",
            "<b>Page</b>",
            "javascript:",
        ] {
            assert!(!body.contains(raw), "{raw} came through: {body}");
        }
    };
    let list = browser.get("/connections").await;
    check(&list.body);
    assert!(
        list.body
            .contains(&format!("@{}", escaped("<script>alert(1)</script>"))),
        "{}",
        list.body
    );
    for path in [
        format!("/connections/{}", c.id),
        format!("/connections/{}/disconnect", c.id),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        check(&page.body);
    }
    // Meta refuses the made-up token: the flash and the error message are text too.
    let r = browser
        .post(
            &format!("/connections/{}/refresh", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_redirect(&r, "/connections");
    let after = browser.get("/connections").await;
    check(&after.body);
    assert!(after.body.contains(&format!(
        "@{} needs reconnecting",
        escaped("<script>alert(1)</script>")
    )));
    let created = browser
        .post(
            &format!("/connections/{}/reconnect-link", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    check(&created.body);

    let label = "<script>alert(4)</script>";
    let page = browser
        .post(
            "/links",
            &[
                ("csrf", &browser.csrf),
                ("label", label),
                ("expires_days", "7"),
            ],
        )
        .await;
    let page = shown(&browser, page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(label));
    let list = browser.get("/links").await;
    assert!(!list.body.contains(label) && list.body.contains(&escaped(label)));
    check(&list.body);
    // Refused input is echoed back escaped as well.
    let refused = browser
        .post(
            "/links",
            &[
                ("csrf", &browser.csrf),
                ("label", "\"><script>alert(5)</script>"),
                ("expires_days", "99"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!refused.body.contains("<script>alert(5)"));
}

#[tokio::test]
async fn operators_see_app_problems_and_the_job_queue() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("ops@example.com").await;
    let owner = user_id(&app, "ops@example.com").await;
    connect_instagram(&app, owner, "bakery").await;
    let page = browser.get("/system").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No problems"), "{}", page.body);
    assert!(
        page.body.contains("a stand-in at"),
        "which Meta: {}",
        page.body
    );
    assert!(page.body.contains("lifecycle"), "{}", page.body);
    assert!(page.body.contains(&app.state.node.to_string()));

    // The workers found that Meta rejects the Facebook app's secret.
    let now = app.state.clock.now();
    feedkeeper::db::operator_problems::record(
        &app.state.db,
        "facebook",
        feedkeeper::meta::OperatorProblem::AppCredentials,
        "Invalid OAuth access token signature.",
        Some(190),
        now,
    )
    .await
    .unwrap();
    let list = browser.get("/connections").await;
    assert!(
        list.body.contains("Facebook app:")
            && list.body.contains("rejects the app id or app secret"),
        "{}",
        list.body
    );
    let page = browser.get("/system").await;
    assert!(page.body.contains("Invalid OAuth access token signature."));
    // Only logged-in people see it, and of them only operators (the first account is one):
    // another tenant sees no such page, and only that checks are held up, not why.
    let anonymous = app.browser().get("/system").await;
    assert_ne!(anonymous.status, StatusCode::OK);
    let tenant = app.signup_and_login("tenant@example.com").await;
    let refused = tenant.get("/system").await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(
        !refused
            .body
            .contains("Invalid OAuth access token signature.")
    );
    let list = tenant.get("/connections").await;
    assert!(
        !list.body.contains("Invalid OAuth") && !list.body.contains("/system"),
        "{}",
        list.body
    );
    assert!(
        list.body
            .contains("configuration problem that its operator has to fix")
    );
}

#[tokio::test]
async fn the_start_page_sends_people_who_are_logged_in_to_their_dashboard() {
    let app = TestApp::spawn().await;
    let anonymous = app.browser().get("/").await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert!(anonymous.body.contains("Sign up") && !anonymous.body.contains("Database"));
    let browser = app.signup_and_login("home@example.com").await;
    let home = browser.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), Some("/connections"));
}

#[tokio::test]
async fn unknown_addresses_and_ids_get_the_same_styled_page_with_a_way_back() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("lost@example.com").await;
    let owner = user_id(&app, "lost@example.com").await;
    let mine = connect_instagram(&app, owner, "mine").await;
    let other = app.signup_and_login("other@example.com").await;
    let pages = [
        browser.get("/no/such/page").await,
        browser.get("/connections/99999").await,
        other.get(&format!("/connections/{}", mine.id)).await,
        app.browser().get("/nothing-here").await,
    ];
    for page in &pages {
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.body.contains("Page not found"), "{}", page.body);
        assert!(
            page.body.contains("href=\"/\""),
            "a way back: {}",
            page.body
        );
        assert!(page.body.contains("app.css"), "styled: {}", page.body);
    }
    // Another person's connection answers exactly like a missing one.
    assert_eq!(
        pages[1].body,
        pages[2]
            .body
            .replace("other@example.com", "lost@example.com")
    );
}

#[tokio::test]
async fn the_detail_page_speaks_plain_words_not_api_values() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("words@example.com").await;
    let owner = user_id(&app, "words@example.com").await;
    let c = connect_instagram(&app, owner, "wordy").await;
    // An operator checked it from the command line.
    app.advance(120);
    feedkeeper::connections::check_now(&app.state, c.id, Actor::Operator, "cli")
        .await
        .unwrap();
    let page = browser.get(&format!("/connections/{}", c.id)).await;
    assert!(page.body.contains("Business account"), "{}", page.body);
    assert!(!page.body.contains("BUSINESS"), "{}", page.body);
    assert!(
        page.body.contains("An operator (command line)"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn connections_that_need_action_come_first() {
    let app = TestApp::spawn().await;
    let browser = app.signup_and_login("order@example.com").await;
    let owner = user_id(&app, "order@example.com").await;
    connect_instagram(&app, owner, "aaa_fine").await;
    let broken = connect_instagram(&app, owner, "zzz_broken").await;
    app.sim
        .apply_event("zzz_broken", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    app.advance(120);
    connections::check_now(&app.state, broken.id, Actor::User, "web")
        .await
        .unwrap();
    let body = browser.get("/connections").await.body;
    let (broken_at, fine_at) = (
        body.find("@zzz_broken").unwrap(),
        body.find("@aaa_fine").unwrap(),
    );
    assert!(
        broken_at < fine_at,
        "the one needing a reconnect is listed first"
    );
}

/// The smallest valid PNG header we accept (the bytes are only sniffed, never decoded).
const PNG_LOGO: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-logo-bytes";

#[tokio::test]
async fn clients_see_the_organisation_name_and_logo_instead_of_the_login_email() {
    let app = TestApp::spawn().await;
    let agency = app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;

    // Both problems at once, and nothing stored.
    let bad = agency
        .post_multipart(
            "/account/organisation",
            &[
                ("csrf", &agency.csrf),
                ("organisation_name", &"x".repeat(81)),
            ],
            &[("logo", "logo.svg", b"<svg onload=alert(1)></svg>")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.contains("at most 80 characters") && bad.body.contains("PNG, JPEG, GIF or WebP")
    );
    let org = feedkeeper::db::organisations::get(&app.state.db, owner)
        .await
        .unwrap();
    assert_eq!((org.name, org.logo_version), (None, None));
    // Without the CSRF token: refused.
    let forged = agency
        .post_multipart(
            "/account/organisation",
            &[("organisation_name", "Evil")],
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Not a form at all: a clear 400.
    let garbled = agency
        .post("/account/organisation", &[("csrf", &agency.csrf)])
        .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST, "{}", garbled.body);

    let saved = agency
        .post_multipart(
            "/account/organisation",
            &[
                ("csrf", &agency.csrf),
                ("organisation_name", "  Studio <North> "),
            ],
            &[("logo", "logo.png", PNG_LOGO)],
        )
        .await;
    assert_redirect(&saved, "/account");
    let account = agency.get("/account").await;
    assert!(
        account.body.contains("value=\"Studio &#60;North&#62;\""),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("src=\"/account/logo?v=1\""),
        "{}",
        account.body
    );
    let logo = agency.get("/account/logo?v=1").await;
    assert_eq!(logo.status, StatusCode::OK);
    assert_eq!(logo.headers["content-type"], "image/png");
    assert_eq!(
        logo.headers["content-length"],
        PNG_LOGO.len().to_string().as_str()
    );
    // Another user has no logo, and cannot see this one.
    let other = app.signup_and_login("other@example.com").await;
    assert_eq!(
        other.get("/account/logo").await.status,
        StatusCode::NOT_FOUND
    );

    // The client's page names the organisation, shows its logo, and not the login email.
    let link = create_link(&agency, "Bakery website", "", true).await;
    let token = link.rsplit('/').next().unwrap().to_owned();
    let landing = app.browser().get(&format!("/l/{token}")).await;
    assert!(
        landing.body.contains("Studio &#60;North&#62;"),
        "{}",
        landing.body
    );
    assert!(
        !landing.body.contains("agency@example.com"),
        "{}",
        landing.body
    );
    assert!(
        landing
            .body
            .contains(&format!("src=\"/l/{token}/logo?v=1\""))
    );
    let through_link = app.browser().get(&format!("/l/{token}/logo?v=1")).await;
    assert_eq!(through_link.status, StatusCode::OK);
    assert_eq!(through_link.headers["content-type"], "image/png");
    assert_eq!(
        app.browser().get("/l/not-a-link/logo").await.status,
        StatusCode::NOT_FOUND
    );

    // A new logo gets a new address; removing it (and clearing the name) brings the email back.
    agency
        .post_multipart(
            "/account/organisation",
            &[
                ("csrf", &agency.csrf),
                ("organisation_name", "Studio North"),
            ],
            &[("logo", "logo.gif", b"GIF89a-new")],
        )
        .await;
    assert!(
        agency
            .get("/account")
            .await
            .body
            .contains("/account/logo?v=2")
    );
    let cleared = agency
        .post_multipart(
            "/account/organisation",
            &[
                ("csrf", &agency.csrf),
                ("organisation_name", ""),
                ("remove_logo", "1"),
            ],
            &[],
        )
        .await;
    assert_redirect(&cleared, "/account");
    let landing = app.browser().get(&format!("/l/{token}")).await;
    assert!(landing.body.contains("agency@example.com") && !landing.body.contains("/logo?v="));
}
