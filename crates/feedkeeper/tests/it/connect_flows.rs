//! Connecting accounts end to end, as people do it: the owner's buttons, Meta's login pages (the
//! simulator's), the redirect back; client links opened in a second browser; Facebook Page
//! choice; and every way a login can go wrong.

use axum::http::StatusCode;
use feedkeeper::accounts::csrf::random_token;
use feedkeeper::accounts::session::hash_token;
use feedkeeper::db::connections::{self as stored, Connection, LoginKind, Status};
use feedkeeper::db::{incidents, links, users};
use feedkeeper::ids::{ConnectionId, UserId};
use meta_sim::{AccountEvent, AccountKind};
use url::Url;

use crate::helpers::{Reply, Session, TestApp};
use crate::sim_login;

/// The path and query of a URL on our server (a browser never sends Meta's `#_` fragment).
fn local(url: &str) -> String {
    let url = Url::parse(url).expect("an absolute URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Presses a login button in `browser` (a POST answered with a redirect to Meta's dialog) and
/// logs in on Meta's page; returns where Meta sends the browser back.
async fn login_at_meta(start: Reply, credentials: &[(&str, &str)], allow: bool) -> String {
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let dialog = Url::parse(start.location().unwrap()).unwrap();
    sim_login::through_dialog(dialog, credentials, allow).await
}

fn ig(username: &str) -> [(&str, &str); 2] {
    [("username", username), ("password", "sim-password")]
}

async fn user_id(app: &TestApp, email: &str) -> UserId {
    users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn owned(app: &TestApp, owner: UserId) -> Vec<Connection> {
    stored::list_owned(&app.state.db, owner).await.unwrap()
}

/// The owner connects `username` with Instagram Login from `browser`.
async fn owner_connects(browser: &Session, username: &str) -> Reply {
    let start = browser
        .post("/connections/connect/instagram", &[("csrf", &browser.csrf)])
        .await;
    let back = login_at_meta(start, &ig(username), true).await;
    browser.get(&local(&back)).await
}

/// A link as the dashboard makes it; returns its secret.
async fn make_link(
    app: &TestApp,
    owner: UserId,
    connection: Option<ConnectionId>,
    single_use: bool,
) -> String {
    let token = random_token();
    let now = app.state.clock.now();
    links::create(
        &app.state.db,
        &links::NewLink {
            token_hash: &hash_token(&token),
            owner_id: owner,
            label: "Website of Bakery & Co",
            client_email: Some("client@bakery.example"),
            connection_id: connection,
            single_use,
            expires_at: now + 7 * 86_400,
        },
        now,
    )
    .await
    .unwrap();
    token
}

/// A client (no feedkeeper account, own browser) uses the link with Instagram Login, and
/// follows the callback's redirect to the done page when there is one.
async fn client_uses_link(client: &Session, token: &str, username: &str) -> Reply {
    let answer = client_link_callback(client, token, username).await;
    follow_done(client, answer).await
}

/// Follows a client link's callback answer to its done page, when it is a redirect there.
pub async fn follow_done(client: &Session, answer: Reply) -> Reply {
    match answer.location() {
        Some(done) if done.starts_with("/connect/done?") => client.get(done).await,
        _ => answer,
    }
}

/// [`client_uses_link`] up to the callback's own answer.
async fn client_link_callback(client: &Session, token: &str, username: &str) -> Reply {
    let landing = client.get(&format!("/l/{token}")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    let form = landing.form(&format!("/l/{token}/instagram"));
    let back = login_at_meta(client.submit(&form).await, &ig(username), true).await;
    client.get(&local(&back)).await
}

#[tokio::test]
async fn the_owner_connects_an_instagram_account() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    let browser = app.signup_and_login("owner@example.com").await;
    let done = owner_connects(&browser, "bakery").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), Some("/connections"));
    let owner = user_id(&app, "owner@example.com").await;
    let all = owned(&app, owner).await;
    assert_eq!(all.len(), 1);
    let c = &all[0];
    assert_eq!(
        (c.username.as_str(), c.status(), c.login_kind()),
        ("bakery", Status::Active, LoginKind::Instagram)
    );
    assert!(c.token_expires_at.unwrap() > app.state.clock.now() + 59 * 86_400);
    assert!(c.ig_user_id.starts_with("17841"));
}

#[tokio::test]
async fn reconnecting_renews_the_same_connection_and_resolves_the_incident() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    app.instagram_account("someone_else", AccountKind::Business, false);
    let browser = app.signup_and_login("owner@example.com").await;
    owner_connects(&browser, "bakery").await;
    let owner = user_id(&app, "owner@example.com").await;
    let c = owned(&app, owner).await.remove(0);

    app.sim
        .apply_event("bakery", AccountEvent::PasswordChanged)
        .await
        .unwrap();
    app.advance(2 * 3600);
    feedkeeper::jobs::run_due_now(&app.state, "n")
        .await
        .unwrap();
    assert_eq!(
        stored::get(&app.state.db, c.id)
            .await
            .unwrap()
            .reason
            .as_deref(),
        Some("password_changed")
    );
    assert!(
        incidents::open_for(&app.state.db, c.id)
            .await
            .unwrap()
            .is_some()
    );

    // Logging in as the wrong account changes nothing and says why.
    let start = browser
        .post(
            &format!("/connections/{}/reconnect", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    let back = login_at_meta(start, &ig("someone_else"), true).await;
    let wrong = browser.get(&local(&back)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("@someone_else") && wrong.body.contains("@bakery"),
        "{}",
        wrong.body
    );
    // From the dashboard's button, no link was used: the words do not speak of one.
    assert!(!wrong.body.contains("this link"), "{}", wrong.body);
    assert_eq!(owned(&app, owner).await.len(), 1);

    let start = browser
        .post(
            &format!("/connections/{}/reconnect", c.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    let back = login_at_meta(start, &ig("bakery"), true).await;
    assert_eq!(
        browser.get(&local(&back)).await.status,
        StatusCode::SEE_OTHER
    );
    let renewed = stored::get(&app.state.db, c.id).await.unwrap();
    assert_eq!(renewed.status(), Status::Active);
    assert!(
        incidents::open_for(&app.state.db, c.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        owned(&app, owner).await.len(),
        1,
        "the same connection, not a second one"
    );
}

#[tokio::test]
async fn a_cancelled_login_and_a_personal_account_connect_nothing_and_say_why() {
    let app = TestApp::spawn().await;
    app.instagram_account("shy", AccountKind::Business, false);
    app.instagram_account("just_me", AccountKind::Personal, false);
    let browser = app.signup_and_login("owner@example.com").await;
    let start = browser
        .post("/connections/connect/instagram", &[("csrf", &browser.csrf)])
        .await;
    let back = login_at_meta(start, &ig("shy"), false).await;
    let cancelled = browser.get(&local(&back)).await;
    assert_eq!(cancelled.status, StatusCode::BAD_REQUEST);
    assert!(
        cancelled.body.contains("You cancelled the Instagram login"),
        "{}",
        cancelled.body
    );

    let personal = owner_connects(&browser, "just_me").await;
    assert_eq!(personal.status, StatusCode::BAD_REQUEST);
    assert!(
        personal.body.contains("personal Instagram account")
            && personal.body.contains("Creator or Business"),
        "{}",
        personal.body
    );
    assert!(
        owned(&app, user_id(&app, "owner@example.com").await)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_login_state_is_single_use_bound_to_the_browser_and_expires() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    let owner_browser = app.signup_and_login("owner@example.com").await;
    let intruder = app.signup_and_login("intruder@example.com").await;

    // Completed in another session: refused, nothing connected for anyone.
    let start = owner_browser
        .post(
            "/connections/connect/instagram",
            &[("csrf", &owner_browser.csrf)],
        )
        .await;
    let back = login_at_meta(start, &ig("bakery"), true).await;
    let stolen = intruder.get(&local(&back)).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN, "{}", stolen.body);
    assert!(stolen.body.contains("another browser"));
    let anonymous = app.browser().get(&local(&back)).await;
    assert!(anonymous.status.is_client_error());
    // Refused attempts do not spend the state: the owner still completes it, once.
    assert_eq!(
        owner_browser.get(&local(&back)).await.status,
        StatusCode::SEE_OTHER
    );
    let again = owner_browser.get(&local(&back)).await;
    assert!(again.body.contains("already completed"));

    // Too slow.
    let start = owner_browser
        .post(
            "/connections/connect/instagram",
            &[("csrf", &owner_browser.csrf)],
        )
        .await;
    let back = login_at_meta(start, &ig("bakery"), true).await;
    app.advance(16 * 60);
    let late = owner_browser.get(&local(&back)).await;
    assert!(late.body.contains("took too long"), "{}", late.body);

    // Made up.
    let forged = owner_browser
        .get("/connect/instagram/callback?code=abc&state=forged")
        .await;
    assert!(forged.body.contains("not started here"));
    let bare = owner_browser.get("/connect/instagram/callback").await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        owner_browser
            .get("/connect/myspace/callback?state=x")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Starting a login needs the session's CSRF token.
    let no_csrf = owner_browser
        .post("/connections/connect/instagram", &[])
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);

    assert_eq!(
        owned(&app, user_id(&app, "intruder@example.com").await)
            .await
            .len(),
        0
    );
    assert_eq!(
        owned(&app, user_id(&app, "owner@example.com").await)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_client_link_used_from_a_second_browser_lands_in_the_owners_dashboard() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    let agency = app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;

    let client = app.browser();
    let landing = client.get(&format!("/l/{token}")).await;
    assert!(
        landing.body.contains("agency@example.com")
            && landing.body.contains("Website of Bakery &#38; Co"),
        "{}",
        landing.body
    );
    assert!(
        landing.body.contains("password"),
        "the page says the password stays theirs"
    );
    // The callback sends the client to a page of its own: reloading it says the same, and
    // Meta's one-time code is not in its address.
    let answer = client_link_callback(&client, &token, "bakery").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let address = answer.location().unwrap().to_owned();
    assert!(
        address.starts_with("/connect/done?d=") && !address.contains("code="),
        "{address}"
    );
    for _ in 0..2 {
        let done = client.get(&address).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert!(done.body.contains("@bakery") && done.body.contains("agency@example.com"));
    }
    // Only the browser that connected sees it.
    assert_eq!(
        app.browser().get(&address).await.status,
        StatusCode::NOT_FOUND
    );
    // Nobody can make it say something else.
    let (payload, _) = address.rsplit_once('.').unwrap();
    let forged = format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(client.get(&forged).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        client.get("/connect/done?d=x").await.status,
        StatusCode::NOT_FOUND
    );
    // The agency cannot log in as the client: for this account the link comes first.
    let list = agency.get("/connections").await.body;
    let link_button = list
        .find("Copy a reconnect link for the client")
        .expect("the link button");
    let reconnect_button = list
        .find("Reconnect (with its login)")
        .expect("the other way");
    assert!(link_button < reconnect_button, "{list}");
    // It lasts a day.
    app.advance(86_401);
    assert_eq!(client.get(&address).await.status, StatusCode::NOT_FOUND);
    let all = owned(&app, owner).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].username, "bakery");
    // The agency sees whom the connection is for: the link's label and the client's email.
    assert_eq!(
        (
            all[0].client_label.as_deref(),
            all[0].client_email.as_deref()
        ),
        (
            Some("Website of Bakery & Co"),
            Some("client@bakery.example")
        )
    );
    for page in [
        "/connections".to_owned(),
        format!("/connections/{}", all[0].id),
    ] {
        let body = agency.get(&page).await.body;
        assert!(
            body.contains("Website of Bakery &#38; Co") && body.contains("client@bakery.example"),
            "{page}: {body}"
        );
    }

    // Single use: the link is spent.
    let reused = app.browser().get(&format!("/l/{token}")).await;
    assert_eq!(reused.status, StatusCode::GONE);
    assert!(reused.body.contains("already been used"));
    // A made-up link.
    assert_eq!(
        app.browser().get("/l/not-a-real-link").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn expired_and_revoked_links_are_refused_with_a_clear_page() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let expiring = make_link(&app, owner, None, false).await;
    let revoked = make_link(&app, owner, None, false).await;
    let link = links::list_owned(&app.state.db, owner).await.unwrap();
    let revoked_id = link
        .iter()
        .find(|l| l.token_hash == hash_token(&revoked))
        .unwrap()
        .id;
    links::revoke_owned(&app.state.db, owner, revoked_id, app.state.clock.now())
        .await
        .unwrap();
    let page = app.browser().get(&format!("/l/{revoked}")).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("withdrawn"));

    // Opened in time, but the link expires before the login comes back.
    let client = app.browser();
    let landing = client.get(&format!("/l/{expiring}")).await;
    let form = landing.form(&format!("/l/{expiring}/instagram"));
    let back = login_at_meta(client.submit(&form).await, &ig("bakery"), true).await;
    app.advance(7 * 86_400);
    let late = client.get(&local(&back)).await;
    assert!(late.status.is_client_error());
    assert!(owned(&app, owner).await.is_empty());
    let page = app.browser().get(&format!("/l/{expiring}")).await;
    assert!(page.body.contains("expired"));

    // A link's button needs the cookie its page set.
    let client = app.browser();
    let landing = client.get(&format!("/l/{revoked}")).await;
    assert_eq!(landing.status, StatusCode::GONE);
}

#[tokio::test]
async fn a_reconnect_link_lets_the_account_holder_renew_the_same_connection() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    let browser = app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;
    client_uses_link(&app.browser(), &token, "bakery").await;
    let c = owned(&app, owner).await.remove(0);
    app.sim
        .apply_event("bakery", AccountEvent::AppRemoved)
        .await
        .unwrap();
    assert_eq!(
        stored::get(&app.state.db, c.id)
            .await
            .unwrap()
            .reason
            .as_deref(),
        Some("app_removed")
    );

    let reconnect = make_link(&app, owner, Some(c.id), true).await;
    let client = app.browser();
    let landing = client.get(&format!("/l/{reconnect}")).await;
    assert!(
        landing.body.contains("Reconnect @bakery"),
        "{}",
        landing.body
    );
    let done = client_uses_link(&client, &reconnect, "bakery").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let renewed = stored::get(&app.state.db, c.id).await.unwrap();
    assert_eq!(
        (renewed.status(), renewed.deauthorized_at),
        (Status::Active, None)
    );
    // Whom it was made for is kept through the reconnect.
    assert_eq!(
        renewed.client_label.as_deref(),
        Some("Website of Bakery & Co")
    );
    assert_eq!(owned(&app, owner).await.len(), 1);
    drop(browser);
}

/// Two Facebook Pages (@harbor_cafe, @harbor_bar) of one Facebook person, `harbor.owner`.
pub fn two_pages_of_one_person(app: &TestApp) {
    for (username, page) in [("harbor_cafe", "Harbor Cafe"), ("harbor_bar", "Harbor Bar")] {
        app.sim
            .create_account(meta_sim::NewAccount {
                username: username.into(),
                facebook_page: true,
                facebook_user: Some("harbor.owner".into()),
                page_name: Some(page.into()),
                posts: 1,
                ..Default::default()
            })
            .unwrap();
    }
}

/// The owner logs in with Facebook as `harbor.owner`; returns the Page picker's address.
async fn harbor_owner_to_the_page_picker(browser: &Session) -> String {
    let start = browser
        .post("/connections/connect/facebook", &[("csrf", &browser.csrf)])
        .await;
    let back = login_at_meta(
        start,
        &[("email", "harbor.owner"), ("pass", "sim-password")],
        true,
    )
    .await;
    browser
        .get(&local(&back))
        .await
        .location()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_facebook_business_connection_lets_the_owner_pick_pages() {
    let app = TestApp::spawn().await;
    two_pages_of_one_person(&app);
    let browser = app.signup_and_login("owner@example.com").await;
    let start = browser
        .post("/connections/connect/facebook", &[("csrf", &browser.csrf)])
        .await;
    let back = login_at_meta(
        start,
        &[("email", "harbor.owner"), ("pass", "sim-password")],
        true,
    )
    .await;
    let to_picker = browser.get(&local(&back)).await;
    assert_eq!(
        to_picker.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_picker.body
    );
    let picker_path = to_picker.location().unwrap().to_owned();
    let picker = browser.get(&picker_path).await;
    assert!(
        picker.body.contains("Harbor Cafe") && picker.body.contains("Harbor Bar"),
        "{}",
        picker.body
    );
    // Each Page says which Instagram account it would connect, and there is a way out.
    assert!(
        picker.body.contains("@harbor_cafe") && picker.body.contains("@harbor_bar"),
        "{}",
        picker.body
    );
    assert!(picker.body.contains("name=\"cancel\""), "{}", picker.body);
    assert!(!picker.body.contains("already connected"));

    // Another browser cannot use the choice.
    let other = app.signup_and_login("other@example.com").await;
    assert_eq!(other.get(&picker_path).await.status, StatusCode::FORBIDDEN);

    // Nothing ticked: a page with the menu and a way back to the choice, not a dead end.
    let mut empty = picker.form(&picker_path);
    empty.fields.retain(|(n, _)| n != "page_id");
    let nothing = browser.submit(&empty).await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);
    assert!(
        nothing.body.contains("Nothing was chosen"),
        "{}",
        nothing.body
    );
    assert!(
        nothing.body.contains("Log out"),
        "the menu: {}",
        nothing.body
    );
    assert!(
        nothing.body.contains(&format!("href=\"{picker_path}\""))
            && nothing.body.contains("Choose again"),
        "{}",
        nothing.body
    );

    let mut form = picker.form(&picker_path);
    let bar_id = app.sim.account("harbor_bar").unwrap().page_id.unwrap();
    assert_eq!(
        form.fields.iter().filter(|(n, _)| n == "page_id").count(),
        2
    );
    form.fields.retain(|(n, v)| n != "page_id" || *v == bar_id);
    let done = browser.submit(&form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let owner = user_id(&app, "owner@example.com").await;
    let all = owned(&app, owner).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].username, "harbor_bar");
    assert_eq!(all[0].login_kind(), LoginKind::Facebook);
    assert_eq!(all[0].fb_page_name.as_deref(), Some("Harbor Bar"));
    assert_eq!(all[0].token_expires_at, None, "Page tokens do not expire");
    // The choice is spent.
    assert_eq!(browser.submit(&form).await.status, StatusCode::GONE);

    // A second business login: the Page already connected is marked (and not ticked), and
    // Cancel connects nothing and throws the choice away.
    let picker_path = harbor_owner_to_the_page_picker(&browser).await;
    let picker = browser.get(&picker_path).await;
    assert_eq!(
        picker.body.matches("already connected").count(),
        1,
        "{}",
        picker.body
    );
    let mut cancel = picker.form(&picker_path);
    cancel.set("cancel", "1");
    let cancelled = browser.submit(&cancel).await;
    assert!(
        cancelled.body.contains("Nothing was connected"),
        "{}",
        cancelled.body
    );
    assert_eq!(owned(&app, owner).await.len(), 1);
    assert_eq!(browser.get(&picker_path).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn a_client_link_works_with_facebook_login_too() {
    let app = TestApp::spawn().await;
    app.instagram_account("harbor", AccountKind::Business, true);
    app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;
    let client = app.browser();
    let landing = client.get(&format!("/l/{token}")).await;
    let form = landing.form(&format!("/l/{token}/facebook"));
    let back = login_at_meta(
        client.submit(&form).await,
        &[("email", "harbor"), ("pass", "sim-password")],
        true,
    )
    .await;
    let done = follow_done(&client, client.get(&local(&back)).await).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("@harbor"));
    let all = owned(&app, owner).await;
    assert_eq!((all.len(), all[0].login_kind()), (1, LoginKind::Facebook));
}

#[tokio::test]
async fn request_logs_name_routes_not_secrets() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests in this process (under `cargo test`, threads of one process) may have hit our
    // log statements first, with no subscriber listening, and tracing caches that verdict per
    // call site: make every call site ask again now that this thread listens.
    tracing::callsite::rebuild_interest_cache();

    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;
    let client = app.browser();
    let done = client_uses_link(&client, &token, "bakery").await;
    assert_eq!(done.status, StatusCode::OK);
    let c = owned(&app, owner).await.remove(0);
    let access_token = feedkeeper::connections::open_token(&app.state, &c).unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/l/{token}"), "requests are logged by route");
    for secret in [
        token.as_str(),
        access_token.expose(),
        app.state.config.meta.instagram_app_secret.expose(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn a_single_use_link_started_in_two_browsers_at_once_connects_one_account() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    app.instagram_account("impostor", AccountKind::Business, false);
    app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;
    let (first, second) = (app.browser(), app.browser());
    let forms = [
        first
            .get(&format!("/l/{token}"))
            .await
            .form(&format!("/l/{token}/instagram")),
        second
            .get(&format!("/l/{token}"))
            .await
            .form(&format!("/l/{token}/instagram")),
    ];
    // Both press the button at the same moment: one goes on to Instagram, the other is told.
    let (a, b) = tokio::join!(first.submit(&forms[0]), second.submit(&forms[1]));
    let (winner, winner_start, loser) = match (a.status, b.status) {
        (StatusCode::SEE_OTHER, StatusCode::CONFLICT) => (&first, a, b),
        (StatusCode::CONFLICT, StatusCode::SEE_OTHER) => (&second, b, a),
        other => panic!("one start each way expected, got {other:?}"),
    };
    assert!(loser.body.contains("in another browser"), "{}", loser.body);
    // The same browser may start again (a second press).
    let again = winner
        .submit(&forms[if std::ptr::eq(winner, &first) { 0 } else { 1 }])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let back = login_at_meta(winner_start, &ig("bakery"), true).await;
    let done = follow_done(winner, winner.get(&local(&back)).await).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // The other browser cannot connect another account through it afterwards either.
    let late = app.browser().get(&format!("/l/{token}")).await;
    assert_eq!(late.status, StatusCode::GONE);
    let all = owned(&app, owner).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].username, "bakery");
}

#[tokio::test]
async fn a_failed_login_through_a_single_use_link_lets_it_be_tried_again() {
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    app.signup_and_login("agency@example.com").await;
    let owner = user_id(&app, "agency@example.com").await;
    let token = make_link(&app, owner, None, true).await;
    let first = app.browser();
    let landing = first.get(&format!("/l/{token}")).await;
    let start = first
        .submit(&landing.form(&format!("/l/{token}/instagram")))
        .await;
    // The client cancels at Instagram: nothing connected, and the link is free again.
    let back = login_at_meta(start, &ig("bakery"), false).await;
    let cancelled = first.get(&local(&back)).await;
    assert_eq!(
        cancelled.status,
        StatusCode::BAD_REQUEST,
        "{}",
        cancelled.body
    );
    let second = app.browser();
    let done = client_uses_link(&second, &token, "bakery").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}

#[tokio::test]
async fn a_login_wide_problem_found_on_one_page_checks_the_same_persons_other_pages_at_once() {
    let app = TestApp::spawn().await;
    two_pages_of_one_person(&app);
    let browser = app.signup_and_login("owner@example.com").await;
    let picker_path = harbor_owner_to_the_page_picker(&browser).await;
    let picker = browser.get(&picker_path).await;
    let done = browser.submit(&picker.form(&picker_path)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let owner = user_id(&app, "owner@example.com").await;
    let all = owned(&app, owner).await;
    assert_eq!(all.len(), 2);
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    let (cafe, bar) = if all[0].username == "harbor_cafe" {
        (&all[0], &all[1])
    } else {
        (&all[1], &all[0])
    };
    let job_of = |id: ConnectionId| {
        let db = app.state.db.clone();
        async move {
            feedkeeper::db::jobs::get(&db, "lifecycle", &id.to_string())
                .await
                .unwrap()
        }
    };
    let now = app.state.clock.now();
    assert!(job_of(bar.id).await.due_at > now, "the bar is not due yet");

    // A checkpoint on the person: the owner checks the cafe, which finds it.
    app.sim
        .apply_event("harbor_cafe", AccountEvent::SuspiciousLogin)
        .await
        .unwrap();
    let refreshed = browser
        .post(
            &format!("/connections/{}/refresh", cafe.id),
            &[("csrf", &browser.csrf)],
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::SEE_OTHER);
    let cafe_now = stored::get(&app.state.db, cafe.id).await.unwrap();
    assert_eq!(cafe_now.status(), Status::NeedsReconnect);
    assert_eq!(cafe_now.reason.as_deref(), Some("checkpoint"));
    // The bar, on the same login, is due now: checked through the runner, not in the request.
    assert!(job_of(bar.id).await.due_at <= app.state.clock.now());
    assert_eq!(
        stored::get(&app.state.db, bar.id).await.unwrap().status(),
        Status::Active
    );
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    let bar_now = stored::get(&app.state.db, bar.id).await.unwrap();
    assert_eq!(bar_now.status(), Status::NeedsReconnect);
    assert_eq!(bar_now.reason.as_deref(), Some("checkpoint"));
}
