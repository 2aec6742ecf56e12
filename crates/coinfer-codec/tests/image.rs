//! Image codecs of the raw input: PNG, JPEG, lossy and lossless WebP on real Fashion-MNIST
//! images (grey) and a synthetic colour image: round trips, lossless exactness against the data
//! pipeline's own normalisation, payload sizes that are the real files, and typed refusals of
//! bad payloads and inputs.

use burn::prelude::*;
use coinfer_codec::{
    CodecError, CodecId, FeatureCodec, ImageCodec, ImageFormat, ImageNormalization, QuantCodec,
    fixed_codec, input_codec, mean_payload_bits, read_header,
};
use coinfer_data::{Normalization, embedded};

const HEADER_LEN: usize = 28;
const CRC_LEN: usize = 4;

fn every_codec() -> Vec<CodecId> {
    vec![
        CodecId::image(ImageFormat::Png, 0),
        CodecId::image(ImageFormat::Jpeg, 50),
        CodecId::image(ImageFormat::Jpeg, 90),
        CodecId::image(ImageFormat::Webp, 50),
        CodecId::image(ImageFormat::Webp, 90),
        CodecId::image(ImageFormat::WebpLossless, 0),
    ]
}

/// Eight Fashion-MNIST test images, normalised as the data pipeline does, and their pixels.
fn grey_batch(device: &Device) -> (Tensor<4>, Vec<u8>, Normalization) {
    let data = embedded::fashion_mnist_subset().unwrap().test;
    let norm = Normalization::fashion_mnist();
    let indices: Vec<usize> = (0..8).collect();
    let (images, _) = data.batch(&indices, &norm, device).unwrap();
    let pixels = indices
        .iter()
        .flat_map(|&i| data.image(i).to_vec())
        .collect();
    (images, pixels, norm)
}

fn grey_norm(norm: &Normalization) -> ImageNormalization {
    ImageNormalization::new(norm.mean.clone(), norm.std.clone()).unwrap()
}

/// A smooth 2×3×24×20 colour picture (gradients and a bright disc), its pixels, normalised
/// values, normalisation and shape.
fn colour_batch() -> (Vec<u8>, Vec<f32>, ImageNormalization, [usize; 4]) {
    let shape = [2, 3, 24, 20];
    let norm = Normalization::cifar10();
    let mut pixels = Vec::new();
    for b in 0..2 {
        for c in 0..3 {
            for y in 0..24i32 {
                for x in 0..20i32 {
                    let inside = (x - 10).pow(2) + (y - 12).pow(2) < 36;
                    let base = x * 5 + y * 4 + c * 15 + b * 10;
                    pixels.push(if inside {
                        255 - base as u8 / 2
                    } else {
                        base as u8
                    });
                }
            }
        }
    }
    let values = pixels
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let c = (i / (24 * 20)) % 3;
            (p as f32 / 255.0 - norm.mean[c]) / norm.std[c]
        })
        .collect();
    let image_norm = ImageNormalization::new(norm.mean.clone(), norm.std.clone()).unwrap();
    (pixels, values, image_norm, shape)
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn mean_abs_error(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn lossless_formats_give_the_backbone_its_input_bit_for_bit() {
    let device = Device::default();
    let (images, pixels, norm) = grey_batch(&device);
    let expected = to_vec(images.clone());
    let (colour_pixels, colour_values, colour_norm, colour_shape) = colour_batch();
    for format in [ImageFormat::Png, ImageFormat::WebpLossless] {
        let codec = ImageCodec::new(format, 0, grey_norm(&norm)).unwrap();
        let payload = codec.encode(images.clone()).unwrap();
        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        assert_eq!(decoded.dims(), [8, 1, 28, 28]);
        let got = to_vec(decoded);
        // Bit for bit: the same f32 arithmetic as coinfer-data's normalisation.
        let same = got
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{format}: the decoded input differs from the original"
        );
        assert_eq!(codec.decode_pixels(&payload.bytes).unwrap().0, pixels);

        let colour = ImageCodec::new(format, 0, colour_norm.clone()).unwrap();
        let payload = colour.encode_values(&colour_values, colour_shape).unwrap();
        let (back, shape) = colour.decode_values(&payload.bytes).unwrap();
        assert_eq!(shape, colour_shape);
        assert!(
            back.iter()
                .zip(&colour_values)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{format}: colour"
        );
        assert_eq!(
            colour.decode_pixels(&payload.bytes).unwrap().0,
            colour_pixels
        );
    }
}

#[test]
fn lossy_formats_stay_close_and_improve_with_quality() {
    let device = Device::default();
    let (images, pixels, norm) = grey_batch(&device);
    let (colour_pixels, colour_values, colour_norm, colour_shape) = colour_batch();
    for format in [ImageFormat::Jpeg, ImageFormat::Webp] {
        let mut errors = Vec::new();
        let mut sizes = Vec::new();
        for quality in [30, 90] {
            let codec = ImageCodec::new(format, quality, grey_norm(&norm)).unwrap();
            let payload = codec.encode(images.clone()).unwrap();
            let (decoded, _, shape) = codec.decode_pixels(&payload.bytes).unwrap();
            assert_eq!(shape, [8, 1, 28, 28]);
            errors.push(mean_abs_error(&decoded, &pixels));
            sizes.push(payload.len());
            // The decoded tensor is the normalisation of the decoded pixels.
            let values = to_vec(codec.decode(&payload.bytes, &device).unwrap());
            let p = decoded[100];
            let expected = (p as f32 / 255.0 - norm.mean[0]) / norm.std[0];
            assert_eq!(values[100].to_bits(), expected.to_bits());
        }
        assert!(errors[0] < 12.0, "{format} q30 error {}", errors[0]);
        assert!(errors[1] < 4.0, "{format} q90 error {}", errors[1]);
        assert!(errors[1] < errors[0], "{format}: {errors:?}");
        assert!(sizes[1] > sizes[0], "{format}: {sizes:?}");

        let colour = ImageCodec::new(format, 90, colour_norm.clone()).unwrap();
        let payload = colour.encode_values(&colour_values, colour_shape).unwrap();
        let (decoded, _, shape) = colour.decode_pixels(&payload.bytes).unwrap();
        assert_eq!(shape, colour_shape);
        let error = mean_abs_error(&decoded, &colour_pixels);
        assert!(error < 6.0, "{format} colour error {error}");
    }
}

#[test]
fn payload_is_header_normalisation_and_the_real_files() {
    let device = Device::default();
    let (images, _, norm) = grey_batch(&device);
    for id in every_codec() {
        let codec = input_codec(id, &grey_norm(&norm)).unwrap();
        let payload = codec.encode(images.clone()).unwrap();
        let (header, sections) = read_header(&payload.bytes).unwrap();
        assert_eq!(header.codec, id);
        assert_eq!(header.shape, [8, 1, 28, 28]);
        // The normalisation, then eight length-prefixed files of the format.
        let mut rest = &sections[8..];
        let mut files = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            files.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        assert_eq!(files.len(), 8, "{id}");
        for file in &files {
            let magic_ok = match id {
                CodecId::Image {
                    format: ImageFormat::Png,
                    ..
                } => file.starts_with(b"\x89PNG\r\n\x1a\n"),
                CodecId::Image {
                    format: ImageFormat::Jpeg,
                    ..
                } => file.starts_with(&[0xff, 0xd8]),
                _ => file.starts_with(b"RIFF") && &file[8..12] == b"WEBP",
            };
            assert!(magic_ok, "{id}: not a file of its format");
        }
        let files_len: usize = files.iter().map(|f| 4 + f.len()).sum();
        assert_eq!(payload.len(), HEADER_LEN + 8 + files_len + CRC_LEN, "{id}");
        assert_eq!(payload.bits(), 8 * payload.len() as u64);

        // Bits per sample are measured: the mean of the payloads of one image each.
        let singles: Vec<u64> = (0..8)
            .map(|i| {
                let one = images.clone().narrow(0, i, 1);
                codec.encode(one).unwrap().bits()
            })
            .collect();
        let mean = (singles.iter().sum::<u64>() as f64 / 8.0).round() as u64;
        assert_eq!(
            mean_payload_bits(codec.as_ref(), images.clone()).unwrap(),
            mean
        );
        // A single-image payload is its file plus 44 bytes (header 28, normalisation 8,
        // length 4, CRC 4).
        let one = codec.encode(images.clone().narrow(0, 0, 1)).unwrap();
        assert_eq!(one.len(), files[0].len() + 44, "{id}");
    }
}

#[test]
fn measured_bits_of_entropy_coded_quantizers_are_below_their_bound() {
    let device = Device::default();
    let (images, _, _) = grey_batch(&device);
    let coded = QuantCodec::new(4, false).unwrap().with_entropy(true);
    let measured = mean_payload_bits(&coded, images).unwrap();
    let bound = coded.bits_per_sample([1, 28, 28]);
    assert!(measured < bound, "{measured} ≥ {bound}");
}

/// Recomputes the CRC after a mutation.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - CRC_LEN;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn bad_payloads_are_typed_errors() {
    let device = Device::default();
    let (images, _, norm) = grey_batch(&device);
    let two = images.narrow(0, 0, 2);
    for id in every_codec() {
        let codec = input_codec(id, &grey_norm(&norm)).unwrap();
        let good = codec.encode(two.clone()).unwrap().bytes;
        let first_len = u32::from_le_bytes(good[36..40].try_into().unwrap()) as usize;

        // Truncated in the middle of the second file.
        let mut cut = good[..good.len() - CRC_LEN - 10].to_vec();
        cut.extend_from_slice(&[0; CRC_LEN]);
        reseal(&mut cut);
        assert!(
            matches!(
                codec.decode(&cut, &device),
                Err(CodecError::LengthMismatch { .. })
            ),
            "{id}"
        );
        // A corrupted file inside a valid payload.
        let mut broken = good.clone();
        for b in &mut broken[40..40 + first_len.min(24)] {
            *b ^= 0x5a;
        }
        reseal(&mut broken);
        match codec.decode(&broken, &device) {
            Err(CodecError::Image { sample: 0, .. }) => {}
            // A lossy decoder may accept mangled data; then it must still fit the header.
            Ok(t) if !id.is_lossless() => assert_eq!(t.dims(), [2, 1, 28, 28]),
            other => panic!("{id}: {other:?}"),
        }
        // Trailing bytes after the last file.
        let mut long = good[..good.len() - CRC_LEN].to_vec();
        long.extend_from_slice(&[1, 2, 3, 0, 0, 0, 0]);
        reseal(&mut long);
        assert!(
            matches!(
                codec.decode(&long, &device),
                Err(CodecError::LengthMismatch { .. })
            ),
            "{id}"
        );
        // A stored std of zero.
        let mut zero_std = good.clone();
        zero_std[32..36].copy_from_slice(&0f32.to_le_bytes());
        reseal(&mut zero_std);
        assert!(
            matches!(
                codec.decode(&zero_std, &device),
                Err(CodecError::InvalidRange { index: 0, .. })
            ),
            "{id}"
        );
        // The header says 27 rows: every file is 28×28.
        let mut resized = good.clone();
        resized[20..24].copy_from_slice(&27u32.to_le_bytes());
        reseal(&mut resized);
        assert!(
            matches!(
                codec.decode(&resized, &device),
                Err(CodecError::Image { sample: 0, .. })
            ),
            "{id}"
        );
        // Another codec's payload.
        let other = if id == CodecId::image(ImageFormat::Png, 0) {
            CodecId::image(ImageFormat::WebpLossless, 0)
        } else {
            CodecId::image(ImageFormat::Png, 0)
        };
        let foreign = input_codec(other, &grey_norm(&norm))
            .unwrap()
            .encode(two.clone())
            .unwrap();
        assert!(
            matches!(
                codec.decode(&foreign.bytes, &device),
                Err(CodecError::CodecMismatch { .. })
            ),
            "{id}"
        );
        // A quality no encoder writes.
        let mut quality = good.clone();
        quality[8] = if id.is_lossless() { 7 } else { 101 };
        reseal(&mut quality);
        assert!(
            matches!(
                codec.decode(&quality, &device),
                Err(CodecError::BadHeaderField {
                    field: "quality",
                    ..
                })
            ),
            "{id}"
        );
    }
    // A WebP payload whose files are PNGs (format byte rewritten).
    let png = input_codec(CodecId::image(ImageFormat::Png, 0), &grey_norm(&norm)).unwrap();
    let mut disguised = png.encode(two.clone()).unwrap().bytes;
    disguised[6] = 4;
    reseal(&mut disguised);
    let webp = input_codec(
        CodecId::image(ImageFormat::WebpLossless, 0),
        &grey_norm(&norm),
    )
    .unwrap();
    assert!(matches!(
        webp.decode(&disguised, &device),
        Err(CodecError::Image { sample: 0, .. })
    ));
}

#[test]
fn bad_inputs_and_parameters_are_typed_errors() {
    let device = Device::default();
    let grey = ImageNormalization::new(vec![0.5], vec![0.25]).unwrap();
    let png = ImageCodec::new(ImageFormat::Png, 0, grey.clone()).unwrap();
    // Two channels: neither grey nor RGB.
    let two = Tensor::<4>::zeros([1, 2, 4, 4], &device);
    assert!(matches!(
        png.encode(two),
        Err(CodecError::ShapeMismatch { .. })
    ));
    let mut values = vec![0.0f32; 16];
    values[5] = f32::NAN;
    assert!(matches!(
        png.encode_values(&values, [1, 1, 4, 4]),
        Err(CodecError::NonFiniteFeature { index: 5, .. })
    ));
    let webp = ImageCodec::new(ImageFormat::Webp, 75, grey.clone()).unwrap();
    assert!(matches!(
        webp.encode_values(&[0.0; 16400], [1, 1, 1, 16400]),
        Err(CodecError::InvalidShape { .. })
    ));
    let quality = |format, q| match ImageCodec::new(format, q, grey.clone()) {
        Err(CodecError::InvalidParameter { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(quality(ImageFormat::Jpeg, 0), "quality");
    assert_eq!(quality(ImageFormat::Webp, 101), "quality");
    assert_eq!(quality(ImageFormat::Png, 50), "quality");
    assert_eq!(quality(ImageFormat::WebpLossless, 1), "quality");
    let norm_field = |mean: Vec<f32>, std: Vec<f32>| match ImageNormalization::new(mean, std) {
        Err(CodecError::InvalidParameter { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(norm_field(vec![0.5, 0.5], vec![1.0, 1.0]), "mean");
    assert_eq!(norm_field(vec![f32::NAN], vec![1.0]), "mean");
    assert_eq!(norm_field(vec![0.5], vec![0.0]), "std");
    assert_eq!(norm_field(vec![0.5], vec![1.0, 1.0]), "mean");
    // A plain constructor cannot build an image codec: it would not know the normalisation.
    assert!(matches!(
        fixed_codec(CodecId::image(ImageFormat::Png, 0)),
        Err(CodecError::InvalidParameter {
            field: "codec id",
            ..
        })
    ));
    assert!(CodecId::image(ImageFormat::Jpeg, 0).check().is_err());
}

#[test]
fn names_and_json_form() {
    let names: Vec<String> = every_codec().iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "png",
            "jpeg-q50",
            "jpeg-q90",
            "webp-q50",
            "webp-q90",
            "webp-lossless"
        ]
    );
    let id = CodecId::image(ImageFormat::WebpLossless, 0);
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"image","format":"webp-lossless","quality":0}"#
    );
    assert_eq!(serde_json::from_str::<CodecId>(&json).unwrap(), id);
    assert!(id.is_lossless() && id.is_image());
    assert!(!CodecId::image(ImageFormat::Jpeg, 90).is_lossless());
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// One valid single-image payload per format (the files are what the C and Rust decoders
    /// parse).
    fn payloads() -> &'static [(CodecId, Vec<u8>)] {
        static PAYLOADS: std::sync::OnceLock<Vec<(CodecId, Vec<u8>)>> = std::sync::OnceLock::new();
        PAYLOADS.get_or_init(encode_payloads)
    }

    fn encode_payloads() -> Vec<(CodecId, Vec<u8>)> {
        let device = Device::default();
        let (images, _, norm) = grey_batch(&device);
        let one = images.narrow(0, 0, 1);
        every_codec()
            .into_iter()
            .map(|id| {
                let codec = input_codec(id, &grey_norm(&norm)).unwrap();
                (id, codec.encode(one.clone()).unwrap().bytes)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random bytes written over an image file, CRC resealed so that the decoders see
        /// them: an error or an image of the header's size, never a panic.
        #[test]
        fn mangled_files_never_panic(
            at in 0usize..400,
            bytes in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let device = Device::default();
            let norm = Normalization::fashion_mnist();
            for (id, good) in payloads() {
                let codec = input_codec(*id, &grey_norm(&norm)).unwrap();
                let file_start = HEADER_LEN + 8 + 4;
                let file_end = good.len() - CRC_LEN;
                let mut bad = good.clone();
                let start = file_start + at % (file_end - file_start);
                for (i, b) in bytes.iter().enumerate() {
                    if start + i < file_end {
                        bad[start + i] = *b;
                    }
                }
                reseal(&mut bad);
                if let Ok(t) = codec.decode(&bad, &device) {
                    prop_assert_eq!(t.dims(), [1, 1, 28, 28]);
                }
            }
        }
    }
}
