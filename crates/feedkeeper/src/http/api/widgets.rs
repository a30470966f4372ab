//! `/widgets`: the owner's widgets (list, create, read, change, delete) and the feed each shows.
//! Values are checked by the dashboard form's own rules (`widgets::settings`), so the API and
//! the form can never disagree on what is allowed.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{self, Answer, Idempotent, replay_or};
use super::paging::{self, PageParams, page_of};
use super::problem::{ApiError, ApiId, ApiJson, ApiQuery, FieldProblem, Problem};
use super::{BASE, Caller, at};
use crate::db::widgets::{self as store, Widget};
use crate::ids::{ConnectionId, WidgetId};
use crate::state::AppState;
use crate::widgets::settings::{Captions, Layout, SettingsForm, Theme, WidgetSettings};
use crate::widgets::{self, Lookup, SaveError};

/// Where a widget shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Embed {
    /// The HTML to paste into a website.
    pub html: String,
    /// The widget's own page (for an iframe).
    pub url: String,
    /// The feed as JSON (public, as the widget is).
    pub feed_url: String,
}

/// A widget.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetOut {
    pub id: i64,
    pub name: String,
    /// The account it shows (null once that account was disconnected).
    pub connection_id: Option<i64>,
    /// The id in its public address.
    pub public_id: String,
    pub embed: Embed,
    pub settings: WidgetSettings,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl WidgetOut {
    fn of(state: &AppState, w: &Widget) -> WidgetOut {
        let base = state.config.public_url().trim_end_matches('/').to_owned();
        let public_id = &w.public_id;
        WidgetOut {
            id: w.id.0,
            name: w.name.clone(),
            connection_id: w.connection_id.map(|c| c.0),
            public_id: public_id.clone(),
            embed: Embed {
                html: format!(
                    "<div class=\"feedkeeper-widget\" data-widget=\"{public_id}\"></div>\n\
                     <script src=\"{base}/embed.js\" async></script>"
                ),
                url: format!("{base}/w/{public_id}"),
                feed_url: format!("{base}/w/{public_id}.json"),
            },
            settings: widgets::settings_of(w),
            created_at: at(w.created_at),
            updated_at: at(w.updated_at),
        }
    }
}

page_of!(WidgetList, WidgetOut);

/// Which kinds of posts show (each omitted one stays as it is).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypesIn {
    pub images: Option<bool>,
    pub videos: Option<bool>,
    pub reels: Option<bool>,
    pub carousels: Option<bool>,
}

/// Settings to set; each omitted (or null) one keeps its value (the default, on a create).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsIn {
    pub layout: Option<Layout>,
    /// Columns on computers.
    #[schema(minimum = 1, maximum = 8)]
    pub columns_desktop: Option<u32>,
    /// Columns on tablets (600–959 px wide).
    #[schema(minimum = 1, maximum = 6)]
    pub columns_tablet: Option<u32>,
    /// Columns on phones (below 600 px).
    #[schema(minimum = 1, maximum = 4)]
    pub columns_mobile: Option<u32>,
    /// How many posts show (up to the server's `sync.max_posts`, 50 unless set otherwise).
    #[schema(minimum = 1)]
    pub posts: Option<u32>,
    /// Gap between posts, in CSS pixels.
    #[schema(minimum = 0, maximum = 40)]
    pub spacing: Option<u32>,
    /// Corner radius, in CSS pixels.
    #[schema(minimum = 0, maximum = 40)]
    pub radius: Option<u32>,
    pub captions: Option<Captions>,
    pub lightbox: Option<bool>,
    pub header: Option<bool>,
    pub follow_button: Option<bool>,
    pub theme: Option<Theme>,
    pub transparent: Option<bool>,
    pub types: Option<TypesIn>,
    /// A post shows only if its caption has one of these words or hashtags (empty: all).
    #[schema(max_items = 50)]
    pub include_words: Option<Vec<String>>,
    /// A post whose caption has one of these is hidden.
    #[schema(max_items = 50)]
    pub exclude_words: Option<Vec<String>>,
    /// Posts hidden by hand: links to Instagram posts, or their codes.
    #[schema(max_items = 50)]
    pub hidden_posts: Option<Vec<String>>,
    pub image_optimization: Option<bool>,
    pub notifications: Option<bool>,
}

impl SettingsIn {
    fn apply(&self, s: &mut WidgetSettings) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { s.$field = v.clone(); } )* };
        }
        set!(
            layout,
            columns_desktop,
            columns_tablet,
            columns_mobile,
            posts,
            spacing,
            radius,
            captions,
            lightbox,
            header,
            follow_button,
            theme,
            transparent,
            include_words,
            exclude_words,
            hidden_posts,
            image_optimization,
            notifications
        );
        if let Some(t) = &self.types {
            let types = &mut s.types;
            for (field, value) in [
                (&mut types.images, t.images),
                (&mut types.videos, t.videos),
                (&mut types.reels, t.reels),
                (&mut types.carousels, t.carousels),
            ] {
                if let Some(v) = value {
                    *field = v;
                }
            }
        }
    }
}

/// A new widget.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetCreate {
    /// Only you see it (one line).
    #[schema(min_length = 1, max_length = 80, pattern = r"\S")]
    pub name: String,
    /// One of your connections.
    pub connection_id: i64,
    pub settings: Option<SettingsIn>,
}

/// Changes to a widget; omitted (or null) fields stay as they are.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetPatch {
    #[schema(min_length = 1, max_length = 80, pattern = r"\S")]
    pub name: Option<String>,
    pub connection_id: Option<i64>,
    pub settings: Option<SettingsIn>,
}

/// Checks a widget's name, account and settings by the form's rules: every problem at once,
/// each naming its field as the API calls it.
fn checked(
    state: &AppState,
    name: &str,
    connection: i64,
    settings: &WidgetSettings,
) -> Result<(String, WidgetSettings), ApiError> {
    let form = SettingsForm::from_settings(name, Some(connection), settings);
    match form.parse(state.config.sync.max_posts as u32) {
        Ok((name, _, settings)) => Ok((name, settings)),
        Err(errors) => Err(ApiError::Invalid {
            detail: errors
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            errors: errors
                .into_iter()
                .map(|(field, message)| FieldProblem {
                    field: match field {
                        "name" | "connection_id" => field.to_owned(),
                        other => format!("settings.{other}"),
                    },
                    message,
                })
                .collect(),
        }),
    }
}

fn save_refused(refused: SaveError) -> ApiError {
    match refused {
        SaveError::NotYourConnection => {
            ApiError::field("connection_id", "Choose one of your own connections.")
        }
        too_many @ SaveError::TooMany { .. } => ApiError::Conflict(too_many.to_string()),
        SaveError::Db(e) => e.into(),
    }
}

/// The owner's widgets, by id.
#[utoipa::path(get, path = "/widgets", tag = "widgets", params(PageParams),
    responses(
        (status = 200, body = WidgetList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<WidgetList>, ApiError> {
    let page = q.read()?;
    // At most `widgets.max_per_user` live ones: read whole, paged here.
    let all = store::list_owned(&state.db, caller.owner).await?;
    let (rows, next) = paging::slice(all, &page, |w| w.id.0);
    Ok(Json(WidgetList::of((
        rows.iter().map(|w| WidgetOut::of(&state, w)).collect(),
        next,
    ))))
}

/// Creates a widget. Send an `Idempotency-Key` to make retrying safe.
#[utoipa::path(post, path = "/widgets", tag = "widgets", request_body = WidgetCreate,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Repeats with this key within a day get the first answer")),
    responses(
        (status = 201, body = WidgetOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "At the server's widget limit, or a request with the same \
                Idempotency-Key is being handled"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(input): ApiJson<WidgetCreate>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::from_request(&caller, &headers, "POST /widgets", &input)?;
    if let Some(replay) = idempotency::replayed(&state, idem.as_ref()).await? {
        return Ok(replay);
    }
    let mut settings = WidgetSettings::default();
    if let Some(s) = &input.settings {
        s.apply(&mut settings);
    }
    let (name, settings) = checked(&state, &input.name, input.connection_id, &settings)?;
    let public_id = widgets::new_public_id();
    let outcome = crate::db::retry_conflicts("API widget create", || async {
        let mut tx = state.db.begin().await?;
        let widget = match widgets::create_in(
            &state,
            &mut tx,
            caller.owner,
            &name,
            ConnectionId(input.connection_id),
            &settings,
            &public_id,
        )
        .await?
        {
            Ok(widget) => widget,
            Err(refused) => return Ok(Err(refused)),
        };
        let answer = Answer::created(
            format!("{BASE}/widgets/{}", widget.id),
            &WidgetOut::of(&state, &widget),
        )
        .map_err(|e| crate::db::DbError::Other(sqlx::Error::Protocol(e.to_string())))?;
        if !idempotency::keep(idem.as_ref(), &state, &mut tx, &answer).await? {
            return Ok(Ok(None));
        }
        tx.commit().await?;
        Ok(Ok(Some((widget, answer))))
    })
    .await?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // A repeat that waited for the first request sees its widget counted: the first
        // answer, not the limit.
        Err(refused) => return replay_or(&state, idem.as_ref(), save_refused(refused)).await,
    };
    match outcome {
        Some((widget, answer)) => {
            widgets::created_now(&state, &widget);
            tracing::info!(user = %caller.owner, widget = %widget.id, key = caller.key_id, "widget created through the API");
            Ok(answer.into_response())
        }
        None => idempotency::after_lost_race(&state, idem.as_ref()).await,
    }
}

/// One widget.
#[utoipa::path(get, path = "/widgets/{id}", tag = "widgets",
    params(("id" = i64, Path, description = "The widget's id")),
    responses(
        (status = 200, body = WidgetOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<WidgetId>,
) -> Result<Json<WidgetOut>, ApiError> {
    let w = store::get_owned(&state.db, caller.owner, id).await?;
    Ok(Json(WidgetOut::of(&state, &w)))
}

/// Changes a widget's name, account or settings (only the fields sent).
#[utoipa::path(patch, path = "/widgets/{id}", tag = "widgets", request_body = WidgetPatch,
    params(("id" = i64, Path, description = "The widget's id")),
    responses(
        (status = 200, body = WidgetOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "The widget kept changing meanwhile"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<WidgetId>,
    ApiJson(patch): ApiJson<WidgetPatch>,
) -> Result<Json<WidgetOut>, ApiError> {
    // Read, change what was sent, save only if nobody saved meanwhile; else again.
    for _ in 0..8 {
        let w = store::get_owned(&state.db, caller.owner, id).await?;
        let mut settings = widgets::settings_of(&w);
        if let Some(s) = &patch.settings {
            s.apply(&mut settings);
        }
        let connection = match (patch.connection_id, w.connection_id) {
            (Some(c), _) => c,
            (None, Some(c)) => c.0,
            (None, None) => {
                return Err(ApiError::field(
                    "connection_id",
                    "This widget's account was disconnected: choose one of your connections.",
                ));
            }
        };
        let name = patch.name.as_deref().unwrap_or(&w.name);
        let (name, settings) = checked(&state, name, connection, &settings)?;
        match widgets::update_at_version(
            &state,
            caller.owner,
            w.id,
            Some(w.version),
            &name,
            ConnectionId(connection),
            &settings,
        )
        .await
        {
            Ok(()) => {
                let w = store::get_owned(&state.db, caller.owner, id).await?;
                return Ok(Json(WidgetOut::of(&state, &w)));
            }
            // Saved meanwhile (or deleted: the next read says which).
            Err(SaveError::Db(crate::db::DbError::NotFound)) => continue,
            Err(refused) => return Err(save_refused(refused)),
        }
    }
    Err(ApiError::Conflict(
        "The widget keeps changing meanwhile; send the change again.".to_owned(),
    ))
}

/// Deletes a widget: its address answers 410 Gone from then on.
#[utoipa::path(delete, path = "/widgets/{id}", tag = "widgets",
    params(("id" = i64, Path, description = "The widget's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<WidgetId>,
) -> Result<StatusCode, ApiError> {
    if widgets::delete(&state, caller.owner, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The feed the widget shows now: its profile, health and posts with feedkeeper's own image
/// addresses (the document of `/w/{public_id}.json`, described in docs/widget-feed.schema.json).
#[utoipa::path(get, path = "/widgets/{id}/feed", tag = "widgets",
    params(("id" = i64, Path, description = "The widget's id")),
    responses(
        (status = 200, body = Object, description = "The widget feed document"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiId(id): ApiId<WidgetId>,
) -> Result<Response, ApiError> {
    let w = store::get_owned(&state.db, caller.owner, id).await?;
    match widgets::load(&state, &w.public_id).await? {
        Lookup::Found(data) => {
            let json = widgets::render::json(&data).map_err(anyhow::Error::from)?;
            Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                json,
            )
                .into_response())
        }
        Lookup::NotFound | Lookup::Gone => Err(ApiError::NotFound),
    }
}
