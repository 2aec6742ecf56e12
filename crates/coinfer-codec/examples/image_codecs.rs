//! What each input codec sends for a Fashion-MNIST image, and what it costs to encode and
//! decode on this machine: the figures of docs/codecs.md ("Image codecs at the input").
//!
//! ```sh
//! cargo run --release -p coinfer-codec --example image_codecs            # 1,000 test images
//! cargo run --release -p coinfer-codec --example image_codecs -- 200     # fewer
//! ```
//!
//! Every image is encoded alone (a batch of one, as a device sends it), from and to host
//! slices (no tensor copies in the timed part). One JSON line per codec: mean payload bytes
//! (what crosses the link: header, normalisation and CRC included), mean bytes of the image
//! file alone (comparable with an image library's output), mean absolute pixel error and PSNR
//! of the decoded 8-bit image, median encode and decode time per image, and those times as
//! FLOP-equivalents per input element on two scales:
//!
//! - `encode_flops_per_element` / `decode_flops_per_element`: calibrated on the 8-bit
//!   quantizer, whose work the cost model counts as 6 FLOPs an element — the scale of the
//!   image-codec constants in `crates/coinfer-codec/src/cost.rs`;
//! - `encode_nn_flops_per_element` / `decode_nn_flops_per_element`: at this machine's
//!   effective throughput on resnet-mini (its GEMM kernels), for comparison.
//!
//! A `reference` line gives both throughputs and the order-0 entropy of the 4-bit image; a
//! `pillow` line the figures Pillow measured on the same 1,000 images (issue 21).

use std::time::Instant;

use burn::prelude::*;
use coinfer_codec::{
    CodecId, ImageCodec, ImageFormat, ImageNormalization, QuantCodec, input_codec,
};
use coinfer_data::{Normalization, embedded};
use coinfer_profile::{ComputeProfile, MeasureConfig, measure_blocks};
use coinfer_split::{Network, zoo};
use serde_json::json;

/// Bytes of an image payload besides the file: header 28, (mean, std) 8, length 4, CRC 4.
const IMAGE_PAYLOAD_OVERHEAD: usize = 44;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1000,
    };
    let device = Device::default();
    let data = embedded::fashion_mnist_subset()?.test;
    let n = n.min(data.len());
    let norm = Normalization::fashion_mnist();
    let image_norm = ImageNormalization::new(norm.mean.clone(), norm.std.clone())?;

    // This machine's effective throughput on the default backbone (random weights: timing
    // does not depend on them), to express codec times as FLOP-equivalents.
    let backbone = Network::new(zoo::resnet_mini(10), &device)?;
    let table = measure_blocks(&backbone, &MeasureConfig::new(), &device)?;
    let flops_per_s = ComputeProfile::measured(table)?.effective_flops_per_s();

    let images: Vec<(Vec<f32>, Vec<u8>)> = (0..n)
        .map(|i| {
            let (tensor, _) = data.batch(&[i], &norm, &device)?;
            let values = tensor
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| std::io::Error::other(format!("reading image {i}: {e:?}")))?;
            Ok((values, data.image(i).to_vec()))
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let shape = [1, 1, 28, 28];
    let elements = 28 * 28;

    let mut codecs: Vec<CodecId> = vec![CodecId::image(ImageFormat::Png, 0)];
    codecs.extend([50, 75, 90].map(|q| CodecId::image(ImageFormat::Jpeg, q)));
    codecs.extend([50, 75, 90].map(|q| CodecId::image(ImageFormat::Webp, q)));
    codecs.push(CodecId::image(ImageFormat::WebpLossless, 0));
    for bits in [2, 4, 8] {
        codecs.push(CodecId::quant(bits, false));
        codecs.push(CodecId::Quant {
            bits,
            per_channel: false,
            entropy: true,
        });
    }

    let mut rows = Vec::new();
    let mut quant_flops_per_s = None;
    for id in codecs {
        let codec = input_codec(id, &image_norm)?;
        let pixel_codec = match id {
            CodecId::Image { .. } => Some(ImageCodec::from_id(id, image_norm.clone())?),
            _ => None,
        };
        let mut payload_bytes = 0usize;
        let mut encode_s = Vec::with_capacity(n);
        let mut decode_s = Vec::with_capacity(n);
        let mut abs_error = 0.0f64;
        let mut squared_error = 0.0f64;
        let quant = match id {
            CodecId::Quant { bits, entropy, .. } => {
                Some(QuantCodec::new(bits, false)?.with_entropy(entropy))
            }
            _ => None,
        };
        assert_eq!(codec.id(), id);
        for (values, pixels) in &images {
            let start = Instant::now();
            let payload = match (&pixel_codec, &quant) {
                (Some(c), _) => c.encode_values(values, shape)?,
                (None, Some(q)) => q.encode_values(values, shape)?,
                (None, None) => unreachable!("every codec listed is an image or a quantizer"),
            };
            encode_s.push(start.elapsed().as_secs_f64());
            payload_bytes += payload.len();
            let start = Instant::now();
            let decoded: Vec<u8> = match (&pixel_codec, &quant) {
                (Some(c), _) => c.decode_pixels(&payload.bytes)?.0,
                (None, Some(q)) => {
                    let (values, _) = q.decode_values(&payload.bytes)?;
                    decode_s.push(start.elapsed().as_secs_f64());
                    values
                        .iter()
                        .map(|&x| ((x * norm.std[0] + norm.mean[0]) * 255.0).round() as u8)
                        .collect()
                }
                (None, None) => unreachable!("every codec listed is an image or a quantizer"),
            };
            if pixel_codec.is_some() {
                decode_s.push(start.elapsed().as_secs_f64());
            }
            for (&a, &b) in decoded.iter().zip(pixels) {
                let d = f64::from(a) - f64::from(b);
                abs_error += d.abs();
                squared_error += d * d;
            }
        }
        let mean_payload = payload_bytes as f64 / n as f64;
        let encode = median(&mut encode_s);
        let decode = median(&mut decode_s);
        let mse = squared_error / (n * elements) as f64;
        let psnr = if mse == 0.0 {
            None
        } else {
            Some(10.0 * (255.0f64 * 255.0 / mse).log10())
        };
        if id == CodecId::quant(8, false) {
            // The cost model's 6 FLOPs an element for a quantizer's encode, at the time it took.
            quant_flops_per_s = Some(6.0 * elements as f64 / encode);
        }
        rows.push((
            id,
            pixel_codec.is_some(),
            mean_payload,
            abs_error,
            psnr,
            encode,
            decode,
        ));
    }
    let quant_flops_per_s = quant_flops_per_s.ok_or("quant8 was not measured")?;
    for (id, is_image, mean_payload, abs_error, psnr, encode, decode) in rows {
        let per_element = |seconds: f64, rate: f64| (seconds * rate / elements as f64).round();
        println!(
            "{}",
            json!({
                "codec": id.to_string(),
                "images": n,
                "mean_payload_bytes": round1(mean_payload),
                "mean_file_bytes": is_image.then(|| round1(mean_payload - IMAGE_PAYLOAD_OVERHEAD as f64)),
                "mean_abs_pixel_error": round3(abs_error / (n * elements) as f64),
                "psnr_db": psnr.map(round1),
                "encode_us": round1(encode * 1e6),
                "decode_us": round1(decode * 1e6),
                "encode_flops_per_element": per_element(encode, quant_flops_per_s),
                "decode_flops_per_element": per_element(decode, quant_flops_per_s),
                "encode_nn_flops_per_element": per_element(encode, flops_per_s),
                "decode_nn_flops_per_element": per_element(decode, flops_per_s),
            })
        );
    }

    // The 4-bit image's order-0 entropy (what an ideal per-image entropy coder would need for
    // the symbols alone), as issue 21 computed it: pixels >> 4.
    let entropy_bytes: f64 = images
        .iter()
        .map(|(_, pixels)| {
            let nibbles: Vec<u8> = pixels.iter().map(|p| p >> 4).collect();
            order0_bits(&nibbles) / 8.0
        })
        .sum::<f64>()
        / n as f64;
    // The same for the symbols coinfer's own 4-bit quantizer sends (min/max range per image).
    let quant4 = QuantCodec::new(4, false)?;
    let mut quant4_bytes = 0.0;
    for (values, _) in &images {
        let symbols = quant4.quantize_values(values, shape)?.symbols;
        quant4_bytes += order0_bits(&symbols) / 8.0;
    }
    println!(
        "{}",
        json!({
            "reference": "this machine",
            "images": n,
            "order0_entropy_4bit_bytes": round1(entropy_bytes),
            "order0_entropy_quant4_symbols_bytes": round1(quant4_bytes / n as f64),
            "effective_gflops_resnet_mini": round1(flops_per_s / 1e9),
            "effective_gflops_quant8_encode": round3(quant_flops_per_s / 1e9),
        })
    );
    println!(
        "{}",
        json!({
            "reference": "pillow (issue 21)",
            "images": 1000,
            "png": 509, "jpeg-q50": 526, "webp-q50": 236, "webp-q75": 277, "webp-lossless": 454,
            "order0_entropy_4bit_bytes": 272,
        })
    );
    Ok(())
}

/// Order-0 entropy of `symbols`, in bits for the whole sequence.
fn order0_bits(symbols: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for &s in symbols {
        counts[usize::from(s)] += 1;
    }
    let total = symbols.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64) * (c as f64 / total).log2())
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
