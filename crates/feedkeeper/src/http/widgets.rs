//! The public widget endpoints, for anyone's website: `/w/{id}` (the document for an iframe),
//! `/w/{id}.json` (the feed) and `/embed.js`.
//!
//! No cookies, no session, never a call to Meta: answers come from the per-node cache
//! (`widgets::cache`), negotiated to brotli, gzip or plain, with an ETag (304 when it matches)
//! and a `Cache-Control` a CDN may follow, serving stale copies while it revalidates or when we
//! fail.

use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Now;
use super::negotiate::{self, Coding};
use crate::clock::UnixSeconds;
use crate::state::AppState;
use crate::widgets::cache::{Encoded, PublicKey, Served};

/// Fresh for a minute in browsers and CDNs; then served stale while revalidating, or for a day
/// if we cannot answer.
const CACHE_WIDGET: &str = "public, max-age=60, stale-while-revalidate=600, stale-if-error=86400";
/// Short: a widget made a moment later must not be hidden behind a cached 404.
const CACHE_MISSING: &str = "public, max-age=10";
const CACHE_GONE: &str = "public, max-age=86400";

/// The embed script, served at `/embed.js`.
pub const EMBED_JS: &str = include_str!("../../static/embed.js");

/// Whether `If-None-Match` names this ETag (weak comparison, as RFC 9110 wants for GET).
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = etag.trim_start_matches("W/");
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == opaque || t == "*")
}

/// How long caches may keep a rendering: [`CACHE_WIDGET`], cut short so that no cache serves it
/// (fresh, stale while revalidating, or stale on error) after its first image address expires.
fn cache_control(valid_until: Option<UnixSeconds>, now: UnixSeconds) -> HeaderValue {
    const MAX_AGE: i64 = 60;
    const REVALIDATE: i64 = 600;
    const ON_ERROR: i64 = 86_400;
    match valid_until.map(|t| t - now) {
        Some(left) if left < MAX_AGE + ON_ERROR => {
            let max_age = left.clamp(0, MAX_AGE);
            let after = (left - max_age).max(0);
            let value = format!(
                "public, max-age={max_age}, stale-while-revalidate={}, stale-if-error={}",
                after.min(REVALIDATE),
                after.min(ON_ERROR)
            );
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("no-store"))
        }
        _ => HeaderValue::from_static(CACHE_WIDGET),
    }
}

/// A cached body as a response, in the client's encoding.
fn serve(headers: &HeaderMap, body: &Encoded, content_type: &'static str) -> Response {
    let mut response = if not_modified(headers, &body.etag) {
        let mut r = super::response_with_room(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let (bytes, encoding) = match negotiate::coding(headers) {
            Coding::Brotli if !body.brotli.is_empty() => (body.brotli.clone(), Some("br")),
            Coding::Gzip | Coding::Brotli if !body.gzip.is_empty() => {
                (body.gzip.clone(), Some("gzip"))
            }
            _ => (body.identity.clone(), None),
        };
        let mut r = super::response_with_room(Body::from(bytes));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(encoding) = encoding {
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        r
    };
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_WIDGET));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(ETAG, body.etag_header.clone());
    response
}

/// The answers for a widget that is not there, made once: a flood of made-up addresses costs
/// a copy of a few headers each. (No dashboard styling: they show inside other people's sites.)
struct Missing {
    html: Bytes,
    json: Bytes,
    /// The HTML's policy: only its own script, which tells the framing page (embed.js) to
    /// collapse the frame rather than leave a blank hole in the site.
    csp: HeaderValue,
}

fn missing_bodies(status: StatusCode, message: &str) -> Missing {
    let script = format!(
        "parent!==window&&parent.postMessage({{feedkeeper:\"missing\",status:{}}},\"*\")",
        status.as_u16()
    );
    let csp = format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; frame-ancestors *; \
         sandbox allow-scripts",
        crate::widgets::render::csp_hash(&script)
    );
    Missing {
        html: Bytes::from(format!(
            "<!doctype html><meta charset=\"utf-8\"><title>Not found</title>\
             <p style=\"font:14px system-ui,sans-serif;color:#62666b\">{message}</p>\
             <script>{script}</script>"
        )),
        json: Bytes::from(serde_json::json!({ "error": message }).to_string()),
        csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors *; sandbox",
        )),
    }
}

static NOT_FOUND: LazyLock<Missing> = LazyLock::new(|| {
    missing_bodies(
        StatusCode::NOT_FOUND,
        "There is no Instagram feed at this address.",
    )
});
static GONE: LazyLock<Missing> = LazyLock::new(|| {
    missing_bodies(
        StatusCode::GONE,
        "This Instagram feed was removed by its owner.",
    )
});

fn missing(status: StatusCode, json: bool) -> Response {
    let (cache, bodies) = if status == StatusCode::GONE {
        (CACHE_GONE, &*GONE)
    } else {
        (CACHE_MISSING, &*NOT_FOUND)
    };
    let body = if json { &bodies.json } else { &bodies.html };
    let mut response = Response::new(Body::from(body.clone()));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if json {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else {
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(CONTENT_SECURITY_POLICY, bodies.csp.clone());
    }
    response
}

/// The route of [`widget`], as it is counted.
pub const WIDGET_ROUTE: &str = "/w/{id}";

/// `GET /w/{id}` and `GET /w/{id}.json` through the router. The serving threads take most
/// requests for them straight to [`answer`] (see [`hot_id`]).
pub async fn widget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    answer(&state, &id, request.headers()).await
}

/// The `{id}` of a request that may go straight to [`answer`], skipping the router: `GET` or
/// `HEAD` of `/w/{id}` where the id needs no percent-decoding. Anything else (an encoded id,
/// another method, a longer path) goes through the router, which decodes or refuses it.
pub fn hot_id<B>(request: &axum::http::Request<B>) -> Option<&str> {
    super::plain_get(request, "/w/").filter(|id| !id.contains('/'))
}

/// The answer for widget `id` (`{public id}` or `{public id}.json`). The hottest route of the
/// service: it reads the request's headers in place and sends header values made when the
/// widget was rendered.
pub async fn answer(state: &AppState, id: &str, headers: &HeaderMap) -> Response {
    match answer_now(state, id, headers) {
        Now::Ready(response) => response,
        Now::Later(key) => answer_later(state, id, key, headers).await,
    }
}

/// `{public id}` and whether the feed (`.json`) is asked for.
fn parts(id: &str) -> (&str, bool) {
    match id.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (id, false),
    }
}

/// [`answer`] from memory alone, or the key to render the widget by ([`answer_later`]).
pub fn answer_now(state: &AppState, id: &str, headers: &HeaderMap) -> Now<PublicKey> {
    let (public_id, json) = parts(id);
    match crate::widgets::served_now(state, public_id) {
        Ok(served) => Now::Ready(respond(state, served, json, headers)),
        Err(key) => Now::Later(key),
    }
}

/// [`answer`] for a widget memory had no answer for.
pub async fn answer_later(
    state: &AppState,
    id: &str,
    key: PublicKey,
    headers: &HeaderMap,
) -> Response {
    let (public_id, json) = parts(id);
    let served = crate::widgets::served_later(state, public_id, key).await;
    respond(state, served, json, headers)
}

/// The response for what became of the widget.
fn respond(state: &AppState, served: Served, json: bool, headers: &HeaderMap) -> Response {
    let rendered = match served {
        Served::Found(rendered) => rendered,
        Served::NotFound => return missing(StatusCode::NOT_FOUND, json),
        Served::Gone => return missing(StatusCode::GONE, json),
        // A CDN in front serves its stale copy meanwhile (stale-if-error).
        Served::Busy | Served::Failed => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                "The feed is unavailable right now.",
            )
                .into_response();
            let h = r.headers_mut();
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let mut r = if json {
        let mut r = serve(headers, &rendered.json, "application/json");
        // Developers read the feed from their own pages' scripts.
        r.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        r
    } else {
        let mut r = serve(headers, &rendered.html, "text/html; charset=utf-8");
        r.headers_mut()
            .insert(CONTENT_SECURITY_POLICY, rendered.csp.clone());
        r
    };
    if rendered.valid_until.is_some() {
        r.headers_mut().insert(
            CACHE_CONTROL,
            cache_control(rendered.valid_until, state.clock.now()),
        );
    }
    r
}

static EMBED: LazyLock<Encoded> = LazyLock::new(|| Encoded::from_text(EMBED_JS));

/// `GET /embed.js`. Its address stays the same in every embed code ever pasted, so it is fresh
/// for five minutes only: a new version reaches every site within minutes, and caches
/// revalidate it by its ETag (a 304) meanwhile, or serve their copy while we cannot answer.
pub async fn embed_script(request: Request) -> Response {
    let mut r = serve(request.headers(), &EMBED, "text/javascript; charset=utf-8");
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static(
            "public, max-age=300, stale-while-revalidate=3600, stale-if-error=86400",
        ),
    );
    r.headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

    #[test]
    fn only_plain_widget_addresses_skip_the_router() {
        assert_eq!(hot_id(&request("GET", "/w/abc")), Some("abc"));
        assert_eq!(
            hot_id(&request("HEAD", "/w/abc.json?x=1")),
            Some("abc.json")
        );
        assert_eq!(
            hot_id(&request("GET", "http://fk.example/w/abc")),
            Some("abc")
        );
        for (method, target) in [
            ("POST", "/w/abc"),
            ("OPTIONS", "/w/abc"),
            ("GET", "/w/"),
            ("GET", "/w/abc/"),
            ("GET", "/w//abc"),
            ("GET", "/w/%41bc"),
            ("GET", "/i/abc/1.webp"),
            ("GET", "/widgets"),
        ] {
            assert_eq!(hot_id(&request(method, target)), None, "{method} {target}");
        }
    }

    fn with(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn caches_never_keep_a_rendering_past_its_first_image_expiry() {
        let now = 1_000_000;
        assert_eq!(cache_control(None, now), CACHE_WIDGET);
        assert_eq!(cache_control(Some(now + 200_000), now), CACHE_WIDGET);
        assert_eq!(
            cache_control(Some(now + 3600), now),
            "public, max-age=60, stale-while-revalidate=600, stale-if-error=3540"
        );
        assert_eq!(
            cache_control(Some(now + 30), now),
            "public, max-age=30, stale-while-revalidate=0, stale-if-error=0"
        );
    }

    #[test]
    fn weak_etags_match_either_form() {
        let tag = "W/\"abc\"";
        assert!(not_modified(&with(IF_NONE_MATCH, "W/\"abc\""), tag));
        assert!(not_modified(&with(IF_NONE_MATCH, "\"abc\""), tag));
    }

    #[test]
    fn etags_match_strong_weak_and_lists() {
        let tag = "\"abc\"";
        assert!(not_modified(&with(IF_NONE_MATCH, "\"abc\""), tag));
        assert!(not_modified(&with(IF_NONE_MATCH, "\"x\", W/\"abc\""), tag));
        assert!(!not_modified(&with(IF_NONE_MATCH, "\"abd\""), tag));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }
}
