//! Training an autoencoder codec against a frozen edge half.
//!
//! Loss per batch:
//! `(1 − α)·CE(edge(AE(z)), y) + α·KD_T(edge(AE(z)), teacher) + recon_weight · MSE(AE(z), z)`,
//! where `AE` is encode → straight-through quantization → decode ([`Autoencoder::forward`]),
//! `α` is [`TrainOptions::distill_weight`] and `KD_T` the temperature-`T` distillation loss
//! ([`distillation_loss`]) against the unmodified backbone's logits: the batch's own teacher
//! logits when it carries them ([`TrainBatch::teacher`]), else `edge(z)` — the backbone's
//! logits whenever the device half producing `z` is the unmodified one. Gradients flow
//! from the loss through the edge closure into the autoencoder; only the autoencoder's
//! parameters are stepped (Adam).
//!
//! # What the caller must do with the edge half
//! The closure receives a reconstruction on the **autodiff** device derived from `device`
//! and must return logits that are still part of the autodiff graph (built from its input
//! with tensor operations). Pass an inference copy of the edge module, `edge.valid()`: its
//! weights are then plain tensors that act as constants, batch-norm layers use their running
//! statistics, and no gradient is computed for the backbone. An edge module that still lives on
//! the autodiff device works too (freeze it with `.freeze()` so batch norm does not update
//! its statistics); its parameters may receive gradients, but they are never stepped.
//! Logits that left the graph are reported as [`CodecError::InvalidParameter`] instead of a
//! panic inside `backward`.

use std::sync::{Mutex, PoisonError};

use burn::module::{ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

use crate::autoencoder::{Autoencoder, AutoencoderCodec, AutoencoderConfig};
use crate::error::CodecError;

/// Optimisation settings of [`train_autoencoder`].
#[derive(Config, Debug, PartialEq)]
pub struct TrainOptions {
    /// Passes over the batches.
    #[config(default = 10)]
    pub epochs: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Weight of the reconstruction MSE next to the task cross-entropy (0 disables it).
    #[config(default = 0.0)]
    pub recon_weight: f32,
    /// Seed of the weight initialisation.
    #[config(default = 0)]
    pub seed: u64,
    /// Weight `α ∈ [0, 1]` of the distillation loss; the task cross-entropy gets `1 − α`.
    #[config(default = 0.0)]
    pub distill_weight: f32,
    /// Distillation temperature `T > 0`.
    #[config(default = 4.0)]
    pub temperature: f32,
}

impl TrainOptions {
    /// Validates every field.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] naming the field.
    pub fn check(&self) -> Result<(), CodecError> {
        let invalid = |field, value: String, reason| {
            Err(CodecError::InvalidParameter {
                field,
                value,
                reason,
            })
        };
        if self.epochs == 0 {
            return invalid("epochs", "0".into(), "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid("lr", self.lr.to_string(), "must be finite and positive");
        }
        if !(self.recon_weight.is_finite() && self.recon_weight >= 0.0) {
            return invalid(
                "recon_weight",
                self.recon_weight.to_string(),
                "must be finite and non-negative",
            );
        }
        if !(0.0..=1.0).contains(&self.distill_weight) {
            return invalid(
                "distill_weight",
                self.distill_weight.to_string(),
                "must be in [0, 1]",
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid(
                "temperature",
                self.temperature.to_string(),
                "must be finite and positive",
            );
        }
        Ok(())
    }
}

/// One training batch: the split-point feature, the labels and, optionally, the logits of the
/// unmodified backbone for distillation. Tuples `(feature, labels)` and
/// `(feature, labels, teacher)` convert into it.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// Feature `[B, C, H, W]` (a constant: autodiff history is dropped).
    pub feature: Tensor<4>,
    /// Labels `[B]`.
    pub labels: Tensor<1, Int>,
    /// Teacher logits `[B, classes]`; `None`: the edge's logits on the uncompressed feature.
    pub teacher: Option<Tensor<2>>,
}

impl From<(Tensor<4>, Tensor<1, Int>)> for TrainBatch {
    fn from((feature, labels): (Tensor<4>, Tensor<1, Int>)) -> Self {
        Self {
            feature,
            labels,
            teacher: None,
        }
    }
}

impl From<(Tensor<4>, Tensor<1, Int>, Tensor<2>)> for TrainBatch {
    fn from((feature, labels, teacher): (Tensor<4>, Tensor<1, Int>, Tensor<2>)) -> Self {
        Self {
            feature,
            labels,
            teacher: Some(teacher),
        }
    }
}

/// Knowledge-distillation loss (Hinton et al. 2015): `T² · KL(softmax(t/T) ‖ softmax(s/T))`,
/// averaged over the batch, for student logits `s` and teacher logits `t` (a constant: its
/// autodiff history is dropped). The `T²` factor keeps its gradient on the scale of the
/// cross-entropy's. Zero when the student equals the teacher.
///
/// ```
/// use burn::prelude::*;
/// use coinfer_codec::distillation_loss;
///
/// let device = Device::default();
/// let teacher = Tensor::<2>::from_data([[2.0, 0.0, -1.0]], &device);
/// let same = distillation_loss(teacher.clone(), teacher.clone(), 4.0).into_scalar::<f32>();
/// let other = Tensor::<2>::from_data([[-1.0, 0.0, 2.0]], &device);
/// let far = distillation_loss(other, teacher, 4.0).into_scalar::<f32>();
/// assert!(same.abs() < 1e-6 && far > 0.1);
/// ```
pub fn distillation_loss(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [rows, _] = student.dims();
    let t = temperature.max(f32::MIN_POSITIVE);
    let teacher = teacher.detach().div_scalar(t);
    let teacher_log = activation::log_softmax(teacher, 1);
    let student_log = activation::log_softmax(student.div_scalar(t), 1);
    let teacher_prob = teacher_log.clone().exp();
    (teacher_prob * (teacher_log - student_log))
        .sum()
        .div_scalar(rows.max(1) as f32)
        .mul_scalar(t * t)
}

/// Mean figures of one epoch (over batches, weighted by batch size).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Batches seen.
    pub batches: usize,
    /// Samples seen.
    pub samples: usize,
    /// Mean total loss.
    pub loss: f32,
    /// Mean cross-entropy of the edge's logits.
    pub task_loss: f32,
    /// Mean reconstruction MSE (computed even when its weight is 0).
    pub recon_loss: f32,
    /// Training accuracy of the edge on the (straight-through) reconstructions.
    pub accuracy: f32,
}

/// A trained codec plus its learning curve.
#[derive(Debug, Clone)]
pub struct TrainedAutoencoder {
    /// The codec, in inference mode on the base (non-autodiff) device.
    pub codec: AutoencoderCodec,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
}

/// Trains an autoencoder for a frozen edge half.
///
/// - `device`: where to train; its autodiff version is used (pass a plain or autodiff device).
/// - `batches(epoch)`: the batches of an epoch, `(feature [B, C, H, W], labels [B])` or
///   `(feature, labels, teacher logits)` ([`TrainBatch`]); features are treated as constants
///   (any autodiff history is dropped).
/// - `edge`: the frozen edge half, reconstruction → logits `[B, classes]` (see the module docs
///   for what it must do).
/// - `progress`: called after each epoch.
///
/// # Errors
/// Invalid config or options, a batch whose shape does not fit the config, labels of another
/// length, an epoch without batches, logits of the wrong shape or outside the autodiff graph,
/// or a non-finite loss.
pub fn train_autoencoder<F, I, B>(
    config: &AutoencoderConfig,
    device: &Device,
    mut batches: F,
    edge: &dyn Fn(Tensor<4>) -> Tensor<2>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainedAutoencoder, CodecError>
where
    F: FnMut(usize) -> I,
    I: IntoIterator<Item = B>,
    B: Into<TrainBatch>,
{
    config.check()?;
    options.check()?;
    let base = device.clone().inner();
    let train_device = base.clone().autodiff();
    let mut model = seeded_init(config, &train_device, options.seed)?;
    let mut optimizer = AdamConfig::new().init();
    let cross_entropy = CrossEntropyLossConfig::new().init(&train_device);
    let mut history = Vec::with_capacity(options.epochs);

    for epoch in 0..options.epochs {
        let mut sums = Sums::default();
        for (batch_index, batch) in batches(epoch).into_iter().enumerate() {
            let TrainBatch {
                feature,
                labels,
                teacher,
            } = batch.into();
            let feature = feature.without_autodiff().to_device(&base).autodiff();
            let labels = labels.to_device(&train_device);
            let samples = check_batch(config, &feature, &labels, epoch, batch_index)?;

            let reconstruction = model.forward(feature.clone());
            let logits = edge(reconstruction.clone());
            check_logits(&logits, samples, epoch, batch_index)?;
            let correct = logits
                .clone()
                .detach()
                .argmax(1)
                .reshape([samples])
                .equal(labels.clone())
                .int()
                .sum()
                .into_scalar::<i64>();
            let task = cross_entropy.forward(logits.clone(), labels);
            let recon = (reconstruction - feature.clone()).powf_scalar(2.0).mean();
            let alpha = options.distill_weight;
            let mut loss = task.clone().mul_scalar(1.0 - alpha)
                + recon.clone().mul_scalar(options.recon_weight);
            if alpha > 0.0 {
                let teacher = match teacher {
                    Some(t) => t.without_autodiff().to_device(&base).autodiff(),
                    None => edge(feature).detach(),
                };
                if teacher.dims() != logits.dims() {
                    return Err(CodecError::ShapeMismatch {
                        what: "teacher logits",
                        expected: format!("{:?}", logits.dims()),
                        found: format!("{:?} (epoch {epoch}, batch {batch_index})", teacher.dims()),
                    });
                }
                loss = loss
                    + distillation_loss(logits, teacher, options.temperature).mul_scalar(alpha);
            }

            let loss_value = loss.clone().detach().into_scalar::<f32>();
            if !loss_value.is_finite() {
                return Err(CodecError::InvalidParameter {
                    field: "lr",
                    value: options.lr.to_string(),
                    reason: "training diverged: the loss became non-finite",
                });
            }
            sums.add(
                samples,
                loss_value,
                task.detach().into_scalar::<f32>(),
                recon.detach().into_scalar::<f32>(),
                correct as usize,
            );

            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(options.lr, model, grads);
        }
        let report = sums.report(epoch).ok_or(CodecError::InvalidParameter {
            field: "batches",
            value: format!("epoch {epoch}"),
            reason: "the batch source yielded no batches",
        })?;
        progress(&report);
        history.push(report);
    }

    let model: Autoencoder = model.valid();
    Ok(TrainedAutoencoder {
        codec: AutoencoderCodec::new(config.clone(), model)?,
        history,
    })
}

/// burn draws a module's initial weights from one random generator per backend, seeded
/// process-wide, when each parameter is first read. Autoencoders trained on several threads at
/// once hold this lock from seeding until every weight is drawn, so each one starts from the
/// weights of its own seed whatever the others do.
static INIT: Mutex<()> = Mutex::new(());

/// Reads every parameter, which draws the lazily initialised ones.
struct DrawWeights;

impl ModuleVisitor for DrawWeights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// `config.init` on `device` with the weights drawn from `seed` (under [`INIT`]).
fn seeded_init(
    config: &AutoencoderConfig,
    device: &Device,
    seed: u64,
) -> Result<Autoencoder, CodecError> {
    // A panic elsewhere under the lock leaves nothing half-done that matters here: the
    // generator is re-seeded first.
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    let model = config.init(device)?;
    model.visit(&mut DrawWeights);
    Ok(model)
}

fn check_batch(
    config: &AutoencoderConfig,
    feature: &Tensor<4>,
    labels: &Tensor<1, Int>,
    epoch: usize,
    batch: usize,
) -> Result<usize, CodecError> {
    let [samples, channels, height, width] = feature.dims();
    if channels != config.channels || samples == 0 || height == 0 || width == 0 {
        return Err(CodecError::ShapeMismatch {
            what: "training feature batch",
            expected: format!("[B>0, {}, H>0, W>0]", config.channels),
            found: format!("{:?} (epoch {epoch}, batch {batch})", feature.dims()),
        });
    }
    if labels.dims() != [samples] {
        return Err(CodecError::ShapeMismatch {
            what: "training labels",
            expected: format!("[{samples}]"),
            found: format!("{:?} (epoch {epoch}, batch {batch})", labels.dims()),
        });
    }
    Ok(samples)
}

fn check_logits(
    logits: &Tensor<2>,
    samples: usize,
    epoch: usize,
    batch: usize,
) -> Result<(), CodecError> {
    let [rows, classes] = logits.dims();
    if rows != samples || classes == 0 {
        return Err(CodecError::ShapeMismatch {
            what: "edge logits",
            expected: format!("[{samples}, classes > 0]"),
            found: format!("{:?} (epoch {epoch}, batch {batch})", logits.dims()),
        });
    }
    if !logits.is_tracked() {
        return Err(CodecError::InvalidParameter {
            field: "edge",
            value: format!("epoch {epoch}, batch {batch}"),
            reason: "the edge closure returned logits outside the autodiff graph; build them \
                     from its input with tensor operations (no detach, no into_data)",
        });
    }
    Ok(())
}

#[derive(Default)]
struct Sums {
    batches: usize,
    samples: usize,
    loss: f64,
    task: f64,
    recon: f64,
    correct: usize,
}

impl Sums {
    fn add(&mut self, samples: usize, loss: f32, task: f32, recon: f32, correct: usize) {
        let n = samples as f64;
        self.batches += 1;
        self.samples += samples;
        self.loss += f64::from(loss) * n;
        self.task += f64::from(task) * n;
        self.recon += f64::from(recon) * n;
        self.correct += correct;
    }

    fn report(&self, epoch: usize) -> Option<EpochReport> {
        if self.samples == 0 {
            return None;
        }
        let n = self.samples as f64;
        Some(EpochReport {
            epoch,
            batches: self.batches,
            samples: self.samples,
            loss: (self.loss / n) as f32,
            task_loss: (self.task / n) as f32,
            recon_loss: (self.recon / n) as f32,
            accuracy: (self.correct as f64 / n) as f32,
        })
    }
}
