//! What each input codec sends for a Fashion-MNIST image, and what it costs to encode and
//! decode on this machine: the figures of docs/codecs.md ("Image codecs at the input").
//!
//! ```sh
//! cargo run --release -p coinfer-codec --example image_codecs            # 1,000 test images
//! cargo run --release -p coinfer-codec --example image_codecs -- 200     # fewer
//! ```
//!
//! Every image is encoded alone (a batch of one, as a device sends it). One JSON line per
//! codec: mean payload bytes (what crosses the link: header, normalisation and CRC included),
//! mean bytes of the image file alone (comparable with an image library's output), mean
//! absolute pixel error and PSNR of the decoded 8-bit image, median encode and decode time per
//! image, and those times as FLOP-equivalents per input element at this machine's effective
//! throughput on resnet-mini (the constants of `crates/coinfer-codec/src/cost.rs`). A
//! `reference` line gives the 4-bit image's order-0 entropy and the throughput used; a
//! `pillow` line the figures Pillow measured on the same 1,000 images (issue 21).

use std::time::Instant;

use burn::prelude::*;
use coinfer_codec::{
    CodecId, FeatureCodec, ImageCodec, ImageFormat, ImageNormalization, QuantCodec, input_codec,
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
            let values = tensor.into_data().try_into_vec::<f32>().map_err(|e| {
                std::io::Error::other(format!("reading image {i}: {e:?}"))
            })?;
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
        for (values, pixels) in &images {
            let feature = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
            let start = Instant::now();
            let payload = match &pixel_codec {
                Some(c) => c.encode_values(values, shape)?,
                None => codec.encode(feature)?,
            };
            encode_s.push(start.elapsed().as_secs_f64());
            payload_bytes += payload.len();
            let start = Instant::now();
            let decoded: Vec<u8> = match &pixel_codec {
                Some(c) => c.decode_pixels(&payload.bytes)?.0,
                None => {
                    let (values, _) = QuantCodec::new(bits_of(id), false)?
                        .with_entropy(matches!(id, CodecId::Quant { entropy: true, .. }))
                        .decode_values(&payload.bytes)?;
                    decode_s.push(start.elapsed().as_secs_f64());
                    values
                        .iter()
                        .map(|&x| ((x * norm.std[0] + norm.mean[0]) * 255.0).round() as u8)
                        .collect()
                }
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
        println!(
            "{}",
            json!({
                "codec": id.to_string(),
                "images": n,
                "mean_payload_bytes": round1(mean_payload),
                "mean_file_bytes": pixel_codec.as_ref().map(|_| round1(mean_payload - IMAGE_PAYLOAD_OVERHEAD as f64)),
                "mean_abs_pixel_error": round3(abs_error / (n * elements) as f64),
                "psnr_db": psnr.map(round1),
                "encode_us": round1(encode * 1e6),
                "decode_us": round1(decode * 1e6),
                "encode_flops_per_element": (encode * flops_per_s / elements as f64).round(),
                "decode_flops_per_element": (decode * flops_per_s / elements as f64).round(),
            })
        );
    }

    // The 4-bit image's order-0 entropy (what an ideal per-image entropy coder would need for
    // the symbols alone), as issue 21 computed it: pixels >> 4.
    let entropy_bytes: f64 = images
        .iter()
        .map(|(_, pixels)| {
            let mut counts = [0usize; 16];
            for &p in pixels {
                counts[usize::from(p >> 4)] += 1;
            }
            let total = pixels.len() as f64;
            let bits: f64 = counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = c as f64 / total;
                    -(c as f64) * p.log2()
                })
                .sum();
            bits / 8.0
        })
        .sum::<f64>()
        / n as f64;
    println!(
        "{}",
        json!({
            "reference": "this machine",
            "images": n,
            "order0_entropy_4bit_bytes": round1(entropy_bytes),
            "effective_gflops": round1(flops_per_s / 1e9),
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

fn bits_of(id: CodecId) -> u8 {
    match id {
        CodecId::Quant { bits, .. } => bits,
        _ => 8,
    }
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
