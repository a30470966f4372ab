//! Login sessions: the `fk_session` cookie, the [`CurrentUser`] extractor, starting and ending
//! sessions.
//!
//! The cookie holds 32 random bytes (base64url); the database holds only their SHA-256, so a
//! leaked database yields no usable session. Cookies are HttpOnly, SameSite=Lax, Path=/, and
//! Secure when the public URL is https.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest as _, Sha256};

use super::csrf;
use crate::config::Config;
use crate::db::sessions::{self, NewSession, SessionId};
use crate::error::AppError;
use crate::ids::UserId;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fk_session";
/// A session unused for this long has ended (30 days).
pub const IDLE_LIFETIME_SECS: i64 = 30 * 86_400;
/// A session ends this long after log-in, however much it is used (90 days).
pub const ABSOLUTE_LIFETIME_SECS: i64 = 90 * 86_400;
/// `last_seen_at` is written at most this often, so that browsing is not a database write per
/// request; the idle lifetime is therefore exact to within this much.
const TOUCH_EVERY_SECS: i64 = 300;

/// The logged-in user of a request, and the session's CSRF token.
///
/// As an extractor: without a live session, a GET or HEAD is answered with a redirect to
/// `/login?next=<this path>` ([`AppError::LoginRequired`]) and anything else with a 401
/// ([`AppError::Unauthorized`]). `Option<CurrentUser>` never rejects for a missing session.
#[derive(Clone)]
pub struct CurrentUser {
    pub id: UserId,
    pub email: String,
    /// The session's CSRF token: put it in every form (`name="csrf"`).
    pub csrf: String,
    /// A one-time message left by the previous request ("Password changed."); it has now been
    /// taken, so show it on this page or it is gone.
    pub flash: Option<Flash>,
    /// How many of the user's connections need reconnecting (read with the session, for the
    /// count in the menu).
    pub needs_action: i64,
    /// The user runs the server: the System status page is theirs.
    pub is_operator: bool,
    session_id: SessionId,
}

/// Separates a stored flash's tone from its text (a control character no message contains).
const TONE_MARK: char = '\u{1f}';

pub use super::page::{Flash, Tone};

impl Flash {
    fn stored(tone: Tone, message: &str) -> String {
        match tone {
            Tone::Ok => message.to_owned(),
            Tone::Warn => format!("warn{TONE_MARK}{message}"),
            Tone::Bad => format!("bad{TONE_MARK}{message}"),
        }
    }

    fn parse(stored: String) -> Flash {
        match stored.split_once(TONE_MARK) {
            Some(("warn", message)) => Flash {
                tone: Tone::Warn,
                message: message.to_owned(),
            },
            Some(("bad", message)) => Flash {
                tone: Tone::Bad,
                message: message.to_owned(),
            },
            _ => Flash {
                tone: Tone::Ok,
                message: stored,
            },
        }
    }
}

impl super::Page {
    /// A page for the logged-in `user`, showing the flash the session held, if any.
    pub fn for_user(user: &CurrentUser, title: impl Into<String>) -> super::Page {
        super::Page {
            title: title.into(),
            user_email: Some(user.email.clone()),
            csrf: user.csrf.clone(),
            flash: user.flash.clone(),
            needs_action: user.needs_action,
        }
    }
}

// By hand: the CSRF token stays out of logs.
impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl CurrentUser {
    /// Checks the `csrf` field of a submitted form: `user.verify_csrf(&form.csrf)?;` at the top
    /// of every POST handler. A mismatch is a 403 with a message telling the user to reload.
    pub fn verify_csrf(&self, submitted: &str) -> Result<(), AppError> {
        if csrf::tokens_match(&self.csrf, submitted) {
            Ok(())
        } else {
            tracing::info!(user = %self.id, "refused a form with a missing or wrong CSRF token");
            Err(AppError::Forbidden(
                "This form has expired or did not come from this site, so nothing was changed. \
                 Go back, reload the page and try again."
                    .into(),
            ))
        }
    }

    /// Leaves `message` for the next page this session shows (typically after a redirect).
    pub async fn flash(&self, state: &AppState, message: &str) -> Result<(), AppError> {
        self.flash_with(state, Tone::Ok, message).await
    }

    /// Keeps `secret` (sealed) for this session's next page, which shows it once.
    pub async fn reveal_once(&self, state: &AppState, secret: &str) -> Result<(), AppError> {
        let context = format!("reveal:{}", self.session_id.0);
        let sealed = state.cipher.seal(secret, &context);
        sessions::set_reveal(&state.db, self.session_id, &sealed).await?;
        Ok(())
    }

    /// Takes the secret left by [`CurrentUser::reveal_once`], if it is still there.
    pub async fn take_revealed(&self, state: &AppState) -> Result<Option<String>, AppError> {
        let Some(sealed) = sessions::take_reveal(&state.db, self.session_id).await? else {
            return Ok(None);
        };
        let context = format!("reveal:{}", self.session_id.0);
        Ok(state.cipher.open(&sealed, &context).ok())
    }

    /// Leaves `message` with the colour of its meaning.
    pub async fn flash_with(
        &self,
        state: &AppState,
        tone: Tone,
        message: &str,
    ) -> Result<(), AppError> {
        sessions::set_flash(&state.db, self.session_id, &Flash::stored(tone, message)).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(user) = find_session(&parts.headers, state).await? {
            return Ok(user);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            // Behind `nest`, `parts.uri` lacks the prefix; the original URI has it.
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .map_or(&parts.uri, |o| &o.0);
            let next = uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned();
            Err(AppError::LoginRequired { next })
        } else {
            Err(AppError::Unauthorized)
        }
    }
}

impl OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, AppError> {
        find_session(&parts.headers, state).await
    }
}

/// The live session named by the request's cookie, if any. Marks it used and takes its flash.
async fn find_session(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<CurrentUser>, AppError> {
    let Some(token) =
        read_our_cookie(&state.config, headers, SESSION_COOKIE).filter(|t| csrf::is_well_formed(t))
    else {
        return Ok(None);
    };
    let now = state.clock.now();
    let Some(found) =
        sessions::find_active(&state.db, &hash_token(token), now, now - IDLE_LIFETIME_SECS).await?
    else {
        return Ok(None);
    };
    let id = SessionId(found.session_id);
    let stale = now - found.last_seen_at >= TOUCH_EVERY_SECS;
    if stale || found.flash.is_some() {
        sessions::touch(&state.db, id, now, found.flash.is_some()).await?;
    }
    Ok(Some(CurrentUser {
        id: found.user_id,
        email: found.email,
        csrf: found.csrf_token,
        flash: found.flash.map(Flash::parse),
        needs_action: found.needs_action,
        is_operator: found.is_operator,
        session_id: id,
    }))
}

/// Opens a session for `user_id` and returns the `Set-Cookie` value that hands it to the
/// browser. Ended sessions of everyone are swept at the same time (log-ins are rare enough).
pub async fn start(state: &AppState, user_id: UserId) -> Result<HeaderValue, AppError> {
    let now = state.clock.now();
    sessions::delete_ended(&state.db, now, now - IDLE_LIFETIME_SECS).await?;
    let token = csrf::random_token();
    let csrf_token = csrf::random_token();
    sessions::create(
        &state.db,
        NewSession {
            token_hash: &hash_token(&token),
            user_id,
            csrf_token: &csrf_token,
            now,
            expires_at: now + ABSOLUTE_LIFETIME_SECS,
        },
    )
    .await?;
    Ok(set_cookie(
        &state.config,
        SESSION_COOKIE,
        &token,
        ABSOLUTE_LIFETIME_SECS,
    ))
}

/// Ends the user's current session (log out) and returns the `Set-Cookie` value that removes
/// the cookie.
pub async fn end(state: &AppState, user: &CurrentUser) -> Result<HeaderValue, AppError> {
    sessions::delete(&state.db, user.session_id).await?;
    Ok(clear_cookie(&state.config, SESSION_COOKIE))
}

/// Ends every session of the user except the current one (after a password change). Returns
/// how many ended.
pub async fn end_others(state: &AppState, user: &CurrentUser) -> Result<u64, AppError> {
    Ok(sessions::delete_others(&state.db, user.id, user.session_id).await?)
}

/// What the database stores for a session token: hex SHA-256. A fast hash is enough because the
/// token is 256 random bits, not something a person chose.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether the service is reached over https (cookies are then Secure and `__Host-` named).
fn is_https(config: &Config) -> bool {
    config
        .public_url()
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// The name one of our cookies has on the wire: `__Host-<name>` over https, which browsers accept
/// only with Secure, Path=/ and no Domain, so no other site on a parent domain can plant or
/// overwrite it.
pub fn wire_name(config: &Config, name: &str) -> String {
    if is_https(config) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// The value of our cookie `name` (see [`wire_name`]) in the request, if sent.
pub fn read_our_cookie<'a>(config: &Config, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    read_cookie(headers, &wire_name(config, name))
}

/// The value of cookie `name` in the request, if sent (in any of its `Cookie` headers).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|value| value.trim_matches('"'))
}

/// A `Set-Cookie` value for one of our cookies: HttpOnly, SameSite=Lax, Path=/, and Secure when
/// the public URL is https. `value` must be cookie-safe (our values are base64url).
pub fn set_cookie(config: &Config, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let name = wire_name(config, name);
    let cookie = cookie::Cookie::build((name.as_str(), value))
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(is_https(config))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| {
        // Only our own names and base64url values get here; never reached, but never a panic.
        tracing::error!(cookie = %name, "a cookie value was not a valid header");
        HeaderValue::from_static("fk_invalid=; Max-Age=0; Path=/")
    })
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(config: &Config, name: &str) -> HeaderValue {
    set_cookie(config, name, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: &str) -> Config {
        let mut c = Config::default();
        c.server.public_url = public_url.into();
        c
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_only_on_https() {
        let plain = set_cookie(&config(""), SESSION_COOKIE, "abc", 60);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("fk_session=abc;"), "{plain}");
        for flag in ["; HttpOnly", "; SameSite=Lax", "; Path=/", "; Max-Age=60"] {
            assert!(plain.contains(flag), "{plain} lacks {flag}");
        }
        assert!(!plain.contains("Secure"), "{plain}");
        let https = config("https://fk.example");
        let secure = set_cookie(&https, SESSION_COOKIE, "abc", 60);
        assert!(
            secure
                .to_str()
                .unwrap()
                .starts_with("__Host-fk_session=abc;")
        );
        assert!(secure.to_str().unwrap().contains("; Secure"));
        // Over https only the __Host- cookie counts: a plain one may have been planted.
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("fk_session=planted"));
        assert_eq!(read_our_cookie(&https, &headers, SESSION_COOKIE), None);
        headers.append(COOKIE, HeaderValue::from_static("__Host-fk_session=real"));
        assert_eq!(
            read_our_cookie(&https, &headers, SESSION_COOKIE),
            Some("real")
        );
        let cleared = clear_cookie(&config(""), SESSION_COOKIE);
        let cleared = cleared.to_str().unwrap();
        assert!(
            cleared.starts_with("fk_session=;") && cleared.contains("; Max-Age=0"),
            "{cleared}"
        );
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; fk_session=tok"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(read_cookie(&headers, "fk_session"), Some("tok"));
        assert_eq!(read_cookie(&headers, "b"), Some("2"));
        assert_eq!(read_cookie(&headers, "fk"), None);
        assert_eq!(read_cookie(&HeaderMap::new(), "fk_session"), None);
    }

    #[test]
    fn the_stored_hash_is_not_the_token() {
        let token = csrf::random_token();
        let hash = hash_token(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
        assert_eq!(hash, hash_token(&token));
    }
}
