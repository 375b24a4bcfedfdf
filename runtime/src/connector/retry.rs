//! Backoff between retries of a transient connector error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::ConnectorLimits;

/// Exponential backoff: `retry_initial_ms`, doubled after each failure up
/// to `retry_max_ms`, reset by a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// Failures in a row.
    pub(crate) failures: u32,
    limit: u32,
}

impl Backoff {
    pub(crate) fn new(limits: &ConnectorLimits) -> Self {
        let initial = Duration::from_millis(limits.retry_initial_ms.max(1));
        Backoff {
            initial,
            max: Duration::from_millis(limits.retry_max_ms.max(limits.retry_initial_ms)),
            next: initial,
            failures: 0,
            limit: limits.max_retries,
        }
    }

    /// A success: the next failure waits `initial` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }

    /// Counts a failure; `None` when the retries are used up, else how
    /// long to wait.
    pub(crate) fn fail(&mut self) -> Option<Duration> {
        self.failures += 1;
        if self.limit > 0 && self.failures > self.limit {
            return None;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(wait)
    }
}

/// Sleeps `d`, waking early when `stop` is set; false when stopped.
pub(crate) fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(end - std::time::Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_and_gives_up_after_the_limit() {
        let limits = ConnectorLimits {
            retry_initial_ms: 100,
            retry_max_ms: 350,
            max_retries: 4,
            ..Default::default()
        };
        let mut b = Backoff::new(&limits);
        let waits: Vec<_> = (0..5).map(|_| b.fail().map(|d| d.as_millis())).collect();
        assert_eq!(
            waits,
            vec![Some(100), Some(200), Some(350), Some(350), None]
        );
        b.reset();
        assert_eq!(b.fail(), Some(Duration::from_millis(100)));
    }
}
