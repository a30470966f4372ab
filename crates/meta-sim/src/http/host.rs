//! The Meta hosts the simulator serves, each under a path prefix named for the host
//! (`/graph.instagram.com/…`), and how a request path splits into host, version and rest.

/// A simulated Meta host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    WwwInstagram,
    ApiInstagram,
    GraphInstagram,
    WwwFacebook,
    GraphFacebook,
    Cdn,
}

impl Host {
    pub(crate) const ALL: [Host; 6] = [
        Host::WwwInstagram,
        Host::ApiInstagram,
        Host::GraphInstagram,
        Host::WwwFacebook,
        Host::GraphFacebook,
        Host::Cdn,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Host::WwwInstagram => "www.instagram.com",
            Host::ApiInstagram => "api.instagram.com",
            Host::GraphInstagram => "graph.instagram.com",
            Host::WwwFacebook => "www.facebook.com",
            Host::GraphFacebook => "graph.facebook.com",
            Host::Cdn => crate::cdn::CDN_HOST,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Host> {
        Host::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Whether a `/vNN.N` segment may follow the host.
    fn takes_version(self) -> bool {
        matches!(
            self,
            Host::GraphInstagram | Host::GraphFacebook | Host::WwwFacebook
        )
    }
}

/// Whether `s` looks like `v23.0` / `v23`.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    !major.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && minor.is_none_or(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
}

/// A request path split into host, optional version, and the remaining segments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostPath {
    pub(crate) host: Host,
    pub(crate) version: Option<String>,
    pub(crate) segments: Vec<String>,
    /// The path after the host prefix, raw (`/v23.0/me/media`).
    pub(crate) rest: String,
}

/// Splits `/graph.instagram.com/v23.0/me/media` into its parts; `None` for unknown hosts.
pub(crate) fn split_path(path: &str) -> Option<HostPath> {
    let trimmed = path.strip_prefix('/')?;
    let (first, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    let host = Host::from_name(first)?;
    let mut segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let version = if host.takes_version() && segments.first().is_some_and(|s| is_version(s)) {
        Some(segments.remove(0))
    } else {
        None
    };
    Some(HostPath {
        host,
        version,
        segments,
        rest: if rest.is_empty() {
            "/".into()
        } else {
            rest.to_owned()
        },
    })
}

/// Decodes `%XX` escapes in a path segment (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_optional_on_graph_hosts() {
        let p = split_path("/graph.instagram.com/v23.0/me/media").expect("known");
        assert_eq!(p.host, Host::GraphInstagram);
        assert_eq!(p.version.as_deref(), Some("v23.0"));
        assert_eq!(p.segments, ["me", "media"]);
        let p = split_path("/graph.facebook.com/debug_token").expect("known");
        assert_eq!(p.version, None);
        assert_eq!(p.segments, ["debug_token"]);
        let p = split_path("/www.facebook.com/v25.0/dialog/oauth").expect("known");
        assert_eq!(p.segments, ["dialog", "oauth"]);
        // Not a version on the CDN.
        let p = split_path("/scontent.cdninstagram.com/v/t51.29350-15/x_n.jpg").expect("known");
        assert_eq!(p.segments[0], "v");
        assert!(split_path("/example.com/x").is_none());
        assert!(split_path("/__sim/accounts").is_none());
        let p = split_path("/graph.instagram.com/a%2Fb%zz%4").expect("known");
        assert_eq!(p.segments, ["a/b%zz%4"]);
    }
}
