//! The registered Meta app: Instagram and Facebook app ids and secrets, redirect URIs,
//! callback URLs, live/development mode and testers.

use serde::{Deserialize, Serialize};

/// Whether the app is live or in development mode (only testers may log in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppMode {
    /// Anyone may authorize.
    #[default]
    Live,
    /// Only accounts listed in `testers` may authorize (others get `Insufficient developer role`).
    Development,
}

/// The app as configured in Meta's App Dashboard. `GET/PUT /__sim/app`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// App name (`application` in `debug_token`).
    pub name: String,
    /// Instagram App ID (Business Login `client_id`).
    pub instagram_app_id: String,
    /// Instagram App Secret.
    pub instagram_app_secret: String,
    /// Facebook App ID (Facebook Login `client_id`, `debug_token` app).
    pub facebook_app_id: String,
    /// Facebook App Secret.
    pub facebook_app_secret: String,
    /// Valid OAuth redirect URIs (exact match). Empty: any http(s) URI on 127.0.0.1, localhost or `[::1]`.
    pub redirect_uris: Vec<String>,
    /// Where `signed_request` is POSTed when a user removes the app.
    pub deauthorize_callback_url: Option<String>,
    /// Where `signed_request` is POSTed when a user asks for their data to be deleted.
    pub data_deletion_callback_url: Option<String>,
    /// Live or development mode.
    pub mode: AppMode,
    /// Usernames (Instagram usernames or Facebook user names) allowed in development mode.
    pub testers: Vec<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: "Feedkeeper Simulated App".into(),
            instagram_app_id: "1000000000000001".into(),
            instagram_app_secret: "sim-instagram-secret".into(),
            facebook_app_id: "2000000000000002".into(),
            facebook_app_secret: "sim-facebook-secret".into(),
            redirect_uris: Vec::new(),
            deauthorize_callback_url: None,
            data_deletion_callback_url: None,
            mode: AppMode::Live,
            testers: Vec::new(),
        }
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

impl AppConfig {
    /// Checks ids, secrets and URLs.
    pub fn validate(&self) -> Result<(), String> {
        for (name, id) in [
            ("instagram_app_id", &self.instagram_app_id),
            ("facebook_app_id", &self.facebook_app_id),
        ] {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("`{name}` must be a non-empty string of digits"));
            }
        }
        for (name, secret) in [
            ("instagram_app_secret", &self.instagram_app_secret),
            ("facebook_app_secret", &self.facebook_app_secret),
        ] {
            if secret.is_empty() {
                return Err(format!("`{name}` must not be empty"));
            }
        }
        for uri in &self.redirect_uris {
            if !is_http_url(uri) {
                return Err(format!("redirect URI `{uri}` is not an http(s) URL"));
            }
        }
        for (name, url) in [
            ("deauthorize_callback_url", &self.deauthorize_callback_url),
            (
                "data_deletion_callback_url",
                &self.data_deletion_callback_url,
            ),
        ] {
            if let Some(url) = url
                && !is_http_url(url)
            {
                return Err(format!("`{name}` `{url}` is not an http(s) URL"));
            }
        }
        Ok(())
    }

    /// Whether `uri` may be used as `redirect_uri`.
    pub(crate) fn redirect_allowed(&self, uri: &str) -> bool {
        if !self.redirect_uris.is_empty() {
            return self.redirect_uris.iter().any(|r| r == uri);
        }
        match url::Url::parse(uri) {
            Ok(u) => {
                matches!(u.scheme(), "http" | "https")
                    && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
            }
            Err(_) => false,
        }
    }

    /// Whether any of `names` may log in (always true in live mode).
    pub(crate) fn allows(&self, names: &[&str]) -> bool {
        self.mode == AppMode::Live
            || names
                .iter()
                .any(|n| self.testers.iter().any(|t| t.eq_ignore_ascii_case(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_allowed_when_none_registered() {
        let app = AppConfig::default();
        assert!(app.redirect_allowed("http://127.0.0.1:8080/cb"));
        assert!(app.redirect_allowed("https://localhost/cb"));
        assert!(app.redirect_allowed("http://[::1]:9/cb"));
        assert!(!app.redirect_allowed("https://example.com/cb"));
        assert!(!app.redirect_allowed("ftp://127.0.0.1/cb"));
        assert!(!app.redirect_allowed("not a url"));
    }

    #[test]
    fn registered_redirects_match_exactly() {
        let app = AppConfig {
            redirect_uris: vec!["https://example.com/cb".into()],
            ..AppConfig::default()
        };
        assert!(app.redirect_allowed("https://example.com/cb"));
        assert!(!app.redirect_allowed("https://example.com/cb/"));
        assert!(!app.redirect_allowed("http://127.0.0.1/cb"));
    }
}
