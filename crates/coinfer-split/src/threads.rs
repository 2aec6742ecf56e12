//! How many CPU threads inference and burn's flex backend may use.
//!
//! The inference form's CPU kernels ([`crate::InferenceNetwork`] on flex or ndarray) split
//! their large matrix products by columns over the rayon pool the calling code runs in (the
//! global pool, one thread per core, unless told otherwise); products below about a million
//! multiply-accumulates (a device half at batch 1) stay on one thread. Built with this crate's
//! `parallel` feature (burn-flex's `rayon` and `simd`), burn-flex also parallelises its own
//! ops (training, the burn-ops path) on that pool; without it (the default, so that the
//! workspace builds burn once) burn-flex runs single-threaded whatever the pool's size.
//!
//! A phone wants one thread per request, an edge server all its cores for a batch: [`Threads`]
//! is a pool of a chosen size to run work in, and [`Threads::init_global`] sizes the global pool
//! once per process (the CLI's `--threads`).
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_split::{zoo, Network, Threads};
//! use coinfer_split::inference::InferenceNetwork;
//!
//! let device = Device::flex();
//! let net = InferenceNetwork::from_network(&Network::new(zoo::resnet_mini(10), &device)?)?;
//! let one = Threads::new(1)?;
//! let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
//! let logits = one.install(|| net.logits(x))?;
//! assert_eq!(logits.dims(), [1, 10]);
//! # Ok::<(), coinfer_split::SplitError>(())
//! ```

use std::sync::Arc;

use crate::SplitError;

/// A rayon pool of a fixed number of threads that burn's CPU kernels run in (see the [module
/// docs](self)). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Threads {
    pool: Arc<rayon::ThreadPool>,
    count: usize,
}

impl Threads {
    /// A pool of `count` threads; fails on 0 or when the OS refuses the threads.
    pub fn new(count: usize) -> Result<Threads, SplitError> {
        check_count(count)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .build()
            .map_err(|e| SplitError::InvalidOption {
                field: "threads",
                reason: format!("cannot start {count} threads: {e}"),
            })?;
        Ok(Threads {
            pool: Arc::new(pool),
            count,
        })
    }

    /// The number of threads.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `work` with burn's kernels parallelised over this pool's threads.
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Sizes the process-wide pool that all work outside [`install`](Self::install) uses.
    /// Call it once, before the first tensor operation; a second call (or one after burn
    /// started the default pool) fails.
    pub fn init_global(count: usize) -> Result<(), SplitError> {
        check_count(count)?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .build_global()
            .map_err(|e| SplitError::InvalidOption {
                field: "threads",
                reason: format!("the global thread pool is already running: {e}"),
            })
    }

    /// Threads of the pool that work outside any [`install`](Self::install) runs on.
    pub fn global_count() -> usize {
        rayon::current_num_threads()
    }
}

fn check_count(count: usize) -> Result<(), SplitError> {
    if count == 0 {
        return Err(SplitError::InvalidOption {
            field: "threads",
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_rejected() {
        assert!(matches!(
            Threads::new(0),
            Err(SplitError::InvalidOption {
                field: "threads",
                ..
            })
        ));
        assert!(matches!(
            Threads::init_global(0),
            Err(SplitError::InvalidOption {
                field: "threads",
                ..
            })
        ));
    }

    #[test]
    fn work_runs_on_the_chosen_pool() {
        let pool = Threads::new(3).unwrap();
        assert_eq!(pool.count(), 3);
        assert_eq!(pool.install(rayon::current_num_threads), 3);
    }
}
