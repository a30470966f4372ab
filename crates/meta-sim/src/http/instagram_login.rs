//! Business Login for Instagram's authorization window (`www.instagram.com/oauth/authorize`,
//! alias `api.instagram.com/oauth/authorize`): request validation, the login form, the
//! consent form, and the redirect back with `code` (+ `#_`) or `error=access_denied`.

use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::account::AccountKind;
use crate::http::pages::{
    self, Hidden, InstagramConsent, InstagramLogin, ProfessionalOnly, ScopeRow,
};
use crate::http::{MetaRequest, form, html_response, redirect, with_ticket_header};
use crate::settings::PersonalAccountLogin;
use crate::state::State;
use crate::token::{AuthorizeRequest, Platform};

/// Instagram Login permissions and how the consent page describes them.
const SCOPES: &[(&str, &str)] = &[
    ("instagram_business_basic", "Access your profile and media"),
    (
        "instagram_business_content_publish",
        "Publish content to your account",
    ),
    (
        "instagram_business_manage_messages",
        "Access and manage your messages",
    ),
    (
        "instagram_business_manage_comments",
        "Access and manage comments on your posts",
    ),
    (
        "instagram_business_manage_insights",
        "Access insights about your account",
    ),
];

/// Old scope names, refused from 2025-01-27 (accepted and renamed before that date).
const OLD_SCOPES: &[&str] = &[
    "business_basic",
    "business_content_publish",
    "business_manage_comments",
    "business_manage_messages",
];

/// 2025-01-27T00:00:00Z.
const OLD_SCOPES_CUTOFF: i64 = 1_737_936_000;

/// The authorize parameters carried through the forms as hidden fields.
const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "enable_fb_login",
    "force_authentication",
];

pub(crate) const REQUIRED_SCOPE: &str = "instagram_business_basic";

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Splits a scope list given as commas and/or spaces.
pub(crate) fn split_scopes(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(|c: char| c == ',' || c.is_whitespace()) {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Appends query parameters to a redirect URI.
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

fn error_page(message: &str, hint: Option<&str>) -> Response {
    html_response(
        StatusCode::BAD_REQUEST,
        pages::instagram_error(message, hint.map(str::to_owned)),
    )
}

fn refusal(message: &str, hint: Option<&str>) -> Box<Response> {
    Box::new(error_page(message, hint))
}

/// Checks client id, redirect URI, response type and scopes.
fn validate(st: &State, pairs: &[(String, String)]) -> Result<AuthorizeRequest, Box<Response>> {
    let client_id = field(pairs, "client_id").unwrap_or_default();
    if client_id != st.app.instagram_app_id {
        let hint = (client_id == st.app.facebook_app_id).then_some(
            "This is the Facebook App ID. Business Login for Instagram needs the Instagram App ID.",
        );
        return Err(refusal("Invalid platform app", hint));
    }
    let redirect_uri = field(pairs, "redirect_uri").unwrap_or_default();
    if !st.app.redirect_allowed(redirect_uri) {
        return Err(refusal(
            "Invalid redirect_uri",
            Some("The redirect_uri must exactly match one of the app's Valid OAuth Redirect URIs."),
        ));
    }
    let response_type = field(pairs, "response_type").unwrap_or_default();
    if response_type != "code" {
        return Err(refusal(
            &format!("Invalid response_type: {response_type}"),
            Some("Business Login for Instagram supports response_type=code only."),
        ));
    }
    let requested = split_scopes(field(pairs, "scope").unwrap_or_default());
    if requested.is_empty() {
        return Err(refusal("Invalid scope: []", None));
    }
    let old_refused = st.now() >= OLD_SCOPES_CUTOFF;
    let mut scopes = Vec::new();
    for s in &requested {
        if OLD_SCOPES.contains(&s.as_str()) {
            if old_refused {
                return Err(refusal(
                    &format!("Invalid scope: [{s}]"),
                    Some(
                        "The business_* scope names were deprecated on January 27, 2025. Use instagram_business_basic and the other instagram_business_* scopes.",
                    ),
                ));
            }
            scopes.push(format!("instagram_{s}"));
        } else if SCOPES.iter().any(|(n, _)| n == s) {
            scopes.push(s.clone());
        } else {
            return Err(refusal(&format!("Invalid scope: [{s}]"), None));
        }
    }
    if !scopes.iter().any(|s| s == REQUIRED_SCOPE) {
        return Err(refusal(
            &format!("Invalid scope: [{}]", requested.join(",")),
            Some("The scope must include instagram_business_basic."),
        ));
    }
    scopes.dedup();
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: field(pairs, "state").map(str::to_owned),
        scopes,
        config_id: None,
    })
}

fn hidden_fields(pairs: &[(String, String)]) -> Vec<Hidden> {
    CARRIED
        .iter()
        .filter_map(|name| {
            field(pairs, name).map(|v| Hidden {
                name: (*name).to_owned(),
                value: v.to_owned(),
            })
        })
        .collect()
}

fn login_page(
    st: &State,
    req: &MetaRequest,
    pairs: &[(String, String)],
    error: Option<&str>,
    username: &str,
) -> Response {
    html_response(
        StatusCode::OK,
        pages::render(&InstagramLogin {
            action: req.full_path.clone(),
            app_name: st.app.name.clone(),
            hidden: hidden_fields(pairs),
            error: error.map(str::to_owned),
            username: username.to_owned(),
        }),
    )
}

/// `GET`: show the login form. `POST`: handle the login or the consent form.
pub(crate) fn authorize(st: &mut State, req: &MetaRequest) -> Response {
    match req.method {
        Method::GET => match validate(st, &req.query) {
            Ok(_) => login_page(st, req, &req.query, None, ""),
            Err(resp) => *resp,
        },
        Method::POST => {
            let pairs = match form::parse_form(&req.content_type, &req.body) {
                Ok(p) => p,
                Err(e) => return error_page(&format!("Invalid request: {e}"), None),
            };
            if field(&pairs, "step") == Some("consent") {
                consent_submit(st, &pairs)
            } else {
                login_submit(st, req, &pairs)
            }
        }
        _ => html_response(
            StatusCode::METHOD_NOT_ALLOWED,
            pages::instagram_error("Unsupported method", None),
        ),
    }
}

fn login_submit(st: &mut State, req: &MetaRequest, pairs: &[(String, String)]) -> Response {
    let request = match validate(st, pairs) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let username = field(pairs, "username")
        .unwrap_or_default()
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    let password = field(pairs, "password").unwrap_or_default();
    let Some(account) = st.accounts.get(&username) else {
        return login_page(
            st,
            req,
            pairs,
            Some(
                "The username you entered doesn't belong to an account. Please check your username and try again.",
            ),
            &username,
        );
    };
    if account.password != password {
        return login_page(
            st,
            req,
            pairs,
            Some("Sorry, your password was incorrect. Please double-check your password."),
            &username,
        );
    }
    if !st.app.allows(&[&username]) {
        return error_page(
            "Insufficient developer role",
            Some("The app is in development mode and this account is not one of its testers."),
        );
    }
    let personal = account.kind == AccountKind::Personal;
    // Logging in is how a person clears a checkpoint.
    let was_checkpointed = account.checkpointed;
    if let Some(a) = st.accounts.get_mut(&username) {
        a.checkpointed = false;
    }
    let ticket = st.issue_ticket(Platform::Instagram, &username, request.clone());
    let action = req.full_path.clone();
    let resp = if personal && st.settings.personal_account_login == PersonalAccountLogin::Refused {
        html_response(
            StatusCode::OK,
            pages::render(&ProfessionalOnly {
                action,
                app_name: st.app.name.clone(),
                username: username.clone(),
                ticket: ticket.clone(),
            }),
        )
    } else {
        let scopes = request
            .scopes
            .iter()
            .map(|s| ScopeRow {
                name: s.clone(),
                description: SCOPES
                    .iter()
                    .find(|(n, _)| n == s)
                    .map(|(_, d)| (*d).to_owned())
                    .unwrap_or_default(),
                required: s == REQUIRED_SCOPE,
            })
            .collect();
        html_response(
            StatusCode::OK,
            pages::render(&InstagramConsent {
                action,
                app_name: st.app.name.clone(),
                username: username.clone(),
                ticket: ticket.clone(),
                scopes,
                notice: was_checkpointed.then(|| {
                    "We noticed unusual activity on your account. You confirmed it's you, so your account is unlocked.".to_owned()
                }),
            }),
        )
    };
    with_ticket_header(resp, &ticket)
}

fn consent_submit(st: &mut State, pairs: &[(String, String)]) -> Response {
    let ticket_id = field(pairs, "login_ticket").unwrap_or_default().to_owned();
    let ticket = match st.take_ticket(Platform::Instagram, &ticket_id) {
        Some(t) => t,
        _ => {
            return error_page(
                "Invalid login_ticket",
                Some(
                    "The login expired (10 minutes) or was already used. Start again from the app.",
                ),
            );
        }
    };
    let request = ticket.request;
    let state = request.state.as_deref();
    match field(pairs, "action") {
        Some("cancel") => {
            let mut params = vec![
                ("error", "access_denied"),
                ("error_reason", "user_denied"),
                ("error_description", "The user denied your request."),
            ];
            if let Some(s) = state {
                params.push(("state", s));
            }
            redirect(&append_query(&request.redirect_uri, &params))
        }
        Some("allow") => {
            let personal = st
                .accounts
                .get(&ticket.subject)
                .is_some_and(|a| a.kind == AccountKind::Personal);
            if personal && st.settings.personal_account_login == PersonalAccountLogin::Refused {
                return error_page("Only professional accounts can use this app", None);
            }
            let posted: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str())
                .collect();
            // No `scope` fields at all: a plain HTTP client accepting everything.
            let granted: Vec<String> = request
                .scopes
                .iter()
                .filter(|s| {
                    posted.is_empty() || posted.contains(&s.as_str()) || *s == REQUIRED_SCOPE
                })
                .cloned()
                .collect();
            let grant = st.upsert_grant(Platform::Instagram, &ticket.subject, granted, Vec::new());
            let code = st.issue_code(
                Platform::Instagram,
                grant,
                &request.client_id,
                &request.redirect_uri,
            );
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = state {
                params.push(("state", s));
            }
            redirect(&format!(
                "{}#_",
                append_query(&request.redirect_uri, &params)
            ))
        }
        _ => error_page("Invalid action: expected allow or cancel", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_commas_and_spaces() {
        assert_eq!(
            split_scopes(
                "instagram_business_basic, instagram_business_manage_comments instagram_business_basic"
            ),
            [
                "instagram_business_basic",
                "instagram_business_manage_comments"
            ]
        );
    }

    #[test]
    fn query_appends_to_existing() {
        assert_eq!(
            append_query("http://a/cb", &[("code", "x y")]),
            "http://a/cb?code=x+y"
        );
        assert_eq!(
            append_query("http://a/cb?k=1", &[("state", "s")]),
            "http://a/cb?k=1&state=s"
        );
    }
}
