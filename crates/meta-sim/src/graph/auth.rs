//! Who is calling a Graph host: token lookup by prefix, every reason a token stops working
//! (expiry, revocation, checkpoint, removed app, data access, API break) and rate metering.

use serde_json::json;

use crate::event::LOGGED_OUT_MESSAGE;
use crate::graph::GraphError;
use crate::http::host::Host;
use crate::rate_limit::{CallContext, RateVerdict, Regime};
use crate::state::State;
use crate::token::{Platform, Token, TokenKind};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) token: String,
    pub(crate) kind: TokenKind,
    pub(crate) grant: u64,
    pub(crate) scopes: Vec<String>,
    /// Pages the Facebook user shared.
    pub(crate) pages: Vec<String>,
    /// Instagram tokens: the account. Page tokens: the Page's account.
    pub(crate) account: Option<String>,
    pub(crate) page_id: Option<String>,
    /// Facebook tokens: the Facebook user name.
    pub(crate) fb_user: Option<String>,
}

impl Caller {
    pub(crate) fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub(crate) fn is_user_token(&self) -> bool {
        matches!(self.kind, TokenKind::FbUserShort | TokenKind::FbUserLong)
    }
}

/// Data access of a Facebook grant ran out (wording chosen by the simulator).
pub(crate) const DATA_ACCESS_MESSAGE: &str = "Error validating access token: Data access has expired for this user. The user must log in to the app again to renew it.";

impl State {
    /// Why `token` does not work now, or `None` when it does.
    pub(crate) fn token_problem(&self, token: &Token) -> Option<GraphError> {
        let now = self.now();
        if token.epoch < self.api_epoch {
            return Some(GraphError::new(190, LOGGED_OUT_MESSAGE));
        }
        if let Some(r) = &token.revocation {
            let e = GraphError::new(190, r.message.clone());
            return Some(match r.subcode {
                Some(s) => e.with_subcode(s),
                None => e,
            });
        }
        let Some(grant) = self.grants.get(&token.grant) else {
            return Some(GraphError::cannot_parse());
        };
        if grant.removed {
            let app = match grant.platform {
                Platform::Instagram => &self.app.instagram_app_id,
                Platform::Facebook => &self.app.facebook_app_id,
            };
            return Some(
                GraphError::new(
                    190,
                    format!(
                        "Error validating access token: The user has not authorized application {app}."
                    ),
                )
                .with_subcode(458),
            );
        }
        let checkpoint = match grant.platform {
            Platform::Instagram => self
                .accounts
                .get(&grant.subject)
                .is_some_and(|a| a.checkpointed)
                .then_some("www.instagram.com"),
            Platform::Facebook => self
                .fb_users
                .get(&grant.subject)
                .is_some_and(|u| u.checkpointed)
                .then_some("www.facebook.com"),
        };
        if let Some(site) = checkpoint {
            let url = if site == "www.instagram.com" {
                "https://www.instagram.com/challenge/"
            } else {
                "https://www.facebook.com/checkpoint/"
            };
            return Some(
                GraphError::new(
                    190,
                    format!(
                        "Error validating access token: You cannot access the app till you log in to {site} and follow the instructions given."
                    ),
                )
                .with_subcode(459)
                .with_data(json!({"checkpoint_url": url})),
            );
        }
        if let Some(exp) = token.expires_at
            && now >= exp
        {
            return Some(GraphError::expired(exp, now));
        }
        let data_access_applies =
            grant.platform == Platform::Facebook || self.settings.ig_data_access_expiry;
        if data_access_applies
            && now
                >= grant
                    .consented_at
                    .saturating_add(self.settings.data_access_ttl_secs)
        {
            return Some(GraphError::new(190, DATA_ACCESS_MESSAGE));
        }
        None
    }

    /// Looks the token up for a Graph host and checks it still works.
    pub(crate) fn authenticate(
        &self,
        host: Host,
        token: Option<&str>,
    ) -> Result<Caller, GraphError> {
        let token_str = match token {
            Some(t) if !t.is_empty() => t,
            _ => return Err(GraphError::missing_token()),
        };
        let prefix_ok = match host {
            Host::GraphInstagram => token_str.starts_with("IG"),
            _ => token_str.starts_with("EA"),
        };
        if !prefix_ok {
            return Err(GraphError::cannot_parse());
        }
        let token = self
            .tokens
            .get(token_str)
            .ok_or_else(GraphError::cannot_parse)?;
        if let Some(problem) = self.token_problem(token) {
            return Err(problem);
        }
        let grant = self
            .grants
            .get(&token.grant)
            .ok_or_else(GraphError::cannot_parse)?;
        Ok(Caller {
            token: token_str.to_owned(),
            kind: token.kind,
            grant: grant.id,
            scopes: grant.scopes.clone(),
            pages: grant.pages.clone(),
            account: token.account.clone(),
            page_id: token.page_id.clone(),
            fb_user: (grant.platform == Platform::Facebook).then(|| grant.subject.clone()),
        })
    }

    /// Counts the call against the right budget and applies forced throttles.
    pub(crate) fn meter(&mut self, caller: &Caller) -> RateVerdict {
        let account_ig_id = caller
            .account
            .as_ref()
            .and_then(|a| self.accounts.get(a))
            .map(|a| a.ig_user_id.clone());
        let (regime, accounts) = match (caller.kind, account_ig_id) {
            (TokenKind::IgShort | TokenKind::IgLong | TokenKind::Page, Some(ig_user_id)) => (
                Regime::Account { ig_user_id },
                caller.account.iter().cloned().collect(),
            ),
            _ => (
                Regime::App,
                caller
                    .fb_user
                    .as_ref()
                    .map(|u| {
                        self.pages_of(u)
                            .into_iter()
                            .map(|a| a.username.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        };
        let ctx = CallContext {
            regime,
            accounts,
            page_token: caller.kind == TokenKind::Page,
        };
        let now = self.now();
        let (app, account) = (
            self.settings.app_calls_per_hour,
            self.settings.ig_account_calls_per_day,
        );
        self.limiter.record(&ctx, now, app, account)
    }

    /// Meters an app-token call (e.g. `debug_token` with `app_id|secret`).
    pub(crate) fn meter_app(&mut self) -> RateVerdict {
        let ctx = CallContext {
            regime: Regime::App,
            accounts: Vec::new(),
            page_token: false,
        };
        let now = self.now();
        let (app, account) = (
            self.settings.app_calls_per_hour,
            self.settings.ig_account_calls_per_day,
        );
        self.limiter.record(&ctx, now, app, account)
    }
}
