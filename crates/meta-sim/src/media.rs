//! Posts: images, videos, reels and carousels (with children), their public views and the
//! `NewMedia` input of `post_media`.

use serde::{Deserialize, Deserializer, Serialize};

/// What kind of post.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaKind {
    /// `IMAGE` / `FEED`.
    #[default]
    Image,
    /// `VIDEO` / `FEED`.
    Video,
    /// A reel: `VIDEO` / `REELS`.
    Reels,
    /// `CAROUSEL_ALBUM` / `FEED` with children.
    CarouselAlbum,
}

impl MediaKind {
    /// `media_type` as the API reports it (reels are `VIDEO`).
    pub fn media_type(self) -> &'static str {
        match self {
            MediaKind::Image => "IMAGE",
            MediaKind::Video | MediaKind::Reels => "VIDEO",
            MediaKind::CarouselAlbum => "CAROUSEL_ALBUM",
        }
    }

    /// `media_product_type` as the API reports it.
    pub fn product_type(self) -> &'static str {
        match self {
            MediaKind::Reels => "REELS",
            _ => "FEED",
        }
    }

    pub(crate) fn is_video(self) -> bool {
        matches!(self, MediaKind::Video | MediaKind::Reels)
    }
}

/// Kind of a carousel child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChildKind {
    /// An image slide.
    #[default]
    Image,
    /// A video slide.
    Video,
}

impl ChildKind {
    /// `media_type` of the child.
    pub fn media_type(self) -> &'static str {
        match self {
            ChildKind::Image => "IMAGE",
            ChildKind::Video => "VIDEO",
        }
    }
}

/// Image proportions of a post.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// Let the seed decide.
    #[default]
    Auto,
    /// 1080×1350.
    Portrait,
    /// 1080×1080.
    Square,
}

/// Input of `post_media` / `POST /__sim/accounts/{username}/media`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewMedia {
    /// `IMAGE`, `VIDEO`, `REELS` or `CAROUSEL_ALBUM`.
    pub kind: MediaKind,
    /// Caption; absent from the API when `None`.
    pub caption: Option<String>,
    /// Carousel children (JSON: a list of `"IMAGE"`/`"VIDEO"` or a number of images);
    /// an empty list on a carousel means three images.
    #[serde(deserialize_with = "children_spec")]
    pub children: Vec<ChildKind>,
    /// Flagged for copyright: `media_url` is omitted.
    pub copyrighted: bool,
    /// `alt_text`; absent when `None`.
    pub alt_text: Option<String>,
    /// Unix time of the post; default now (simulator clock).
    pub timestamp: Option<i64>,
    /// `like_count`; default seeded.
    pub like_count: Option<u64>,
    /// `comments_count`; default seeded.
    pub comments_count: Option<u64>,
    /// Image proportions.
    pub aspect: Aspect,
}

fn children_spec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChildKind>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Count(u32),
        Kinds(Vec<ChildKind>),
    }
    match Spec::deserialize(d) {
        Ok(Spec::Count(n)) => Ok(vec![ChildKind::Image; n as usize]),
        Ok(Spec::Kinds(k)) => Ok(k),
        Err(_) => Err(serde::de::Error::custom(
            "`children` must be a number or a list of \"IMAGE\"/\"VIDEO\"",
        )),
    }
}

impl NewMedia {
    fn with(kind: MediaKind, caption: &str) -> Self {
        Self {
            kind,
            caption: (!caption.is_empty()).then(|| caption.to_owned()),
            ..Self::default()
        }
    }

    /// An image post (empty caption means none).
    pub fn image(caption: &str) -> Self {
        Self::with(MediaKind::Image, caption)
    }

    /// A feed video.
    pub fn video(caption: &str) -> Self {
        Self::with(MediaKind::Video, caption)
    }

    /// A reel.
    pub fn reel(caption: &str) -> Self {
        Self::with(MediaKind::Reels, caption)
    }

    /// A carousel of `images` image children.
    pub fn carousel(caption: &str, images: usize) -> Self {
        Self {
            children: vec![ChildKind::Image; images],
            ..Self::with(MediaKind::CarouselAlbum, caption)
        }
    }

    /// Marks the post as copyright-flagged (no `media_url`).
    pub fn copyrighted(mut self) -> Self {
        self.copyrighted = true;
        self
    }

    /// Sets the post time.
    pub fn at(mut self, unix: i64) -> Self {
        self.timestamp = Some(unix);
        self
    }
}

/// Public view of a carousel child.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// Child media id.
    pub id: String,
    /// Image or video.
    pub kind: ChildKind,
}

/// Public view of a post.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Media id.
    pub id: String,
    /// Owner's username.
    pub owner: String,
    /// Kind of post.
    pub kind: MediaKind,
    /// Caption.
    pub caption: Option<String>,
    /// Unix time of the post.
    pub timestamp: i64,
    /// Shortcode in the permalink.
    pub shortcode: String,
    /// `https://www.instagram.com/p/<shortcode>/` or `/reel/…`.
    pub permalink: String,
    /// Likes.
    pub like_count: u64,
    /// Comments.
    pub comments_count: u64,
    /// Whether `media_url` is withheld.
    pub copyrighted: bool,
    /// Carousel children.
    pub children: Vec<ChildInfo>,
}

/// A carousel child.
#[derive(Clone, Debug)]
pub(crate) struct Child {
    pub(crate) id: String,
    pub(crate) kind: ChildKind,
}

/// A post.
#[derive(Clone, Debug)]
pub(crate) struct Media {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) kind: MediaKind,
    pub(crate) caption: Option<String>,
    pub(crate) timestamp: i64,
    pub(crate) shortcode: String,
    pub(crate) like_count: u64,
    pub(crate) comments_count: u64,
    pub(crate) alt_text: Option<String>,
    pub(crate) copyrighted: bool,
    pub(crate) portrait: bool,
    pub(crate) children: Vec<Child>,
    pub(crate) deleted: bool,
}

impl Media {
    pub(crate) fn permalink(&self) -> String {
        let kind = if self.kind == MediaKind::Reels {
            "reel"
        } else {
            "p"
        };
        format!("https://www.instagram.com/{kind}/{}/", self.shortcode)
    }

    pub(crate) fn info(&self) -> MediaInfo {
        MediaInfo {
            id: self.id.clone(),
            owner: self.owner.clone(),
            kind: self.kind,
            caption: self.caption.clone(),
            timestamp: self.timestamp,
            shortcode: self.shortcode.clone(),
            permalink: self.permalink(),
            like_count: self.like_count,
            comments_count: self.comments_count,
            copyrighted: self.copyrighted,
            children: self
                .children
                .iter()
                .map(|c| ChildInfo {
                    id: c.id.clone(),
                    kind: c.kind,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_accept_count_or_list() {
        let m: NewMedia =
            serde_json::from_str(r#"{"kind":"CAROUSEL_ALBUM","children":2}"#).expect("count");
        assert_eq!(m.children, vec![ChildKind::Image; 2]);
        let m: NewMedia =
            serde_json::from_str(r#"{"kind":"CAROUSEL_ALBUM","children":["VIDEO","IMAGE"]}"#)
                .expect("list");
        assert_eq!(m.children, vec![ChildKind::Video, ChildKind::Image]);
        assert!(serde_json::from_str::<NewMedia>(r#"{"children":"x"}"#).is_err());
    }

    #[test]
    fn reels_are_video() {
        assert_eq!(MediaKind::Reels.media_type(), "VIDEO");
        assert_eq!(MediaKind::Reels.product_type(), "REELS");
    }
}
