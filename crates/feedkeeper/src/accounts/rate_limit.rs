//! The log-in rate limit: failed attempts per email and per client address, counted in the
//! database so the limit holds however many nodes serve the dashboard.
//!
//! Every attempt is recorded as a failure *before* the password is checked, then counted; a
//! success takes its record back. Each request counts after its own record is committed, so of
//! any number of attempts in parallel (on any number of nodes) at most the limit go ahead: the
//! last of them to count would see them all. Attempts refused by the limit take their record
//! back, so the window slides and ends [`WINDOW_SECS`] after the failures that caused it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::Email;
use crate::clock::UnixSeconds;
use crate::db::{Db, DbError, sessions};

/// How far back failures are counted.
pub const WINDOW_SECS: i64 = 15 * 60;
/// Failures for one email within the window before its log-in is refused.
pub const MAX_FAILURES_PER_EMAIL: i64 = 10;
/// Failures from one client address within the window before its log-ins are refused. Higher
/// than per email: an office or a school shares one address.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 30;

/// The client's network address, when the server was started with connection info (`serve`
/// does; a router driven with `oneshot` in tests has none, and then only the per-email limit
/// applies): the one the edge worked out behind `server.trusted_proxies`, or the peer's.
/// Forwarding headers from anyone else are not trusted: anyone can send them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Put there by the edge.
        let worked_out = parts.extensions.get::<ClientAddress>().and_then(|a| a.0);
        Ok(ClientAddress(worked_out.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_canonical())
        })))
    }
}

/// What a log-in attempt is counted under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    /// `email:<HMAC-SHA256 hex>`: hashed with a server key, so the log of failures neither keeps
    /// the addresses people typed nor lets anyone test a guessed address against it.
    email: String,
    /// `ip:<address>`, or `ip:<prefix>/64` for IPv6, where one client easily has a whole /64.
    address: Option<String>,
}

impl Subjects {
    pub fn new(email: &Email, address: ClientAddress, key: &[u8; 32]) -> Subjects {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(email.as_str().as_bytes());
        let email = format!("email:{}", hex::encode(mac.finalize().into_bytes()));
        let address = address.0.map(|ip| match ip {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("ip:{prefix}/64")
            }
        });
        Subjects { email, address }
    }

    fn with_limits(&self) -> impl Iterator<Item = (&str, i64)> {
        std::iter::once((self.email.as_str(), MAX_FAILURES_PER_EMAIL)).chain(
            self.address
                .as_deref()
                .map(|a| (a, MAX_FAILURES_PER_ADDRESS)),
        )
    }
}

/// A log-in attempt, recorded as a failure until it turns out to be a success.
#[derive(Debug)]
pub struct Attempt {
    ids: Vec<i64>,
}

/// Records an attempt (as a failure, until [`record_success`]) and counts: `Ok(Ok(attempt))` to
/// go ahead, or `Ok(Err(seconds))` to wait before the next one (the attempt is then not kept).
pub async fn begin_attempt(
    db: &Db,
    subjects: &Subjects,
    now: UnixSeconds,
) -> Result<Result<Attempt, u64>, DbError> {
    let all: Vec<String> = subjects.with_limits().map(|(s, _)| s.to_owned()).collect();
    let ids = sessions::record_login_failure(db, &all, now, now - WINDOW_SECS).await?;
    let mut wait: Option<u64> = None;
    for (subject, limit) in subjects.with_limits() {
        // A failure at `t` counts while `now < t + WINDOW_SECS`; this attempt is one of them.
        let failures = sessions::login_failures_after(db, subject, now - WINDOW_SECS).await?;
        if failures.count > limit {
            // Once the oldest failure leaves the window, the count is below the limit again.
            let oldest = failures.oldest.unwrap_or(now);
            let secs = (oldest + WINDOW_SECS - now).max(1) as u64;
            wait = Some(wait.map_or(secs, |w| w.max(secs)));
        }
    }
    match wait {
        Some(secs) => {
            sessions::delete_login_failures(db, &ids).await?;
            Ok(Err(secs))
        }
        None => Ok(Ok(Attempt { ids })),
    }
}

/// After a successful log-in, the attempt was no failure, and the email's earlier failures are
/// forgotten (they were the owner's typos). The address's are kept: clearing them would let
/// someone reset the count by logging into an account of their own between guesses.
pub async fn record_success(db: &Db, subjects: &Subjects, attempt: Attempt) -> Result<(), DbError> {
    sessions::delete_login_failures(db, &attempt.ids).await?;
    sessions::clear_login_failures(db, &subjects.email).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hash_the_email_and_group_ipv6_by_64() {
        let email = Email::parse("ada@example.com").unwrap();
        let key = [9u8; 32];
        let v4 = Subjects::new(
            &email,
            ClientAddress(Some("192.0.2.7".parse().unwrap())),
            &key,
        );
        assert_ne!(
            v4.email,
            Subjects::new(&email, ClientAddress(None), &[8u8; 32]).email,
            "keyed: another server's key gives another hash"
        );
        assert!(v4.email.starts_with("email:"));
        assert!(!v4.email.contains("ada"));
        assert_eq!(v4.address.as_deref(), Some("ip:192.0.2.7"));
        let a = Subjects::new(
            &email,
            ClientAddress(Some("2001:db8:1:2:aaaa::1".parse().unwrap())),
            &key,
        );
        let b = Subjects::new(
            &email,
            ClientAddress(Some("2001:db8:1:2:bbbb::9".parse().unwrap())),
            &key,
        );
        assert_eq!(a.address.as_deref(), Some("ip:2001:db8:1:2::/64"));
        assert_eq!(a, b);
        assert_eq!(
            Subjects::new(&email, ClientAddress(None), &key).address,
            None
        );
    }
}
