//! Learned feature codec: a conv autoencoder with a bounded, uniformly quantized latent.
//!
//! ```text
//! device:  z [B,C,H,W] ─ conv k×k stride s, C→C' ─ BN? ─ tanh ─ b-bit quantization ─► payload
//! edge:    payload ─ dequantize ─ ×s nearest upsample ─ conv k×k, C'→C ─ BN? ─ ReLU? ─ crop
//!          ─► ẑ [B,C,H,W]
//! ```
//! with `C' = max(1, ceil(C / r))` and a latent of `ceil(H/s) × ceil(W/s)` pixels. Stride 1
//! without batch norm is the channel-only family (1×1 kernels by default); stride 2 with batch
//! norm is the spatial, BottleNet++-style family (Shao & Zhang 2020), which divides the pixels
//! by four. The decoder upsamples to `s·ceil(H/s)` and crops to exactly `H` (odd sizes such as
//! 7×7 included). `tanh` bounds the latent so its quantization range is
//! fixed (`[-1, 1]`, `L = 2^b − 1` steps) and no ranges travel in the payload. Training
//! replaces the rounding by a straight-through estimator, `y + (q(y) − y).detach()`, so the
//! encoder receives the gradient as if quantization were the identity (see [`crate::train_autoencoder`]).
//!
//! The decoder ends in a ReLU by default because split points of the backbones sit after a
//! block's ReLU, so the true features are non-negative: clamping the reconstruction to that
//! support removes a whole class of errors the edge half was never trained on, at no cost.
//! Turn it off ([`AutoencoderConfig::output_relu`]) for split points whose features can be
//! negative.

use std::path::{Path, PathBuf};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
// The training kernels on flex (convolution and batch norm, forward and backward).
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation;
use coinfer_kernels::{Activation, batch_norm, batch_norm_act, conv2d};

use crate::codec::{CodecId, FeatureCodec, expect_codec, feature_tensor, latent_channels};
use crate::error::CodecError;
use crate::payload::{
    Payload, PayloadHeader, PayloadWriter, check_feature_shape, read_header, read_symbol_body,
    symbol_body,
};
use crate::quantize::{
    QuantRange, Quantized, check_bits, check_finite, levels, quantize_with_ranges,
};

/// The latent's fixed quantization range (the image of `tanh`).
pub const LATENT_RANGE: QuantRange = QuantRange {
    min: -1.0,
    max: 1.0,
};

/// Hyper-parameters of one autoencoder of the family (`r`, `b`, kernel...).
#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderConfig {
    /// Feature channels `C` at the split point.
    pub channels: usize,
    /// Channel reduction ratio `r` (latent channels `max(1, ceil(C/r))`), 1..=65535.
    pub ratio: usize,
    /// Latent bit width `b`, 1..=8.
    #[config(default = 4)]
    pub bits: u8,
    /// Square kernel size of both convolutions (odd: 1 or 3 are typical), "same" padding.
    #[config(default = 1)]
    pub kernel: usize,
    /// Encoder stride `s` (1 or 2): the latent has `ceil(H/s) × ceil(W/s)` pixels; recorded
    /// in the codec id.
    #[config(default = 1)]
    pub stride: usize,
    /// Batch norm after the encoder conv and after the decoder conv.
    #[config(default = false)]
    pub batch_norm: bool,
    /// End the decoder with a ReLU (right for post-ReLU split points).
    #[config(default = true)]
    pub output_relu: bool,
    /// rANS-code the latent symbols when that is smaller than fixed-length packing.
    #[config(default = false)]
    pub entropy: bool,
}

impl AutoencoderConfig {
    /// Validates every field.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] naming the field, or [`CodecError::BitsOutOfRange`].
    pub fn check(&self) -> Result<(), CodecError> {
        let invalid = |field, value: usize, reason| {
            Err(CodecError::InvalidParameter {
                field,
                value: value.to_string(),
                reason,
            })
        };
        if self.channels == 0 || self.channels > u32::MAX as usize {
            return invalid("channels", self.channels, "must be in 1..=u32::MAX");
        }
        if self.ratio == 0 || self.ratio > u16::MAX as usize {
            return invalid("ratio", self.ratio, "must be in 1..=65535");
        }
        check_bits(self.bits, "AutoencoderConfig::bits")?;
        if self.kernel == 0 || self.kernel.is_multiple_of(2) || self.kernel > 15 {
            return invalid("kernel", self.kernel, "must be odd and at most 15");
        }
        if !(1..=2).contains(&self.stride) {
            return invalid("stride", self.stride, "must be 1 or 2");
        }
        Ok(())
    }

    /// Latent channels `max(1, ceil(C / r))`.
    pub fn latent_channels(&self) -> usize {
        latent_channels(self.channels, self.ratio)
    }

    /// Latent shape `[B, C', ceil(H/s), ceil(W/s)]` for a feature `[B, C, H, W]`.
    pub fn latent_shape(&self, feature: [usize; 4]) -> [usize; 4] {
        let [batch, _, height, width] = feature;
        let stride = self.stride.max(1);
        [
            batch,
            self.latent_channels(),
            height.div_ceil(stride),
            width.div_ceil(stride),
        ]
    }

    /// The codec id of autoencoders built from this config.
    pub fn codec_id(&self) -> CodecId {
        CodecId::Autoencoder {
            ratio: self.ratio.min(u16::MAX as usize) as u16,
            bits: self.bits,
            entropy: self.entropy,
            kernel: self.kernel.min(u8::MAX as usize) as u8,
            stride: self.stride.min(u8::MAX as usize) as u8,
        }
    }

    /// A freshly initialised (untrained) autoencoder on `device`.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub fn init(&self, device: &Device) -> Result<Autoencoder, CodecError> {
        self.check()?;
        let latent = self.latent_channels();
        let pad = self.kernel / 2;
        let norm = |channels: usize| {
            self.batch_norm
                .then(|| BatchNormConfig::new(channels).init(device))
        };
        Ok(Autoencoder {
            encoder: Conv2dConfig::new([self.channels, latent], [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device),
            encoder_norm: norm(latent),
            decoder: Conv2dConfig::new([latent, self.channels], [self.kernel, self.kernel])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            decoder_norm: norm(self.channels),
            bits: self.bits,
            stride: self.stride,
            output_relu: self.output_relu,
        })
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The autoencoder's weights: one conv (and optionally one batch norm) each side.
#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder: Conv2d,
    encoder_norm: Option<BatchNorm>,
    decoder: Conv2d,
    decoder_norm: Option<BatchNorm>,
    #[module(skip)]
    bits: u8,
    #[module(skip)]
    stride: usize,
    #[module(skip)]
    output_relu: bool,
}

impl Autoencoder {
    /// The encoder convolution (device side).
    pub fn encoder(&self) -> &Conv2d {
        &self.encoder
    }

    /// The batch norm after the encoder convolution, if any.
    pub fn encoder_norm(&self) -> Option<&BatchNorm> {
        self.encoder_norm.as_ref()
    }

    /// The decoder convolution (edge side, after the upsampling).
    pub fn decoder(&self) -> &Conv2d {
        &self.decoder
    }

    /// The batch norm after the decoder convolution, if any.
    pub fn decoder_norm(&self) -> Option<&BatchNorm> {
        self.decoder_norm.as_ref()
    }

    /// Whether the decoder ends in a ReLU.
    pub fn output_relu(&self) -> bool {
        self.output_relu
    }

    /// The encoder stride `s` (the decoder upsamples by it).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Device side before quantization: `tanh(BN?(conv(z)))`, values in `[-1, 1]`.
    pub fn encode_latent(&self, feature: Tensor<4>) -> Tensor<4> {
        let out = conv2d(&self.encoder, feature);
        match &self.encoder_norm {
            Some(norm) => batch_norm(norm, out),
            None => out,
        }
        .tanh()
    }

    /// Quantizes a latent in `[-1, 1]` to the `b`-bit grid (tensor form of the codec's
    /// quantizer; the payload uses the slice form, equal except possibly at exact ties).
    pub fn quantize_latent(&self, latent: Tensor<4>) -> Tensor<4> {
        let half_levels = levels(self.bits) as f32 / 2.0;
        latent
            .add_scalar(1.0)
            .mul_scalar(half_levels)
            .round()
            .div_scalar(half_levels)
            .sub_scalar(1.0)
    }

    /// Straight-through quantization for training: the forward value is
    /// [`quantize_latent`](Self::quantize_latent), the gradient that of the identity.
    pub fn quantize_straight_through(&self, latent: Tensor<4>) -> Tensor<4> {
        let rounding = self.quantize_latent(latent.clone()) - latent.clone();
        latent + rounding.detach()
    }

    /// Edge side: `relu?(BN?(conv(upsample(latent))))` cropped to `size = [H, W]`, the
    /// feature's spatial size (`size` must be at most `s` times the latent's).
    pub fn decode_latent(&self, latent: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        let stride = self.stride.max(1);
        let latent = if stride > 1 {
            let [b, c, h, w] = latent.dims();
            latent
                .reshape([b, c, h, 1, w, 1])
                .expand([b, c, h, stride, w, stride])
                .reshape([b, c, h * stride, w * stride])
                .slice([0..b, 0..c, 0..size[0], 0..size[1]])
        } else {
            latent
        };
        let out = conv2d(&self.decoder, latent);
        let act = if self.output_relu {
            Activation::Relu
        } else {
            Activation::None
        };
        match &self.decoder_norm {
            Some(norm) => batch_norm_act(norm, out, None, act),
            None if self.output_relu => activation::relu(out),
            None => out,
        }
    }

    /// Training forward pass: encode, straight-through quantize, decode to the feature's shape.
    pub fn forward(&self, feature: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = feature.dims();
        let latent = self.encode_latent(feature);
        self.decode_latent(self.quantize_straight_through(latent), [height, width])
    }
}

/// An autoencoder as a [`FeatureCodec`]: the encoder runs on the device, the decoder on the edge.
///
/// The model is kept in inference mode (`valid()`, no autodiff) on the device it was built or
/// loaded on; features are moved there to encode, and reconstructions are moved to the
/// requested device after decoding.
#[derive(Debug, Clone)]
pub struct AutoencoderCodec {
    config: AutoencoderConfig,
    model: Autoencoder,
    device: Device,
}

impl AutoencoderCodec {
    /// Wraps trained weights built from `config`.
    ///
    /// The config is the source of truth for everything that is not a weight: the latent bit
    /// width and the output ReLU of `model` are set from it. This lets one set of weights,
    /// trained at one `b`, serve codecs at other bit widths.
    ///
    /// # Errors
    /// As [`AutoencoderConfig::check`]; [`CodecError::ShapeMismatch`] when the weights do not
    /// have the config's channel counts.
    pub fn new(config: AutoencoderConfig, model: Autoencoder) -> Result<Self, CodecError> {
        config.check()?;
        let mut model = model.valid();
        model.bits = config.bits;
        model.stride = config.stride;
        model.output_relu = config.output_relu;
        let has_norm = (model.encoder_norm.is_some(), model.decoder_norm.is_some());
        if has_norm != (config.batch_norm, config.batch_norm) {
            return Err(CodecError::ShapeMismatch {
                what: "autoencoder batch-norm layers (encoder, decoder)",
                expected: format!("{:?}", (config.batch_norm, config.batch_norm)),
                found: format!("{has_norm:?}"),
            });
        }
        let (c, latent, k) = (config.channels, config.latent_channels(), config.kernel);
        for (what, weight, expected) in [
            (
                "autoencoder encoder weight [C', C, k, k]",
                &model.encoder.weight,
                [latent, c, k, k],
            ),
            (
                "autoencoder decoder weight [C, C', k, k]",
                &model.decoder.weight,
                [c, latent, k, k],
            ),
        ] {
            let found = weight.lazy_shape();
            if found.as_slice() != expected {
                return Err(CodecError::ShapeMismatch {
                    what,
                    expected: format!("{expected:?}"),
                    found: format!("{:?}", found.as_slice()),
                });
            }
        }
        let device = model
            .devices()
            .into_iter()
            .next()
            .unwrap_or_default()
            .inner();
        Ok(Self {
            config,
            model,
            device,
        })
    }

    /// An untrained codec (random weights) on `device`.
    ///
    /// # Errors
    /// As [`AutoencoderConfig::check`].
    pub fn init(config: AutoencoderConfig, device: &Device) -> Result<Self, CodecError> {
        let model = config.init(&device.clone().inner())?;
        Self::new(config, model)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AutoencoderConfig {
        &self.config
    }

    /// The weights (inference mode).
    pub fn model(&self) -> &Autoencoder {
        &self.model
    }

    /// Where the model runs.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The config file saved next to weights at `weights`: same path, `.json` extension.
    pub fn config_path(weights: &Path) -> PathBuf {
        weights.with_extension("json")
    }

    /// Saves the weights as a burn record (burnpack) at `weights` and the config as JSON at
    /// [`config_path`](Self::config_path)`(weights)`.
    ///
    /// # Errors
    /// [`CodecError::Io`] or [`CodecError::Record`] naming the file.
    pub fn save(&self, weights: &Path) -> Result<(), CodecError> {
        let config_path = Self::config_path(weights);
        if config_path == weights {
            return Err(CodecError::InvalidParameter {
                field: "weights path",
                value: weights.display().to_string(),
                reason: "must not end in .json, the config is saved there",
            });
        }
        std::fs::write(&config_path, self.config.to_json()).map_err(|source| CodecError::Io {
            path: config_path.clone(),
            source,
        })?;
        self.model
            .clone()
            .into_record()
            .save(weights)
            .map_err(|e| CodecError::Record {
                path: weights.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Loads a codec saved by [`save`](Self::save) onto `device`.
    ///
    /// # Errors
    /// [`CodecError::Io`], [`CodecError::Json`], config validation errors, or
    /// [`CodecError::Record`] when the weights are missing or do not fit the config.
    pub fn load(weights: &Path, device: &Device) -> Result<Self, CodecError> {
        let config_path = Self::config_path(weights);
        let text = std::fs::read_to_string(&config_path).map_err(|source| CodecError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config: AutoencoderConfig =
            serde_json::from_str(&text).map_err(|source| CodecError::Json {
                context: config_path.display().to_string(),
                source,
            })?;
        let record_error = |e: burn::store::RecordError| CodecError::Record {
            path: weights.to_path_buf(),
            reason: e.to_string(),
        };
        let record = ModuleRecord::load(weights).map_err(record_error)?;
        let model = config
            .init(&device.clone().inner())?
            .try_load_record(record)
            .map_err(record_error)?;
        Self::new(config, model)
    }

    /// The quantized latent a payload for `feature` carries (symbols over [`LATENT_RANGE`]).
    ///
    /// # Errors
    /// Shape errors (channels other than the config's), non-finite inputs or latents.
    pub fn latent_quantized(&self, feature: Tensor<4>) -> Result<Quantized, CodecError> {
        let [batch, channels, height, width] = feature.dims();
        check_feature_shape([batch, channels, height, width])?;
        self.check_channels(channels)?;
        let feature = feature.without_autodiff().to_device(&self.device);
        let latent = self.model.encode_latent(feature);
        let shape = latent.dims();
        let values =
            latent
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| CodecError::TensorData {
                    what: "autoencoder latent",
                    reason: format!("{e:?}"),
                })?;
        // A NaN input would quantize silently to a valid symbol; refuse it instead.
        check_finite(&values)?;
        Ok(quantize_with_ranges(
            &values,
            shape,
            self.config.bits,
            false,
            vec![LATENT_RANGE],
        ))
    }

    /// Decodes a payload into the dequantized latent (before the decoder conv).
    ///
    /// # Errors
    /// Header errors, [`CodecError::CodecMismatch`], [`CodecError::ShapeMismatch`] for a
    /// channel count other than the config's, length or entropy errors.
    pub fn decode_latent_quantized(&self, payload: &[u8]) -> Result<Quantized, CodecError> {
        let (header, body) = read_header(payload)?;
        expect_codec(self.id(), header.codec)?;
        self.check_channels(header.shape[1])?;
        let shape = self.config.latent_shape(header.shape);
        let elements = check_feature_shape(shape)?;
        let symbols =
            read_symbol_body(body, self.config.bits, elements, header.entropy_coded_body)?;
        Ok(Quantized {
            bits: self.config.bits,
            shape,
            per_channel: false,
            ranges: vec![LATENT_RANGE],
            symbols,
        })
    }

    fn check_channels(&self, channels: usize) -> Result<(), CodecError> {
        if channels == self.config.channels {
            Ok(())
        } else {
            Err(CodecError::ShapeMismatch {
                what: "feature channels of the autoencoder",
                expected: self.config.channels.to_string(),
                found: channels.to_string(),
            })
        }
    }
}

impl FeatureCodec for AutoencoderCodec {
    fn id(&self) -> CodecId {
        self.config.codec_id()
    }

    fn encode(&self, feature: Tensor<4>) -> Result<Payload, CodecError> {
        let [batch, channels, height, width] = feature.dims();
        let quantized = self.latent_quantized(feature)?;
        let (body, entropy_coded_body, _) =
            symbol_body(&quantized.symbols, self.config.bits, self.config.entropy)?;
        let header = PayloadHeader {
            codec: self.id(),
            shape: [batch, channels, height, width],
            entropy_coded_body,
        };
        Ok(PayloadWriter::new(&header, body.len()).body(&body).finish())
    }

    fn decode(&self, payload: &[u8], device: &Device) -> Result<Tensor<4>, CodecError> {
        let (header, _) = read_header(payload)?;
        let [_, _, height, width] = header.shape;
        let latent = self.decode_latent_quantized(payload)?;
        let latent = feature_tensor(latent.dequantize(), latent.shape, &self.device);
        Ok(self
            .model
            .decode_latent(latent, [height, width])
            .to_device(device))
    }
}
