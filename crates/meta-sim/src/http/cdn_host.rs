//! scontent.cdninstagram.com: checks a URL's signature and expiry the way Instagram's CDN does
//! (403 `text/plain` `URL signature mismatch` / `URL signature expired`), then serves the
//! JPEG (rendered outside the lock) or a placeholder MP4.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cdn::{Asset, CDN_HOST, parse_signed_url, verify_signature};
use crate::http::{MetaRequest, Outcome};
use crate::media::{ChildKind, MediaKind};
use crate::state::{MediaRef, State};

/// A minimal `ftyp` box: enough for a client that sniffs the type; we never serve real video.
const PLACEHOLDER_MP4: &[u8] = &[
    0x00, 0x00, 0x00, 0x18, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm', 0x00, 0x00, 0x02, 0x00,
    b'i', b's', b'o', b'm', b'i', b's', b'o', b'2',
];

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response();
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("proxygen-bolt"));
    resp
}

fn success_headers(st: &State) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=1209600, no-transform"),
        ),
        (header::SERVER, HeaderValue::from_static("proxygen-bolt")),
        (
            HeaderName::from_static("timing-allow-origin"),
            HeaderValue::from_static("*"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ];
    if st.settings.cdn_corp_header {
        h.push((
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    }
    h
}

fn is_video(found: &MediaRef) -> bool {
    match found {
        MediaRef::Post(m) => matches!(m.kind, MediaKind::Video | MediaKind::Reels),
        MediaRef::Child(_, c) => c.kind == ChildKind::Video,
    }
}

pub(crate) fn serve(st: &mut State, req: &MetaRequest) -> Outcome {
    if req.method != Method::GET && req.method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into();
    }
    let url = format!("/{CDN_HOST}{}?{}", req.rest, req.raw_query);
    let Ok(parts) = parse_signed_url(&url) else {
        return plain(StatusCode::FORBIDDEN, "URL signature mismatch").into();
    };
    if !verify_signature(&st.cdn_key, &parts) {
        return plain(StatusCode::FORBIDDEN, "URL signature mismatch").into();
    }
    if st.now() > parts.expires_at {
        return plain(StatusCode::FORBIDDEN, "URL signature expired").into();
    }
    let not_found = || plain(StatusCode::NOT_FOUND, "Not Found").into();
    let Some(asset) = Asset::from_name(&parts.name) else {
        return not_found();
    };
    if let Asset::Video(id) = &asset {
        return match st.find_media(id) {
            Some(found) if is_video(&found) => {
                let mut resp = (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "video/mp4")],
                    PLACEHOLDER_MP4,
                )
                    .into_response();
                for (k, v) in success_headers(st) {
                    resp.headers_mut().insert(k, v);
                }
                resp.into()
            }
            _ => not_found(),
        };
    }
    match st.image_spec(&asset) {
        Some(spec) => Outcome::Image {
            spec,
            headers: success_headers(st),
        },
        None => not_found(),
    }
}
