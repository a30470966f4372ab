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
use super::settings::{Captions, Layout, Theme};
use super::{Health, WidgetData};
use crate::config::{Config, HostPattern};
use crate::db::posts::PostRow;

/// The JSON feed's schema version: bumped on any change a consumer could notice.
pub const SCHEMA_VERSION: u32 = 1;

const WIDGET_CSS: &str = include_str!("../../static/widget.css");
const WIDGET_JS: &str = include_str!("../../static/widget.js");

fn csp_hash(source: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(source.as_bytes()))
    )
}

static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(WIDGET_JS));
static BASE_CSS_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(WIDGET_CSS));

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
    image: String,
    alt: String,
    permalink: String,
    caption: Vec<Segment>,
    media: Vec<MediaView>,
}

#[derive(Template)]
#[template(path = "widget/widget.html")]
struct WidgetDocument<'a> {
    theme: &'static str,
    layout: &'static str,
    captions: &'static str,
    lightbox: bool,
    header: bool,
    follow_button: bool,
    initials: String,
    profile: Option<&'a crate::db::posts::ProfileRow>,
    posts: Vec<PostView>,
    base_css: &'static str,
    vars_css: String,
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

fn media_of(p: &PostRow, alt: &str) -> Vec<MediaView> {
    let one = |media_type: &str, url: &Option<String>, thumb: &Option<String>, alt: &str| {
        let video = media_type == "VIDEO";
        let src = if video {
            url.clone().or_else(|| thumb.clone())
        } else {
            url.clone().or_else(|| thumb.clone())
        }?;
        Some(MediaView {
            // A video Meta withheld (licensed music) shows its poster as an image.
            video: video && url.is_some(),
            poster: thumb.clone().filter(|_| video),
            src,
            alt: alt.to_owned(),
        })
    };
    if p.children.is_empty() {
        one(&p.media_type, &p.media_url, &p.thumbnail_url, alt)
            .into_iter()
            .collect()
    } else {
        p.children
            .iter()
            .filter_map(|c| {
                one(
                    &c.media_type,
                    &c.media_url,
                    &c.thumbnail_url,
                    c.alt_text.as_deref().unwrap_or(alt),
                )
            })
            .collect()
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

/// Where images and videos may come from: the configured CDN hosts (https; the simulator on
/// this machine over http).
fn media_sources(config: &Config) -> String {
    let mut sources = Vec::new();
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

/// The widget as an HTML document for an iframe.
pub fn document(config: &Config, data: &WidgetData) -> Result<Document, askama::Error> {
    let s = &data.settings;
    let username = data
        .profile
        .as_ref()
        .map(|p| p.username.clone())
        .unwrap_or_default();
    let posts = data
        .posts
        .iter()
        .filter_map(|p| {
            let image = crate::feeds::display_image(p)?.to_owned();
            let (kind, badge) = kind_of(p);
            let alt = alt_for(p, &username);
            Some(PostView {
                kind,
                badge,
                image,
                permalink: p
                    .permalink
                    .clone()
                    .unwrap_or_else(|| format!("https://www.instagram.com/{username}/")),
                caption: p
                    .caption
                    .as_deref()
                    .map(caption::segments)
                    .unwrap_or_default(),
                media: media_of(p, &alt),
                alt,
            })
        })
        .collect();
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
        posts,
        base_css: WIDGET_CSS,
        script: WIDGET_JS,
        vars_css: vars_css.clone(),
    };
    let media = media_sources(config);
    // Sandboxed: the document runs in an origin of its own (not the dashboard's, whose address
    // it shares), so even a script that got in could read no cookie and call nothing of ours;
    // links may still open Instagram in a new tab.
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {} {}; img-src {media} data:; \
         media-src {media}; base-uri 'none'; form-action 'none'; frame-ancestors *; \
         sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox",
        *SCRIPT_HASH,
        *BASE_CSS_HASH,
        csp_hash(&vars_css)
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
    /// Instagram's signed address of the profile picture (null once expired).
    picture_url: Option<&'a str>,
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
    alt_text: Option<String>,
}

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The widget's feed as JSON.
pub fn json(data: &WidgetData) -> Result<String, serde_json::Error> {
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
        profile: data.profile.as_ref().map(|p| ProfileJson {
            username: &p.username,
            name: p.name.as_deref(),
            biography: p.biography.as_deref(),
            website: p.website.as_deref(),
            picture_url: p.picture_url.as_deref(),
            profile_url: format!("https://www.instagram.com/{}/", p.username),
            followers_count: p.followers_count,
            follows_count: p.follows_count,
            media_count: p.media_count,
        }),
        posts: data
            .posts
            .iter()
            .map(|p| PostJson {
                id: p.media_id.clone(),
                permalink: p.permalink.clone(),
                timestamp: rfc3339(p.posted_at),
                media_type: p.media_type.clone(),
                is_reel: p.product_type.as_deref() == Some("REELS"),
                media_url: p.media_url.clone(),
                thumbnail_url: p.thumbnail_url.clone(),
                display_url: crate::feeds::display_image(p).map(str::to_owned),
                urls_expire_at: p.urls_expire_at.map(rfc3339),
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
                    .map(|c| ChildJson {
                        id: c.id.clone(),
                        media_type: c.media_type.clone(),
                        media_url: c.media_url.clone(),
                        thumbnail_url: c.thumbnail_url.clone(),
                        alt_text: c.alt_text.clone(),
                    })
                    .collect(),
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
        assert!(all.contains(&format!("poster=\"{CDN}31.jpg\"")));
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
                .contains("img-src https://*.cdninstagram.com https://*.fbcdn.net data:")
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
    fn the_inline_script_and_styles_never_close_their_tags_early() {
        assert!(!WIDGET_JS.contains("</script"));
        assert!(!WIDGET_CSS.contains("</style"));
        assert!(
            !WIDGET_JS.contains("innerHTML"),
            "captions must never become markup"
        );
    }
}
