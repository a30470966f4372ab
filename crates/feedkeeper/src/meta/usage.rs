//! Meta's rate-limit usage headers, parsed and remembered.
//!
//! `X-App-Usage` (app/user tokens) and `X-Business-Use-Case-Usage` (Instagram and Page tokens) are
//! integer percentages of an allowance; they are absent until "enough" calls were made, and absent
//! means unknown, not 0 %. `estimated_time_to_regain_access` is in minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;

/// Usage as percentages (100 = throttled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// From `X-App-Usage`.
    pub app: Option<UsageEntry>,
    /// From `X-Business-Use-Case-Usage`, one per business object (IG account, Page) and type.
    pub business: Vec<BusinessUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    #[serde(default)]
    pub call_count: u32,
    #[serde(default)]
    pub total_time: u32,
    #[serde(default)]
    pub total_cputime: u32,
}

impl UsageEntry {
    pub fn max_percent(&self) -> u32 {
        self.call_count.max(self.total_time).max(self.total_cputime)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessUsage {
    /// The business object the usage counts against (IG professional-account id, Page id).
    pub object_id: String,
    /// `instagram`, `pages`, …
    pub kind: String,
    pub usage: UsageEntry,
    /// Minutes until calls are accepted again; 0 means "not blocked now", not "plenty left".
    pub regain_access_minutes: u32,
}

#[derive(Deserialize)]
struct RawBusinessEntry {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    call_count: u32,
    #[serde(default)]
    total_time: u32,
    #[serde(default)]
    total_cputime: u32,
    #[serde(default)]
    estimated_time_to_regain_access: u32,
}

impl Usage {
    /// Parses the two headers; a malformed header counts as absent (it must not fail the call).
    pub fn from_headers(app_usage: Option<&str>, business_usage: Option<&str>) -> Usage {
        let app = app_usage.and_then(|h| serde_json::from_str::<UsageEntry>(h).ok());
        let business = business_usage
            .and_then(|h| serde_json::from_str::<HashMap<String, Vec<RawBusinessEntry>>>(h).ok())
            .map(|map| {
                let mut entries: Vec<BusinessUsage> = map
                    .into_iter()
                    .flat_map(|(object_id, list)| {
                        list.into_iter().map(move |e| BusinessUsage {
                            object_id: object_id.clone(),
                            kind: e.kind,
                            usage: UsageEntry {
                                call_count: e.call_count,
                                total_time: e.total_time,
                                total_cputime: e.total_cputime,
                            },
                            regain_access_minutes: e.estimated_time_to_regain_access,
                        })
                    })
                    .collect();
                entries.sort_by(|a, b| (&a.object_id, &a.kind).cmp(&(&b.object_id, &b.kind)));
                entries
            })
            .unwrap_or_default();
        Usage { app, business }
    }

    pub fn is_empty(&self) -> bool {
        self.app.is_none() && self.business.is_empty()
    }

    /// The highest percentage reported, if any header was present.
    pub fn max_percent(&self) -> Option<u32> {
        self.app
            .iter()
            .map(UsageEntry::max_percent)
            .chain(self.business.iter().map(|b| b.usage.max_percent()))
            .max()
    }

    /// When Meta says calls will be accepted again, if it named a time.
    pub fn regain_access_at(&self, now: UnixSeconds) -> Option<UnixSeconds> {
        self.business
            .iter()
            .map(|b| b.regain_access_minutes)
            .filter(|m| *m > 0)
            .max()
            .map(|m| now + i64::from(m) * 60)
    }
}

/// The latest usage seen per scope (`app`, or a business object id), for metrics and for workers
/// that want to slow down before Meta throttles them. In memory on purpose: it is a hint that
/// rebuilds itself from the next response; back-off decisions that must survive a restart are
/// stored with the connection by the worker that receives the error.
#[derive(Debug, Clone, Default)]
pub struct UsageLog {
    inner: Arc<Mutex<HashMap<String, Observed>>>,
}

/// One scope's latest usage and when it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub percent: u32,
    pub regain_access_at: Option<UnixSeconds>,
    pub seen_at: UnixSeconds,
}

impl UsageLog {
    pub fn record(&self, usage: &Usage, now: UnixSeconds) {
        if usage.is_empty() {
            return;
        }
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(app) = &usage.app {
            map.insert(
                "app".to_owned(),
                Observed {
                    percent: app.max_percent(),
                    regain_access_at: None,
                    seen_at: now,
                },
            );
        }
        for b in &usage.business {
            let regain = (b.regain_access_minutes > 0)
                .then(|| now + i64::from(b.regain_access_minutes) * 60);
            map.insert(
                b.object_id.clone(),
                Observed {
                    percent: b.usage.max_percent(),
                    regain_access_at: regain,
                    seen_at: now,
                },
            );
        }
    }

    /// The latest observation for `scope` (`"app"` or an object id).
    pub fn get(&self, scope: &str) -> Option<Observed> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(scope).cloned()
    }

    /// Every scope's latest observation.
    pub fn snapshot(&self) -> HashMap<String, Observed> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_headers() {
        let usage = Usage::from_headers(
            Some(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#),
            Some(
                r#"{"17841405793187218":[{"type":"instagram","call_count":12,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":0}]}"#,
            ),
        );
        assert_eq!(usage.app.as_ref().unwrap().call_count, 28);
        assert_eq!(usage.business[0].object_id, "17841405793187218");
        assert_eq!(usage.max_percent(), Some(28));
        assert_eq!(usage.regain_access_at(0), None);
    }

    #[test]
    fn absent_or_malformed_headers_mean_unknown() {
        assert_eq!(Usage::from_headers(None, None).max_percent(), None);
        let garbled = Usage::from_headers(Some("{call_count:"), Some("[]"));
        assert!(garbled.is_empty());
    }

    #[test]
    fn the_log_keeps_the_latest_per_scope() {
        let log = UsageLog::default();
        log.record(&Usage::from_headers(Some(r#"{"call_count":5}"#), None), 10);
        log.record(&Usage::from_headers(Some(r#"{"call_count":7}"#), None), 20);
        assert_eq!(log.get("app").unwrap().percent, 7);
        log.record(
            &Usage::from_headers(None, Some(r#"{"42":[{"type":"instagram","call_count":100,"estimated_time_to_regain_access":3}]}"#)),
            20,
        );
        assert_eq!(log.get("42").unwrap().regain_access_at, Some(200));
    }
}
