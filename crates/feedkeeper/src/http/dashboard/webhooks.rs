//! The Webhooks pages: a user's endpoints (add, see, send a test event, rotate the secret,
//! turn off or on, delete) and each one's delivery log. A new secret is shown once, on the page
//! the browser is sent to after making it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use super::links::CsrfForm;
use crate::accounts::page::Tone;
use crate::accounts::{CurrentUser, Page};
use crate::clock::format_utc;
use crate::db::webhooks::{self as store, Endpoint};
use crate::error::{AppError, invalid_form, render};
use crate::http::path_id;
use crate::state::AppState;
use crate::webhooks::{self, signing};

/// How long the secret before a rotation keeps signing.
const ROTATION_OVERLAP_SECS: i64 = 86_400;
/// Deliveries listed on an endpoint's page.
const LOG_ROWS: i64 = 50;

struct EndpointRow {
    id: i64,
    url: String,
    events: String,
    state: String,
    tone: &'static str,
}

fn events_words(e: &Endpoint) -> String {
    if e.events.is_empty() {
        "all events".to_owned()
    } else {
        e.events.replace(',', ", ")
    }
}

fn state_words(e: &Endpoint) -> (String, &'static str) {
    match (&e.disabled_reason, e.enabled, e.failing_since) {
        (Some(reason), false, _) => (format!("Off: {reason}"), "bad"),
        (None, false, _) => ("Off".to_owned(), "off"),
        (_, true, Some(since)) => (format!("On; failing since {}", format_utc(since)), "warn"),
        (_, true, None) => ("On".to_owned(), "ok"),
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    page: Page,
    endpoints: Vec<EndpointRow>,
    event_types: Vec<(&'static str, bool)>,
    url: String,
    error: Option<String>,
    max: u64,
}

async fn list_page(
    state: &AppState,
    user: &CurrentUser,
    form: Option<(&NewForm, String)>,
) -> Result<ListPage, AppError> {
    let endpoints = store::list_owned_endpoints(&state.db, user.id)
        .await?
        .into_iter()
        .map(|e| {
            let (state, tone) = state_words(&e);
            EndpointRow {
                id: e.id,
                events: events_words(&e),
                url: e.url,
                state,
                tone,
            }
        })
        .collect();
    let (url, chosen, error) = match form {
        Some((f, error)) => (f.url.clone(), f.chosen(), Some(error)),
        None => (String::new(), Vec::new(), None),
    };
    Ok(ListPage {
        page: Page::for_user(user, "Webhooks"),
        endpoints,
        event_types: webhooks::EVENT_TYPES
            .iter()
            .map(|t| (*t, chosen.contains(&t.to_string())))
            .collect(),
        url,
        error,
        max: state.config.webhooks.max_per_user,
    })
}

/// `GET /webhooks`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    render(&list_page(&state, &user, None).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewForm {
    csrf: String,
    url: String,
    #[serde(rename = "connection.needs_reconnect")]
    needs_reconnect: Option<String>,
    #[serde(rename = "connection.expiring")]
    expiring: Option<String>,
    #[serde(rename = "connection.restored")]
    restored: Option<String>,
    #[serde(rename = "feed.updated")]
    feed_updated: Option<String>,
}

impl NewForm {
    fn chosen(&self) -> Vec<String> {
        [
            (webhooks::NEEDS_RECONNECT, &self.needs_reconnect),
            (webhooks::EXPIRING, &self.expiring),
            (webhooks::RESTORED, &self.restored),
            (webhooks::FEED_UPDATED, &self.feed_updated),
        ]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(t, _)| t.to_owned())
        .collect()
    }
}

/// `POST /webhooks`: a new endpoint; its secret is shown once on its page.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<NewForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let chosen = form.chosen();
    let events: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let created = crate::db::retry_conflicts("webhook endpoint create", || async {
        let mut tx = state.db.begin().await?;
        let made =
            webhooks::create_endpoint_in(&state, &mut tx, user.id, &form.url, &events).await?;
        if made.is_ok() {
            tx.commit().await?;
        }
        Ok(made)
    })
    .await?;
    let (endpoint, secret) = match created {
        Ok(made) => made,
        Err(refused) => {
            return Err(invalid_form(
                &list_page(&state, &user, Some((&form, refused.to_string()))).await?,
            ));
        }
    };
    tracing::info!(user = %user.id, endpoint = endpoint.id, "webhook endpoint created");
    user.reveal_once(&state, &format!("webhook:{}:{secret}", endpoint.id))
        .await?;
    Ok(Redirect::to(&format!("/webhooks/{}", endpoint.id)).into_response())
}

struct DeliveryRow {
    when: String,
    event_type: String,
    event_id: String,
    status: String,
    tone: &'static str,
    attempts: i64,
    answer: String,
    duration: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct EndpointPage {
    page: Page,
    id: i64,
    url: String,
    events: String,
    state: String,
    tone: &'static str,
    enabled: bool,
    /// Shown once, after creating or rotating.
    secret: Option<String>,
    rotating_until: Option<String>,
    deliveries: Vec<DeliveryRow>,
}

/// `GET /webhooks/{id}`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let e = store::get_owned_endpoint(&state.db, user.id, path_id(&id)?).await?;
    let secret = user.take_revealed(&state).await?.and_then(|kept| {
        let (kept_id, secret) = kept.strip_prefix("webhook:")?.split_once(':')?;
        (kept_id == e.id.to_string()).then(|| secret.to_owned())
    });
    let now = state.clock.now();
    let deliveries = store::list_deliveries(&state.db, e.id, LOG_ROWS)
        .await?
        .into_iter()
        .map(|d| {
            let (status, tone) = match d.status.as_str() {
                "delivered" => ("Delivered".to_owned(), "ok"),
                "failed" => ("Given up".to_owned(), "bad"),
                _ if d.attempts > 0 => ("Retrying".to_owned(), "warn"),
                _ => ("Waiting".to_owned(), "warn"),
            };
            DeliveryRow {
                when: format_utc(d.last_attempt_at.unwrap_or(d.created_at)),
                event_type: d.event_type,
                event_id: d.event_id,
                status,
                tone,
                attempts: d.attempts,
                answer: match (d.last_status, d.last_error) {
                    (Some(code), None) => format!("HTTP {code}"),
                    (_, Some(error)) => error,
                    (None, None) => "—".to_owned(),
                },
                duration: d
                    .last_duration_ms
                    .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms")),
            }
        })
        .collect();
    let (state_text, tone) = state_words(&e);
    render(&EndpointPage {
        page: Page::for_user(&user, "Webhook endpoint"),
        id: e.id,
        events: events_words(&e),
        state: state_text,
        tone,
        enabled: e.enabled,
        secret,
        rotating_until: e
            .previous_secret_until
            .filter(|until| *until > now)
            .map(format_utc),
        url: e.url,
        deliveries,
    })
}

async fn owned(state: &AppState, user: &CurrentUser, id: &str) -> Result<Endpoint, AppError> {
    Ok(store::get_owned_endpoint(&state.db, user.id, path_id(id)?).await?)
}

/// `POST /webhooks/{id}/test`: a `feedkeeper.test` event, delivered like any other.
pub async fn send_test(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let e = owned(&state, &user, &id).await?;
    if !webhooks::send_test(&state, &e).await? {
        user.flash_with(
            &state,
            Tone::Warn,
            "A test event is still on its way (or being retried); see its delivery below.",
        )
        .await?;
        return Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response());
    }
    user.flash(
        &state,
        "A test event is on its way; its delivery shows below in a moment.",
    )
    .await?;
    Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
}

/// `POST /webhooks/{id}/rotate`: a new secret, shown once; the old one signs too for a day.
pub async fn rotate(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let e = owned(&state, &user, &id).await?;
    let now = state.clock.now();
    if let Some(until) = e.previous_secret_until.filter(|until| *until > now) {
        user.flash_with(
            &state,
            Tone::Warn,
            &format!(
                "The secret was changed less than a day ago; the one before it still signs \
                 until {}. Change it again after that.",
                format_utc(until)
            ),
        )
        .await?;
        return Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response());
    }
    let secret = signing::new_secret();
    let sealed = webhooks::seal_secret(&state, user.id, &secret);
    store::rotate_secret(&state.db, e.id, &sealed, now + ROTATION_OVERLAP_SECS, now).await?;
    user.reveal_once(&state, &format!("webhook:{}:{secret}", e.id))
        .await?;
    Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
}

/// `POST /webhooks/{id}/toggle`: off, or on again.
pub async fn toggle(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let e = owned(&state, &user, &id).await?;
    if e.enabled {
        webhooks::set_endpoint_enabled(&state, &e, false).await?;
        user.flash(&state, "Turned off: no events are sent to it.")
            .await?;
    } else {
        let pending = webhooks::set_endpoint_enabled(&state, &e, true).await?;
        user.flash(
            &state,
            &if pending == 0 {
                "Turned on: new events are sent to it.".to_owned()
            } else {
                format!(
                    "Turned on: new events are sent to it, and the {pending} kept meanwhile now."
                )
            },
        )
        .await?;
    }
    Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
}

/// `POST /webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let e = owned(&state, &user, &id).await?;
    if store::delete_owned_endpoint(&state.db, user.id, e.id).await? {
        user.flash_with(
            &state,
            Tone::Ok,
            &format!("Deleted the endpoint {}.", e.url),
        )
        .await?;
    }
    Ok(Redirect::to("/webhooks").into_response())
}
