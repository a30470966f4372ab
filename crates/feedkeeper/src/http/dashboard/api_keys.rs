//! The API page: what the developer API offers, and the user's API keys (made, shown once,
//! revoked). The API itself is `http::api`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use super::links::CsrfForm;
use crate::accounts::api_keys::new_key;
use crate::accounts::page::Tone;
use crate::accounts::{CurrentUser, Page};
use crate::clock::format_utc;
use crate::db::api as store;
use crate::error::{AppError, invalid_form, render};
use crate::http::path_id;
use crate::state::AppState;

/// The longest key name, in characters.
const MAX_NAME_CHARS: usize = 80;

struct KeyRow {
    id: i64,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    page: Page,
    base: String,
    keys: Vec<KeyRow>,
    /// Shown once, right after it was made.
    new_key: Option<(String, String)>,
    name: String,
    error: Option<String>,
    max_keys: u64,
    per_minute: u64,
}

async fn api_page(
    state: &AppState,
    user: &CurrentUser,
    new_key: Option<(String, String)>,
    refused: Option<(&str, String)>,
) -> Result<ApiPage, AppError> {
    let keys = store::list_keys(&state.db, user.id)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            prefix: format!("fk_{}_…", k.prefix),
            created: format_utc(k.created_at),
            last_used: k
                .last_used_at
                .map_or_else(|| "never".to_owned(), format_utc),
            revoked: k.revoked_at.map(format_utc),
        })
        .collect();
    let (name, error) = match refused {
        Some((name, error)) => (name.to_owned(), Some(error)),
        None => (String::new(), None),
    };
    Ok(ApiPage {
        page: Page::for_user(user, "API"),
        base: format!(
            "{}{}",
            state.config.public_url().trim_end_matches('/'),
            crate::http::api::BASE
        ),
        keys,
        new_key,
        name,
        error,
        max_keys: state.config.api.max_keys_per_user,
        per_minute: state.config.api.requests_per_minute,
    })
}

/// `GET /api`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    let new_key = user.take_revealed(&state).await?.and_then(|kept| {
        let (name, key) = kept.strip_prefix("apikey:")?.split_once('\n')?;
        Some((name.to_owned(), key.to_owned()))
    });
    render(&api_page(&state, &user, new_key, None).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewKeyForm {
    csrf: String,
    name: String,
}

/// `POST /api`: a new key, shown once on the page the browser is sent to.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<NewKeyForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let name = form.name.trim();
    let problem = if name.is_empty() {
        Some("Give the key a name, e.g. the program that will use it.".to_owned())
    } else if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        Some(format!(
            "The name can be at most {MAX_NAME_CHARS} characters, on one line."
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(invalid_form(
            &api_page(&state, &user, None, Some((&form.name, problem))).await?,
        ));
    }
    let made = new_key();
    let limit = state.config.api.max_keys_per_user;
    let stored = crate::db::retry_conflicts("API key create", || async {
        let mut tx = state.db.begin().await?;
        let key = store::create_key(
            &mut tx,
            user.id,
            name,
            &made.prefix,
            &made.secret_hash,
            limit,
            state.clock.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    })
    .await?;
    let Some(key) = stored else {
        let problem =
            format!("You have {limit} keys, the most allowed: revoke one you no longer use.");
        return Err(invalid_form(
            &api_page(&state, &user, None, Some((&form.name, problem))).await?,
        ));
    };
    tracing::info!(user = %user.id, key = key.id, "API key created");
    user.reveal_once(&state, &format!("apikey:{}\n{}", key.name, made.key))
        .await?;
    Ok(Redirect::to("/api").into_response())
}

/// `POST /api/keys/{id}/revoke`: the key stops working at once, on every node.
pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let id: i64 = path_id(&id)?;
    if let Some(prefix) = store::revoke_key(&state.db, user.id, id, state.clock.now()).await? {
        // Refused on this node at once; the others recognise keys from memory for at most
        // `api_keys::KNOWN_SECS`.
        state.api_limits.forget(&prefix);
        tracing::info!(user = %user.id, key = id, "API key revoked");
        user.flash_with(
            &state,
            Tone::Ok,
            "Revoked: programs using that key are refused from now on.",
        )
        .await?;
    } else if !store::list_keys(&state.db, user.id)
        .await?
        .iter()
        .any(|k| k.id == id)
    {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/api").into_response())
}
