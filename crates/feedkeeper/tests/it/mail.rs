//! Mail against a real SMTP server on loopback (`smtp_sink`): who is told when a connection
//! breaks, once per incident and recipient, the reminders, one "restored"; one grouped message
//! when many break at once; the server down, deferring or refusing; one-click unsubscribe; and
//! the mailbox page when no server is configured.

use feedkeeper::config::SmtpSecurity;
use feedkeeper::db::connections::Connection;
use feedkeeper::db::{mail as store, users};
use feedkeeper::ids::UserId;
use meta_sim::AccountEvent;
use reqwest::StatusCode;

use crate::lifecycle::{DAY, HOUR, World};
use crate::smtp_sink::{Mode, Received, SmtpSink};

/// A world whose mail goes to `sink`, grouped over a minute.
async fn world_mailing(sink: &SmtpSink) -> World {
    let port = sink.port;
    World::with(move |c| {
        c.mail.smtp_host = "127.0.0.1".into();
        c.mail.smtp_port = port;
        c.mail.smtp_security = SmtpSecurity::None;
        c.mail.group_secs = 60;
        c.mail.from = "alerts@feedkeeper.test".into();
    })
    .await
}

/// The account's password changes on Instagram, and the next probe (within 8 hours) sees it.
async fn break_account(w: &World, username: &str) {
    break_accounts(w, &[username]).await;
}

async fn break_accounts(w: &World, usernames: &[&str]) {
    for username in usernames {
        w.sim
            .apply_event(username, AccountEvent::PasswordChanged)
            .await
            .unwrap();
    }
    w.advance(8 * HOUR);
    w.pass().await;
}

/// Past the grouping hold, then one pass: what is due is composed and sent.
async fn after_hold(w: &World) {
    w.advance(61);
    w.pass().await;
}

fn subjects(mails: &[Received]) -> Vec<String> {
    mails.iter().map(|m| m.header("Subject").unwrap()).collect()
}

fn recipients(mails: &[Received]) -> Vec<String> {
    let mut all: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    all.sort();
    all
}

async fn set_extra(w: &World, c: &Connection, extra: &str) {
    store::set_connection_settings(&w.state.db, c.id, true, extra)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_broken_login_is_mailed_once_to_each_person_then_reminded_then_restored() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "bakery").await;
    set_extra(&w, &c, "colleague@example.com").await;

    break_account(&w, "bakery").await;
    assert!(
        w.open_incident(&c).await.is_some(),
        "the check finds the break"
    );
    assert!(
        sink.received().is_empty(),
        "the first notice waits for the grouping hold"
    );
    after_hold(&w).await;
    let first = sink.received();
    assert_eq!(
        recipients(&first),
        ["colleague@example.com", "owner@example.com"]
    );
    for m in &first {
        assert_eq!(m.header("Subject").unwrap(), "@bakery needs reconnecting");
        assert!(m.from.contains("alerts@feedkeeper.test"), "{}", m.from);
        let unsubscribe = m.header("List-Unsubscribe").unwrap();
        assert!(unsubscribe.contains("/mail/unsubscribe/"), "{unsubscribe}");
        assert_eq!(
            m.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            m.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        let text = m.decoded();
        assert!(text.contains("the password was changed"), "{text}");
        assert!(text.contains("/l/"), "a reconnect link: {text}");
        let id = m.header("Message-ID").unwrap();
        assert!(
            id.starts_with('<') && id.ends_with("@feedkeeper.test>"),
            "{id}"
        );
    }
    // The link in the mail opens the reconnect page, without an account.
    let text = first[0].decoded();
    let start = text.find(&format!("{}/l/", w.base_url)).unwrap();
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{link}");

    // More checks of the broken account tell nobody again.
    for _ in 0..3 {
        w.advance(6 * HOUR);
        w.pass().await;
    }
    assert_eq!(sink.received().len(), 2, "{:?}", subjects(&sink.received()));

    // A day after: the first reminder, with a fresh link.
    w.advance(DAY);
    w.pass().await;
    let all = sink.received();
    assert_eq!(all.len(), 4, "{:?}", subjects(&all));
    for m in &all[2..] {
        assert_eq!(
            m.header("Subject").unwrap(),
            "Reminder: @bakery still needs reconnecting"
        );
    }

    // The account holder reconnects: one "working again" each, and no more reminders.
    let again = w.connect_instagram(owner, "bakery").await;
    assert_eq!(again.id, c.id);
    after_hold(&w).await;
    let all = sink.received();
    assert_eq!(all.len(), 6, "{:?}", subjects(&all));
    assert_eq!(
        recipients(&all[4..]),
        ["colleague@example.com", "owner@example.com"]
    );
    for m in &all[4..] {
        assert_eq!(m.header("Subject").unwrap(), "@bakery is working again");
        assert!(!m.decoded().contains("/l/"), "nothing to do, no link");
    }
    for _ in 0..10 {
        w.advance(DAY);
        w.pass().await;
    }
    assert_eq!(sink.received().len(), 6, "{:?}", subjects(&sink.received()));
    // Every Message-ID is distinct, and the outbox says each was sent.
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        store::count_by_status(&w.state.db).await.unwrap(),
        [("sent".to_owned(), 6)]
    );
}

#[tokio::test]
async fn fifty_accounts_breaking_at_once_make_one_message() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("agency@example.com").await;
    let mut names = Vec::new();
    for i in 0..50 {
        let name = format!("shop_{i:02}");
        w.connect_instagram(owner, &name).await;
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    break_accounts(&w, &refs).await;
    after_hold(&w).await;
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
    assert_eq!(
        mails[0].header("Subject").unwrap(),
        "50 Instagram accounts need attention"
    );
    let text = mails[0].decoded();
    for name in &names {
        assert!(
            text.contains(&format!("@{name}: needs reconnecting")),
            "{name}"
        );
    }
}

#[tokio::test]
async fn mail_waits_out_a_server_that_is_down_and_arrives_once() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    w.connect_instagram(owner, "bakery").await;
    sink.stop();
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    // An hour of the server being down: attempts with back-off, each recorded.
    for _ in 0..6 {
        w.advance(10 * 60);
        w.pass().await;
    }
    let messages = store::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, "pending");
    assert!(messages[0].attempts >= 3, "{messages:?}");
    assert!(messages[0].last_error.is_some());
    // Back up: it arrives, once.
    sink.restart().await;
    w.advance(HOUR);
    w.pass().await;
    w.advance(HOUR);
    w.pass().await;
    assert_eq!(sink.received().len(), 1);
    let m = store::get_message(&w.state.db, messages[0].id)
        .await
        .unwrap();
    assert_eq!(m.status, "sent");
    assert_eq!(
        sink.received()[0].header("Message-ID").unwrap(),
        m.message_id
    );
}

#[tokio::test]
async fn a_deferring_server_gets_retries_and_a_refusal_is_recorded_not_retried() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    w.connect_instagram(owner, "bakery").await;
    w.connect_instagram(owner, "florist").await;

    sink.set_mode(Mode::Defer);
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    assert!(sink.received().is_empty());
    sink.set_mode(Mode::Accept);
    w.advance(HOUR);
    w.pass().await;
    assert_eq!(subjects(&sink.received()), ["@bakery needs reconnecting"]);

    sink.set_mode(Mode::Reject);
    break_account(&w, "florist").await;
    after_hold(&w).await;
    let refused: Vec<_> = store::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.status == "failed")
        .collect();
    assert_eq!(refused.len(), 1, "the florist's first notice is refused");
    assert!(
        refused[0].last_error.as_deref().unwrap().contains("550"),
        "{refused:?}"
    );
    let tried = sink.connections();
    w.advance(2 * HOUR);
    w.pass().await;
    assert_eq!(
        sink.connections(),
        tried,
        "a refused message is not tried again"
    );
}

#[tokio::test]
async fn one_click_unsubscribe_stops_alerts_for_that_address_only() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_instagram(owner, "bakery").await;
    w.connect_instagram(owner, "florist").await;
    set_extra(&w, &c, "colleague@example.com").await;
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    let to_colleague = sink
        .received()
        .into_iter()
        .find(|m| m.to == ["colleague@example.com"])
        .unwrap();
    let header = to_colleague.header("List-Unsubscribe").unwrap();
    let url = header.trim_start_matches('<').trim_end_matches('>');
    let client = reqwest::Client::new();
    // A link scanner's GET changes nothing; a forged token is not found.
    assert_eq!(client.get(url).send().await.unwrap().status(), 200);
    assert!(
        !store::opted_out(&w.state.db, owner, "colleague@example.com", "alerts")
            .await
            .unwrap()
    );
    let forged = url.replace("/unsubscribe/", "/unsubscribe/x");
    let reply = client
        .post(&forged)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    // The mail client's one-click POST, without cookies.
    let reply = client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(
        store::opted_out(&w.state.db, owner, "colleague@example.com", "alerts")
            .await
            .unwrap()
    );

    // The reminder goes to the owner only.
    w.advance(DAY);
    w.pass().await;
    let reminders: Vec<_> = sink.received().into_iter().skip(2).collect();
    assert_eq!(recipients(&reminders), ["owner@example.com"]);
}

#[tokio::test]
async fn without_a_server_mail_is_kept_in_the_mailbox_page() {
    let w = World::new().await;
    let session = w.app.signup_and_login("owner@example.com").await;
    let owner: UserId = users::find_by_email(&w.state.db, "owner@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let c = w.connect_instagram(owner, "bakery").await;
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    let messages = store::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, "kept");

    let page = session.get("/mail").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("No mail server is configured"),
        "{}",
        page.body
    );
    assert!(page.body.contains("@bakery needs reconnecting"));
    assert!(page.body.contains("Kept here (not sent)"));
    // The banner on every page while an account needs reconnecting.
    assert!(
        page.body
            .contains("An Instagram account needs reconnecting")
    );
    let one = session.get(&format!("/mail/{}", messages[0].id)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(
        one.body.contains("the password was changed"),
        "{}",
        one.body
    );
    let html = session.get(&format!("/mail/{}/html", messages[0].id)).await;
    assert_eq!(html.status, StatusCode::OK);
    let csp = html.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox"), "{csp}");
    // The connection's page lists it too.
    let detail = session.get(&format!("/connections/{}", c.id)).await;
    assert!(detail.body.contains("Mail about this account"));
    assert!(detail.body.contains(&format!("/mail/{}", messages[0].id)));

    // Another user sees none of it.
    let other = w.app.signup_and_login("other@example.com").await;
    assert_eq!(
        other.get(&format!("/mail/{}", messages[0].id)).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!other.get("/mail").await.body.contains("@bakery"));
    let form = other
        .post(
            &format!("/connections/{}/mail", c.id),
            &[("csrf", &other.csrf), ("extra", "spy@example.com")],
        )
        .await;
    assert_eq!(form.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mail_settings_are_checked_and_turn_mail_off() {
    let w = World::new().await;
    let session = w.app.signup_and_login("owner@example.com").await;
    let owner = users::find_by_email(&w.state.db, "owner@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let c = w.connect_instagram(owner, "bakery").await;

    let bad = session
        .post(
            "/mail/settings",
            &[
                ("csrf", &session.csrf),
                ("enabled", "on"),
                ("reminder_days", "1, x"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a number of days"), "{}", bad.body);
    assert!(bad.body.contains("1, x"), "what was typed is kept");

    let bad = session
        .post(
            &format!("/connections/{}/mail", c.id),
            &[
                ("csrf", &session.csrf),
                ("enabled", "on"),
                ("extra", "nobody"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    let (enabled, extra) = store::connection_settings(&w.state.db, c.id).await.unwrap();
    assert!(enabled);
    assert_eq!(extra, "", "nothing saved from a refused form");
    let page = session.get(&format!("/connections/{}", c.id)).await;
    assert!(page.body.contains("Not saved"), "{}", page.body);

    let ok = session
        .post(
            &format!("/connections/{}/mail", c.id),
            &[
                ("csrf", &session.csrf),
                ("enabled", "on"),
                ("extra", "A@Example.com\nb@example.com"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(
        store::connection_settings(&w.state.db, c.id)
            .await
            .unwrap()
            .1,
        "a@example.com,b@example.com"
    );

    // Turned off: a break mails nobody.
    let off = session
        .post(
            "/mail/settings",
            &[("csrf", &session.csrf), ("reminder_days", "2,5")],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let settings = store::user_settings(&w.state.db, owner).await.unwrap();
    assert!(!settings.notify_enabled);
    assert_eq!(settings.reminder_days, "2,5");
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    assert!(
        store::list_owned_messages(&w.state.db, owner, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The test mail is kept (no server) and listed.
    let test = session.post("/mail/test", &[("csrf", &session.csrf)]).await;
    assert_eq!(test.status, StatusCode::SEE_OTHER);
    w.pass().await;
    let page = session.get("/mail").await;
    assert!(
        page.body.contains("Test mail from feedkeeper"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn someone_added_while_an_account_is_broken_is_told_and_someone_removed_is_not_reminded() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let session = w.app.signup_and_login("owner@example.com").await;
    let owner = users::find_by_email(&w.state.db, "owner@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let c = w.connect_instagram(owner, "bakery").await;
    let set = |extra: &'static str| {
        let session = &session;
        let path = format!("/connections/{}/mail", c.id);
        async move {
            let reply = session
                .post(
                    &path,
                    &[("csrf", &session.csrf), ("enabled", "on"), ("extra", extra)],
                )
                .await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER);
        }
    };
    set("early@example.com").await;
    break_account(&w, "bakery").await;
    after_hold(&w).await;
    assert_eq!(
        recipients(&sink.received()),
        ["early@example.com", "owner@example.com"]
    );
    // The client is added the next morning: told at once, then reminded with the others;
    // the early colleague is taken off: no more reminders.
    w.advance(12 * HOUR);
    set("client@example.com").await;
    after_hold(&w).await;
    let later: Vec<_> = sink.received().into_iter().skip(2).collect();
    assert_eq!(recipients(&later), ["client@example.com"]);
    assert_eq!(
        later[0].header("Subject").unwrap(),
        "@bakery needs reconnecting"
    );
    w.advance(DAY);
    w.pass().await;
    let reminders: Vec<_> = sink.received().into_iter().skip(3).collect();
    assert_eq!(
        recipients(&reminders),
        ["client@example.com", "owner@example.com"],
        "{:?}",
        subjects(&reminders)
    );
    // The owner turns mail off: the reminders already scheduled stop too.
    let off = session
        .post(
            "/mail/settings",
            &[("csrf", &session.csrf), ("reminder_days", "1,3,7")],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    for _ in 0..8 {
        w.advance(DAY);
        w.pass().await;
    }
    assert_eq!(sink.received().len(), 5, "{:?}", subjects(&sink.received()));
}

#[tokio::test]
async fn an_alert_still_waiting_when_the_account_is_fixed_is_withdrawn_not_sent() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    // The first connection's id is also the first message's id: deleting that connection
    // must not cancel that message's delivery.
    let first = w.connect_instagram(owner, "first").await;
    w.connect_instagram(owner, "bakery").await;
    w.connect_instagram(owner, "florist").await;
    sink.stop();
    break_accounts(&w, &["bakery"]).await;
    after_hold(&w).await;
    w.advance(6 * HOUR);
    break_accounts(&w, &["florist"]).await;
    after_hold(&w).await;
    let pending = store::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|m| m.status == "pending"), "{pending:?}");
    assert_eq!(pending.last().unwrap().id, first.id.0, "the ids meet");

    // The bakery is reconnected while its alert waits; the first account is disconnected.
    w.connect_instagram(owner, "bakery").await;
    assert!(
        feedkeeper::connections::disconnect(&w.state, first.id)
            .await
            .unwrap()
    );
    sink.restart().await;
    for _ in 0..3 {
        w.advance(HOUR);
        w.pass().await;
    }
    assert_eq!(
        subjects(&sink.received()),
        ["@florist needs reconnecting"],
        "the bakery's alert was withdrawn, and nobody was told it is fixed"
    );
    let statuses: Vec<(String, String)> = store::list_owned_messages(&w.state.db, owner, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.subject, m.status))
        .collect();
    assert!(
        statuses.contains(&("@bakery needs reconnecting".into(), "withdrawn".into())),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn unsubscribing_stops_one_owners_alerts_and_can_be_undone() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let agency = w.user("agency@example.com").await;
    let other = w.user("other@example.com").await;
    let a = w.connect_instagram(agency, "bakery").await;
    let b = w.connect_instagram(other, "florist").await;
    set_extra(&w, &a, "client@example.com").await;
    set_extra(&w, &b, "client@example.com").await;
    let token =
        feedkeeper::mail::unsubscribe::address(&w.state, agency, "client@example.com", "alerts");
    let client = reqwest::Client::new();
    assert_eq!(client.post(&token).send().await.unwrap().status(), 200);
    break_accounts(&w, &["bakery", "florist"]).await;
    after_hold(&w).await;
    let to_client: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.to == ["client@example.com"])
        .collect();
    assert_eq!(
        subjects(&to_client),
        ["@florist needs reconnecting"],
        "the other owner's alerts still reach the client"
    );
    // Undone: the next reminder reaches the client again.
    let undo = client.post(format!("{token}/undo")).send().await.unwrap();
    assert_eq!(undo.status(), 200);
    w.advance(DAY);
    w.pass().await;
    let to_client: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.to == ["client@example.com"])
        .collect();
    assert_eq!(to_client.len(), 3, "{:?}", subjects(&to_client));
}

#[tokio::test]
async fn password_links_are_mailed_but_not_shown_on_the_mail_page() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let session = w.app.signup_and_login("owner@example.com").await;
    let link = feedkeeper::accounts::recovery::reset_link(&w.state, "owner@example.com")
        .await
        .unwrap();
    let id = feedkeeper::mail::account_link(
        &w.state,
        "owner@example.com",
        &link,
        feedkeeper::mail::AccountMail::PasswordReset,
    )
    .await
    .unwrap();
    w.pass().await;
    let mails = sink.received();
    assert_eq!(subjects(&mails), ["Set a new feedkeeper password"]);
    assert!(mails[0].decoded().contains(&link));
    assert!(mails[0].header("List-Unsubscribe").is_none());
    let page = session.get(&format!("/mail/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&link), "the link is not on the page");
    assert!(page.body.contains("one-time password link"));
    assert_eq!(
        session.get(&format!("/mail/{id}/html")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn facebook_data_access_running_out_is_mailed_before_it_ends_and_fine_again_after() {
    let sink = SmtpSink::start().await;
    let w = world_mailing(&sink).await;
    let owner = w.user("owner@example.com").await;
    let c = w.connect_facebook(owner, "harbor").await;
    let ends = c
        .data_access_expires_at
        .expect("Facebook says when data access ends");
    // Day by day until the warning: one message, before the end, naming the date.
    while sink.received().is_empty() {
        w.advance(DAY);
        w.pass().await;
        assert!(w.clock.now() < ends, "no warning before data access ended");
    }
    let first = sink.received();
    assert_eq!(first.len(), 1);
    let subject = first[0].header("Subject").unwrap();
    assert!(
        subject.starts_with("@harbor Facebook data access ends on"),
        "{subject}"
    );
    let text = first[0].decoded();
    assert!(
        text.contains("will stop updating unless it is reconnected soon"),
        "{text}"
    );
    assert!(text.contains("/l/"), "a reconnect link: {text}");
    // The account holder logs in again: data access renewed, and said so once.
    w.connect_facebook(owner, "harbor").await;
    w.advance(61);
    w.pass().await;
    let all = sink.received();
    assert_eq!(all.len(), 2, "{:?}", subjects(&all));
    assert_eq!(all[1].header("Subject").unwrap(), "@harbor is fine again");
    assert!(
        all[1]
            .decoded()
            .contains("Facebook data access was renewed")
    );
}
