//! Round-trip guarantees: decode(encode(x)) is exactly the dequantized feature for every bit
//! width and range mode, Float32 is lossless, constant channels survive.

use burn::prelude::*;
use coinfer_codec::{
    CodecError, CodecId, FeatureCodec, Float32Codec, QuantCodec, fixed_codec, read_header,
};
use proptest::prelude::*;

fn shape_and_values() -> impl Strategy<Value = ([usize; 4], Vec<f32>)> {
    (1usize..=3, 1usize..=5, 1usize..=6, 1usize..=7).prop_flat_map(|(b, c, h, w)| {
        let n = b * c * h * w;
        (
            Just([b, c, h, w]),
            proptest::collection::vec(
                prop_oneof![
                    4 => -50.0f32..50.0,
                    1 => Just(0.0f32),
                    1 => -1e30f32..1e30,
                ],
                n,
            ),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn quant_decode_is_exactly_the_dequantized_feature(
        (shape, values) in shape_and_values(),
        bits in 1u8..=8,
        per_channel: bool,
        entropy: bool,
    ) {
        let codec = QuantCodec::new(bits, per_channel).unwrap().with_entropy(entropy);
        let expected = codec.quantize_values(&values, shape).unwrap();
        let (payload, stats) = codec.encode_with_stats(&values, shape).unwrap();
        prop_assert!(stats.coded_bits <= stats.fixed_bits);
        prop_assert_eq!(stats.coded_bits, payload.bits());
        // Bound is exact for one fixed-length sample, an upper bound otherwise.
        if shape[0] == 1 {
            let bound = codec.bits_per_sample([shape[1], shape[2], shape[3]]);
            if entropy { prop_assert!(payload.bits() <= bound); }
            else { prop_assert_eq!(payload.bits(), bound); }
        }
        let decoded = codec.decode_quantized(&payload.bytes).unwrap();
        prop_assert_eq!(&decoded, &expected);
        let (back, back_shape) = codec.decode_values(&payload.bytes).unwrap();
        prop_assert_eq!(back_shape, shape);
        let want = expected.dequantize();
        prop_assert!(back.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        // The tensor API is the same bytes and the same values.
        let device = Device::default();
        let feature = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
        let tensor_payload = codec.encode(feature).unwrap();
        prop_assert_eq!(&tensor_payload, &payload);
        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        prop_assert_eq!(decoded.dims(), shape);
        prop_assert_eq!(decoded.into_data().try_into_vec::<f32>().unwrap(), want);
        // Every reconstruction lies within half a step of the input.
        for (i, (x, y)) in values.iter().zip(&back).enumerate() {
            let c = (i / (shape[2] * shape[3])) % shape[1];
            let range = expected.ranges[if per_channel { c } else { 0 }];
            let step = range.step(bits);
            let tol = step * 0.5 + 1e-5 * x.abs().max(range.max.abs()).max(range.min.abs());
            prop_assert!((x - y).abs() <= tol, "x={} y={} step={}", x, y, step);
        }
    }

    #[test]
    fn float32_is_lossless((shape, values) in shape_and_values()) {
        let payload = Float32Codec.encode_values(&values, shape).unwrap();
        let (back, back_shape) = Float32Codec.decode_values(&payload.bytes).unwrap();
        prop_assert_eq!(back_shape, shape);
        prop_assert_eq!(back, values);
    }
}

#[test]
fn tensor_api_matches_slice_api_for_every_bit_width() {
    let device = Device::default();
    let shape = [2, 3, 5, 4];
    let values: Vec<f32> = (0..120)
        .map(|i| ((i * 37) % 101) as f32 * 0.13 - 4.0)
        .collect();
    for bits in 1..=8 {
        for per_channel in [false, true] {
            for entropy in [false, true] {
                let codec = QuantCodec::new(bits, per_channel)
                    .unwrap()
                    .with_entropy(entropy);
                let feature =
                    Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
                let decoded = codec.roundtrip(feature).unwrap();
                assert_eq!(decoded.dims(), shape);
                let got = decoded.into_data().try_into_vec::<f32>().unwrap();
                let want = codec.quantize_values(&values, shape).unwrap().dequantize();
                assert_eq!(got, want, "bits {bits} per_channel {per_channel}");
            }
        }
    }
}

#[test]
fn float32_tensor_round_trip_keeps_non_finite_values() {
    let device = Device::default();
    let values = vec![1.5, f32::NAN, f32::INFINITY, -0.0, 3.0, f32::MIN_POSITIVE];
    let feature = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 2, 3]), &device);
    let payload = Float32Codec.encode(feature).unwrap();
    assert_eq!(payload.bits(), Float32Codec.bits_per_sample([1, 2, 3]));
    let back = Float32Codec
        .decode(&payload.bytes, &device)
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&values));
}

#[test]
fn constant_channels_decode_to_their_constant() {
    // Channel 0 constant 3.25, channel 1 varies, channel 2 constant 0 (dead ReLU channel).
    let shape = [2, 3, 4, 4];
    let mut values = vec![0.0f32; 96];
    for b in 0..2 {
        for i in 0..16 {
            values[b * 48 + i] = 3.25;
            values[b * 48 + 16 + i] = i as f32 * 0.5;
        }
    }
    for bits in 1..=8 {
        for entropy in [false, true] {
            let codec = QuantCodec::new(bits, true).unwrap().with_entropy(entropy);
            let payload = codec.encode_values(&values, shape).unwrap();
            let (back, _) = codec.decode_values(&payload.bytes).unwrap();
            for b in 0..2 {
                assert!(back[b * 48..b * 48 + 16].iter().all(|v| *v == 3.25));
                assert!(back[b * 48 + 32..b * 48 + 48].iter().all(|v| *v == 0.0));
            }
        }
    }
    // A fully constant tensor per-tensor too.
    let codec = QuantCodec::new(2, false).unwrap();
    let payload = codec.encode_values(&[7.0; 12], [1, 3, 2, 2]).unwrap();
    assert_eq!(
        codec.decode_values(&payload.bytes).unwrap().0,
        vec![7.0; 12]
    );
}

#[test]
fn entropy_coding_saves_bits_on_sparse_features() {
    // Post-ReLU-like: 80% zeros.
    let shape = [1, 16, 14, 14];
    let values: Vec<f32> = (0..3136u32)
        .map(|i| {
            if i % 5 == 0 {
                (i % 97) as f32 * 0.1
            } else {
                0.0
            }
        })
        .collect();
    let codec = QuantCodec::new(4, false).unwrap().with_entropy(true);
    let (payload, stats) = codec.encode_with_stats(&values, shape).unwrap();
    assert!(payload.header().unwrap().entropy_coded_body);
    assert!(stats.saved_bits() > stats.fixed_bits / 3, "{stats:?}");
    let plain = QuantCodec::new(4, false).unwrap();
    assert_eq!(
        codec.decode_values(&payload.bytes).unwrap().0,
        plain
            .decode_values(&plain.encode_values(&values, shape).unwrap().bytes)
            .unwrap()
            .0
    );
}

#[test]
fn entropy_falls_back_to_packing_on_uniform_symbols() {
    let shape = [1, 1, 16, 16];
    let values: Vec<f32> = (0..256).map(|i| i as f32).collect();
    let codec = QuantCodec::new(8, false).unwrap().with_entropy(true);
    let (payload, stats) = codec.encode_with_stats(&values, shape).unwrap();
    assert!(!payload.header().unwrap().entropy_coded_body);
    assert_eq!(stats.saved_bits(), 0);
    assert_eq!(payload.bits(), codec.bits_per_sample([1, 16, 16]));
}

#[test]
fn encode_rejects_non_finite_and_empty_features() {
    let device = Device::default();
    let codec = QuantCodec::new(4, true).unwrap();
    let mut values = vec![0.5f32; 8];
    values[6] = f32::NAN;
    let feature = Tensor::<4>::from_data(TensorData::new(values, [1, 2, 2, 2]), &device);
    assert!(matches!(
        codec.encode(feature),
        Err(CodecError::NonFiniteFeature { index: 6, .. })
    ));
    assert!(matches!(
        codec.encode_values(&[], [1, 0, 2, 2]),
        Err(CodecError::InvalidShape { .. })
    ));
    assert!(matches!(
        Float32Codec.encode_values(&[1.0; 3], [1, 1, 2, 2]),
        Err(CodecError::ShapeMismatch { .. })
    ));
}

#[test]
fn a_payload_names_its_codec_and_other_codecs_refuse_it() {
    let values = vec![1.0f32; 16];
    let shape = [1, 4, 2, 2];
    let four = QuantCodec::new(4, true).unwrap();
    let payload = four.encode_values(&values, shape).unwrap();
    let (header, _) = read_header(&payload.bytes).unwrap();
    assert_eq!(header.codec, CodecId::quant(4, true));
    assert_eq!(header.shape, shape);
    for other in [
        CodecId::quant(3, true),
        CodecId::quant(4, false),
        CodecId::Quant {
            bits: 4,
            per_channel: true,
            entropy: true,
        },
        CodecId::Float32,
    ] {
        let codec = fixed_codec(other).unwrap();
        assert!(matches!(
            codec.decode(&payload.bytes, &Device::default()),
            Err(CodecError::CodecMismatch { .. })
        ));
    }
}
