//! graph.facebook.com: the Facebook Login code exchange and `fb_exchange_token`,
//! `debug_token`, `/me`, `/me/accounts` with Page tokens, Page nodes, and the Instagram user
//! and media nodes reached through a Page.

use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::account::{Account, AccountKind};
use crate::graph::GraphError;
use crate::graph::auth::Caller;
use crate::graph::render::{self, FB_IG_USER_FIELDS, View, check_fields};
use crate::graph::versions;
use crate::http::host::Host;
use crate::http::instagram_graph::{children_edge, media_edge, media_object, requested_fields};
use crate::http::{MetaRequest, form, graph_error, graph_reply, json_response};
use crate::state::State;
use crate::token::{Platform, Token, TokenKind};

const PAGE_FIELDS: &[&str] = &[
    "id",
    "name",
    "access_token",
    "instagram_business_account",
    "category",
    "tasks",
    "link",
];
const DEFAULT_ACCOUNT_FIELDS: &[&str] = &["access_token", "category", "name", "id", "tasks"];
const FB_USER_FIELDS: &[&str] = &["id", "name"];

/// Query parameters, plus form fields for POSTs (the token endpoint accepts both).
fn params(req: &MetaRequest) -> Vec<(String, String)> {
    let mut p = req.query.clone();
    if req.method == Method::POST
        && let Ok(body) = form::parse_form(&req.content_type, &req.body)
    {
        p.extend(body);
    }
    p
}

fn get<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub(crate) fn handle(st: &mut State, req: &MetaRequest) -> Response {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["oauth", "access_token"] => {
            let result = oauth_token(st, req);
            match result {
                Ok(v) => json_response(axum::http::StatusCode::OK, &v, Vec::new()),
                Err(e) => graph_error(st, &e, Vec::new()),
            }
        }
        ["debug_token"] => debug_token(st, req),
        _ => data(st, req),
    }
}

fn token_reply(token: &str, ttl: i64) -> Value {
    json!({"access_token": token, "token_type": "bearer", "expires_in": ttl})
}

fn oauth_token(st: &mut State, req: &MetaRequest) -> Result<Value, GraphError> {
    let p = params(req);
    if get(&p, "client_id") != Some(st.app.facebook_app_id.as_str()) {
        return Err(GraphError::new(
            101,
            "Error validating application. Invalid application ID.",
        ));
    }
    if get(&p, "client_secret") != Some(st.app.facebook_app_secret.as_str()) {
        return Err(GraphError::bad_client_secret());
    }
    match get(&p, "grant_type") {
        Some("fb_exchange_token") => {
            let t = get(&p, "fb_exchange_token").ok_or_else(|| {
                GraphError::invalid_parameter("The parameter fb_exchange_token is required")
            })?;
            let caller = st.authenticate(Host::GraphFacebook, Some(t))?;
            if !caller.is_user_token() {
                return Err(GraphError::invalid_parameter(
                    "fb_exchange_token must be a user access token",
                ));
            }
            let ttl = st.settings.fb_long_token_ttl_secs;
            let token = st.issue_token(TokenKind::FbUserLong, caller.grant, None, None, Some(ttl));
            Ok(token_reply(&token, ttl))
        }
        Some("client_credentials") => Ok(json!({
            "access_token": format!("{}|{}", st.app.facebook_app_id, st.app.facebook_app_secret),
            "token_type": "bearer",
        })),
        None | Some("authorization_code") => {
            let code_str = get(&p, "code")
                .ok_or_else(|| GraphError::invalid_parameter("The parameter code is required"))?;
            let redirect_uri = get(&p, "redirect_uri").unwrap_or_default();
            let now = st.now();
            let code = st
                .codes
                .get(code_str)
                .filter(|c| c.platform == Platform::Facebook)
                .ok_or_else(|| GraphError::new(100, "Invalid verification code format."))?;
            if code.used {
                return Err(
                    GraphError::new(100, "This authorization code has been used.")
                        .with_subcode(36009),
                );
            }
            if now >= code.expires_at {
                return Err(GraphError::new(100, "This authorization code has expired.")
                    .with_subcode(36007));
            }
            if code.redirect_uri != redirect_uri {
                return Err(GraphError::new(
                    100,
                    "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
                )
                .with_subcode(36008));
            }
            let grant = code.grant;
            if let Some(c) = st.codes.get_mut(code_str) {
                c.used = true;
            }
            let ttl = st.settings.fb_short_token_ttl_secs;
            let token = st.issue_token(TokenKind::FbUserShort, grant, None, None, Some(ttl));
            Ok(token_reply(&token, ttl))
        }
        Some(other) => Err(GraphError::invalid_parameter(format!(
            "Unsupported grant_type: {other}"
        ))),
    }
}

fn granular_scopes(st: &State, scopes: &[String], pages: &[String]) -> Value {
    let ig_ids: Vec<String> = pages
        .iter()
        .filter_map(|p| st.account_by_page(p))
        .map(|a| a.ig_user_id.clone())
        .collect();
    Value::Array(
        scopes
            .iter()
            .map(|s| {
                if s.starts_with("pages_") {
                    json!({"scope": s, "target_ids": pages})
                } else if s.starts_with("instagram_") {
                    json!({"scope": s, "target_ids": ig_ids})
                } else {
                    json!({"scope": s})
                }
            })
            .collect(),
    )
}

fn debug_data(st: &State, token: &Token) -> Value {
    let Some(grant) = st.grants.get(&token.grant) else {
        return json!({"is_valid": false, "scopes": []});
    };
    let problem = st.token_problem(token);
    let data_access = grant
        .consented_at
        .saturating_add(st.settings.data_access_ttl_secs);
    let mut d = match grant.platform {
        Platform::Facebook => {
            let user_id = st
                .fb_users
                .get(&grant.subject)
                .map(|u| u.id.clone())
                .unwrap_or_default();
            json!({
                "app_id": st.app.facebook_app_id,
                "type": if token.kind == TokenKind::Page { "PAGE" } else { "USER" },
                "application": st.app.name,
                "data_access_expires_at": data_access,
                "expires_at": token.expires_at.unwrap_or(0),
                "is_valid": problem.is_none(),
                "issued_at": token.issued_at,
                "scopes": grant.scopes,
                "granular_scopes": granular_scopes(st, &grant.scopes, &grant.pages),
                "user_id": user_id,
            })
        }
        Platform::Instagram => {
            let user_id = st
                .accounts
                .get(&grant.subject)
                .map(|a| a.ig_user_id.clone())
                .unwrap_or_default();
            json!({
                "app_id": st.app.instagram_app_id,
                "type": "USER",
                "application": st.app.name,
                "data_access_expires_at": if st.settings.ig_data_access_expiry { data_access } else { 0 },
                "expires_at": token.expires_at.unwrap_or(0),
                "is_valid": problem.is_none(),
                "issued_at": token.issued_at,
                "scopes": grant.scopes,
                "granular_scopes": granular_scopes(st, &grant.scopes, &[]),
                "user_id": user_id,
            })
        }
    };
    if let Some(page) = &token.page_id {
        d["profile_id"] = json!(page);
    }
    if let Some(p) = problem {
        let mut e = json!({"code": p.code, "message": p.message});
        if let Some(s) = p.subcode {
            e["subcode"] = json!(s);
        }
        d["error"] = e;
    }
    d
}

/// `GET /debug_token?input_token=…&access_token=<app_id>|<app_secret>`.
fn debug_token(st: &mut State, req: &MetaRequest) -> Response {
    let app_token = format!("{}|{}", st.app.facebook_app_id, st.app.facebook_app_secret);
    let auth: Result<(), GraphError> = match req.token() {
        None | Some("") => Err(GraphError::invalid_parameter(
            "You must provide an app access token, or a user access token that is an owner or developer of the app",
        )),
        Some(t) if t == app_token => Ok(()),
        Some(t) if t.contains('|') => Err(GraphError::new(
            190,
            "Invalid OAuth access token signature.",
        )),
        Some(t) => st.authenticate(Host::GraphFacebook, Some(t)).map(|_| ()),
    };
    if let Err(e) = auth {
        return graph_error(st, &e, Vec::new());
    }
    let verdict = st.meter_app();
    let result = match verdict.error {
        Some(e) => Err(e),
        None => match req.param("input_token").filter(|t| !t.is_empty()) {
            None => Err(GraphError::invalid_parameter(
                "The parameter input_token is required",
            )),
            Some(input) => {
                let known = st.tokens.get(input).filter(|t| {
                    !t.kind.is_instagram() || st.settings.debug_token_accepts_ig_tokens
                });
                Ok(match known {
                    Some(token) => json!({ "data": debug_data(st, token) }),
                    None => json!({"data": {
                        "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
                        "is_valid": false,
                        "scopes": [],
                    }}),
                })
            }
        },
    };
    graph_reply(st, result, verdict.headers, req)
}

fn data(st: &mut State, req: &MetaRequest) -> Response {
    let caller = match st.authenticate(Host::GraphFacebook, req.token()) {
        Ok(c) => c,
        Err(e) => return graph_error(st, &e, Vec::new()),
    };
    let verdict = st.meter(&caller);
    let result = match verdict.error {
        Some(e) => Err(e),
        None => respond(st, req, &caller),
    };
    graph_reply(st, result, verdict.headers, req)
}

/// The Page token for `page_id` derived from the caller's user token (stable per pair).
fn page_token(st: &mut State, caller: &Caller, page_id: &str, account: &str) -> String {
    let key = (caller.token.clone(), page_id.to_owned());
    let now = st.now();
    if let Some(existing) = st.page_tokens.get(&key)
        && st
            .tokens
            .get(existing)
            .is_some_and(|t| t.expires_at.is_none_or(|e| now < e))
    {
        return existing.clone();
    }
    // From a long-lived user token a Page token never expires; from a short-lived one, an hour.
    let ttl = match caller.kind {
        TokenKind::FbUserLong => None,
        _ => Some(st.settings.page_token_short_ttl_secs),
    };
    let token = st.issue_token(
        TokenKind::Page,
        caller.grant,
        Some(account.to_owned()),
        Some(page_id.to_owned()),
        ttl,
    );
    st.page_tokens.insert(key, token.clone());
    token
}

fn page_node(
    st: &mut State,
    caller: &Caller,
    account: &Account,
    fields: &[&str],
) -> Result<Value, GraphError> {
    let Some(page) = account.page.clone() else {
        return Err(GraphError::no_object("", "get"));
    };
    let mut o = Map::new();
    for f in fields {
        let value = match *f {
            "id" => json!(page.id),
            "name" => json!(page.name),
            "access_token" => {
                if caller.kind == TokenKind::Page {
                    json!(caller.token)
                } else {
                    json!(page_token(st, caller, &page.id, &account.username))
                }
            }
            "instagram_business_account" if account.kind != AccountKind::Personal => {
                json!({"id": account.ig_user_id})
            }
            "instagram_business_account" => continue,
            "category" => json!("Brand"),
            "tasks" => json!([
                "ANALYZE",
                "ADVERTISE",
                "MODERATE",
                "CREATE_CONTENT",
                "MANAGE"
            ]),
            "link" => json!(format!("https://www.facebook.com/{}", page.id)),
            _ => continue,
        };
        o.insert((*f).to_owned(), value);
    }
    o.entry("id").or_insert_with(|| json!(page.id));
    Ok(Value::Object(o))
}

/// Page-style field list (flat names only).
fn flat_fields(
    req: &MetaRequest,
    allowed: &[&str],
    default: &[&str],
    node: &str,
) -> Result<Vec<String>, GraphError> {
    let fields = requested_fields(req)?;
    if fields.is_empty() {
        return Ok(default.iter().map(|s| (*s).to_owned()).collect());
    }
    for f in &fields {
        if !allowed.contains(&f.name.as_str()) || f.nested.is_some() {
            return Err(GraphError::nonexisting_field(&f.name, node));
        }
    }
    Ok(fields.into_iter().map(|f| f.name).collect())
}

/// Whether the caller may read the Instagram account behind a Page.
fn ig_access(caller: &Caller, account: &Account, id: &str) -> Result<(), GraphError> {
    let Some(page) = &account.page else {
        return Err(GraphError::no_object(id, "get"));
    };
    let reachable = match caller.kind {
        TokenKind::Page => caller.page_id.as_deref() == Some(page.id.as_str()),
        _ => caller.pages.contains(&page.id),
    };
    if !reachable {
        return Err(GraphError::no_object(id, "get"));
    }
    if account.kind == AccountKind::Personal
        || !caller.has("instagram_basic")
        || !caller.has("pages_read_engagement")
    {
        return Err(GraphError::no_permission());
    }
    Ok(())
}

fn user_node(st: &State, req: &MetaRequest, caller: &Caller) -> Result<Value, GraphError> {
    let fields = flat_fields(req, FB_USER_FIELDS, &["name", "id"], "User")?;
    let user = caller
        .fb_user
        .as_ref()
        .and_then(|u| st.fb_users.get(u))
        .ok_or_else(GraphError::cannot_parse)?;
    let mut o = Map::new();
    for f in &fields {
        match f.as_str() {
            "name" => o.insert("name".into(), json!(user.name)),
            _ => o.insert("id".into(), json!(user.id)),
        };
    }
    o.entry("id").or_insert_with(|| json!(user.id));
    Ok(Value::Object(o))
}

fn respond(st: &mut State, req: &MetaRequest, caller: &Caller) -> Result<Value, GraphError> {
    if req.method != Method::GET {
        return Err(GraphError::unsupported_method(req.method.as_str()));
    }
    let base = req.base.clone();
    let view = View {
        base: &base,
        host: Host::GraphFacebook,
        version: versions::served(st, req.version.as_deref()),
    };
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let page_account = |st: &State, id: &str| st.account_by_page(id).cloned();
    match segs.as_slice() {
        ["me"] if caller.kind == TokenKind::Page => {
            let page_id = caller.page_id.clone().unwrap_or_default();
            let account =
                page_account(st, &page_id).ok_or_else(|| GraphError::no_object("me", "get"))?;
            let fields = flat_fields(req, PAGE_FIELDS, &["name", "id"], "Page")?;
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            page_node(st, caller, &account, &refs)
        }
        ["me"] => user_node(st, req, caller),
        ["me", "accounts"] => {
            if caller.kind == TokenKind::Page {
                return Err(GraphError::nonexisting_field("accounts", "Page"));
            }
            if !caller.has("pages_show_list") {
                return Err(GraphError::permissions_error("pages_show_list"));
            }
            let fields = flat_fields(req, PAGE_FIELDS, DEFAULT_ACCOUNT_FIELDS, "Page")?;
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            let accounts: Vec<Account> = caller
                .pages
                .iter()
                .filter_map(|p| page_account(st, p))
                .collect();
            let mut data = Vec::new();
            for a in &accounts {
                data.push(page_node(st, caller, a, &refs)?);
            }
            let ids: Vec<String> = accounts
                .iter()
                .filter_map(|a| a.page.as_ref().map(|p| p.id.clone()))
                .collect();
            let mut out = json!({ "data": data });
            if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
                use base64::Engine;
                let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                out["paging"] = json!({"cursors": {"before": enc(first), "after": enc(last)}});
            }
            Ok(out)
        }
        [id] => {
            if let Some(account) = page_account(st, id) {
                let page_id = account
                    .page
                    .as_ref()
                    .map(|p| p.id.clone())
                    .unwrap_or_default();
                let allowed = match caller.kind {
                    TokenKind::Page => caller.page_id.as_deref() == Some(page_id.as_str()),
                    _ => caller.pages.contains(&page_id),
                };
                if !allowed {
                    return Err(GraphError::no_object(id, "get"));
                }
                let fields = flat_fields(req, PAGE_FIELDS, &["name", "id"], "Page")?;
                let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                return page_node(st, caller, &account, &refs);
            }
            if let Some(account) = st.accounts.values().find(|a| a.ig_user_id == *id).cloned() {
                ig_access(caller, &account, id)?;
                let fields = requested_fields(req)?;
                check_fields(
                    &fields,
                    &versions::user_fields(st, FB_IG_USER_FIELDS),
                    "IGUser",
                )?;
                return Ok(render::user_node(st, &view, &account, &fields));
            }
            if let Some(found) = st.find_media(id) {
                let owner = st
                    .accounts
                    .get(&found.parent().owner)
                    .ok_or_else(|| GraphError::no_object(id, "get"))?;
                ig_access(caller, owner, id)?;
                return media_object(st, req, &found, &view);
            }
            if let Some(user) = caller.fb_user.as_ref().and_then(|u| st.fb_users.get(u))
                && user.id == *id
                && caller.is_user_token()
            {
                return user_node(st, req, caller);
            }
            Err(GraphError::no_object(id, "get"))
        }
        [id, "media"] => {
            let account = st
                .accounts
                .values()
                .find(|a| a.ig_user_id == *id)
                .cloned()
                .ok_or_else(|| GraphError::no_object(id, "get"))?;
            ig_access(caller, &account, id)?;
            media_edge(st, req, caller, &account, &view)
        }
        [id, "children"] => {
            let found = st
                .find_media(id)
                .ok_or_else(|| GraphError::no_object(id, "get"))?;
            let owner = st
                .accounts
                .get(&found.parent().owner)
                .ok_or_else(|| GraphError::no_object(id, "get"))?;
            ig_access(caller, owner, id)?;
            children_edge(st, req, &found, &view)
        }
        _ => Err(GraphError::unknown_path(&req.rest)),
    }
}
