//! Reward functions of the search (design §1).

use serde::{Deserialize, Serialize};

use crate::AutomlError;

/// How an evaluated plan is scored; higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reward {
    /// AMC's resource-aware reward `-error · ln(T / 1 µs)`: both a lower error and a lower
    /// latency raise it, and a relative latency gain is worth the same at any scale. (The
    /// latency is taken in microseconds so that the logarithm stays positive for every
    /// realistic plan.)
    #[default]
    ErrorLogLatency,
    /// Accuracy subject to `T ≤ budget_s`: the environment clips actions so the budget is
    /// always reachable, and a plan over budget (possible only when no plan meets it) scores its
    /// accuracy minus the relative overshoot.
    AccuracyUnderBudget {
        /// The end-to-end latency budget, seconds.
        budget_s: f64,
    },
}

impl Reward {
    /// Checks the parameters (a positive finite budget).
    pub fn check(&self) -> Result<(), AutomlError> {
        if let Reward::AccuracyUnderBudget { budget_s } = *self
            && !(budget_s.is_finite() && budget_s > 0.0)
        {
            return Err(AutomlError::InvalidConfig {
                field: "reward.budget_s",
                reason: format!("must be a positive number of seconds, got {budget_s}"),
            });
        }
        Ok(())
    }

    /// The reward of a plan with top-1 `accuracy` (0–1) and end-to-end latency `latency_s`.
    pub fn score(&self, accuracy: f32, latency_s: f64) -> f32 {
        match *self {
            Reward::ErrorLogLatency => {
                let micros = (latency_s * 1e6).max(1.0);
                (-(1.0 - f64::from(accuracy)) * micros.ln()) as f32
            }
            Reward::AccuracyUnderBudget { budget_s } => {
                if latency_s <= budget_s {
                    accuracy
                } else {
                    accuracy - (latency_s / budget_s - 1.0) as f32
                }
            }
        }
    }

    /// The latency budget, if this reward has one.
    pub fn budget_s(&self) -> Option<f64> {
        match *self {
            Reward::ErrorLogLatency => None,
            Reward::AccuracyUnderBudget { budget_s } => Some(budget_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_latency_prefers_faster_and_more_accurate() {
        let r = Reward::ErrorLogLatency;
        assert!(r.score(0.9, 1e-3) > r.score(0.9, 2e-3));
        assert!(r.score(0.91, 1e-3) > r.score(0.9, 1e-3));
        assert!(r.score(0.9, 1e-3) < 0.0);
    }

    #[test]
    fn budget_reward_is_accuracy_within_budget_and_penalised_over_it() {
        let r = Reward::AccuracyUnderBudget { budget_s: 0.01 };
        assert_eq!(r.score(0.8, 0.005), 0.8);
        assert!(r.score(0.8, 0.02) < 0.0);
    }

    #[test]
    fn non_positive_budget_is_rejected() {
        for budget_s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Reward::AccuracyUnderBudget { budget_s }
                .check()
                .unwrap_err();
            assert!(err.to_string().contains("reward.budget_s"), "{err}");
        }
        Reward::ErrorLogLatency.check().unwrap();
    }
}
