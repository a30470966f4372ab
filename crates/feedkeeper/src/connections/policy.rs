//! When to refresh, when to probe, when to retry, and when a person must be told — as pure
//! functions of a connection and the time, so every rule is unit-tested without I/O.

use crate::config::LifecycleConfig;
use crate::db::connections::{Connection, LoginKind, Status};

/// Meta refuses to refresh a token younger than 24 h; ten minutes more absorb clock skew.
pub const MIN_REFRESH_AGE: i64 = 24 * 3600 + 10 * 60;
/// Refreshing this close to expiry is too late to retry if it fails; plan to be done before.
const EXPIRY_MARGIN: i64 = 2 * 86_400;
/// First retry after a transient failure, doubled each time, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: i64 = 5 * 60;
const MAX_RETRY_DELAY: i64 = 2 * 3600;

/// The lifecycle rules, from config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub refresh_interval: i64,
    pub probe_interval: i64,
    pub jitter_percent: i64,
    pub degraded_incident_after: i64,
    pub expiry_warning: i64,
    pub data_access_warning: i64,
    pub deauthorized_grace: i64,
    pub reconnect_reprobe: i64,
    pub manual_check_cooldown: i64,
}

impl From<&LifecycleConfig> for Policy {
    fn from(c: &LifecycleConfig) -> Self {
        let secs = |v: u64, unit: i64| i64::try_from(v).unwrap_or(i64::MAX / unit) * unit;
        Policy {
            refresh_interval: secs(c.refresh_interval_hours, 3600),
            probe_interval: secs(c.probe_interval_minutes, 60),
            jitter_percent: secs(c.jitter_percent, 1),
            degraded_incident_after: secs(c.degraded_incident_after_hours, 3600),
            expiry_warning: secs(c.expiry_warning_days, 86_400),
            data_access_warning: secs(c.data_access_warning_days, 86_400),
            deauthorized_grace: secs(c.deauthorized_grace_days, 86_400),
            reconnect_reprobe: secs(c.reconnect_reprobe_hours, 3600),
            manual_check_cooldown: secs(c.manual_check_cooldown_secs, 1),
        }
    }
}

impl crate::state::AppState {
    /// The lifecycle rules in effect.
    pub fn policy(&self) -> Policy {
        Policy::from(&self.config.lifecycle)
    }
}

/// What a lifecycle pass does for a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Renew the Instagram Login token.
    Refresh,
    /// Make a cheap call that proves the token alive (profile, or `debug_token`).
    Probe,
    /// The token's expiry has passed: it is dead without asking Meta, and must not be refreshed.
    ExpiredLocally,
}

/// What an incident should look like after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncidentDecision {
    Open {
        kind: &'static str,
        reason: Option<String>,
    },
    Keep,
    Close,
}

impl Policy {
    /// Whether Meta would accept a refresh of this token now (≥ 24 h old, unexpired).
    pub fn can_refresh(&self, c: &Connection, now: i64) -> bool {
        c.login_kind() == LoginKind::Instagram
            && c.token_issued_at
                .is_some_and(|issued| now - issued >= MIN_REFRESH_AGE)
            && c.token_expires_at.is_none_or(|expires| now < expires)
    }

    /// When the current token should be renewed (Instagram Login only): every
    /// `refresh_interval`, but never earlier than Meta allows and early enough to retry before
    /// expiry. An unknown expiry (the code-exchange fallback) refreshes as soon as allowed.
    pub fn refresh_due_at(&self, c: &Connection) -> Option<i64> {
        if c.login_kind() != LoginKind::Instagram {
            return None;
        }
        let issued = c.token_issued_at?;
        let earliest = issued + MIN_REFRESH_AGE;
        let planned = match c.token_expires_at {
            Some(expires) => (issued + self.refresh_interval).min(expires - EXPIRY_MARGIN),
            None => earliest,
        };
        Some(planned.max(earliest))
    }

    /// The call to make in a pass at `now`.
    pub fn check_for(&self, c: &Connection, now: i64) -> Check {
        if c.login_kind() == LoginKind::Instagram && c.token_expires_at.is_some_and(|e| now >= e) {
            return Check::ExpiredLocally;
        }
        // A token Meta refused is only asked whether it works after all; renewing it could not
        // succeed, and would look like an attack to Meta if it did.
        if c.status() == Status::NeedsReconnect {
            return Check::Probe;
        }
        match self.refresh_due_at(c) {
            Some(due) if now >= due && self.can_refresh(c, now) => Check::Refresh,
            _ => Check::Probe,
        }
    }

    /// When the next pass for this connection is due; `None` when only a new login can help (the
    /// token has expired). A connection that needs a reconnect is probed again on a slow
    /// schedule, so a false alarm heals by itself.
    /// `roll` in `[0, 1)` spreads probes (earlier, never later) so connections do not align.
    pub fn next_due(&self, c: &Connection, now: i64, roll: f64) -> Option<i64> {
        let jitter = |interval: i64| {
            let spread = interval as f64 * self.jitter_percent as f64 / 100.0;
            (spread * roll.clamp(0.0, 1.0)) as i64
        };
        match c.status() {
            Status::NeedsReconnect => {
                let expired = c.token_sealed.is_none()
                    || c.token_expires_at.is_some_and(|e| e > 0 && now >= e);
                (!expired).then(|| now + self.reconnect_reprobe - jitter(self.reconnect_reprobe))
            }
            Status::Degraded => {
                let failures = c.consecutive_failures.clamp(1, 20) as u32;
                let delay = FIRST_RETRY_DELAY
                    .saturating_mul(1_i64 << (failures - 1).min(16))
                    .min(MAX_RETRY_DELAY);
                let mut next = now + delay - jitter(delay);
                if let Some(until) = c.backoff_until {
                    next = next.max(until);
                }
                // A token about to expire gets one last try before it does.
                if let Some(expires) = c.token_expires_at
                    && expires - 600 > now
                {
                    next = next.min(expires - 600);
                }
                Some(next.max(now + 1))
            }
            Status::Active => {
                let probe = now + self.probe_interval - jitter(self.probe_interval);
                let next = match self.refresh_due_at(c) {
                    Some(refresh) => probe.min(refresh),
                    None => probe,
                };
                Some(next.max(now + 1))
            }
        }
    }

    /// Whether a person must be asked to act, given the connection after a pass.
    pub fn incident_for(&self, c: &Connection, now: i64) -> IncidentDecision {
        match c.status() {
            Status::NeedsReconnect => IncidentDecision::Open {
                kind: "reconnect_needed",
                reason: c.reason.clone(),
            },
            Status::Degraded => {
                if c.token_expires_at
                    .is_some_and(|e| e - now <= self.expiry_warning)
                {
                    IncidentDecision::Open {
                        kind: "expiry_at_risk",
                        reason: None,
                    }
                } else if c
                    .degraded_since
                    .is_some_and(|since| now - since >= self.degraded_incident_after)
                {
                    IncidentDecision::Open {
                        kind: "degraded_too_long",
                        reason: None,
                    }
                } else {
                    IncidentDecision::Keep
                }
            }
            Status::Active => {
                if c.login_kind() == LoginKind::Facebook
                    && c.data_access_expires_at
                        .is_some_and(|d| d - now <= self.data_access_warning)
                {
                    IncidentDecision::Open {
                        kind: "data_access_expiring",
                        reason: None,
                    }
                } else {
                    IncidentDecision::Close
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const HOUR: i64 = 3600;

    fn policy() -> Policy {
        Policy::from(&LifecycleConfig::default())
    }

    fn instagram(issued: i64, expires: Option<i64>) -> Connection {
        let mut c = Connection::example(LoginKind::Instagram, Status::Active);
        c.token_issued_at = Some(issued);
        c.token_expires_at = expires;
        c
    }

    #[test]
    fn never_refreshes_a_token_younger_than_24_hours() {
        let p = policy();
        let c = instagram(0, Some(60 * DAY));
        assert_eq!(p.check_for(&c, 23 * HOUR), Check::Probe);
        assert_eq!(p.check_for(&c, MIN_REFRESH_AGE - 1), Check::Probe);
        assert!(!p.can_refresh(&c, MIN_REFRESH_AGE - 1));
        assert!(p.refresh_due_at(&c).unwrap() >= MIN_REFRESH_AGE);
    }

    #[test]
    fn refreshes_on_the_interval_and_never_after_expiry() {
        let p = policy();
        let c = instagram(0, Some(60 * DAY));
        assert_eq!(p.refresh_due_at(&c), Some(72 * HOUR));
        assert_eq!(p.check_for(&c, 72 * HOUR), Check::Refresh);
        assert_eq!(p.check_for(&c, 60 * DAY), Check::ExpiredLocally);
        assert!(!p.can_refresh(&c, 60 * DAY));
    }

    #[test]
    fn a_long_interval_still_refreshes_before_the_expiry_margin() {
        let mut p = policy();
        p.refresh_interval = 59 * DAY;
        let c = instagram(0, Some(60 * DAY));
        assert_eq!(p.refresh_due_at(&c), Some(58 * DAY));
    }

    #[test]
    fn an_unknown_expiry_refreshes_as_soon_as_allowed() {
        let c = instagram(100, None);
        assert_eq!(policy().refresh_due_at(&c), Some(100 + MIN_REFRESH_AGE));
    }

    #[test]
    fn facebook_connections_are_only_probed() {
        let mut c = Connection::example(LoginKind::Facebook, Status::Active);
        c.token_issued_at = Some(0);
        assert_eq!(policy().refresh_due_at(&c), None);
        assert_eq!(policy().check_for(&c, 400 * DAY), Check::Probe);
    }

    #[test]
    fn active_connections_are_probed_within_the_interval_with_early_jitter() {
        let p = policy();
        let c = instagram(0, Some(60 * DAY));
        let now = 10 * HOUR;
        assert_eq!(p.next_due(&c, now, 0.0), Some(now + p.probe_interval));
        let jittered = p.next_due(&c, now, 0.99).unwrap();
        assert!(jittered < now + p.probe_interval && jittered > now + p.probe_interval * 85 / 100);
        // The refresh time wins when it comes first.
        let due = p.next_due(&c, 72 * HOUR - 60, 0.0).unwrap();
        assert_eq!(due, 72 * HOUR);
    }

    #[test]
    fn degraded_connections_retry_with_growing_delays_and_honour_back_off() {
        let p = policy();
        let mut c = instagram(0, Some(60 * DAY));
        c.set_status(Status::Degraded);
        c.consecutive_failures = 1;
        assert_eq!(p.next_due(&c, 1000, 0.0), Some(1000 + 300));
        c.consecutive_failures = 3;
        assert_eq!(p.next_due(&c, 1000, 0.0), Some(1000 + 1200));
        c.consecutive_failures = 30;
        assert_eq!(p.next_due(&c, 1000, 0.0), Some(1000 + 2 * HOUR));
        c.backoff_until = Some(50_000);
        assert_eq!(p.next_due(&c, 1000, 0.0), Some(50_000));
        // But a token about to expire gets its last chance first.
        c.token_expires_at = Some(5000);
        assert_eq!(p.next_due(&c, 1000, 0.0), Some(4400));
    }

    #[test]
    fn a_connection_that_needs_reconnecting_is_probed_again_slowly_and_never_refreshed() {
        let p = policy();
        let mut c = instagram(0, Some(60 * DAY));
        c.set_status(Status::NeedsReconnect);
        let next = p.next_due(&c, 10 * DAY, 0.0).unwrap();
        assert_eq!(next, 10 * DAY + 12 * HOUR);
        // Even when a refresh would be due, a refused token is only probed.
        assert_eq!(p.check_for(&c, 10 * DAY), Check::Probe);
        // Once its expiry has passed, or its data is gone, only a new login helps.
        assert_eq!(p.next_due(&c, 60 * DAY, 0.0), None);
        c.token_expires_at = Some(90 * DAY);
        c.token_sealed = None;
        assert_eq!(p.next_due(&c, 10 * DAY, 0.0), None);
    }

    #[test]
    fn incidents_open_when_a_person_must_act_and_close_when_healthy() {
        let p = policy();
        let mut c = instagram(0, Some(60 * DAY));
        assert_eq!(p.incident_for(&c, DAY), IncidentDecision::Close);

        c.set_status(Status::Degraded);
        c.degraded_since = Some(DAY);
        assert_eq!(
            p.incident_for(&c, DAY + HOUR),
            IncidentDecision::Keep,
            "a short outage"
        );
        assert!(matches!(
            p.incident_for(&c, 2 * DAY + HOUR),
            IncidentDecision::Open {
                kind: "degraded_too_long",
                ..
            }
        ));
        c.degraded_since = Some(54 * DAY);
        assert!(matches!(
            p.incident_for(&c, 54 * DAY + HOUR),
            IncidentDecision::Open {
                kind: "expiry_at_risk",
                ..
            }
        ));

        c.set_status(Status::NeedsReconnect);
        c.reason = Some("password_changed".into());
        assert_eq!(
            p.incident_for(&c, DAY),
            IncidentDecision::Open {
                kind: "reconnect_needed",
                reason: Some("password_changed".into())
            }
        );
    }

    #[test]
    fn facebook_data_access_warns_before_it_runs_out() {
        let p = policy();
        let mut c = Connection::example(LoginKind::Facebook, Status::Active);
        c.data_access_expires_at = Some(90 * DAY);
        assert_eq!(p.incident_for(&c, 10 * DAY), IncidentDecision::Close);
        assert!(matches!(
            p.incident_for(&c, 80 * DAY),
            IncidentDecision::Open {
                kind: "data_access_expiring",
                ..
            }
        ));
    }
}
