//! Progress bars (indicatif) drawn from the library's [`Observer`] calls.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use coinfer_automl::{Observer, Phase};
use indicatif::{ProgressBar, ProgressStyle};

/// Progress bars (indicatif) for the library's [`Observer`] calls, one per phase.
#[derive(Default)]
pub(crate) struct Bars(Mutex<HashMap<Phase, ProgressBar>>);

impl Bars {
    fn bars(&self) -> MutexGuard<'_, HashMap<Phase, ProgressBar>> {
        // A bar map is valid whatever a panicking holder left: no bar is half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Observer for Bars {
    fn started(&self, phase: Phase, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} ({elapsed}) {prefix}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(phase.label());
        bar.enable_steady_tick(Duration::from_millis(500));
        self.bars().insert(phase, bar);
    }

    fn advanced(&self, phase: Phase, done: u64, total: u64, detail: &str) {
        if let Some(bar) = self.bars().get(&phase) {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_prefix(detail.to_string());
        }
    }

    fn finished(&self, phase: Phase) {
        if let Some(bar) = self.bars().remove(&phase) {
            bar.finish();
        }
    }

    fn note(&self, text: &str) {
        println!("{text}");
    }
}
