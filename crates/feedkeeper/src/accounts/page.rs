//! The layout context every dashboard page passes to `templates/layout.html`, and the headers
//! that keep pages out of caches (`error::render` turns a template into a response with them).
//!
//! Owns what the layout needs; page-specific data lives in each page's own template struct.
//! (`Page::for_user` lives with the session it reads, in `accounts::session`.)

use std::sync::LazyLock;

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, HeaderName};
use sha2::{Digest as _, Sha256};

/// The dashboard stylesheet, served at `/static/app.css`.
pub const STYLESHEET: &str = include_str!("../../static/app.css");

/// The dashboard script, served at `/static/app.js`.
pub const SCRIPT: &str = include_str!("../../static/app.js");

/// The script's address with a content hash (cached for a year, like the stylesheet).
pub fn script_url() -> &'static str {
    static URL: LazyLock<String> = LazyLock::new(|| {
        let digest = hex::encode(Sha256::digest(SCRIPT.as_bytes()));
        format!("/static/app.js?v={}", &digest[..12])
    });
    &URL
}

/// The stylesheet's address with a content hash, so it can be cached for a year and still change
/// the moment a new version is deployed.
pub fn stylesheet_url() -> &'static str {
    static URL: LazyLock<String> = LazyLock::new(|| {
        let digest = hex::encode(Sha256::digest(STYLESHEET.as_bytes()));
        format!("/static/app.css?v={}", &digest[..12])
    });
    &URL
}

/// What a flash message means, for its colour: good news, something to watch, or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Warn,
    Bad,
}

impl Tone {
    /// The CSS class suffix (`notice-ok`, `notice-warn`, `notice-error`).
    pub fn class(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Warn => "warn",
            Tone::Bad => "error",
        }
    }
}

/// A one-time message and its tone (kept in the session until shown: `accounts::session`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub tone: Tone,
    pub message: String,
}

/// What `layout.html` needs. A template that extends the layout has a field `page: Page`.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The `<title>` and the page's heading.
    pub title: String,
    /// The logged-in user: the nav and the logout button show only when set.
    pub user_email: Option<String>,
    /// The CSRF token for this page's forms (`<input type="hidden" name="csrf" value="{{
    /// page.csrf }}">`). Pre-login pages carry a pre-login token here.
    pub csrf: String,
    /// A one-time notice shown above the content ("Password changed."), with its tone.
    pub flash: Option<Flash>,
    /// Connections that need someone to reconnect them: a count beside "Connections" in the menu.
    pub needs_action: i64,
}

impl Page {
    /// A page for someone not logged in (sign-up, log-in, error pages).
    pub fn public(title: impl Into<String>, csrf: impl Into<String>) -> Page {
        Page {
            title: title.into(),
            user_email: None,
            csrf: csrf.into(),
            flash: None,
            needs_action: 0,
        }
    }

    /// The flash's CSS class suffix (`ok`, `warn`, `error`).
    pub fn flash_class(&self) -> &'static str {
        self.flash.as_ref().map_or("ok", |f| f.tone.class())
    }

    /// The versioned script address, for the layout.
    pub fn script(&self) -> &'static str {
        script_url()
    }

    /// The versioned stylesheet address, for the layout.
    pub fn stylesheet(&self) -> &'static str {
        stylesheet_url()
    }
}

/// Headers every dashboard page gets besides the edge's (the strict CSP, no framing, no
/// sniffing, no referrer: `http::edge`): never cached, since pages hold personal data and CSRF
/// tokens.
pub fn page_headers() -> [(HeaderName, HeaderValue); 1] {
    [(CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_url_changes_with_its_content() {
        let url = stylesheet_url();
        assert!(url.starts_with("/static/app.css?v="), "{url}");
        assert_eq!(url.len(), "/static/app.css?v=".len() + 12);
        assert!(!STYLESHEET.is_empty());
    }
}
