//! HTML pages the simulated hosts show people: Instagram and Facebook login and consent
//! forms, OAuth error pages, and the simulator's index. Markup lives in `templates/`.

use askama::Template;

/// A hidden form field.
pub(crate) struct Hidden {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// A permission on a consent page.
pub(crate) struct ScopeRow {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) required: bool,
}

/// A Facebook Page on the consent page.
pub(crate) struct PageRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) instagram: String,
}

/// An account row on the index page.
pub(crate) struct AccountRow {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) kind: String,
    pub(crate) posts: u64,
    pub(crate) facebook: String,
}

#[derive(Template)]
#[template(path = "instagram_login.html")]
pub(crate) struct InstagramLogin {
    pub(crate) action: String,
    pub(crate) app_name: String,
    pub(crate) hidden: Vec<Hidden>,
    pub(crate) error: Option<String>,
    pub(crate) username: String,
}

#[derive(Template)]
#[template(path = "instagram_consent.html")]
pub(crate) struct InstagramConsent {
    pub(crate) action: String,
    pub(crate) app_name: String,
    pub(crate) username: String,
    pub(crate) ticket: String,
    pub(crate) scopes: Vec<ScopeRow>,
    pub(crate) notice: Option<String>,
}

#[derive(Template)]
#[template(path = "instagram_professional_only.html")]
pub(crate) struct ProfessionalOnly {
    pub(crate) action: String,
    pub(crate) app_name: String,
    pub(crate) username: String,
    pub(crate) ticket: String,
}

#[derive(Template)]
#[template(path = "oauth_error.html")]
pub(crate) struct OauthError {
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) hint: Option<String>,
}

#[derive(Template)]
#[template(path = "facebook_login.html")]
pub(crate) struct FacebookLogin {
    pub(crate) action: String,
    pub(crate) app_name: String,
    pub(crate) hidden: Vec<Hidden>,
    pub(crate) error: Option<String>,
    pub(crate) email: String,
}

#[derive(Template)]
#[template(path = "facebook_consent.html")]
pub(crate) struct FacebookConsent {
    pub(crate) action: String,
    pub(crate) app_name: String,
    pub(crate) user_name: String,
    pub(crate) ticket: String,
    pub(crate) pages: Vec<PageRow>,
    pub(crate) scopes: Vec<ScopeRow>,
    pub(crate) all_required: bool,
    pub(crate) notice: Option<String>,
}

#[derive(Template)]
#[template(path = "index.html")]
pub(crate) struct Index {
    pub(crate) base: String,
    pub(crate) now: String,
    pub(crate) hosts: Vec<Hidden>,
    pub(crate) instagram_app_id: String,
    pub(crate) instagram_app_secret: String,
    pub(crate) facebook_app_id: String,
    pub(crate) facebook_app_secret: String,
    pub(crate) mode: String,
    pub(crate) accounts: Vec<AccountRow>,
    /// Meta's APIs answer every call with an error (the page's outage button).
    pub(crate) outage: bool,
    /// What the last button did, shown once.
    pub(crate) done: Option<String>,
}

/// Renders a template; a rendering failure becomes a readable page instead of a panic.
pub(crate) fn render<T: Template>(page: &T) -> String {
    page.render()
        .unwrap_or_else(|e| format!("<!DOCTYPE html><p>template error: {e}</p>"))
}

/// The page for unknown paths on the www/api hosts.
pub(crate) fn not_found(host: &str, path: &str) -> String {
    render(&OauthError {
        title: "Page not found".into(),
        body: format!("Sorry, this page isn't available: {host}{path}"),
        hint: None,
    })
}

/// Instagram's flat-JSON-style error page (`{"error_type":…,"code":400,"error_message":…}`).
pub(crate) fn instagram_error(message: &str, hint: Option<String>) -> String {
    let body = serde_json::json!({
        "error_type": "OAuthException",
        "code": 400,
        "error_message": message,
    });
    render(&OauthError {
        title: "Instagram".into(),
        body: body.to_string(),
        hint,
    })
}

/// Facebook's dialog error page.
pub(crate) fn facebook_error(message: &str) -> String {
    render(&OauthError {
        title: "Facebook".into(),
        body: message.to_owned(),
        hint: None,
    })
}
