//! Which operations training runs on: coinfer's training kernels (the default on flex) or
//! burn's own ops. A process-wide choice, set once at start (the CLI's `--training-ops`); burn's
//! ops reproduce figures measured before the kernels existed, digit for digit.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The operations convolutions and batch norms run on during training (and in the module form
/// on flex); see the [crate docs](crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainingOps {
    /// coinfer's training kernels where they apply (flex devices), burn's ops elsewhere.
    #[default]
    Kernels,
    /// burn's own ops everywhere.
    Burn,
}

static BURN_OPS: AtomicBool = AtomicBool::new(false);

impl TrainingOps {
    /// Makes `self` the process-wide choice.
    pub fn set_global(self) {
        BURN_OPS.store(self == TrainingOps::Burn, Ordering::Relaxed);
    }

    /// The process-wide choice ([`TrainingOps::Kernels`] unless set).
    pub fn global() -> TrainingOps {
        if BURN_OPS.load(Ordering::Relaxed) {
            TrainingOps::Burn
        } else {
            TrainingOps::Kernels
        }
    }

    /// The name `FromStr` reads and `Display` writes.
    pub fn name(self) -> &'static str {
        match self {
            TrainingOps::Kernels => "kernels",
            TrainingOps::Burn => "burn",
        }
    }
}

impl fmt::Display for TrainingOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TrainingOps {
    type Err = ParseTrainingOpsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kernels" => Ok(TrainingOps::Kernels),
            "burn" => Ok(TrainingOps::Burn),
            other => Err(ParseTrainingOpsError(other.to_string())),
        }
    }
}

/// A training-ops name that is neither `kernels` nor `burn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("training_ops: `{0}` is neither `kernels` nor `burn`")]
pub struct ParseTrainingOpsError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for ops in [TrainingOps::Kernels, TrainingOps::Burn] {
            assert_eq!(ops.to_string().parse::<TrainingOps>().unwrap(), ops);
        }
        let err = "fast".parse::<TrainingOps>().unwrap_err().to_string();
        assert!(
            err.contains("training_ops") && err.contains("fast"),
            "{err}"
        );
    }
}
