//! Fine-tuning the chosen plan: the pruned device half (and its autoencoder) are trained for a
//! few epochs with the codec in the loop and the edge half frozen.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use coinfer_codec::{Autoencoder, AutoencoderCodec, CodecId, QuantCodec};
use coinfer_data::{Batches, ImageDataset, Normalization};
use coinfer_split::{NetModule, Network};
use serde::{Deserialize, Serialize};

use crate::AutomlError;

/// Fine-tuning hyper-parameters.
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

/// What is trained: the device half and, for a learned codec, the autoencoder.
#[derive(Module, Debug)]
struct DeviceSide {
    half: NetModule,
    autoencoder: Option<Autoencoder>,
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
    let ae_config = match (codec, autoencoder) {
        (CodecId::Autoencoder { .. }, Some(ae)) => Some(ae.config().clone()),
        (CodecId::Autoencoder { .. }, None) => {
            return Err(AutomlError::InvalidConfig {
                field: "finetune",
                reason: format!("codec {codec} needs its trained autoencoder"),
            });
        }
        _ => None,
    };
    let ad = device.clone().autodiff();
    let autoencoder_module = match (&ae_config, autoencoder) {
        (Some(cfg), Some(ae)) => Some(
            cfg.init(device)?
                .try_load_record(ae.model().clone().into_record())
                .map_err(|e| AutomlError::InvalidConfig {
                    field: "finetune",
                    reason: format!("autoencoder weights: {e}"),
                })?,
        ),
        _ => None,
    };
    let (device_spec, device_module) = device_half.into_parts();
    let mut side = DeviceSide {
        half: device_module,
        autoencoder: autoencoder_module,
    }
    .train();
    let edge = edge_half.module().clone().train().freeze();
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let steps = train.len().div_ceil(config.batch_size);
    for epoch in 0..config.epochs {
        let batches =
            Batches::new(train, config.batch_size, norm, &ad)?.shuffle(config.seed, epoch as u64);
        for (step, (images, labels)) in batches.enumerate() {
            let feature = side.half.forward_features(images);
            let received = match (&side.autoencoder, codec) {
                (Some(ae), _) => ae.forward(feature),
                (
                    None,
                    CodecId::Quant {
                        bits, per_channel, ..
                    },
                ) => QuantCodec::new(bits, per_channel)?.straight_through(feature),
                (None, _) => feature,
            };
            let logits = edge.forward(received);
            let loss = loss_fn.forward(logits, labels);
            let value = loss.clone().detach().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &side);
            side = optimizer.step(config.lr, side, grads);
            progress(epoch * steps + step + 1, config.epochs * steps, value);
        }
    }
    let side = side.valid();
    let tuned_device = Network::from_parts(device_spec, side.half)?;
    let tuned_codec = match (ae_config, side.autoencoder) {
        (Some(cfg), Some(model)) => Some(AutoencoderCodec::new(cfg, model)?),
        _ => None,
    };
    Ok((tuned_device, tuned_codec))
}
