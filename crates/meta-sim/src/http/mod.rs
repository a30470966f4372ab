//! The HTTP face of the simulator: one router serving the control API under `/__sim/` and,
//! as the fallback, every Meta host under its path prefix. The Meta dispatcher logs each
//! request (with its account, token family and wall-clock span), rolls the outage dice, hands
//! the request to the host's module, and holds the answer back for `latency_ms`.

pub(crate) mod cdn_host;
pub(crate) mod control;
pub(crate) mod facebook_graph;
pub(crate) mod facebook_login;
pub(crate) mod form;
pub(crate) mod host;
pub(crate) mod instagram_graph;
pub(crate) mod instagram_login;
pub(crate) mod instagram_token;
pub(crate) mod pages;
pub(crate) mod subject;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::graph::GraphError;
use crate::image::ImageSpec;
use crate::outage::Failure;
use crate::request_log::{RequestRecord, millis, redact, wall_clock_ms};
use crate::simulator::Simulator;
use crate::state::State;
use host::{Host, split_path};
use subject::Subject;

/// A request to a Meta host, parsed once.
pub(crate) struct MetaRequest {
    pub(crate) host: Host,
    pub(crate) method: Method,
    pub(crate) version: Option<String>,
    pub(crate) segments: Vec<String>,
    /// Path after the host prefix, raw (`/v23.0/me/media`).
    pub(crate) rest: String,
    /// Full request path including the host prefix (form actions post back here).
    pub(crate) full_path: String,
    pub(crate) raw_query: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) content_type: String,
    /// `http://host:port` as the client addressed us, for CDN and paging links.
    pub(crate) base: String,
    pub(crate) bearer: Option<String>,
}

impl MetaRequest {
    /// First value of a query parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The access token from the query or an `Authorization: Bearer/OAuth` header.
    pub(crate) fn token(&self) -> Option<&str> {
        self.param("access_token").or(self.bearer.as_deref())
    }

    /// `graph.instagram.com/v23.0` style prefix for links, with the simulator base.
    pub(crate) fn host_url(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{}/{v}", self.base, self.host.name()),
            None => format!("{}/{}", self.base, self.host.name()),
        }
    }
}

/// What a host module produced.
pub(crate) enum Outcome {
    Ready(Response),
    /// An image to render outside the lock.
    Image {
        spec: ImageSpec,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

impl From<Response> for Outcome {
    fn from(r: Response) -> Self {
        Outcome::Ready(r)
    }
}

pub(crate) fn header_pairs(pairs: Vec<(&'static str, String)>) -> Vec<(HeaderName, HeaderValue)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((HeaderName::from_static(k), HeaderValue::from_str(&v).ok()?)))
        .collect()
}

/// A JSON response the way Meta sends it.
pub(crate) fn json_response(
    status: StatusCode,
    body: &Value,
    extra: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v);
    }
    resp
}

/// Adds the consent form's ticket as a header too, so tests can skip parsing the HTML.
pub(crate) fn with_ticket_header(mut response: Response, ticket: &str) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(ticket) {
        response.headers_mut().insert("x-sim-login-ticket", v);
    }
    response
}

pub(crate) fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut resp = StatusCode::FOUND.into_response();
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => html_response(StatusCode::BAD_REQUEST, "Invalid redirect".into()),
    }
}

/// A Graph error response with a fresh trace id.
pub(crate) fn graph_error(
    st: &mut State,
    err: &GraphError,
    extra: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    let trace = st.trace_id();
    err.response(&trace, extra)
}

/// The result of a Graph call, with the rate-limit headers.
pub(crate) fn graph_reply(
    st: &mut State,
    result: Result<Value, GraphError>,
    headers: Vec<(&'static str, String)>,
    req: &MetaRequest,
) -> Response {
    let mut extra = header_pairs(headers);
    let served = crate::graph::versions::served(st, req.version.as_deref());
    if let Ok(v) = HeaderValue::from_str(&crate::graph::versions::label(served)) {
        extra.push((HeaderName::from_static("facebook-api-version"), v));
    }
    match result {
        Ok(v) => {
            let trace = st.trace_id();
            if let Ok(t) = HeaderValue::from_str(&trace) {
                extra.push((HeaderName::from_static("x-fb-trace-id"), t));
            }
            json_response(StatusCode::OK, &v, extra)
        }
        Err(e) => graph_error(st, &e, extra),
    }
}

/// Builds the router: control API, index, and the Meta hosts as fallback.
pub(crate) fn router(sim: Simulator) -> Router {
    control::routes().fallback(serve_meta).with_state(sim)
}

fn outage_response(st: &mut State, failure: Failure, host: Host) -> Option<Response> {
    Some(match failure {
        Failure::Timeout => return None,
        Failure::Error => graph_error(st, &GraphError::transient_outage(), Vec::new()),
        Failure::Malformed => {
            let body = match host {
                Host::GraphInstagram | Host::GraphFacebook => "{\"data\":[{\"id\":\"1789",
                _ => "{\"access_token\":\"IGAA",
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
                body,
            )
                .into_response()
        }
        Failure::Html => html_response(
            StatusCode::BAD_GATEWAY,
            "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Sorry, something went wrong.</h1><p>We're working on it and we'll get it fixed as soon as we can.</p></body></html>".into(),
        ),
        Failure::Empty => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            "",
        )
            .into_response(),
    })
}

fn route(st: &mut State, req: &MetaRequest) -> Outcome {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.host, segs.as_slice()) {
        (Host::WwwInstagram | Host::ApiInstagram, ["oauth", "authorize"]) => {
            instagram_login::authorize(st, req).into()
        }
        (Host::ApiInstagram, ["oauth", "access_token"]) => {
            instagram_token::code_exchange(st, req).into()
        }
        (Host::GraphInstagram, ["access_token"]) => instagram_token::exchange(st, req).into(),
        (Host::GraphInstagram, ["refresh_access_token"]) => {
            instagram_token::refresh(st, req).into()
        }
        (Host::GraphInstagram, _) => instagram_graph::handle(st, req).into(),
        (Host::WwwFacebook, ["dialog", "oauth"]) => facebook_login::dialog(st, req).into(),
        (Host::GraphFacebook, _) => facebook_graph::handle(st, req).into(),
        (Host::Cdn, _) => cdn_host::serve(st, req),
        (Host::WwwInstagram | Host::ApiInstagram | Host::WwwFacebook, _) => html_response(
            StatusCode::NOT_FOUND,
            pages::not_found(req.host.name(), &req.rest),
        )
        .into(),
    }
}

/// The fallback handler: every Meta host.
async fn serve_meta(
    AxumState(sim): AxumState<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started_at_ms = wall_clock_ms();
    let Some(hp) = split_path(uri.path()) else {
        return control::not_found(uri.path());
    };
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let query = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("OAuth "))
                .map(|t| t.trim().to_owned())
        });
    let req = MetaRequest {
        host: hp.host,
        method,
        version: hp.version,
        segments: hp.segments,
        rest: hp.rest,
        full_path: uri.path().to_owned(),
        raw_query,
        query,
        body,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        base: format!("http://{authority}"),
        bearer,
    };

    let (handling, subject, latency) = {
        let mut st = sim.lock();
        // Resolved before routing, which may spend the code or token the request carries.
        let subject = subject::of(&st, &req);
        let latency = Duration::from_millis(st.settings.latency_ms);
        let roll = st
            .outage
            .clone()
            .filter(|o| o.applies_to(req.host))
            .and_then(|o| {
                let r = st.dice.unit();
                o.pick(r)
            });
        let handling = match roll {
            Some(failure) => match outage_response(&mut st, failure, req.host) {
                Some(resp) => Handling::Answer(Outcome::Ready(resp)),
                None => Handling::Hang(Duration::from_secs(st.settings.outage_hang_secs)),
            },
            None => Handling::Answer(route(&mut st, &req)),
        };
        (handling, subject, latency)
    };

    let response = match handling {
        Handling::Answer(Outcome::Ready(resp)) => resp,
        Handling::Answer(Outcome::Image { spec, headers }) => {
            match sim.images().fetch(spec).await {
                Ok(bytes) => {
                    let mut resp = (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "image/jpeg")],
                        Body::from(bytes),
                    )
                        .into_response();
                    for (k, v) in headers {
                        resp.headers_mut().insert(k, v);
                    }
                    resp
                }
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
            }
        }
        Handling::Hang(hang) => {
            // Logged before the hang, so tests can see the request while it hangs.
            let wait = hang.saturating_add(latency);
            let ends_at_ms = wall_clock_ms().saturating_add(millis(wait));
            log_request(&sim, &req, subject, (started_at_ms, ends_at_ms), None);
            tokio::time::sleep(wait).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let status = response.status().as_u16();
    log_request(
        &sim,
        &req,
        subject,
        (started_at_ms, wall_clock_ms()),
        Some(status),
    );
    response
}

/// What the dispatcher does with a request once the outage dice have rolled.
enum Handling {
    Answer(Outcome),
    /// A timeout outage: hang this long, then give up with a 504.
    Hang(Duration),
}

/// Appends the record of `req`, spanning the wall-clock `(started, ended)` Unix milliseconds.
fn log_request(
    sim: &Simulator,
    req: &MetaRequest,
    subject: Subject,
    (started_at_ms, ended_at_ms): (i64, i64),
    status: Option<u16>,
) {
    let mut st = sim.lock();
    let time = st.now();
    st.requests.push(RequestRecord {
        seq: 0,
        time,
        method: req.method.to_string(),
        host: req.host.name().into(),
        path: req.rest.clone(),
        query: redact(&req.raw_query),
        status,
        account: subject.account,
        token_family: subject.family.map(str::to_owned),
        started_at_ms,
        // The wall clock may step back; a span never runs backwards.
        ended_at_ms: ended_at_ms.max(started_at_ms),
    });
}
