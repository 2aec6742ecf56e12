//! Training and evaluating a classifier [`Network`] on a `coinfer-data` [`ImageDataset`]:
//! Adam, cross-entropy, cosine learning-rate decay, deterministic by seed.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use coinfer_data::{Budget, ImageDataset, Normalization};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{Network, SplitError};

/// Hyper-parameters of [`train_classifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// How much of the training set the run sees: passes (`epochs:N`) or images
    /// (`images:N`, whatever the set's size). A config file may still say `"epochs": N`.
    #[serde(alias = "epochs")]
    pub budget: Budget,
    /// Samples per Adam step.
    pub batch_size: usize,
    /// Peak learning rate (cosine-decayed to 2% of it over the run).
    pub learning_rate: f64,
    /// L2 weight decay added by Adam.
    pub weight_decay: f32,
    /// Seed of weight initialisation (if the caller seeds) and of the batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            budget: Budget::Epochs(8),
            batch_size: 64,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Rejects settings that cannot train: a zero budget or batch, a non-positive or non-finite
    /// learning rate, a negative weight decay.
    pub fn check(&self) -> Result<(), SplitError> {
        let bad = |field: &'static str, reason: &str| {
            Err(SplitError::InvalidOption {
                field,
                reason: reason.to_string(),
            })
        };
        if self.budget.is_zero() {
            return bad("budget", "must train at least one batch");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be a finite positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", "must be finite and non-negative");
        }
        Ok(())
    }
}

/// What [`train_classifier`] reports after every step.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainProgress {
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Steps done in this epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Steps done in the whole run.
    pub total_step: usize,
    /// Steps of the whole run (the budget's).
    pub total_steps: usize,
    /// Mean training loss so far in this epoch.
    pub loss: f32,
    /// Training accuracy so far in this epoch.
    pub accuracy: f32,
    /// Seconds since training started.
    pub elapsed_s: f64,
}

fn check_fits(net: &Network, data: &ImageDataset) -> Result<(), SplitError> {
    if data.image_shape() != net.spec().input.dims() {
        return Err(SplitError::DatasetMismatch(format!(
            "images are {:?} but the network takes {:?}",
            data.image_shape(),
            net.spec().input.dims()
        )));
    }
    let classes = net.spec().num_classes()?;
    if data.num_classes() > classes {
        return Err(SplitError::DatasetMismatch(format!(
            "the dataset has {} classes but the network outputs {classes}",
            data.num_classes()
        )));
    }
    if data.is_empty() {
        return Err(SplitError::DatasetMismatch("the dataset is empty".into()));
    }
    Ok(())
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

/// Trains `net` on `data` with Adam and cross-entropy, reporting progress after every step, and
/// returns the trained network in inference mode on `device`.
///
/// `device` is a plain device (e.g. `Device::flex()`); gradients are turned on internally.
pub fn train_classifier(
    net: Network,
    data: &ImageDataset,
    norm: &Normalization,
    config: &TrainConfig,
    device: &Device,
    mut on_step: impl FnMut(&TrainProgress),
) -> Result<Network, SplitError> {
    config.check()?;
    check_fits(&net, data)?;
    let (spec, module) = net.into_parts();
    let train_device = device.clone().autodiff();
    let mut module = module.to_device(device).train();
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            config.weight_decay,
        )))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let steps_per_epoch = data.len().div_ceil(config.batch_size);
    let total_steps = config.budget.steps(data.len(), config.batch_size);
    let start = Instant::now();
    let mut global_step = 0usize;
    for epoch in 0..config.budget.passes(data.len()) {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let left = total_steps - global_step;
        for (step, indices) in order.chunks(config.batch_size).take(left).enumerate() {
            let (images, labels) = data.batch(indices, norm, &train_device)?;
            let logits = {
                let y = module.forward_features(images);
                let [b, c, _, _] = y.dims();
                y.reshape([b, c])
            };
            let predicted = logits.clone().detach().argmax(1).flatten::<1>(0, 1);
            let batch_correct = predicted
                .equal(labels.clone())
                .int()
                .sum()
                .into_scalar::<i64>();
            let loss = loss_fn.forward(logits, labels);
            let grads = GradientsParams::from_grads(loss.backward(), &module);
            let progress_frac = global_step as f64 / total_steps as f64;
            let lr = config.learning_rate
                * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * progress_frac).cos()));
            module = optimizer.step(lr, module, grads);
            global_step += 1;

            loss_sum += f64::from(scalar(loss.detach())) * indices.len() as f64;
            correct += batch_correct as usize;
            seen += indices.len();
            on_step(&TrainProgress {
                epoch,
                step: step + 1,
                steps_per_epoch,
                total_step: global_step,
                total_steps,
                loss: (loss_sum / seen as f64) as f32,
                accuracy: correct as f32 / seen as f32,
                elapsed_s: start.elapsed().as_secs_f64(),
            });
        }
    }
    Network::from_parts(spec, module.valid().to_device(device))
}

/// The batch size of evaluation passes (accuracy on a validation or test set): large enough
/// to amortise per-call overhead, small enough for a device-sized memory.
pub const EVAL_BATCH_SIZE: usize = 250;

/// Top-1 accuracy of a whole classifier on `data`, in inference mode, `batch_size` at a time.
pub fn evaluate(
    net: &Network,
    data: &ImageDataset,
    norm: &Normalization,
    batch_size: usize,
    device: &Device,
) -> Result<f32, SplitError> {
    evaluate_with(net, data, norm, batch_size, device, |net, x| net.logits(x))
}

/// Top-1 accuracy of any pipeline from a normalised batch to logits (a split network with a
/// codec in the middle, a pruned network, ...) on `data`.
pub fn evaluate_with(
    net: &Network,
    data: &ImageDataset,
    norm: &Normalization,
    batch_size: usize,
    device: &Device,
    mut logits_of: impl FnMut(&Network, Tensor<4>) -> Result<Tensor<2>, SplitError>,
) -> Result<f32, SplitError> {
    if batch_size == 0 {
        return Err(SplitError::InvalidOption {
            field: "batch_size",
            reason: "must be at least 1".into(),
        });
    }
    if data.is_empty() {
        return Err(SplitError::DatasetMismatch("the dataset is empty".into()));
    }
    let net = net.valid();
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut correct = 0i64;
    for chunk in indices.chunks(batch_size) {
        let (images, labels) = data.batch(chunk, norm, device)?;
        let logits = logits_of(&net, images)?;
        let predicted = logits.argmax(1).flatten::<1>(0, 1);
        correct += predicted.equal(labels).int().sum().into_scalar::<i64>();
    }
    Ok(correct as f32 / data.len() as f32)
}
