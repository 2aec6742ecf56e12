//! [`SplitPlan`]: the contract between the search and deployment (design §2).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use std::sync::Arc;

use coinfer_codec::{AutoencoderCodec, CodecId, SharedCodec};

use crate::input_codecs::codec_for_input;
use coinfer_data::Normalization;
use coinfer_profile::Breakdown;
use coinfer_sparsity::PruneRecovery;

use crate::finetune::StepReport;
use coinfer_split::Network;
use serde::{Deserialize, Serialize};

use crate::AutomlError;

/// Where a deployed plan's weights live (paths relative to the plan file's folder) and their
/// digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanArtifacts {
    /// The pruned, fine-tuned device half (`Network::save` format).
    pub device: String,
    /// The edge half.
    pub edge: String,
    /// The autoencoder weights, for a learned codec.
    pub codec: Option<String>,
    /// `Network::digest` of the device half.
    pub device_digest: String,
    /// `Network::digest` of the edge half.
    pub edge_digest: String,
}

/// The chosen way to run a network across device and edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Name of the backbone's spec.
    pub model: String,
    /// `Network::digest` of the trained, unpruned backbone the plan was searched on.
    pub backbone_digest: String,
    /// Blocks `[0, split)` run on the device.
    pub split: usize,
    /// Block index of each pruned device layer.
    pub pruned_blocks: Vec<usize>,
    /// Fraction of filters removed from each of those layers.
    pub prune_ratios: Vec<f32>,
    /// Filters kept by each of those layers.
    pub kept_channels: Vec<usize>,
    /// The feature codec.
    pub codec: CodecId,
    /// Payload bits per sample.
    pub payload_bits: u64,
    /// Validation accuracy during the search (before fine-tuning).
    pub search_accuracy: f32,
    /// Test accuracy after fine-tuning, with the real codec in the loop.
    pub test_accuracy: Option<f32>,
    /// Predicted latency breakdown, seconds.
    pub predicted: Breakdown,
    /// Reward the plan was chosen with.
    pub reward: f32,
    /// Names of the device, link and edge profiles the prediction used.
    pub profiles: [String; 3],
    /// Input normalisation the backbone was trained with (the device applies it).
    pub normalization: Normalization,
    /// The exported weights, once the plan is deployed to a folder.
    pub artifacts: Option<PlanArtifacts>,
    /// How the pruned device layers were repaired when the plan was scored (plans written
    /// before recovery existed were scored without: `none`).
    #[serde(default = "recovery_before_it_existed")]
    pub recovery: PruneRecovery,
    /// Test accuracy around each step of the three-step fine-tuning (empty when the plan was
    /// not fine-tuned that way).
    #[serde(default)]
    pub fine_tuning: Vec<StepReport>,
}

/// A plan's parts, loaded and checked, ready to serve.
pub struct DeployedPlan {
    /// The plan.
    pub plan: SplitPlan,
    /// The device half.
    pub device: Network,
    /// The edge half.
    pub edge: Network,
    /// The codec (shared between the server's connections).
    pub codec: SharedCodec,
}

impl SplitPlan {
    /// A 64-bit fingerprint (hex) of everything that must agree between device and edge:
    /// split, codec, payload size and the halves' weight digests.
    pub fn digest(&self) -> String {
        let artifacts = self
            .artifacts
            .as_ref()
            .map(|a| format!("{}:{}", a.device_digest, a.edge_digest))
            .unwrap_or_default();
        let text = format!(
            "{}|{}|{}|{:?}|{}|{}|{artifacts}",
            self.model,
            self.backbone_digest,
            self.split,
            self.kept_channels,
            self.codec,
            self.payload_bits
        );
        coinfer_split::fingerprint(text.as_bytes())
    }

    /// Writes the plan as pretty JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), AutomlError> {
        let path = path.as_ref();
        let json = serde_json::to_string_pretty(self).map_err(|e| AutomlError::Json {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, json).map_err(AutomlError::io(path))
    }

    /// Reads a plan written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<SplitPlan, AutomlError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(AutomlError::io(path))?;
        serde_json::from_str(&text).map_err(|e| AutomlError::Json {
            path: path.to_path_buf(),
            reason: format!("not a split plan: {e}"),
        })
    }

    /// Loads the halves and the codec of a plan saved at `plan_path`, checking the weight
    /// digests recorded in the plan.
    pub fn deploy(
        plan_path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<DeployedPlan, AutomlError> {
        let plan_path = plan_path.as_ref();
        let plan = SplitPlan::load(plan_path)?;
        let folder = plan_path.parent().unwrap_or(Path::new("."));
        let artifacts = plan.artifacts.clone().ok_or_else(|| AutomlError::Json {
            path: plan_path.to_path_buf(),
            reason: "the plan has no exported weights (artifacts)".into(),
        })?;
        let load = |relative: &str, digest: &str| -> Result<Network, AutomlError> {
            let path: PathBuf = folder.join(relative);
            let network = Network::load(&path, device)?;
            if network.digest() != digest {
                return Err(AutomlError::Json {
                    path,
                    reason: format!(
                        "weights digest {} does not match the plan's {digest}",
                        network.digest()
                    ),
                });
            }
            Ok(network.valid())
        };
        let device_half = load(&artifacts.device, &artifacts.device_digest)?;
        let edge_half = load(&artifacts.edge, &artifacts.edge_digest)?;
        // The plan's split must be the one the halves were cut at, and the halves must fit.
        let device_blocks = device_half.spec().blocks.len();
        let edge_blocks = edge_half.spec().blocks.len();
        if plan.split != device_blocks || edge_blocks == 0 {
            return Err(AutomlError::Json {
                path: plan_path.to_path_buf(),
                reason: format!(
                    "split {} does not fit the exported halves ({device_blocks} device blocks, \
                     {edge_blocks} edge blocks)",
                    plan.split
                ),
            });
        }
        let device_out = device_half.spec().shapes()?.last().copied();
        if device_out != Some(edge_half.spec().input) {
            return Err(AutomlError::Json {
                path: plan_path.to_path_buf(),
                reason: format!(
                    "the edge half expects {:?} but the device half produces {device_out:?}",
                    edge_half.spec().input
                ),
            });
        }
        let codec: SharedCodec = match (plan.codec, &artifacts.codec) {
            (CodecId::Autoencoder { .. }, Some(relative)) => {
                Arc::new(AutoencoderCodec::load(&folder.join(relative), device)?)
            }
            (CodecId::Autoencoder { .. }, None) => {
                return Err(AutomlError::Json {
                    path: plan_path.to_path_buf(),
                    reason: format!("codec {} needs autoencoder weights", plan.codec),
                });
            }
            (id, _) => codec_for_input(id, &plan.normalization).map_err(|e| AutomlError::Json {
                path: plan_path.to_path_buf(),
                reason: e.to_string(),
            })?,
        };
        if codec.id() != plan.codec {
            return Err(AutomlError::Json {
                path: plan_path.to_path_buf(),
                reason: format!(
                    "codec file holds {} but the plan says {}",
                    codec.id(),
                    plan.codec
                ),
            });
        }
        Ok(DeployedPlan {
            plan,
            device: device_half,
            edge: edge_half,
            codec,
        })
    }
}

fn recovery_before_it_existed() -> PruneRecovery {
    PruneRecovery::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(codec: CodecId) -> SplitPlan {
        SplitPlan {
            model: "resnet-mini".into(),
            backbone_digest: "abc".into(),
            split: 2,
            pruned_blocks: vec![0, 1],
            prune_ratios: vec![0.25, 0.5],
            kept_channels: vec![12, 16],
            codec,
            payload_bits: 1000,
            search_accuracy: 0.9,
            test_accuracy: Some(0.88),
            predicted: Breakdown::default(),
            reward: -0.3,
            profiles: ["d".into(), "l".into(), "e".into()],
            normalization: Normalization {
                mean: vec![0.5],
                std: vec![0.25],
            },
            artifacts: None,
            recovery: PruneRecovery::Reconstruct,
            fine_tuning: Vec::new(),
        }
    }

    /// Plans written before the autoencoder's kernel and stride were recorded have neither
    /// key: they load as the 1×1, stride-1 autoencoders they were searched with, with the
    /// same digest.
    #[test]
    fn a_plan_without_kernel_and_stride_still_loads() {
        let new = plan(CodecId::autoencoder(4, 2));
        let mut json: serde_json::Value = serde_json::to_value(&new).unwrap();
        let codec = json["codec"].as_object_mut().unwrap();
        assert_eq!(codec.remove("kernel"), Some(1.into()));
        assert_eq!(codec.remove("stride"), Some(1.into()));
        assert_eq!(
            json["codec"].to_string(),
            r#"{"bits":2,"entropy":false,"kind":"autoencoder","ratio":4}"#
        );
        let dir = std::env::temp_dir().join(format!("coinfer-old-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plan.json");
        std::fs::write(&path, json.to_string()).unwrap();
        let old = SplitPlan::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(old, new);
        assert_eq!(old.digest(), new.digest());
    }

    #[test]
    fn a_plan_records_the_autoencoder_kernel_and_stride() {
        let codec = CodecId::Autoencoder {
            ratio: 4,
            bits: 2,
            entropy: false,
            kernel: 3,
            stride: 2,
        };
        let json = serde_json::to_string(&plan(codec)).unwrap();
        assert!(json.contains(r#""kernel":3,"stride":2"#), "{json}");
        let back: SplitPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back.codec, codec);
    }
}
