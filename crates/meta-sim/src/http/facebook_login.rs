//! Facebook Login's dialog (`www.facebook.com/vNN.N/dialog/oauth`): the Facebook user's login
//! form, the consent step choosing Pages and permissions, and the redirect back with
//! `code` (+ `#_=_`) or `error=access_denied`.

use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::http::instagram_login::{append_query, split_scopes};
use crate::http::pages::{self, FacebookConsent, FacebookLogin, Hidden, PageRow, ScopeRow};
use crate::http::{MetaRequest, form, html_response, redirect, with_ticket_header};
use crate::state::State;
use crate::token::{AuthorizeRequest, Platform};

/// Facebook Login permissions and how the consent page describes them.
const SCOPES: &[(&str, &str)] = &[
    ("public_profile", "Your name and profile picture"),
    ("email", "Your email address"),
    ("pages_show_list", "Show a list of the Pages you manage"),
    ("pages_read_engagement", "Read content posted on your Pages"),
    (
        "pages_manage_metadata",
        "Manage accounts, settings and webhooks for your Pages",
    ),
    (
        "instagram_basic",
        "Access profile and posts from the Instagram accounts connected to your Pages",
    ),
    (
        "instagram_manage_insights",
        "Access insights for the Instagram accounts connected to your Pages",
    ),
    (
        "instagram_manage_comments",
        "Manage comments for the Instagram accounts connected to your Pages",
    ),
    (
        "instagram_content_publish",
        "Publish content to the Instagram accounts connected to your Pages",
    ),
    ("business_management", "Manage your business"),
    ("ads_read", "Access your ads reports"),
    ("ads_management", "Manage your ads"),
];

/// What a Facebook Login for Business configuration (`config_id`) grants, all required.
const CONFIG_SCOPES: &[&str] = &[
    "public_profile",
    "pages_show_list",
    "pages_read_engagement",
    "instagram_basic",
    "business_management",
];

const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "config_id",
    "response_type",
];

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn error_page(message: &str) -> Response {
    html_response(StatusCode::BAD_REQUEST, pages::facebook_error(message))
}

fn refusal(message: &str) -> Box<Response> {
    Box::new(error_page(message))
}

fn validate(st: &State, pairs: &[(String, String)]) -> Result<AuthorizeRequest, Box<Response>> {
    let client_id = field(pairs, "client_id").unwrap_or_default();
    if client_id != st.app.facebook_app_id {
        return Err(refusal(
            "Invalid App ID: The provided app ID does not look like a valid app ID.",
        ));
    }
    let redirect_uri = field(pairs, "redirect_uri").unwrap_or_default();
    if !st.app.redirect_allowed(redirect_uri) {
        return Err(refusal(
            "URL blocked: This redirect failed because the redirect URI is not white-listed in the app's client OAuth settings. Make sure that the client and web OAuth logins are on and add all your app domains as valid OAuth redirect URIs.",
        ));
    }
    match field(pairs, "response_type") {
        None | Some("code") => {}
        Some(other) => {
            return Err(refusal(&format!(
                "Unsupported response_type: {other}. The simulator supports response_type=code."
            )));
        }
    }
    let config_id = field(pairs, "config_id")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let mut scopes: Vec<String> = vec!["public_profile".into()];
    if config_id.is_some() {
        scopes = CONFIG_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    } else {
        let requested = split_scopes(field(pairs, "scope").unwrap_or_default());
        let unknown: Vec<&String> = requested
            .iter()
            .filter(|s| !SCOPES.iter().any(|(n, _)| n == s))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            return Err(refusal(&format!(
                "Invalid Scopes: {}. This message is only shown to developers. Users of your app will ignore these permissions if present. Please read the documentation for valid permissions at: https://developers.facebook.com/docs/facebook-login/permissions",
                names.join(", ")
            )));
        }
        for s in requested {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: field(pairs, "state").map(str::to_owned),
        scopes,
        config_id,
    })
}

fn login_page(
    st: &State,
    req: &MetaRequest,
    pairs: &[(String, String)],
    error: Option<&str>,
    email: &str,
) -> Response {
    let hidden = CARRIED
        .iter()
        .filter_map(|n| {
            field(pairs, n).map(|v| Hidden {
                name: (*n).to_owned(),
                value: v.to_owned(),
            })
        })
        .collect();
    html_response(
        StatusCode::OK,
        pages::render(&FacebookLogin {
            action: req.full_path.clone(),
            app_name: st.app.name.clone(),
            hidden,
            error: error.map(str::to_owned),
            email: email.to_owned(),
        }),
    )
}

/// `GET`: the login form. `POST`: the login or consent form.
pub(crate) fn dialog(st: &mut State, req: &MetaRequest) -> Response {
    match req.method {
        Method::GET => match validate(st, &req.query) {
            Ok(_) => login_page(st, req, &req.query, None, ""),
            Err(resp) => *resp,
        },
        Method::POST => {
            let pairs = match form::parse_form(&req.content_type, &req.body) {
                Ok(p) => p,
                Err(e) => return error_page(&format!("Invalid request: {e}")),
            };
            if field(&pairs, "step") == Some("consent") {
                consent_submit(st, &pairs)
            } else {
                login_submit(st, req, &pairs)
            }
        }
        _ => error_page("Unsupported method"),
    }
}

fn login_submit(st: &mut State, req: &MetaRequest, pairs: &[(String, String)]) -> Response {
    let request = match validate(st, pairs) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let name = field(pairs, "email")
        .or_else(|| field(pairs, "username"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let password = field(pairs, "pass")
        .or_else(|| field(pairs, "password"))
        .unwrap_or_default();
    let Some(user) = st
        .fb_users
        .values()
        .find(|u| u.name.eq_ignore_ascii_case(&name))
        .cloned()
    else {
        return login_page(
            st,
            req,
            pairs,
            Some("The email address or mobile number you entered isn't connected to an account."),
            &name,
        );
    };
    if user.password != password {
        return login_page(
            st,
            req,
            pairs,
            Some("The password that you've entered is incorrect."),
            &name,
        );
    }
    let pages = st.pages_of(&user.name);
    let mut names: Vec<&str> = vec![user.name.as_str()];
    names.extend(pages.iter().map(|a| a.username.as_str()));
    if !st.app.allows(&names) {
        return error_page(
            "App not active: This app is not currently accessible and the app developer is aware of the issue. You will be able to log in when the app is reactivated.",
        );
    }
    let page_rows: Vec<PageRow> = pages
        .iter()
        .filter_map(|a| {
            a.page.as_ref().map(|p| PageRow {
                id: p.id.clone(),
                name: p.name.clone(),
                instagram: a.username.clone(),
            })
        })
        .collect();
    let was_checkpointed = user.checkpointed;
    if let Some(u) = st.fb_users.get_mut(&user.name) {
        u.checkpointed = false;
    }
    let all_required = request.config_id.is_some();
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
            required: s == "public_profile",
        })
        .collect();
    let ticket = st.issue_ticket(Platform::Facebook, &user.name, request);
    let resp = html_response(
        StatusCode::OK,
        pages::render(&FacebookConsent {
            action: req.full_path.clone(),
            app_name: st.app.name.clone(),
            user_name: user.name.clone(),
            ticket: ticket.clone(),
            pages: page_rows,
            scopes,
            all_required,
            notice: was_checkpointed.then(|| {
                "We noticed unusual activity on your account. You confirmed it's you, so your account is unlocked.".to_owned()
            }),
        }),
    );
    with_ticket_header(resp, &ticket)
}

fn consent_submit(st: &mut State, pairs: &[(String, String)]) -> Response {
    let ticket_id = field(pairs, "login_ticket").unwrap_or_default().to_owned();
    let ticket = match st.take_ticket(Platform::Facebook, &ticket_id) {
        Some(t) => t,
        _ => {
            return error_page(
                "This login has expired or was already used (login_ticket). Please go back to the app and try again.",
            );
        }
    };
    let request = ticket.request;
    let state = request.state.as_deref();
    match field(pairs, "action") {
        Some("cancel") => {
            let mut params = vec![
                ("error", "access_denied"),
                ("error_code", "200"),
                ("error_description", "Permissions error"),
                ("error_reason", "user_denied"),
            ];
            if let Some(s) = state {
                params.push(("state", s));
            }
            redirect(&format!(
                "{}#_=_",
                append_query(&request.redirect_uri, &params)
            ))
        }
        Some("allow") => {
            let posted_scopes: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str())
                .collect();
            let posted_pages: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == "page_id")
                .map(|(_, v)| v.as_str())
                .collect();
            // No `scope` fields at all: a plain HTTP client accepting everything.
            let accept_all = posted_scopes.is_empty();
            let all_required = request.config_id.is_some();
            let scopes: Vec<String> = request
                .scopes
                .iter()
                .filter(|s| {
                    accept_all
                        || all_required
                        || *s == "public_profile"
                        || posted_scopes.contains(&s.as_str())
                })
                .cloned()
                .collect();
            let pages: Vec<String> = st
                .pages_of(&ticket.subject)
                .iter()
                .filter_map(|a| a.page.as_ref().map(|p| p.id.clone()))
                .filter(|id| accept_all || posted_pages.contains(&id.as_str()))
                .collect();
            let grant = st.upsert_grant(Platform::Facebook, &ticket.subject, scopes, pages);
            let code = st.issue_code(
                Platform::Facebook,
                grant,
                &request.client_id,
                &request.redirect_uri,
            );
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = state {
                params.push(("state", s));
            }
            redirect(&format!(
                "{}#_=_",
                append_query(&request.redirect_uri, &params)
            ))
        }
        _ => error_page("Invalid action: expected allow or cancel"),
    }
}
