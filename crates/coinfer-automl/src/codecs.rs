//! Building the codec family of every split point: fixed quantizers, and autoencoders trained
//! for the frozen backbone (design §1, "feature compression").

use burn::module::Module;
use burn::prelude::*;
use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecFamily, CodecId, TrainOptions, fixed_codec,
    train_autoencoder,
};
use coinfer_data::{Batches, ImageDataset, Normalization};
use coinfer_split::Network;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::{BankCodec, CodecBank};

/// Which codecs each split offers, and how the autoencoders are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodecSetup {
    /// Offer the uncompressed float32 feature.
    pub float32: bool,
    /// Bit widths of per-tensor uniform quantizers.
    pub quant_bits: Vec<u8>,
    /// Bit widths of per-channel uniform quantizers (not at the raw input).
    pub per_channel_bits: Vec<u8>,
    /// Channel reduction ratios `r` of the autoencoders (empty: no autoencoders).
    pub ae_ratios: Vec<u16>,
    /// Latent bit widths `b` the autoencoders are offered at.
    pub ae_bits: Vec<u8>,
    /// Bit width the autoencoders are trained at (straight-through); the other widths reuse
    /// the weights.
    pub ae_train_bits: u8,
    /// Convolution kernel of encoder and decoder.
    pub ae_kernel: usize,
    /// Training epochs per autoencoder.
    pub ae_epochs: usize,
    /// Training images per autoencoder (a class-balanced prefix of the training set).
    pub ae_train_images: usize,
    /// Adam learning rate.
    pub ae_lr: f64,
    /// Weight of the reconstruction MSE next to the task loss.
    pub ae_recon_weight: f32,
    /// Training batch size.
    pub ae_batch_size: usize,
}

impl Default for CodecSetup {
    fn default() -> Self {
        CodecSetup {
            float32: true,
            quant_bits: vec![2, 4, 8],
            per_channel_bits: vec![4],
            ae_ratios: vec![2, 4, 8, 16],
            ae_bits: vec![2, 4, 8],
            ae_train_bits: 4,
            ae_kernel: 1,
            ae_epochs: 8,
            ae_train_images: 3000,
            ae_lr: 1e-2,
            ae_recon_weight: 0.1,
            ae_batch_size: 64,
        }
    }
}

impl CodecSetup {
    /// Only fixed codecs (no training): what tests and quick runs use.
    pub fn fixed_only() -> CodecSetup {
        CodecSetup {
            ae_ratios: Vec::new(),
            ..CodecSetup::default()
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), AutomlError> {
        let bad =
            |field: &'static str, reason: String| Err(AutomlError::InvalidConfig { field, reason });
        let bits_ok = |b: &u8| (1..=8).contains(b);
        if let Some(b) = self
            .quant_bits
            .iter()
            .chain(&self.per_channel_bits)
            .find(|b| !bits_ok(b))
        {
            return bad("codecs.quant_bits", format!("{b} is outside 1..=8"));
        }
        if let Some(b) = self.ae_bits.iter().find(|b| !bits_ok(b)) {
            return bad("codecs.ae_bits", format!("{b} is outside 1..=8"));
        }
        if !self.ae_ratios.is_empty() {
            if !bits_ok(&self.ae_train_bits) {
                return bad(
                    "codecs.ae_train_bits",
                    format!("{} is outside 1..=8", self.ae_train_bits),
                );
            }
            if self.ae_bits.is_empty() {
                return bad(
                    "codecs.ae_bits",
                    "autoencoders need at least one bit width".into(),
                );
            }
            if self.ae_ratios.contains(&0) {
                return bad("codecs.ae_ratios", "a ratio must be at least 1".into());
            }
            if self.ae_epochs == 0 || self.ae_train_images == 0 || self.ae_batch_size == 0 {
                return bad(
                    "codecs.ae_epochs",
                    "epochs, training images and batch size must be at least 1".into(),
                );
            }
            if self.ae_kernel.is_multiple_of(2) {
                return bad(
                    "codecs.ae_kernel",
                    format!("{} must be odd", self.ae_kernel),
                );
            }
            if !(self.ae_lr.is_finite() && self.ae_lr > 0.0) {
                return bad("codecs.ae_lr", format!("{} must be positive", self.ae_lr));
            }
        }
        if !self.float32 && self.quant_bits.is_empty() {
            return bad(
                "codecs",
                "the raw input needs float32 or a quantizer".into(),
            );
        }
        Ok(())
    }

    fn fixed_ids(&self, at_input: bool) -> Vec<CodecId> {
        let mut ids = Vec::new();
        if self.float32 {
            ids.push(CodecId::Float32);
        }
        ids.extend(self.quant_bits.iter().map(|&b| CodecId::quant(b, false)));
        if !at_input {
            ids.extend(
                self.per_channel_bits
                    .iter()
                    .map(|&b| CodecId::quant(b, true)),
            );
        }
        ids
    }
}

/// Progress of [`build_codecs`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodecProgress {
    /// Split point being worked on.
    pub split: usize,
    /// Autoencoder ratio being trained.
    pub ratio: u16,
    /// Autoencoders trained so far.
    pub done: usize,
    /// Autoencoders to train in all.
    pub total: usize,
    /// Task accuracy on the training batches of the last epoch.
    pub train_accuracy: f32,
}

/// The codec families (by split) and the matching codec bank for `splits` of `backbone`.
///
/// Split `0` (the raw input) gets fixed quantizers only; every other split also gets the
/// autoencoders of `setup`, trained with the backbone frozen on a prefix of `train`.
pub fn build_codecs(
    backbone: &Network,
    splits: &[usize],
    train: &ImageDataset,
    norm: &Normalization,
    setup: &CodecSetup,
    device: &Device,
    mut progress: impl FnMut(&CodecProgress),
) -> Result<(Vec<CodecFamily>, CodecBank), AutomlError> {
    setup.validate()?;
    let shapes = backbone.spec().shapes()?;
    let subset = train.take(setup.ae_train_images.min(train.len()));
    let total = splits.iter().filter(|&&s| s > 0).count() * setup.ae_ratios.len();
    let mut done = 0;
    let mut families = Vec::with_capacity(splits.len());
    let mut bank = CodecBank::new();
    for &split in splits {
        let shape = shapes
            .get(split)
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!("split {split} is past the network"))
            })?
            .dims();
        let mut codecs: Vec<BankCodec> = Vec::new();
        for id in setup.fixed_ids(split == 0) {
            codecs.push(BankCodec::Fixed(fixed_codec(id)?));
        }
        if split > 0 {
            let (device_half, edge_half) = backbone.valid().split(split)?;
            let edge_module = edge_half.module().clone().train().freeze();
            let edge = |x: Tensor<4>| edge_module.forward(x);
            for &ratio in &setup.ae_ratios {
                let config = AutoencoderConfig::new(shape[0], usize::from(ratio))
                    .with_bits(setup.ae_train_bits)
                    .with_kernel(setup.ae_kernel);
                let options = TrainOptions::new()
                    .with_epochs(setup.ae_epochs)
                    .with_lr(setup.ae_lr)
                    .with_recon_weight(setup.ae_recon_weight)
                    .with_seed(u64::from(ratio) * 1000 + split as u64);
                let batches = |epoch: usize| {
                    let device_half = &device_half;
                    Batches::new(&subset, setup.ae_batch_size, norm, device)
                        .map(|b| b.shuffle(options.seed, epoch as u64))
                        .into_iter()
                        .flatten()
                        .map(move |(images, labels)| {
                            (device_half.module().forward_features(images), labels)
                        })
                };
                let mut last_accuracy = 0.0;
                let trained =
                    train_autoencoder(&config, device, batches, &edge, &options, &mut |report| {
                        last_accuracy = report.accuracy
                    })?;
                done += 1;
                progress(&CodecProgress {
                    split,
                    ratio,
                    done,
                    total,
                    train_accuracy: last_accuracy,
                });
                for &bits in &setup.ae_bits {
                    let codec = AutoencoderCodec::new(
                        config.clone().with_bits(bits),
                        trained.codec.model().clone(),
                    )?;
                    codecs.push(BankCodec::Learned(Box::new(codec)));
                }
            }
        }
        // Families are sorted by payload size (a stable sort): order the bank the same way.
        codecs.sort_by_key(|c| {
            let id = c.codec().id();
            (id.bits_per_sample(shape), id.to_string())
        });
        let family = CodecFamily::with_codecs(shape, codecs.iter().map(|c| c.codec().id()));
        bank.push_candidate(shape, codecs);
        families.push(family);
    }
    Ok((families, bank))
}
