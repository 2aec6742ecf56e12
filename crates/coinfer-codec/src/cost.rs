//! [`CodecCost`]: the floating-point work of a codec's encoder (on the device) and decoder (on
//! the edge) for one sample — what the latency model turns into encode and decode time.

use crate::codec::{CodecId, latent_channels, latent_plane};

/// Floating-point operations of one sample's encode and decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodecCost {
    /// FLOPs of the encoder (device side).
    pub encode_flops: u64,
    /// FLOPs of the decoder (edge side).
    pub decode_flops: u64,
}

/// FLOPs per element of a quantizer's encode: range scan, subtract, scale, round, clamp.
const QUANT_ENCODE_FLOPS: u64 = 6;
/// FLOPs per element of a quantizer's decode: one multiply-add.
const QUANT_DECODE_FLOPS: u64 = 2;
/// FLOPs per latent element of an autoencoder's encode after its convolution: bias, `tanh`
/// and quantization.
const AE_LATENT_ENCODE_FLOPS: u64 = 8;
/// FLOPs per latent element of an autoencoder's decode before its convolution:
/// dequantization.
const AE_LATENT_DECODE_FLOPS: u64 = 3;

impl CodecId {
    /// The work of encoding and decoding one `[C, H, W]` sample.
    ///
    /// Quantizers: 6 FLOPs per element on the device, 2 on the edge. Autoencoders: the encoder
    /// convolution (`2·k²·C·C'` per latent pixel; a stride-`s` encoder has
    /// `ceil(H/s)·ceil(W/s)` of them), the activation and quantization of the latent, and the
    /// decoder convolution back to `C` channels (a transposed convolution for `s > 1`: the
    /// same `2·k²·C·C'` per latent pixel) with its output ReLU.
    ///
    /// ```
    /// use coinfer_codec::CodecId;
    ///
    /// let cost = CodecId::quant(8, true).compute_cost([32, 7, 7]);
    /// assert_eq!((cost.encode_flops, cost.decode_flops), (6 * 1568, 2 * 1568));
    /// let one = CodecId::autoencoder(4, 4).compute_cost([32, 8, 8]);
    /// let strided = CodecId::Autoencoder { ratio: 4, bits: 4, entropy: false, kernel: 1, stride: 2 }
    ///     .compute_cost([32, 8, 8]);
    /// assert!(strided.encode_flops * 4 == one.encode_flops);
    /// ```
    pub fn compute_cost(&self, feature_shape: [usize; 3]) -> CodecCost {
        let [c, h, w] = feature_shape.map(|d| d as u64);
        let pixels = h.saturating_mul(w);
        let elements = c.saturating_mul(pixels);
        let (encode_flops, decode_flops) = match *self {
            CodecId::Float32 => (0, 0),
            CodecId::Quant { .. } => (
                QUANT_ENCODE_FLOPS.saturating_mul(elements),
                QUANT_DECODE_FLOPS.saturating_mul(elements),
            ),
            CodecId::Autoencoder {
                ratio,
                kernel,
                stride,
                ..
            } => {
                let latent = latent_channels(c as usize, usize::from(ratio)) as u64;
                let [lh, lw] = latent_plane([h, w], stride);
                let latent_pixels = lh.saturating_mul(lw);
                let k2 = u64::from(kernel) * u64::from(kernel);
                let conv = (2 * k2)
                    .saturating_mul(c)
                    .saturating_mul(latent)
                    .saturating_mul(latent_pixels);
                let latent_elements = latent.saturating_mul(latent_pixels);
                (
                    conv.saturating_add(AE_LATENT_ENCODE_FLOPS.saturating_mul(latent_elements)),
                    conv.saturating_add(AE_LATENT_DECODE_FLOPS.saturating_mul(latent_elements))
                        .saturating_add(elements),
                )
            }
        };
        CodecCost {
            encode_flops,
            decode_flops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(ratio: u16, kernel: u8, stride: u8) -> CodecId {
        CodecId::Autoencoder {
            ratio,
            bits: 4,
            entropy: false,
            kernel,
            stride,
        }
    }

    #[test]
    fn formulas_per_codec() {
        assert_eq!(
            CodecId::Float32.compute_cost([16, 14, 14]),
            CodecCost::default()
        );
        // 1×1 autoencoder, 16 → 4 channels over 14×14: conv 2·16·4·196 = 25088 each way.
        let cost = ae(4, 1, 1).compute_cost([16, 14, 14]);
        assert_eq!(cost.encode_flops, 25088 + 8 * 4 * 196);
        assert_eq!(cost.decode_flops, 25088 + 3 * 4 * 196 + 16 * 196);
        // A 3×3 kernel costs 9× the convolution.
        let k3 = ae(4, 3, 1).compute_cost([16, 14, 14]);
        assert_eq!(k3.encode_flops, 9 * 25088 + 8 * 4 * 196);
    }

    #[test]
    fn stride_divides_the_latent_plane() {
        // 14×14 at stride 2 → 7×7 latent pixels; at stride 4 → 4×4 (ceil).
        let s2 = ae(4, 3, 2).compute_cost([16, 14, 14]);
        assert_eq!(s2.encode_flops, 2 * 9 * 16 * 4 * 49 + 8 * 4 * 49);
        assert_eq!(s2.decode_flops, 2 * 9 * 16 * 4 * 49 + 3 * 4 * 49 + 16 * 196);
        let s4 = ae(4, 3, 4).compute_cost([16, 14, 14]);
        assert_eq!(s4.encode_flops, 2 * 9 * 16 * 4 * 16 + 8 * 4 * 16);
    }
}
