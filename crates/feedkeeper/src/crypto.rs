//! Secrets at rest: AES-256-GCM under named keys, so keys can be rotated, with one subkey per
//! purpose so that tokens and anonymous CSRF values never share a key.
//!
//! A sealed value reads `v2.<key id>.<base64url(nonce ‖ ciphertext)>`, encrypted with the
//! HKDF-SHA256 subkey of the named key for the cipher's [`Purpose`]. The first configured key
//! seals; every configured key opens. Each value is bound to a context (e.g. the connection it
//! belongs to) as associated data, so a ciphertext copied to another row does not decrypt.
//! `v1` values (sealed with the raw key, before subkeys existed) still open for tokens, and
//! `feedkeeper keys reseal` (or the maintenance job) seals them again as `v2` under the current
//! key, after which an old key can be removed.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const VERSION: &str = "v2";
const LEGACY_VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// What a cipher's subkeys are for. Each purpose derives its own key from every configured key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Instagram and Page tokens (connections, pending Page choices).
    Tokens,
    /// The sealed anonymous CSRF values of the log-in and sign-up forms.
    PreloginCsrf,
    /// Bodies of mail in the outbox (they carry one-time reconnect and reset links).
    Mail,
    /// Webhook endpoints' signing secrets.
    Webhooks,
    /// The developer API's kept answers to idempotent creates (they may hold a new link's
    /// address or an endpoint's secret).
    ApiAnswers,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Tokens => b"feedkeeper tokens v2",
            Purpose::PreloginCsrf => b"feedkeeper prelogin csrf v2",
            Purpose::Mail => b"feedkeeper mail v1",
            Purpose::Webhooks => b"feedkeeper webhook secrets v1",
            Purpose::ApiAnswers => b"feedkeeper api answers v1",
        }
    }
}

/// Keys for signing addresses of one purpose (a derived key per configured key: the first
/// signs, all verify, so a key rotation keeps old addresses working). Empty when no key is
/// configured.
pub fn address_keys(config: &crate::config::Config, purpose: &str) -> Vec<[u8; 32]> {
    config
        .security
        .keys()
        .map(|keys| keys.iter().map(|k| k.hash_key(purpose)).collect())
        .unwrap_or_default()
}

/// The 16-byte HMAC-SHA256 of `payload` under `key`, for signed addresses.
pub fn address_mac(key: &[u8; 32], payload: &str) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes()[..16].to_vec()
}

/// The HKDF-SHA256 subkey of `key` for `info`.
fn derive(key: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"feedkeeper"), key)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

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

    /// A key for keyed hashes (e.g. of emails in the log-in limit), derived for `purpose` so it
    /// is never the key that encrypts anything.
    pub fn hash_key(&self, purpose: &str) -> [u8; 32] {
        derive(&self.bytes, format!("feedkeeper hash {purpose}").as_bytes())
    }
}

impl Drop for NamedKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
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
    #[error("the sealed value is not in the v2 format")]
    Malformed,
    #[error("the sealed value needs key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value does not decrypt: wrong key, wrong context, or tampered")]
    Undecryptable,
}

/// Seals and opens secrets of one [`Purpose`] with the configured keys.
#[derive(Clone)]
pub struct TokenCipher {
    current: String,
    /// Subkey ciphers, by key id.
    ciphers: HashMap<String, Aes256Gcm>,
    /// Raw-key ciphers for `v1` values (tokens only), by key id.
    legacy: HashMap<String, Aes256Gcm>,
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
    pub fn new(keys: &[NamedKey], purpose: Purpose) -> Result<TokenCipher, CryptoError> {
        let current = keys.first().ok_or(CryptoError::NoKeys)?.id.clone();
        let mut ciphers = HashMap::new();
        let mut legacy = HashMap::new();
        for key in keys {
            let subkey = derive(&key.bytes, purpose.info());
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&subkey));
            if ciphers.insert(key.id.clone(), cipher).is_some() {
                return Err(CryptoError::DuplicateKeyId(key.id.clone()));
            }
            if purpose == Purpose::Tokens {
                let raw = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.bytes));
                legacy.insert(key.id.clone(), raw);
            }
        }
        Ok(TokenCipher {
            current,
            ciphers,
            legacy,
        })
    }

    /// The id of the key that seals.
    pub fn current_key(&self) -> &str {
        &self.current
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
        let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let ciphers = match version {
            VERSION => &self.ciphers,
            LEGACY_VERSION if !self.legacy.is_empty() => &self.legacy,
            _ => return Err(CryptoError::Malformed),
        };
        let cipher = ciphers
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

    /// Whether `sealed` was made with an older key (or the older format) and should be sealed
    /// again.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        let mut parts = sealed.split('.');
        parts.next() != Some(VERSION) || parts.next() != Some(self.current.as_str())
    }

    /// The id of the key a sealed value needs, if it is in a known format.
    pub fn key_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.split('.');
        match parts.next() {
            Some(VERSION | LEGACY_VERSION) => parts.next(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cipher(ids: &[&str]) -> (TokenCipher, Vec<NamedKey>) {
        let keys: Vec<_> = ids.iter().map(|id| NamedKey::generate(id)).collect();
        (TokenCipher::new(&keys, Purpose::Tokens).unwrap(), keys)
    }

    #[test]
    fn sealed_tokens_open_only_in_their_context() {
        let (c, _) = cipher(&["k1"]);
        let sealed = c.seal("IGAAsecret-token", "connection:7");
        assert!(sealed.starts_with("v2.k1."));
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
        let sealed = TokenCipher::new(std::slice::from_ref(&old), Purpose::Tokens)
            .unwrap()
            .seal("tok", "c");
        let new = NamedKey::generate("2026");
        let rotated = TokenCipher::new(&[new, old], Purpose::Tokens).unwrap();
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
            c.open("v2.k9.AAAA", "c"),
            Err(CryptoError::UnknownKey("k9".into()))
        );
        assert_eq!(c.open("v2.k1.!!", "c"), Err(CryptoError::Malformed));
        assert_eq!(
            TokenCipher::new(&[], Purpose::Tokens).unwrap_err(),
            CryptoError::NoKeys
        );
        let k = NamedKey::generate("a");
        assert!(matches!(
            TokenCipher::new(&[k.clone(), k], Purpose::Tokens),
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

    #[test]
    fn purposes_never_share_a_key() {
        let keys = [NamedKey::generate("k")];
        let tokens = TokenCipher::new(&keys, Purpose::Tokens).unwrap();
        let csrf = TokenCipher::new(&keys, Purpose::PreloginCsrf).unwrap();
        let sealed = csrf.seal("123:browser", "prelogin");
        assert_eq!(
            tokens.open(&sealed, "prelogin"),
            Err(CryptoError::Undecryptable)
        );
        assert_eq!(csrf.open(&sealed, "prelogin").unwrap(), "123:browser");
        assert_ne!(keys[0].hash_key("login"), keys[0].hash_key("other"));
    }

    #[test]
    fn values_sealed_with_the_raw_key_still_open_as_tokens_and_need_resealing() {
        let key = NamedKey::generate("old");
        // How values were sealed before subkeys: the raw key, `v1`.
        let raw = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.bytes));
        let nonce = [7u8; NONCE_LEN];
        let mut blob = nonce.to_vec();
        blob.extend(
            raw.encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"IGtoken",
                    aad: b"connection:1",
                },
            )
            .unwrap(),
        );
        let legacy = format!("v1.old.{}", URL_SAFE_NO_PAD.encode(blob));
        let tokens = TokenCipher::new(std::slice::from_ref(&key), Purpose::Tokens).unwrap();
        assert_eq!(tokens.open(&legacy, "connection:1").unwrap(), "IGtoken");
        assert!(tokens.needs_reseal(&legacy));
        assert_eq!(TokenCipher::key_of(&legacy), Some("old"));
        let csrf = TokenCipher::new(&[key], Purpose::PreloginCsrf).unwrap();
        assert_eq!(
            csrf.open(&legacy, "connection:1"),
            Err(CryptoError::Malformed)
        );
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
