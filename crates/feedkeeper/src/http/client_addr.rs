//! Who the client is, behind the proxy every deployment has (feedkeeper speaks no TLS).
//!
//! The peer of a connection is the client unless it is one of `server.trusted_proxies`; then the
//! client is the nearest address in the one header the proxies write
//! (`server.client_address_header`: `X-Forwarded-For`, or `Forwarded` of RFC 7239) that is not
//! itself a trusted proxy, read from the right (each proxy appends the address it saw; whatever
//! a client wrote itself stands to the left and is never believed). Only that header is read: a
//! proxy passes the other one on as the client sent it. A malformed hop ends the walk at the
//! last trusted one. Headers from an untrusted peer are ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardingHeader,
}

pub use crate::config::ForwardingHeader;

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and networks (`10.0.0.0/8`, `fd00::/8`); the problem with
    /// the first entry that is neither, if any.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .map(|entry| crate::config::parse_network(entry))
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies {
            nets,
            header: ForwardingHeader::default(),
        })
    }

    /// The same proxies, writing `header`.
    pub fn writing(self, header: ForwardingHeader) -> TrustedProxies {
        TrustedProxies { header, ..self }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The client's address for a request that arrived from `peer`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = match trusted.header {
        ForwardingHeader::Forwarded => forwarded_hops(headers),
        ForwardingHeader::XForwardedFor => x_forwarded_for_hops(headers),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// The `for=` of every element of every `Forwarded` line, in order (`None`: not an address).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all("forwarded") {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            continue;
        };
        for element in line.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            });
            hops.push(node.and_then(node_ip));
        }
    }
    hops
}

/// A `Forwarded` node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`
/// (`unknown` and obfuscated names are not addresses).
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let host = match node.split_once(':') {
        Some((host, _port)) => host,
        None => node,
    };
    host.parse().ok()
}

/// The addresses of every `X-Forwarded-For` line, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all("x-forwarded-for") {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            continue;
        };
        hops.extend(line.split(',').map(|hop| {
            hop.trim()
                .parse::<IpAddr>()
                .ok()
                .or_else(|| node_ip(hop.trim()))
        }));
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_ignored() {
        let forged = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        let none = TrustedProxies::default();
        assert_eq!(
            client_ip(peer("203.0.113.9"), &forged, &none),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(peer("203.0.113.9"), &forged, &proxies),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        // The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            client_ip(peer("192.168.1.1"), &h, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // A Forwarded header the client made up (the proxy passes it on untouched) changes
        // nothing while the proxies write X-Forwarded-For.
        let mut forged = h.clone();
        forged.insert("forwarded", HeaderValue::from_static("for=203.0.113.66"));
        assert_eq!(
            client_ip(peer("192.168.1.1"), &forged, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let rfc = proxies.clone().writing(ForwardingHeader::Forwarded);
        let h = headers(&[
            (
                "forwarded",
                "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.2.2.2",
            ),
            ("x-forwarded-for", "203.0.113.66"),
        ]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &rfc),
            "2001:db8:cafe::17".parse::<IpAddr>().unwrap()
        );
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &proxies),
            "198.51.100.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_malformed_hop_stops_at_the_last_trusted_one() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, garbage, 10.3.3.3")]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &proxies),
            "10.3.3.3".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_ip(
                peer("10.0.0.1"),
                &h,
                &proxies.clone().writing(ForwardingHeader::Forwarded)
            ),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_ip(peer("10.0.0.1"), &HeaderMap::new(), &proxies),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies = trusted(&["127.0.0.1"]);
        assert!(proxies.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::parse(&["nonsense".into()]).is_err());
    }
}
