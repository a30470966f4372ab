//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), so receivers can use its
//! published verifier libraries: a secret `whsec_` + base64 of random bytes; each message
//! carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
//! space-separated list of `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where
//! the key is the secret's base64 part decoded. During a rotation both secrets sign.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;
use sha2::Sha256;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh secret (24 random bytes, as the specification's examples use).
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `v1,...` signature of one message under `secret`; `None` for a malformed secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header's value: one signature per secret, space-separated.
pub fn header(secrets: &[String], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (standard-webhooks, spec/standard-webhooks.md).
    #[test]
    fn signs_the_specifications_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_look_like_whsec_and_differ() {
        let a = new_secret();
        assert!(a.starts_with(SECRET_PREFIX));
        assert_ne!(a, new_secret());
        assert!(sign(&a, "msg_1", 1, "{}").is_some());
        assert!(sign("nope", "msg_1", 1, "{}").is_none());
    }
}
