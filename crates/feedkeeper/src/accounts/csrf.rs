//! CSRF tokens: proof that a POST came from a form we rendered, not from another site.
//!
//! Logged in, the token is a random value stored with the session and compared in constant time.
//! Before log-in (the sign-up and log-in forms) there is no session row yet, and we do not create
//! one per anonymous visitor: the browser gets a random id in a `fk_prelogin` cookie, and the form
//! carries that id sealed (AES-GCM, the configured token key) together with its issue time. Only
//! a page of ours can mint such a token, and it is only good together with its own cookie.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use crate::clock::UnixSeconds;
use crate::crypto::TokenCipher;

/// The name of the form field that carries the token, in every form.
pub const FIELD: &str = "csrf";

/// The cookie that binds a pre-login token to one browser.
pub const PRELOGIN_COOKIE: &str = "fk_prelogin";

/// How long a sign-up or log-in form stays usable after it was rendered.
pub const PRELOGIN_LIFETIME_SECS: i64 = 2 * 3600;

/// Associated data for sealing, so a pre-login token can never be mistaken for (or used as) any
/// other sealed value, such as an Instagram token.
const PRELOGIN_CONTEXT: &str = "feedkeeper:prelogin-csrf:v1";

/// 32 random bytes, base64url: a session's CSRF token, a session token, a browser id.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` has the shape [`random_token`] makes (43 base64url characters).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Compares a submitted token with the expected one without revealing, through timing, how many
/// leading characters were right. An empty expected token never matches.
pub fn tokens_match(expected: &str, submitted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A token for a sign-up or log-in form shown to the browser whose `fk_prelogin` cookie is
/// `browser_id`.
pub fn prelogin_token(cipher: &TokenCipher, browser_id: &str, now: UnixSeconds) -> String {
    cipher.seal(&format!("{now}:{browser_id}"), PRELOGIN_CONTEXT)
}

/// Why a pre-login token was refused (the user sees one message for all of them; the reason is
/// for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreloginProblem {
    /// The browser sent no `fk_prelogin` cookie (cookies off, or a cross-site POST, which
    /// SameSite=Lax keeps the cookie from).
    NoCookie,
    /// The form had no token, or one we did not make.
    BadToken,
    /// The token was made for another browser.
    OtherBrowser,
    /// The form is older than [`PRELOGIN_LIFETIME_SECS`].
    Expired,
}

/// Checks a submitted pre-login token against the browser's cookie.
pub fn verify_prelogin(
    cipher: &TokenCipher,
    browser_id: Option<&str>,
    submitted: &str,
    now: UnixSeconds,
) -> Result<(), PreloginProblem> {
    let browser_id = browser_id
        .filter(|id| is_well_formed(id))
        .ok_or(PreloginProblem::NoCookie)?;
    let opened = cipher
        .open(submitted, PRELOGIN_CONTEXT)
        .map_err(|_| PreloginProblem::BadToken)?;
    let (issued, minted_for) = opened.split_once(':').ok_or(PreloginProblem::BadToken)?;
    let issued: UnixSeconds = issued.parse().map_err(|_| PreloginProblem::BadToken)?;
    if !tokens_match(minted_for, browser_id) {
        return Err(PreloginProblem::OtherBrowser);
    }
    // A little slack into the future, for clocks of different nodes.
    if now >= issued + PRELOGIN_LIFETIME_SECS || issued > now + 300 {
        return Err(PreloginProblem::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::NamedKey;

    fn cipher() -> TokenCipher {
        TokenCipher::new(
            &[NamedKey::generate("t")],
            crate::crypto::Purpose::PreloginCsrf,
        )
        .unwrap()
    }

    #[test]
    fn random_tokens_are_32_bytes_base64url_and_differ() {
        let a = random_token();
        assert!(is_well_formed(&a), "{a}");
        assert_ne!(a, random_token());
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&format!("{}=", &a[..42])));
    }

    #[test]
    fn token_comparison_needs_an_exact_match() {
        let t = random_token();
        assert!(tokens_match(&t, &t.clone()));
        assert!(!tokens_match(&t, ""));
        assert!(!tokens_match(&t, &t[..42]));
        assert!(!tokens_match(&t, &format!("{t}x")));
        assert!(!tokens_match(&t, &t.to_uppercase()));
        assert!(
            !tokens_match("", ""),
            "an empty expected token must never match"
        );
    }

    #[test]
    fn prelogin_tokens_work_only_with_their_cookie_and_for_a_while() {
        let c = cipher();
        let browser = random_token();
        let token = prelogin_token(&c, &browser, 1_000);
        assert_eq!(verify_prelogin(&c, Some(&browser), &token, 1_000), Ok(()));
        assert_eq!(
            verify_prelogin(
                &c,
                Some(&browser),
                &token,
                1_000 + PRELOGIN_LIFETIME_SECS - 1
            ),
            Ok(())
        );
        assert_eq!(
            verify_prelogin(&c, Some(&browser), &token, 1_000 + PRELOGIN_LIFETIME_SECS),
            Err(PreloginProblem::Expired)
        );
        assert_eq!(
            verify_prelogin(&c, None, &token, 1_000),
            Err(PreloginProblem::NoCookie)
        );
        assert_eq!(
            verify_prelogin(&c, Some(&random_token()), &token, 1_000),
            Err(PreloginProblem::OtherBrowser)
        );
        assert_eq!(
            verify_prelogin(&c, Some(&browser), "", 1_000),
            Err(PreloginProblem::BadToken)
        );
        // Sealed under a key we do not have, or for another purpose: refused.
        let other = prelogin_token(&cipher(), &browser, 1_000);
        assert_eq!(
            verify_prelogin(&c, Some(&browser), &other, 1_000),
            Err(PreloginProblem::BadToken)
        );
        let elsewhere = c.seal(&format!("1000:{browser}"), "connection:1");
        assert_eq!(
            verify_prelogin(&c, Some(&browser), &elsewhere, 1_000),
            Err(PreloginProblem::BadToken)
        );
    }
}
