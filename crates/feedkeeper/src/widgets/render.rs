//! A widget's output: the HTML document framed on websites (`/w/{id}`) and the JSON feed
//! (`/w/{id}.json`, schema in `docs/widget-feed.schema.json`).
//!
//! The document carries its CSS and script inline and allows exactly those by hash in its own
//! Content-Security-Policy; images and videos may come only from the CDN hosts of the config.
//! Every caption goes through [`super::caption`] and askama's escaping.

use std::sync::LazyLock;

use askama::Template;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::caption::{self, Segment};
use super::pictures::{self, Picture, Pictures, Size};
use super::settings::{Captions, Layout, Theme};
use super::{Health, WidgetData};
use crate::clock::rfc3339;
use crate::config::{Config, HostPattern};
use crate::db::posts::PostRow;
use crate::images::Format;

/// The JSON feed's schema version: bumped on any change a consumer could notice.
pub const SCHEMA_VERSION: u32 = 3;

const WIDGET_CSS: &str = include_str!("../../static/widget.css");
const WIDGET_JS: &str = include_str!("../../static/widget.js");

pub(crate) fn csp_hash(source: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(source.as_bytes()))
    )
}

/// The widget's script and styles as every framing page downloads them: without the sources'
/// indentation and their comments (a third of their bytes), made once.
static SCRIPT: LazyLock<String> = LazyLock::new(|| compact(WIDGET_JS, Comments::Line));
static BASE_CSS: LazyLock<String> = LazyLock::new(|| compact(WIDGET_CSS, Comments::Block));
static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(&SCRIPT));
static BASE_CSS_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(&BASE_CSS));

/// How a source's comments are written.
#[derive(Clone, Copy)]
enum Comments {
    /// `// …` (the script's).
    Line,
    /// `/* … */` (the styles').
    Block,
}

/// `source` without each line's indentation, its empty lines, and its comments where they
/// stand at the start of a line: a `/* … */` opening a line is cut up to its end (code after it
/// on the same line stays), a `// …` line is dropped. Lines are never joined and nothing else
/// inside a line is touched, so no token or statement changes. A script with a template literal
/// or a block comment, where a `//` line might not be a comment, is only trimmed.
fn compact(source: &str, comments: Comments) -> String {
    let line_comments =
        matches!(comments, Comments::Line) && !source.contains('`') && !source.contains("/*");
    let mut out = String::with_capacity(source.len());
    let mut in_block = false;
    for line in source.lines() {
        let mut line = line.trim();
        if matches!(comments, Comments::Block) && (in_block || line.starts_with("/*")) {
            let from = if in_block { 0 } else { 2 };
            match line[from..].find("*/") {
                Some(end) => {
                    in_block = false;
                    line = line[from + end + 2..].trim_start();
                }
                None => {
                    in_block = true;
                    continue;
                }
            }
        }
        if line_comments && line.starts_with("//") {
            continue;
        }
        if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A tile's picture: a stored image with its variants, or one address.
struct ImageView {
    src: String,
    /// `srcset` of the WebP and JPEG variants (stored images only).
    /// Only once the image's AVIF variants exist.
    srcset_avif: Option<String>,
    srcset_webp: Option<String>,
    srcset_jpeg: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// The class carrying the placeholder and colour (stored images only).
    class: Option<String>,
}

/// One image or video of a post, for the lightbox.
struct MediaView {
    src: String,
    poster: Option<String>,
    video: bool,
    alt: String,
}

struct PostView {
    /// `image`, `video`, `reel`, `carousel`.
    kind: &'static str,
    badge: &'static str,
    image: ImageView,
    /// Fetched at once (the first row), not when scrolled to.
    eager: bool,
    /// The tile picture's description: empty when the caption shown on hover (inside the same link) already says
    /// what the description would repeat.
    tile_alt: String,
    permalink: String,
    caption: Vec<Segment>,
    media: Vec<MediaView>,
}

#[derive(Template)]
#[template(path = "widget/widget.html")]
struct WidgetDocument<'a> {
    theme: &'static str,
    transparent: bool,
    /// The account is gone: visitors see nothing (no "no posts yet"), and the frame collapses.
    account_gone: bool,
    layout: &'static str,
    captions: &'static str,
    lightbox: bool,
    header: bool,
    follow_button: bool,
    initials: String,
    profile: Option<&'a crate::db::posts::ProfileRow>,
    /// The avatar's address (stored, or Instagram's while valid).
    avatar: Option<String>,
    posts: Vec<PostView>,
    /// The `sizes` of every tile's `srcset`, from the columns.
    sizes: String,
    base_css: &'static str,
    vars_css: String,
    /// Each stored picture's placeholder and colour, shown until it arrives.
    placeholders_css: String,
    script: &'static str,
}

fn kind_of(p: &PostRow) -> (&'static str, &'static str) {
    match (p.media_type.as_str(), p.product_type.as_deref()) {
        ("VIDEO", Some("REELS")) => ("reel", "Reel"),
        ("VIDEO", _) => ("video", "Video"),
        ("CAROUSEL_ALBUM", _) => ("carousel", "Album"),
        _ => ("image", ""),
    }
}

fn alt_for(p: &PostRow, username: &str) -> String {
    p.alt_text.clone().unwrap_or_else(|| match &p.caption {
        // A short, plain description for screen readers when Meta has no alt text.
        Some(c) => {
            let plain = caption::without_trailing_hashtags(c);
            let short: String = plain.chars().take(120).collect();
            if short.is_empty() {
                format!("Post by @{username}")
            } else {
                short
            }
        }
        None => format!("Post by @{username}"),
    })
}

fn media_of(p: &PostRow, alt: &str, pictures: &Pictures) -> Vec<MediaView> {
    let one =
        |item: &str, media_type: &str, url: &Option<String>, thumb: &Option<String>, alt: &str| {
            let video = media_type == "VIDEO";
            let still = if video {
                thumb.as_deref()
            } else {
                url.as_deref().or(thumb.as_deref())
            };
            let still = still
                .and_then(|u| pictures.pick(item, Some(u)))
                .map(|pic| match pic {
                    Picture::Stored(s) => pictures.largest(s, Format::Webp),
                    Picture::Remote { url, .. } => url.to_owned(),
                });
            // A video plays from Instagram while its address is valid; after, or when Meta withheld
            // it (licensed music), its poster shows as an image.
            let playable = if video {
                pictures.remote(url.as_deref())
            } else {
                None
            };
            match playable {
                Some(src) => Some(MediaView {
                    video: true,
                    poster: still,
                    src: src.to_owned(),
                    alt: alt.to_owned(),
                }),
                None => Some(MediaView {
                    video: false,
                    poster: None,
                    src: still?,
                    alt: alt.to_owned(),
                }),
            }
        };
    if p.children.is_empty() {
        one(
            &p.media_id,
            &p.media_type,
            &p.media_url,
            &p.thumbnail_url,
            alt,
        )
        .into_iter()
        .collect()
    } else {
        p.children
            .iter()
            .filter_map(|c| {
                one(
                    &c.id,
                    &c.media_type,
                    &c.media_url,
                    &c.thumbnail_url,
                    c.alt_text.as_deref().unwrap_or(alt),
                )
            })
            .collect()
    }
}

/// A tile's picture, and the CSS rule of its placeholder (stored images only).
fn image_view(
    picture: Picture<'_>,
    pictures: &Pictures,
    index: usize,
) -> (ImageView, Option<String>) {
    match picture {
        Picture::Stored(s) => {
            let class = format!("fk-i{index}");
            // Only characters our own encoders and formatter write reach the style block.
            let color = s.color.as_deref().filter(|c| {
                c.len() == 7
                    && c.as_bytes()[0] == b'#'
                    && c.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
            });
            let placeholder = s.placeholder.as_deref().filter(|p| {
                p.starts_with("data:image/")
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=:;,-".contains(&b))
            });
            let rule = match (color, placeholder) {
                (None, None) => None,
                (color, placeholder) => Some(format!(
                    ".{class}{{background:{} {} center/cover no-repeat}}",
                    color.unwrap_or("transparent"),
                    placeholder
                        .map(|p| format!("url({p})"))
                        .unwrap_or_else(|| "none".into()),
                )),
            };
            (
                ImageView {
                    // For browsers without `srcset`: a middle width.
                    src: pictures.url(s, pictures::middle_width(s), Format::Jpeg),
                    srcset_avif: s
                        .formats
                        .contains(&Format::Avif)
                        .then(|| pictures.srcset(s, Format::Avif)),
                    srcset_webp: Some(pictures.srcset(s, Format::Webp)),
                    srcset_jpeg: Some(pictures.srcset(s, Format::Jpeg)),
                    width: Some(s.width),
                    height: Some(s.height),
                    class: rule.as_ref().map(|_| class),
                },
                rule,
            )
        }
        Picture::Remote { url, .. } => (
            ImageView {
                src: url.to_owned(),
                srcset_avif: None,
                srcset_webp: None,
                srcset_jpeg: None,
                width: None,
                height: None,
                class: None,
            },
            None,
        ),
    }
}

/// Up to two letters for the header's avatar placeholder (profile pictures arrive with the
/// image store: Meta's expire within days and may refuse other sites).
fn initials(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '_' || c == '.')
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// The rendered document, with the Content-Security-Policy it needs.
pub struct Document {
    pub html: String,
    pub csp: String,
}

/// Where images and videos may come from: feedkeeper's own image addresses, and the configured
/// CDN hosts (https; the simulator on this machine over http) for pictures not stored yet.
fn media_sources(config: &Config) -> String {
    let mut sources = Vec::new();
    if let Ok(own) = url::Url::parse(&config.public_url()) {
        sources.push(own.origin().ascii_serialization());
    }
    for p in config
        .meta
        .cdn_hosts
        .iter()
        .filter_map(|p| HostPattern::parse(p).ok())
    {
        match p {
            HostPattern::Exact(h) if h == "127.0.0.1" || h == "localhost" || h == "[::1]" => {
                sources.push(format!("http://{h}:*"));
            }
            HostPattern::Exact(h) => sources.push(format!("https://{h}")),
            HostPattern::AnySubdomainOf(d) => sources.push(format!("https://*.{d}")),
        }
    }
    sources.join(" ")
}

/// The `sizes` of every tile's sources: a column's share of the frame's width at each of the
/// layout's breakpoints, which `srcset` candidates are picked by. Written once per source of
/// every tile, so kept short.
fn sizes(s: &super::settings::WidgetSettings) -> String {
    let share = |columns: u32| {
        let vw = format!("{:.2}", 100.0 / f64::from(columns.max(1)));
        format!("{}vw", vw.trim_end_matches('0').trim_end_matches('.'))
    };
    format!(
        "(min-width:960px) {},(min-width:600px) {},{}",
        share(s.columns_desktop),
        share(s.columns_tablet),
        share(s.columns_mobile)
    )
}

/// The widget as an HTML document for an iframe.
pub fn document(config: &Config, data: &WidgetData) -> Result<Document, askama::Error> {
    let s = &data.settings;
    let username = data
        .profile
        .as_ref()
        .map(|p| p.username.clone())
        .unwrap_or_default();
    let pictures = &data.pictures;
    let first_row = [s.columns_desktop, s.columns_tablet, s.columns_mobile]
        .into_iter()
        .max()
        .unwrap_or(4) as usize;
    let mut placeholders_css = String::new();
    let posts = data
        .posts
        .iter()
        .enumerate()
        .filter_map(|(index, p)| {
            let (item, url) = crate::feeds::display_picture(p)?;
            let picture = pictures.pick(item, Some(url))?;
            let (image, rule) = image_view(picture, pictures, index);
            if let Some(rule) = rule {
                placeholders_css.push_str(&rule);
            }
            let (kind, badge) = kind_of(p);
            let alt = alt_for(p, &username);
            let hover_says_it = s.captions == Captions::Hover
                && p.alt_text.is_none()
                && p.caption
                    .as_deref()
                    .is_some_and(|c| !caption::without_trailing_hashtags(c).is_empty());
            let tile_alt = if hover_says_it {
                String::new()
            } else {
                alt.clone()
            };
            Some(PostView {
                tile_alt,
                kind,
                badge,
                image,
                eager: false,
                permalink: p
                    .permalink
                    .clone()
                    .unwrap_or_else(|| format!("https://www.instagram.com/{username}/")),
                caption: p
                    .caption
                    .as_deref()
                    .map(caption::segments)
                    .unwrap_or_default(),
                media: media_of(p, &alt, pictures),
            })
        })
        .collect::<Vec<_>>();
    let posts: Vec<PostView> = posts
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.eager = i < first_row;
            p
        })
        .collect();
    let avatar = data.profile.as_ref().and_then(|p| {
        match pictures.pick(crate::db::images::PROFILE_ITEM, p.picture_url.as_deref())? {
            Picture::Stored(s) => Some(pictures.smallest(s, Format::Webp)),
            Picture::Remote { url, .. } => Some(url.to_owned()),
        }
    });
    let sizes = sizes(s);
    let vars_css = format!(
        ":root{{--fk-cols-desktop:{};--fk-cols-tablet:{};--fk-cols-mobile:{};--fk-gap:{}px;--fk-radius:{}px}}",
        s.columns_desktop, s.columns_tablet, s.columns_mobile, s.spacing, s.radius
    );
    let doc = WidgetDocument {
        theme: match s.theme {
            Theme::Light => "light",
            Theme::Dark => "dark",
            Theme::Auto => "auto",
        },
        transparent: s.transparent,
        account_gone: data.health == crate::widgets::Health::Disconnected,
        layout: match s.layout {
            Layout::Grid => "grid",
            Layout::Slider => "slider",
            Layout::Masonry => "masonry",
        },
        captions: match s.captions {
            Captions::None => "none",
            Captions::Hover => "hover",
            Captions::Below => "below",
        },
        lightbox: s.lightbox,
        header: s.header,
        follow_button: s.follow_button,
        initials: initials(
            data.profile
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .unwrap_or(&username),
        ),
        profile: data.profile.as_ref(),
        avatar,
        posts,
        sizes,
        base_css: &BASE_CSS,
        script: &SCRIPT,
        vars_css: vars_css.clone(),
        placeholders_css: placeholders_css.clone(),
    };
    let media = media_sources(config);
    // Sandboxed: the document runs in an origin of its own (not the dashboard's, whose address
    // it shares), so even a script that got in could read no cookie and call nothing of ours;
    // links may still open Instagram in a new tab.
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {} {} {}; img-src {media} data:; \
         media-src {media}; base-uri 'none'; form-action 'none'; frame-ancestors *; \
         sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox",
        *SCRIPT_HASH,
        *BASE_CSS_HASH,
        csp_hash(&vars_css),
        csp_hash(&placeholders_css)
    );
    Ok(Document {
        html: doc.render()?,
        csp,
    })
}

// ---- The JSON feed -------------------------------------------------------------------------

#[derive(Serialize)]
struct FeedJson<'a> {
    schema_version: u32,
    widget: WidgetJson<'a>,
    health: HealthJson,
    profile: Option<ProfileJson<'a>>,
    posts: Vec<PostJson>,
}

#[derive(Serialize)]
struct WidgetJson<'a> {
    id: &'a str,
    layout: Layout,
    posts: u32,
}

#[derive(Serialize)]
struct HealthJson {
    status: Health,
    last_synced_at: Option<String>,
}

#[derive(Serialize)]
struct ProfileJson<'a> {
    username: &'a str,
    name: Option<&'a str>,
    biography: Option<&'a str>,
    website: Option<&'a str>,
    /// The profile picture: feedkeeper's copy once stored, else Instagram's signed address
    /// while it is valid, else null.
    picture_url: Option<String>,
    picture: Option<ImageJson>,
    profile_url: String,
    followers_count: Option<i64>,
    follows_count: Option<i64>,
    media_count: Option<i64>,
}

#[derive(Serialize)]
struct PostJson {
    id: String,
    permalink: Option<String>,
    timestamp: String,
    media_type: String,
    is_reel: bool,
    media_url: Option<String>,
    thumbnail_url: Option<String>,
    display_url: Option<String>,
    /// The stored copy of the post's picture (the first child's for an album).
    image: Option<ImageJson>,
    urls_expire_at: Option<String>,
    caption: Option<String>,
    caption_text: Option<String>,
    hashtags: Vec<String>,
    mentions: Vec<String>,
    alt_text: Option<String>,
    like_count: Option<i64>,
    comments_count: Option<i64>,
    children: Vec<ChildJson>,
}

#[derive(Serialize)]
struct ChildJson {
    id: String,
    media_type: String,
    media_url: Option<String>,
    thumbnail_url: Option<String>,
    image: Option<ImageJson>,
    alt_text: Option<String>,
}

/// A stored picture: its size, placeholder, colour and every variant.
#[derive(Serialize)]
struct ImageJson {
    width: u32,
    height: u32,
    placeholder: Option<String>,
    color: Option<String>,
    sizes: Vec<Size>,
}

fn image_json(pictures: &Pictures, picture: Option<Picture<'_>>) -> Option<ImageJson> {
    match picture? {
        Picture::Stored(s) => Some(ImageJson {
            width: s.width,
            height: s.height,
            placeholder: s.placeholder.clone(),
            color: s.color.clone(),
            sizes: pictures.sizes(s),
        }),
        Picture::Remote { .. } => None,
    }
}

/// The address of a picture as the feed gives it: feedkeeper's largest JPEG once stored, else
/// Instagram's while valid, else none.
fn address(pictures: &Pictures, picture: Option<Picture<'_>>) -> Option<String> {
    match picture? {
        Picture::Stored(s) => Some(pictures.largest(s, Format::Jpeg)),
        Picture::Remote { url, .. } => Some(url.to_owned()),
    }
}

/// The image and poster addresses of one item (`media_url` is a video's own address, from
/// Instagram while valid; a still's is its picture).
fn item_addresses(
    pictures: &Pictures,
    item: &str,
    media_type: &str,
    media_url: &Option<String>,
    thumbnail_url: &Option<String>,
) -> (Option<String>, Option<String>, Option<ImageJson>) {
    if media_type == "VIDEO" {
        let poster = thumbnail_url
            .as_deref()
            .and_then(|u| pictures.pick(item, Some(u)));
        (
            pictures.remote(media_url.as_deref()).map(str::to_owned),
            address(pictures, poster),
            image_json(pictures, poster),
        )
    } else {
        let still = media_url
            .as_deref()
            .or(thumbnail_url.as_deref())
            .and_then(|u| pictures.pick(item, Some(u)));
        let thumbnail = if media_url.is_some() {
            thumbnail_url
                .as_deref()
                .and_then(|u| pictures.remote(Some(u)))
                .map(str::to_owned)
                .filter(|_| !matches!(still, Some(Picture::Stored(_))))
        } else {
            None
        };
        (
            address(pictures, still),
            thumbnail,
            image_json(pictures, still),
        )
    }
}

/// The widget's feed as JSON.
pub fn json(data: &WidgetData) -> Result<String, serde_json::Error> {
    let pictures = &data.pictures;
    let feed = FeedJson {
        schema_version: SCHEMA_VERSION,
        widget: WidgetJson {
            id: &data.public_id,
            layout: data.settings.layout,
            posts: data.settings.posts,
        },
        health: HealthJson {
            status: data.health,
            last_synced_at: data.last_synced_at.map(rfc3339),
        },
        profile: data.profile.as_ref().map(|p| {
            let picture = pictures.pick(crate::db::images::PROFILE_ITEM, p.picture_url.as_deref());
            ProfileJson {
                username: &p.username,
                name: p.name.as_deref(),
                biography: p.biography.as_deref(),
                website: p.website.as_deref(),
                picture_url: match picture {
                    Some(Picture::Stored(s)) => Some(pictures.largest(s, Format::Jpeg)),
                    Some(Picture::Remote { url, .. }) => Some(url.to_owned()),
                    None => None,
                },
                picture: image_json(pictures, picture),
                profile_url: format!("https://www.instagram.com/{}/", p.username),
                followers_count: p.followers_count,
                follows_count: p.follows_count,
                media_count: p.media_count,
            }
        }),
        posts: data
            .posts
            .iter()
            .map(|p| {
                let (media_url, thumbnail_url, _) = item_addresses(
                    pictures,
                    &p.media_id,
                    &p.media_type,
                    &p.media_url,
                    &p.thumbnail_url,
                );
                let display = crate::feeds::display_picture(p)
                    .and_then(|(item, url)| pictures.pick(item, Some(url)));
                PostJson {
                    id: p.media_id.clone(),
                    permalink: p.permalink.clone(),
                    timestamp: rfc3339(p.posted_at),
                    media_type: p.media_type.clone(),
                    is_reel: p.product_type.as_deref() == Some("REELS"),
                    media_url,
                    thumbnail_url,
                    display_url: address(pictures, display),
                    image: image_json(pictures, display),
                    urls_expire_at: super::remote_expiry(std::slice::from_ref(p), None, pictures)
                        .map(rfc3339),
                    caption: p.caption.clone(),
                    caption_text: p.caption.as_deref().map(caption::without_trailing_hashtags),
                    hashtags: p
                        .caption
                        .as_deref()
                        .map(caption::hashtags)
                        .unwrap_or_default(),
                    mentions: p
                        .caption
                        .as_deref()
                        .map(caption::mentions)
                        .unwrap_or_default(),
                    alt_text: p.alt_text.clone(),
                    like_count: p.like_count,
                    comments_count: p.comments_count,
                    children: p
                        .children
                        .iter()
                        .map(|c| {
                            let (media_url, thumbnail_url, image) = item_addresses(
                                pictures,
                                &c.id,
                                &c.media_type,
                                &c.media_url,
                                &c.thumbnail_url,
                            );
                            ChildJson {
                                id: c.id.clone(),
                                media_type: c.media_type.clone(),
                                media_url,
                                thumbnail_url,
                                image,
                                alt_text: c.alt_text.clone(),
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    };
    // `<`, `>` and `&` only ever stand inside strings: written as \u escapes, the feed stays
    // the same JSON and can never read as markup, however a site embeds it.
    serde_json::to_string(&feed).map(|json| {
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::posts::{ChildRow, ProfileRow};
    use crate::widgets::WidgetData;
    use crate::widgets::settings::WidgetSettings;

    const CDN: &str = "https://scontent.cdninstagram.com/v/";

    fn post(id: &str, media_type: &str, product: &str) -> PostRow {
        PostRow {
            media_id: id.into(),
            posted_at: 1_700_000_000,
            media_type: media_type.into(),
            product_type: Some(product.into()),
            caption: Some(format!("Post {id} <b>bold</b> #tag")),
            permalink: Some(format!("https://www.instagram.com/p/{id}/")),
            media_url: Some(format!("{CDN}{id}.jpg")),
            thumbnail_url: (media_type == "VIDEO").then(|| format!("{CDN}{id}-poster.jpg")),
            ..Default::default()
        }
    }

    fn data(settings: WidgetSettings) -> WidgetData {
        let mut album = post("3", "CAROUSEL_ALBUM", "FEED");
        album.children = vec![
            ChildRow {
                id: "31".into(),
                media_type: "VIDEO".into(),
                media_url: Some(format!("{CDN}31.mp4")),
                thumbnail_url: Some(format!("{CDN}31.jpg")),
                alt_text: None,
            },
            ChildRow {
                id: "32".into(),
                media_type: "IMAGE".into(),
                media_url: Some(format!("{CDN}32.jpg")),
                thumbnail_url: None,
                alt_text: Some("A loaf".into()),
            },
        ];
        WidgetData {
            public_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            settings,
            profile: Some(ProfileRow {
                username: "shop".into(),
                name: Some("Shop & Co".into()),
                picture_url: Some(format!("{CDN}avatar.jpg")),
                ..Default::default()
            }),
            posts: vec![
                post("1", "IMAGE", "FEED"),
                post("2", "VIDEO", "REELS"),
                album,
            ],
            health: crate::widgets::Health::Ok,
            last_synced_at: None,
            urls_expire_at: None,
            pictures: Pictures::new(
                "http://127.0.0.1:8080",
                &crate::images::Signer::from_keys(vec![[1; 32]]),
                Vec::new(),
                0,
            ),
        }
    }

    fn html(settings: WidgetSettings) -> String {
        document(&Config::default(), &data(settings)).unwrap().html
    }

    #[test]
    fn every_layout_caption_mode_and_theme_renders() {
        for (layout, class) in [
            (Layout::Grid, "fk-grid"),
            (Layout::Slider, "fk-slider"),
            (Layout::Masonry, "fk-masonry"),
        ] {
            for (captions, name) in [
                (Captions::None, "none"),
                (Captions::Hover, "hover"),
                (Captions::Below, "below"),
            ] {
                for (theme, theme_name) in [
                    (Theme::Light, "light"),
                    (Theme::Dark, "dark"),
                    (Theme::Auto, "auto"),
                ] {
                    let page = html(WidgetSettings {
                        layout,
                        captions,
                        theme,
                        ..Default::default()
                    });
                    assert!(
                        page.contains(&format!("class=\"fk {class} fk-captions-{name}\"")),
                        "{page}"
                    );
                    assert!(page.contains(&format!("class=\"fk-theme-{theme_name}\"")));
                    assert_eq!(page.contains("class=\"fk-next\""), layout == Layout::Slider);
                    assert_eq!(
                        page.contains("<span class=\"fk-hover\">"),
                        captions == Captions::Hover
                    );
                    assert_eq!(
                        page.matches("<p class=\"fk-caption\">").count(),
                        if captions == Captions::Below { 3 } else { 0 } + 3,
                        "below each post, plus one in each lightbox copy"
                    );
                }
            }
        }
    }

    #[test]
    fn options_switch_their_parts_on_and_off() {
        let all = html(WidgetSettings::default());
        assert!(all.contains("class=\"fk-header\"") && all.contains("class=\"fk-follow\""));
        assert!(all.contains(&format!("<img class=\"fk-avatar\" src=\"{CDN}avatar.jpg\"")));
        assert!(all.contains("id=\"fk-lightbox\"") && all.contains("class=\"fk-full\" hidden"));
        // The reel shows its poster and plays its video in the lightbox; the album's children
        // are all there, the video one with its poster.
        assert!(all.contains(&format!("src=\"{CDN}2-poster.jpg\"")));
        assert!(all.contains(&format!("data-src=\"{CDN}2.jpg\"")), "{all}");
        assert!(all.contains(&format!("data-poster=\"{CDN}31.jpg\"")));
        assert!(all.contains("alt=\"A loaf\""));
        assert!(all.contains(">Reel<") && all.contains(">Album<"));
        let bare = html(WidgetSettings {
            header: false,
            lightbox: false,
            ..Default::default()
        });
        // (Class names also appear in the inline CSS: look for the elements.)
        assert!(!bare.contains("class=\"fk-header\"") && !bare.contains("id=\"fk-lightbox\""));
        let no_follow = html(WidgetSettings {
            follow_button: false,
            ..Default::default()
        });
        assert!(
            no_follow.contains("class=\"fk-header\"") && !no_follow.contains("class=\"fk-follow\"")
        );
        // Columns, spacing and corners arrive as custom properties, allowed by their hash.
        let custom = document(
            &Config::default(),
            &data(WidgetSettings {
                columns_desktop: 6,
                spacing: 0,
                radius: 20,
                ..Default::default()
            }),
        )
        .unwrap();
        assert!(
            custom.html.contains("--fk-cols-desktop:6;")
                && custom.html.contains("--fk-radius:20px")
        );
        let vars = "--fk-cols-desktop:6;--fk-cols-tablet:3;--fk-cols-mobile:2;--fk-gap:0px;--fk-radius:20px";
        assert!(
            custom.csp.contains(&csp_hash(&format!(":root{{{vars}}}"))),
            "{}",
            custom.csp
        );
        assert!(
            custom
                .csp
                .contains("https://*.cdninstagram.com https://*.fbcdn.net data:"),
            "{}",
            custom.csp
        );
        let own = url::Url::parse(&Config::default().public_url()).unwrap();
        assert!(
            custom
                .csp
                .contains(&format!("img-src {} ", own.origin().ascii_serialization()))
        );
    }

    #[test]
    fn captions_are_text_and_only_tags_and_mentions_link() {
        let page = html(WidgetSettings {
            captions: Captions::Below,
            ..Default::default()
        });
        assert!(!page.contains("<b>bold</b>"));
        assert!(page.contains("&#60;b&#62;bold&#60;/b&#62;"));
        assert!(page.contains("href=\"https://www.instagram.com/explore/tags/tag/\""));
    }

    #[test]
    fn the_inline_script_and_styles_lose_their_comments_and_indentation_only() {
        let css = compact(
            "/* one */\na {\n  color: red; /* kept */\n}\n\n/* two\n   lines */\nb{}\n",
            Comments::Block,
        );
        assert_eq!(css, "a {\ncolor: red; /* kept */\n}\nb{}\n");
        let js = compact(
            "// one\n(function () {\n  // two\n  var a = \"//x\"; // kept\n})();\n",
            Comments::Line,
        );
        assert_eq!(js, "(function () {\nvar a = \"//x\"; // kept\n})();\n");
        // Code after a comment on its line stays; a comment may close on the line it opens.
        let css = compact(
            "/* a */ .x{}\n/*/ b */\n/* c\nd */ .y{}\n.z{}\n",
            Comments::Block,
        );
        assert_eq!(css, ".x{}\n.y{}\n.z{}\n");
        // Where a `//` line could be inside a template literal, only indentation goes.
        let js = compact("var t = `\n// not a comment\n`;\n", Comments::Line);
        assert_eq!(js, "var t = `\n// not a comment\n`;\n");
        // The real sources lose about a third, and every rule and statement survives.
        assert!(SCRIPT.len() < WIDGET_JS.len() * 3 / 4, "{}", SCRIPT.len());
        assert!(
            BASE_CSS.len() < WIDGET_CSS.len() * 17 / 20,
            "{}",
            BASE_CSS.len()
        );
        assert_eq!(
            BASE_CSS.matches('{').count(),
            WIDGET_CSS.matches('{').count()
        );
        // What the page carries inline is exactly what its policy allows by hash.
        let doc = document(&Config::default(), &data(WidgetSettings::default())).unwrap();
        let inline = |open: &str, close: &str| -> Vec<String> {
            doc.html
                .split(open)
                .skip(1)
                .map(|rest| rest[..rest.find(close).unwrap()].to_owned())
                .collect()
        };
        let scripts = inline("<script>", "</script>");
        let styles = inline("<style>", "</style>");
        assert_eq!(scripts, vec![SCRIPT.clone()]);
        assert_eq!(styles.len(), 3);
        assert_eq!(styles[0], *BASE_CSS);
        for source in scripts.iter().chain(&styles) {
            assert!(doc.csp.contains(&csp_hash(source)), "{}", doc.csp);
        }
        assert_eq!(
            sizes(&WidgetSettings::default()),
            "(min-width:960px) 25vw,(min-width:600px) 33.33vw,50vw"
        );
        let seven = WidgetSettings {
            columns_desktop: 7,
            columns_tablet: 1,
            columns_mobile: 0,
            ..Default::default()
        };
        assert_eq!(
            sizes(&seven),
            "(min-width:960px) 14.29vw,(min-width:600px) 100vw,100vw"
        );
    }

    #[test]
    fn the_inline_script_and_styles_never_close_their_tags_early() {
        assert!(!WIDGET_JS.contains("</script"));
        assert!(!WIDGET_CSS.contains("</style"));
        assert!(
            !WIDGET_JS.contains("innerHTML"),
            "captions must never become markup"
        );
    }
}
