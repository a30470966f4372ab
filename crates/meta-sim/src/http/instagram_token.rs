//! Instagram Login tokens: the code exchange on api.instagram.com (flat error shape), the
//! short→long exchange and the GET-only refresh on graph.instagram.com (Graph errors).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::graph::GraphError;
use crate::http::host::Host;
use crate::http::instagram_login::REQUIRED_SCOPE;
use crate::http::{MetaRequest, form, graph_error, json_response};
use crate::settings::{CodeExchangeShape, PermissionsType, UserIdSource, UserIdType};
use crate::state::State;
use crate::token::{Platform, TokenKind};

/// api.instagram.com's own error shape.
fn flat_error(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error_type": "OAuthException", "code": 400, "error_message": message}),
        Vec::new(),
    )
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `POST api.instagram.com/oauth/access_token`: code → short-lived token.
pub(crate) fn code_exchange(st: &mut State, req: &MetaRequest) -> Response {
    if req.method != Method::POST {
        return flat_error(&format!(
            "Unsupported request - method type: {}",
            req.method.as_str().to_ascii_lowercase()
        ));
    }
    let pairs = match form::parse_form(&req.content_type, &req.body) {
        Ok(p) => p,
        Err(e) => return flat_error(&format!("Invalid request body: {e}")),
    };
    let Some(client_id) = field(&pairs, "client_id") else {
        return flat_error("Missing required field client_id");
    };
    if client_id != st.app.instagram_app_id {
        return flat_error("Invalid platform app");
    }
    if field(&pairs, "client_secret") != Some(st.app.instagram_app_secret.as_str()) {
        return flat_error("Error validating client secret.");
    }
    match field(&pairs, "grant_type") {
        Some("authorization_code") => {}
        Some(other) => return flat_error(&format!("Unsupported grant_type: {other}")),
        None => return flat_error("Missing required field grant_type"),
    }
    let Some(redirect_uri) = field(&pairs, "redirect_uri") else {
        return flat_error("Missing required field redirect_uri");
    };
    let Some(code_str) = field(&pairs, "code") else {
        return flat_error("Missing required field code");
    };
    let now = st.now();
    let Some(code) = st
        .codes
        .get(code_str)
        .filter(|c| c.platform == Platform::Instagram)
    else {
        return flat_error("Invalid authorization code");
    };
    if code.used {
        return flat_error("This authorization code has been used");
    }
    if now >= code.expires_at {
        return flat_error("This authorization code has expired");
    }
    if code.client_id != client_id {
        return flat_error("Invalid authorization code");
    }
    if code.redirect_uri != redirect_uri {
        return flat_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    let grant_id = code.grant;
    if let Some(c) = st.codes.get_mut(code_str) {
        c.used = true;
    }
    let Some(grant) = st.grants.get(&grant_id).cloned() else {
        return flat_error("Invalid authorization code");
    };
    let Some(account) = st.accounts.get(&grant.subject).cloned() else {
        return flat_error("Invalid authorization code");
    };
    let ttl = st.settings.ig_short_token_ttl_secs;
    let token = st.issue_token(
        TokenKind::IgShort,
        grant_id,
        Some(account.username.clone()),
        None,
        Some(ttl),
    );
    let id = match st.settings.user_id_source {
        UserIdSource::Professional => account.ig_user_id,
        UserIdSource::AppScoped => account.app_scoped_id,
    };
    let user_id = match st.settings.user_id_type {
        UserIdType::String => json!(id),
        UserIdType::Number => id.parse::<u64>().map(|n| json!(n)).unwrap_or(json!(id)),
    };
    let permissions = match st.settings.permissions_type {
        PermissionsType::String => json!(grant.scopes.join(",")),
        PermissionsType::Array => json!(grant.scopes),
    };
    let body = json!({"access_token": token, "user_id": user_id, "permissions": permissions});
    let body = match st.settings.code_exchange_shape {
        CodeExchangeShape::Flat => body,
        CodeExchangeShape::Wrapped => json!({ "data": [body] }),
    };
    json_response(StatusCode::OK, &body, Vec::new())
}

fn token_reply(token: &str, ttl: i64) -> Value {
    json!({"access_token": token, "token_type": "bearer", "expires_in": ttl})
}

/// `GET graph.instagram.com/access_token?grant_type=ig_exchange_token`: short → long-lived.
pub(crate) fn exchange(st: &mut State, req: &MetaRequest) -> Response {
    let result = exchange_result(st, req);
    reply(st, result)
}

fn reply(st: &mut State, result: Result<Value, GraphError>) -> Response {
    match result {
        Ok(v) => json_response(StatusCode::OK, &v, Vec::new()),
        Err(e) => graph_error(st, &e, Vec::new()),
    }
}

fn exchange_result(st: &mut State, req: &MetaRequest) -> Result<Value, GraphError> {
    if req.method != Method::GET {
        return Err(GraphError::unsupported_method(req.method.as_str()));
    }
    if !st.settings.ig_exchange_supported {
        // What Postiz reports for Business Login tokens.
        return Err(GraphError::unsupported_method("get").with_kind("IGApiException"));
    }
    match req.param("grant_type") {
        Some("ig_exchange_token") => {}
        other => {
            return Err(GraphError::invalid_parameter(format!(
                "Unsupported grant_type: {}",
                other.unwrap_or_default()
            )));
        }
    }
    if req.param("client_secret") != Some(st.app.instagram_app_secret.as_str()) {
        return Err(GraphError::bad_client_secret());
    }
    let caller = st.authenticate(Host::GraphInstagram, req.token())?;
    let ttl = st.settings.ig_long_token_ttl_secs;
    let token = st.issue_token(
        TokenKind::IgLong,
        caller.grant,
        caller.account.clone(),
        None,
        Some(ttl),
    );
    Ok(token_reply(&token, ttl))
}

/// `GET graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token`.
pub(crate) fn refresh(st: &mut State, req: &MetaRequest) -> Response {
    let result = refresh_result(st, req);
    reply(st, result)
}

fn refresh_result(st: &mut State, req: &MetaRequest) -> Result<Value, GraphError> {
    if req.method != Method::GET {
        return Err(GraphError::unsupported_method(req.method.as_str()));
    }
    match req.param("grant_type") {
        Some("ig_refresh_token") => {}
        other => {
            return Err(GraphError::invalid_parameter(format!(
                "Unsupported grant_type: {}",
                other.unwrap_or_default()
            )));
        }
    }
    let caller = st.authenticate(Host::GraphInstagram, req.token())?;
    if caller.kind != TokenKind::IgLong {
        return Err(GraphError::invalid_parameter(
            "Short-lived access tokens cannot be refreshed. Exchange it for a long-lived token first (grant_type=ig_exchange_token).",
        ));
    }
    if !caller.has(REQUIRED_SCOPE) {
        return Err(GraphError::no_permission());
    }
    let now = st.now();
    let min_age = st.settings.refresh_min_age_secs;
    let refreshed_at = st
        .tokens
        .get(&caller.token)
        .map(|t| t.refreshed_at)
        .unwrap_or(now);
    if now - refreshed_at < min_age {
        return Err(GraphError::invalid_parameter(format!(
            "The access token is too new to be refreshed. Long-lived access tokens can be refreshed once they are at least {} hours old.",
            min_age / 3_600
        )));
    }
    let ttl = st.settings.ig_long_token_ttl_secs;
    if st.settings.refresh_returns_new_token {
        // The old string stays valid until its own expiry.
        let token = st.issue_token(
            TokenKind::IgLong,
            caller.grant,
            caller.account,
            None,
            Some(ttl),
        );
        Ok(token_reply(&token, ttl))
    } else {
        if let Some(t) = st.tokens.get_mut(&caller.token) {
            t.refreshed_at = now;
            t.expires_at = Some(now.saturating_add(ttl));
        }
        Ok(token_reply(&caller.token, ttl))
    }
}
