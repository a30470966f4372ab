//! The `fields=` lists we ask Meta for, and what to do when Meta does not know one of them.
//!
//! Meta answers a request naming one field it does not know, on that host and API version, with
//! `(#100) Tried accessing nonexisting field (…)` and nothing else: the whole call fails. Which
//! fields each host and version knows is not fully documented (the reference lists fields seen
//! in clients on one host and not the other), so each list names the fields a feed cannot do
//! without and the ones it can. When Meta refuses an optional field, the client drops it for
//! that host and node type and asks again; a refused required field is a failure like any
//! other. A refusal lasts a day, then the field is asked for again (Meta adds fields, and a
//! refusal may have been a passing fault).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::types::TokenFamily;

/// A node type we read, with its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    /// A post (`/{user-id}/media`, `/{media-id}`), with its carousel children.
    Media,
    /// The account's profile on graph.instagram.com (`/me`).
    InstagramProfile,
    /// The account's profile on graph.facebook.com (`/{ig-user-id}`).
    FacebookProfile,
}

/// A field and whether a feed can do without it.
type Spec = (&'static str, Need);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}

use Need::{Optional, Required};

/// Every post: what a widget shows, in the order Meta's docs list them.
const MEDIA: &[Spec] = &[
    ("id", Required),
    ("caption", Required),
    ("media_type", Required),
    ("media_product_type", Optional),
    ("media_url", Required),
    ("thumbnail_url", Required),
    ("permalink", Required),
    ("shortcode", Optional),
    ("timestamp", Required),
    ("username", Optional),
    ("like_count", Optional),
    ("comments_count", Optional),
    ("alt_text", Optional),
];

/// A carousel's children (`children{…}`): the same rules as posts.
const CHILDREN: &[Spec] = &[
    ("id", Required),
    ("media_type", Required),
    ("media_url", Required),
    ("thumbnail_url", Required),
    ("timestamp", Optional),
    ("alt_text", Optional),
];

const INSTAGRAM_PROFILE: &[Spec] = &[
    ("id", Required),
    ("user_id", Optional),
    ("username", Required),
    ("name", Optional),
    ("account_type", Optional),
    ("profile_picture_url", Optional),
    ("followers_count", Optional),
    ("follows_count", Optional),
    ("media_count", Optional),
    ("biography", Optional),
    ("website", Optional),
];

/// On the Facebook host the IG user node has no `user_id`/`account_type`; `id` is the 17841… id.
const FACEBOOK_PROFILE: &[Spec] = &[
    ("id", Required),
    ("username", Required),
    ("name", Optional),
    ("profile_picture_url", Optional),
    ("followers_count", Optional),
    ("follows_count", Optional),
    ("media_count", Optional),
    ("biography", Optional),
    ("website", Optional),
];

impl Node {
    fn specs(self) -> (&'static [Spec], Option<&'static [Spec]>) {
        match self {
            Node::Media => (MEDIA, Some(CHILDREN)),
            Node::InstagramProfile => (INSTAGRAM_PROFILE, None),
            Node::FacebookProfile => (FACEBOOK_PROFILE, None),
        }
    }

    /// The optional fields of this node (children's included).
    fn optional(self) -> impl Iterator<Item = &'static str> {
        let (top, children) = self.specs();
        top.iter()
            .chain(children.unwrap_or_default())
            .filter(|(_, need)| *need == Optional)
            .map(|(name, _)| *name)
    }
}

/// One refusal: this host does not know this field of this node.
type Refusal = (TokenFamily, Node, &'static str);

/// How long a refusal is believed.
const REFUSAL_LASTS: Duration = Duration::from_secs(24 * 3600);

/// The optional fields each host has refused, per node type, and when (shared by the client's
/// clones).
#[derive(Debug, Default, Clone)]
pub struct RefusedFields(Arc<Mutex<BTreeMap<Refusal, Instant>>>);

impl RefusedFields {
    fn refused(&self) -> std::sync::MutexGuard<'_, BTreeMap<Refusal, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `fields=` value for `node` on `family`'s host, less the optional fields that host
    /// refused within the last day.
    pub fn list(&self, family: TokenFamily, node: Node) -> String {
        self.list_at(family, node, Instant::now())
    }

    fn list_at(&self, family: TokenFamily, node: Node, now: Instant) -> String {
        let refused = self.refused();
        let dropped = |name: &'static str| {
            refused
                .get(&(family, node, name))
                .is_some_and(|at| now.saturating_duration_since(*at) < REFUSAL_LASTS)
        };
        let keep = |specs: &'static [Spec]| {
            specs
                .iter()
                .filter(|(name, need)| *need == Required || !dropped(name))
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(",")
        };
        let (top, children) = node.specs();
        let mut list = keep(top);
        if let Some(children) = children {
            list.push_str(",children{");
            list.push_str(&keep(children));
            list.push('}');
        }
        list
    }

    /// Records that `family`'s host refused the optional field `name` of `node` (now);
    /// `false` when it is not an optional field of that node.
    pub fn refuse(&self, family: TokenFamily, node: Node, name: &str) -> bool {
        self.refuse_at(family, node, name, Instant::now())
    }

    fn refuse_at(&self, family: TokenFamily, node: Node, name: &str, now: Instant) -> bool {
        match node.optional().find(|optional| *optional == name) {
            Some(name) => {
                self.refused().insert((family, node, name), now);
                true
            }
            None => false,
        }
    }

    /// The optional field of `node` that an error names as unknown, if any.
    pub fn named_in(node: Node, error: &super::MetaError) -> Option<&'static str> {
        node.optional().find(|name| error.is_unknown_field(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_drop_only_what_that_host_refused() {
        let refused = RefusedFields::default();
        let full = refused.list(TokenFamily::Instagram, Node::Media);
        assert!(full.starts_with("id,caption,media_type,"), "{full}");
        assert!(
            full.ends_with(",children{id,media_type,media_url,thumbnail_url,timestamp,alt_text}")
        );
        assert_eq!(full.matches("alt_text").count(), 2);

        assert!(refused.refuse(TokenFamily::Instagram, Node::Media, "alt_text"));
        let less = refused.list(TokenFamily::Instagram, Node::Media);
        assert!(!less.contains("alt_text"), "{less}");
        assert!(less.ends_with("children{id,media_type,media_url,thumbnail_url,timestamp}"));
        // The other host, and other nodes, still ask for it.
        assert!(
            refused
                .list(TokenFamily::Facebook, Node::Media)
                .contains("alt_text")
        );

        // What a feed cannot do without is never dropped.
        assert!(!refused.refuse(TokenFamily::Instagram, Node::Media, "media_url"));
        assert!(!refused.refuse(TokenFamily::Instagram, Node::InstagramProfile, "username"));
        assert!(!refused.refuse(TokenFamily::Instagram, Node::Media, "bogus"));
        assert!(refused.refuse(TokenFamily::Instagram, Node::InstagramProfile, "website"));
        assert_eq!(
            refused.list(TokenFamily::Instagram, Node::InstagramProfile),
            "id,user_id,username,name,account_type,profile_picture_url,followers_count,\
             follows_count,media_count,biography"
        );
    }

    #[test]
    fn a_refused_child_field_leaves_the_required_field_of_the_same_name() {
        let refused = RefusedFields::default();
        assert!(refused.refuse(TokenFamily::Facebook, Node::Media, "timestamp"));
        let list = refused.list(TokenFamily::Facebook, Node::Media);
        assert!(list.contains(",timestamp,"), "the post's own: {list}");
        assert!(list.ends_with("children{id,media_type,media_url,thumbnail_url,alt_text}"));
    }

    #[test]
    fn refusals_are_asked_again_after_a_day() {
        let refused = RefusedFields::default();
        let then = Instant::now();
        refused.refuse_at(TokenFamily::Instagram, Node::Media, "alt_text", then);
        let during = refused.list_at(
            TokenFamily::Instagram,
            Node::Media,
            then + REFUSAL_LASTS / 2,
        );
        assert!(!during.contains("alt_text"));
        let after = refused.list_at(TokenFamily::Instagram, Node::Media, then + REFUSAL_LASTS);
        assert!(after.contains("alt_text"), "{after}");
    }
}
