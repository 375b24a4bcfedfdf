//! The progress bar of `sluice run`: shown on a terminal, with rate and ETA
//! when the source knows its size.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::{Observer, Stats};

/// Drives an indicatif bar from the pipeline's counters.
pub struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    last: Instant,
}

impl Progress {
    /// A progress display; nothing is drawn unless stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        Progress {
            bar: None,
            enabled: enabled && std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn start(&mut self, total: Option<u64>, _resumed_at: u64) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(t) => {
                let b = ProgressBar::new(t);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%  {msg}  ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            }
            None => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            }
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn progress(&mut self, stats: &Stats) {
        let Some(bar) = &self.bar else { return };
        if self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        if bar.length().is_some() {
            bar.set_position(stats.progress.load(Ordering::Relaxed));
        }
        let n = stats.records_in.load(Ordering::Relaxed);
        let secs = bar.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{n} records, {:.0}/s, {} dead-lettered",
            n as f64 / secs,
            stats.dead_lettered.load(Ordering::Relaxed)
        ));
    }
}
