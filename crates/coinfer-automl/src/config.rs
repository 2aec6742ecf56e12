//! [`SearchConfig`]: every setting of a search, and the validation split it scores plans on.

use coinfer_agent::DdpgConfig;
use coinfer_data::ImageDataset;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::codecs::CodecSetup;
use crate::finetune::FineTuneConfig;

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
    /// Validation images (class-balanced, split off the training set) every plan is scored on.
    pub validation_images: usize,
    /// Codecs offered at each split.
    pub codecs: CodecSetup,
    /// Fine-tuning of the chosen plan.
    pub finetune: FineTuneConfig,
    /// Seed of the validation split (the agent has its own in `ddpg.seed`).
    pub seed: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            episodes: 300,
            ddpg: DdpgConfig {
                warmup_episodes: 50,
                ..DdpgConfig::default()
            },
            max_prune: 0.8,
            validation_images: 500,
            codecs: CodecSetup::default(),
            finetune: FineTuneConfig::default(),
            seed: 17,
        }
    }
}

impl SearchConfig {
    /// Checks every field (the sub-configs check their own).
    pub fn validate(&self) -> Result<(), AutomlError> {
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
        if !(0.0..1.0).contains(&self.max_prune) {
            return Err(AutomlError::InvalidConfig {
                field: "max_prune",
                reason: format!("must be in [0, 1), got {}", self.max_prune),
            });
        }
        self.ddpg.validate()?;
        self.codecs.validate()
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
