//! [`CodecCost`]: the floating-point work of a codec's encoder (on the device) and decoder (on
//! the edge) for one sample — what the latency model turns into encode and decode time.

use crate::codec::{CodecId, latent_channels, latent_plane};
use crate::image_codec::ImageFormat;

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

/// FLOP-equivalents per input element (pixel × channel) of an image codec's encoder and
/// decoder, so that a compute profile scales image codecs as it scales every other codec.
/// They are the codec's measured time per element on the reference machine, expressed on the
/// scale of the 8-bit quantizer timed in the same run (whose encode the model counts as 6
/// FLOPs an element; its decode then measures 2, as the model counts): codec code is scalar,
/// branchy work like the quantizer's, not GEMM, so it is calibrated on a codec rather than on
/// the network's throughput (which would charge a microcontroller ~17× more for it; the
/// example prints both). Measured with
/// `cargo run --release -p coinfer-codec --example image_codecs` (`encode_flops_per_element`,
/// `decode_flops_per_element`; one constant per format over its qualities; docs/codecs.md).
fn image_flops_per_pixel(format: ImageFormat) -> (u64, u64) {
    match format {
        ImageFormat::Png => (PNG_FLOPS.0, PNG_FLOPS.1),
        ImageFormat::Jpeg => (JPEG_FLOPS.0, JPEG_FLOPS.1),
        ImageFormat::Webp => (WEBP_FLOPS.0, WEBP_FLOPS.1),
        ImageFormat::WebpLossless => (WEBP_LOSSLESS_FLOPS.0, WEBP_LOSSLESS_FLOPS.1),
    }
}

/// (encode, decode) FLOP-equivalents per element of PNG (see [`image_flops_per_pixel`]):
/// measured 273 and 42.
const PNG_FLOPS: (u64, u64) = (270, 42);
/// (encode, decode) FLOP-equivalents per element of JPEG: measured 69–84 and 47–54 over
/// qualities 50–90.
const JPEG_FLOPS: (u64, u64) = (75, 50);
/// (encode, decode) FLOP-equivalents per element of lossy WebP: measured 646–718 and 85–116
/// over qualities 50–90.
const WEBP_FLOPS: (u64, u64) = (660, 90);
/// (encode, decode) FLOP-equivalents per element of lossless WebP: measured 914 and 83.
const WEBP_LOSSLESS_FLOPS: (u64, u64) = (910, 85);

impl CodecId {
    /// The work of encoding and decoding one `[C, H, W]` sample.
    ///
    /// Quantizers: 6 FLOPs per element on the device, 2 on the edge. Autoencoders: the encoder
    /// convolution (`2·k²·C·C'` per latent pixel; a stride-`s` encoder has
    /// `ceil(H/s)·ceil(W/s)` of them), the activation and quantization of the latent, and the
    /// decoder: dequantization, nearest `×s` upsampling (free), and a convolution back to `C`
    /// channels on the feature's `H·W` pixels (`2·k²·C·C'` each) with its output ReLU.
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
            CodecId::Image { format, .. } => {
                let (encode, decode) = image_flops_per_pixel(format);
                (
                    encode.saturating_mul(elements),
                    decode.saturating_mul(elements),
                )
            }
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
                let per_pixel = (2 * k2).saturating_mul(c).saturating_mul(latent);
                let encode_conv = per_pixel.saturating_mul(latent_pixels);
                let decode_conv = per_pixel.saturating_mul(pixels);
                let latent_elements = latent.saturating_mul(latent_pixels);
                (
                    encode_conv
                        .saturating_add(AE_LATENT_ENCODE_FLOPS.saturating_mul(latent_elements)),
                    decode_conv
                        .saturating_add(AE_LATENT_DECODE_FLOPS.saturating_mul(latent_elements))
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
    fn image_codecs_cost_per_input_element() {
        let webp = CodecId::image(ImageFormat::Webp, 50).compute_cost([1, 28, 28]);
        assert_eq!(
            (webp.encode_flops, webp.decode_flops),
            (WEBP_FLOPS.0 * 784, WEBP_FLOPS.1 * 784)
        );
        // Quality does not change the constant; colour triples the elements.
        assert_eq!(
            CodecId::image(ImageFormat::Webp, 90).compute_cost([1, 28, 28]),
            webp
        );
        let rgb = CodecId::image(ImageFormat::Png, 0).compute_cost([3, 32, 32]);
        assert_eq!(rgb.encode_flops, PNG_FLOPS.0 * 3 * 1024);
        // Every image codec costs more than the 8-bit quantizer it competes with.
        let quant = CodecId::quant(8, false).compute_cost([1, 28, 28]);
        for format in ImageFormat::ALL {
            let quality = if format.is_lossless() { 0 } else { 75 };
            let cost = CodecId::image(format, quality).compute_cost([1, 28, 28]);
            assert!(cost.encode_flops > quant.encode_flops, "{format}");
            assert!(cost.decode_flops > quant.decode_flops, "{format}");
        }
    }

    #[test]
    fn stride_divides_the_latent_plane() {
        // 14×14 at stride 2 → 7×7 latent pixels; at stride 4 → 4×4 (ceil).
        let s2 = ae(4, 3, 2).compute_cost([16, 14, 14]);
        assert_eq!(s2.encode_flops, 2 * 9 * 16 * 4 * 49 + 8 * 4 * 49);
        // The decoder convolves the upsampled latent at the feature's full 14×14.
        assert_eq!(
            s2.decode_flops,
            2 * 9 * 16 * 4 * 196 + 3 * 4 * 49 + 16 * 196
        );
        let s4 = ae(4, 3, 4).compute_cost([16, 14, 14]);
        assert_eq!(s4.encode_flops, 2 * 9 * 16 * 4 * 16 + 8 * 4 * 16);
    }
}
