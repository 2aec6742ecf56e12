//! Hyper-parameters of the DDPG agent and their validation.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

/// Every hyper-parameter of a [`crate::Ddpg`] agent.
///
/// The defaults are AMC's (He et al., ECCV 2018): actor and critic with two hidden layers of 300
/// units, learning rates 1e-4 / 1e-3, τ = 0.01, batch 64, 100 warm-up episodes, truncated-normal
/// exploration with σ0 = 0.5 decaying ×0.95 per episode, discount 1. Missing fields in JSON take
/// their default. [`DdpgConfig::check`] names the first bad field; [`crate::Ddpg::new`] calls it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdpgConfig {
    /// Hidden layer widths, shared by actor and critic.
    pub hidden: Vec<usize>,
    /// Put a layer norm after every hidden linear layer (before the ReLU).
    pub layer_norm: bool,
    /// Adam learning rate of the actor.
    pub actor_lr: f64,
    /// Adam learning rate of the critic.
    pub critic_lr: f64,
    /// Polyak factor of the soft target update: `target ← τ·online + (1-τ)·target`.
    pub tau: f64,
    /// Transitions per gradient update (sampled uniformly, with replacement).
    pub batch_size: usize,
    /// Capacity of the replay ring buffer, in transitions.
    pub replay_capacity: usize,
    /// Episodes with uniform random actions and no learning, at the start of the search.
    pub warmup_episodes: usize,
    /// Standard deviation of the exploration noise in the first episode after warm-up.
    pub noise_sigma0: f32,
    /// Factor applied to the noise σ after every episode past warm-up.
    pub noise_decay: f32,
    /// Discount γ of the one-step critic target `r + γ·Q'(s', μ'(s'))` (AMC: 1).
    pub discount: f32,
    /// Decay of the reward baseline: `b ← decay·b + (1-decay)·mean(batch rewards)`.
    pub baseline_decay: f32,
    /// Gradient updates per transition of a finished episode (run when the episode ends).
    pub updates_per_step: usize,
    /// An episode that has not ended after this many steps is an error.
    pub max_episode_steps: usize,
    /// Seed of every random choice the agent makes (weights, exploration, sampling).
    pub seed: u64,
}

impl Default for DdpgConfig {
    fn default() -> Self {
        Self {
            hidden: vec![300, 300],
            layer_norm: false,
            actor_lr: 1e-4,
            critic_lr: 1e-3,
            tau: 0.01,
            batch_size: 64,
            replay_capacity: 2000,
            warmup_episodes: 100,
            noise_sigma0: 0.5,
            noise_decay: 0.95,
            discount: 1.0,
            baseline_decay: 0.95,
            updates_per_step: 1,
            max_episode_steps: 10_000,
            seed: 0,
        }
    }
}

/// Names a [`DdpgConfig`] field in [`AgentError::InvalidConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigField {
    /// [`DdpgConfig::hidden`]
    Hidden,
    /// [`DdpgConfig::actor_lr`]
    ActorLr,
    /// [`DdpgConfig::critic_lr`]
    CriticLr,
    /// [`DdpgConfig::tau`]
    Tau,
    /// [`DdpgConfig::batch_size`]
    BatchSize,
    /// [`DdpgConfig::replay_capacity`]
    ReplayCapacity,
    /// [`DdpgConfig::noise_sigma0`]
    NoiseSigma0,
    /// [`DdpgConfig::noise_decay`]
    NoiseDecay,
    /// [`DdpgConfig::discount`]
    Discount,
    /// [`DdpgConfig::baseline_decay`]
    BaselineDecay,
    /// [`DdpgConfig::updates_per_step`]
    UpdatesPerStep,
    /// [`DdpgConfig::max_episode_steps`]
    MaxEpisodeSteps,
}

impl ConfigField {
    /// The field's name as written in Rust and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::ActorLr => "actor_lr",
            Self::CriticLr => "critic_lr",
            Self::Tau => "tau",
            Self::BatchSize => "batch_size",
            Self::ReplayCapacity => "replay_capacity",
            Self::NoiseSigma0 => "noise_sigma0",
            Self::NoiseDecay => "noise_decay",
            Self::Discount => "discount",
            Self::BaselineDecay => "baseline_decay",
            Self::UpdatesPerStep => "updates_per_step",
            Self::MaxEpisodeSteps => "max_episode_steps",
        }
    }
}

impl fmt::Display for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn reject(field: ConfigField, value: impl fmt::Debug, reason: &'static str) -> AgentError {
    AgentError::InvalidConfig {
        field,
        value: format!("{value:?}"),
        reason,
    }
}

fn check(
    ok: bool,
    field: ConfigField,
    value: impl fmt::Debug,
    reason: &'static str,
) -> Result<(), AgentError> {
    if ok {
        Ok(())
    } else {
        Err(reject(field, value, reason))
    }
}

/// A [`DdpgConfig`] whose every field was checked ([`DdpgConfig::checked`], the only way to
/// make one): [`Ddpg::with_config`](crate::Ddpg::with_config) trusts it. Reads as a `DdpgConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedDdpgConfig(DdpgConfig);

impl CheckedDdpgConfig {
    /// The plain settings back.
    pub fn into_inner(self) -> DdpgConfig {
        self.0
    }
}

impl std::ops::Deref for CheckedDdpgConfig {
    type Target = DdpgConfig;

    fn deref(&self) -> &DdpgConfig {
        &self.0
    }
}

impl DdpgConfig {
    /// The checked form, or the first bad field (see [`check`](Self::check)).
    pub fn checked(self) -> Result<CheckedDdpgConfig, AgentError> {
        self.check()?;
        Ok(CheckedDdpgConfig(self))
    }

    /// Returns `Ok(())` when every field is usable, otherwise the first bad field (in declaration
    /// order) as [`AgentError::InvalidConfig`].
    pub fn check(&self) -> Result<(), AgentError> {
        use ConfigField as F;
        check(
            !self.hidden.is_empty() && self.hidden.iter().all(|&w| w > 0),
            F::Hidden,
            &self.hidden,
            "must list at least one layer, each with at least one unit",
        )?;
        let positive_lr = |lr: f64| lr.is_finite() && lr > 0.0;
        check(
            positive_lr(self.actor_lr),
            F::ActorLr,
            self.actor_lr,
            "must be finite and > 0",
        )?;
        check(
            positive_lr(self.critic_lr),
            F::CriticLr,
            self.critic_lr,
            "must be finite and > 0",
        )?;
        check(
            self.tau > 0.0 && self.tau <= 1.0,
            F::Tau,
            self.tau,
            "must be in (0, 1]",
        )?;
        check(
            self.batch_size > 0,
            F::BatchSize,
            self.batch_size,
            "must be at least 1",
        )?;
        check(
            self.replay_capacity > 0,
            F::ReplayCapacity,
            self.replay_capacity,
            "must be at least 1",
        )?;
        check(
            self.noise_sigma0.is_finite() && self.noise_sigma0 >= 0.0,
            F::NoiseSigma0,
            self.noise_sigma0,
            "must be finite and >= 0",
        )?;
        check(
            self.noise_decay > 0.0 && self.noise_decay <= 1.0,
            F::NoiseDecay,
            self.noise_decay,
            "must be in (0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&self.discount),
            F::Discount,
            self.discount,
            "must be in [0, 1]",
        )?;
        check(
            (0.0..1.0).contains(&self.baseline_decay),
            F::BaselineDecay,
            self.baseline_decay,
            "must be in [0, 1)",
        )?;
        check(
            self.updates_per_step > 0,
            F::UpdatesPerStep,
            self.updates_per_step,
            "must be at least 1",
        )?;
        check(
            self.max_episode_steps > 0,
            F::MaxEpisodeSteps,
            self.max_episode_steps,
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected_field(config: DdpgConfig) -> ConfigField {
        match config.check() {
            Err(AgentError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    macro_rules! rejects {
        ($name:ident, $field:ident = $value:expr, $expected:ident) => {
            #[test]
            fn $name() {
                let config = DdpgConfig {
                    $field: $value,
                    ..DdpgConfig::default()
                };
                assert_eq!(rejected_field(config), ConfigField::$expected);
            }
        };
    }

    #[test]
    fn defaults_are_amc_and_valid() {
        let config = DdpgConfig::default();
        assert!(config.check().is_ok());
        assert_eq!(config.hidden, vec![300, 300]);
        assert_eq!(
            (config.actor_lr, config.critic_lr, config.tau),
            (1e-4, 1e-3, 0.01)
        );
        assert_eq!((config.batch_size, config.warmup_episodes), (64, 100));
        assert_eq!(
            (config.noise_sigma0, config.noise_decay, config.discount),
            (0.5, 0.95, 1.0)
        );
    }

    #[test]
    fn json_round_trip_and_partial_json_take_defaults() {
        let config = DdpgConfig {
            hidden: vec![64, 32],
            seed: 7,
            ..DdpgConfig::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<DdpgConfig>(&json).unwrap(), config);
        let partial: DdpgConfig = serde_json::from_str(r#"{"tau": 0.5}"#).unwrap();
        assert_eq!(partial.tau, 0.5);
        assert_eq!(partial.batch_size, 64);
        assert!(serde_json::from_str::<DdpgConfig>(r#"{"tua": 0.5}"#).is_err());
    }

    #[test]
    fn error_message_names_field_and_value() {
        let config = DdpgConfig {
            tau: 2.0,
            ..DdpgConfig::default()
        };
        let message = config.check().unwrap_err().to_string();
        assert!(message.contains("DdpgConfig.tau = 2.0"), "{message}");
    }

    rejects!(empty_hidden, hidden = vec![], Hidden);
    rejects!(zero_width_hidden, hidden = vec![64, 0], Hidden);
    rejects!(zero_actor_lr, actor_lr = 0.0, ActorLr);
    rejects!(nan_actor_lr, actor_lr = f64::NAN, ActorLr);
    rejects!(negative_critic_lr, critic_lr = -1e-3, CriticLr);
    rejects!(infinite_critic_lr, critic_lr = f64::INFINITY, CriticLr);
    rejects!(zero_tau, tau = 0.0, Tau);
    rejects!(tau_above_one, tau = 1.5, Tau);
    rejects!(zero_batch, batch_size = 0, BatchSize);
    rejects!(zero_capacity, replay_capacity = 0, ReplayCapacity);
    rejects!(negative_sigma, noise_sigma0 = -0.1, NoiseSigma0);
    rejects!(nan_sigma, noise_sigma0 = f32::NAN, NoiseSigma0);
    rejects!(zero_noise_decay, noise_decay = 0.0, NoiseDecay);
    rejects!(noise_decay_above_one, noise_decay = 1.01, NoiseDecay);
    rejects!(negative_discount, discount = -0.5, Discount);
    rejects!(discount_above_one, discount = 1.5, Discount);
    rejects!(baseline_decay_one, baseline_decay = 1.0, BaselineDecay);
    rejects!(
        negative_baseline_decay,
        baseline_decay = -0.1,
        BaselineDecay
    );
    rejects!(zero_updates, updates_per_step = 0, UpdatesPerStep);
    rejects!(zero_max_steps, max_episode_steps = 0, MaxEpisodeSteps);
}
