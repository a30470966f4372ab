//! Simulated outages: per request, seeded dice choose a transient 500, a hang, truncated JSON,
//! an HTML 502 page or an empty 200, at the configured rates and on the chosen hosts.

use serde::{Deserialize, Serialize};

use crate::http::host::Host;

/// `PUT /__sim/outage`: failure rates (each 0..1, summing to at most 1) and optional hosts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outage {
    /// HTTP 500, code 2, `is_transient: true`.
    pub error_rate: f64,
    /// The request hangs (`outage_hang_secs`), so the client must time out.
    pub timeout_rate: f64,
    /// HTTP 200 with truncated JSON.
    pub malformed_rate: f64,
    /// HTTP 502 `text/html` error page.
    pub html_rate: f64,
    /// HTTP 200 with an empty body.
    pub empty_rate: f64,
    /// Hosts affected (e.g. `graph.instagram.com`); all Meta hosts when absent.
    pub hosts: Option<Vec<String>>,
}

/// The failure picked for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Error,
    Timeout,
    Malformed,
    Html,
    Empty,
}

impl Outage {
    /// Checks rates and host names.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("malformed_rate", self.malformed_rate),
            ("html_rate", self.html_rate),
            ("empty_rate", self.empty_rate),
        ];
        for (name, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("`{name}` must be between 0 and 1"));
            }
        }
        if rates.iter().map(|(_, r)| r).sum::<f64>() > 1.0 + 1e-9 {
            return Err("outage rates add up to more than 1".into());
        }
        for h in self.hosts.iter().flatten() {
            if Host::from_name(h).is_none() {
                return Err(format!("unknown host `{h}`"));
            }
        }
        Ok(())
    }

    pub(crate) fn applies_to(&self, host: Host) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h == host.name()))
    }

    /// Maps a dice roll in `[0, 1)` to a failure (or none).
    pub(crate) fn pick(&self, roll: f64) -> Option<Failure> {
        let mut edge = 0.0;
        for (rate, failure) in [
            (self.error_rate, Failure::Error),
            (self.timeout_rate, Failure::Timeout),
            (self.malformed_rate, Failure::Malformed),
            (self.html_rate, Failure::Html),
            (self.empty_rate, Failure::Empty),
        ] {
            edge += rate;
            if roll < edge {
                return Some(failure);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_partition_the_roll() {
        let o = Outage {
            error_rate: 0.2,
            empty_rate: 0.2,
            ..Outage::default()
        };
        assert_eq!(o.pick(0.1), Some(Failure::Error));
        assert_eq!(o.pick(0.3), Some(Failure::Empty));
        assert_eq!(o.pick(0.5), None);
        assert!(
            Outage {
                error_rate: 0.7,
                html_rate: 0.7,
                ..Outage::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Outage {
                hosts: Some(vec!["example.com".into()]),
                ..Outage::default()
            }
            .validate()
            .is_err()
        );
    }
}
