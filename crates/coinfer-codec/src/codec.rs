//! The [`FeatureCodec`] trait, codec identifiers, and the tensor ⇄ slice glue the codecs share.

use std::fmt;
use std::sync::Arc;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::float32::Float32Codec;
use crate::pack::packed_len;
use crate::payload::{Payload, check_feature_shape, overhead_bits};
use crate::quant_codec::QuantCodec;
use crate::quantize::check_bits;

/// Identifies a codec and its parameters; written (compactly) into every payload header and
/// stored as JSON in codec families and split plans.
///
/// JSON form: `{"kind":"quant","bits":4,"per_channel":true,"entropy":false}`; `entropy`
/// may be omitted (defaults to `false`).
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
    },
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

    /// `Autoencoder` with fixed-length packing.
    pub fn autoencoder(ratio: u16, bits: u8) -> Self {
        Self::Autoencoder {
            ratio,
            bits,
            entropy: false,
        }
    }

    /// Checks the parameters (bits in 1..=8, ratio ≥ 1).
    ///
    /// # Errors
    /// [`CodecError::BitsOutOfRange`] or [`CodecError::InvalidParameter`].
    pub fn check(&self) -> Result<(), CodecError> {
        match *self {
            Self::Float32 => Ok(()),
            Self::Quant { bits, .. } => check_bits(bits, "codec id"),
            Self::Autoencoder { ratio, bits, .. } => {
                check_bits(bits, "codec id")?;
                if ratio == 0 {
                    return Err(CodecError::InvalidParameter {
                        field: "ratio",
                        value: "0".into(),
                        reason: "the channel reduction ratio must be at least 1",
                    });
                }
                Ok(())
            }
        }
    }

    /// Whether the codec needs trained weights (an autoencoder).
    pub fn is_learned(&self) -> bool {
        matches!(self, Self::Autoencoder { .. })
    }

    /// Whether the codec reproduces its input exactly.
    pub fn is_lossless(&self) -> bool {
        matches!(self, Self::Float32)
    }

    /// Payload bits for one sample of shape `[C, H, W]`, header and CRC included.
    ///
    /// Exact for fixed-length codecs. For entropy-coded codecs this is the fixed-length size,
    /// which is an upper bound: they never send more than that (they fall back to packing),
    /// and usually send less; measure a payload with [`Payload::bits`] for the real figure.
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
            Self::Quant {
                bits, per_channel, ..
            } => {
                let ranges = if per_channel { c } else { 1 };
                overhead_bits(ranges).saturating_add(body_bits(c, bits))
            }
            Self::Autoencoder { ratio, bits, .. } => {
                let latent = latent_channels(c as usize, ratio.max(1) as usize) as u64;
                overhead_bits(0).saturating_add(body_bits(latent, bits))
            }
        }
    }
}

/// Latent channels of an autoencoder with ratio `r` over `C` channels: `max(1, ceil(C / r))`.
pub fn latent_channels(channels: usize, ratio: usize) -> usize {
    channels.div_ceil(ratio.max(1)).max(1)
}

impl fmt::Display for CodecId {
    /// Short names: `float32`, `quant4`, `quant4-pc`, `quant4-pc-ec`, `ae-r4-b4`, `ae-r4-b4-ec`.
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
            Self::Autoencoder {
                ratio,
                bits,
                entropy,
            } => write!(f, "ae-r{ratio}-b{bits}{}", if entropy { "-ec" } else { "" }),
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
/// [`crate::AutoencoderCodec::load`] and wrap it in an [`Arc`]) and parameter errors from
/// [`CodecId::check`].
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
                entropy: true
            }
            .to_string(),
            "ae-r4-b2-ec"
        );
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
