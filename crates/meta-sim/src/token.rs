//! Credentials the simulated Meta hands out: grants (a user's consent to the app), authorization
//! codes, login tickets, and access tokens with their lifetimes and revocations.

use serde::Serialize;

/// Which login product a grant or code belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Platform {
    /// Business Login for Instagram (graph.instagram.com, `IG…` tokens).
    Instagram,
    /// Facebook Login (graph.facebook.com, `EA…` tokens).
    Facebook,
}

/// A user's consent to the app on one platform. Tokens read their scopes from here, so a
/// revoked permission affects every existing token at once.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) id: u64,
    pub(crate) platform: Platform,
    /// Instagram username (Instagram) or Facebook user name (Facebook).
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    /// Page ids the user shared (Facebook only).
    pub(crate) pages: Vec<String>,
    /// Last login/consent; data access runs out `data_access_ttl_secs` later.
    pub(crate) consented_at: i64,
    /// The user removed the app.
    pub(crate) removed: bool,
}

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    IgShort,
    IgLong,
    FbUserShort,
    FbUserLong,
    Page,
}

impl TokenKind {
    pub(crate) fn is_instagram(self) -> bool {
        matches!(self, TokenKind::IgShort | TokenKind::IgLong)
    }

    /// The family the request log names: short- and long-lived tokens of one kind share it.
    pub(crate) fn family(self) -> &'static str {
        match self {
            TokenKind::IgShort | TokenKind::IgLong => INSTAGRAM_USER_FAMILY,
            TokenKind::FbUserShort | TokenKind::FbUserLong => FACEBOOK_USER_FAMILY,
            TokenKind::Page => FACEBOOK_PAGE_FAMILY,
        }
    }
}

/// Request-log family of Instagram-Login user tokens (`IG…`).
pub(crate) const INSTAGRAM_USER_FAMILY: &str = "instagram_user";
/// Request-log family of Facebook-Login user tokens (`EA…`).
pub(crate) const FACEBOOK_USER_FAMILY: &str = "facebook_user";
/// Request-log family of Page tokens from `/me/accounts`.
pub(crate) const FACEBOOK_PAGE_FAMILY: &str = "facebook_page";
/// Request-log family of the app token `<app id>|<app secret>`.
pub(crate) const APP_FAMILY: &str = "app";

impl Platform {
    /// The family of the user tokens this platform's codes are exchanged for.
    pub(crate) fn user_family(self) -> &'static str {
        match self {
            Platform::Instagram => INSTAGRAM_USER_FAMILY,
            Platform::Facebook => FACEBOOK_USER_FAMILY,
        }
    }
}

/// Why a token stopped working before its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub(crate) subcode: Option<u32>,
    pub(crate) message: String,
}

/// An access token.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) grant: u64,
    /// Instagram tokens: the account's username. Page tokens: the Page's account.
    pub(crate) account: Option<String>,
    /// Page tokens: the Page id.
    pub(crate) page_id: Option<String>,
    pub(crate) issued_at: i64,
    /// Issue or last refresh: the 24-hour refresh rule counts from here.
    pub(crate) refreshed_at: i64,
    /// `None`: never expires (Page tokens from long-lived user tokens).
    pub(crate) expires_at: Option<i64>,
    pub(crate) revocation: Option<Revocation>,
    /// The global API epoch the token was issued in (`api_breaking_change` bumps it).
    pub(crate) epoch: u64,
}

/// An authorization code.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) platform: Platform,
    pub(crate) grant: u64,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}

/// What the authorize request asked for, carried through the login and consent forms.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthorizeRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) scopes: Vec<String>,
    /// Facebook Login for Business: every permission of the configuration must be granted.
    pub(crate) config_id: Option<String>,
}

/// A single-use ticket proving the user logged in, carried by the consent form.
#[derive(Clone, Debug)]
pub(crate) struct LoginTicket {
    pub(crate) platform: Platform,
    pub(crate) subject: String,
    pub(crate) request: AuthorizeRequest,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}
