//! Rendering Graph nodes as JSON: Instagram users, media and carousel children (only the
//! requested fields; unset ones absent, never null), and cursor paging of media lists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::account::Account;
use crate::cdn::Asset;
use crate::graph::GraphError;
use crate::graph::fields::Field;
use crate::http::host::Host;
use crate::media::{Child, ChildKind, Media, MediaKind};
use crate::settings::LimitOver100;
use crate::state::State;
use crate::timestamp::graph_timestamp;

/// Where the response goes: the simulator's base URL (for CDN and paging links) and the host.
pub(crate) struct View<'a> {
    pub(crate) base: &'a str,
    pub(crate) host: Host,
    /// The Graph API version that serves the call (`versions::served`).
    pub(crate) version: u32,
}

impl View<'_> {
    /// graph.facebook.com always includes `id` in nodes (as its documented samples show).
    fn always_id(&self, st: &State) -> bool {
        self.host == Host::GraphFacebook || st.settings.always_include_id
    }
}

pub(crate) const IG_USER_FIELDS: &[&str] = &[
    "id",
    "user_id",
    "username",
    "name",
    "account_type",
    "profile_picture_url",
    "followers_count",
    "follows_count",
    "media_count",
    "biography",
    "website",
];

pub(crate) const FB_IG_USER_FIELDS: &[&str] = &[
    "id",
    "username",
    "name",
    "profile_picture_url",
    "followers_count",
    "follows_count",
    "media_count",
    "biography",
    "website",
];

pub(crate) const MEDIA_FIELDS: &[&str] = &[
    "id",
    "caption",
    "media_type",
    "media_product_type",
    "media_url",
    "thumbnail_url",
    "permalink",
    "shortcode",
    "timestamp",
    "username",
    "like_count",
    "comments_count",
    "alt_text",
    "is_comment_enabled",
    "is_shared_to_feed",
    "owner",
    "children",
];

pub(crate) const MEDIA_NODE: &str = "IGMedia";

/// Rejects unknown fields and nesting anywhere but `children{…}` (whose fields are `allowed`
/// less `children`).
pub(crate) fn check_fields(
    fields: &[Field],
    allowed: &[&str],
    node: &str,
) -> Result<(), GraphError> {
    for f in fields {
        if !allowed.contains(&f.name.as_str()) {
            return Err(GraphError::nonexisting_field(&f.name, node));
        }
        if let Some(nested) = &f.nested {
            if f.name != "children" {
                return Err(GraphError::invalid_parameter(format!(
                    "Field {} does not support nested fields",
                    f.name
                )));
            }
            let child_fields: Vec<&str> = allowed
                .iter()
                .copied()
                .filter(|n| *n != "children")
                .collect();
            check_fields(nested, &child_fields, MEDIA_NODE)?;
        }
    }
    Ok(())
}

fn put(o: &mut Map<String, Value>, key: &str, value: Value) {
    o.insert(key.to_owned(), value);
}

/// An Instagram user node. On graph.instagram.com `id` is app-scoped; on graph.facebook.com
/// it is the 17841… id.
pub(crate) fn user_node(st: &State, view: &View, a: &Account, fields: &[Field]) -> Value {
    let id = if view.host == Host::GraphInstagram {
        a.app_scoped_id.clone()
    } else {
        a.ig_user_id.clone()
    };
    let mut o = Map::new();
    for f in fields {
        let name = f.name.as_str();
        let value = match name {
            "id" => Some(json!(id)),
            "user_id" => Some(json!(a.ig_user_id)),
            "username" => Some(json!(a.username)),
            "name" => a.name.as_ref().map(|n| json!(n)),
            "account_type" => Some(json!(a.kind.account_type())),
            "profile_picture_url" if st.settings.hostile_content => {
                Some(json!(hostile::OFF_LIST_PICTURE))
            }
            "profile_picture_url" => Some(json!(
                st.cdn_url(view.base, &Asset::Profile(a.ig_user_id.clone()))
            )),
            "followers_count" => Some(json!(a.followers_count)),
            "follows_count" => Some(json!(a.follows_count)),
            "media_count" => Some(json!(st.media_count(&a.username))),
            "biography" => a.biography.as_ref().map(|b| json!(b)),
            "website" if st.settings.hostile_content => Some(json!(hostile::WEBSITE)),
            "website" => a.website.as_ref().map(|w| json!(w)),
            _ => None,
        };
        if let Some(v) = value {
            put(&mut o, name, v);
        }
    }
    if fields.is_empty() || (view.always_id(st) && !o.contains_key("id")) {
        put(&mut o, "id", json!(id));
    }
    Value::Object(o)
}

fn owner_of<'a>(st: &'a State, m: &Media) -> Option<&'a Account> {
    st.accounts.get(&m.owner)
}

fn child_asset_url(st: &State, view: &View, c: &Child) -> String {
    let asset = match c.kind {
        ChildKind::Image => Asset::Image(c.id.clone()),
        ChildKind::Video => Asset::Video(c.id.clone()),
    };
    st.cdn_url(view.base, &asset)
}

/// A post node.
pub(crate) fn media_node(st: &State, view: &View, m: &Media, fields: &[Field]) -> Value {
    let mut o = Map::new();
    for f in fields {
        let name = f.name.as_str();
        let value = match name {
            "id" => Some(json!(m.id)),
            "caption" if st.settings.hostile_content => Some(json!(hostile::caption(m))),
            "caption" => m.caption.as_ref().map(|c| json!(c)),
            "media_type" => Some(json!(m.kind.media_type())),
            "media_product_type" => Some(json!(m.kind.product_type())),
            "media_url" if m.copyrighted => None,
            "media_url" if st.settings.hostile_content && hostile::off_list(m) => {
                Some(json!(hostile::OFF_LIST_IMAGE))
            }
            "media_url" => match m.kind {
                MediaKind::Image => Some(json!(st.cdn_url(view.base, &Asset::Image(m.id.clone())))),
                MediaKind::Video | MediaKind::Reels => {
                    Some(json!(st.cdn_url(view.base, &Asset::Video(m.id.clone()))))
                }
                MediaKind::CarouselAlbum => st
                    .settings
                    .carousel_parent_media_url
                    .then(|| m.children.first())
                    .flatten()
                    .map(|c| json!(child_asset_url(st, view, c))),
            },
            "thumbnail_url" if st.settings.hostile_content && m.kind.is_video() => {
                Some(json!(hostile::PLAIN_HTTP_POSTER))
            }
            "thumbnail_url" => m
                .kind
                .is_video()
                .then(|| json!(st.cdn_url(view.base, &Asset::Poster(m.id.clone())))),
            "permalink" if st.settings.hostile_content => Some(json!(hostile::PERMALINK)),
            "permalink" => Some(json!(m.permalink())),
            "shortcode" => Some(json!(m.shortcode)),
            "timestamp" => Some(json!(graph_timestamp(m.timestamp))),
            "username" => Some(json!(m.owner)),
            "like_count" => Some(json!(m.like_count)),
            "comments_count" => Some(json!(m.comments_count)),
            "alt_text" => m.alt_text.as_ref().map(|t| json!(t)),
            "is_comment_enabled" => Some(json!(true)),
            "is_shared_to_feed" => (m.kind == MediaKind::Reels).then_some(json!(true)),
            "owner" => owner_of(st, m).map(|a| json!({"id": a.ig_user_id})),
            "children" if m.kind == MediaKind::CarouselAlbum => {
                let id_only = [Field {
                    name: "id".into(),
                    nested: None,
                }];
                let nested = f.nested.as_deref().unwrap_or(&id_only);
                let data: Vec<Value> = m
                    .children
                    .iter()
                    .map(|c| child_node(st, view, m, c, nested))
                    .collect();
                Some(json!({ "data": data }))
            }
            _ => None,
        };
        if let Some(v) = value {
            put(&mut o, name, v);
        }
    }
    if fields.is_empty() || (view.always_id(st) && !o.contains_key("id")) {
        put(&mut o, "id", json!(m.id));
    }
    Value::Object(o)
}

/// A carousel child node: no permalink, caption or counts.
pub(crate) fn child_node(
    st: &State,
    view: &View,
    parent: &Media,
    c: &Child,
    fields: &[Field],
) -> Value {
    let mut o = Map::new();
    for f in fields {
        let name = f.name.as_str();
        let value = match name {
            "id" => Some(json!(c.id)),
            "media_type" => Some(json!(c.kind.media_type())),
            "media_product_type" => Some(json!("CAROUSEL_ALBUM")),
            "media_url" if parent.copyrighted => None,
            "media_url" => Some(json!(child_asset_url(st, view, c))),
            "thumbnail_url" => (c.kind == ChildKind::Video)
                .then(|| json!(st.cdn_url(view.base, &Asset::Poster(c.id.clone())))),
            "timestamp" => Some(json!(graph_timestamp(parent.timestamp))),
            "username" => Some(json!(parent.owner)),
            "owner" => owner_of(st, parent).map(|a| json!({"id": a.ig_user_id})),
            "is_comment_enabled" => Some(json!(true)),
            _ => None,
        };
        if let Some(v) = value {
            put(&mut o, name, v);
        }
    }
    if fields.is_empty() || (view.always_id(st) && !o.contains_key("id")) {
        put(&mut o, "id", json!(c.id));
    }
    Value::Object(o)
}

/// Paging parameters of a media list.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub(crate) limit: usize,
    pub(crate) after: Option<(i64, String)>,
    pub(crate) before: Option<(i64, String)>,
    pub(crate) since: Option<i64>,
    pub(crate) until: Option<i64>,
}

fn cursor_of(m: &Media) -> String {
    URL_SAFE_NO_PAD.encode(format!("QVFI:{}:{}", m.timestamp, m.id))
}

fn decode_cursor(s: &str) -> Result<(i64, String), GraphError> {
    let bad = || GraphError::invalid_parameter("Invalid cursor");
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    if parts.next() != Some("QVFI") {
        return Err(bad());
    }
    let ts = parts
        .next()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(bad)?;
    let id = parts.next().filter(|i| !i.is_empty()).ok_or_else(bad)?;
    Ok((ts, id.to_owned()))
}

fn parse_time(name: &str, v: &str) -> Result<i64, GraphError> {
    v.trim().parse::<i64>().map_err(|_| {
        GraphError::invalid_parameter(format!("The parameter {name} must be a unix timestamp"))
    })
}

/// Reads `limit`, `after`, `before`, `since`, `until`.
pub(crate) fn list_params<'a>(
    param: impl Fn(&str) -> Option<&'a str>,
    over_100: LimitOver100,
) -> Result<ListParams, GraphError> {
    let limit = match param("limit") {
        None | Some("") => 25,
        Some(v) => {
            let n = v.trim().parse::<i64>().map_err(|_| {
                GraphError::invalid_parameter("The parameter limit must be an integer")
            })?;
            if n > 100 && over_100 == LimitOver100::Error {
                return Err(GraphError::invalid_parameter(
                    "The limit parameter cannot be greater than 100",
                ));
            }
            n.clamp(1, 100) as usize
        }
    };
    let after = param("after").map(decode_cursor).transpose()?;
    let before = param("before").map(decode_cursor).transpose()?;
    let since = param("since").map(|v| parse_time("since", v)).transpose()?;
    let until = param("until").map(|v| parse_time("until", v)).transpose()?;
    Ok(ListParams {
        limit,
        after,
        before,
        since,
        until,
    })
}

/// One page of a newest-first list.
pub(crate) struct Page<'a> {
    pub(crate) items: Vec<&'a Media>,
    pub(crate) has_previous: bool,
    pub(crate) has_next: bool,
}

fn key(m: &Media) -> (i64, &str) {
    (m.timestamp, m.id.as_str())
}

pub(crate) fn paginate<'a>(posts: Vec<&'a Media>, p: &ListParams) -> Page<'a> {
    let list: Vec<&Media> = posts
        .into_iter()
        .filter(|m| p.since.is_none_or(|s| m.timestamp >= s))
        .filter(|m| p.until.is_none_or(|u| m.timestamp <= u))
        .collect();
    let len = list.len();
    let (start, end) = if let Some((ts, id)) = &p.after {
        let c = (*ts, id.as_str());
        let start = list.iter().position(|m| key(m) < c).unwrap_or(len);
        (start, (start + p.limit).min(len))
    } else if let Some((ts, id)) = &p.before {
        let c = (*ts, id.as_str());
        let end = list.iter().position(|m| key(m) <= c).unwrap_or(len);
        (end.saturating_sub(p.limit), end)
    } else {
        (0, p.limit.min(len))
    };
    Page {
        items: list[start..end].to_vec(),
        has_previous: start > 0,
        has_next: end < len,
    }
}

/// The `{"data":[…],"paging":{…}}` envelope. `link(kind, cursor)` builds the full next/previous URL.
pub(crate) fn media_list(
    st: &State,
    view: &View,
    page: &Page,
    fields: &[Field],
    link: &dyn Fn(&str, &str) -> String,
) -> Value {
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|m| media_node(st, view, m, fields))
        .collect();
    let (Some(first), Some(last)) = (page.items.first(), page.items.last()) else {
        return json!({ "data": [] });
    };
    let (before, after) = (cursor_of(first), cursor_of(last));
    let mut paging = json!({"cursors": {"before": before, "after": after}});
    if page.has_next {
        paging["next"] = json!(link("after", &after));
    }
    if page.has_previous {
        paging["previous"] = json!(link("before", &before));
    }
    json!({ "data": data, "paging": paging })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(ts: i64, id: &str) -> Media {
        Media {
            id: id.into(),
            owner: "o".into(),
            kind: MediaKind::Image,
            caption: None,
            timestamp: ts,
            shortcode: "C".into(),
            like_count: 0,
            comments_count: 0,
            alt_text: None,
            copyrighted: false,
            portrait: false,
            children: Vec::new(),
            deleted: false,
        }
    }

    #[test]
    fn pages_walk_forward_and_back() {
        let posts: Vec<Media> = (0..30)
            .map(|i| post(1_000 - i, &format!("{:02}", 99 - i)))
            .collect();
        let refs = || posts.iter().collect::<Vec<_>>();
        let first = paginate(
            refs(),
            &ListParams {
                limit: 25,
                ..ListParams::default()
            },
        );
        assert_eq!(first.items.len(), 25);
        assert!(first.has_next && !first.has_previous);
        let last = first.items[24];
        let second = paginate(
            refs(),
            &ListParams {
                limit: 25,
                after: Some((last.timestamp, last.id.clone())),
                ..ListParams::default()
            },
        );
        assert_eq!(second.items.len(), 5);
        assert!(!second.has_next && second.has_previous);
        let head = second.items[0];
        let back = paginate(
            refs(),
            &ListParams {
                limit: 25,
                before: Some((head.timestamp, head.id.clone())),
                ..ListParams::default()
            },
        );
        assert_eq!(back.items.len(), 25);
        assert_eq!(back.items[0].id, first.items[0].id);
        assert!(!back.has_previous && back.has_next);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let m = post(5, "18000000000000001");
        assert_eq!(
            decode_cursor(&cursor_of(&m)).expect("own"),
            (5, m.id.clone())
        );
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor("QUJD").is_err());
    }
}

/// What `hostile_content` answers with (see `Settings::hostile_content`).
mod hostile {
    use crate::media::Media;

    pub const PERMALINK: &str = "javascript:alert(document.domain)";
    pub const WEBSITE: &str = "javascript:alert(document.cookie)";
    pub const OFF_LIST_IMAGE: &str = "https://evil.example/steal.jpg?oe=7FFFFFFF";
    pub const OFF_LIST_PICTURE: &str = "https://evil.example/me.jpg?oe=7FFFFFFF";
    pub const PLAIN_HTTP_POSTER: &str =
        "http://scontent.cdninstagram.com/v/t51.2885-15/poster.jpg?oe=7FFFFFFF";

    /// Every other post (by its id's last digit) has its image off the CDN list.
    pub fn off_list(m: &Media) -> bool {
        m.id.bytes().last().is_some_and(|b| b % 2 == 0)
    }

    /// The post's caption, then markup, then 50 000 characters.
    pub fn caption(m: &Media) -> String {
        format!(
            "{} <script>alert('caption')</script><img src=x onerror=alert(1)> {}",
            m.caption.as_deref().unwrap_or_default(),
            "A".repeat(50_000)
        )
    }
}
