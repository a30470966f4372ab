//! The log of requests made to the simulated Meta hosts, with secrets redacted, readable
//! through `GET /__sim/requests?since=<seq>`.

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

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("fields=id&access_token=IGAAsecret&code=AQx&limit=5"),
            "fields=id&access_token=[redacted]&code=[redacted]&limit=5"
        );
    }
}
