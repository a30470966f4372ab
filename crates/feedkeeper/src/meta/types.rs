//! What Meta's endpoints return, parsed leniently where Meta is inconsistent (ids as numbers or
//! strings, `permissions` as a list or a comma string, absent fields) and strictly elsewhere.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::UnixSeconds;

/// An access token. Its `Debug` and `Display` never show the value; only [`AccessToken::expose`]
/// does, for the one place that sends it to Meta or encrypts it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AccessToken(String);

impl Drop for AccessToken {
    /// Wipes the token from memory when it is no longer needed.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl AccessToken {
    pub fn new(value: impl Into<String>) -> Self {
        AccessToken(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Which Meta host family issued this token, judged by its prefix (`IG…` Instagram Login,
    /// `EA…` Facebook). A token with neither prefix was corrupted somewhere.
    pub fn family(&self) -> Option<TokenFamily> {
        if self.0.starts_with("IG") {
            Some(TokenFamily::Instagram)
        } else if self.0.starts_with("EA") {
            Some(TokenFamily::Facebook)
        } else {
            None
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The two token families and the hosts they belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TokenFamily {
    /// Instagram API with Instagram Login: graph.instagram.com.
    Instagram,
    /// Instagram API with Facebook Login: graph.facebook.com.
    Facebook,
}

/// The result of exchanging an Instagram Login authorization code (valid one hour).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortLivedToken {
    pub access_token: AccessToken,
    /// As returned; usually the professional-account id (17841…), sometimes app-scoped. The
    /// profile's `user_id` is authoritative.
    pub user_id: String,
    pub permissions: Vec<String>,
}

/// A token with its expiry as Meta stated it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiringToken {
    pub access_token: AccessToken,
    /// `None` when Meta gave no lifetime (Page tokens from long-lived user tokens never expire).
    pub expires_at: Option<UnixSeconds>,
}

/// A Facebook Page the user shared, with its Page token and linked Instagram account.
#[derive(Debug, Clone, PartialEq)]
pub struct FacebookPage {
    pub id: String,
    pub name: String,
    pub access_token: AccessToken,
    /// The Instagram professional account (17841…) linked to the Page, if any.
    pub instagram_business_account: Option<String>,
}

/// An Instagram professional account's profile.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Profile {
    /// Instagram Login: the app-scoped id. Facebook Login: the professional-account id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The professional-account id (17841…), the key connections are matched by. Instagram Login
    /// returns it as `user_id`; on the Facebook host it is `id`.
    #[serde(default, deserialize_with = "opt_id_string")]
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    /// `BUSINESS`, `MEDIA_CREATOR` (or `PERSONAL`, which the API cannot serve).
    pub account_type: Option<String>,
    pub profile_picture_url: Option<String>,
    pub followers_count: Option<i64>,
    pub follows_count: Option<i64>,
    pub media_count: Option<i64>,
    pub biography: Option<String>,
    pub website: Option<String>,
}

impl Profile {
    /// The professional-account id, whichever host answered.
    pub fn professional_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.id)
    }
    /// Personal accounts can log in but the API serves no data for them.
    pub fn is_personal(&self) -> bool {
        self.account_type.as_deref() == Some("PERSONAL")
    }
}

/// `IMAGE`, `VIDEO` (reels too) or `CAROUSEL_ALBUM`; anything new is kept as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MediaType {
    Image,
    Video,
    CarouselAlbum,
    Other(String),
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "IMAGE" => MediaType::Image,
            "VIDEO" => MediaType::Video,
            "CAROUSEL_ALBUM" => MediaType::CarouselAlbum,
            _ => MediaType::Other(s),
        })
    }
}

/// One post (or carousel child). Every field but `id` may be absent: Meta omits unset fields,
/// `media_url` on copyright-flagged media, `thumbnail_url` on non-videos, `permalink` on children.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Media {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub caption: Option<String>,
    pub media_type: Option<MediaType>,
    /// `FEED`, `REELS`, `STORY`, `AD`.
    pub media_product_type: Option<String>,
    pub media_url: Option<String>,
    pub thumbnail_url: Option<String>,
    pub permalink: Option<String>,
    pub shortcode: Option<String>,
    /// Unix seconds, parsed from Meta's `2019-04-05T07:56:32+0000`.
    #[serde(default, deserialize_with = "opt_meta_timestamp")]
    pub timestamp: Option<UnixSeconds>,
    pub username: Option<String>,
    pub like_count: Option<i64>,
    pub comments_count: Option<i64>,
    pub alt_text: Option<String>,
    #[serde(default, deserialize_with = "nested_children")]
    pub children: Vec<Media>,
}

impl Media {
    pub fn is_reel(&self) -> bool {
        self.media_product_type.as_deref() == Some("REELS")
    }
    /// The still image to show for this post: the image itself, a video's poster, or the first
    /// child's. `None` when Meta withheld every URL (e.g. a reel with licensed music and no cover).
    pub fn display_image_url(&self) -> Option<&str> {
        match self.media_type {
            Some(MediaType::Video) => self.thumbnail_url.as_deref(),
            Some(MediaType::CarouselAlbum) => self
                .children
                .iter()
                .find_map(|c| c.display_image_url())
                .or(self.media_url.as_deref()),
            _ => self.media_url.as_deref(),
        }
    }
}

/// One page of an account's media, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPage {
    pub items: Vec<Media>,
    /// Meta's `paging.next` URL (which embeds the token: never log it); `None` on the last page.
    pub next: Option<url::Url>,
}

impl MediaPage {
    /// A `paging.next` address without its `access_token`, to be stored (the token is added
    /// back, from the connection's sealed token, when the address is used).
    pub fn without_token(next: &url::Url) -> String {
        let mut url = next.clone();
        let kept: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
        url.to_string()
    }
}

/// What `debug_token` says about a token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub is_valid: bool,
    /// `USER`, `PAGE`, `APP`.
    pub token_type: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    /// `None` for tokens that never expire (Meta says `0`).
    pub expires_at: Option<UnixSeconds>,
    pub data_access_expires_at: Option<UnixSeconds>,
    pub issued_at: Option<UnixSeconds>,
    pub scopes: Vec<String>,
    /// When invalid: Meta's code, subcode and message.
    pub error: Option<(i64, Option<i64>, String)>,
}

// ---- lenient field parsers -------------------------------------------------------------------

/// Meta sends ids as strings, but some endpoints (the code exchange) send numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    S(String),
    U(u64),
    I(i64),
}

impl StringOrNumber {
    fn into_string(self) -> String {
        match self {
            StringOrNumber::S(s) => s,
            StringOrNumber::U(n) => n.to_string(),
            StringOrNumber::I(n) => n.to_string(),
        }
    }
}

pub(crate) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    StringOrNumber::deserialize(d).map(StringOrNumber::into_string)
}

pub(crate) fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<StringOrNumber>::deserialize(d)?.map(StringOrNumber::into_string))
}

/// `permissions` arrives as `"a,b"` or `["a","b"]`.
pub(crate) fn permission_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Perms {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Option::<Perms>::deserialize(d)? {
        None => Vec::new(),
        Some(Perms::List(v)) => v,
        Some(Perms::Text(s)) => s
            .split([',', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn nested_children<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Media>, D::Error> {
    #[derive(Deserialize)]
    struct Edge {
        #[serde(default)]
        data: Vec<Media>,
    }
    Ok(Option::<Edge>::deserialize(d)?
        .map(|e| e.data)
        .unwrap_or_default())
}

fn opt_meta_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_meta_timestamp(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}"))),
    }
}

/// Parses Meta's `2019-04-05T07:56:32+0000` (and RFC 3339, in case Meta tidies it up).
pub fn parse_meta_timestamp(s: &str) -> Option<UnixSeconds> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let meta = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    OffsetDateTime::parse(s, &meta)
        .or_else(|_| OffsetDateTime::parse(s, &Rfc3339))
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let token = AccessToken::new("IGAAsecretsecret");
        assert!(!format!("{token:?} {token}").contains("secret"));
        assert_eq!(token.family(), Some(TokenFamily::Instagram));
        assert_eq!(
            AccessToken::new("EAAB").family(),
            Some(TokenFamily::Facebook)
        );
        assert_eq!(AccessToken::new("garbage").family(), None);
    }

    #[test]
    fn media_parses_absent_fields_and_nested_children() {
        let json = r#"{"id":"1","media_type":"CAROUSEL_ALBUM","timestamp":"2019-04-05T07:56:32+0000",
            "children":{"data":[{"id":"2","media_type":"VIDEO","thumbnail_url":"t"},{"id":3,"media_type":"IMAGE","media_url":"u"}]}}"#;
        let media: Media = serde_json::from_str(json).unwrap();
        assert_eq!(media.caption, None);
        assert_eq!(media.timestamp, Some(1_554_450_992));
        assert_eq!(media.children.len(), 2);
        assert_eq!(media.children[1].id, "3");
        assert_eq!(media.display_image_url(), Some("t"));
    }

    #[test]
    fn copyrighted_reel_without_urls_has_no_display_image() {
        let media: Media =
            serde_json::from_str(r#"{"id":"9","media_type":"VIDEO","media_product_type":"REELS"}"#)
                .unwrap();
        assert!(media.is_reel());
        assert_eq!(media.display_image_url(), None);
    }

    #[test]
    fn unknown_media_types_are_kept() {
        let media: Media = serde_json::from_str(r#"{"id":"9","media_type":"HOLOGRAM"}"#).unwrap();
        assert_eq!(media.media_type, Some(MediaType::Other("HOLOGRAM".into())));
    }

    #[test]
    fn bad_timestamps_are_errors_not_panics() {
        assert!(serde_json::from_str::<Media>(r#"{"id":"1","timestamp":"yesterday"}"#).is_err());
        assert_eq!(
            parse_meta_timestamp("2019-04-05T07:56:32Z"),
            Some(1_554_450_992)
        );
    }
}
