//! Tokens at rest: AES-256-GCM under named keys, so keys can be rotated.
//!
//! A sealed value reads `v1.<key id>.<base64url(nonce ‖ ciphertext)>`. The first configured key
//! seals; every configured key opens. Each value is bound to a context (e.g. the connection it
//! belongs to) as associated data, so a ciphertext copied to another row does not decrypt.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// A key as configured: `<id>:<base64 of 32 bytes>`.
#[derive(Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub id: String,
    bytes: [u8; 32],
}

impl NamedKey {
    /// Parses `id:base64key`.
    pub fn parse(text: &str) -> Result<NamedKey, String> {
        let (id, key) = text
            .trim()
            .split_once(':')
            .ok_or("a key must look like \"<id>:<base64 of 32 bytes>\"")?;
        if id.is_empty()
            || id.len() > 16
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "key id {id:?} must be 1-16 letters, digits, '-' or '_'"
            ));
        }
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| format!("key {id:?} is not valid base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("key {id:?} is {} bytes; it must be 32", b.len()))?;
        Ok(NamedKey {
            id: id.to_owned(),
            bytes,
        })
    }

    /// A fresh random key with the given id.
    pub fn generate(id: &str) -> NamedKey {
        NamedKey {
            id: id.to_owned(),
            bytes: rand::random(),
        }
    }

    /// The configuration form, `id:base64`.
    pub fn to_config_string(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.bytes))
    }
}

impl fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamedKey({}, [redacted])", self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no token key is configured")]
    NoKeys,
    #[error("token key ids must be unique; {0:?} appears twice")]
    DuplicateKeyId(String),
    #[error("the sealed value is not in the v1 format")]
    Malformed,
    #[error("the sealed value needs key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value does not decrypt: wrong key, wrong context, or tampered")]
    Undecryptable,
}

/// Seals and opens secrets with the configured keys.
#[derive(Clone)]
pub struct TokenCipher {
    current: String,
    ciphers: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.ciphers.keys().collect();
        ids.sort();
        write!(f, "TokenCipher(current {:?}, keys {ids:?})", self.current)
    }
}

impl TokenCipher {
    /// The first key seals; all of them open.
    pub fn new(keys: &[NamedKey]) -> Result<TokenCipher, CryptoError> {
        let current = keys.first().ok_or(CryptoError::NoKeys)?.id.clone();
        let mut ciphers = HashMap::new();
        for key in keys {
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.bytes));
            if ciphers.insert(key.id.clone(), cipher).is_some() {
                return Err(CryptoError::DuplicateKeyId(key.id.clone()));
            }
        }
        Ok(TokenCipher { current, ciphers })
    }

    /// Encrypts `plaintext` bound to `context` under the current key.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let cipher = &self.ciphers[&self.current];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!(
            "{VERSION}.{}.{}",
            self.current,
            URL_SAFE_NO_PAD.encode(blob)
        )
    }

    /// Decrypts a value sealed (under any configured key) for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::Undecryptable)
    }

    /// Whether `sealed` was made with an older key and should be sealed again.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.current.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cipher(ids: &[&str]) -> (TokenCipher, Vec<NamedKey>) {
        let keys: Vec<_> = ids.iter().map(|id| NamedKey::generate(id)).collect();
        (TokenCipher::new(&keys).unwrap(), keys)
    }

    #[test]
    fn sealed_tokens_open_only_in_their_context() {
        let (c, _) = cipher(&["k1"]);
        let sealed = c.seal("IGAAsecret-token", "connection:7");
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("IGAAsecret"));
        assert_eq!(c.open(&sealed, "connection:7").unwrap(), "IGAAsecret-token");
        assert_eq!(
            c.open(&sealed, "connection:8"),
            Err(CryptoError::Undecryptable)
        );
        assert_ne!(c.seal("same", "x"), c.seal("same", "x"), "nonces differ");
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = NamedKey::generate("2025");
        let sealed = TokenCipher::new(std::slice::from_ref(&old))
            .unwrap()
            .seal("tok", "c");
        let new = NamedKey::generate("2026");
        let rotated = TokenCipher::new(&[new, old]).unwrap();
        assert_eq!(rotated.open(&sealed, "c").unwrap(), "tok");
        assert!(rotated.needs_reseal(&sealed));
        assert!(!rotated.needs_reseal(&rotated.seal("tok", "c")));
    }

    #[test]
    fn bad_values_and_keys_are_clear_errors() {
        let (c, _) = cipher(&["k1"]);
        let sealed = c.seal("tok", "c");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(c.open(&tampered, "c"), Err(CryptoError::Undecryptable));
        assert_eq!(c.open("plain-token", "c"), Err(CryptoError::Malformed));
        assert_eq!(
            c.open("v1.k9.AAAA", "c"),
            Err(CryptoError::UnknownKey("k9".into()))
        );
        assert_eq!(c.open("v1.k1.!!", "c"), Err(CryptoError::Malformed));
        assert_eq!(TokenCipher::new(&[]).unwrap_err(), CryptoError::NoKeys);
        let k = NamedKey::generate("a");
        assert!(matches!(
            TokenCipher::new(&[k.clone(), k]),
            Err(CryptoError::DuplicateKeyId(_))
        ));
    }

    #[test]
    fn keys_parse_from_config_and_never_print() {
        let key = NamedKey::generate("prod-1");
        let text = key.to_config_string();
        assert_eq!(NamedKey::parse(&text).unwrap(), key);
        assert!(!format!("{key:?}").contains(&text[7..]));
        for bad in [
            "nokey",
            "id:",
            ":AAAA",
            "id:not base64!",
            "id:AAAA",
            "bad id!:AAAA",
        ] {
            assert!(NamedKey::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn anything_sealed_opens(plain in ".{0,200}", context in "[a-z:0-9]{0,20}") {
            let (c, _) = cipher(&["p"]);
            prop_assert_eq!(c.open(&c.seal(&plain, &context), &context).unwrap(), plain);
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,120}") {
            let (c, _) = cipher(&["k1"]);
            let _ = c.open(&input, "c");
            let _ = c.open(&format!("v1.k1.{input}"), "c");
        }
    }
}
