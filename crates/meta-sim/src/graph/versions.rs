//! Graph API versions: which version serves a request, and which IG Media fields it knows.
//!
//! Meta serves an unversioned call with the app's default version, and a call to a version that
//! is no longer available with the oldest one still available. Fields are checked against the
//! version that serves the call, so a field retired in an older version (`video_title`, the
//! last version to accept it being v13) is Meta's `(#100) nonexisting field` error today.

use crate::graph::GraphError;
use crate::graph::fields::Field;
use crate::graph::render::{MEDIA_FIELDS, MEDIA_NODE, View, check_fields};
use crate::state::State;

/// IG Media fields that only some versions know: name, first version, last version.
const VERSIONED_MEDIA_FIELDS: &[(&str, Option<u32>, Option<u32>)] = &[
    // Graph API changelog v13.0: "the last version to allow video_title field requests on IG
    // Media without returning an error"; it is omitted from responses in every version.
    ("video_title", None, Some(13)),
];

/// The major number of `v23.0` / `v23`; `None` for anything else.
pub(crate) fn parse(version: &str) -> Option<u32> {
    let rest = version.strip_prefix('v')?;
    let major = rest.split('.').next()?;
    major.parse().ok()
}

/// How a version is written in paths and in the `facebook-api-version` header.
pub(crate) fn label(version: u32) -> String {
    format!("v{version}.0")
}

/// The version that serves a call addressed to `requested` (the path's `/vNN.N`, if any).
pub(crate) fn served(st: &State, requested: Option<&str>) -> u32 {
    let s = &st.settings;
    match requested.and_then(parse) {
        None => s.default_graph_version,
        Some(v) => v.max(s.oldest_graph_version),
    }
}

/// The IG Media fields known in `version`, less those this simulated Meta is set not to know.
pub(crate) fn media_fields(st: &State, version: u32) -> Vec<&'static str> {
    let versioned = VERSIONED_MEDIA_FIELDS
        .iter()
        .filter(|(_, since, until)| {
            since.is_none_or(|s| version >= s) && until.is_none_or(|u| version <= u)
        })
        .map(|(name, _, _)| *name);
    known(st, MEDIA_FIELDS.iter().copied().chain(versioned))
}

/// An Instagram user node's `allowed` fields, less those this simulated Meta is set not to know.
pub(crate) fn user_fields(st: &State, allowed: &[&'static str]) -> Vec<&'static str> {
    known(st, allowed.iter().copied())
}

/// `fields` less those named in the `unknown_fields` setting.
fn known(st: &State, fields: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let unknown = &st.settings.unknown_fields;
    fields
        .filter(|name| !unknown.iter().any(|u| u == name))
        .collect()
}

/// Rejects IG Media fields that the serving version does not know (children included).
pub(crate) fn check_media_fields(
    st: &State,
    view: &View,
    fields: &[Field],
) -> Result<(), GraphError> {
    check_fields(fields, &media_fields(st, view.version), MEDIA_NODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SimOptions;

    #[test]
    fn versions_parse_and_print() {
        assert_eq!(parse("v23.0"), Some(23));
        assert_eq!(parse("v9"), Some(9));
        assert_eq!(parse("23.0"), None);
        assert_eq!(parse("vX"), None);
        assert_eq!(label(21), "v21.0");
    }

    #[test]
    fn old_versions_are_served_by_the_oldest_available() {
        let st = State::new(SimOptions::default());
        let oldest = st.settings.oldest_graph_version;
        assert_eq!(served(&st, Some("v2.0")), oldest);
        assert_eq!(served(&st, Some("v24.0")), 24.max(oldest));
        assert_eq!(served(&st, None), st.settings.default_graph_version);
    }

    #[test]
    fn retired_and_unknown_fields_are_not_known() {
        let mut st = State::new(SimOptions::default());
        assert!(media_fields(&st, 13).contains(&"video_title"));
        assert!(!media_fields(&st, 14).contains(&"video_title"));
        assert!(media_fields(&st, 23).contains(&"alt_text"));
        st.settings.unknown_fields = vec!["alt_text".into()];
        assert!(!media_fields(&st, 23).contains(&"alt_text"));
    }
}
