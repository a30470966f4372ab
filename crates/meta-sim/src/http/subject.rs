//! Who a Meta-host request is about, for the request log: the Instagram account and the token
//! family named by the credential it carries (access token, exchange token, input token or
//! authorization code). Reads the state only, whether or not the credential still works, and
//! never hands the credential itself on.

use axum::http::Method;

use crate::account::Account;
use crate::http::{MetaRequest, form};
use crate::state::State;
use crate::token::{APP_FAMILY, Grant, Platform, Token};

/// The account and token family of one request; both `None` when nothing resolves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    /// Instagram username.
    pub(crate) account: Option<String>,
    /// `instagram_user`, `facebook_user`, `facebook_page` or `app`.
    pub(crate) family: Option<&'static str>,
}

/// Resolves the credential of `req` against the state, before the request is handled (so a
/// code the request spends still names its account).
pub(crate) fn of(st: &State, req: &MetaRequest) -> Subject {
    // The token endpoints also take their parameters as a POSTed form.
    let form = if req.method == Method::POST {
        form::parse_form(&req.content_type, &req.body).unwrap_or_default()
    } else {
        Vec::new()
    };
    let param = |name: &str| {
        req.param(name)
            .or_else(|| {
                form.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            })
            .filter(|v| !v.is_empty())
    };

    if let Some(presented) = param("access_token").or(req.bearer.as_deref()) {
        let app_token = format!("{}|{}", st.app.facebook_app_id, st.app.facebook_app_secret);
        if presented == app_token {
            // `debug_token`: the call is about the inspected token's account.
            let account = param("input_token")
                .and_then(|t| st.tokens.get(t))
                .and_then(|t| token_account(st, t, req));
            return Subject {
                account,
                family: Some(APP_FAMILY),
            };
        }
        if let Some(token) = st.tokens.get(presented) {
            return token_subject(st, token, req);
        }
    }
    if let Some(token) = param("fb_exchange_token").and_then(|t| st.tokens.get(t)) {
        return token_subject(st, token, req);
    }
    if let Some(code) = param("code").and_then(|c| st.codes.get(c)) {
        return Subject {
            account: st
                .grants
                .get(&code.grant)
                .and_then(|g| grant_account(st, g, req)),
            family: Some(code.platform.user_family()),
        };
    }
    Subject::default()
}

fn token_subject(st: &State, token: &Token, req: &MetaRequest) -> Subject {
    Subject {
        account: token_account(st, token, req),
        family: Some(token.kind.family()),
    }
}

/// Instagram and Page tokens name their account; Facebook user tokens go through the grant.
fn token_account(st: &State, token: &Token, req: &MetaRequest) -> Option<String> {
    match &token.account {
        Some(account) => Some(account.clone()),
        None => st
            .grants
            .get(&token.grant)
            .and_then(|g| grant_account(st, g, req)),
    }
}

/// An Instagram grant's subject is the account. A Facebook grant reaches the accounts of the
/// Pages it shares: the one the path names (by Instagram user id, Page id or media id), else
/// the only one.
fn grant_account(st: &State, grant: &Grant, req: &MetaRequest) -> Option<String> {
    if grant.platform == Platform::Instagram {
        return Some(grant.subject.clone());
    }
    let shared: Vec<&Account> = grant
        .pages
        .iter()
        .filter_map(|page| st.account_by_page(page))
        .collect();
    let named = req.segments.iter().find_map(|segment| {
        let owner = st.find_media(segment).map(|m| m.parent().owner.clone());
        shared.iter().find(|a| {
            a.ig_user_id == *segment
                || a.page.as_ref().is_some_and(|p| p.id == *segment)
                || owner.as_deref() == Some(a.username.as_str())
        })
    });
    match (named, shared.as_slice()) {
        (Some(account), _) | (None, [account]) => Some(account.username.clone()),
        _ => None,
    }
}
