//! graph.instagram.com's data endpoints: `/me`, `/{user-id}`, `/{user-id}/media`,
//! `/{media-id}` and `/{media-id}/children`, for Instagram-Login tokens.

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use crate::account::{Account, AccountKind};
use crate::graph::GraphError;
use crate::graph::auth::Caller;
use crate::graph::fields::{Field, parse_fields};
use crate::graph::render::{self, IG_USER_FIELDS, View, check_fields, list_params, paginate};
use crate::graph::versions;
use crate::http::host::Host;
use crate::http::instagram_login::REQUIRED_SCOPE;
use crate::http::{MetaRequest, graph_error, graph_reply};
use crate::media::MediaKind;
use crate::state::{MediaRef, State};

/// Parses `fields=`.
pub(crate) fn requested_fields(req: &MetaRequest) -> Result<Vec<Field>, GraphError> {
    parse_fields(req.param("fields").unwrap_or_default()).map_err(GraphError::invalid_parameter)
}

/// Builds a full paging link that repeats the request with a new cursor.
pub(crate) fn page_link(
    req: &MetaRequest,
    token: &str,
    limit: usize,
    kind: &str,
    cursor: &str,
) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("access_token", token);
    for (k, v) in &req.query {
        if !matches!(k.as_str(), "access_token" | "after" | "before" | "limit") {
            ser.append_pair(k, v);
        }
    }
    ser.append_pair("limit", &limit.to_string());
    ser.append_pair(kind, cursor);
    let path: Vec<String> = req
        .segments
        .iter()
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect())
        .collect();
    format!("{}/{}?{}", req.host_url(), path.join("/"), ser.finish())
}

/// The media list of `account`, shared with graph.facebook.com.
pub(crate) fn media_edge(
    st: &State,
    req: &MetaRequest,
    caller: &Caller,
    account: &Account,
    view: &View,
) -> Result<Value, GraphError> {
    let fields = requested_fields(req)?;
    versions::check_media_fields(st, view, &fields)?;
    let params = list_params(|k| req.param(k), st.settings.media_limit_over_100)?;
    let page = paginate(st.posts_of(&account.username), &params);
    let link = |kind: &str, cursor: &str| page_link(req, &caller.token, params.limit, kind, cursor);
    Ok(render::media_list(st, view, &page, &fields, &link))
}

/// A media node or carousel child, shared with graph.facebook.com.
pub(crate) fn media_object(
    st: &State,
    req: &MetaRequest,
    found: &MediaRef,
    view: &View,
) -> Result<Value, GraphError> {
    let fields = requested_fields(req)?;
    versions::check_media_fields(st, view, &fields)?;
    Ok(match found {
        MediaRef::Post(m) => render::media_node(st, view, m, &fields),
        MediaRef::Child(m, c) => render::child_node(st, view, m, c, &fields),
    })
}

/// `/{media-id}/children`, shared with graph.facebook.com.
pub(crate) fn children_edge(
    st: &State,
    req: &MetaRequest,
    found: &MediaRef,
    view: &View,
) -> Result<Value, GraphError> {
    let fields = requested_fields(req)?;
    versions::check_media_fields(st, view, &fields)?;
    let data: Vec<Value> = match found {
        MediaRef::Post(m) if m.kind == MediaKind::CarouselAlbum => m
            .children
            .iter()
            .map(|c| render::child_node(st, view, m, c, &fields))
            .collect(),
        _ => Vec::new(),
    };
    Ok(json!({ "data": data }))
}

pub(crate) fn handle(st: &mut State, req: &MetaRequest) -> Response {
    let caller = match st.authenticate(Host::GraphInstagram, req.token()) {
        Ok(c) => c,
        Err(e) => return graph_error(st, &e, Vec::new()),
    };
    let verdict = st.meter(&caller);
    let result = match verdict.error {
        Some(e) => Err(e),
        None => respond(st, req, &caller),
    };
    graph_reply(st, result, verdict.headers, req)
}

fn respond(st: &State, req: &MetaRequest, caller: &Caller) -> Result<Value, GraphError> {
    if req.method != Method::GET {
        return Err(GraphError::unsupported_method(req.method.as_str()));
    }
    let account = caller
        .account
        .as_ref()
        .and_then(|a| st.accounts.get(a))
        .ok_or_else(GraphError::cannot_parse)?;
    let view = View {
        base: &req.base,
        host: Host::GraphInstagram,
        version: versions::served(st, req.version.as_deref()),
    };
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let is_me = |id: &str| id == "me" || id == account.ig_user_id || id == account.app_scoped_id;
    let professional = account.kind != AccountKind::Personal;
    match segs.as_slice() {
        [id] if is_me(id) => {
            if !caller.has(REQUIRED_SCOPE) {
                return Err(GraphError::no_permission());
            }
            let fields = requested_fields(req)?;
            check_fields(&fields, &versions::user_fields(st, IG_USER_FIELDS), "User")?;
            Ok(render::user_node(st, &view, account, &fields))
        }
        [id, "media"] if is_me(id) => {
            if !professional || !caller.has(REQUIRED_SCOPE) {
                return Err(GraphError::no_permission());
            }
            media_edge(st, req, caller, account, &view)
        }
        [id, edge @ ..] if edge.len() <= 1 => {
            let found = st
                .find_media(id)
                .filter(|f| f.parent().owner == account.username)
                .ok_or_else(|| GraphError::no_object(id, "get"))?;
            if !professional || !caller.has(REQUIRED_SCOPE) {
                return Err(GraphError::no_permission());
            }
            match edge {
                [] => media_object(st, req, &found, &view),
                ["children"] => children_edge(st, req, &found, &view),
                _ => Err(GraphError::unknown_path(&req.rest)),
            }
        }
        _ => Err(GraphError::unknown_path(&req.rest)),
    }
}
