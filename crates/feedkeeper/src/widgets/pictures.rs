//! Which copy of each picture a widget shows: feedkeeper's own (`/i/{key}/{width}.{format}`)
//! once its variants exist; until then Instagram's URL while its signature is valid; never a
//! URL that has expired (the post is then left out, or the item from its album).

use std::collections::HashMap;

use crate::clock::UnixSeconds;
use crate::db::images::Shown;
use crate::images::{Format, scaled_height};

/// A stored image as a widget uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub width: u32,
    pub height: u32,
    /// The widths made, ascending.
    pub widths: Vec<u32>,
    /// The encodings made, best first (AVIF only once its second pass is done).
    pub formats: Vec<Format>,
    pub placeholder: Option<String>,
    pub color: Option<String>,
    /// The key and its signature, as addresses carry them.
    pub segment: String,
}

/// One picture's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picture<'a> {
    Stored(&'a Stored),
    /// Instagram's URL, valid until `expires_at`.
    Remote {
        url: &'a str,
        expires_at: Option<UnixSeconds>,
    },
}

impl Picture<'_> {
    /// When a rendering that includes this picture stops being right.
    pub fn expires_at(&self) -> Option<UnixSeconds> {
        match self {
            Picture::Stored(_) => None,
            Picture::Remote { expires_at, .. } => *expires_at,
        }
    }
}

/// The stored images of one account, and where their addresses start.
#[derive(Clone, Debug, Default)]
pub struct Pictures {
    /// The public base URL followed by `/i/`.
    base: String,
    by_item: HashMap<String, Stored>,
    /// Instagram URLs expiring before this are not shown.
    now: UnixSeconds,
}

/// The expiry (`oe`) of an Instagram URL.
pub fn expiry_of(url: &str) -> Option<UnixSeconds> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| crate::meta::cdn::expiry(&u).ok().flatten())
}

impl Pictures {
    pub fn new(
        public_url: &str,
        signer: &crate::images::Signer,
        shown: Vec<Shown>,
        now: UnixSeconds,
    ) -> Pictures {
        let by_item = shown
            .into_iter()
            .filter_map(|s| {
                let mut widths: Vec<u32> =
                    s.widths.split(',').filter_map(|w| w.parse().ok()).collect();
                widths.sort_unstable();
                widths.dedup();
                if widths.is_empty() {
                    return None;
                }
                let segment = signer.segment(&crate::images::ImageKey::parse(&s.key)?);
                Some((
                    s.item_id,
                    Stored {
                        key: s.key,
                        width: u32::try_from(s.width).ok()?,
                        height: u32::try_from(s.height).ok()?,
                        widths,
                        formats: crate::images::parse_formats(s.formats.as_deref()),
                        placeholder: s.placeholder,
                        color: s.color,
                        segment,
                    },
                ))
            })
            .collect();
        Pictures {
            base: format!("{}/i/", public_url.trim_end_matches('/')),
            by_item,
            now,
        }
    }

    /// The copy of picture `item` (Instagram's address `url`) to show, if any may be.
    pub fn pick<'a>(&'a self, item: &str, url: Option<&'a str>) -> Option<Picture<'a>> {
        if let Some(stored) = self.by_item.get(item) {
            return Some(Picture::Stored(stored));
        }
        let url = url?;
        let expires_at = expiry_of(url);
        if expires_at.is_some_and(|t| t <= self.now) {
            return None;
        }
        Some(Picture::Remote { url, expires_at })
    }

    /// A remote URL (a video) if it has not expired.
    pub fn remote<'a>(&self, url: Option<&'a str>) -> Option<&'a str> {
        url.filter(|u| expiry_of(u).is_none_or(|t| t > self.now))
    }

    /// The address of one variant.
    pub fn url(&self, s: &Stored, width: u32, format: Format) -> String {
        format!("{}{}/{width}.{}", self.base, s.segment, format.extension())
    }

    /// `srcset` of one format: every width.
    pub fn srcset(&self, s: &Stored, format: Format) -> String {
        s.widths
            .iter()
            .map(|&w| format!("{} {w}w", self.url(s, w, format)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The largest variant in a format (the lightbox's).
    pub fn largest(&self, s: &Stored, format: Format) -> String {
        self.url(s, s.widths.last().copied().unwrap_or(s.width), format)
    }

    /// The smallest variant in a format (an avatar's).
    pub fn smallest(&self, s: &Stored, format: Format) -> String {
        self.url(s, s.widths.first().copied().unwrap_or(s.width), format)
    }

    /// Every variant, for the JSON feed.
    pub fn sizes(&self, s: &Stored) -> Vec<Size> {
        let mut sizes = Vec::new();
        for &format in &s.formats {
            for &width in &s.widths {
                sizes.push(Size {
                    width,
                    height: scaled_height(s.width, s.height, width),
                    format,
                    url: self.url(s, width, format),
                });
            }
        }
        sizes
    }
}

/// The width a plain `src` uses: the first of at least 640 pixels, else the largest.
pub fn middle_width(s: &Stored) -> u32 {
    s.widths
        .iter()
        .copied()
        .find(|&w| w >= 640)
        .or(s.widths.last().copied())
        .unwrap_or(s.width)
}

/// One variant in the JSON feed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(item: &str) -> Shown {
        Shown {
            media_id: item.into(),
            item_id: item.into(),
            key: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            width: 1080,
            height: 1350,
            widths: "320,640,1080".into(),
            formats: Some("avif,webp,jpeg".into()),
            placeholder: Some("data:image/webp;base64,AA".into()),
            color: Some("#112233".into()),
        }
    }

    #[test]
    fn stored_copies_win_and_expired_urls_are_never_shown() {
        let signer = crate::images::Signer::from_keys(vec![[7; 32]]);
        let pictures = Pictures::new("https://fk.example/", &signer, vec![shown("1")], 1_000);
        let stored = pictures.pick("1", Some("https://x.cdninstagram.com/a.jpg?oe=10"));
        let Some(Picture::Stored(s)) = stored else {
            panic!("{stored:?}")
        };
        let segment = signer.segment(&crate::images::ImageKey::parse(&s.key).unwrap());
        assert_eq!(
            pictures.url(s, 320, Format::Webp),
            format!("https://fk.example/i/{segment}/320.webp")
        );
        assert!(
            pictures
                .srcset(s, Format::Jpeg)
                .ends_with("/1080.jpg 1080w")
        );
        assert_eq!(pictures.sizes(s).len(), 9);
        assert_eq!(pictures.sizes(s)[0].height, 400);
        assert_eq!(pictures.sizes(s)[0].format, Format::Avif);
        // An image whose AVIF pass has not run (or was made before AVIF) offers WebP and JPEG.
        let mut first_pass = shown("3");
        first_pass.formats = None;
        let pictures = Pictures::new("https://fk.example/", &signer, vec![first_pass], 1_000);
        let Some(Picture::Stored(s)) = pictures.pick("3", None) else {
            panic!("stored")
        };
        assert_eq!(s.formats, vec![Format::Webp, Format::Jpeg]);
        assert_eq!(pictures.sizes(s).len(), 6);
        // 0x3E8 = 1000: expired at "now".
        assert_eq!(
            pictures.pick("2", Some("https://x.cdninstagram.com/a.jpg?oe=3E8")),
            None
        );
        assert_eq!(
            pictures.pick("2", Some("https://x.cdninstagram.com/a.jpg?oe=3E9")),
            Some(Picture::Remote {
                url: "https://x.cdninstagram.com/a.jpg?oe=3E9",
                expires_at: Some(1001)
            })
        );
        assert_eq!(pictures.pick("2", None), None);
    }
}
