//! `GET /i/{key}/{width}.{format}`: a stored variant, for anyone's website.
//!
//! Only what the store holds is served: the address is checked first (its shape, and the
//! signature feedkeeper put in it, so a made-up one costs no lookup), then the node's memory,
//! then the store through a few slots; never the database, never a fetch from anywhere else. Variants never change once made, so they are
//! cacheable forever, with a strong ETag.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, ETAG, RETRY_AFTER,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Now;
use crate::images::cache::Served;
use crate::images::{Format, ImageKey, parse_file};
use crate::state::AppState;

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
const CORP: HeaderName = HeaderName::from_static("cross-origin-resource-policy");
const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");

fn not_found() -> Response {
    not_found_for(None)
}

/// A 404. A variant being made right now appears within seconds: a shared cache may keep the
/// answer a minute, except for AVIF of a signed key, which is made after the image's other
/// addresses are public (a remembered 404 would break the tile of a browser that picks it).
fn not_found_for(format: Option<crate::images::Format>) -> Response {
    let mut r = (StatusCode::NOT_FOUND, "No such image.").into_response();
    let cache = if format == Some(crate::images::Format::Avif) {
        "no-store"
    } else {
        "public, max-age=60"
    };
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// The route of [`image`], as it is counted.
pub const IMAGE_ROUTE: &str = "/i/{key}/{file}";

/// `GET` (and `HEAD`) `/i/{key}/{file}` through the router. The serving threads take most
/// requests for it straight to [`answer`] (see [`hot_parts`]).
pub async fn image(
    State(state): State<AppState>,
    Path((key, file)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(&state, &key, &file, request.headers()).await
}

/// The `{key}` and `{file}` of a request that may go straight to [`answer`], skipping the
/// router: `GET` or `HEAD` of `/i/{key}/{file}` where neither needs percent-decoding.
/// Anything else goes through the router, which decodes or refuses it.
pub fn hot_parts<B>(request: &axum::http::Request<B>) -> Option<(&str, &str)> {
    let (key, file) = super::plain_get(request, "/i/")?.split_once('/')?;
    (!key.is_empty() && !file.is_empty() && !file.contains('/')).then_some((key, file))
}

/// The answer for variant `file` of the image whose signed key is `key`.
pub async fn answer(
    state: &AppState,
    key: &str,
    file: &str,
    headers: &axum::http::HeaderMap,
) -> Response {
    match answer_now(state, key, file, headers) {
        Now::Ready(response) => response,
        Now::Later(variant) => answer_later(state, variant, headers).await,
    }
}

/// A variant the node's memory knows nothing of: its image, width and format.
#[derive(Clone, Copy, Debug)]
pub struct Variant(ImageKey, u32, Format);

/// [`answer`] as far as it goes without waiting: the answer to a made-up address, or from
/// memory; or the variant to read from the store ([`answer_later`]).
pub fn answer_now(
    state: &AppState,
    key: &str,
    file: &str,
    headers: &axum::http::HeaderMap,
) -> Now<Variant> {
    // Only addresses feedkeeper signed reach the store; anything else is answered from here.
    let (Some(key), Some((width, format))) = (state.images.signer.verify(key), parse_file(file))
    else {
        return Now::Ready(not_found());
    };
    match state.images.cache.get_now(key, width, format) {
        Some(served) => Now::Ready(respond(served, Variant(key, width, format), headers)),
        None => Now::Later(Variant(key, width, format)),
    }
}

/// [`answer`] for a variant memory did not have: from the store.
pub async fn answer_later(
    state: &AppState,
    variant: Variant,
    headers: &axum::http::HeaderMap,
) -> Response {
    let Variant(key, width, format) = variant;
    let served = state
        .images
        .cache
        .get_later(&state.images.store, key, width, format)
        .await;
    respond(served, variant, headers)
}

/// The response for what became of `variant`.
fn respond(served: Served, variant: Variant, headers: &axum::http::HeaderMap) -> Response {
    let Variant(key, width, format) = variant;
    let bytes = match served {
        Served::Found(bytes) => bytes,
        Served::NotFound => return not_found_for(Some(format)),
        Served::Busy => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                "The image is unavailable right now.",
            )
                .into_response();
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let etag = format!("\"{key}-{width}-{}\"", format.extension());
    let modified = !super::widgets::not_modified(headers, &etag);
    let mut response = super::response_with_room(if modified {
        Body::from(bytes)
    } else {
        Body::empty()
    });
    if modified {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    } else {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_FOREVER));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, value);
    }
    // Shown on other people's sites, and readable by their scripts (a canvas, a lightbox).
    h.insert(CORP, HeaderValue::from_static("cross-origin"));
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Sites may measure what their visitors download (Resource Timing sizes).
    h.insert(TIMING_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

    #[test]
    fn only_plain_image_addresses_skip_the_router() {
        assert_eq!(
            hot_parts(&request("GET", "/i/key/640.webp")),
            Some(("key", "640.webp"))
        );
        assert_eq!(
            hot_parts(&request("HEAD", "/i/key/640.webp?v=1")),
            Some(("key", "640.webp"))
        );
        for (method, target) in [
            ("POST", "/i/key/640.webp"),
            ("GET", "/i/key"),
            ("GET", "/i//640.webp"),
            ("GET", "/i/key/"),
            ("GET", "/i/key/640.webp/x"),
            ("GET", "/i/key/640%2Ewebp"),
            ("GET", "/w/abc"),
        ] {
            assert_eq!(
                hot_parts(&request(method, target)),
                None,
                "{method} {target}"
            );
        }
    }
}
