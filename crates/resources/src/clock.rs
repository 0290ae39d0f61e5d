//! Injectable time: the policy reads time from a snapshot, and whoever builds the snapshot takes it from a `Clock`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A point in time, measured as the time elapsed since the clock's origin.
///
/// A plain `Duration` is used instead of `Instant` so that tests and the simulation can build
/// any point in time they need, and snapshots can be compared and printed.
pub type Timestamp = Duration;

/// A source of time that can also wait.
///
/// Waiting is part of the clock so that verified release (which polls the device) runs
/// instantly in tests with a [`ManualClock`].
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Waits for `duration` (a manual clock simply advances).
    fn sleep(&self, duration: Duration);
}

/// The real monotonic clock; its origin is the moment it was created.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock that moves only when told to, or when something sleeps on it.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<Duration>,
}

impl ManualClock {
    /// A manual clock at `start`.
    pub fn starting_at(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}
