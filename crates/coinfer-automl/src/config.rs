//! [`SearchConfig`]: every setting of a search, and the validation split it scores plans on.

use std::ops::Deref;

use coinfer_agent::{CheckedDdpgConfig, DdpgConfig};
use coinfer_data::ImageDataset;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::codecs::{CheckedCodecSetup, CodecSetup};
use crate::finetune::{FineTuneConfig, ThreeStepConfig};
use crate::refine::{CheckedRefineConfig, RefineConfig};
use coinfer_sparsity::PruneRecovery;

/// Default number of validation images every plan is scored on: enough that a one-point
/// tolerance is not decided by noise (a plan that loses 0.5 point with 15 disagreements on
/// 1,000 images has a standard error of 0.39 point; on 500 images, 0.55).
pub const DEFAULT_VALIDATION_IMAGES: usize = 1000;
/// The default seed of a search (its validation split, the backbone it trains, the agent): the
/// library's and the CLI's.
pub const DEFAULT_SEED: u64 = 1;
/// Default number of calibration images of pruning recovery.
pub const DEFAULT_CALIBRATION_IMAGES: usize = 256;

/// Every setting of a search, with defaults that follow AMC and the reference paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// DDPG episodes (one plan each).
    pub episodes: usize,
    /// The agent's hyper-parameters.
    pub ddpg: DdpgConfig,
    /// Largest fraction of filters a layer may lose.
    pub max_prune: f32,
    /// The part `[0, prune_dead_zone]` of every prune action's range that keeps all filters
    /// ([`SearchSpace::prune_dead_zone`](crate::space::SearchSpace::prune_dead_zone); 0, AMC's
    /// linear mapping, by default).
    pub prune_dead_zone: f32,
    /// Validation images (class-balanced, split off the training set) every plan is scored on.
    pub validation_images: usize,
    /// Codecs offered at each split.
    pub codecs: CodecSetup,
    /// Fine-tuning of the chosen plan (`epochs = 0` skips it; batch size and seed apply to
    /// the three steps).
    pub finetune: FineTuneConfig,
    /// The three steps of fine-tuning (device half, codec, joint) of a plan with a device
    /// half.
    pub three_step: ThreeStepConfig,
    /// Seed of the validation split (the agent has its own in `ddpg.seed`).
    pub seed: u64,
    /// How every pruned plan is repaired before it is scored (least-squares reconstruction of
    /// the layers that lost inputs + batch-norm re-estimation, by default).
    pub recovery: PruneRecovery,
    /// Training images (never validation or test ones) that recovery fits on.
    pub calibration_images: usize,
    /// Re-ranking: how many of the fastest plans that are faster than the search's answer
    /// and at most [`RERANK_SLACK`] beyond the accuracy tolerance get the three-step
    /// fine-tune the answer would get ([`three_step`](Self::three_step)) before the final
    /// choice (0: none; nothing either when `finetune.epochs` is 0). Only with
    /// [`Reward::FastestWithinTolerance`](crate::Reward::FastestWithinTolerance).
    pub rerank: usize,
    /// Local refinement of the answer after the agent (hill climbing from its best plans).
    pub refine: RefineConfig,
    /// Whether the search runs the baselines (every [`Baseline`](crate::Baseline)) on the same
    /// evaluator and reward, for its report's comparison.
    pub baselines: bool,
    /// Levels per layer of the exhaustive grid baseline (0 skips it; its size grows as
    /// `levels^layers`).
    pub exhaustive_levels: usize,
}

/// How far (fraction of accuracy) beyond the tolerance a plan may drop before fine-tuning and
/// still be re-ranked: three points, what three-step fine-tuning typically recovers.
pub const RERANK_SLACK: f64 = 0.03;

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            episodes: 300,
            ddpg: DdpgConfig {
                warmup_episodes: 50,
                seed: DEFAULT_SEED,
                ..DdpgConfig::default()
            },
            max_prune: 0.8,
            prune_dead_zone: 0.0,
            validation_images: DEFAULT_VALIDATION_IMAGES,
            codecs: CodecSetup::default(),
            finetune: FineTuneConfig::default(),
            three_step: ThreeStepConfig::default(),
            seed: DEFAULT_SEED,
            recovery: PruneRecovery::default(),
            calibration_images: DEFAULT_CALIBRATION_IMAGES,
            rerank: 3,
            refine: RefineConfig::default(),
            baselines: true,
            exhaustive_levels: 2,
        }
    }
}

impl SearchConfig {
    /// Reads a config file (JSON; absent fields take their defaults). Not checked: the
    /// builder checks it.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SearchConfig, AutomlError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(AutomlError::io(path))?;
        serde_json::from_str(&text).map_err(|e| AutomlError::Json {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// A [`SearchConfig`] whose every field was checked by [`SearchConfig::check`] (the only way to
/// make one): the search trusts it. Reads as a `SearchConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSearchConfig {
    config: SearchConfig,
    ddpg: CheckedDdpgConfig,
    codecs: CheckedCodecSetup,
    refine: CheckedRefineConfig,
}

impl Deref for CheckedSearchConfig {
    type Target = SearchConfig;

    fn deref(&self) -> &SearchConfig {
        &self.config
    }
}

impl CheckedSearchConfig {
    /// The checked codec setup.
    pub fn codecs(&self) -> &CheckedCodecSetup {
        &self.codecs
    }

    /// The checked agent settings.
    pub fn ddpg(&self) -> &CheckedDdpgConfig {
        &self.ddpg
    }

    /// The checked refinement settings.
    pub fn refine(&self) -> &CheckedRefineConfig {
        &self.refine
    }

    /// The plain settings back (to edit and check again).
    pub fn into_inner(self) -> SearchConfig {
        self.config
    }
}

impl SearchConfig {
    /// Checks every field, the sub-configs' too (`ddpg.*`, `codecs.*`, `finetune.*`), and
    /// returns the checked form the search runs on.
    ///
    /// ```
    /// use coinfer_automl::SearchConfig;
    ///
    /// let checked = SearchConfig::default().check()?;
    /// assert_eq!(checked.episodes, 300);
    /// let bad = SearchConfig { max_prune: 1.5, ..SearchConfig::default() };
    /// assert!(bad.check().unwrap_err().to_string().contains("max_prune"));
    /// # Ok::<(), coinfer_automl::AutomlError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the first bad field, or the agent's
    /// [`coinfer_agent::AgentError::InvalidConfig`] for `ddpg`.
    pub fn check(self) -> Result<CheckedSearchConfig, AutomlError> {
        if self.episodes == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "episodes",
                reason: "must be at least 1".into(),
            });
        }
        if self.validation_images < 10 {
            return Err(AutomlError::InvalidConfig {
                field: "validation_images",
                reason: format!(
                    "{} is too few to score a plan (at least 10)",
                    self.validation_images
                ),
            });
        }
        if !(0.0..1.0).contains(&self.prune_dead_zone) {
            return Err(AutomlError::InvalidConfig {
                field: "prune_dead_zone",
                reason: format!("must be in [0, 1), got {}", self.prune_dead_zone),
            });
        }
        if !(0.0..1.0).contains(&self.max_prune) {
            return Err(AutomlError::InvalidConfig {
                field: "max_prune",
                reason: format!("must be in [0, 1), got {}", self.max_prune),
            });
        }
        if self.recovery != PruneRecovery::None && self.calibration_images == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "calibration_images",
                reason: format!(
                    "recovery `{}` fits on calibration images: at least 1",
                    self.recovery
                ),
            });
        }
        self.finetune.check()?;
        self.three_step.check()?;
        let ddpg = self.ddpg.clone().checked()?;
        let codecs = self.codecs.clone().check()?;
        let refine = self.refine.check()?;
        Ok(CheckedSearchConfig {
            config: self,
            ddpg,
            codecs,
            refine,
        })
    }
}

impl FineTuneConfig {
    /// Checks the fields fine-tuning uses (none when `epochs` is 0): `finetune.batch_size` at
    /// least 1, `finetune.lr` positive and finite.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<(), AutomlError> {
        if self.epochs > 0 && self.batch_size == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "finetune.batch_size",
                reason: "must be at least 1".into(),
            });
        }
        if self.epochs > 0 && !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(AutomlError::InvalidConfig {
                field: "finetune.lr",
                reason: format!("must be positive and finite, got {}", self.lr),
            });
        }
        Ok(())
    }
}

/// `(training part, validation part)` of a training set: `validation_images` images drawn by
/// `seed`. The search scores plans on the validation part and trains codecs and fine-tunes on
/// the training part, so **train the backbone on the training part too** (same images and
/// seed): plans scored on images the backbone has memorised all look equally accurate.
pub fn split_validation(
    train: &ImageDataset,
    validation_images: usize,
    seed: u64,
) -> Result<(ImageDataset, ImageDataset), AutomlError> {
    let n = train.len();
    if validation_images == 0 || validation_images >= n {
        return Err(AutomlError::InvalidConfig {
            field: "validation_images",
            reason: format!(
                "{validation_images} validation images do not fit a {n}-image training set"
            ),
        });
    }
    let (validation, rest) = train.split(validation_images as f64 / n as f64, seed)?;
    Ok((rest, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(config: SearchConfig) -> &'static str {
        match config.check() {
            Err(AutomlError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn the_default_passes() {
        assert!(SearchConfig::default().check().is_ok());
    }

    #[test]
    fn config_files_written_before_budgets_still_load() {
        let old = r#"{"codecs": {"ae_epochs": 3}, "three_step": {"device_epochs": 2, "joint_epochs": 0}}"#;
        let config: SearchConfig = serde_json::from_str(old).unwrap();
        assert_eq!(config.codecs.ae_budget, coinfer_data::Budget::Epochs(3));
        assert_eq!(
            config.three_step.device_budget,
            coinfer_data::Budget::Epochs(2)
        );
        assert!(config.three_step.joint_budget.is_zero());
        let new = r#"{"codecs": {"ae_budget": "images:30000"}}"#;
        let config: SearchConfig = serde_json::from_str(new).unwrap();
        assert_eq!(
            config.codecs.ae_budget,
            coinfer_data::Budget::Images(30_000)
        );
        let zero = r#"{"codecs": {"ae_budget": "images:0"}}"#;
        let config: SearchConfig = serde_json::from_str(zero).unwrap();
        assert_eq!(rejected(config), "codecs.ae_budget");
    }

    #[test]
    fn zero_episodes_are_rejected() {
        let config = SearchConfig {
            episodes: 0,
            ..SearchConfig::default()
        };
        assert_eq!(rejected(config), "episodes");
    }

    #[test]
    fn too_few_validation_images_are_rejected() {
        let config = SearchConfig {
            validation_images: 9,
            ..SearchConfig::default()
        };
        assert_eq!(rejected(config), "validation_images");
    }

    #[test]
    fn max_prune_outside_0_1_is_rejected() {
        for max_prune in [-0.1, 1.0, f32::NAN] {
            let config = SearchConfig {
                max_prune,
                ..SearchConfig::default()
            };
            assert_eq!(rejected(config), "max_prune");
        }
    }

    #[test]
    fn recovery_without_calibration_images_is_rejected() {
        let config = SearchConfig {
            calibration_images: 0,
            ..SearchConfig::default()
        };
        assert_eq!(rejected(config), "calibration_images");
        let none = SearchConfig {
            calibration_images: 0,
            recovery: PruneRecovery::None,
            ..SearchConfig::default()
        };
        assert!(none.check().is_ok());
    }

    #[test]
    fn a_zero_finetune_batch_is_rejected() {
        let mut config = SearchConfig::default();
        config.finetune.batch_size = 0;
        assert_eq!(rejected(config), "finetune.batch_size");
    }

    #[test]
    fn a_non_positive_finetune_lr_is_rejected() {
        for lr in [0.0, -1.0, f64::INFINITY] {
            let mut config = SearchConfig::default();
            config.finetune.lr = lr;
            assert_eq!(rejected(config), "finetune.lr");
        }
    }

    #[test]
    fn a_bad_codec_setup_is_rejected_by_its_field() {
        let mut config = SearchConfig::default();
        config.codecs.ae_kernel = 2;
        assert_eq!(rejected(config), "codecs.ae_kernel");
    }

    #[test]
    fn a_bad_agent_config_is_rejected() {
        let mut config = SearchConfig::default();
        config.ddpg.batch_size = 0;
        assert!(matches!(config.check(), Err(AutomlError::Agent(_))));
    }
}
