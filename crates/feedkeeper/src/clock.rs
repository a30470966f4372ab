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

#[cfg(test)]
mod tests {
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
