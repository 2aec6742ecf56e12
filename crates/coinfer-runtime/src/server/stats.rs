//! [`ServerStats`]: the counters of a running server, live and as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a running server (a snapshot from [`ServerHandle::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Connections without Hello closed to make room for newer ones (`max_unauthenticated`).
    pub evicted: u64,
    /// Connections closed because a frame or the Hello missed its deadline, or they idled.
    pub timed_out: u64,
    /// Frames refused on their header: over the batch cap or the global byte budget.
    pub over_budget: u64,
    /// Connections closed in the TLS handshake (a certificate refused, not TLS at all).
    pub tls_refused: u64,
    /// Result frames sent.
    pub results: u64,
    /// Error frames sent.
    pub errors: u64,
    /// Forward passes of the edge half (fewer than `results` when batching merges requests).
    pub forward_passes: u64,
    /// Largest number of requests merged into one forward pass.
    pub max_batch_seen: u64,
    /// Connection threads that panicked (a bug: input never makes the server panic).
    pub panics: u64,
}

/// Live counters shared by the server's threads.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(super) connections: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) over_budget: AtomicU64,
    pub(super) tls_refused: AtomicU64,
    pub(super) results: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(crate) forward_passes: AtomicU64,
    pub(crate) max_batch_seen: AtomicU64,
    pub(super) panics: AtomicU64,
}

impl Stats {
    pub(super) fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            connections: get(&self.connections),
            refused: get(&self.refused),
            evicted: get(&self.evicted),
            timed_out: get(&self.timed_out),
            over_budget: get(&self.over_budget),
            tls_refused: get(&self.tls_refused),
            results: get(&self.results),
            errors: get(&self.errors),
            forward_passes: get(&self.forward_passes),
            max_batch_seen: get(&self.max_batch_seen),
            panics: get(&self.panics),
        }
    }
}
