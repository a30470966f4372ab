//! Meta's `signed_request` (deauthorize and data-deletion callbacks): verified before trusted.
//!
//! Format: `base64url(HMAC-SHA256(app secret, payload_b64)) "." payload_b64`, where the HMAC covers
//! the payload segment exactly as received. The signature is checked (in constant time) before
//! the payload is parsed; padding is accepted with or without `=`, but only canonical padding
//! (no stray `=`, no stray bits), so one callback has one encoding, and its replay key (the
//! decoded signature) is the same however it was padded.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::types::opt_id_string;

/// Longer inputs are refused before any work: real ones are a few hundred bytes.
pub const MAX_LEN: usize = 8 * 1024;

/// A verified callback payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The user the callback is about (app-scoped for Facebook; may be `"0"` for a Page uninstall).
    pub user_id: Option<String>,
    /// Set when a Page (rather than a user) removed the app.
    pub profile_id: Option<String>,
    pub issued_at: Option<i64>,
    /// The decoded signature: what identifies this callback against replays (a padded copy of
    /// a captured callback decodes to the same bytes).
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request is malformed: {0}")]
    Malformed(&'static str),
    #[error("signed_request signature does not match")]
    BadSignature,
    #[error("signed_request uses unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    profile_id: Option<String>,
    #[serde(default)]
    issued_at: Option<i64>,
}

/// base64url, unpadded or with exactly the padding its length calls for.
fn decode(segment: &str) -> Result<Vec<u8>, SignedRequestError> {
    let decoded = if segment.ends_with('=') {
        base64::engine::general_purpose::URL_SAFE.decode(segment)
    } else {
        URL_SAFE_NO_PAD.decode(segment)
    };
    decoded.map_err(|_| SignedRequestError::Malformed("not canonical base64url"))
}

/// Verifies `signed_request` against any of `secrets` (the Instagram and the Facebook app secret
/// both sign callbacks, depending on the product) and returns its payload.
pub fn verify(signed_request: &str, secrets: &[&str]) -> Result<SignedRequest, SignedRequestError> {
    if signed_request.len() > MAX_LEN {
        return Err(SignedRequestError::Malformed("too long"));
    }
    let (signature_b64, payload_b64) = signed_request
        .trim()
        .split_once('.')
        .ok_or(SignedRequestError::Malformed("no '.' separator"))?;
    if signature_b64.is_empty() || payload_b64.is_empty() {
        return Err(SignedRequestError::Malformed("empty segment"));
    }
    let signature = decode(signature_b64)?;
    let signed_by_us = secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(payload_b64.as_bytes());
        mac.verify_slice(&signature).is_ok()
    });
    if !signed_by_us {
        return Err(SignedRequestError::BadSignature);
    }
    let payload: Payload = serde_json::from_slice(&decode(payload_b64)?)
        .map_err(|_| SignedRequestError::Malformed("payload is not the expected JSON"))?;
    match payload.algorithm.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("HMAC-SHA256") => {}
        Some(other) => return Err(SignedRequestError::UnsupportedAlgorithm(other.to_owned())),
        None => return Err(SignedRequestError::Malformed("no algorithm")),
    }
    Ok(SignedRequest {
        user_id: payload.user_id,
        profile_id: payload.profile_id,
        issued_at: payload.issued_at,
        signature,
    })
}

/// Builds a `signed_request` the way Meta does (tests, and the simulator's twin of this code).
pub fn sign(payload_json: &str, secret: &str) -> String {
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload_json);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(payload_b64.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
        payload_b64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "app-secret";

    #[test]
    fn a_meta_style_request_verifies() {
        let sr = sign(
            r#"{"user_id":"17841400000000001","algorithm":"HMAC-SHA256","issued_at":1634206592}"#,
            SECRET,
        );
        let verified = verify(&sr, &["other", SECRET]).unwrap();
        assert_eq!(verified.user_id.as_deref(), Some("17841400000000001"));
        assert_eq!(verified.issued_at, Some(1_634_206_592));
    }

    #[test]
    fn padding_numbers_and_case_are_tolerated() {
        let sr = sign(
            r#"{"user_id":42,"algorithm":"hmac-sha256","profile_id":"99"}"#,
            SECRET,
        );
        let (sig, payload) = sr.split_once('.').unwrap();
        let padded = format!("{sig}=.{payload}");
        let verified = verify(&padded, &[SECRET]).unwrap();
        assert_eq!(verified.user_id.as_deref(), Some("42"));
        assert_eq!(verified.profile_id.as_deref(), Some("99"));
    }

    #[test]
    fn padded_and_unpadded_copies_are_one_callback_and_stray_padding_is_refused() {
        let sr = sign(r#"{"user_id":"1","algorithm":"HMAC-SHA256"}"#, SECRET);
        let (sig, payload) = sr.split_once('.').unwrap();
        let plain = verify(&sr, &[SECRET]).unwrap();
        let padded = verify(&format!("{sig}=.{payload}"), &[SECRET]).unwrap();
        assert_eq!(plain.signature, padded.signature);
        assert_eq!(plain.signature.len(), 32);
        for stray in [
            format!("{sig}==.{payload}"),
            format!("{sig}===.{payload}"),
            format!("{sig}.{payload}="),
        ] {
            assert!(verify(&stray, &[SECRET]).is_err(), "{stray}");
        }
    }

    #[test]
    fn forgeries_and_junk_are_refused() {
        let good = sign(r#"{"user_id":"1","algorithm":"HMAC-SHA256"}"#, SECRET);
        assert_eq!(
            verify(&good, &["wrong"]),
            Err(SignedRequestError::BadSignature)
        );
        assert_eq!(verify(&good, &[]), Err(SignedRequestError::BadSignature));
        assert_eq!(verify(&good, &[""]), Err(SignedRequestError::BadSignature));
        let other_payload = sign(r#"{"user_id":"2","algorithm":"HMAC-SHA256"}"#, SECRET);
        let spliced = format!(
            "{}.{}",
            good.split_once('.').unwrap().0,
            other_payload.split_once('.').unwrap().1
        );
        assert_eq!(
            verify(&spliced, &[SECRET]),
            Err(SignedRequestError::BadSignature)
        );
        let md5 = sign(r#"{"user_id":"1","algorithm":"MD5"}"#, SECRET);
        assert!(matches!(
            verify(&md5, &[SECRET]),
            Err(SignedRequestError::UnsupportedAlgorithm(_))
        ));
        let not_json = sign("not json", SECRET);
        assert!(matches!(
            verify(&not_json, &[SECRET]),
            Err(SignedRequestError::Malformed(_))
        ));
        for junk in [
            "",
            ".",
            "abc",
            "a.",
            ".b",
            "!!!.???",
            &"a".repeat(MAX_LEN + 1),
        ] {
            assert!(verify(junk, &[SECRET]).is_err(), "{junk:?}");
        }
    }

    proptest! {
        #[test]
        fn whatever_meta_signs_verifies(user in "[0-9]{1,20}", issued in 0i64..4_000_000_000, secret in "[ -~]{1,40}") {
            let json = format!(r#"{{"user_id":"{user}","algorithm":"HMAC-SHA256","issued_at":{issued}}}"#);
            let verified = verify(&sign(&json, &secret), &[&secret]).unwrap();
            prop_assert_eq!(verified.user_id, Some(user));
            prop_assert_eq!(verified.issued_at, Some(issued));
        }

        #[test]
        fn any_single_character_change_is_refused(user in "[0-9]{1,20}", index in any::<prop::sample::Index>(),
                                                   replacement in "[A-Za-z0-9_.-]") {
            let signed = sign(&format!(r#"{{"user_id":"{user}","algorithm":"HMAC-SHA256"}}"#), SECRET);
            let i = index.index(signed.len());
            let original = &signed[i..i + 1];
            prop_assume!(original != replacement);
            let tampered = format!("{}{}{}", &signed[..i], replacement, &signed[i + 1..]);
            prop_assert!(verify(&tampered, &[SECRET]).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,300}") {
            let _ = verify(&input, &[SECRET]);
        }
    }
}
