//! Feature codecs for split-DNN co-inference: the device half compresses the intermediate
//! feature `[B, C, H, W]` into a self-describing byte payload, the edge half decodes it.
//!
//! Codecs: lossless [`Float32Codec`]; uniform 1–8-bit quantization with per-tensor or
//! per-channel ranges ([`QuantCodec`], optionally rANS entropy coded); learned conv
//! autoencoders with a quantized `tanh` latent ([`AutoencoderCodec`]: channel-only 1×1 ones,
//! and spatial, BottleNet++-style ones with a stride-2 encoder, batch norm and an
//! upsampling decoder that restores the exact feature shape), trained against the frozen edge
//! half with optional distillation from the backbone's logits by [`train_autoencoder`]). Every payload carries a header (magic, version,
//! codec id, shape, ranges) and a CRC32, and decoding hostile bytes returns a [`CodecError`],
//! never a panic. At the raw input (split 0) the image can also travel as a user would send
//! it: PNG, JPEG or WebP ([`ImageCodec`], which undoes and redoes the input normalisation).
//! A [`CodecFamily`] lists the choices at a split point with their sizes.
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_codec::{FeatureCodec, QuantCodec};
//!
//! let device = Device::default();
//! let feature = Tensor::<4>::random([1, 16, 14, 14], burn::tensor::Distribution::Default, &device);
//!
//! // 4-bit uniform quantization, one min/max range per channel.
//! let codec = QuantCodec::new(4, true)?;
//! let payload = codec.encode(feature.clone())?;
//! assert_eq!(payload.bits(), codec.bits_per_sample([16, 14, 14]));
//!
//! // The edge decodes exactly the dequantized feature.
//! let decoded = codec.decode(&payload.bytes, &device)?;
//! let (values, shape) = (feature.into_data().try_into_vec::<f32>().unwrap(), [1, 16, 14, 14]);
//! let expected = codec.quantize_values(&values, shape)?.dequantize();
//! assert_eq!(decoded.into_data().try_into_vec::<f32>().unwrap(), expected);
//!
//! // Corrupted payloads are errors, not panics.
//! let mut corrupted = payload.bytes.clone();
//! corrupted[40] ^= 1;
//! assert!(codec.decode(&corrupted, &device).is_err());
//! # Ok::<(), coinfer_codec::CodecError>(())
//! ```
//!
//! Hot loops ([`quantize`], [`pack`]) work on plain slices and vectorise; the
//! tensor API is a thin layer on top. Features: `flex` (default), `ndarray`, `wgpu` select
//! burn backends.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod autoencoder;
mod codec;
mod cost;
pub mod entropy;
mod error;
mod family;
mod float32;
mod image_codec;
pub mod pack;
mod payload;
mod quant_codec;
pub mod quantize;
mod train;
mod wire;

pub use autoencoder::{Autoencoder, AutoencoderCodec, AutoencoderConfig, LATENT_RANGE};
pub use codec::{
    CodecId, FeatureCodec, MAX_AE_KERNEL, MAX_AE_STRIDE, SharedCodec, fixed_codec, input_codec,
    latent_channels, latent_plane,
};
pub use cost::CodecCost;
pub use error::CodecError;
pub use family::{CodecEntry, CodecFamily};
pub use float32::Float32Codec;
pub use image_codec::{ImageCodec, ImageFormat, ImageNormalization, mean_payload_bits};
pub use payload::{MAX_FEATURE_ELEMENTS, Payload, PayloadHeader, read_header};
pub use quant_codec::QuantCodec;
pub use train::{
    EpochReport, TrainBatch, TrainOptions, TrainedAutoencoder, distillation_loss, train_autoencoder,
};
pub use wire::CodecWire;
