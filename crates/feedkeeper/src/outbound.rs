//! Calls to addresses that people outside the operator choose (Instagram's CDN, webhook
//! endpoints) must not reach the operator's own network. Names are resolved here and every
//! address checked: a name that leads only to private, loopback, link-local or otherwise
//! special addresses is refused, and the connection is made to the addresses checked (no
//! second lookup that an attacker's DNS could answer differently).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves names for an HTTP client and keeps only public addresses (all of them when
/// `allow_private`: an operator who lets webhooks reach their own network).
#[derive(Clone, Debug, Default)]
pub struct GuardedResolver {
    /// Fixed answers for names (tests: a name that leads to a private address).
    fixed: Arc<HashMap<String, Vec<IpAddr>>>,
    allow_private: bool,
}

impl GuardedResolver {
    pub fn new(fixed: HashMap<String, Vec<IpAddr>>, allow_private: bool) -> GuardedResolver {
        GuardedResolver {
            fixed: Arc::new(fixed),
            allow_private,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let fixed = self.fixed.get(&host).cloned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = match fixed {
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allowed(a.ip(), allow_private))
                .collect();
            if usable.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} leads to no public address"),
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

/// Whether an address may be connected to: a public one, or (when the operator allows
/// private networks) any but link-local ones, where cloud metadata services answer
/// (169.254.169.254, fd00:ec2::254), which are never reachable.
pub fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    if is_public(ip) {
        return true;
    }
    if !allow_private {
        return false;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0) != 0xfe80 && !(s[0] == 0xfd00 && s[1] == 0x0ec2)
        }
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
