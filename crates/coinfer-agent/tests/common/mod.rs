//! Settings shared by the agent's integration tests.

use coinfer_agent::DdpgConfig;

/// A small, fast-learning agent: two 64-unit layers, 20 warm-up episodes, four updates per
/// step.
pub fn small_config(seed: u64) -> DdpgConfig {
    DdpgConfig {
        hidden: vec![64, 64],
        warmup_episodes: 20,
        noise_decay: 0.99,
        updates_per_step: 4,
        seed,
        ..DdpgConfig::default()
    }
}
