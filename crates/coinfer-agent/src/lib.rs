//! A DDPG agent for sequential continuous decisions in `[0, 1]`, run the way AMC (He et al.,
//! ECCV 2018) searches per-layer compression ratios: one action per step, the episode's final
//! reward given to every step, truncated-normal exploration after a random warm-up.
//!
//! The crate knows nothing about the problem it searches: anything that implements
//! [`Environment`] (a state vector in, an action in `[0, 1]` out, a reward when the episode ends)
//! can be searched. Networks are burn modules on whatever [`burn::prelude::Device`] is passed in;
//! runs are reproducible from [`DdpgConfig::seed`] and can be checkpointed and resumed exactly.
//!
//! ```
//! use burn::prelude::Device;
//! use coinfer_agent::{Ddpg, DdpgConfig, Environment, Step};
//!
//! /// Pick two numbers; the reward is highest when they are 0.2 and 0.7.
//! struct TwoChoices { step: usize, err: f32 }
//!
//! impl Environment for TwoChoices {
//!     type Error = std::convert::Infallible;
//!     fn state_dim(&self) -> usize { 2 }
//!     fn reset(&mut self) -> Result<Vec<f32>, Self::Error> {
//!         (self.step, self.err) = (0, 0.0);
//!         Ok(vec![1.0, 0.0])
//!     }
//!     fn step(&mut self, action: f32) -> Result<Step, Self::Error> {
//!         self.err += (action - [0.2, 0.7][self.step]).powi(2);
//!         self.step += 1;
//!         let done = self.step == 2;
//!         Ok(Step::new(vec![0.0, 1.0], 1.0 - self.err, done, action))
//!     }
//! }
//!
//! let config = DdpgConfig { hidden: vec![16, 16], batch_size: 8, warmup_episodes: 3, ..DdpgConfig::default() };
//! let mut agent = Ddpg::new(config, 2, &Device::flex())?;
//! let mut env = TwoChoices { step: 0, err: 0.0 };
//! agent.train(&mut env, 5, |outcome| println!("episode {}: {:.3}", outcome.episode, outcome.reward))?;
//! let best = agent.best().expect("five episodes ran");
//! assert_eq!(best.actions.len(), 2);
//! # Ok::<(), coinfer_agent::AgentError>(())
//! ```
//!
//! Map of the crate (every item is exported at the root): `env.rs` (the [`Environment`]
//! trait), `config.rs` ([`DdpgConfig`] and its check), `ddpg.rs` (the agent and its search
//! loop), `replay.rs` ([`ReplayBuffer`]), `noise.rs` ([`TruncatedNormal`] exploration),
//! `baseline.rs` ([`MovingAverage`] reward baseline), `checkpoint.rs` (save/resume),
//! `error.rs` ([`AgentError`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod baseline;
mod checkpoint;
mod cmaes;
mod config;
mod ddpg;
mod env;
mod error;
mod network;
mod noise;
mod replay;
mod target;

pub use baseline::MovingAverage;
pub use cmaes::{CheckedCmaEsConfig, CmaEs, CmaEsConfig};
pub use config::{CheckedDdpgConfig, ConfigField, DdpgConfig};
pub use ddpg::{BestEpisode, Ddpg, EpisodeOutcome, Rollout};
pub use env::{Environment, Step};
pub use error::AgentError;
pub use noise::{TruncatedNormal, sigma_at};
pub use replay::{Batch, ReplayBuffer, Transition};
