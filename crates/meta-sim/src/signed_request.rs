//! Meta's `signed_request` format for deauthorize and data-deletion callbacks:
//! `base64url(HMAC-SHA256(app secret, payload_b64)) + "." + payload_b64`, unpadded.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a `signed_request` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    /// No `.` separating signature and payload.
    #[error("signed_request has no '.' separator")]
    Malformed,
    /// A part is not base64url.
    #[error("signed_request is not base64url")]
    Encoding,
    /// The payload is not a JSON object.
    #[error("signed_request payload is not a JSON object")]
    Payload,
    /// `algorithm` is not HMAC-SHA256.
    #[error("signed_request algorithm is not HMAC-SHA256")]
    Algorithm,
    /// The HMAC does not match.
    #[error("signed_request signature does not match")]
    Signature,
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// The payload Meta sends: `{"user_id":"<id>","algorithm":"HMAC-SHA256","issued_at":<now>}`.
pub fn payload(user_id: &str, issued_at: i64) -> Value {
    json!({"user_id": user_id, "algorithm": "HMAC-SHA256", "issued_at": issued_at})
}

/// Signs `payload` with `secret`.
pub fn sign(secret: &str, payload: &Value) -> String {
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut m = mac(secret);
    m.update(payload_b64.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{sig}.{payload_b64}")
}

fn decode(part: &str) -> Result<Vec<u8>, SignedRequestError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(part))
        .map_err(|_| SignedRequestError::Encoding)
}

/// Verifies a `signed_request` (padded or not) and returns its payload.
pub fn verify(secret: &str, signed_request: &str) -> Result<Value, SignedRequestError> {
    let (sig_b64, payload_b64) = signed_request
        .split_once('.')
        .ok_or(SignedRequestError::Malformed)?;
    let sig = decode(sig_b64)?;
    let payload_bytes = decode(payload_b64)?;
    let payload: Value =
        serde_json::from_slice(&payload_bytes).map_err(|_| SignedRequestError::Payload)?;
    if !payload.is_object() {
        return Err(SignedRequestError::Payload);
    }
    let algorithm = payload
        .get("algorithm")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !algorithm.eq_ignore_ascii_case("HMAC-SHA256") {
        return Err(SignedRequestError::Algorithm);
    }
    let mut m = mac(secret);
    m.update(payload_b64.as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| SignedRequestError::Signature)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let signed = sign("s3cret", &payload("17841400000000001", 1_767_225_600));
        assert!(!signed.contains('='));
        let p = verify("s3cret", &signed).expect("valid");
        assert_eq!(p["user_id"], "17841400000000001");
        assert_eq!(verify("other", &signed), Err(SignedRequestError::Signature));
        assert_eq!(
            verify("s3cret", "nodot"),
            Err(SignedRequestError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".*") {
            let _ = verify("k", &s);
        }
    }
}
