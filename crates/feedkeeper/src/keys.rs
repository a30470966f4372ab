//! Key rotation: seals every stored secret again under the current key (the first of
//! `security.token_keys`), so an old key can be removed from the configuration. Used by
//! `feedkeeper keys reseal` and, a batch at a time, by the maintenance job after a rotation.
//! Each value is replaced only if it is still the one that was read, so a reseal never undoes a
//! refresh or a reconnect that happened meanwhile.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::connections::token_context;
use crate::crypto::TokenCipher;
use crate::db::{DbError, connections, page_choices};
use crate::ids::ConnectionId;
use crate::state::AppState;

/// What a reseal did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// Values sealed again under the current key.
    pub resealed: usize,
    /// Connections whose token no configured key opens (its key was removed too early): they
    /// need a reconnect, and keep their sealed value untouched.
    pub unreadable: Vec<ConnectionId>,
    /// Key ids still needed by stored values after this run (besides the current key).
    pub keys_still_used: BTreeSet<String>,
}

impl ResealReport {
    /// Whether every stored value is sealed under the current key.
    pub fn complete(&self) -> bool {
        self.keys_still_used.is_empty()
    }
}

/// The prefix of values sealed under the current key in the current format.
fn current_prefix(cipher: &TokenCipher) -> String {
    format!("v2.{}.", cipher.current_key())
}

/// Seals again up to `limit` connection tokens (and every pending Page choice) that an older
/// key or format sealed.
pub async fn reseal(state: &AppState, limit: i64) -> Result<ResealReport, DbError> {
    let mut report = ResealReport::default();
    let prefix = current_prefix(&state.cipher);
    for (id, sealed) in connections::sealed_not_under(&state.db, &prefix, limit).await? {
        match state.cipher.open(&sealed, &token_context(id)) {
            Ok(token) => {
                let fresh = state.cipher.seal(&token, &token_context(id));
                if connections::reseal_token(&state.db, id, &sealed, &fresh).await? {
                    report.resealed += 1;
                }
            }
            Err(e) => {
                tracing::warn!(connection = %id, error = %e, "a stored token cannot be opened to reseal it");
                report.unreadable.push(id);
            }
        }
    }
    for (id_hash, sealed) in page_choices::sealed_not_under(&state.db, &prefix).await? {
        let context = format!("page-choice:{id_hash}");
        if let Ok(pages) = state.cipher.open(&sealed, &context) {
            let fresh = state.cipher.seal(&pages, &context);
            if page_choices::reseal(&state.db, &id_hash, &sealed, &fresh).await? {
                report.resealed += 1;
            }
        }
    }
    // What is left, for the operator: which old keys are still needed.
    report.keys_still_used = keys_in_use(state).await?;
    Ok(report)
}

/// Key ids (other than the current one) that stored values still need.
pub async fn keys_in_use(state: &AppState) -> Result<BTreeSet<String>, DbError> {
    let prefix = current_prefix(&state.cipher);
    let mut used = BTreeSet::new();
    for (_, sealed) in connections::sealed_not_under(&state.db, &prefix, i64::MAX).await? {
        if let Some(key) = TokenCipher::key_of(&sealed) {
            used.insert(key.to_owned());
        }
    }
    for (_, sealed) in page_choices::sealed_not_under(&state.db, &prefix).await? {
        if let Some(key) = TokenCipher::key_of(&sealed) {
            used.insert(key.to_owned());
        }
    }
    used.remove(state.cipher.current_key());
    Ok(used)
}
