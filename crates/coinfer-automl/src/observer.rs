//! [`Observer`]: how a running search tells its caller where it is.
//!
//! The pipeline reports each long phase as it starts, advances and ends, and a few one-line
//! notes (what was loaded, where results went). The CLI draws progress bars from these calls;
//! a program embedding the search may log them, or ignore them with [`Silent`].

/// A long step of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Training the backbone (steps).
    Backbone,
    /// Training the codec families (autoencoders).
    Codecs,
    /// The DDPG agent's episodes.
    Search,
    /// The baselines, one step each.
    Baselines,
    /// Re-ranking and fine-tuning the chosen plan.
    FineTune,
    /// The points of a regime sweep.
    Sweep,
    /// The method runs of a race (`race.rs`).
    Race,
}

impl Phase {
    /// A short label (`training backbone`, `DDPG search`, …).
    pub fn label(self) -> &'static str {
        match self {
            Phase::Backbone => "training backbone",
            Phase::Codecs => "training codecs",
            Phase::Search => "DDPG search",
            Phase::Baselines => "baselines",
            Phase::FineTune => "fine-tuning",
            Phase::Sweep => "sweep",
            Phase::Race => "race",
        }
    }
}

/// Receives the progress of a search. Every method has an empty default, so an observer
/// implements only what it shows. Methods take `&self` (progress bars and loggers are shared),
/// and an observer is `Send + Sync`: work that runs in parallel (the autoencoders of a split
/// point, re-ranked plans) reports from the thread that did it.
pub trait Observer: Send + Sync {
    /// `phase` starts; it has `total` steps (0 when not known yet).
    fn started(&self, phase: Phase, total: u64) {
        let _ = (phase, total);
    }

    /// `phase` has done `done` of `total` steps; `detail` says what the last one did.
    fn advanced(&self, phase: Phase, done: u64, total: u64, detail: &str) {
        let _ = (phase, done, total, detail);
    }

    /// `phase` has ended.
    fn finished(&self, phase: Phase) {
        let _ = phase;
    }

    /// A one-line note (what was loaded or trained, where results went).
    fn note(&self, text: &str) {
        let _ = text;
    }
}

/// An observer that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn note(&self, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
    }

    #[test]
    fn an_observer_implements_only_what_it_shows() {
        let log = Log::default();
        let observer: &dyn Observer = &log;
        observer.started(Phase::Search, 3);
        observer.advanced(Phase::Search, 1, 3, "episode 1");
        observer.note("hello");
        observer.finished(Phase::Search);
        assert_eq!(*log.0.lock().unwrap(), vec!["hello".to_string()]);
        assert_eq!(Phase::Codecs.label(), "training codecs");
    }
}
