//! Uniform quantization codec: min/max ranges, `b`-bit symbols, packed or entropy coded.

use burn::prelude::*;

use crate::codec::{CodecId, FeatureCodec, expect_codec, feature_tensor, feature_values};
use crate::entropy::EntropyStats;
use crate::error::CodecError;
use crate::payload::{
    Payload, PayloadHeader, PayloadWriter, check_feature_shape, read_header, read_ranges,
    read_symbol_body, symbol_body,
};
use crate::quantize::{Quantized, check_bits, quantize};

/// Uniform `bits`-bit quantization with per-tensor or per-channel min/max ranges.
///
/// The payload stores the ranges as `f32` and the symbols packed at `bits` bits each, or, with
/// [`with_entropy`](Self::with_entropy), rANS-coded under their empirical histogram whenever
/// that is smaller. Decoding returns exactly [`Quantized::dequantize`] of
/// [`quantize_values`](Self::quantize_values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantCodec {
    bits: u8,
    per_channel: bool,
    entropy: bool,
}

impl QuantCodec {
    /// A fixed-length quantizer.
    ///
    /// # Errors
    /// [`CodecError::BitsOutOfRange`] unless `1 <= bits <= 8`.
    pub fn new(bits: u8, per_channel: bool) -> Result<Self, CodecError> {
        check_bits(bits, "QuantCodec::new")?;
        Ok(Self {
            bits,
            per_channel,
            entropy: false,
        })
    }

    /// Turns the lossless entropy stage on or off.
    #[must_use]
    pub fn with_entropy(mut self, entropy: bool) -> Self {
        self.entropy = entropy;
        self
    }

    /// Bit width.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Whether ranges are per channel.
    pub fn per_channel(&self) -> bool {
        self.per_channel
    }

    /// Whether the entropy stage is on.
    pub fn entropy(&self) -> bool {
        self.entropy
    }

    /// The quantized form of NCHW `values` (what a payload carries).
    ///
    /// # Errors
    /// Shape, non-finite and range errors from [`quantize`].
    pub fn quantize_values(
        &self,
        values: &[f32],
        shape: [usize; 4],
    ) -> Result<Quantized, CodecError> {
        check_feature_shape(shape)?;
        quantize(values, shape, self.bits, self.per_channel)
    }

    /// Encodes NCHW values of `shape`.
    ///
    /// # Errors
    /// As [`quantize_values`](Self::quantize_values).
    pub fn encode_values(&self, values: &[f32], shape: [usize; 4]) -> Result<Payload, CodecError> {
        self.encode_with_stats(values, shape)
            .map(|(payload, _)| payload)
    }

    /// Encodes and reports what the entropy stage saved over fixed-length packing (nothing
    /// when it is off or did not pay off).
    ///
    /// # Errors
    /// As [`quantize_values`](Self::quantize_values).
    pub fn encode_with_stats(
        &self,
        values: &[f32],
        shape: [usize; 4],
    ) -> Result<(Payload, EntropyStats), CodecError> {
        let quantized = self.quantize_values(values, shape)?;
        self.encode_quantized(&quantized)
    }

    /// Writes an already quantized feature (its bits and range mode must match the codec).
    ///
    /// # Errors
    /// [`CodecError::CodecMismatch`] for another bit width or range mode,
    /// [`CodecError::ShapeMismatch`] for inconsistent symbols or ranges.
    pub fn encode_quantized(
        &self,
        quantized: &Quantized,
    ) -> Result<(Payload, EntropyStats), CodecError> {
        let found = CodecId::Quant {
            bits: quantized.bits,
            per_channel: quantized.per_channel,
            entropy: self.entropy,
        };
        expect_codec(self.id(), found)?;
        let elements = check_feature_shape(quantized.shape)?;
        let range_count = if self.per_channel {
            quantized.shape[1]
        } else {
            1
        };
        if quantized.symbols.len() != elements || quantized.ranges.len() != range_count {
            return Err(CodecError::ShapeMismatch {
                what: "quantized feature",
                expected: format!("{elements} symbols and {range_count} ranges"),
                found: format!(
                    "{} symbols and {} ranges",
                    quantized.symbols.len(),
                    quantized.ranges.len()
                ),
            });
        }
        let (body, entropy_coded_body, packed_len) =
            symbol_body(&quantized.symbols, self.bits, self.entropy)?;
        let header = PayloadHeader {
            codec: self.id(),
            shape: quantized.shape,
            entropy_coded_body,
        };
        let payload = PayloadWriter::new(&header, range_count * 8 + body.len())
            .ranges(&quantized.ranges)
            .body(&body)
            .finish();
        let fixed_bytes = payload.len() - body.len() + packed_len;
        let stats = EntropyStats {
            fixed_bits: fixed_bytes as u64 * 8,
            coded_bits: payload.bits(),
        };
        Ok((payload, stats))
    }

    /// Decodes a payload into its quantized form (symbols and ranges).
    ///
    /// # Errors
    /// Any header error, [`CodecError::CodecMismatch`], range, length, padding or entropy
    /// errors.
    pub fn decode_quantized(&self, payload: &[u8]) -> Result<Quantized, CodecError> {
        let (header, sections) = read_header(payload)?;
        expect_codec(self.id(), header.codec)?;
        let (ranges, body) = read_ranges(&header, sections)?;
        let symbols = read_symbol_body(
            body,
            self.bits,
            header.elements(),
            header.entropy_coded_body,
        )?;
        Ok(Quantized {
            bits: self.bits,
            shape: header.shape,
            per_channel: self.per_channel,
            ranges,
            symbols,
        })
    }

    /// Decodes a payload into dequantized NCHW values and their shape.
    ///
    /// # Errors
    /// As [`decode_quantized`](Self::decode_quantized).
    pub fn decode_values(&self, payload: &[u8]) -> Result<(Vec<f32>, [usize; 4]), CodecError> {
        let quantized = self.decode_quantized(payload)?;
        Ok((quantized.dequantize(), quantized.shape))
    }
}

impl FeatureCodec for QuantCodec {
    /// The training form of this quantizer: quantize-dequantize with a straight-through
    /// gradient, `x + (q(x) − x).detach()` — what the edge sees in the forward pass, the
    /// identity in the backward pass. Ranges are the batch's min/max (per channel or for the
    /// tensor), as [`encode`](FeatureCodec::encode) computes them per payload.
    ///
    /// ```
    /// use burn::prelude::*;
    /// use coinfer_codec::{FeatureCodec, QuantCodec};
    ///
    /// let device = Device::default();
    /// let x = Tensor::<4>::from_floats([[[[0.0, 0.2, 0.8, 1.0]]]], &device);
    /// let q = QuantCodec::new(1, false)?.straight_through(x);
    /// assert_eq!(q.into_data().to_vec::<f32>().unwrap(), vec![0.0, 0.0, 1.0, 1.0]);
    /// # Ok::<(), coinfer_codec::CodecError>(())
    /// ```
    fn straight_through(&self, x: Tensor<4>) -> Tensor<4> {
        let levels = ((1u32 << self.bits) - 1) as f32;
        let [b, c, h, w] = x.dims();
        let (min, max) = if self.per_channel {
            let flat = x.clone().detach().swap_dims(0, 1).reshape([c, b * h * w]);
            (
                flat.clone().min_dim(1).reshape([1, c, 1, 1]),
                flat.max_dim(1).reshape([1, c, 1, 1]),
            )
        } else {
            let d = x.clone().detach();
            (
                d.clone().min().reshape([1, 1, 1, 1]),
                d.max().reshape([1, 1, 1, 1]),
            )
        };
        let scale = (max - min.clone()).clamp_min(1e-12).div_scalar(levels);
        let q = ((x.clone() - min.clone()) / scale.clone())
            .round()
            .clamp(0.0, levels)
            * scale
            + min;
        x.clone() + (q - x).detach()
    }

    fn id(&self) -> CodecId {
        CodecId::Quant {
            bits: self.bits,
            per_channel: self.per_channel,
            entropy: self.entropy,
        }
    }

    fn encode(&self, feature: Tensor<4>) -> Result<Payload, CodecError> {
        let (values, shape) = feature_values(feature)?;
        self.encode_values(&values, shape)
    }

    fn decode(&self, payload: &[u8], device: &Device) -> Result<Tensor<4>, CodecError> {
        let (values, shape) = self.decode_values(payload)?;
        Ok(feature_tensor(values, shape, device))
    }
}
