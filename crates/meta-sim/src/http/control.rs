//! The control API under `/__sim/` (JSON in and out) and the HTML index at `/`: thin handlers
//! over the `Simulator` methods. Malformed input becomes `400 {"error": "…"}`, never a panic.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::account::NewAccount;
use crate::app_config::AppConfig;
use crate::error::SimError;
use crate::event::{AccountEvent, GlobalEvent};
use crate::http::host::Host;
use crate::http::html_response;
use crate::http::pages::{self, AccountRow, Hidden, Index};
use crate::media::NewMedia;
use crate::outage::Outage;
use crate::rate_limit::Throttle;
use crate::settings::Settings;
use crate::simulator::Simulator;
use crate::timestamp::iso;

/// A control-API failure: a status and a message.
pub(crate) struct ControlError {
    status: StatusCode,
    message: String,
}

impl ControlError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<SimError> for ControlError {
    fn from(e: SimError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

type Reply = Result<Response, ControlError>;

fn ok<T: serde::Serialize>(value: T) -> Reply {
    Ok(axum::Json(value).into_response())
}

fn created<T: serde::Serialize>(value: T) -> Reply {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ControlError::bad("the request body must be JSON"));
    }
    serde_json::from_slice(body).map_err(|e| ControlError::bad(format!("invalid JSON body: {e}")))
}

/// JSON 404 for unknown paths outside the Meta hosts.
pub(crate) fn not_found(path: &str) -> Response {
    ControlError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no such endpoint: {path} (Meta hosts live under /www.instagram.com, /api.instagram.com, /graph.instagram.com, /www.facebook.com, /graph.facebook.com, /scontent.cdninstagram.com; the control API under /__sim/)"
        ),
    }
    .into_response()
}

async fn method_not_allowed() -> Response {
    ControlError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed on this endpoint".into(),
    }
    .into_response()
}

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/", get(index))
        .route("/__sim", get(index))
        .route("/__sim/", get(index))
        .route("/__sim/accounts", get(list_accounts).post(create_account))
        .route("/__sim/accounts/{username}", get(get_account))
        .route(
            "/__sim/accounts/{username}/media",
            get(list_media).post(post_media),
        )
        .route("/__sim/accounts/{username}/events", post(account_event))
        .route("/__sim/accounts/{username}/tokens", post(generate_token))
        .route(
            "/__sim/media/{id}",
            get(get_media).patch(edit_media).delete(delete_media),
        )
        .route("/__sim/events", get(list_events).post(post_event))
        .route(
            "/__sim/settings",
            get(get_settings).patch(patch_settings).put(put_settings),
        )
        .route("/__sim/app", get(get_app).put(put_app))
        .route("/__sim/clock", get(get_clock).post(post_clock))
        .route(
            "/__sim/outage",
            get(get_outage).put(put_outage).delete(delete_outage),
        )
        .route(
            "/__sim/throttle",
            get(list_throttles)
                .post(post_throttle)
                .delete(clear_throttles),
        )
        .route("/__sim/requests", get(requests))
        .route("/__sim/deliveries", get(deliveries))
        .route("/__sim/reset", post(reset))
        .route("/__sim/demo", post(demo))
        // The page's buttons (form posts that come back to the page).
        .route("/__sim/ui/accounts/{username}", post(ui_account))
        .route("/__sim/ui/outage", post(ui_outage))
        .method_not_allowed_fallback(method_not_allowed)
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct IndexQuery {
    done: String,
}

async fn index(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<IndexQuery>,
) -> Response {
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base = format!("http://{authority}");
    let app = sim.app();
    let accounts = sim
        .list_accounts()
        .into_iter()
        .map(|a| AccountRow {
            facebook: match (&a.facebook_user, &a.page_name) {
                (Some(u), Some(p)) => format!("{u} / {p}"),
                _ => "—".into(),
            },
            username: a.username,
            password: a.password,
            kind: format!("{:?}", a.kind).to_lowercase(),
            posts: a.media_count,
        })
        .collect();
    let page = Index {
        hosts: Host::ALL
            .iter()
            .map(|h| Hidden {
                name: h.name().into(),
                value: format!("{base}/{}", h.name()),
            })
            .collect(),
        base,
        now: iso(sim.now()),
        instagram_app_id: app.instagram_app_id,
        instagram_app_secret: app.instagram_app_secret,
        facebook_app_id: app.facebook_app_id,
        facebook_app_secret: app.facebook_app_secret,
        mode: format!("{:?}", app.mode).to_lowercase(),
        accounts,
        outage: sim.outage().is_some(),
        done: UI_DONE
            .iter()
            .find(|(key, _)| *key == query.done)
            .map(|(_, words)| (*words).to_owned()),
    };
    html_response(StatusCode::OK, pages::render(&page))
}

/// What each of the page's buttons did, by the key it comes back with.
const UI_DONE: [(&str, &str); 6] = [
    (
        "password",
        "The password was changed: the account's tokens stopped working.",
    ),
    (
        "app",
        "The app was removed: the tokens stopped working and the deauthorize callback was sent.",
    ),
    (
        "checkpoint",
        "A suspicious login was flagged: the tokens fail until the person logs in again.",
    ),
    ("post", "A new photo was posted."),
    (
        "outage_on",
        "Meta's APIs now answer every call with an error.",
    ),
    ("outage_off", "Meta's APIs answer normally again."),
];

/// The page's buttons are pressed from the page itself: a browser says where a form post comes
/// from (`Sec-Fetch-Site`, or `Origin`), and a post from another site is refused, so a web page
/// elsewhere cannot break a demo's accounts. Tools without those headers (curl) may post.
fn from_this_page(headers: &HeaderMap) -> Result<(), ControlError> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site
        && site != "same-origin"
        && site != "none"
    {
        return Err(ControlError::bad(
            "the simulator's buttons work only from its own page",
        ));
    }
    if site.is_none()
        && let (Some(origin), Some(host)) = (
            headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        )
        && origin != format!("http://{host}")
    {
        return Err(ControlError::bad(
            "the simulator's buttons work only from its own page",
        ));
    }
    Ok(())
}

fn back_to_index(done: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/__sim/?done={done}"))],
    )
        .into_response()
}

/// `POST /__sim/ui/accounts/{username}` (`what=password|app|checkpoint|post`): one breakage (or
/// a new post) from the simulator's page, so a demo user can watch feedkeeper react.
async fn ui_account(
    State(sim): State<Simulator>,
    Path(username): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ControlError> {
    from_this_page(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let form = super::form::parse_form(content_type, &body).map_err(ControlError::bad)?;
    let what = form
        .iter()
        .find(|(k, _)| k == "what")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let event = match what {
        "password" => Some(AccountEvent::PasswordChanged),
        "app" => Some(AccountEvent::AppRemoved),
        "checkpoint" => Some(AccountEvent::SuspiciousLogin),
        "post" => None,
        other => return Err(ControlError::bad(format!("unknown button {other:?}"))),
    };
    match event {
        Some(event) => {
            sim.apply_event(&username, event).await?;
        }
        None => {
            sim.post_media(
                &username,
                NewMedia {
                    caption: Some("Fresh from the oven".into()),
                    ..Default::default()
                },
            )?;
        }
    }
    Ok(back_to_index(what))
}

/// `POST /__sim/ui/outage` (`on=1` or not): the page's outage switch.
async fn ui_outage(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ControlError> {
    from_this_page(&headers)?;
    let on = url::form_urlencoded::parse(&body).any(|(k, v)| k == "on" && v == "1");
    if on {
        sim.set_outage(Outage {
            error_rate: 1.0,
            ..Default::default()
        })?;
        Ok(back_to_index("outage_on"))
    } else {
        sim.clear_outage();
        Ok(back_to_index("outage_off"))
    }
}

async fn list_accounts(State(sim): State<Simulator>) -> Reply {
    ok(sim.list_accounts())
}

async fn create_account(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let new: NewAccount = parse_json(&body)?;
    created(sim.create_account(new)?)
}

async fn get_account(State(sim): State<Simulator>, Path(username): Path<String>) -> Reply {
    ok(sim.account(&username)?)
}

async fn list_media(State(sim): State<Simulator>, Path(username): Path<String>) -> Reply {
    ok(sim.list_media(&username)?)
}

async fn post_media(
    State(sim): State<Simulator>,
    Path(username): Path<String>,
    body: Bytes,
) -> Reply {
    let new: NewMedia = parse_json(&body)?;
    created(sim.post_media(&username, new)?)
}

async fn account_event(
    State(sim): State<Simulator>,
    Path(username): Path<String>,
    body: Bytes,
) -> Reply {
    let event: AccountEvent = parse_json(&body)?;
    ok(sim.apply_event(&username, event).await?)
}

async fn generate_token(State(sim): State<Simulator>, Path(username): Path<String>) -> Reply {
    ok(sim.generate_token(&username)?)
}

async fn get_media(State(sim): State<Simulator>, Path(id): Path<String>) -> Reply {
    ok(sim.media(&id)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaEdit {
    caption: Option<String>,
}

async fn edit_media(State(sim): State<Simulator>, Path(id): Path<String>, body: Bytes) -> Reply {
    let edit: MediaEdit = parse_json(&body)?;
    ok(sim.edit_caption(&id, edit.caption)?)
}

async fn delete_media(State(sim): State<Simulator>, Path(id): Path<String>) -> Reply {
    sim.delete_media(&id)?;
    ok(json!({"deleted": id}))
}

async fn list_events(State(sim): State<Simulator>) -> Reply {
    ok(sim.events())
}

/// `{"event":"api_breaking_change"}`, or an account event with `"account":"<username>"`.
async fn post_event(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let mut value: Value = parse_json(&body)?;
    let account = match value.as_object_mut().and_then(|o| o.remove("account")) {
        None => None,
        Some(Value::String(a)) => Some(a),
        Some(_) => return Err(ControlError::bad("`account` must be a username string")),
    };
    match account {
        Some(username) => {
            let event: AccountEvent = serde_json::from_value(value)
                .map_err(|e| ControlError::bad(format!("invalid event: {e}")))?;
            ok(sim.apply_event(&username, event).await?)
        }
        None => {
            let event: GlobalEvent = serde_json::from_value(value).map_err(|e| {
                ControlError::bad(format!(
                    "invalid event: {e} (account events need \"account\")"
                ))
            })?;
            ok(sim.apply_global_event(event))
        }
    }
}

async fn get_settings(State(sim): State<Simulator>) -> Reply {
    ok(sim.settings())
}

async fn patch_settings(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let patch: Value = parse_json(&body)?;
    ok(sim.patch_settings(&patch)?)
}

async fn put_settings(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let settings: Settings = parse_json(&body)?;
    sim.set_settings(settings.clone())?;
    ok(settings)
}

async fn get_app(State(sim): State<Simulator>) -> Reply {
    ok(sim.app())
}

async fn put_app(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let app: AppConfig = parse_json(&body)?;
    app.validate().map_err(ControlError::bad)?;
    sim.set_app(app.clone());
    ok(app)
}

fn clock_body(now: i64) -> Value {
    json!({"now": now, "iso": iso(now)})
}

async fn get_clock(State(sim): State<Simulator>) -> Reply {
    ok(clock_body(sim.now()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    advance_secs: Option<i64>,
    set: Option<i64>,
}

async fn post_clock(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let change: ClockChange = parse_json(&body)?;
    match (change.advance_secs, change.set) {
        (Some(secs), None) => {
            let target = sim.now().checked_add(secs);
            if !target.is_some_and(|t| (0..=crate::state::MAX_TIME).contains(&t)) {
                return Err(ControlError::bad(
                    "the clock would leave the years 1970–9999",
                ));
            }
            ok(clock_body(sim.advance_clock(secs)))
        }
        (None, Some(t)) => {
            if !(0..=crate::state::MAX_TIME).contains(&t) {
                return Err(ControlError::bad(
                    "`set` must be a unix time between 1970 and 9999",
                ));
            }
            sim.set_clock(t);
            ok(clock_body(sim.now()))
        }
        _ => Err(ControlError::bad(
            "send exactly one of {\"advance_secs\": N} or {\"set\": UNIX}",
        )),
    }
}

async fn get_outage(State(sim): State<Simulator>) -> Reply {
    ok(sim.outage())
}

async fn put_outage(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let outage: Outage = parse_json(&body)?;
    sim.set_outage(outage.clone())?;
    ok(outage)
}

async fn delete_outage(State(sim): State<Simulator>) -> Reply {
    sim.clear_outage();
    ok(json!({"outage": null}))
}

async fn list_throttles(State(sim): State<Simulator>) -> Reply {
    ok(sim.throttles())
}

async fn post_throttle(State(sim): State<Simulator>, body: Bytes) -> Reply {
    let throttle: Throttle = parse_json(&body)?;
    sim.throttle(throttle)?;
    ok(sim.throttles())
}

async fn clear_throttles(State(sim): State<Simulator>) -> Reply {
    sim.clear_throttles();
    ok(json!([]))
}

async fn requests(State(sim): State<Simulator>, RawQuery(query): RawQuery) -> Reply {
    let mut since = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "since" {
            since = Some(
                v.parse::<u64>()
                    .map_err(|_| ControlError::bad("`since` must be a request sequence number"))?,
            );
        }
    }
    ok(sim.requests(since))
}

async fn deliveries(State(sim): State<Simulator>) -> Reply {
    ok(sim.deliveries())
}

async fn reset(State(sim): State<Simulator>) -> Reply {
    sim.reset();
    ok(json!({"reset": true}))
}

async fn demo(State(sim): State<Simulator>) -> Reply {
    created(sim.seed_demo()?)
}
