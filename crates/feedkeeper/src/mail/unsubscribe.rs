//! The one-click unsubscribe address in every alert (`List-Unsubscribe` with
//! `List-Unsubscribe-Post`, RFC 8058): `/mail/unsubscribe/{token}`, where the token names the
//! recipient and the category and is signed under a key derived from the token keys, so
//! nobody can turn off someone else's mail by guessing. It does not expire: a mail read a year
//! later must still be able to stop the next one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::UserId;
use crate::state::AppState;

/// Longest token accepted (an address is at most 254 bytes).
pub const MAX_TOKEN_LEN: usize = 512;

fn keys(state: &AppState) -> Vec<[u8; 32]> {
    crate::crypto::address_keys(&state.config, "mail unsubscribe")
}

use crate::crypto::address_mac as signature;

/// The token for `recipient` and `owner`'s `category` mail.
pub fn token(state: &AppState, owner: UserId, recipient: &str, category: &str) -> String {
    let payload = format!("{category}\n{owner}\n{recipient}");
    let key = keys(state).into_iter().next().unwrap_or([0; 32]);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(signature(&key, &payload))
    )
}

/// The address to put in a message.
pub fn address(state: &AppState, owner: UserId, recipient: &str, category: &str) -> String {
    format!(
        "{}/mail/unsubscribe/{}",
        state.config.public_url(),
        token(state, owner, recipient, category)
    )
}

/// What a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub owner: UserId,
    pub recipient: String,
    pub category: String,
}

/// What a token names, if its signature holds under any configured key.
pub fn verify(state: &AppState, token: &str) -> Option<Named> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (payload, sig) = token.split_once('.')?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let valid = keys(state).iter().any(|key| {
        let expected = signature(key, &payload);
        subtle::ConstantTimeEq::ct_eq(expected.as_slice(), sig.as_slice()).into()
    });
    if !valid {
        return None;
    }
    let mut parts = payload.splitn(3, '\n');
    let category = parts.next()?.to_owned();
    let owner = UserId(parts.next()?.parse().ok()?);
    let recipient = parts.next()?.to_owned();
    Some(Named {
        owner,
        recipient,
        category,
    })
}
