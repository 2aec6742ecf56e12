//! Hostile payloads: random bytes, bit flips, truncations, splices and resealed mutations
//! thrown at `decode` of every codec must give an `Err`, never a panic.

use burn::prelude::*;
use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecError, FeatureCodec, Float32Codec, QuantCodec,
};
use proptest::prelude::*;

const SHAPE: [usize; 4] = [2, 4, 3, 5];

/// A post-ReLU-like feature: mostly zeros, so entropy-coded bodies are exercised.
fn feature_values() -> Vec<f32> {
    (0..120u32)
        .map(|i| {
            if i % 3 == 0 {
                (i % 11) as f32 * 0.4
            } else {
                0.0
            }
        })
        .collect()
}

fn codecs() -> Vec<Box<dyn FeatureCodec>> {
    let device = Device::default();
    let mut out: Vec<Box<dyn FeatureCodec>> = vec![Box::new(Float32Codec)];
    for bits in [1, 3, 4, 8] {
        for per_channel in [false, true] {
            for entropy in [false, true] {
                out.push(Box::new(
                    QuantCodec::new(bits, per_channel)
                        .unwrap()
                        .with_entropy(entropy),
                ));
            }
        }
    }
    for entropy in [false, true] {
        let config = AutoencoderConfig::new(4, 2)
            .with_bits(3)
            .with_kernel(3)
            .with_entropy(entropy);
        out.push(Box::new(AutoencoderCodec::init(config, &device).unwrap()));
    }
    out
}

fn valid_payloads(codecs: &[Box<dyn FeatureCodec>]) -> Vec<Vec<u8>> {
    let device = Device::default();
    codecs
        .iter()
        .map(|c| {
            let feature = Tensor::<4>::from_data(TensorData::new(feature_values(), SHAPE), &device);
            c.encode(feature).unwrap().bytes
        })
        .collect()
}

fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= 4 {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

fn decode_all(
    codecs: &[Box<dyn FeatureCodec>],
    bytes: &[u8],
) -> Vec<Result<[usize; 4], CodecError>> {
    let device = Device::default();
    codecs
        .iter()
        .map(|c| c.decode(bytes, &device).map(|t| t.dims()))
        .collect()
}

#[test]
fn valid_payloads_decode_only_with_their_own_codec() {
    let codecs = codecs();
    let payloads = valid_payloads(&codecs);
    for (i, payload) in payloads.iter().enumerate() {
        for (j, result) in decode_all(&codecs, payload).into_iter().enumerate() {
            if i == j {
                assert_eq!(result.unwrap(), SHAPE, "codec {}", codecs[i].id());
            } else {
                assert!(
                    matches!(result, Err(CodecError::CodecMismatch { .. })),
                    "payload of {} decoded by {}: {result:?}",
                    codecs[i].id(),
                    codecs[j].id()
                );
            }
        }
    }
}

#[test]
fn empty_and_header_only_inputs_are_errors() {
    let codecs = codecs();
    for len in 0..40 {
        let bytes: Vec<u8> = b"CNFC\x01".iter().copied().cycle().take(len).collect();
        assert!(decode_all(&codecs, &bytes).iter().all(|r| r.is_err()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..400), keep_magic: bool) {
        let codecs = codecs();
        let mut bytes = bytes;
        if keep_magic && bytes.len() >= 5 {
            bytes[..5].copy_from_slice(b"CNFC\x01");
        }
        for result in decode_all(&codecs, &bytes) {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn bit_flips_are_rejected(which in 0usize..19, position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let codecs = codecs();
        let mut bytes = valid_payloads(&codecs)[which].clone();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        for result in decode_all(&codecs, &bytes) {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn truncations_and_extensions_are_rejected(
        which in 0usize..19,
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let codecs = codecs();
        let bytes = valid_payloads(&codecs)[which].clone();
        let truncated = &bytes[..cut.index(bytes.len())];
        for result in decode_all(&codecs, truncated) {
            prop_assert!(result.is_err());
        }
        let mut extended = bytes.clone();
        extended.extend_from_slice(&extra);
        for result in decode_all(&codecs, &extended) {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn random_mutations_are_rejected(
        which in 0usize..19,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let codecs = codecs();
        let original = valid_payloads(&codecs)[which].clone();
        let mut bytes = original.clone();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        prop_assume!(bytes != original);
        for result in decode_all(&codecs, &bytes) {
            prop_assert!(result.is_err());
        }
    }

    /// Mutations with a recomputed CRC reach the field checks and the body decoders (packing,
    /// rANS, f32): decoding must not panic, and anything accepted has a sane shape.
    #[test]
    fn resealed_mutations_never_panic(
        which in 0usize..19,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let codecs = codecs();
        let mut bytes = valid_payloads(&codecs)[which].clone();
        for (at, value) in &edits {
            let i = at.index(bytes.len() - 4);
            bytes[i] = *value;
        }
        if let Some(cut) = cut {
            let len = cut.index(bytes.len()).max(4);
            bytes.truncate(len);
        }
        reseal(&mut bytes);
        for dims in decode_all(&codecs, &bytes).into_iter().flatten() {
            prop_assert!(dims.iter().all(|d| *d > 0));
            prop_assert!(dims.iter().product::<usize>() as u64 <= coinfer_codec::MAX_FEATURE_ELEMENTS);
        }
    }
}

#[test]
fn resealed_field_edits_give_the_named_error() {
    let codec = QuantCodec::new(4, true).unwrap();
    let good = codec.encode_values(&feature_values(), SHAPE).unwrap().bytes;
    let edit = |at: usize, value: u8| {
        let mut b = good.clone();
        b[at] = value;
        reseal(&mut b);
        codec.decode_values(&b)
    };
    // Shape W 5 -> 6: body length no longer matches.
    assert!(matches!(
        edit(24, 6),
        Err(CodecError::LengthMismatch { .. })
    ));
    // Shape dimension with a huge value: over the element cap.
    assert!(matches!(
        edit(27, 0x7f),
        Err(CodecError::InvalidShape { .. })
    ));
    // A range bound turned into NaN (f32 bytes 0x7fc00000 need two edits; set the exponent).
    let mut b = good.clone();
    b[28 + 3] = 0x7f;
    b[28 + 2] = 0xc0;
    reseal(&mut b);
    assert!(matches!(
        codec.decode_values(&b),
        Err(CodecError::InvalidRange { index: 0, .. })
    ));
    // Bits 9.
    assert!(matches!(
        edit(6, 9),
        Err(CodecError::BitsOutOfRange { bits: 9, .. })
    ));
    // Unknown kind (3 is the image codecs').
    assert!(matches!(
        edit(5, 4),
        Err(CodecError::UnknownCodecKind { kind: 4 })
    ));
    // Version 3 (this build writes 2 and still reads 1).
    assert!(matches!(
        edit(4, 3),
        Err(CodecError::UnsupportedVersion { found: 3, .. })
    ));
}
