//! The log of requests made to the simulated Meta hosts, with secrets redacted, readable
//! through `GET /__sim/requests?since=<seq>`. Each record names the account and token family
//! the call was about and its wall-clock span, so tests can find overlapping calls; it never
//! holds a token, code or secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Query parameters whose values never reach the log.
const SECRET_PARAMS: [&str; 5] = [
    "access_token",
    "client_secret",
    "input_token",
    "fb_exchange_token",
    "code",
];

/// Keep at most this many records.
const CAPACITY: usize = 10_000;

/// One request to a Meta host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RequestRecord {
    /// Increasing sequence number.
    pub seq: u64,
    /// Simulator time.
    pub time: i64,
    /// HTTP method.
    pub method: String,
    /// Meta host, e.g. `graph.instagram.com`.
    pub host: String,
    /// Path on that host, e.g. `/v23.0/me/media`.
    pub path: String,
    /// Query string with secret values replaced by `[redacted]`.
    pub query: String,
    /// HTTP status; `None` when the request was left hanging (timeout outage).
    pub status: Option<u16>,
    /// Instagram username the call was about, when its credential resolves: the account of an
    /// Instagram or Page token, of the code being exchanged, of the token being exchanged or
    /// inspected (`fb_exchange_token`, `debug_token`'s `input_token`), or, for a Facebook user
    /// token, the shared Page's account the path names (else the only one shared).
    pub account: Option<String>,
    /// Family of the credential: `instagram_user`, `facebook_user`, `facebook_page` or `app`
    /// (`<app id>|<app secret>`); for a code exchange, the family of the token it yields.
    pub token_family: Option<String>,
    /// Wall-clock Unix milliseconds when the simulator began handling the request.
    pub started_at_ms: i64,
    /// Wall-clock Unix milliseconds when it finished, after any `latency_ms`; for a hanging
    /// request, when the hang is scheduled to end. Never before `started_at_ms`.
    pub ended_at_ms: i64,
}

impl RequestRecord {
    /// Whether the two calls' `[started_at_ms, ended_at_ms]` intervals intersect (both ends
    /// included, so calls within the same millisecond count as overlapping).
    pub fn overlaps(&self, other: &RequestRecord) -> bool {
        self.started_at_ms <= other.ended_at_ms && other.started_at_ms <= self.ended_at_ms
    }
}

/// The machine's wall clock in Unix milliseconds (not the simulator clock: overlap is about
/// real time).
pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Redacts secret parameter values in a raw query string.
pub(crate) fn redact(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k) => format!("{k}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The bounded log.
#[derive(Default)]
pub(crate) struct RequestLog {
    records: std::collections::VecDeque<RequestRecord>,
    next_seq: u64,
}

impl RequestLog {
    pub(crate) fn push(&mut self, mut record: RequestRecord) {
        self.next_seq += 1;
        record.seq = self.next_seq;
        if self.records.len() == CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub(crate) fn since(&self, since: Option<u64>) -> Vec<RequestRecord> {
        let since = since.unwrap_or(0);
        self.records
            .iter()
            .filter(|r| r.seq > since)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanning(started_at_ms: i64, ended_at_ms: i64) -> RequestRecord {
        RequestRecord {
            seq: 0,
            time: 0,
            method: "GET".into(),
            host: "graph.instagram.com".into(),
            path: "/me".into(),
            query: String::new(),
            status: Some(200),
            account: None,
            token_family: None,
            started_at_ms,
            ended_at_ms,
        }
    }

    #[test]
    fn overlap_includes_both_ends_and_is_symmetric() {
        let a = spanning(100, 200);
        for (b, expected) in [
            (spanning(150, 160), true),
            (spanning(50, 100), true),
            (spanning(200, 300), true),
            (spanning(201, 300), false),
            (spanning(0, 99), false),
        ] {
            assert_eq!(a.overlaps(&b), expected, "{b:?}");
            assert_eq!(b.overlaps(&a), expected, "{b:?}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("fields=id&access_token=IGAAsecret&code=AQx&limit=5"),
            "fields=id&access_token=[redacted]&code=[redacted]&limit=5"
        );
    }
}
