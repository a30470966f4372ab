//! Construction-time options of a simulator: the seed, the clock's start and mode, and the
//! initial settings. Everything that may change at run time lives in `Settings` instead.

use crate::settings::Settings;

/// 2026-01-01T00:00:00Z, the default start of the simulator clock.
pub const DEFAULT_START_TIME: i64 = 1_767_225_600;

/// How to build a [`crate::Simulator`].
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Seeds every random thing (ids, tokens, codes, outage dice, image pixels).
    pub seed: u64,
    /// Unix seconds the clock starts at (ignored when `real_time` is on).
    pub start_time: i64,
    /// When true the clock is wall-clock time plus any advance (the demo uses this);
    /// when false it only moves through `advance_clock`/`set_clock`.
    pub real_time: bool,
    /// Initial settings (`Simulator::reset` returns to these).
    pub settings: Settings,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            start_time: DEFAULT_START_TIME,
            real_time: false,
            settings: Settings::default(),
        }
    }
}
