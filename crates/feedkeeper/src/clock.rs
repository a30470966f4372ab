//! The one source of "now" for the service.
//!
//! Logic never reads the system time directly: it takes a [`Clock`] (or a `now` argument) so tests
//! can move time by 60 days in a millisecond.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds, the unit every stored time uses.
pub type UnixSeconds = i64;

/// Where the current time comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The machine's wall clock.
    System,
    /// A clock that only moves when told to (tests, simulations).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: UnixSeconds) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    /// The current Unix time in seconds.
    pub fn now(&self) -> UnixSeconds {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (or back, with a negative value). A no-op on the system clock,
    /// which nobody may move.
    pub fn advance(&self, secs: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock to `at`. A no-op on the system clock.
    pub fn set(&self, at: UnixSeconds) {
        if let Clock::Manual(t) = self {
            t.store(at, Ordering::SeqCst);
        }
    }
}

/// Milliseconds on the machine's wall clock: what job leases are measured in. Leases are about
/// processes being alive, so they never follow the service's (test-movable) [`Clock`].
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2026-01-31 14:05 UTC`, for audit details and pages.
pub fn format_utc(t: UnixSeconds) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("@{t}"))
}

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`), for JSON feeds and webhook events.
pub fn rfc3339(t: UnixSeconds) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// How far `t` is from `now` in words: "in 58 days", "3 hours ago", "in a minute".
pub fn distance(t: UnixSeconds, now: UnixSeconds) -> String {
    let secs = t - now;
    let abs = secs.unsigned_abs();
    let (n, unit) = match abs {
        0..60 => {
            return if secs >= 0 {
                "in a moment".into()
            } else {
                "just now".into()
            };
        }
        60..3600 => (abs / 60, "minute"),
        3600..86_400 => (abs / 3600, "hour"),
        _ => (abs / 86_400, "day"),
    };
    let amount = if n == 1 {
        format!("a{} {unit}", if unit == "hour" { "n" } else { "" })
    } else {
        format!("{n} {unit}s")
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A date with its distance from now: `2026-01-31 14:05 UTC (in 58 days)`.
pub fn format_with_distance(t: UnixSeconds, now: UnixSeconds) -> String {
    format!("{} ({})", format_utc(t), distance(t, now))
}

#[cfg(test)]
mod tests {
    #[test]
    fn distances_read_as_words() {
        assert_eq!(distance(100, 100), "in a moment");
        assert_eq!(distance(90, 100), "just now");
        assert_eq!(distance(160, 100), "in a minute");
        assert_eq!(distance(100 + 3 * 3600, 100), "in 3 hours");
        assert_eq!(distance(100 + 3600, 100), "in an hour");
        assert_eq!(distance(100 + 58 * 86_400, 100), "in 58 days");
        assert_eq!(distance(100 - 2 * 86_400, 100), "2 days ago");
        assert_eq!(
            format_with_distance(1_767_225_600, 1_767_225_600 - 86_400),
            "2026-01-01 00:00 UTC (in a day)"
        );
    }

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(60 * 86_400);
        assert_eq!(clock.now(), 1_000 + 60 * 86_400);
        clock.set(5);
        assert_eq!(clock.now(), 5);
    }

    #[test]
    fn clones_of_a_manual_clock_share_time() {
        let a = Clock::manual(10);
        let b = a.clone();
        a.advance(5);
        assert_eq!(b.now(), 15);
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00 UTC");
    }

    #[test]
    fn system_clock_is_recent_and_cannot_be_moved() {
        let clock = Clock::System;
        let before = clock.now();
        assert!(before > 1_700_000_000, "system clock reads {before}");
        clock.advance(1_000_000);
        assert!(clock.now() < before + 1_000);
    }
}
