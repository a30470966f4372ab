//! A widget's settings: what the dashboard form edits, what is stored (as JSON), and the checks
//! that keep every value in range. A form with problems gets every problem at once, each naming
//! its field, and nothing is stored.

use serde::{Deserialize, Serialize};

/// How posts are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Grid,
    Slider,
    Masonry,
}

/// Where captions show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Captions {
    None,
    #[default]
    Hover,
    Below,
}

/// Colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Light,
    Dark,
    /// Follows the page the widget is embedded in (light or dark, as embed.js reads its
    /// background); framed without embed.js, the visitor's system setting.
    #[default]
    Auto,
}

/// Which kinds of posts show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct MediaTypes {
    pub images: bool,
    pub videos: bool,
    pub reels: bool,
    pub carousels: bool,
}

impl Default for MediaTypes {
    fn default() -> Self {
        MediaTypes {
            images: true,
            videos: true,
            reels: true,
            carousels: true,
        }
    }
}

/// Everything a widget can be set to. Unknown or missing keys in a stored value fall back to
/// the defaults, so settings added later do not break older widgets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct WidgetSettings {
    pub layout: Layout,
    pub columns_desktop: u32,
    pub columns_tablet: u32,
    pub columns_mobile: u32,
    pub posts: u32,
    /// Gap between posts, in CSS pixels.
    pub spacing: u32,
    /// Corner radius of each post, in CSS pixels.
    pub radius: u32,
    pub captions: Captions,
    pub lightbox: bool,
    pub header: bool,
    pub follow_button: bool,
    pub theme: Theme,
    /// No background of its own: the host page shows through (the owner makes sure the theme's
    /// text is readable on it). Otherwise the theme paints its own background.
    pub transparent: bool,
    pub types: MediaTypes,
    /// A post shows only if its caption contains one of these (empty: every post).
    pub include_words: Vec<String>,
    /// A post whose caption contains one of these is hidden.
    pub exclude_words: Vec<String>,
    /// Posts hidden by hand (media ids).
    pub hidden_posts: Vec<String>,
    /// Add-ons: serve images from feedkeeper's own store (with the image store) and tell the
    /// owner about incidents (with mail). Stored now, honoured when those arrive.
    pub image_optimization: bool,
    pub notifications: bool,
}

impl Default for WidgetSettings {
    fn default() -> Self {
        WidgetSettings {
            layout: Layout::Grid,
            columns_desktop: 4,
            columns_tablet: 3,
            columns_mobile: 2,
            posts: 12,
            spacing: 8,
            radius: 6,
            captions: Captions::Hover,
            lightbox: true,
            header: true,
            follow_button: true,
            theme: Theme::Auto,
            transparent: false,
            types: MediaTypes::default(),
            include_words: Vec::new(),
            exclude_words: Vec::new(),
            hidden_posts: Vec::new(),
            image_optimization: true,
            notifications: true,
        }
    }
}

/// The widget form as posted (every field a string; checkboxes present only when ticked).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    pub csrf: String,
    pub name: String,
    pub connection_id: String,
    pub layout: String,
    pub columns_desktop: String,
    pub columns_tablet: String,
    pub columns_mobile: String,
    pub posts: String,
    pub spacing: String,
    pub radius: String,
    pub captions: String,
    pub lightbox: Option<String>,
    pub header: Option<String>,
    pub follow_button: Option<String>,
    pub theme: String,
    pub transparent: Option<String>,
    pub show_images: Option<String>,
    pub show_videos: Option<String>,
    pub show_reels: Option<String>,
    pub show_carousels: Option<String>,
    pub include_words: String,
    pub exclude_words: String,
    pub hidden_posts: String,
    pub image_optimization: Option<String>,
    pub notifications: Option<String>,
}

/// One problem with the form: the field's name and what to do.
pub type FieldError = (&'static str, String);

/// The longest widget name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// At most this many words per filter list, and hidden posts.
const MAX_LIST: usize = 50;

fn number(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    label: &str,
    raw: &str,
    range: std::ops::RangeInclusive<u32>,
) -> u32 {
    match raw.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            errors.push((
                field,
                format!(
                    "{label} must be a whole number from {} to {}.",
                    range.start(),
                    range.end()
                ),
            ));
            *range.start()
        }
    }
}

/// Words or hashtags separated by commas or spaces; lower-cased, without empty ones.
fn word_list(errors: &mut Vec<FieldError>, field: &'static str, raw: &str) -> Vec<String> {
    let words: Vec<String> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() > MAX_LIST || words.iter().any(|w| w.chars().count() > 100) {
        errors.push((
            field,
            format!("At most {MAX_LIST} words, each at most 100 characters."),
        ));
    }
    words
}

/// Post ids, or Instagram links to posts (their shortcode is kept), separated by commas, spaces
/// or lines.
/// One entry of the hide list as a post's shortcode or media id, if it is one: a link to a post
/// on Instagram (`/p/`, `/reel/`, `/reels/` or `/tv/`, with or without the account's name
/// before it), a shortcode, or a numeric media id.
fn post_ref(entry: &str) -> Option<String> {
    let code_like = |c: &str| {
        (5..=64).contains(&c.len())
            && c.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !entry.contains('/') {
        return code_like(entry).then(|| entry.to_owned());
    }
    let with_scheme = if entry.contains("://") {
        entry.to_owned()
    } else {
        format!("https://{entry}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if !matches!(
        host.as_str(),
        "instagram.com" | "www.instagram.com" | "m.instagram.com" | "instagr.am"
    ) {
        return None;
    }
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    // Share links (`/share/p/…`) carry a share id, not the post's code.
    if segments.first() == Some(&"share") {
        return None;
    }
    let at = segments
        .iter()
        .position(|s| matches!(*s, "p" | "reel" | "reels" | "tv"))?;
    // The kind comes first or after the account's name, and the code right after it.
    if at > 1 {
        return None;
    }
    let code = segments.get(at + 1)?;
    code_like(code).then(|| (*code).to_owned())
}

fn post_list(errors: &mut Vec<FieldError>, raw: &str) -> Vec<String> {
    let entries: Vec<&str> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut items = Vec::new();
    let mut not_understood = Vec::new();
    for entry in &entries {
        match post_ref(entry) {
            Some(code) if !items.contains(&code) => items.push(code),
            Some(_) => {}
            None => not_understood.push(*entry),
        }
    }
    if !not_understood.is_empty() {
        let mut named: Vec<String> = not_understood
            .iter()
            .take(5)
            .map(|e| format!("\u{201c}{}\u{201d}", e.chars().take(80).collect::<String>()))
            .collect();
        if not_understood.len() > 5 {
            named.push(format!("and {} more", not_understood.len() - 5));
        }
        errors.push((
            "hidden_posts",
            format!(
                "Not a link to an Instagram post: {}. Paste links such as \
                 https://www.instagram.com/p/Cx1AbCdEfGh/ (or just their codes), one per line.",
                named.join(", ")
            ),
        ));
    } else if items.len() > MAX_LIST {
        errors.push((
            "hidden_posts",
            format!("Hide at most {MAX_LIST} posts per widget."),
        ));
    }
    items
}

impl SettingsForm {
    /// The form pre-filled from stored values.
    pub fn from_settings(
        name: &str,
        connection_id: Option<i64>,
        s: &WidgetSettings,
    ) -> SettingsForm {
        let on = |b: bool| b.then(|| "on".to_owned());
        SettingsForm {
            csrf: String::new(),
            name: name.to_owned(),
            connection_id: connection_id.map(|id| id.to_string()).unwrap_or_default(),
            layout: serde_plain(&s.layout),
            columns_desktop: s.columns_desktop.to_string(),
            columns_tablet: s.columns_tablet.to_string(),
            columns_mobile: s.columns_mobile.to_string(),
            posts: s.posts.to_string(),
            spacing: s.spacing.to_string(),
            radius: s.radius.to_string(),
            captions: serde_plain(&s.captions),
            lightbox: on(s.lightbox),
            header: on(s.header),
            follow_button: on(s.follow_button),
            theme: serde_plain(&s.theme),
            transparent: on(s.transparent),
            show_images: on(s.types.images),
            show_videos: on(s.types.videos),
            show_reels: on(s.types.reels),
            show_carousels: on(s.types.carousels),
            include_words: s.include_words.join(", "),
            exclude_words: s.exclude_words.join(", "),
            hidden_posts: s.hidden_posts.join("\n"),
            image_optimization: on(s.image_optimization),
            notifications: on(s.notifications),
        }
    }

    /// The name, the chosen connection id and the settings; or every problem found.
    pub fn parse(
        &self,
        max_posts: u32,
    ) -> Result<(String, Option<i64>, WidgetSettings), Vec<FieldError>> {
        let (name, connection_id, settings, errors) = self.read(max_posts);
        if errors.is_empty() {
            Ok((name, connection_id, settings))
        } else {
            Err(errors)
        }
    }

    /// What a live preview shows: every field that is valid as the form has it, and each one
    /// that is not as in `fallback` (the saved widget, or the defaults), whatever the others.
    /// The name plays no part in a preview.
    pub fn for_preview(
        &self,
        max_posts: u32,
        fallback: &WidgetSettings,
    ) -> (Option<i64>, WidgetSettings) {
        let (_, connection_id, mut s, errors) = self.read(max_posts);
        for (field, _) in &errors {
            match *field {
                "layout" => s.layout = fallback.layout,
                "captions" => s.captions = fallback.captions,
                "theme" => s.theme = fallback.theme,
                "columns_desktop" => s.columns_desktop = fallback.columns_desktop,
                "columns_tablet" => s.columns_tablet = fallback.columns_tablet,
                "columns_mobile" => s.columns_mobile = fallback.columns_mobile,
                "posts" => s.posts = fallback.posts,
                "spacing" => s.spacing = fallback.spacing,
                "radius" => s.radius = fallback.radius,
                "include_words" => s.include_words = fallback.include_words.clone(),
                "exclude_words" => s.exclude_words = fallback.exclude_words.clone(),
                "hidden_posts" => s.hidden_posts = fallback.hidden_posts.clone(),
                "types" => s.types = fallback.types.clone(),
                _ => {}
            }
        }
        (connection_id, s)
    }

    /// Reads every field, each on its own: the settings hold a stand-in (the range's start, or
    /// the default) for each field named in the errors.
    fn read(&self, max_posts: u32) -> (String, Option<i64>, WidgetSettings, Vec<FieldError>) {
        let mut errors = Vec::new();
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errors.push((
                "name",
                "Give the widget a name (only you see it).".to_owned(),
            ));
        } else if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            errors.push((
                "name",
                format!("The name can be at most {MAX_NAME_CHARS} characters, on one line."),
            ));
        }
        let connection_id = match self.connection_id.trim() {
            "" => {
                errors.push((
                    "connection_id",
                    "Choose the Instagram account to show.".to_owned(),
                ));
                None
            }
            raw => match raw.parse::<i64>() {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(("connection_id", "Choose one of your accounts.".to_owned()));
                    None
                }
            },
        };
        let layout = match self.layout.as_str() {
            "grid" => Layout::Grid,
            "slider" => Layout::Slider,
            "masonry" => Layout::Masonry,
            _ => {
                errors.push(("layout", "Choose grid, slider or masonry.".to_owned()));
                Layout::Grid
            }
        };
        let captions = match self.captions.as_str() {
            "none" => Captions::None,
            "hover" => Captions::Hover,
            "below" => Captions::Below,
            _ => {
                errors.push(("captions", "Choose none, on hover or below.".to_owned()));
                Captions::Hover
            }
        };
        let theme = match self.theme.as_str() {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            "auto" => Theme::Auto,
            _ => {
                errors.push(("theme", "Choose light, dark or automatic.".to_owned()));
                Theme::Auto
            }
        };
        let settings = WidgetSettings {
            layout,
            columns_desktop: number(
                &mut errors,
                "columns_desktop",
                "Columns on computers",
                &self.columns_desktop,
                1..=8,
            ),
            columns_tablet: number(
                &mut errors,
                "columns_tablet",
                "Columns on tablets",
                &self.columns_tablet,
                1..=6,
            ),
            columns_mobile: number(
                &mut errors,
                "columns_mobile",
                "Columns on phones",
                &self.columns_mobile,
                1..=4,
            ),
            posts: number(
                &mut errors,
                "posts",
                "Number of posts",
                &self.posts,
                1..=max_posts,
            ),
            spacing: number(&mut errors, "spacing", "Spacing", &self.spacing, 0..=40),
            radius: number(&mut errors, "radius", "Corner radius", &self.radius, 0..=40),
            captions,
            lightbox: self.lightbox.is_some(),
            header: self.header.is_some(),
            follow_button: self.follow_button.is_some(),
            theme,
            transparent: self.transparent.is_some(),
            types: MediaTypes {
                images: self.show_images.is_some(),
                videos: self.show_videos.is_some(),
                reels: self.show_reels.is_some(),
                carousels: self.show_carousels.is_some(),
            },
            include_words: word_list(&mut errors, "include_words", &self.include_words),
            exclude_words: word_list(&mut errors, "exclude_words", &self.exclude_words),
            hidden_posts: post_list(&mut errors, &self.hidden_posts),
            image_optimization: self.image_optimization.is_some(),
            notifications: self.notifications.is_some(),
        };
        let types = &settings.types;
        if !(types.images || types.videos || types.reels || types.carousels) {
            errors.push(("types", "Show at least one kind of post.".to_owned()));
        }
        (name, connection_id, settings, errors)
    }
}

/// A unit enum's serde name (`grid`, `hover`, …).
fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SettingsForm {
        let mut form = SettingsForm::from_settings("Shop", Some(3), &WidgetSettings::default());
        form.csrf = "x".into();
        form
    }

    #[test]
    fn the_defaults_round_trip_through_the_form() {
        let (name, id, settings) = valid().parse(50).unwrap();
        assert_eq!((name.as_str(), id), ("Shop", Some(3)));
        assert_eq!(settings, WidgetSettings::default());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let mut form = valid();
        form.name = " ".into();
        form.layout = "carousel".into();
        form.columns_desktop = "0".into();
        form.posts = "51".into();
        form.spacing = "-1".into();
        form.theme = "neon".into();
        form.show_images = None;
        form.show_videos = None;
        form.show_reels = None;
        form.show_carousels = None;
        let errors = form.parse(50).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "name",
                "layout",
                "theme",
                "columns_desktop",
                "posts",
                "spacing",
                "types"
            ]
        );
    }

    #[test]
    fn filters_are_read_from_free_text() {
        let mut form = valid();
        form.include_words = "#Bread, croissant  sale".into();
        form.hidden_posts = "https://www.instagram.com/p/Cx1_-aBcDeF/\n17895695668004550, \
            instagram.com/bakery/reel/DAbc12345xy/?igsh=x www.instagram.com/p/Cx1_-aBcDeF"
            .into();
        let (_, _, s) = form.parse(50).unwrap();
        assert_eq!(s.include_words, ["#bread", "croissant", "sale"]);
        assert_eq!(
            s.hidden_posts,
            ["Cx1_-aBcDeF", "17895695668004550", "DAbc12345xy"]
        );
        // Anything else is named back, not silently kept or dropped.
        for (bad, named) in [
            ("<script>", "<script>"),
            (
                "https://example.com/not-a-post",
                "https://example.com/not-a-post",
            ),
            ("foo bar", "foo"),
            (
                "https://www.instagram.com/bakery/",
                "https://www.instagram.com/bakery/",
            ),
            (
                "https://www.instagram.com/p/",
                "https://www.instagram.com/p/",
            ),
            (
                "https://www.instagram.com/share/p/BAbcdEfgh1/",
                "https://www.instagram.com/share/p/BAbcdEfgh1/",
            ),
        ] {
            form.hidden_posts = bad.into();
            let errors = form.parse(50).unwrap_err();
            let message = &errors.iter().find(|(f, _)| *f == "hidden_posts").unwrap().1;
            assert!(message.contains(named), "{bad}: {message}");
        }
    }

    #[test]
    fn stored_settings_missing_new_keys_get_the_defaults() {
        let old: WidgetSettings = serde_json::from_str(r#"{"layout":"slider"}"#).unwrap();
        assert_eq!(old.layout, Layout::Slider);
        assert_eq!(old.posts, WidgetSettings::default().posts);
    }
}
