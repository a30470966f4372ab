//! The client's "connected" page at an address of its own. It is not rendered at Meta's
//! callback address: reloading that would spend the one-time code again ("This login cannot be
//! completed"), and the code would stay in the address bar. The callback redirects here with
//! what to say, signed (under a key derived from the token keys) and valid for a day, so the
//! page survives reloads and nobody can make it name accounts of their choosing.

use axum::extract::{Query, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{LinkDone, problem, render, requester};
use crate::accounts::Page;
use crate::accounts::session::{hash_token, read_our_cookie};
use crate::clock::UnixSeconds;
use crate::db::links as link_store;
use crate::error::AppError;
use crate::ids::LinkId;
use crate::state::AppState;

/// How long a done page's address works.
const VALID_SECS: i64 = 86_400;
/// Longest list of names a done address carries.
const MAX_NAMES_BYTES: usize = 2_000;

fn keys(state: &AppState) -> Vec<[u8; 32]> {
    crate::crypto::address_keys(&state.config, "client done pages")
}

use crate::crypto::address_mac as signature;

/// The done page's address for accounts `names` connected through `link`, in the browser whose
/// link cookie hashes to `binding` (only that browser is shown the page).
pub(super) fn address(
    state: &AppState,
    link: LinkId,
    names: &[String],
    binding: &str,
    now: UnixSeconds,
) -> String {
    // A long list (a person with many Pages) is shortened, so the address stays small.
    let mut said = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        said.push_str(&format!(" and {} more", names.len() - 10));
    }
    let payload = format!(
        "{link}.{}.{}",
        now + VALID_SECS,
        URL_SAFE_NO_PAD.encode(said.as_bytes())
    );
    let payload = format!("{payload}.{}", bound_to(binding));
    let sig = keys(state)
        .first()
        .map(|k| URL_SAFE_NO_PAD.encode(signature(k, &payload)))
        .unwrap_or_default();
    format!("/connect/done?d={payload}.{sig}")
}

/// A short form of the browser binding's hash, as the address carries it.
fn bound_to(binding: &str) -> String {
    binding.chars().take(22).collect()
}

/// What a valid address says (the link and the names), in the browser it was made for.
fn read(
    state: &AppState,
    d: &str,
    binding: Option<&str>,
    now: UnixSeconds,
) -> Option<(LinkId, String)> {
    use subtle::ConstantTimeEq as _;
    if d.len() > MAX_NAMES_BYTES * 2 {
        return None;
    }
    let (payload, sig) = d.rsplit_once('.')?;
    let given = URL_SAFE_NO_PAD.decode(sig).ok()?;
    if !keys(state)
        .iter()
        .any(|k| bool::from(signature(k, payload)[..].ct_eq(&given)))
    {
        return None;
    }
    let mut parts = payload.splitn(4, '.');
    let link: LinkId = parts.next()?.parse().ok()?;
    let until: i64 = parts.next()?.parse().ok()?;
    let names = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let browser = parts.next()?;
    let same_browser =
        binding.is_some_and(|b| bool::from(bound_to(b).as_bytes().ct_eq(browser.as_bytes())));
    (until > now && same_browser).then_some((link, names))
}

#[derive(serde::Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    d: String,
}

/// `GET /connect/done?d=…`: "Connected", for as long as the address is valid.
pub async fn link_done(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<DoneQuery>,
) -> Result<Response, AppError> {
    let binding = read_our_cookie(&state.config, &headers, super::LINK_COOKIE).map(hash_token);
    let Some((link, names)) = read(&state, &query.d, binding.as_deref(), state.clock.now()) else {
        return problem(
            axum::http::StatusCode::NOT_FOUND,
            "This page has expired",
            "This confirmation is no longer available. If you connected your account, it stays \
             connected; the person who sent you the link can see it.",
            None,
            None,
        );
    };
    let link = link_store::get(&state.db, link).await?;
    render(&LinkDone {
        page: Page::public("Connected", String::new()),
        names,
        requester: requester(&state, &link, None).await?.name,
    })
}
