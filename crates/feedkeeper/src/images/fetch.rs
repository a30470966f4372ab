//! Fetching an original from Instagram's CDN, and nothing else.
//!
//! A URL is fetched only if its host is on `meta.cdn_hosts` and it is https (plain http only to
//! an address of this machine listed there: the simulator). Names are resolved here and every
//! address checked: a name that leads to a private, loopback or link-local address is refused,
//! and the connection is made to the addresses checked (no second lookup an attacker's DNS
//! could answer differently). Redirects are never followed. The body is read up to
//! `images.max_bytes`, within `images.fetch_timeout_secs` from start to end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

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

use crate::outbound::GuardedResolver;
pub use crate::outbound::is_public;

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
            .dns_resolver(Arc::new(GuardedResolver::new(fixed, false)))
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
