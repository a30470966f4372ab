//! Instagram CDN URLs: which hosts may be fetched, and when a signed URL expires.
//!
//! Current URLs carry the expiry as `oe=<hex Unix time>` (signed by `oh`); pre-2019 URLs carried it
//! in the path (`/vp/<hash>/<8-hex expiry>/…`). A URL cannot be extended or edited: only a fresh
//! one from the API, or our own copy of the image, outlives it.

use url::Url;

use crate::config::HostPattern;

/// A CDN URL that passed the host allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnUrl {
    pub url: Url,
    /// When the signature expires (Unix seconds), if the URL says.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdnUrlError {
    #[error("not a URL")]
    NotAUrl,
    #[error(
        "scheme {0:?} is not https (plain http is allowed only on this machine, for the simulator)"
    )]
    BadScheme(String),
    #[error("host {0:?} is not an allowed CDN host")]
    HostNotAllowed(String),
    #[error("the expiry `oe={0}` is not a hexadecimal time")]
    BadExpiry(String),
}

/// Parses `raw`, checks its host against `allowed`, and reads its expiry.
pub fn parse(raw: &str, allowed: &[HostPattern]) -> Result<CdnUrl, CdnUrlError> {
    let url = Url::parse(raw.trim()).map_err(|_| CdnUrlError::NotAUrl)?;
    // Meta's CDN speaks https; an http URL would let anyone on the path swap the image. Only the
    // simulator, on this machine, serves plain http.
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        other => return Err(CdnUrlError::BadScheme(other.to_owned())),
    }
    // Credentials in a URL are never legitimate here and would confuse host checks.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CdnUrlError::HostNotAllowed(
            url.host_str().unwrap_or("").to_owned(),
        ));
    }
    let host = url.host_str().ok_or(CdnUrlError::NotAUrl)?;
    if !allowed.iter().any(|p| p.matches(host)) {
        return Err(CdnUrlError::HostNotAllowed(host.to_owned()));
    }
    let expires_at = expiry(&url)?;
    Ok(CdnUrl { url, expires_at })
}

/// The expiry of a signed CDN URL: `oe` in the query, else the legacy path form.
pub fn expiry(url: &Url) -> Result<Option<i64>, CdnUrlError> {
    if let Some((_, oe)) = url.query_pairs().find(|(k, _)| k == "oe") {
        return parse_hex_time(&oe).map(Some);
    }
    let mut segments = url.path_segments().into_iter().flatten();
    while let Some(segment) = segments.next() {
        if segment == "vp" {
            let _hash = segments.next();
            return Ok(segments.next().and_then(|s| parse_hex_time(s).ok()));
        }
    }
    Ok(None)
}

fn parse_hex_time(hex: &str) -> Result<i64, CdnUrlError> {
    let bad = || CdnUrlError::BadExpiry(hex.chars().take(20).collect());
    if hex.is_empty() || hex.len() > 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    i64::from_str_radix(hex, 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allowed() -> Vec<HostPattern> {
        ["*.cdninstagram.com", "*.fbcdn.net", "127.0.0.1"]
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn reads_the_documented_example() {
        let raw = "https://scontent-iad3-1.cdninstagram.com/v/t51.29350-15/336488_n.jpg?_nc_cat=107&ccb=1-7&_nc_sid=8ae9d6&_nc_ohc=Pji5XmNsjN4AX-9CEpw&_nc_ht=scontent-iad3-1.cdninstagram.com&edm=ANo9K5cEAAAA&oh=00_AfCauzwg&oe=650CEAF2";
        let parsed = parse(raw, &allowed()).unwrap();
        assert_eq!(parsed.expires_at, Some(1_695_345_394));
    }

    #[test]
    fn reads_the_legacy_path_form() {
        let raw = "https://scontent.cdninstagram.com/vp/0123456789abcdef0123456789abcdef/5C8E1D2A/t51.2885-15/e35/x.jpg";
        assert_eq!(
            parse(raw, &allowed()).unwrap().expires_at,
            Some(0x5C8E_1D2A)
        );
    }

    #[test]
    fn refuses_plain_http_except_on_this_machine() {
        let a = allowed();
        assert_eq!(
            parse("http://scontent.cdninstagram.com/x.jpg?oe=650CEAF2", &a),
            Err(CdnUrlError::BadScheme("http".into()))
        );
        let local = [HostPattern::parse("127.0.0.1").unwrap()];
        assert!(parse("http://127.0.0.1/x.jpg?oe=650CEAF2", &local).is_ok());
    }

    #[test]
    fn refuses_hosts_schemes_and_expiries_that_are_wrong() {
        let a = allowed();
        assert!(matches!(
            parse("https://evil.example/x.jpg?oe=1", &a),
            Err(CdnUrlError::HostNotAllowed(_))
        ));
        assert!(matches!(
            parse("https://cdninstagram.com.evil.example/x.jpg", &a),
            Err(CdnUrlError::HostNotAllowed(_))
        ));
        assert!(matches!(
            parse("https://user@scontent.cdninstagram.com/x", &a),
            Err(CdnUrlError::HostNotAllowed(_))
        ));
        assert!(matches!(
            parse("file:///etc/passwd", &a),
            Err(CdnUrlError::BadScheme(_))
        ));
        assert!(matches!(
            parse("https://scontent.cdninstagram.com/x?oe=zz", &a),
            Err(CdnUrlError::BadExpiry(_))
        ));
        assert!(matches!(
            parse("https://scontent.cdninstagram.com/x?oe=", &a),
            Err(CdnUrlError::BadExpiry(_))
        ));
        assert_eq!(
            parse("https://scontent.cdninstagram.com/x.jpg", &a)
                .unwrap()
                .expires_at,
            None
        );
        assert_eq!(parse("not a url", &a), Err(CdnUrlError::NotAUrl));
    }

    proptest! {
        #[test]
        fn any_expiry_round_trips(expiry in 0i64..=0x00FF_FFFF_FFFF, upper in any::<bool>(), pop in "[a-z]{3}[0-9]-[0-9]") {
            let hex = if upper { format!("{expiry:X}") } else { format!("{expiry:x}") };
            let raw = format!("https://scontent-{pop}.cdninstagram.com/v/t51.29350-15/1_n.jpg?oh=00_abc&oe={hex}");
            prop_assert_eq!(parse(&raw, &allowed()).unwrap().expires_at, Some(expiry));
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,200}") {
            let _ = parse(&input, &allowed());
            let _ = parse(&format!("https://scontent.cdninstagram.com/x?oe={input}"), &allowed());
        }

        #[test]
        fn hosts_outside_the_list_are_refused(host in "[a-z]{1,10}\\.(com|net|org)") {
            let raw = format!("https://{host}/x.jpg?oe=650CEAF2");
            prop_assert!(parse(&raw, &allowed()).is_err());
        }
    }
}
