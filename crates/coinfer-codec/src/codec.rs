//! The [`FeatureCodec`] trait, codec identifiers, and the tensor ⇄ slice glue the codecs share.

use std::fmt;
use std::sync::Arc;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::float32::Float32Codec;
use crate::image_codec::{ImageFormat, ImageNormalization, check_quality};
use crate::pack::packed_len;
use crate::payload::{Payload, check_feature_shape, overhead_bits};
use crate::quant_codec::QuantCodec;
use crate::quantize::check_bits;

/// Identifies a codec and its parameters; written (compactly) into every payload header and
/// stored as JSON in codec families and split plans.
///
/// JSON form: `{"kind":"quant","bits":4,"per_channel":true,"entropy":false}`; `entropy`
/// may be omitted (defaults to `false`), and so may an autoencoder's `kernel` and `stride`
/// (default 1: plans written before they were recorded load as the 1×1 autoencoders they were).
///
/// On the wire (payload headers and runtime frames) a codec is its [`CodecWire`] code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CodecId {
    /// Raw little-endian `f32` values (lossless).
    Float32,
    /// Uniform `bits`-bit quantization over min/max ranges.
    Quant {
        /// Bit width, 1..=8.
        bits: u8,
        /// One range per channel (`true`) or one for the tensor.
        per_channel: bool,
        /// rANS-code the symbols when that is smaller than fixed-length packing.
        #[serde(default)]
        entropy: bool,
    },
    /// Learned conv autoencoder `C → ceil(C/ratio)` with a `bits`-bit quantized latent.
    Autoencoder {
        /// Channel reduction ratio r ≥ 1.
        ratio: u16,
        /// Latent bit width, 1..=8.
        bits: u8,
        /// rANS-code the latent symbols when that is smaller than fixed-length packing.
        #[serde(default)]
        entropy: bool,
        /// Square kernel of the encoder and decoder convolutions: odd, 1..=[`MAX_AE_KERNEL`].
        #[serde(default = "one")]
        kernel: u8,
        /// Spatial stride of the encoder (the decoder upsamples by the same factor):
        /// 1..=[`MAX_AE_STRIDE`]; the latent is `ceil(H/s) × ceil(W/s)`.
        #[serde(default = "one")]
        stride: u8,
    },
    /// The raw input image sent as an image file — PNG, JPEG or WebP — the way a user would
    /// send it (split 0 only; see [`crate::ImageCodec`]).
    Image {
        /// The file format.
        format: ImageFormat,
        /// Quality 1..=100 of a lossy format (JPEG, WebP); 0 for a lossless one.
        #[serde(default)]
        quality: u8,
    },
}

/// Largest autoencoder kernel a codec id may name.
pub const MAX_AE_KERNEL: u8 = 15;
/// Largest autoencoder stride a codec id may name.
pub const MAX_AE_STRIDE: u8 = 8;

fn one() -> u8 {
    1
}

impl CodecId {
    /// `Quant` with fixed-length packing.
    pub fn quant(bits: u8, per_channel: bool) -> Self {
        Self::Quant {
            bits,
            per_channel,
            entropy: false,
        }
    }

    /// A 1×1, stride-1 `Autoencoder` with fixed-length packing.
    pub fn autoencoder(ratio: u16, bits: u8) -> Self {
        Self::Autoencoder {
            ratio,
            bits,
            entropy: false,
            kernel: 1,
            stride: 1,
        }
    }

    /// An image codec of `format` at `quality` (0 for the lossless formats).
    pub fn image(format: ImageFormat, quality: u8) -> Self {
        Self::Image { format, quality }
    }

    /// Checks the parameters (bits in 1..=8, ratio ≥ 1, an odd autoencoder kernel up to
    /// [`MAX_AE_KERNEL`], a stride in 1..=[`MAX_AE_STRIDE`], an image quality in 1..=100 for a
    /// lossy format and 0 for a lossless one).
    ///
    /// # Errors
    /// [`CodecError::BitsOutOfRange`] or [`CodecError::InvalidParameter`].
    pub fn check(&self) -> Result<(), CodecError> {
        match *self {
            Self::Float32 => Ok(()),
            Self::Image { format, quality } => check_quality(format, quality),
            Self::Quant { bits, .. } => check_bits(bits, "codec id"),
            Self::Autoencoder {
                ratio,
                bits,
                kernel,
                stride,
                ..
            } => {
                check_bits(bits, "codec id")?;
                let invalid = |field, value: u16, reason| {
                    Err(CodecError::InvalidParameter {
                        field,
                        value: value.to_string(),
                        reason,
                    })
                };
                if ratio == 0 {
                    return invalid("ratio", 0, "the channel reduction ratio must be at least 1");
                }
                if kernel == 0 || kernel.is_multiple_of(2) || kernel > MAX_AE_KERNEL {
                    return invalid("kernel", kernel.into(), "must be odd and at most 15");
                }
                if stride == 0 || stride > MAX_AE_STRIDE {
                    return invalid("stride", stride.into(), "must be in 1..=8");
                }
                Ok(())
            }
        }
    }

    /// Whether the codec needs trained weights (an autoencoder).
    pub fn is_learned(&self) -> bool {
        matches!(self, Self::Autoencoder { .. })
    }

    /// Whether the codec reproduces its input exactly (a lossless image format reproduces
    /// the 8-bit image the input was normalised from).
    pub fn is_lossless(&self) -> bool {
        match self {
            Self::Float32 => true,
            Self::Image { format, .. } => format.is_lossless(),
            _ => false,
        }
    }

    /// Whether the codec compresses the input image as an image file (PNG, JPEG, WebP).
    pub fn is_image(&self) -> bool {
        matches!(self, Self::Image { .. })
    }

    /// Payload bits for one sample of shape `[C, H, W]`, header and CRC included.
    ///
    /// Exact for fixed-length codecs. For entropy-coded codecs this is the fixed-length size,
    /// which is an upper bound: they never send more than that (they fall back to packing),
    /// and usually send less; measure a payload with [`Payload::bits`] for the real figure.
    /// For image codecs, whose size depends on the picture, it is only a nominal figure: the
    /// uncompressed 8-bit image with the payload's overhead (header, normalisation, length,
    /// CRC); measure them with [`crate::mean_payload_bits`].
    pub fn bits_per_sample(&self, feature_shape: [usize; 3]) -> u64 {
        let [c, h, w] = feature_shape.map(|d| d as u64);
        let plane = h.saturating_mul(w);
        let body_bits = |channels: u64, bits: u8| {
            let count = channels.saturating_mul(plane);
            usize::try_from(count)
                .ok()
                .and_then(|n| packed_len(n, bits))
                .map_or(u64::MAX, |bytes| (bytes as u64).saturating_mul(8))
        };
        match *self {
            Self::Float32 => {
                overhead_bits(0).saturating_add(c.saturating_mul(plane).saturating_mul(32))
            }
            Self::Image { .. } => overhead_bits(0)
                .saturating_add(64 * c + 32)
                .saturating_add(c.saturating_mul(plane).saturating_mul(8)),
            Self::Quant {
                bits, per_channel, ..
            } => {
                let ranges = if per_channel { c } else { 1 };
                overhead_bits(ranges).saturating_add(body_bits(c, bits))
            }
            Self::Autoencoder {
                ratio,
                bits,
                stride,
                ..
            } => {
                let latent = latent_channels(c as usize, ratio.max(1) as usize) as u64;
                let [lh, lw] = latent_plane([h, w], stride);
                let count = latent.saturating_mul(lh).saturating_mul(lw);
                let body = usize::try_from(count)
                    .ok()
                    .and_then(|n| packed_len(n, bits))
                    .map_or(u64::MAX, |bytes| (bytes as u64).saturating_mul(8));
                overhead_bits(0).saturating_add(body)
            }
        }
    }
}

/// The latent's spatial size `[ceil(H/s), ceil(W/s)]` for an encoder of stride `s`.
pub fn latent_plane(plane: [u64; 2], stride: u8) -> [u64; 2] {
    let s = u64::from(stride.max(1));
    plane.map(|d| d.div_ceil(s))
}

/// Latent channels of an autoencoder with ratio `r` over `C` channels: `max(1, ceil(C / r))`.
pub fn latent_channels(channels: usize, ratio: usize) -> usize {
    channels.div_ceil(ratio.max(1)).max(1)
}

impl fmt::Display for CodecId {
    /// Short names: `float32`, `quant4`, `quant4-pc`, `quant4-pc-ec`, `ae-r4-b4`, `ae-r4-b4-ec`;
    /// an autoencoder's kernel and stride appear when they are not 1 (`ae-r4-b4-k3-s2`); image
    /// codecs are `png`, `jpeg-q75`, `webp-q50`, `webp-lossless`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Float32 => write!(f, "float32"),
            Self::Quant {
                bits,
                per_channel,
                entropy,
            } => write!(
                f,
                "quant{bits}{}{}",
                if per_channel { "-pc" } else { "" },
                if entropy { "-ec" } else { "" }
            ),
            Self::Image { format, quality } => {
                if format.is_lossless() {
                    write!(f, "{format}")
                } else {
                    write!(f, "{format}-q{quality}")
                }
            }
            Self::Autoencoder {
                ratio,
                bits,
                entropy,
                kernel,
                stride,
            } => {
                write!(f, "ae-r{ratio}-b{bits}")?;
                if kernel != 1 {
                    write!(f, "-k{kernel}")?;
                }
                if stride != 1 {
                    write!(f, "-s{stride}")?;
                }
                if entropy {
                    write!(f, "-ec")?;
                }
                Ok(())
            }
        }
    }
}

/// Compresses the intermediate feature of a split DNN on the device and restores it on the
/// edge.
///
/// `decode(&encode(x)?.bytes, device)` returns exactly the dequantized feature the codec
/// defines (bit-exact; the input itself for [`CodecId::Float32`]). Decoding never panics:
/// malformed, truncated or foreign payloads give a [`CodecError`].
pub trait FeatureCodec {
    /// The codec and its parameters.
    fn id(&self) -> CodecId;

    /// Encodes a `[B, C, H, W]` feature (any device, any float dtype) into a payload.
    ///
    /// # Errors
    /// Invalid shapes (empty, over [`crate::MAX_FEATURE_ELEMENTS`]), non-finite values for
    /// quantizing codecs, a channel count the codec was not built for.
    fn encode(&self, feature: Tensor<4>) -> Result<Payload, CodecError>;

    /// Decodes a payload into a `[B, C, H, W]` tensor on `device`.
    ///
    /// # Errors
    /// Any malformed payload, or one written by another codec ([`CodecError::CodecMismatch`]).
    fn decode(&self, payload: &[u8], device: &Device) -> Result<Tensor<4>, CodecError>;

    /// Payload bits for one sample of shape `[C, H, W]`, header included (see
    /// [`CodecId::bits_per_sample`]).
    fn bits_per_sample(&self, feature_shape: [usize; 3]) -> u64 {
        self.id().bits_per_sample(feature_shape)
    }

    /// The codec's training form: a differentiable stand-in for `roundtrip` that fine-tuning
    /// puts between the device half and the frozen edge half (forward: what the edge sees;
    /// backward: a straight-through gradient). The identity by default — right for lossless
    /// codecs; every lossy fixed codec overrides it ([`QuantCodec`]'s quantize-dequantize).
    /// Learned codecs train their own weights instead ([`crate::Autoencoder::forward`]).
    fn straight_through(&self, feature: Tensor<4>) -> Tensor<4> {
        feature
    }

    /// `decode(encode(feature))` on the feature's device: what the edge half will see.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn roundtrip(&self, feature: Tensor<4>) -> Result<Tensor<4>, CodecError> {
        let device = feature.device();
        let payload = self.encode(feature)?;
        self.decode(&payload.bytes, &device)
    }
}

/// A codec that threads can share (the runtime's edge worker decodes with it while connection
/// threads read its id; the search keeps a bank of them).
pub type SharedCodec = Arc<dyn FeatureCodec + Send + Sync>;

/// A codec that needs no weights (float32 or uniform quantization), built from its id.
///
/// ```
/// use coinfer_codec::{CodecId, fixed_codec};
///
/// let codec = fixed_codec(CodecId::quant(8, true))?;
/// assert_eq!(codec.id(), CodecId::quant(8, true));
/// assert!(fixed_codec(CodecId::autoencoder(4, 4)).is_err());
/// # Ok::<(), coinfer_codec::CodecError>(())
/// ```
///
/// # Errors
/// [`CodecError::InvalidParameter`] for an autoencoder id (load it with
/// [`crate::AutoencoderCodec::load`] and wrap it in an [`Arc`]) or an image id (it needs the
/// input's normalisation: [`input_codec`]), and parameter errors from [`CodecId::check`].
pub fn fixed_codec(id: CodecId) -> Result<SharedCodec, CodecError> {
    id.check()?;
    match id {
        CodecId::Float32 => Ok(Arc::new(Float32Codec)),
        CodecId::Quant {
            bits,
            per_channel,
            entropy,
        } => Ok(Arc::new(
            QuantCodec::new(bits, per_channel)?.with_entropy(entropy),
        )),
        CodecId::Autoencoder { .. } => Err(CodecError::InvalidParameter {
            field: "codec id",
            value: id.to_string(),
            reason: "an autoencoder needs trained weights; load it with AutoencoderCodec::load",
        }),
        CodecId::Image { .. } => Err(CodecError::InvalidParameter {
            field: "codec id",
            value: id.to_string(),
            reason: "an image codec needs the input's normalisation; build it with input_codec",
        }),
    }
}

/// A codec without weights for the network's input, normalised by `normalization`: image ids
/// get an [`crate::ImageCodec`] that undoes and redoes it; every other id is
/// [`fixed_codec`]'s.
///
/// ```
/// use coinfer_codec::{CodecId, ImageFormat, ImageNormalization, input_codec};
///
/// let norm = ImageNormalization::new(vec![0.286], vec![0.353])?;
/// let webp = input_codec(CodecId::image(ImageFormat::Webp, 75), &norm)?;
/// assert_eq!(webp.id().to_string(), "webp-q75");
/// assert_eq!(input_codec(CodecId::quant(8, false), &norm)?.id(), CodecId::quant(8, false));
/// # Ok::<(), coinfer_codec::CodecError>(())
/// ```
///
/// # Errors
/// As [`fixed_codec`], for a bad quality or an autoencoder id.
pub fn input_codec(
    id: CodecId,
    normalization: &ImageNormalization,
) -> Result<SharedCodec, CodecError> {
    match id {
        CodecId::Image { .. } => Ok(Arc::new(crate::ImageCodec::from_id(
            id,
            normalization.clone(),
        )?)),
        other => fixed_codec(other),
    }
}

/// Reads a feature tensor back to the host as `f32` values plus its checked shape.
pub(crate) fn feature_values(feature: Tensor<4>) -> Result<(Vec<f32>, [usize; 4]), CodecError> {
    let shape = feature.dims();
    check_feature_shape(shape)?;
    let values =
        feature
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| CodecError::TensorData {
                what: "feature",
                reason: format!("{e:?}"),
            })?;
    Ok((values, shape))
}

/// Builds a feature tensor from host values.
pub(crate) fn feature_tensor(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(values, shape), device)
}

/// Returns [`CodecError::CodecMismatch`] unless the payload's codec is `expected`.
pub(crate) fn expect_codec(expected: CodecId, found: CodecId) -> Result<(), CodecError> {
    if expected == found {
        Ok(())
    } else {
        Err(CodecError::CodecMismatch { expected, found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_tagged_and_entropy_defaults_off() {
        let id = CodecId::quant(4, true);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"quant","bits":4,"per_channel":true,"entropy":false}"#
        );
        let parsed: CodecId =
            serde_json::from_str(r#"{"kind":"autoencoder","ratio":8,"bits":2}"#).unwrap();
        assert_eq!(parsed, CodecId::autoencoder(8, 2));
        assert_eq!(
            serde_json::from_str::<CodecId>(r#"{"kind":"float32"}"#).unwrap(),
            CodecId::Float32
        );
    }

    #[test]
    fn bits_per_sample_formulas() {
        // 28-byte header + 4-byte CRC = 256 bits of overhead.
        assert_eq!(
            CodecId::Float32.bits_per_sample([16, 14, 14]),
            256 + 3136 * 32
        );
        assert_eq!(
            CodecId::quant(4, false).bits_per_sample([16, 14, 14]),
            256 + 64 + 3136 * 4
        );
        assert_eq!(
            CodecId::quant(3, true).bits_per_sample([16, 14, 14]),
            256 + 16 * 64 + 1176 * 8
        );
        // r=4 over 16 channels: 4 latent channels of 196 at 2 bits = 196 bytes.
        assert_eq!(
            CodecId::autoencoder(4, 2).bits_per_sample([16, 14, 14]),
            256 + 196 * 8
        );
        // More ratio than channels still keeps one latent channel.
        assert_eq!(latent_channels(3, 16), 1);
        assert_eq!(latent_channels(18, 4), 5);
    }

    #[test]
    fn display_names() {
        assert_eq!(CodecId::quant(4, true).to_string(), "quant4-pc");
        assert_eq!(
            CodecId::Autoencoder {
                ratio: 4,
                bits: 2,
                entropy: true,
                kernel: 1,
                stride: 1,
            }
            .to_string(),
            "ae-r4-b2-ec"
        );
        assert_eq!(
            CodecId::Autoencoder {
                ratio: 4,
                bits: 2,
                entropy: true,
                kernel: 3,
                stride: 2,
            }
            .to_string(),
            "ae-r4-b2-k3-s2-ec"
        );
    }

    #[test]
    fn check_rejects_each_bad_autoencoder_field() {
        let ae = |ratio, kernel, stride| CodecId::Autoencoder {
            ratio,
            bits: 4,
            entropy: false,
            kernel,
            stride,
        };
        let field = |id: CodecId| match id.check() {
            Err(CodecError::InvalidParameter { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(ae(0, 1, 1)), "ratio");
        assert_eq!(field(ae(4, 0, 1)), "kernel");
        assert_eq!(field(ae(4, 2, 1)), "kernel");
        assert_eq!(field(ae(4, 17, 1)), "kernel");
        assert_eq!(field(ae(4, 3, 0)), "stride");
        assert_eq!(field(ae(4, 3, 9)), "stride");
        assert!(ae(4, 15, 8).check().is_ok());
    }

    #[test]
    fn stride_shrinks_the_latent_payload() {
        let strided = CodecId::Autoencoder {
            ratio: 4,
            bits: 2,
            entropy: false,
            kernel: 3,
            stride: 2,
        };
        // 4 latent channels of ceil(14/2)·ceil(13/2) = 7·7 at 2 bits = 49 bytes.
        assert_eq!(strided.bits_per_sample([16, 14, 13]), 256 + 49 * 8);
    }

    #[test]
    fn fixed_codec_refuses_autoencoders_and_bad_bits() {
        assert!(fixed_codec(CodecId::autoencoder(4, 4)).is_err());
        assert!(matches!(
            fixed_codec(CodecId::quant(9, false)),
            Err(CodecError::BitsOutOfRange { bits: 9, .. })
        ));
        assert_eq!(
            fixed_codec(CodecId::quant(2, true)).unwrap().id(),
            CodecId::quant(2, true)
        );
    }
}
