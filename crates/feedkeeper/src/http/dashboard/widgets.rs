//! The Widgets section: list, create, edit (with a live preview), duplicate and delete widgets,
//! and copy their embed code.
//!
//! Every read goes through `db::widgets::*_owned` with the logged-in user's id (another tenant's
//! widget is a 404, like a missing one), and a widget may only show one of its owner's
//! connections (checked inside the saving transaction).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use crate::accounts::{CurrentUser, Page};
use crate::db::connections::{self as stored, LoginKind};

use crate::db::widgets::{self as store, Widget};
use crate::error::{AppError, invalid_form, render};
use crate::http::path_id;
use crate::ids::{ConnectionId, WidgetId};
use crate::state::AppState;
use crate::widgets::settings::{FieldError, SettingsForm, WidgetSettings};
use crate::widgets::{self, SaveError, render as output};

/// An account the widget form offers.
struct AccountOption {
    id: i64,
    /// "@shop" or "@shop · Business connection FB".
    label: String,
}

struct WidgetRow {
    id: i64,
    name: String,
    account: String,
    layout: String,
    health: WidgetHealth,
}

/// How a widget's account is, in the owner's words, and what to do about it.
struct WidgetHealth {
    /// `ok`, `warn` or `bad` (the badge's tone).
    tone: &'static str,
    words: String,
    /// A link to act, and its label.
    action: Option<(String, String)>,
}

fn health_of(connection: Option<&stored::Connection>) -> WidgetHealth {
    let Some(c) = connection else {
        return WidgetHealth {
            tone: "bad",
            words: "Shows nothing: its account was disconnected; choose another account for it"
                .to_owned(),
            action: None,
        };
    };
    match c.status() {
        stored::Status::Active => WidgetHealth {
            tone: "ok",
            words: "Live".to_owned(),
            action: None,
        },
        stored::Status::Degraded => WidgetHealth {
            tone: "warn",
            words: "Showing its last good posts while Meta has trouble; new posts follow \
                    automatically"
                .to_owned(),
            action: None,
        },
        stored::Status::NeedsReconnect => WidgetHealth {
            tone: "bad",
            words: format!(
                "Posts frozen since {}: @{} needs reconnecting ({})",
                crate::clock::format_utc(c.status_changed_at),
                c.username,
                super::connections::reason_words(c.reason.as_deref())
            ),
            action: Some((
                format!("/connections/{}", c.id),
                format!("Reconnect @{}", c.username),
            )),
        },
    }
}

#[derive(Template)]
#[template(path = "widgets.html")]
struct ListPage {
    page: Page,
    widgets: Vec<WidgetRow>,
    has_accounts: bool,
}

#[derive(Template)]
#[template(path = "widget_form.html")]
struct FormPage {
    page: Page,
    /// `None` for a new widget.
    id: Option<i64>,
    form: SettingsForm,
    accounts: Vec<AccountOption>,
    errors: Vec<FieldError>,
    max_posts: u32,
    /// For a saved widget: its embed code and public address.
    embed_code: Option<String>,
    public_url: Option<String>,
    /// For a saved widget whose account needs the owner: what is wrong and what to do.
    health: Option<WidgetHealth>,
}

impl FormPage {
    /// The message for `field`, if it has a problem.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    fn action(&self) -> String {
        match self.id {
            Some(id) => format!("/widgets/{id}"),
            None => "/widgets".to_owned(),
        }
    }

    /// Whether a radio button's `value` is the form's for `field`.
    fn picked(&self, field: &str, value: &str) -> bool {
        let current = match field {
            "layout" => &self.form.layout,
            "captions" => &self.form.captions,
            "theme" => &self.form.theme,
            _ => return false,
        };
        current == value
    }

    fn selected(&self, id: &i64) -> bool {
        self.form.connection_id == id.to_string()
    }
}

fn account_label(c: &stored::Connection) -> String {
    match c.login_kind() {
        LoginKind::Facebook => format!("@{} · Business connection FB", c.username),
        LoginKind::Instagram => format!("@{}", c.username),
    }
}

async fn accounts(state: &AppState, user: &CurrentUser) -> Result<Vec<AccountOption>, AppError> {
    Ok(stored::list_owned(&state.db, user.id)
        .await?
        .iter()
        .map(|c| AccountOption {
            id: c.id.0,
            label: account_label(c),
        })
        .collect())
}

/// The embed code. `reserve` is the space the widget will take, as CSS (see [`reserved_space`]),
/// so nothing on the site moves when the feed arrives, even before embed.js runs.
fn embed_code(state: &AppState, public_id: &str, reserve: Option<&str>) -> String {
    let base = state.config.public_url().trim_end_matches('/').to_owned();
    let style = reserve
        .map(|r| format!(" style=\"padding-top:{r}\""))
        .unwrap_or_default();
    format!(
        "<div class=\"feedkeeper-widget\" data-widget=\"{public_id}\"{style}></div>\n\
         <script src=\"{base}/embed.js\" async></script>"
    )
}

/// The height a grid or slider widget will have at any width W, as one CSS length for the
/// embed code's `padding-top` (whose percentages are of the width): per breakpoint of the
/// widget (phones below 600 px, tablets below 960 px, computers), `rows × tile + gaps +
/// header`, with `tile = (W − (columns − 1) × gap) / columns`; `min()` with large steps picks
/// the breakpoint's. `None` for masonry, whose height depends on the pictures.
fn reserved_space(s: &WidgetSettings, shown: usize, has_header: bool) -> Option<String> {
    use widgets::settings::{Captions, Layout};
    // The posts shown now (an account with fewer posts than asked grows into the setting; the
    // page says to copy the code again after changing the layout).
    let posts = shown.min(s.posts as usize) as f64;
    if s.layout == Layout::Masonry || posts == 0.0 {
        return None;
    }
    let gap = f64::from(s.spacing);
    let header = if s.header && has_header {
        40.0 + gap
    } else {
        0.0
    };
    // A caption below is about two lines: an estimate, corrected when the widget reports.
    let caption = if s.captions == Captions::Below {
        46.0
    } else {
        0.0
    };
    let height = |columns: u32| {
        let cols = f64::from(columns.max(1));
        let rows = if s.layout == Layout::Slider {
            1.0
        } else {
            (posts / cols).ceil()
        };
        let share = rows / cols * 100.0;
        let fixed = header + (rows - 1.0) * gap - rows * (cols - 1.0) * gap / cols + rows * caption;
        format!("{share:.4}% + {fixed:.4}px")
    };
    const BIG: &str = "100000px";
    // 0 below the breakpoint, BIG from it on (at exactly 600 px: 0.001 px × 10⁹, clamped).
    let tablet_up = format!("clamp(0px, (100% - 599.999px) * 1000000000, {BIG})");
    let computer_up = format!("clamp(0px, (100% - 959.999px) * 1000000000, {BIG})");
    Some(format!(
        "min(calc({} + {tablet_up}), calc({} + {computer_up} + {BIG} - {tablet_up}), calc({} + {BIG} - {computer_up}))",
        height(s.columns_mobile),
        height(s.columns_tablet),
        height(s.columns_desktop),
    ))
}

async fn form_page(
    state: &AppState,
    user: &CurrentUser,
    widget: Option<&Widget>,
    form: SettingsForm,
    errors: Vec<FieldError>,
) -> Result<FormPage, AppError> {
    let title = match widget {
        Some(w) => format!("Widget: {}", w.name),
        None => "New widget".to_owned(),
    };
    // A saved widget's account: its health, and what it shows now (for the space the embed
    // code reserves).
    let (health, reserve) = match widget {
        Some(w) => {
            let connection = match w.connection_id {
                Some(id) => stored::get_owned(&state.db, user.id, id).await.ok(),
                None => None,
            };
            let health = Some(health_of(connection.as_ref())).filter(|h| h.tone != "ok");
            let settings = widgets::settings_of(w);
            let data = widgets::assemble(
                state,
                w.public_id.clone(),
                settings.clone(),
                connection.as_ref(),
            )
            .await?;
            let reserve = reserved_space(&settings, data.posts.len(), data.profile.is_some());
            (health, reserve)
        }
        None => (None, None),
    };
    Ok(FormPage {
        health,
        page: Page::for_user(user, title),
        id: widget.map(|w| w.id.0),
        form,
        accounts: accounts(state, user).await?,
        errors,
        max_posts: state.config.sync.max_posts as u32,
        embed_code: widget.map(|w| embed_code(state, &w.public_id, reserve.as_deref())),
        public_url: widget.map(|w| {
            format!(
                "{}/w/{}",
                state.config.public_url().trim_end_matches('/'),
                w.public_id
            )
        }),
    })
}

/// `GET /widgets`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    let connections = stored::list_owned(&state.db, user.id).await?;
    let rows = store::list_owned(&state.db, user.id)
        .await?
        .iter()
        .map(|w| {
            let s = widgets::settings_of(w);
            let connection = w
                .connection_id
                .and_then(|id| connections.iter().find(|c| c.id == id));
            WidgetRow {
                id: w.id.0,
                name: w.name.clone(),
                health: health_of(connection),
                account: connection
                    .map(account_label)
                    .unwrap_or_else(|| "No account (it was disconnected)".to_owned()),
                layout: match s.layout {
                    widgets::settings::Layout::Grid => "Grid",
                    widgets::settings::Layout::Slider => "Slider",
                    widgets::settings::Layout::Masonry => "Masonry",
                }
                .to_owned(),
            }
        })
        .collect();
    render(&ListPage {
        page: Page::for_user(&user, "Widgets"),
        widgets: rows,
        has_accounts: !connections.is_empty(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    connection: Option<i64>,
}

/// `GET /widgets/new` (`?connection=ID` pre-selects an account).
pub async fn new(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<NewQuery>,
) -> Result<Response, AppError> {
    let mut form = SettingsForm::from_settings("", None, &WidgetSettings::default());
    let accounts = accounts(&state, &user).await?;
    form.connection_id = query
        .connection
        .filter(|id| accounts.iter().any(|a| a.id == *id))
        .or_else(|| (accounts.len() == 1).then(|| accounts[0].id))
        .map(|id| id.to_string())
        .unwrap_or_default();
    render(&form_page(&state, &user, None, form, Vec::new()).await?)
}

/// The form's values, checked; on problems, the form again (422) with each message by its field.
async fn checked(
    state: &AppState,
    user: &CurrentUser,
    widget: Option<&Widget>,
    form: SettingsForm,
) -> Result<(String, ConnectionId, WidgetSettings), AppError> {
    user.verify_csrf(&form.csrf)?;
    match form.parse(state.config.sync.max_posts as u32) {
        Ok((name, Some(connection), settings)) => Ok((name, ConnectionId(connection), settings)),
        Ok(_) => Err(invalid_form(
            &form_page(
                state,
                user,
                widget,
                form,
                vec![(
                    "connection_id",
                    "Choose the Instagram account to show.".into(),
                )],
            )
            .await?,
        )),
        Err(errors) => Err(invalid_form(
            &form_page(state, user, widget, form, errors).await?,
        )),
    }
}

/// The form again, saying why saving it was refused.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    widget: Option<&Widget>,
    form: SettingsForm,
    why: SaveError,
) -> Result<AppError, AppError> {
    let error = match why {
        SaveError::NotYourConnection => (
            "connection_id",
            "Choose one of your own accounts.".to_owned(),
        ),
        too_many @ SaveError::TooMany { .. } => ("form", too_many.to_string()),
        SaveError::Db(e) => return Err(e.into()),
    };
    Ok(invalid_form(
        &form_page(state, user, widget, form, vec![error]).await?,
    ))
}

/// `POST /widgets`.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    let (name, connection, settings) = checked(&state, &user, None, form.clone()).await?;
    match widgets::create(&state, user.id, &name, connection, &settings).await {
        Ok(w) => {
            user.flash(
                &state,
                "Widget created. Copy its embed code into your website.",
            )
            .await?;
            Ok(Redirect::to(&format!("/widgets/{}", w.id)).into_response())
        }
        Err(why) => Err(refused(&state, &user, None, form, why).await?),
    }
}

/// `GET /widgets/{id}`.
pub async fn edit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    let form = SettingsForm::from_settings(
        &w.name,
        w.connection_id.map(|c| c.0),
        &widgets::settings_of(&w),
    );
    render(&form_page(&state, &user, Some(&w), form, Vec::new()).await?)
}

/// `POST /widgets/{id}`.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    let (name, connection, settings) = checked(&state, &user, Some(&w), form.clone()).await?;
    match widgets::update(&state, user.id, w.id, &name, connection, &settings).await {
        Ok(()) => {
            user.flash(&state, "Saved. Websites show the change within a minute.")
                .await?;
            Ok(Redirect::to(&format!("/widgets/{}", w.id)).into_response())
        }
        Err(why) => Err(refused(&state, &user, Some(&w), form, why).await?),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    csrf: String,
}

/// `POST /widgets/{id}/duplicate`: a copy with the same settings and account (a new address).
pub async fn duplicate(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    let Some(connection) = w.connection_id else {
        user.flash_with(
            &state,
            crate::accounts::session::Tone::Warn,
            "Choose an account for this widget first, then duplicate it.",
        )
        .await?;
        return Ok(Redirect::to(&format!("/widgets/{}", w.id)).into_response());
    };
    let name: String = format!("{} (copy)", w.name)
        .chars()
        .take(widgets::settings::MAX_NAME_CHARS)
        .collect();
    let copy = match widgets::create(
        &state,
        user.id,
        &name,
        connection,
        &widgets::settings_of(&w),
    )
    .await
    {
        Ok(copy) => copy,
        Err(SaveError::NotYourConnection) => return Err(AppError::NotFound),
        Err(too_many @ SaveError::TooMany { .. }) => {
            user.flash_with(
                &state,
                crate::accounts::session::Tone::Warn,
                &format!("Not duplicated: {too_many}."),
            )
            .await?;
            return Ok(Redirect::to(&format!("/widgets/{}", w.id)).into_response());
        }
        Err(SaveError::Db(e)) => return Err(e.into()),
    };
    user.flash(&state, "Duplicated. The copy has its own embed code.")
        .await?;
    Ok(Redirect::to(&format!("/widgets/{}", copy.id)).into_response())
}

#[derive(Template)]
#[template(path = "widget_delete.html")]
struct DeletePage {
    page: Page,
    id: i64,
    name: String,
}

/// `GET /widgets/{id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    render(&DeletePage {
        page: Page::for_user(&user, format!("Delete {}?", w.name)),
        id: w.id.0,
        name: w.name,
    })
}

/// `POST /widgets/{id}/delete`: its address answers 410 Gone from then on.
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    widgets::delete(&state, user.id, w.id).await?;
    user.flash(
        &state,
        &format!(
            "Deleted {}. Websites embedding it now show a short notice.",
            w.name
        ),
    )
    .await?;
    Ok(Redirect::to("/widgets").into_response())
}

/// `GET /widgets/{id}/preview?<form fields>`: the widget as the form describes it, before it is
/// saved (the edit page frames it and reloads it as the form changes). Values that do not pass
/// the checks fall back to the saved ones.
pub async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(form): Query<SettingsForm>,
) -> Result<Response, AppError> {
    let w = store::get_owned(&state.db, user.id, path_id::<WidgetId>(&id)?).await?;
    preview_of(&state, &user, Some(&w), &form).await
}

/// `GET /widgets/preview?<form fields>`: the same for a widget not saved yet.
pub async fn preview_new(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(form): Query<SettingsForm>,
) -> Result<Response, AppError> {
    preview_of(&state, &user, None, &form).await
}

/// The preview before an account is chosen: a prompt, not an empty widget.
fn choose_an_account() -> Response {
    let mut response = axum::response::Html(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Preview</title>\
         <p style=\"font:15px system-ui,sans-serif;color:#575b61;margin:1rem\">\
         Choose the Instagram account to show, and its posts appear here.</p></html>",
    )
    .into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox",
        ),
    );
    response
}

async fn preview_of(
    state: &AppState,
    user: &CurrentUser,
    saved: Option<&Widget>,
    form: &SettingsForm,
) -> Result<Response, AppError> {
    // Each valid field as the form has it, whatever else is invalid (a name not typed yet);
    // each invalid one as saved, or as the defaults for a new widget.
    let fallback = saved.map(widgets::settings_of).unwrap_or_default();
    let (chosen, settings) = form.for_preview(state.config.sync.max_posts as u32, &fallback);
    let connection = chosen
        .map(ConnectionId)
        .or_else(|| saved.and_then(|w| w.connection_id));
    // Only the owner's own accounts, as everywhere.
    let connection = match connection {
        Some(id) => stored::get_owned(&state.db, user.id, id).await.ok(),
        None => None,
    };
    if connection.is_none() {
        return Ok(choose_an_account());
    }
    let data = widgets::assemble(
        state,
        saved.map(|w| w.public_id.clone()).unwrap_or_default(),
        settings,
        connection.as_ref(),
    )
    .await?;
    let doc = output::document(&state.config, &data)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("preview: {e}")))?;
    // Framed by our own dashboard only.
    let csp = doc
        .csp
        .replace("frame-ancestors *", "frame-ancestors 'self'");
    let mut response = doc.html.into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, csp);
    }
    Ok(response)
}
