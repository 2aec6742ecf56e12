//! Fine-tuning a chosen plan.
//!
//! [`fine_tune_three_steps`] is the three-step recovery of a split plan (pruned device half,
//! codec, edge half), each step with the real codec's quantization in the loop
//! (straight-through) and distillation from the dense backbone's logits:
//!
//! 1. [`FineTuneStep::DeviceHalf`]: the pruned device half trains, codec and edge half frozen;
//! 2. [`FineTuneStep::Codec`]: the autoencoder trains (skipped for fixed codecs), the halves
//!    frozen;
//! 3. [`FineTuneStep::Joint`]: device half, autoencoder and edge half train together at a
//!    small learning rate.
//!
//! The test accuracy of the plan, with the real codec (payloads encoded and decoded), is
//! measured before and after every step. [`fine_tune`] is the older single step: device half
//! and autoencoder together, edge frozen, no distillation.
//!
//! Frozen parts run as inference copies (`valid()`): their weights are constants and their
//! batch-norm statistics are never updated, so they leave a step bit-identical.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use coinfer_codec::{
    Autoencoder, AutoencoderCodec, CodecId, FeatureCodec, distillation_loss, fixed_codec,
};
use coinfer_data::{Batches, Budget, ImageDataset, Normalization};
use coinfer_split::train::evaluate_with;
use coinfer_split::{Network, SplitError, model::NetModule};
use serde::{Deserialize, Serialize};

use crate::AutomlError;

/// Fine-tuning hyper-parameters of [`fine_tune`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FineTuneConfig {
    /// Passes over the training set (0 skips fine-tuning).
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            epochs: 1,
            lr: 3e-4,
            batch_size: 64,
            seed: 7,
        }
    }
}

/// Hyper-parameters of [`fine_tune_three_steps`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreeStepConfig {
    /// Budget of step 1 (pruned device half); a zero budget skips the step. A config file
    /// may still say `"device_epochs": N`.
    #[serde(alias = "device_epochs")]
    pub device_budget: Budget,
    /// Budget of step 2 (autoencoder); zero skips the step (always skipped for fixed codecs).
    #[serde(alias = "codec_epochs")]
    pub codec_budget: Budget,
    /// Budget of step 3 (everything jointly); zero skips the step.
    #[serde(alias = "joint_epochs")]
    pub joint_budget: Budget,
    /// Adam learning rate of steps 1 and 2.
    pub lr: f64,
    /// Adam learning rate of step 3 (small: the whole network moves).
    pub joint_lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Weight `α ∈ [0, 1]` of the distillation loss (the task cross-entropy gets `1 − α`).
    pub distill_weight: f32,
    /// Distillation temperature `T > 0`.
    pub temperature: f32,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for ThreeStepConfig {
    fn default() -> Self {
        ThreeStepConfig {
            // Epochs, as before budgets existed; a large training set wants image budgets
            // (`--finetune-budget images:N`, docs/training.md).
            device_budget: Budget::Epochs(1),
            codec_budget: Budget::Epochs(2),
            joint_budget: Budget::Epochs(2),
            lr: 1e-3,
            joint_lr: 1e-4,
            batch_size: 64,
            distill_weight: 0.5,
            temperature: 4.0,
            seed: 7,
        }
    }
}

impl ThreeStepConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<(), AutomlError> {
        let bad =
            |field: &'static str, reason: String| Err(AutomlError::InvalidConfig { field, reason });
        for (field, lr) in [
            ("finetune.lr", self.lr),
            ("finetune.joint_lr", self.joint_lr),
        ] {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(field, format!("{lr} must be finite and positive"));
            }
        }
        if self.batch_size == 0 {
            return bad("finetune.batch_size", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.distill_weight) {
            return bad(
                "finetune.distill_weight",
                format!("{} is outside [0, 1]", self.distill_weight),
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(
                "finetune.temperature",
                format!("{} must be finite and positive", self.temperature),
            );
        }
        Ok(())
    }
}

/// One step of [`fine_tune_three_steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FineTuneStep {
    /// The pruned device half, codec and edge half frozen.
    DeviceHalf,
    /// The autoencoder, both halves frozen.
    Codec,
    /// Device half, autoencoder and edge half together.
    Joint,
}

/// Accuracy of the plan around one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Which step.
    pub step: FineTuneStep,
    /// The step's budget (zero: skipped). Reports written before budgets say `"epochs": N`.
    #[serde(alias = "epochs")]
    pub budget: Budget,
    /// Test accuracy (real codec in the loop) before the step.
    pub accuracy_before: f32,
    /// Test accuracy after the step.
    pub accuracy_after: f32,
    /// Mean training loss of the step's last epoch (`None` when skipped).
    pub last_loss: Option<f32>,
}

/// The fine-tuned plan.
#[derive(Debug, Clone)]
pub struct ThreeStepOutcome {
    /// Tuned device half `[0, split)`.
    pub device_half: Network,
    /// Tuned edge half `[split, end)`.
    pub edge_half: Network,
    /// Tuned autoencoder (learned codecs only).
    pub autoencoder: Option<AutoencoderCodec>,
    /// One report per step, in order.
    pub steps: Vec<StepReport>,
}

/// Progress of a fine-tuning run: step, batch done, batches in the step, batch loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FineTuneProgress {
    /// The running step.
    pub step: FineTuneStep,
    /// Batches done in this step.
    pub done: usize,
    /// Batches in this step.
    pub total: usize,
    /// Loss of the last batch.
    pub loss: f32,
}

/// The three parts of a split plan; `None` where a part is absent (no autoencoder).
#[derive(Module, Debug)]
struct Parts {
    half: Option<NetModule>,
    autoencoder: Option<Autoencoder>,
    edge: Option<NetModule>,
}

/// What a training pass trains (`true`) and what stays frozen.
#[derive(Clone, Copy)]
struct Trained {
    half: bool,
    autoencoder: bool,
    edge: bool,
}

/// Settings of one training pass.
struct Pass<'a> {
    codec: CodecId,
    train: &'a ImageDataset,
    norm: &'a Normalization,
    teacher: Option<&'a Network>,
    budget: Budget,
    lr: f64,
    batch_size: usize,
    distill_weight: f32,
    temperature: f32,
    seed: u64,
}

/// Trains the parts marked in `trained` (the others run as frozen inference copies) and
/// returns the parts in inference mode plus the mean loss of the last epoch.
fn train_parts(
    parts: Parts,
    trained: Trained,
    pass: &Pass<'_>,
    device: &Device,
    step: FineTuneStep,
    progress: &mut dyn FnMut(&FineTuneProgress),
) -> Result<(Parts, Option<f32>), AutomlError> {
    if pass.budget.is_zero() {
        return Ok((parts, None));
    }
    let ad = device.clone().autodiff();
    let split = |module: Option<NetModule>, train: bool| match (module, train) {
        (Some(m), true) => (Some(m.train()), None),
        (m, _) => (None, m),
    };
    let (half_t, half_f) = split(parts.half, trained.half);
    let (edge_t, edge_f) = split(parts.edge, trained.edge);
    let (ae_t, ae_f) = match (parts.autoencoder, trained.autoencoder) {
        (Some(m), true) => (Some(m.train()), None),
        (m, _) => (None, m),
    };
    let mut learner = Parts {
        half: half_t,
        autoencoder: ae_t,
        edge: edge_t,
    };
    let frozen = Parts {
        half: half_f,
        autoencoder: ae_f,
        edge: edge_f,
    };
    let teacher = pass.teacher.map(Network::valid);
    // A fixed codec trains through its straight-through form; learned codecs are modules.
    let fixed = match pass.codec {
        CodecId::Autoencoder { .. } => None,
        id => Some(fixed_codec(id)?),
    };
    let mut optimizer = AdamConfig::new().init();
    let cross_entropy = CrossEntropyLossConfig::new().init(&ad);
    let steps = pass.train.len().div_ceil(pass.batch_size);
    let total = pass.budget.steps(pass.train.len(), pass.batch_size);
    let mut last_loss = None;
    for epoch in 0..pass.budget.passes(pass.train.len()) {
        let (mut sum, mut count) = (0.0f64, 0usize);
        let batches = Batches::new(pass.train, pass.batch_size, pass.norm, &ad)?
            .shuffle(pass.seed, epoch as u64)
            .take(total - epoch * steps);
        for (index, (images, labels)) in batches.enumerate() {
            let teacher_logits = match &teacher {
                Some(t) if pass.distill_weight > 0.0 => Some(t.logits(images.clone())?.detach()),
                _ => None,
            };
            let feature = match (&learner.half, &frozen.half) {
                (Some(m), _) | (None, Some(m)) => m.forward_features(images),
                (None, None) => images,
            };
            let received = match (&learner.autoencoder, &frozen.autoencoder, &fixed) {
                (Some(ae), _, _) | (None, Some(ae), _) => ae.forward(feature),
                (None, None, Some(codec)) => codec.straight_through(feature),
                (None, None, None) => feature,
            };
            let logits = match (&learner.edge, &frozen.edge) {
                (Some(m), _) | (None, Some(m)) => m.forward(received),
                (None, None) => {
                    return Err(AutomlError::Missing("the edge half of the plan"));
                }
            };
            let alpha = pass.distill_weight;
            let mut loss = cross_entropy
                .forward(logits.clone(), labels)
                .mul_scalar(1.0 - alpha);
            if let Some(teacher_logits) = teacher_logits {
                loss = loss
                    + distillation_loss(logits, teacher_logits, pass.temperature).mul_scalar(alpha);
            }
            let value = loss.clone().detach().into_scalar::<f32>();
            if !value.is_finite() {
                return Err(AutomlError::InvalidConfig {
                    field: "finetune.lr",
                    reason: format!("{} made the loss diverge ({value})", pass.lr),
                });
            }
            sum += f64::from(value);
            count += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &learner);
            learner = optimizer.step(pass.lr, learner, grads);
            progress(&FineTuneProgress {
                step,
                done: epoch * steps + index + 1,
                total,
                loss: value,
            });
        }
        last_loss = (count > 0).then(|| (sum / count as f64) as f32);
    }
    let learner = learner.valid();
    Ok((
        Parts {
            half: learner.half.or(frozen.half),
            autoencoder: learner.autoencoder.or(frozen.autoencoder),
            edge: learner.edge.or(frozen.edge),
        },
        last_loss,
    ))
}

/// The autoencoder's weights as a trainable module on `device` (`None` for fixed codecs).
fn autoencoder_module(
    codec: CodecId,
    autoencoder: Option<&AutoencoderCodec>,
    device: &Device,
) -> Result<Option<Autoencoder>, AutomlError> {
    match (codec, autoencoder) {
        (CodecId::Autoencoder { .. }, Some(ae)) => Ok(Some(ae.model().clone().to_device(device))),
        (CodecId::Autoencoder { .. }, None) => Err(AutomlError::InvalidConfig {
            field: "finetune",
            reason: format!("codec {codec} needs its trained autoencoder"),
        }),
        _ => Ok(None),
    }
}

/// Test accuracy of a split plan with the real codec in the loop (payloads encoded and
/// decoded, exactly as deployed).
pub fn plan_accuracy(
    device_half: &Network,
    edge_half: &Network,
    codec: &dyn FeatureCodec,
    data: &ImageDataset,
    norm: &Normalization,
    device: &Device,
) -> Result<f32, AutomlError> {
    Ok(evaluate_with(
        device_half,
        data,
        norm,
        250,
        device,
        |device_half, images| {
            let received = codec
                .roundtrip(device_half.forward(images)?)
                .map_err(|e| SplitError::Readback(e.to_string()))?;
            edge_half.logits(received)
        },
    )?)
}

/// Three-step fine-tuning of a split plan (see the module docs).
///
/// - `teacher`: the dense, unmodified backbone (distillation targets);
/// - `network`: the plan's (pruned) network, split at `split` (≥ 1);
/// - `codec` and, for a learned codec, its trained `autoencoder`;
/// - `train`: training images (never the validation or test images); `test`: where the
///   accuracy before and after each step is measured.
///
/// # Errors
/// Invalid config ([`ThreeStepConfig::check`]), `split` 0 or past the network, a learned
/// codec without its autoencoder, mismatched shapes, or a diverging loss.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune_three_steps(
    teacher: &Network,
    network: &Network,
    split: usize,
    codec: CodecId,
    autoencoder: Option<&AutoencoderCodec>,
    train: &ImageDataset,
    test: &ImageDataset,
    norm: &Normalization,
    config: &ThreeStepConfig,
    device: &Device,
    progress: impl FnMut(&FineTuneProgress),
) -> Result<ThreeStepOutcome, AutomlError> {
    config.check()?;
    three_steps_checked(
        teacher,
        network,
        split,
        codec,
        autoencoder,
        train,
        test,
        norm,
        config,
        device,
        progress,
    )
}

/// [`fine_tune_three_steps`] with a config the search has checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn three_steps_checked(
    teacher: &Network,
    network: &Network,
    split: usize,
    codec: CodecId,
    autoencoder: Option<&AutoencoderCodec>,
    train: &ImageDataset,
    test: &ImageDataset,
    norm: &Normalization,
    config: &ThreeStepConfig,
    device: &Device,
    mut progress: impl FnMut(&FineTuneProgress),
) -> Result<ThreeStepOutcome, AutomlError> {
    if split == 0 {
        return Err(AutomlError::InvalidConfig {
            field: "finetune.split",
            reason: "split 0 has no device half to fine-tune".into(),
        });
    }
    let (device_half, edge_half) = network.valid().split(split)?;
    let (device_spec, half) = device_half.into_parts();
    let (edge_spec, edge) = edge_half.into_parts();
    let mut parts = Parts {
        half: Some(half),
        autoencoder: autoencoder_module(codec, autoencoder, device)?,
        edge: Some(edge),
    };
    let fixed = match codec {
        CodecId::Autoencoder { .. } => None,
        id => Some(fixed_codec(id)?),
    };
    let ae_config = autoencoder.map(|ae| ae.config().clone());
    let assemble = |parts: &Parts| -> Result<_, AutomlError> {
        let missing = AutomlError::Missing("a half of the plan");
        let device_half =
            Network::from_parts(device_spec.clone(), parts.half.clone().ok_or(missing)?)?;
        let edge_half = Network::from_parts(
            edge_spec.clone(),
            parts
                .edge
                .clone()
                .ok_or(AutomlError::Missing("a half of the plan"))?,
        )?;
        let ae = match (&ae_config, &parts.autoencoder) {
            (Some(cfg), Some(model)) => Some(AutoencoderCodec::new(cfg.clone(), model.clone())?),
            _ => None,
        };
        Ok((device_half, edge_half, ae))
    };
    let accuracy = |parts: &Parts| -> Result<f32, AutomlError> {
        let (device_half, edge_half, ae) = assemble(parts)?;
        let codec: &dyn FeatureCodec = match (&ae, &fixed) {
            (Some(ae), _) => ae,
            (None, Some(fixed)) => fixed.as_ref(),
            (None, None) => return Err(AutomlError::Missing("the plan's codec")),
        };
        plan_accuracy(&device_half, &edge_half, codec, test, norm, device)
    };
    let learned = parts.autoencoder.is_some();
    let schedule = [
        (
            FineTuneStep::DeviceHalf,
            config.device_budget,
            config.lr,
            Trained {
                half: true,
                autoencoder: false,
                edge: false,
            },
        ),
        (
            FineTuneStep::Codec,
            if learned {
                config.codec_budget
            } else {
                Budget::Epochs(0)
            },
            config.lr,
            Trained {
                half: false,
                autoencoder: true,
                edge: false,
            },
        ),
        (
            FineTuneStep::Joint,
            config.joint_budget,
            config.joint_lr,
            Trained {
                half: true,
                autoencoder: true,
                edge: true,
            },
        ),
    ];
    let mut steps = Vec::with_capacity(schedule.len());
    let mut current = accuracy(&parts)?;
    for (index, (step, budget, lr, trained)) in schedule.into_iter().enumerate() {
        let pass = Pass {
            codec,
            train,
            norm,
            teacher: Some(teacher),
            budget,
            lr,
            batch_size: config.batch_size,
            distill_weight: config.distill_weight,
            temperature: config.temperature,
            seed: config.seed.wrapping_add(index as u64),
        };
        let (tuned, last_loss) = train_parts(parts, trained, &pass, device, step, &mut progress)?;
        parts = tuned;
        let before = current;
        if !budget.is_zero() {
            current = accuracy(&parts)?;
        }
        steps.push(StepReport {
            step,
            budget,
            accuracy_before: before,
            accuracy_after: current,
            last_loss,
        });
    }
    let (device_half, edge_half, autoencoder) = assemble(&parts)?;
    Ok(ThreeStepOutcome {
        device_half,
        edge_half,
        autoencoder,
        steps,
    })
}

/// Fine-tunes the device half `[0, split)` of `network` with `codec` in the loop (an
/// autoencoder's weights train too), the edge half frozen. Returns the tuned device half and
/// the tuned autoencoder codec (for a learned codec).
#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    network: &Network,
    split: usize,
    codec: CodecId,
    autoencoder: Option<&AutoencoderCodec>,
    train: &ImageDataset,
    norm: &Normalization,
    config: &FineTuneConfig,
    device: &Device,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<(Network, Option<AutoencoderCodec>), AutomlError> {
    let (device_half, edge_half) = network.valid().split(split)?;
    if config.epochs == 0 || split == 0 {
        return Ok((device_half, autoencoder.cloned()));
    }
    if config.batch_size == 0 || !(config.lr.is_finite() && config.lr > 0.0) {
        return Err(AutomlError::InvalidConfig {
            field: "finetune",
            reason: "batch size and learning rate must be positive".into(),
        });
    }
    let (device_spec, half) = device_half.into_parts();
    let parts = Parts {
        half: Some(half),
        autoencoder: autoencoder_module(codec, autoencoder, device)?,
        edge: Some(edge_half.module().clone()),
    };
    let pass = Pass {
        codec,
        train,
        norm,
        teacher: None,
        budget: Budget::Epochs(config.epochs),
        lr: config.lr,
        batch_size: config.batch_size,
        distill_weight: 0.0,
        temperature: 1.0,
        seed: config.seed,
    };
    let trained = Trained {
        half: true,
        autoencoder: true,
        edge: false,
    };
    let (parts, _) = train_parts(
        parts,
        trained,
        &pass,
        device,
        FineTuneStep::DeviceHalf,
        &mut |p| progress(p.done, p.total, p.loss),
    )?;
    let tuned_device = Network::from_parts(
        device_spec,
        parts
            .half
            .ok_or(AutomlError::Missing("the device half of the plan"))?,
    )?;
    let tuned_codec = match (autoencoder, parts.autoencoder) {
        (Some(ae), Some(model)) => Some(AutoencoderCodec::new(ae.config().clone(), model)?),
        _ => None,
    };
    Ok((tuned_device, tuned_codec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(config: ThreeStepConfig) -> &'static str {
        match config.check() {
            Err(AutomlError::InvalidConfig { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn default_three_step_config_is_valid() {
        ThreeStepConfig::default().check().unwrap();
    }

    #[test]
    fn zero_lr_is_rejected() {
        let config = ThreeStepConfig {
            lr: 0.0,
            ..ThreeStepConfig::default()
        };
        assert_eq!(rejected(config), "finetune.lr");
    }

    #[test]
    fn nan_joint_lr_is_rejected() {
        let config = ThreeStepConfig {
            joint_lr: f64::NAN,
            ..ThreeStepConfig::default()
        };
        assert_eq!(rejected(config), "finetune.joint_lr");
    }

    #[test]
    fn zero_batch_size_is_rejected() {
        let config = ThreeStepConfig {
            batch_size: 0,
            ..ThreeStepConfig::default()
        };
        assert_eq!(rejected(config), "finetune.batch_size");
    }

    #[test]
    fn distill_weight_above_one_is_rejected() {
        let config = ThreeStepConfig {
            distill_weight: 1.5,
            ..ThreeStepConfig::default()
        };
        assert_eq!(rejected(config), "finetune.distill_weight");
    }

    #[test]
    fn zero_temperature_is_rejected() {
        let config = ThreeStepConfig {
            temperature: 0.0,
            ..ThreeStepConfig::default()
        };
        assert_eq!(rejected(config), "finetune.temperature");
    }
}
