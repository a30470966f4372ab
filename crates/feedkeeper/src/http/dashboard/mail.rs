//! The Mail page: the user's mail settings (on or off, the reminder schedule, a test mail) and
//! every message sent about their connections, with its delivery. With no SMTP server
//! configured (the demo), it is the mailbox: it shows exactly what would have been sent.
//! Also each connection's own mail settings, and the public one-click unsubscribe page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use super::links::CsrfForm;
use crate::accounts::page::Tone;
use crate::accounts::{CurrentUser, Email, Page};
use crate::clock::format_utc;
use crate::db::connections::{self as stored, RowLock};
use crate::db::mail::{self as store, MailMessage};
use crate::error::{AppError, invalid_form, render};
use crate::http::path_id;
use crate::ids::ConnectionId;
use crate::mail::{self, notices, templates, unsubscribe};
use crate::state::AppState;

/// Messages per page of the list.
const PAGE_SIZE: i64 = 50;
/// At most one test mail per user this often (seconds).
const TEST_MAIL_EVERY_SECS: i64 = 60;
/// Extra recipients a connection may have.
pub const MAX_EXTRA_RECIPIENTS: usize = 10;

/// A message as the list shows it.
pub(super) struct MessageRow {
    pub(super) id: i64,
    pub(super) when: String,
    pub(super) recipient: String,
    pub(super) subject: String,
    pub(super) status: &'static str,
    pub(super) tone: &'static str,
    pub(super) error: Option<String>,
}

fn status_words(m: &MailMessage) -> (&'static str, &'static str) {
    match m.status.as_str() {
        "sent" => ("Sent", "ok"),
        "kept" => ("Kept here (not sent)", "ok"),
        "failed" => ("Not delivered", "bad"),
        "withdrawn" => ("Not sent: no longer true", "off"),
        _ if m.attempts > 0 => ("Retrying", "warn"),
        _ => ("Waiting to be sent", "warn"),
    }
}

fn row(m: MailMessage) -> MessageRow {
    let (status, tone) = status_words(&m);
    MessageRow {
        id: m.id,
        when: format_utc(m.sent_at.unwrap_or(m.created_at)),
        recipient: m.recipient,
        subject: m.subject,
        status,
        tone,
        error: m.last_error,
    }
}

#[derive(Template)]
#[template(path = "mailbox.html")]
struct MailboxPage {
    page: Page,
    delivers: bool,
    enabled: bool,
    reminder_days: String,
    error: Option<String>,
    /// The user's own address turned alerts off (an unsubscribe link in one of them).
    own_opted_out: bool,
    /// Other addresses that turned this user's alerts off.
    opted_out: Vec<String>,
    messages: Vec<MessageRow>,
    older: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    before: Option<i64>,
}

async fn mailbox(
    state: &AppState,
    user: &CurrentUser,
    before: Option<i64>,
    form: Option<(bool, String, String)>,
) -> Result<MailboxPage, AppError> {
    let settings = store::user_settings(&state.db, user.id).await?;
    let messages = store::list_owned_messages(&state.db, user.id, before, PAGE_SIZE + 1).await?;
    let older = (messages.len() as i64 > PAGE_SIZE)
        .then(|| messages.get(PAGE_SIZE as usize - 1).map(|m| m.id))
        .flatten();
    let mut opted_out = store::opted_out_of(&state.db, user.id, mail::ALERTS).await?;
    let own_opted_out = opted_out.contains(&settings.email);
    opted_out.retain(|r| *r != settings.email);
    let (enabled, reminder_days, error) = match form {
        Some((enabled, days, error)) => (enabled, days, Some(error)),
        None => (settings.notify_enabled, settings.reminder_days, None),
    };
    Ok(MailboxPage {
        page: Page::for_user(user, "Mail"),
        delivers: mail::delivers(state),
        enabled,
        reminder_days,
        error,
        own_opted_out,
        opted_out,
        messages: messages
            .into_iter()
            .take(PAGE_SIZE as usize)
            .map(row)
            .collect(),
        older,
    })
}

/// `GET /mail`: settings and the messages, newest first.
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    render(&mailbox(&state, &user, query.before, None).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    enabled: Option<String>,
    reminder_days: String,
}

/// `POST /mail/settings`.
pub async fn save_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let enabled = form.enabled.is_some();
    let days = match notices::parse_reminder_days(&form.reminder_days) {
        Ok(days) => days,
        Err(problem) => {
            let page = mailbox(
                &state,
                &user,
                None,
                Some((
                    enabled,
                    form.reminder_days.clone(),
                    format!(
                        "Reminders: {problem}. Write days after the first mail, separated by \
                         commas, e.g. 1, 3, 7."
                    ),
                )),
            )
            .await?;
            return Err(invalid_form(&page));
        }
    };
    let text = days
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let now = state.clock.now();
    store::set_user_settings(&state.db, user.id, enabled, &text, now).await?;
    // Each connection in a transaction of its own, its row first (the lock order).
    for c in stored::list_owned(&state.db, user.id).await? {
        let mut tx = state.db.begin().await?;
        if let Some(locked) = stored::lock(&mut tx, c.id, RowLock::Change).await? {
            notices::recipients_changed(&mut tx, &state, &locked, now).await?;
        }
        tx.commit().await?;
    }
    user.flash(
        &state,
        if enabled {
            "Saved. You will get mail when a connection needs attention."
        } else {
            "Saved. No mail will be sent about your connections."
        },
    )
    .await?;
    Ok(Redirect::to("/mail").into_response())
}

/// `POST /mail/test`: a test message to the user's own address.
pub async fn send_test(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let settings = store::user_settings(&state.db, user.id).await?;
    let now = state.clock.now();
    let recent = store::list_owned_messages(&state.db, user.id, None, 20)
        .await?
        .into_iter()
        .any(|m| m.category == mail::TEST && m.created_at > now - TEST_MAIL_EVERY_SECS);
    if recent {
        user.flash_with(
            &state,
            Tone::Warn,
            "A test mail was sent less than a minute ago; wait a moment before the next.",
        )
        .await?;
        return Ok(Redirect::to("/mail").into_response());
    }
    let sender = mail::sender_name(&state.db, user.id).await?;
    let subject = "Test mail from feedkeeper";
    let paragraphs = [
        "This is the test mail you asked for. If you can read it, mail about your Instagram \
         connections will reach this address."
            .to_owned(),
    ];
    let body = templates::letter(&templates::Letter {
        subject,
        paragraphs: &paragraphs,
        link: Some(&format!("{}/mail", state.config.public_url())),
        link_label: "Open your mail settings",
        after: &[],
        sender: &sender,
    })
    .map_err(|e| AppError::Internal(e.into()))?;
    let id = mail::send_now(
        &state,
        &mail::Outgoing {
            user: user.id,
            recipient: &settings.email,
            category: mail::TEST,
            subject,
            body: &body,
        },
    )
    .await?;
    tracing::info!(user = %user.id, message = id, "test mail queued");
    let message = if mail::delivers(&state) {
        format!(
            "A test mail is on its way to {}. Its delivery shows below.",
            settings.email
        )
    } else {
        "No mail server is configured, so the test mail is kept below instead of sent.".to_owned()
    };
    user.flash(&state, &message).await?;
    Ok(Redirect::to("/mail").into_response())
}

#[derive(Template)]
#[template(path = "mail_message.html")]
struct MessagePage {
    page: Page,
    /// Account mail (a password link): its text is not shown, even to its owner's session.
    hidden: bool,
    m: MessageRow,
    message_id: String,
    attempts: i64,
    text: Option<String>,
}

/// `GET /mail/{id}`: one message, as sent.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let m = store::get_owned_message(&state.db, user.id, path_id(&id)?).await?;
    let hidden = m.category == mail::ACCOUNT;
    let text = if hidden {
        None
    } else {
        mail::open_body(&state, &m).map(|b| b.text)
    };
    render(&MessagePage {
        page: Page::for_user(&user, &m.subject),
        hidden,
        message_id: m.message_id.clone(),
        attempts: m.attempts,
        text,
        m: row(m),
    })
}

/// `GET /mail/{id}/html`: the HTML version, for the frame on the message's page: sandboxed (no
/// script, no requests), links open outside it.
pub async fn show_html(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let m = store::get_owned_message(&state.db, user.id, path_id(&id)?).await?;
    if m.category == mail::ACCOUNT {
        return Err(AppError::NotFound);
    }
    let html = mail::open_body(&state, &m)
        .map(|b| b.html)
        .ok_or(AppError::NotFound)?;
    let html = html.replacen("<head>", "<head><base target=\"_blank\">", 1);
    Ok((
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "private, no-store"),
            (
                CONTENT_SECURITY_POLICY,
                "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; \
                 style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
            ),
        ],
        html,
    )
        .into_response())
}

/// The connection page's mail section.
pub struct ConnectionMail {
    /// Who is always told (the owner, the client who connected it), in words.
    pub(super) always: String,
    pub(super) owner_enabled: bool,
    pub(super) enabled: bool,
    /// The extra recipients, one per line.
    pub(super) extra: String,
    pub(super) max_extra: usize,
    pub(super) messages: Vec<MessageRow>,
}

/// How many of a connection's messages its page lists.
const CONNECTION_MESSAGES: i64 = 20;

pub async fn connection_mail(
    state: &AppState,
    c: &crate::db::connections::Connection,
) -> Result<ConnectionMail, AppError> {
    let owner = store::user_settings(&state.db, c.owner_id).await?;
    let (enabled, extra) = store::connection_settings(&state.db, c.id).await?;
    let always = match &c.client_email {
        Some(client) => format!(
            "you ({}) and the client who connected it ({client})",
            owner.email
        ),
        None => format!("you ({})", owner.email),
    };
    let messages = store::list_for_connection(&state.db, c.id, CONNECTION_MESSAGES)
        .await?
        .into_iter()
        .map(row)
        .collect();
    Ok(ConnectionMail {
        always,
        owner_enabled: owner.notify_enabled,
        enabled,
        extra: extra
            .split(',')
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        max_extra: MAX_EXTRA_RECIPIENTS,
        messages,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConnectionMailForm {
    csrf: String,
    enabled: Option<String>,
    extra: String,
}

/// The extra recipients as typed (commas, spaces or lines between them), checked.
pub fn parse_extra(text: &str) -> Result<Vec<String>, String> {
    let mut all: Vec<String> = Vec::new();
    for part in text
        .split([',', ';', '\n', '\r', ' ', '\t'])
        .filter(|p| !p.trim().is_empty())
    {
        let email = Email::parse(part).map_err(|e| format!("{:?}: {e}", part.trim()))?;
        if !all.iter().any(|a| a == email.as_str()) {
            all.push(email.into_string());
        }
    }
    if all.len() > MAX_EXTRA_RECIPIENTS {
        return Err(format!("at most {MAX_EXTRA_RECIPIENTS} extra addresses"));
    }
    Ok(all)
}

/// `POST /connections/{id}/mail`: who hears about this account.
pub async fn save_connection(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ConnectionMailForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let id: ConnectionId = path_id(&id)?;
    let c = stored::get_owned(&state.db, user.id, id).await?;
    let extra = match parse_extra(&form.extra) {
        Ok(extra) => extra,
        Err(problem) => {
            user.flash_with(
                &state,
                Tone::Bad,
                &format!("Not saved. Extra recipients: {problem}."),
            )
            .await?;
            return Ok(Redirect::to(&format!("/connections/{}#mail", c.id)).into_response());
        }
    };
    let enabled = form.enabled.is_some();
    let mut tx = state.db.begin().await?;
    // Lock order: the connection's row first (the incident writers read these settings
    // under it).
    let Some(locked) = stored::lock(&mut tx, c.id, RowLock::Change).await? else {
        return Err(AppError::NotFound);
    };
    store::set_connection_settings(&mut tx, c.id, enabled, &extra.join(",")).await?;
    notices::recipients_changed(&mut tx, &state, &locked, state.clock.now()).await?;
    tx.commit().await?;
    user.flash(&state, "Saved who is told about this account.")
        .await?;
    Ok(Redirect::to(&format!("/connections/{}#mail", c.id)).into_response())
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    page: Page,
    recipient: String,
    /// Whose mail it is, in words (the organisation name, or feedkeeper).
    sender: String,
    done: bool,
    token: String,
}

async fn unsubscribe_view(
    state: &AppState,
    token: String,
) -> Result<(UnsubscribePage, unsubscribe::Named), AppError> {
    let named = unsubscribe::verify(state, &token)
        .filter(|n| n.category == mail::ALERTS)
        .ok_or(AppError::NotFound)?;
    let sender = mail::sender_name(&state.db, named.owner).await?;
    let done = store::opted_out(&state.db, named.owner, &named.recipient, &named.category).await?;
    Ok((
        UnsubscribePage {
            page: Page::public("Stop these messages", ""),
            recipient: named.recipient.clone(),
            sender,
            done,
            token,
        },
        named,
    ))
}

/// `GET /mail/unsubscribe/{token}`: asks before turning mail off (a link scanner's GET must
/// change nothing).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    render(&unsubscribe_view(&state, token).await?.0)
}

/// `POST /mail/unsubscribe/{token}`: the one-click unsubscribe (RFC 8058: mail clients post
/// `List-Unsubscribe=One-Click`), or the page's button. The signed token is the permission;
/// it stops that owner's alerts to that address, nobody else's.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let (mut page, named) = unsubscribe_view(&state, token).await?;
    store::opt_out(
        &state.db,
        named.owner,
        &named.recipient,
        &named.category,
        state.clock.now(),
    )
    .await?;
    tracing::info!(owner = %named.owner, "a recipient turned alerts off");
    page.done = true;
    render(&page)
}

/// `POST /mail/unsubscribe/{token}/undo`: the same address wants them again.
pub async fn resubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let (mut page, named) = unsubscribe_view(&state, token).await?;
    store::opt_in(&state.db, named.owner, &named.recipient, &named.category).await?;
    tracing::info!(owner = %named.owner, "a recipient turned alerts back on");
    page.done = false;
    page.page.flash = Some(crate::accounts::page::Flash {
        tone: Tone::Ok,
        message: format!("{} gets these messages again.", named.recipient),
    });
    render(&page)
}

/// `POST /mail/resubscribe`: the owner turns their own address's alerts back on (after an
/// unsubscribe link in one of them was used).
pub async fn resubscribe_own(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let settings = store::user_settings(&state.db, user.id).await?;
    store::opt_in(&state.db, user.id, &settings.email, mail::ALERTS).await?;
    user.flash(&state, "Alerts to your address are on again.")
        .await?;
    Ok(Redirect::to("/mail").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_recipients_are_checked_and_deduplicated() {
        assert_eq!(
            parse_extra("a@example.com, B@example.com\nA@example.com").unwrap(),
            vec!["a@example.com", "b@example.com"]
        );
        assert_eq!(parse_extra("  ").unwrap(), Vec::<String>::new());
        assert!(parse_extra("not-an-address").is_err());
        let many = (0..11)
            .map(|i| format!("p{i}@example.com"))
            .collect::<Vec<_>>();
        assert!(parse_extra(&many.join(",")).is_err());
    }
}
