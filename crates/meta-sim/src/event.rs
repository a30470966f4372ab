//! Account events (password change, app removal, checkpoints, …) and the global API break:
//! what each does to tokens and grants, which callbacks it triggers, and the event log.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::delivery::{CallbackKind, Delivery, DeliveryResult, PendingDelivery};
use crate::error::SimError;
use crate::settings::UserIdSource;
use crate::signed_request;
use crate::state::State;
use crate::token::{Platform, Revocation};

/// Something that happens to a person's Instagram/Facebook account.
/// JSON: `{"event":"password_changed"}`, `{"event":"permission_revoked","scope":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AccountEvent {
    /// Every token of the person (Instagram and Facebook/Page) → 190/460.
    PasswordChanged,
    /// Every token of the person → 190/460 (security-reasons wording).
    TwoFactorEnabled,
    /// Checkpoint: tokens → 190/459 (with `error_data.checkpoint_url`) until the person logs
    /// in through the simulated login page again.
    SuspiciousLogin,
    /// The user removed the app: tokens → 190/458, `signed_request` POSTed to the
    /// deauthorize callback for each connection.
    AppRemoved,
    /// `signed_request` POSTed to the data-deletion callback for each connection; the answer's
    /// `url` and `confirmation_code` are recorded in the event log. Tokens keep working.
    DataDeletionRequested,
    /// The user removed one permission: later calls needing it → code 10 (Instagram
    /// permissions) or 200 (Pages permissions).
    PermissionRevoked {
        /// The scope, e.g. `instagram_business_basic` or `pages_read_engagement`.
        scope: String,
    },
    /// Every token of the person → 190/467.
    TokenInvalidated,
    /// The account was renamed on Instagram (`{"event":"username_changed","username":"new"}`):
    /// the API reports the new username from now on; tokens keep working. The control API
    /// addresses the account by its new name afterwards.
    UsernameChanged {
        /// The new username.
        username: String,
    },
    /// The professional account was switched to a personal one: `/me` reports `PERSONAL`,
    /// media calls get code 10, and its Page no longer lists an Instagram account.
    SwitchedToPersonal,
    /// Switched back to a Business account.
    SwitchedToProfessional,
    /// The Instagram account was unlinked from its Facebook Page: reads about it through the Page
    /// get 100/33 (the Page and its token stay).
    UnlinkedFromPage,
    /// The account was deleted or deactivated: every token of the person → 190/467, and reads
    /// about it through its Page get 100/33.
    AccountDeleted,
}

impl AccountEvent {
    fn name(&self) -> &'static str {
        match self {
            AccountEvent::PasswordChanged => "password_changed",
            AccountEvent::TwoFactorEnabled => "two_factor_enabled",
            AccountEvent::SuspiciousLogin => "suspicious_login",
            AccountEvent::AppRemoved => "app_removed",
            AccountEvent::DataDeletionRequested => "data_deletion_requested",
            AccountEvent::PermissionRevoked { .. } => "permission_revoked",
            AccountEvent::TokenInvalidated => "token_invalidated",
            AccountEvent::UsernameChanged { .. } => "username_changed",
            AccountEvent::SwitchedToPersonal => "switched_to_personal",
            AccountEvent::SwitchedToProfessional => "switched_to_professional",
            AccountEvent::UnlinkedFromPage => "unlinked_from_page",
            AccountEvent::AccountDeleted => "account_deleted",
        }
    }
}

/// Something that happens to the whole platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GlobalEvent {
    /// Every token issued so far → 190 without subcode
    /// (`Error validating access token: The session is invalid because the user logged out.`).
    ApiBreakingChange,
}

/// One applied event. `GET /__sim/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Increasing sequence number.
    pub seq: u64,
    /// Simulator time.
    pub time: i64,
    /// The account, for account events.
    pub account: Option<String>,
    /// Event name, e.g. `password_changed`.
    pub event: String,
    /// The scope, for `permission_revoked`.
    pub scope: Option<String>,
    /// How many tokens stopped working.
    pub tokens_affected: usize,
    /// Sequence numbers of the callback deliveries it caused.
    pub deliveries: Vec<u64>,
    /// For `data_deletion_requested`: per delivery, the `url` and `confirmation_code` the app
    /// answered (or an `error` saying why they could not be read).
    pub data_deletion: Vec<Value>,
}

/// What applying an event did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventOutcome {
    /// The log entry.
    pub record: EventRecord,
    /// The callback POSTs it made.
    pub deliveries: Vec<Delivery>,
}

const PASSWORD_MESSAGE: &str = "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.";
const INVALIDATED_MESSAGE: &str = "Error validating access token: The access token is invalid.";
/// Wording chosen for `api_breaking_change` (190, no subcode).
pub(crate) const LOGGED_OUT_MESSAGE: &str =
    "Error validating access token: The session is invalid because the user logged out.";

/// Reads `url` and `confirmation_code` from a data-deletion answer: JSON, or the unquoted-key
/// form Meta's documentation prints (`{ url: '…', confirmation_code: '…' }`).
fn read_deletion_answer(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body)
        && let (Some(url), Some(code)) = (
            v.get("url").and_then(Value::as_str),
            v.get("confirmation_code").and_then(Value::as_str),
        )
    {
        return json!({"url": url, "confirmation_code": code, "format": "json"});
    }
    let field = |name: &str| -> Option<String> {
        let at = body.find(name)? + name.len();
        let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let inner = &rest[1..];
        Some(inner[..inner.find(quote)?].to_owned())
    };
    match (field("url"), field("confirmation_code")) {
        (Some(url), Some(code)) => {
            json!({"url": url, "confirmation_code": code, "format": "unquoted"})
        }
        _ => json!({"error": "the answer has no `url` and `confirmation_code`"}),
    }
}

impl State {
    /// Grants (Instagram first) belonging to the person behind `username`.
    fn person_grants(&self, username: &str) -> Vec<u64> {
        let fb_user = self
            .accounts
            .get(username)
            .and_then(|a| a.facebook_user.clone());
        self.grants
            .values()
            .filter(|g| match g.platform {
                Platform::Instagram => g.subject == username,
                Platform::Facebook => Some(&g.subject) == fb_user.as_ref(),
            })
            .map(|g| g.id)
            .collect()
    }

    /// Marks every still-working token of the person revoked; returns how many.
    fn revoke_person(
        &mut self,
        username: &str,
        revocation: impl Fn(Platform) -> Revocation,
    ) -> usize {
        let grants = self.person_grants(username);
        let platforms: Vec<(u64, Platform)> = grants
            .iter()
            .filter_map(|id| self.grants.get(id).map(|g| (*id, g.platform)))
            .collect();
        let mut count = 0;
        for token in self.tokens.values_mut() {
            let Some((_, platform)) = platforms.iter().find(|(id, _)| *id == token.grant) else {
                continue;
            };
            // Instagram grants are per account already; Facebook grants cover all the
            // person's Pages, which is right: the Facebook user changed, not one Page.
            if token.revocation.is_none() {
                token.revocation = Some(revocation(*platform));
                count += 1;
            }
        }
        count
    }

    fn callback_user_id(&self, username: &str, platform: Platform) -> String {
        let Some(a) = self.accounts.get(username) else {
            return "0".into();
        };
        match platform {
            Platform::Instagram => match self.settings.user_id_source {
                UserIdSource::Professional => a.ig_user_id.clone(),
                UserIdSource::AppScoped => a.app_scoped_id.clone(),
            },
            Platform::Facebook => a
                .facebook_user
                .as_ref()
                .and_then(|u| self.fb_users.get(u))
                .map(|u| u.id.clone())
                .unwrap_or_else(|| "0".into()),
        }
    }

    fn pending_callbacks(
        &self,
        username: &str,
        kind: CallbackKind,
        grants: &[u64],
    ) -> Vec<PendingDelivery> {
        let url = match kind {
            CallbackKind::Deauthorize => self.app.deauthorize_callback_url.clone(),
            CallbackKind::DataDeletion => self.app.data_deletion_callback_url.clone(),
        };
        let Some(url) = url else {
            return Vec::new();
        };
        let now = self.now();
        grants
            .iter()
            .filter_map(|id| self.grants.get(id))
            .map(|g| {
                let user_id = self.callback_user_id(username, g.platform);
                let (secret, platform) = match g.platform {
                    Platform::Instagram => (&self.app.instagram_app_secret, "instagram"),
                    Platform::Facebook => (&self.app.facebook_app_secret, "facebook"),
                };
                PendingDelivery {
                    kind,
                    account: username.to_owned(),
                    platform,
                    url: url.clone(),
                    signed_request: signed_request::sign(
                        secret,
                        &signed_request::payload(&user_id, now),
                    ),
                    user_id,
                }
            })
            .collect()
    }

    /// Applies the state change of an account event and returns the log entry's seq and the
    /// callbacks to POST (the caller sends them without holding the lock).
    pub(crate) fn begin_account_event(
        &mut self,
        username: &str,
        event: &AccountEvent,
    ) -> Result<(u64, Vec<PendingDelivery>), SimError> {
        self.account(username)?;
        let ig_app = self.app.instagram_app_id.clone();
        let fb_app = self.app.facebook_app_id.clone();
        let mut pending = Vec::new();
        let mut scope = None;
        let affected = match event {
            AccountEvent::PasswordChanged | AccountEvent::TwoFactorEnabled => {
                self.revoke_person(username, |_| Revocation {
                    subcode: Some(460),
                    message: PASSWORD_MESSAGE.into(),
                })
            }
            AccountEvent::TokenInvalidated => self.revoke_person(username, |_| Revocation {
                subcode: Some(467),
                message: INVALIDATED_MESSAGE.into(),
            }),
            AccountEvent::SuspiciousLogin => {
                let fb_user = self.accounts.get_mut(username).and_then(|a| {
                    a.checkpointed = true;
                    a.facebook_user.clone()
                });
                if let Some(u) = fb_user.and_then(|u| self.fb_users.get_mut(&u)) {
                    u.checkpointed = true;
                }
                let grants = self.person_grants(username);
                self.tokens
                    .values()
                    .filter(|t| grants.contains(&t.grant))
                    .count()
            }
            AccountEvent::AppRemoved => {
                let grants: Vec<u64> = self
                    .person_grants(username)
                    .into_iter()
                    .filter(|id| self.grants.get(id).is_some_and(|g| !g.removed))
                    .collect();
                pending = self.pending_callbacks(username, CallbackKind::Deauthorize, &grants);
                for id in &grants {
                    if let Some(g) = self.grants.get_mut(id) {
                        g.removed = true;
                    }
                }
                self.revoke_person(username, |platform| Revocation {
                    subcode: Some(458),
                    message: format!(
                        "Error validating access token: The user has not authorized application {}.",
                        match platform {
                            Platform::Instagram => &ig_app,
                            Platform::Facebook => &fb_app,
                        }
                    ),
                })
            }
            AccountEvent::DataDeletionRequested => {
                let grants = self.person_grants(username);
                pending = self.pending_callbacks(username, CallbackKind::DataDeletion, &grants);
                0
            }
            AccountEvent::UsernameChanged { username: new } => {
                self.rename_account(username, new)?;
                0
            }
            AccountEvent::SwitchedToPersonal | AccountEvent::SwitchedToProfessional => {
                if let Some(a) = self.accounts.get_mut(username) {
                    a.kind = if *event == AccountEvent::SwitchedToPersonal {
                        crate::account::AccountKind::Personal
                    } else {
                        crate::account::AccountKind::Business
                    };
                }
                0
            }
            AccountEvent::UnlinkedFromPage => {
                let account = self.accounts.get_mut(username);
                match account {
                    Some(a) if a.page.is_some() => {
                        a.page = None;
                        0
                    }
                    _ => {
                        return Err(SimError::Invalid(format!(
                            "@{username} is not linked to a Facebook Page"
                        )));
                    }
                }
            }
            AccountEvent::AccountDeleted => {
                if let Some(a) = self.accounts.get_mut(username) {
                    a.page = None;
                }
                self.revoke_person(username, |_| Revocation {
                    subcode: Some(467),
                    message: INVALIDATED_MESSAGE.into(),
                })
            }
            AccountEvent::PermissionRevoked { scope: s } => {
                if s.trim().is_empty() {
                    return Err(SimError::Invalid("`scope` must not be empty".into()));
                }
                scope = Some(s.clone());
                let grants = self.person_grants(username);
                let mut affected = 0;
                for id in grants {
                    if let Some(g) = self.grants.get_mut(&id)
                        && g.scopes.iter().any(|x| x == s)
                    {
                        g.scopes.retain(|x| x != s);
                        affected += self.tokens.values().filter(|t| t.grant == id).count();
                    }
                }
                affected
            }
        };
        let seq = self.events.len() as u64 + 1;
        self.events.push(EventRecord {
            seq,
            time: self.now(),
            account: Some(username.to_owned()),
            event: event.name().into(),
            scope,
            tokens_affected: affected,
            deliveries: Vec::new(),
            data_deletion: Vec::new(),
        });
        Ok((seq, pending))
    }

    /// Records the callback results of event `seq`.
    pub(crate) fn finish_event(
        &mut self,
        seq: u64,
        results: Vec<(PendingDelivery, DeliveryResult)>,
    ) -> EventOutcome {
        let now = self.now();
        let mut deliveries = Vec::new();
        for (p, r) in results {
            let d = Delivery {
                seq: self.deliveries.len() as u64 + 1,
                time: now,
                kind: p.kind,
                account: p.account,
                platform: p.platform.into(),
                url: p.url,
                user_id: p.user_id,
                signed_request: p.signed_request,
                status: r.status,
                body: r.body,
                error: r.error,
            };
            self.deliveries.push(d.clone());
            deliveries.push(d);
        }
        let record = match self.events.iter_mut().find(|e| e.seq == seq) {
            Some(e) => {
                for d in &deliveries {
                    e.deliveries.push(d.seq);
                    if d.kind == CallbackKind::DataDeletion {
                        e.data_deletion.push(match &d.body {
                            Some(body) => read_deletion_answer(body),
                            None => json!({"error": d.error.clone().unwrap_or_default()}),
                        });
                    }
                }
                e.clone()
            }
            None => EventRecord {
                seq,
                time: now,
                account: None,
                event: "unknown".into(),
                scope: None,
                tokens_affected: 0,
                deliveries: deliveries.iter().map(|d| d.seq).collect(),
                data_deletion: Vec::new(),
            },
        };
        EventOutcome { record, deliveries }
    }

    pub(crate) fn apply_global_event(&mut self, event: GlobalEvent) -> EventOutcome {
        let GlobalEvent::ApiBreakingChange = event;
        let affected = self
            .tokens
            .values()
            .filter(|t| t.epoch == self.api_epoch)
            .count();
        self.api_epoch += 1;
        let record = EventRecord {
            seq: self.events.len() as u64 + 1,
            time: self.now(),
            account: None,
            event: "api_breaking_change".into(),
            scope: None,
            tokens_affected: affected,
            deliveries: Vec::new(),
            data_deletion: Vec::new(),
        };
        self.events.push(record.clone());
        EventOutcome {
            record,
            deliveries: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_answers_in_both_formats() {
        let v = read_deletion_answer(r#"{"url":"https://x/y?id=1","confirmation_code":"abc1"}"#);
        assert_eq!(v["confirmation_code"], "abc1");
        let v = read_deletion_answer("{ url: 'https://x/y', confirmation_code: 'abc2' }");
        assert_eq!(v["confirmation_code"], "abc2");
        assert_eq!(v["format"], "unquoted");
        assert!(read_deletion_answer("ok").get("error").is_some());
    }

    #[test]
    fn events_parse_from_json() {
        let e: AccountEvent = serde_json::from_str(
            r#"{"event":"permission_revoked","scope":"instagram_business_basic"}"#,
        )
        .expect("parses");
        assert_eq!(
            e,
            AccountEvent::PermissionRevoked {
                scope: "instagram_business_basic".into()
            }
        );
        assert!(serde_json::from_str::<AccountEvent>(r#"{"event":"nope"}"#).is_err());
    }
}
