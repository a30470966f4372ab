//! Delivering one message from the outbox: over SMTP (lettre: STARTTLS, TLS or plain, optional
//! login), or, with no server configured, only keeping it in the dashboard's mailbox.
//!
//! The message carries the Message-ID it was given when written, on every attempt, so if the
//! process dies after the server took it and before that was recorded, the one resend is
//! recognisably the same mail. A temporary failure (4xx, a refused or dropped connection, a
//! timeout) is tried again with back-off until `mail.give_up_after_hours`; a permanent refusal
//! (5xx) is recorded and shown, never retried.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, SmtpSecurity};
use crate::db::mail as store;
use crate::state::AppState;

/// Where this node's mail goes.
pub enum Mailer {
    /// No SMTP server: messages stay in the mailbox page.
    Mailbox,
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: lettre::Address,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Mailbox => f.write_str("Mailer::Mailbox"),
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
        }
    }
}

impl Mailer {
    pub fn from_config(config: &MailConfig) -> anyhow::Result<Mailer> {
        if config.smtp_host.is_empty() {
            return Ok(Mailer::Mailbox);
        }
        let host = config.smtp_host.as_str();
        let tls = || TlsParameters::new(host.to_owned());
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port())
            .timeout(Some(Duration::from_secs(config.send_timeout_secs)))
            .tls(match config.smtp_security {
                SmtpSecurity::Starttls => Tls::Required(tls()?),
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::None => Tls::None,
            });
        let builder = if config.smtp_username.is_empty() {
            builder
        } else {
            builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.expose().to_owned(),
            ))
        };
        Ok(Mailer::Smtp {
            transport: Box::new(builder.build()),
            from: config.from.parse()?,
        })
    }
}

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Kept in the mailbox page only.
    Kept,
    /// Try again later.
    Retry(String),
    /// Refused for good.
    Refused(String),
}

/// First retry after this long, doubled per attempt up to [`MAX_RETRY_SECS`].
const FIRST_RETRY_SECS: i64 = 60;
const MAX_RETRY_SECS: i64 = 1800;

/// When to try again after the `attempts`-th failed attempt.
pub fn retry_delay(attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 16) as u32 - 1;
    (FIRST_RETRY_SECS << doublings).min(MAX_RETRY_SECS)
}

/// Delivers message `id` once. Returns when to try again (`None`: done, whatever the end).
pub async fn send_one(state: &AppState, id: i64) -> anyhow::Result<Option<i64>> {
    let message = match store::get_message(&state.db, id).await {
        Ok(m) => m,
        Err(crate::db::DbError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if message.status != "pending" {
        return Ok(None);
    }
    let outcome = attempt(state, &message).await;
    let now = state.clock.now();
    let give_up_at = message.created_at + state.config.mail.give_up_after_hours as i64 * 3600;
    let (status, error, next) = match &outcome {
        Outcome::Sent => ("sent", None, None),
        Outcome::Kept => ("kept", None, None),
        Outcome::Refused(e) => ("failed", Some(e.clone()), None),
        Outcome::Retry(e) if now >= give_up_at => (
            "failed",
            Some(format!(
                "given up after {} hours: {e}",
                state.config.mail.give_up_after_hours
            )),
            None,
        ),
        Outcome::Retry(e) => (
            "pending",
            Some(e.clone()),
            Some(now + retry_delay(message.attempts + 1)),
        ),
    };
    store::record_attempt(&state.db, id, status, error.as_deref(), now).await?;
    match &outcome {
        Outcome::Sent => tracing::info!(message = id, "mail sent"),
        Outcome::Kept => {}
        Outcome::Refused(e) => {
            tracing::warn!(message = id, error = %e, "mail refused by the server")
        }
        Outcome::Retry(e) => {
            tracing::warn!(message = id, error = %e, attempts = message.attempts + 1, final = next.is_none(), "mail not delivered")
        }
    }
    Ok(next)
}

/// One attempt at delivering `message`.
async fn attempt(state: &AppState, message: &store::MailMessage) -> Outcome {
    let (transport, from) = match &*state.mailer {
        Mailer::Mailbox => return Outcome::Kept,
        Mailer::Smtp { transport, from } => (transport, from),
    };
    let Some(body) = super::open_body(state, message) else {
        return Outcome::Refused(
            "the message was sealed under a key that is no longer configured".to_owned(),
        );
    };
    let sender = match super::sender_name(&state.db, message.user_id).await {
        Ok(name) => name,
        Err(e) => return Outcome::Retry(format!("reading the sender's name: {e}")),
    };
    let Ok(to) = message.recipient.parse::<lettre::Address>() else {
        return Outcome::Refused(format!("{:?} is not an email address", message.recipient));
    };
    let mut builder = Message::builder()
        .from(Mailbox::new(Some(sender), from.clone()))
        .to(Mailbox::new(None, to))
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()))
        // RFC 3834: an automatic message; vacation responders stay quiet.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    if message.category == super::ALERTS {
        let url =
            super::unsubscribe::address(state, message.user_id, &message.recipient, super::ALERTS);
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let email = match builder.multipart(MultiPart::alternative_plain_html(body.text, body.html)) {
        Ok(email) => email,
        Err(e) => return Outcome::Refused(format!("the message could not be built: {e}")),
    };
    match transport.send(email).await {
        Ok(_) => Outcome::Sent,
        Err(e) if e.is_permanent() => Outcome::Refused(format!("the server refused it: {e}")),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_half_an_hour() {
        assert_eq!(retry_delay(1), 60);
        assert_eq!(retry_delay(2), 120);
        assert_eq!(retry_delay(5), 960);
        assert_eq!(retry_delay(6), 1800);
        assert_eq!(retry_delay(40), 1800);
    }
}
