//! The simulator's own clock: manual by default (moves only through `advance`/`set`), or
//! wall-clock time plus an offset when `SimOptions::real_time` is on (the demo).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as the simulator sees them.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    base: i64,
    real_time: bool,
    offset: i64,
}

impl Clock {
    pub(crate) fn new(start_time: i64, real_time: bool) -> Self {
        Self {
            base: start_time,
            real_time,
            offset: 0,
        }
    }

    fn origin(&self) -> i64 {
        if self.real_time {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        } else {
            self.base
        }
    }

    /// Kept within 1970–9999 so every later date computation stays in range.
    pub(crate) fn now(&self) -> i64 {
        self.origin()
            .saturating_add(self.offset)
            .clamp(0, crate::state::MAX_TIME)
    }

    pub(crate) fn advance(&mut self, secs: i64) -> i64 {
        self.offset = self.offset.saturating_add(secs);
        self.now()
    }

    pub(crate) fn set(&mut self, unix: i64) {
        self.offset = unix.saturating_sub(self.origin());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let mut c = Clock::new(1_000, false);
        assert_eq!(c.now(), 1_000);
        assert_eq!(c.advance(86_400), 87_400);
        c.set(5);
        assert_eq!(c.now(), 5);
    }

    #[test]
    fn real_time_clock_follows_the_wall_plus_offset() {
        let mut c = Clock::new(0, true);
        let before = c.now();
        assert!(before > 1_700_000_000);
        c.advance(3_600);
        assert!(c.now() >= before + 3_600);
    }
}
