//! Mail: telling the person who can act that a connection needs them, and the account mail
//! (password resets, invitations).
//!
//! The path of a connection alert: an incident opens, escalates or closes (`connections`), and
//! in that same transaction [`notices::on_incident`] writes what each recipient is to be told
//! and when (first notice after a short hold, reminders on the owner's schedule, one
//! "restored"). The `mail-compose` job ([`compose`]) folds each recipient's due notices into one
//! message (one mail when fifty accounts break at once) and writes it to the outbox with its
//! `mail-send` job; [`send`] delivers it over SMTP, or keeps it in the dashboard's mailbox when
//! no server is configured. Every step is a transaction, so a crash loses nothing and a
//! message goes out at most twice (the second time with the same Message-ID).

pub mod compose;
pub mod notices;
pub mod send;
pub mod templates;
pub mod unsubscribe;

use serde::{Deserialize, Serialize};

use crate::db::{DbError, Tx, jobs, mail as store};
use crate::ids::UserId;
use crate::state::AppState;

/// The job that folds due notices into messages (one subject: [`COMPOSE_SUBJECT`]).
pub const COMPOSE_JOB: &str = "mail-compose";
pub const COMPOSE_SUBJECT: &str = "all";
/// The job that delivers one message (its subject is [`send_subject`]).
pub const SEND_JOB: &str = "mail-send";

/// The subject of message `id`'s `mail-send` job. Not the bare id: jobs whose subject is a
/// connection's id are cancelled with it (`jobs::cancel_for_subject`).
pub fn send_subject(id: i64) -> String {
    format!("message-{id}")
}

/// The message id a `mail-send` job's subject names.
pub fn parse_send_subject(subject: &str) -> Option<i64> {
    subject.strip_prefix("message-")?.parse().ok()
}

/// Categories of mail; a recipient can turn each off on its own (List-Unsubscribe).
pub const ALERTS: &str = "alerts";
pub const ACCOUNT: &str = "account";
pub const TEST: &str = "test";

/// A message's two bodies, sealed together in the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub text: String,
    pub html: String,
}

/// A message to put in the outbox.
pub struct Outgoing<'a> {
    pub user: UserId,
    pub recipient: &'a str,
    pub category: &'a str,
    pub subject: &'a str,
    pub body: &'a Body,
}

/// The sealing context of a message's body: a sealed body moved to another message row does
/// not open.
fn seal_context(message_id: &str) -> String {
    format!("mail body {message_id}")
}

/// Writes a message to the outbox and schedules its delivery, in the caller's transaction.
/// Returns the message's row id.
pub async fn enqueue(
    tx: &mut Tx,
    state: &AppState,
    out: &Outgoing<'_>,
    now: i64,
) -> Result<i64, DbError> {
    let message_id = new_message_id(&state.config.mail.from);
    let json = serde_json::to_string(out.body).unwrap_or_default();
    let sealed = state.mail_cipher.seal(&json, &seal_context(&message_id));
    let id = store::insert_message(
        &mut *tx,
        &store::NewMessage {
            user_id: out.user,
            recipient: out.recipient,
            category: out.category,
            subject: out.subject,
            body_sealed: &sealed,
            message_id: &message_id,
        },
        now,
    )
    .await?;
    jobs::schedule(&mut *tx, SEND_JOB, &send_subject(id), now, now).await?;
    Ok(id)
}

/// Whom `owner`'s mail is from, in words: their organisation's name, or "feedkeeper".
pub async fn sender_name(
    db: impl Into<crate::db::Ex<'_>>,
    owner: UserId,
) -> Result<String, DbError> {
    Ok(crate::db::organisations::get(db, owner)
        .await?
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "feedkeeper".to_owned()))
}

/// A message's bodies, opened (`None`: sealed under a key no longer configured).
pub fn open_body(state: &AppState, message: &store::MailMessage) -> Option<Body> {
    let json = state
        .mail_cipher
        .open(&message.body_sealed, &seal_context(&message.message_id))
        .ok()?;
    serde_json::from_str(&json).ok()
}

/// A fresh Message-ID (`<random@domain of the sender>`), fixed for the life of the message.
fn new_message_id(from: &str) -> String {
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let random: [u8; 16] = rand::random();
    format!("<{}@{domain}>", hex::encode(random))
}

/// Makes sure the mail jobs exist and none is dead (on start, and by the maintenance job):
/// the compose job runs now, and every message waiting to be sent has its job. Returns how
/// many send jobs were made or brought back.
pub async fn ensure_jobs(state: &AppState, now: i64) -> Result<u64, DbError> {
    jobs::schedule(&state.db, COMPOSE_JOB, COMPOSE_SUBJECT, now, now).await?;
    store::schedule_missing_sends(&state.db, SEND_JOB, now).await
}

/// Puts a one-off message (a password reset, an invitation, a test) in the outbox on its own.
pub async fn send_now(state: &AppState, out: &Outgoing<'_>) -> Result<i64, DbError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let id = enqueue(&mut tx, state, out, now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Whether mail actually leaves this service (an SMTP server is configured), or is only kept
/// in the mailbox page.
pub fn delivers(state: &AppState) -> bool {
    !state.config.mail.smtp_host.is_empty()
}

/// What an account mail is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountMail {
    /// A new account: the link chooses its first password.
    Invitation,
    PasswordReset,
}

/// Mails `email`'s owner their one-time password link (from `feedkeeper users create` or
/// `users reset-password`). Returns the message's id.
pub async fn account_link(
    state: &AppState,
    email: &str,
    link: &str,
    kind: AccountMail,
) -> anyhow::Result<i64> {
    let email = crate::accounts::Email::parse(email).map_err(anyhow::Error::msg)?;
    let user = crate::db::users::find_by_email(&state.db, email.as_str())
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no account for {}", email.as_str()))?;
    let (subject, paragraphs, label, after) = match kind {
        AccountMail::Invitation => (
            "Your feedkeeper account",
            vec![
                "An account on feedkeeper was made for you: it keeps Instagram posts showing on \
                 websites, and tells you when an account needs reconnecting."
                    .to_owned(),
                "Choose a password to start.".to_owned(),
            ],
            "Choose a password",
            vec!["The link works once, for 7 days.".to_owned()],
        ),
        AccountMail::PasswordReset => (
            "Set a new feedkeeper password",
            vec!["Someone (we hope you) asked for a new password for this address.".to_owned()],
            "Set a new password",
            vec![
                "The link works once, for an hour, and earlier links no longer work. If you \
                 did not ask for it, ignore this mail: your password stays as it is."
                    .to_owned(),
            ],
        ),
    };
    let body = templates::letter(&templates::Letter {
        subject,
        paragraphs: &paragraphs,
        link: Some(link),
        link_label: label,
        after: &after,
        sender: "feedkeeper",
    })?;
    Ok(send_now(
        state,
        &Outgoing {
            user: user.id,
            recipient: email.as_str(),
            category: ACCOUNT,
            subject,
            body: &body,
        },
    )
    .await?)
}
