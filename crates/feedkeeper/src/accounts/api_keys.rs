//! API keys for the developer API: their format, how they are checked, and the per-node rate
//! limits of the API's callers.
//!
//! A key reads `fk_<prefix>_<secret>`: a 12-hex-digit prefix that finds its row and is shown in
//! the dashboard, and a 256-bit secret of which only the SHA-256 is stored.
//!
//! Checking a key: one that this node checked in the last [`KNOWN_SECS`] is recognised from
//! memory (no database read). One it found good before that (within the last hour) is read
//! again, to see that it was not revoked, whatever its caller's address did meanwhile. Any
//! other request whose `Authorization` header does not have the key's shape is refused before
//! any database read, and one that does costs its client address (IPv6: its /64) a token of
//! [`BAD_KEYS_PER_MINUTE`], given back when the key turns out good: an address that keeps
//! sending wrong keys is refused from memory, while the keys in use from the same address (a
//! shared NAT or proxy) go on working. A key revoked on one node is refused there at once and
//! on the others within [`KNOWN_SECS`].
//!
//! The limits are token buckets in this node's memory: with N nodes a key gets up to N times
//! `api.requests_per_minute` (a load balancer spreading its requests gets about one node's
//! share per node). Memory is bounded: at most [`MAX_TRACKED`] buckets and known keys of each
//! kind, least recently used out (about 100 bytes each).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

use super::csrf::{is_well_formed, random_token};
use super::session::hash_token;

/// What every key starts with.
pub const KEY_PREFIX: &str = "fk_";
/// Hex digits in a key's visible prefix.
const PREFIX_LEN: usize = 12;
/// Buckets kept per kind (keys, client addresses).
pub const MAX_TRACKED: u64 = 100_000;
/// Wrong keys one client address may send per minute before it is refused from memory.
pub const BAD_KEYS_PER_MINUTE: u64 = 30;
/// How long a checked key is recognised from memory.
pub const KNOWN_SECS: u64 = 10;

/// A key this node found good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownKey {
    pub id: i64,
    pub owner: crate::ids::UserId,
    pub secret_hash: String,
    pub last_used_at: Option<i64>,
    /// When the database last said it was good.
    pub checked: Instant,
}

impl KnownKey {
    /// Checked within [`KNOWN_SECS`]: good without reading the database again.
    pub fn fresh(&self) -> bool {
        self.checked.elapsed() < Duration::from_secs(KNOWN_SECS)
    }
}

/// What the bad-key limit counts: the address, or for IPv6 its /64 (one client easily has a
/// whole /64, as the log-in limit also reckons).
fn address_group(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A key just made: the whole key (shown once), its prefix and the hash to store.
pub struct NewKey {
    pub key: String,
    pub prefix: String,
    pub secret_hash: String,
}

/// Makes a new key.
pub fn new_key() -> NewKey {
    let prefix = hex::encode(rand::random::<[u8; PREFIX_LEN / 2]>());
    let secret = random_token();
    NewKey {
        key: format!("{KEY_PREFIX}{prefix}_{secret}"),
        secret_hash: hash_token(&secret),
        prefix,
    }
}

/// A key as presented: its prefix (to find the row) and its secret (to check against it).
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub prefix: &'a str,
    secret: &'a str,
}

impl<'a> PresentedKey<'a> {
    /// Reads a key of the shape [`new_key`] makes; anything else is `None`.
    pub fn parse(key: &'a str) -> Option<PresentedKey<'a>> {
        let rest = key.strip_prefix(KEY_PREFIX)?;
        let prefix = rest.get(..PREFIX_LEN)?;
        let secret = rest.get(PREFIX_LEN..)?.strip_prefix('_')?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        (prefix.chars().all(hex) && is_well_formed(secret))
            .then_some(PresentedKey { prefix, secret })
    }

    /// Whether the secret is the one whose hash was stored (in constant time).
    pub fn matches(&self, stored_hash: &str) -> bool {
        hash_token(self.secret)
            .as_bytes()
            .ct_eq(stored_hash.as_bytes())
            .into()
    }
}

/// One token bucket: `capacity` tokens, refilled evenly over a minute.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The outcome of taking a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Refused: seconds until a token is there (the `Retry-After`).
    pub retry_after_secs: Option<u64>,
}

fn take(bucket: &Mutex<Bucket>, per_minute: u64, now: Instant) -> Quota {
    let capacity = per_minute as f64;
    let per_sec = capacity / 60.0;
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * per_sec).min(capacity);
    b.at = now;
    let retry_after_secs = if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        None
    } else {
        Some(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64)
    };
    Quota {
        limit: per_minute,
        remaining: b.tokens.floor() as u64,
        reset_secs: ((capacity - b.tokens) / per_sec).ceil() as u64,
        retry_after_secs,
    }
}

/// The API's rate limits, and the keys recognised from memory, on this node.
#[derive(Debug)]
pub struct ApiLimits {
    per_key: moka::sync::Cache<i64, Arc<Mutex<Bucket>>>,
    bad_keys: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
    known: moka::sync::Cache<String, KnownKey>,
    /// Keys revoked on this node lately: never remembered again, whatever requests that read
    /// them before the revocation do afterwards.
    revoked: moka::sync::Cache<String, ()>,
    requests_per_minute: u64,
}

impl ApiLimits {
    pub fn new(requests_per_minute: u64) -> ApiLimits {
        fn cache<K: std::hash::Hash + Eq + Send + Sync + 'static>()
        -> moka::sync::Cache<K, Arc<Mutex<Bucket>>> {
            moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED)
                // An idle bucket is full again within a minute: forgetting it changes nothing.
                .time_to_idle(Duration::from_secs(120))
                .build()
        }
        ApiLimits {
            per_key: cache(),
            bad_keys: cache(),
            known: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            revoked: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            requests_per_minute,
        }
    }

    /// The key with this prefix if this node found it good within the last hour (see
    /// [`KnownKey::fresh`]).
    pub fn known(&self, prefix: &str) -> Option<KnownKey> {
        if self.revoked.contains_key(prefix) {
            return None;
        }
        self.known.get(prefix)
    }

    /// Remembers a key found good.
    pub fn remember(&self, prefix: &str, key: KnownKey) {
        if !self.revoked.contains_key(prefix) {
            self.known.insert(prefix.to_owned(), key);
        }
    }

    /// Forgets a key at once, for good (it was revoked on this node).
    pub fn forget(&self, prefix: &str) {
        self.revoked.insert(prefix.to_owned(), ());
        self.known.invalidate(prefix);
    }

    fn bucket<K>(
        cache: &moka::sync::Cache<K, Arc<Mutex<Bucket>>>,
        k: K,
        full: u64,
    ) -> Arc<Mutex<Bucket>>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
    {
        cache.get_with(k, || {
            Arc::new(Mutex::new(Bucket {
                tokens: full as f64,
                at: Instant::now(),
            }))
        })
    }

    /// Takes one request of key `key_id`'s quota.
    pub fn take_for_key(&self, key_id: i64) -> Quota {
        let bucket = Self::bucket(&self.per_key, key_id, self.requests_per_minute);
        take(&bucket, self.requests_per_minute, Instant::now())
    }

    /// Takes a token of `address`'s bad-key budget before its key is looked up: `Err` with the
    /// seconds to wait when it has sent too many wrong keys. A request without an address (a
    /// router driven in-process) is neither counted nor refused.
    pub fn charge_address(&self, address: Option<IpAddr>) -> Result<(), u64> {
        let Some(address) = address else {
            return Ok(());
        };
        let bucket = Self::bucket(&self.bad_keys, address_group(address), BAD_KEYS_PER_MINUTE);
        match take(&bucket, BAD_KEYS_PER_MINUTE, Instant::now()).retry_after_secs {
            None => Ok(()),
            Some(wait) => Err(wait),
        }
    }

    /// Gives the token back: the key was good.
    pub fn refund_address(&self, address: Option<IpAddr>) {
        let Some(address) = address else {
            return;
        };
        if let Some(bucket) = self.bad_keys.get(&address_group(address)) {
            let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
            b.tokens = (b.tokens + 1.0).min(BAD_KEYS_PER_MINUTE as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_and_only_their_own_secret_matches() {
        let made = new_key();
        let presented = PresentedKey::parse(&made.key).expect("a made key parses");
        assert_eq!(presented.prefix, made.prefix);
        assert!(presented.matches(&made.secret_hash));
        let other = new_key();
        assert!(!presented.matches(&other.secret_hash));
        for bad in [
            "",
            "fk_",
            &made.key[..made.key.len() - 1],
            &format!("{}x", made.key),
            &made.key.replacen("fk_", "fx_", 1),
            &made.key.to_uppercase(),
            "fk_0123456789ab-secret",
        ] {
            assert_eq!(PresentedKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_over_the_minute() {
        let bucket = Mutex::new(Bucket {
            tokens: 3.0,
            at: Instant::now(),
        });
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            let q = take(&bucket, 3, t0);
            assert_eq!((q.remaining, q.retry_after_secs), (left, None));
        }
        let refused = take(&bucket, 3, t0);
        assert_eq!(refused.retry_after_secs, Some(20));
        assert_eq!(refused.reset_secs, 60);
        let later = take(&bucket, 3, t0 + Duration::from_secs(21));
        assert_eq!(later.retry_after_secs, None);
    }

    #[test]
    fn an_address_sending_wrong_keys_is_refused_for_a_while_good_ones_cost_nothing() {
        let limits = ApiLimits::new(60);
        let who = Some(IpAddr::from([203, 0, 113, 9]));
        // Good keys are given back: any number of them.
        for _ in 0..3 * BAD_KEYS_PER_MINUTE {
            assert_eq!(limits.charge_address(who), Ok(()));
            limits.refund_address(who);
        }
        for _ in 0..BAD_KEYS_PER_MINUTE {
            assert_eq!(limits.charge_address(who), Ok(()));
        }
        assert!(limits.charge_address(who).is_err());
        let next_door = Some(IpAddr::from([203, 0, 113, 10]));
        assert_eq!(limits.charge_address(next_door), Ok(()));
        // One IPv6 /64 is one client.
        let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, last]));
        for n in 0..BAD_KEYS_PER_MINUTE as u16 {
            assert_eq!(limits.charge_address(v6(n)), Ok(()));
        }
        assert!(limits.charge_address(v6(999)).is_err());
        // Without an address (a router driven in-process) nothing is counted or refused.
        assert_eq!(limits.charge_address(None), Ok(()));
    }
}
