//! Fetching an original from Instagram's CDN, and nothing else.
//!
//! A URL is fetched only if its host is on `meta.cdn_hosts` and it is https (plain http only to
//! an address of this machine listed there: the simulator). Names are resolved here and every
//! address checked: a name that leads to a private, loopback or link-local address is refused,
//! and the connection is made to the addresses checked (no second lookup an attacker's DNS
//! could answer differently). Redirects are never followed. The body is read up to
//! `images.max_bytes`, within `images.fetch_timeout_secs` from start to end.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::{Config, HostPattern};
use crate::meta::cdn;

/// Why an original could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one we may fetch (host, scheme, address); never retried.
    #[error("refused: {0}")]
    Refused(String),
    /// Instagram's answer to a URL whose signature expired (403): a fresh URL must come from
    /// the API.
    #[error("the URL's signature has expired (HTTP 403)")]
    Expired,
    #[error("the CDN has no such file (HTTP {0})")]
    NotFound(u16),
    #[error("the CDN answered HTTP {0}")]
    Status(u16),
    #[error("the CDN answered with {0}, not an image")]
    NotAnImage(String),
    #[error("the file is larger than images.max_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("the fetch took longer than images.fetch_timeout_secs")]
    Timeout,
    #[error("the CDN could not be reached: {0}")]
    Network(String),
}

impl FetchError {
    /// Whether trying the same URL later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::Status(_) | FetchError::Timeout | FetchError::Network(_)
        )
    }
}

/// Resolves names for the fetcher and keeps only public addresses.
#[derive(Clone, Debug, Default)]
struct GuardedResolver {
    /// Fixed answers for names (tests: a CDN name that leads to a private address).
    fixed: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let fixed = self.fixed.get(&host).cloned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = match fixed {
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} leads to no public address"),
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is on the public internet (not private, loopback, link-local, shared,
/// documentation, multicast or otherwise special).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                // Reserved, 240.0.0.0/4.
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are the
            // IPv4 address they carry.
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // Documentation 2001:db8::/32; Teredo 2001::/32 and 6to4 2002::/16 (both tunnel
                // to an IPv4 address of the sender's choosing); NAT64 64:ff9b::/96 and
                // 64:ff9b:1::/48; discard-only 100::/64; IPv4-translated ::ffff:0:0:0/96.
                || (s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] == 0))
                || s[0] == 0x2002
                || (s[0] == 0x0064 && s[1] == 0xff9b)
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
                || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0))
        }
    }
}

/// An original as fetched.
#[derive(Debug, Clone)]
pub struct Original {
    pub bytes: Bytes,
}

/// The CDN client.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    allowed: Vec<HostPattern>,
    max_bytes: u64,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(config: &Config) -> anyhow::Result<Fetcher> {
        Fetcher::with_fixed_names(config, HashMap::new())
    }

    /// A fetcher whose name lookups for `fixed` are answered from it (tests).
    pub fn with_fixed_names(
        config: &Config,
        fixed: HashMap<String, Vec<IpAddr>>,
    ) -> anyhow::Result<Fetcher> {
        let timeout = Duration::from_secs(config.images.fetch_timeout_secs);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would make its own lookups, past the address checks.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                fixed: Arc::new(fixed),
            }))
            .connect_timeout(Duration::from_secs(config.meta.connect_timeout_secs).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("feedkeeper/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Fetcher {
            client,
            allowed: config
                .meta
                .cdn_hosts
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .collect(),
            max_bytes: config.images.max_bytes,
            timeout,
        })
    }

    /// Checks `raw` and fetches it.
    pub async fn fetch(&self, raw: &str) -> Result<Original, FetchError> {
        let checked =
            cdn::parse(raw, &self.allowed).map_err(|e| FetchError::Refused(e.to_string()))?;
        let url = checked.url;
        // An address written as a number skips the name lookup: check it here. Only an address
        // of this machine that the operator listed (the simulator) may be one that is not public.
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) && !ip.is_loopback() => {
                return Err(FetchError::Refused(format!("{ip} is not a public address")));
            }
            Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) && !ip.is_loopback() => {
                return Err(FetchError::Refused(format!("{ip} is not a public address")));
            }
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                return Err(FetchError::Refused("localhost by name".into()));
            }
            _ => {}
        }
        let request = self.client.get(url).send();
        let result = tokio::time::timeout(self.timeout, async {
            let mut response = request.await.map_err(classify)?;
            let status = response.status().as_u16();
            match status {
                200 => {}
                301..=308 => {
                    return Err(FetchError::Refused(format!(
                        "the CDN redirected (HTTP {status}); redirects are not followed"
                    )));
                }
                403 => return Err(FetchError::Expired),
                404 | 410 => return Err(FetchError::NotFound(status)),
                other => return Err(FetchError::Status(other)),
            }
            let kind = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if kind.starts_with("text/") || kind.contains("html") || kind.contains("json") {
                return Err(FetchError::NotAnImage(kind.chars().take(60).collect()));
            }
            if let Some(length) = response.content_length()
                && length > self.max_bytes
            {
                return Err(FetchError::TooLarge(length));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if (body.len() + chunk.len()) as u64 > self.max_bytes {
                    return Err(FetchError::TooLarge((body.len() + chunk.len()) as u64));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Original {
                bytes: Bytes::from(body),
            })
        })
        .await;
        result.unwrap_or(Err(FetchError::Timeout))
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The resolver's refusal arrives as a connect error; its words name the reason.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.contains("no public address") {
        return FetchError::Refused(detail);
    }
    FetchError::Network(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::7f00:1",
            "::a00:1",
            "::ffff:0:a00:1",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["157.240.1.1", "31.13.64.1", "2a03:2880:f001::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
