//! Reward functions of the search (design §1).

use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::{ConfidenceBasis, DecisionConfidence, Evaluation, PairedDrop};

/// Default tolerance of [`Reward::FastestWithinTolerance`]: one point of top-1 accuracy.
pub const DEFAULT_TOLERANCE: f32 = 0.01;
/// Default one-sided confidence of [`Reward::FastestWithinTolerance`]'s bound on the drop.
pub const DEFAULT_CONFIDENCE: f32 = 0.9;
/// What a plan whose accuracy drop is over the tolerance pays on top of its latency term:
/// `INFEASIBLE_PENALTY` nats (a factor e⁵ ≈ 148 in latency, more than separates any two
/// realistic plans) plus [`PENALTY_PER_POINT`] per point of excess, so that every feasible plan
/// outranks every infeasible one while the agent still sees which infeasible plans are closer.
const INFEASIBLE_PENALTY: f64 = 5.0;
/// See [`INFEASIBLE_PENALTY`].
const PENALTY_PER_POINT: f64 = 10.0;

/// How an evaluated plan is scored; higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reward {
    /// What users ask for: the fastest plan whose top-1 accuracy stays within `tolerance` of
    /// the backbone's. The drop is decided by a **paired comparison** against the backbone on
    /// the same validation images (only the images on which the two disagree carry
    /// information): a plan is feasible when the one-sided `confidence` upper bound of its
    /// mean drop (normal approximation of the paired differences) is at most `tolerance`.
    /// Feasible plans score `-ln(T / 1 µs)`; infeasible ones pay a penalty that ranks them
    /// below every feasible plan.
    FastestWithinTolerance {
        /// Largest accepted drop of top-1 accuracy, as a fraction (0.01 = one point).
        tolerance: f32,
        /// One-sided confidence of the bound on the drop, in (0, 1) (0.9 by default).
        confidence: f32,
    },
    /// AMC's resource-aware reward `-error · ln(T / 1 µs)`: both a lower error and a lower
    /// latency raise it, and a relative latency gain is worth the same at any scale. (The
    /// latency is taken in microseconds so that the logarithm stays positive for every
    /// realistic plan.)
    ErrorLogLatency,
    /// Accuracy subject to `T ≤ budget_s`: the environment clips actions so the budget is
    /// always reachable, and a plan over budget (possible only when no plan meets it) scores its
    /// accuracy minus the relative overshoot.
    AccuracyUnderBudget {
        /// The end-to-end latency budget, seconds.
        budget_s: f64,
    },
}

impl std::str::FromStr for Reward {
    type Err = AutomlError;

    /// `within-tolerance[:POINTS]` (1 point by default), `error-log-latency` or
    /// `budget:MILLISECONDS`.
    fn from_str(text: &str) -> Result<Reward, AutomlError> {
        let (kind, value) = match text.split_once(':') {
            Some((kind, value)) => {
                let value: f64 = value.parse().map_err(|_| AutomlError::InvalidConfig {
                    field: "reward",
                    reason: format!("`{value}` in `{text}` is not a number"),
                })?;
                (kind, Some(value))
            }
            None => (text, None),
        };
        let points = value.map_or(100.0 * DEFAULT_TOLERANCE, |v| v as f32);
        let budget_ms = value.filter(|_| kind == "budget");
        Reward::from_options(kind, points, budget_ms)
    }
}

impl Default for Reward {
    fn default() -> Self {
        Reward::within_tolerance(DEFAULT_TOLERANCE)
    }
}

impl Reward {
    /// [`FastestWithinTolerance`](Self::FastestWithinTolerance) with the default confidence.
    pub fn within_tolerance(tolerance: f32) -> Reward {
        Reward::FastestWithinTolerance {
            tolerance,
            confidence: DEFAULT_CONFIDENCE,
        }
    }

    /// The reward named `kind` (`within-tolerance`, `error-log-latency` or `budget`) with its
    /// parameter: the tolerance in accuracy points, or the budget in milliseconds (required
    /// for `budget`). Checked.
    ///
    /// ```
    /// use coinfer_automl::Reward;
    ///
    /// assert_eq!(Reward::from_options("within-tolerance", 1.0, None)?, Reward::within_tolerance(0.01));
    /// assert!(Reward::from_options("budget", 1.0, None).is_err());
    /// assert_eq!("budget:10.8".parse::<Reward>()?, Reward::AccuracyUnderBudget { budget_s: 0.0108 });
    /// # Ok::<(), coinfer_automl::AutomlError>(())
    /// ```
    pub fn from_options(
        kind: &str,
        tolerance_points: f32,
        budget_ms: Option<f64>,
    ) -> Result<Reward, AutomlError> {
        // A budget given with another reward is still a setting the user typed: refuse a bad one.
        if let Some(ms) = budget_ms
            && !(ms.is_finite() && ms > 0.0)
        {
            return Err(AutomlError::InvalidConfig {
                field: "reward.budget_s",
                reason: format!("must be a positive number of milliseconds, got {ms}"),
            });
        }
        let reward = match (kind, budget_ms) {
            ("within-tolerance", _) => Reward::within_tolerance(tolerance_points / 100.0),
            ("error-log-latency", _) => Reward::ErrorLogLatency,
            ("budget", Some(ms)) => Reward::AccuracyUnderBudget { budget_s: ms / 1e3 },
            ("budget", None) => {
                return Err(AutomlError::InvalidConfig {
                    field: "reward.budget_s",
                    reason: "the `budget` reward needs a budget (--budget-ms)".into(),
                });
            }
            (other, _) => {
                return Err(AutomlError::InvalidConfig {
                    field: "reward",
                    reason: format!(
                        "unknown reward `{other}` (within-tolerance, error-log-latency or budget)"
                    ),
                });
            }
        };
        reward.check()?;
        Ok(reward)
    }

    /// Checks the parameters (a positive finite budget; a tolerance in [0, 1); a confidence
    /// in (0, 1)).
    pub fn check(&self) -> Result<(), AutomlError> {
        match *self {
            Reward::AccuracyUnderBudget { budget_s }
                if !(budget_s.is_finite() && budget_s > 0.0) =>
            {
                Err(AutomlError::InvalidConfig {
                    field: "reward.budget_s",
                    reason: format!("must be a positive number of seconds, got {budget_s}"),
                })
            }
            Reward::FastestWithinTolerance { tolerance, .. }
                if !(0.0..1.0).contains(&tolerance) =>
            {
                Err(AutomlError::InvalidConfig {
                    field: "reward.tolerance",
                    reason: format!("must be a fraction in [0, 1), got {tolerance}"),
                })
            }
            Reward::FastestWithinTolerance { confidence, .. }
                if !(confidence > 0.0 && confidence < 1.0) =>
            {
                Err(AutomlError::InvalidConfig {
                    field: "reward.confidence",
                    reason: format!("must be in (0, 1), got {confidence}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The reward of an evaluated plan.
    pub fn score(&self, evaluation: &Evaluation) -> f32 {
        self.score_parts(
            evaluation.accuracy,
            evaluation.latency.total,
            &evaluation.paired,
        )
    }

    /// The paired comparison's [`DecisionConfidence`] under this reward: at its confidence
    /// and against its tolerance ([`DEFAULT_CONFIDENCE`] and no tolerance for the other
    /// rewards).
    pub fn confidence_of(&self, paired: &PairedDrop, basis: ConfidenceBasis) -> DecisionConfidence {
        match *self {
            Reward::FastestWithinTolerance {
                tolerance,
                confidence,
            } => paired.confidence(basis, confidence, Some(tolerance)),
            _ => paired.confidence(basis, DEFAULT_CONFIDENCE, None),
        }
    }

    /// Whether a plan meets the reward's accuracy requirement (always true for the rewards
    /// that trade accuracy against latency instead).
    pub fn is_feasible(&self, evaluation: &Evaluation) -> bool {
        match *self {
            Reward::FastestWithinTolerance {
                tolerance,
                confidence,
            } => evaluation.paired.upper_bound(confidence) <= f64::from(tolerance),
            Reward::AccuracyUnderBudget { budget_s } => evaluation.latency.total <= budget_s,
            Reward::ErrorLogLatency => true,
        }
    }

    /// The reward of a plan with top-1 `accuracy` (0–1), end-to-end latency `latency_s` and
    /// paired comparison `paired` against the backbone.
    pub fn score_parts(&self, accuracy: f32, latency_s: f64, paired: &PairedDrop) -> f32 {
        match *self {
            Reward::FastestWithinTolerance {
                tolerance,
                confidence,
            } => {
                let speed = -(latency_s * 1e6).max(1.0).ln();
                let excess = paired.upper_bound(confidence) - f64::from(tolerance);
                if excess <= 0.0 {
                    speed as f32
                } else {
                    (speed - INFEASIBLE_PENALTY - PENALTY_PER_POINT * 100.0 * excess) as f32
                }
            }
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
            Reward::AccuracyUnderBudget { budget_s } => Some(budget_s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME: PairedDrop = PairedDrop {
        lost: 0,
        gained: 0,
        images: 1000,
    };

    #[test]
    fn error_log_latency_prefers_faster_and_more_accurate() {
        let r = Reward::ErrorLogLatency;
        assert!(r.score_parts(0.9, 1e-3, &SAME) > r.score_parts(0.9, 2e-3, &SAME));
        assert!(r.score_parts(0.91, 1e-3, &SAME) > r.score_parts(0.9, 1e-3, &SAME));
        assert!(r.score_parts(0.9, 1e-3, &SAME) < 0.0);
    }

    #[test]
    fn budget_reward_is_accuracy_within_budget_and_penalised_over_it() {
        let r = Reward::AccuracyUnderBudget { budget_s: 0.01 };
        assert_eq!(r.score_parts(0.8, 0.005, &SAME), 0.8);
        assert!(r.score_parts(0.8, 0.02, &SAME) < 0.0);
    }

    #[test]
    fn within_tolerance_ranks_every_feasible_plan_above_every_infeasible_one() {
        let r = Reward::within_tolerance(0.01);
        // 2 of 1,000 images lost, none gained: bound ≈ 0.2 % + 1.28 · 0.14 % < 1 %.
        let close = PairedDrop {
            lost: 2,
            gained: 0,
            images: 1000,
        };
        // 40 lost: a 4-point drop.
        let far = PairedDrop {
            lost: 40,
            gained: 0,
            images: 1000,
        };
        let slow_ok = r.score_parts(0.85, 0.200, &close);
        let fast_bad = r.score_parts(0.81, 0.010, &far);
        assert!(slow_ok > fast_bad, "{slow_ok} vs {fast_bad}");
        // Among feasible plans the faster wins whatever the accuracy.
        assert!(r.score_parts(0.85, 0.010, &close) > r.score_parts(0.86, 0.011, &SAME));
        // Among infeasible plans the smaller excess wins at equal latency.
        let nearer = PairedDrop {
            lost: 20,
            gained: 0,
            images: 1000,
        };
        assert!(r.score_parts(0.83, 0.01, &nearer) > r.score_parts(0.81, 0.01, &far));
    }

    #[test]
    fn within_tolerance_is_decided_by_the_paired_bound_not_the_point_estimate() {
        let r = Reward::within_tolerance(0.01);
        // 60 lost and 52 gained: mean drop 0.8 point, but disagreement on 112 images makes
        // the 90 % bound ≈ 0.8 + 1.28 · 1.06 ≈ 2.2 points: not within tolerance.
        let noisy = PairedDrop {
            lost: 60,
            gained: 52,
            images: 1000,
        };
        assert!(noisy.mean() < 0.01);
        assert!(noisy.upper_bound(0.9) > 0.01);
        assert!(r.score_parts(0.8, 0.01, &noisy) < r.score_parts(0.8, 1.0, &SAME));
        // A smaller drop (0.4 point) with little disagreement is accepted:
        // 0.4 + 1.28 · 0.2 ≈ 0.66 point.
        let clean = PairedDrop {
            lost: 4,
            gained: 0,
            images: 1000,
        };
        assert!(
            clean.upper_bound(0.9) <= 0.01 + 1e-9,
            "{}",
            clean.upper_bound(0.9)
        );
    }

    #[test]
    fn bad_tolerance_and_confidence_are_rejected() {
        for tolerance in [-0.1, 1.0, f32::NAN] {
            let err = Reward::within_tolerance(tolerance).check().unwrap_err();
            assert!(err.to_string().contains("reward.tolerance"), "{err}");
        }
        for confidence in [0.0, 1.0, f32::NAN] {
            let err = Reward::FastestWithinTolerance {
                tolerance: 0.01,
                confidence,
            }
            .check()
            .unwrap_err();
            assert!(err.to_string().contains("reward.confidence"), "{err}");
        }
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
