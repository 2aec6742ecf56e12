//! Progress bars (indicatif) drawn from the library's [`Observer`] calls.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use coinfer_automl::{Observer, Phase};
use indicatif::{ProgressBar, ProgressStyle};

/// Progress bars (indicatif) for the library's [`Observer`] calls, one per phase.
#[derive(Default)]
pub(crate) struct Bars(RefCell<HashMap<Phase, ProgressBar>>);

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
        self.0.borrow_mut().insert(phase, bar);
    }

    fn advanced(&self, phase: Phase, done: u64, total: u64, detail: &str) {
        if let Some(bar) = self.0.borrow().get(&phase) {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_prefix(detail.to_string());
        }
    }

    fn finished(&self, phase: Phase) {
        if let Some(bar) = self.0.borrow_mut().remove(&phase) {
            bar.finish();
        }
    }

    fn note(&self, text: &str) {
        println!("{text}");
    }
}
