//! Signed, expiring CDN URLs in Instagram's shape (`…_n.jpg?…&oh=00_<sig>&oe=<hex expiry>`):
//! building them, parsing them (public, property-tested) and verifying their signatures.
//! Serving the bytes is `http::cdn_host`'s job.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The CDN host whose name prefixes CDN paths on the simulator.
pub const CDN_HOST: &str = "scontent.cdninstagram.com";

/// The parts of a signed CDN URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUrlParts {
    /// Path on the CDN host, e.g. `/v/t51.29350-15/123_456_789_n.jpg`.
    pub path: String,
    /// Last path segment without `_n.jpg` / `.mp4`.
    pub name: String,
    /// Every query parameter, raw (not percent-decoded), in order.
    pub params: Vec<(String, String)>,
    /// What the signature covers: the path, `?`, and every parameter except `oh`, raw, in order.
    pub signed_payload: String,
    /// The `oh` value without its `00_` prefix.
    pub signature: String,
    /// `oe` as unix seconds.
    pub expires_at: i64,
}

/// Why a string is not a signed CDN URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdnUrlError {
    /// Not on the CDN host.
    #[error("not a CDN URL")]
    NotCdn,
    /// No query string, or more than one `?`, or a fragment.
    #[error("malformed query string")]
    Query,
    /// `oh` missing, repeated or without the `00_` prefix.
    #[error("missing or malformed `oh` signature")]
    Signature,
    /// `oe` missing, repeated or not hexadecimal.
    #[error("missing or malformed `oe` expiry")]
    Expiry,
    /// The file name is not `<name>_n.jpg` or `<name>.mp4`.
    #[error("malformed file name")]
    Name,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn hmac_bytes(key: &[u8], message: &str) -> [u8; 32] {
    let mut m = mac(key);
    m.update(message.as_bytes());
    m.finalize().into_bytes().into()
}

/// Splits `url` into its path-on-the-CDN and raw query. Accepts a full URL whose path starts
/// with `/scontent.cdninstagram.com/` (the simulator's addressing), a full URL on a
/// `*.cdninstagram.com` host, or a bare path starting with `/scontent.cdninstagram.com/`.
fn split(url: &str) -> Result<(String, String), CdnUrlError> {
    let (authority_host, rest) = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            let slash = after.find('/').ok_or(CdnUrlError::NotCdn)?;
            let authority = &after[..slash];
            let host = authority.rsplit('@').next().unwrap_or(authority);
            let host = host.split(':').next().unwrap_or(host);
            (Some(host.to_ascii_lowercase()), &after[slash..])
        }
        None => (None, url),
    };
    if rest.contains('#') {
        return Err(CdnUrlError::Query);
    }
    let (path, query) = rest.split_once('?').ok_or(CdnUrlError::Query)?;
    if query.contains('?') {
        return Err(CdnUrlError::Query);
    }
    let prefix = format!("/{CDN_HOST}/");
    let path = if let Some(stripped) = path.strip_prefix(&prefix) {
        format!("/{stripped}")
    } else if authority_host.is_some_and(|h| h.ends_with(".cdninstagram.com")) {
        path.to_owned()
    } else {
        return Err(CdnUrlError::NotCdn);
    };
    Ok((path, query.to_owned()))
}

fn file_name(path: &str) -> Result<String, CdnUrlError> {
    let last = path.rsplit('/').next().unwrap_or_default();
    let name = last
        .strip_suffix("_n.jpg")
        .or_else(|| last.strip_suffix(".mp4"))
        .ok_or(CdnUrlError::Name)?;
    if name.is_empty() {
        return Err(CdnUrlError::Name);
    }
    Ok(name.to_owned())
}

/// Parses a signed CDN URL. Never panics; `oe` is read with `i64::from_str_radix(oe, 16)`.
pub fn parse_signed_url(url: &str) -> Result<SignedUrlParts, CdnUrlError> {
    let (path, query) = split(url)?;
    let name = file_name(&path)?;
    let mut params = Vec::new();
    let mut signed = Vec::new();
    let mut signature = None;
    let mut expiry = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').ok_or(CdnUrlError::Query)?;
        params.push((k.to_owned(), v.to_owned()));
        match k {
            "oh" => {
                let sig = v.strip_prefix("00_").ok_or(CdnUrlError::Signature)?;
                if signature.replace(sig.to_owned()).is_some() || sig.is_empty() {
                    return Err(CdnUrlError::Signature);
                }
                continue;
            }
            "oe" => {
                if v.is_empty() || v.len() > 15 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(CdnUrlError::Expiry);
                }
                let at = i64::from_str_radix(v, 16).map_err(|_| CdnUrlError::Expiry)?;
                if expiry.replace(at).is_some() {
                    return Err(CdnUrlError::Expiry);
                }
            }
            _ => {}
        }
        signed.push(pair);
    }
    Ok(SignedUrlParts {
        signed_payload: format!("{path}?{}", signed.join("&")),
        path,
        name,
        params,
        signature: signature.ok_or(CdnUrlError::Signature)?,
        expires_at: expiry.ok_or(CdnUrlError::Expiry)?,
    })
}

/// Whether the URL's `oh` is the HMAC of its other parts under `key`.
pub fn verify_signature(key: &[u8], parts: &SignedUrlParts) -> bool {
    let expected = URL_SAFE_NO_PAD.encode(hmac_bytes(key, &parts.signed_payload));
    // Compare as strings, so two encodings of the same bytes still count as tampering.
    expected.len() == parts.signature.len()
        && expected
            .bytes()
            .zip(parts.signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// What a CDN URL points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Asset {
    /// The image of a post or carousel child (id).
    Image(String),
    /// The poster (thumbnail) of a video post or child (id).
    Poster(String),
    /// The video file of a video post or child (id).
    Video(String),
    /// A profile picture (17841… id).
    Profile(String),
}

impl Asset {
    fn tag(&self) -> char {
        match self {
            Asset::Image(_) => '1',
            Asset::Poster(_) => '2',
            Asset::Video(_) => '3',
            Asset::Profile(_) => '4',
        }
    }

    fn object_id(&self) -> &str {
        match self {
            Asset::Image(id) | Asset::Poster(id) | Asset::Video(id) | Asset::Profile(id) => id,
        }
    }

    /// File name: `<9 digits>_<object id>_<tag><18 digits>`, like Instagram's three numbers.
    fn name(&self, key: &[u8]) -> String {
        let h = hmac_bytes(key, &format!("name|{}|{}", self.tag(), self.object_id()));
        let a = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let b = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        format!(
            "{:09}_{}_{}{:018}",
            100_000_000 + a % 900_000_000,
            self.object_id(),
            self.tag(),
            b % 1_000_000_000_000_000_000
        )
    }

    /// Reads the asset back from a file name.
    pub(crate) fn from_name(name: &str) -> Option<Asset> {
        let mut parts = name.split('_');
        let _ = parts.next()?;
        let id = parts.next()?.to_owned();
        let tail = parts.next()?;
        if parts.next().is_some() || id.is_empty() {
            return None;
        }
        match tail.chars().next()? {
            '1' => Some(Asset::Image(id)),
            '2' => Some(Asset::Poster(id)),
            '3' => Some(Asset::Video(id)),
            '4' => Some(Asset::Profile(id)),
            _ => None,
        }
    }

    fn path(&self, key: &[u8]) -> String {
        let name = self.name(key);
        match self {
            Asset::Image(_) | Asset::Poster(_) => format!("/v/t51.29350-15/{name}_n.jpg"),
            Asset::Profile(_) => format!("/v/t51.2885-19/{name}_n.jpg"),
            Asset::Video(_) => format!("/o1/v/t2/f2/m367/{name}.mp4"),
        }
    }
}

/// Builds the signed path-and-query (relative to the CDN host) of `asset` for the URL window
/// starting at `window_start`; every parameter is derived from the key, the asset and the
/// window, so URLs handed out within one window are identical.
pub(crate) fn signed_path(key: &[u8], asset: &Asset, window_start: i64, lifetime: i64) -> String {
    let path = asset.path(key);
    let h = hmac_bytes(key, &format!("params|{path}|{window_start}"));
    let cat = 100 + u32::from(h[0]) % 20;
    let sid = hex::encode(&h[1..4]);
    let ohc = URL_SAFE_NO_PAD.encode(&h[4..21]);
    let (ccb, edm) = match asset {
        Asset::Video(_) => ("17-1", "AP4hL3IEAAAA"),
        Asset::Profile(_) => ("1-7", "AL-3X8kEAAAA"),
        _ => ("1-7", "ANo9K5cEAAAA"),
    };
    let oe = format!("{:08X}", window_start.saturating_add(lifetime).max(0));
    let unsigned = format!(
        "{path}?_nc_cat={cat}&ccb={ccb}&_nc_sid={sid}&_nc_ohc={ohc}&_nc_ht={CDN_HOST}&edm={edm}"
    );
    let sig = URL_SAFE_NO_PAD.encode(hmac_bytes(key, &format!("{unsigned}&oe={oe}")));
    format!("{unsigned}&oh=00_{sig}&oe={oe}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const BASE: &str = "http://127.0.0.1:4000/scontent.cdninstagram.com";

    fn assets() -> impl Strategy<Value = Asset> {
        ("[0-9]{15,19}", 0..4u8).prop_map(|(id, t)| match t {
            0 => Asset::Image(id),
            1 => Asset::Poster(id),
            2 => Asset::Video(id),
            _ => Asset::Profile(id),
        })
    }

    #[test]
    fn oe_is_uppercase_hex_expiry() {
        let url = format!(
            "{BASE}{}",
            signed_path(KEY, &Asset::Image("17".into()), 1_695_000_000, 345_394)
        );
        let parts = parse_signed_url(&url).expect("parses");
        assert_eq!(parts.expires_at, 1_695_345_394);
        assert!(url.ends_with("&oe=650CEAF2"), "{url}");
        assert!(verify_signature(KEY, &parts));
        assert!(!verify_signature(b"another key", &parts));
    }

    #[test]
    fn real_host_urls_parse_too() {
        let path = signed_path(KEY, &Asset::Profile("17841".into()), 0, 10);
        let parts = parse_signed_url(&format!("https://scontent-iad3-1.cdninstagram.com{path}"))
            .expect("parses");
        assert!(verify_signature(KEY, &parts));
        assert_eq!(
            Asset::from_name(&parts.name),
            Some(Asset::Profile("17841".into()))
        );
        assert_eq!(
            parse_signed_url("https://example.com/x_n.jpg?oh=00_a&oe=1"),
            Err(CdnUrlError::NotCdn)
        );
    }

    proptest! {
        #[test]
        fn generated_urls_round_trip(asset in assets(), window in 0i64..4_000_000_000, life in 1i64..1_000_000) {
            let url = format!("{BASE}{}", signed_path(KEY, &asset, window, life));
            let parts = parse_signed_url(&url).expect("own URLs parse");
            prop_assert_eq!(parts.expires_at, window + life);
            prop_assert!(verify_signature(KEY, &parts));
            prop_assert_eq!(Asset::from_name(&parts.name), Some(asset));
        }

        #[test]
        fn garbage_never_panics(s in ".*") {
            if let Ok(parts) = parse_signed_url(&s) {
                let _ = verify_signature(KEY, &parts);
            }
        }

        #[test]
        fn garbage_after_the_prefix_never_panics(s in "[ -~]*") {
            let url = format!("{BASE}/{s}");
            if let Ok(parts) = parse_signed_url(&url) {
                let _ = verify_signature(KEY, &parts);
            }
        }

        #[test]
        fn any_single_char_change_is_detected(
            asset in assets(),
            window in 0i64..4_000_000_000,
            pos in any::<prop::sample::Index>(),
            replacement in any::<char>(),
        ) {
            let path = signed_path(KEY, &asset, window, 388_800);
            let url = format!("{BASE}{path}");
            // Mutate within what is signed: the CDN path and query (the simulator's own
            // host:port is not part of a CDN URL's identity).
            let start = BASE.len();
            let chars: Vec<char> = url[start..].chars().collect();
            let i = pos.index(chars.len());
            prop_assume!(chars[i] != replacement);
            let mut mutated: Vec<char> = chars.clone();
            mutated[i] = replacement;
            let tampered = format!("{}{}", &url[..start], mutated.into_iter().collect::<String>());
            let detected = match parse_signed_url(&tampered) {
                Err(_) => true,
                Ok(parts) => !verify_signature(KEY, &parts),
            };
            prop_assert!(detected, "undetected change: {}", tampered);
        }
    }
}
