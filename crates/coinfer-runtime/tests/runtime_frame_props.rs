//! Properties of the frame codec: valid frames round trip, and no byte string — random or a
//! mutated valid frame — makes the decoder panic; whatever it accepts is a canonical frame.

use coinfer_codec::CodecId;
use coinfer_runtime::{
    DEFAULT_MAX_FRAME, EdgeTiming, ErrorCode, Frame, FrameBody, PlanTag, decode_frame,
    encode_frame, read_frame,
};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = CodecId> {
    prop_oneof![
        Just(CodecId::Float32),
        (1u8..=8, any::<bool>(), any::<bool>()).prop_map(|(bits, per_channel, entropy)| {
            CodecId::Quant {
                bits,
                per_channel,
                entropy,
            }
        }),
        (1u16..=64, 1u8..=8, any::<bool>()).prop_map(|(ratio, bits, entropy)| {
            CodecId::Autoencoder {
                ratio,
                bits,
                entropy,
            }
        }),
    ]
}

fn body_and_shape() -> impl Strategy<Value = ([u32; 4], FrameBody)> {
    prop_oneof![
        ("[a-z0-9]{0,40}", prop::array::uniform4(1u32..64)).prop_map(|(digest, mut shape)| {
            shape[0] = 1;
            (shape, FrameBody::Hello { digest })
        }),
        (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::array::uniform4(1u32..1000)
        )
            .prop_map(|(payload, shape)| (shape, FrameBody::Infer { payload })),
        (1u32..4, 1u32..12, any::<[u64; 3]>(), any::<u32>()).prop_flat_map(
            |(b, k, t, batch_requests)| {
                prop::collection::vec(-1e6f32..1e6, (b * k) as usize).prop_map(move |logits| {
                    (
                        [b, k, 1, 1],
                        FrameBody::Result {
                            timing: EdgeTiming {
                                queue_us: t[0],
                                decode_us: t[1],
                                edge_us: t[2],
                                batch_requests,
                            },
                            logits,
                        },
                    )
                })
            }
        ),
        (any::<u16>(), ".{0,60}").prop_map(|(code, message)| {
            (
                [0; 4],
                FrameBody::Error {
                    code: ErrorCode::from_code(code),
                    message,
                },
            )
        }),
        Just(([0; 4], FrameBody::Bye)),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u64>(), any::<[u8; 16]>(), codec(), body_and_shape()).prop_map(
        |(request_id, plan, codec, (shape, body))| Frame {
            request_id,
            plan: PlanTag(plan),
            codec,
            shape,
            body,
        },
    )
}

/// What the decoder accepts must be exactly what the encoder writes for that frame.
fn check_canonical(bytes: &[u8]) {
    if let Ok((frame, used)) = decode_frame(bytes, DEFAULT_MAX_FRAME) {
        let again = encode_frame(&frame).expect("a decoded frame encodes");
        assert_eq!(again, &bytes[..used]);
    }
    let _ = read_frame(&mut &*bytes, DEFAULT_MAX_FRAME);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_frames_round_trip(frame in frame()) {
        let bytes = encode_frame(&frame).unwrap();
        let (back, used) = decode_frame(&bytes, DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_canonical(&bytes);
        // Also behind a valid magic and version, so the later checks are reached.
        let mut framed = b"CNFR\x01\x00".to_vec();
        framed.extend_from_slice(&bytes);
        check_canonical(&framed);
    }

    #[test]
    fn mutated_frames_never_panic(
        frame in frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        reseal in any::<bool>(),
    ) {
        let original = encode_frame(&frame).unwrap();
        let mut bytes = original.clone();
        for (at, xor) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        if reseal {
            // Fix the CRC so the checks behind it see the mutation.
            let n = bytes.len() - 4;
            let crc = crc32fast::hash(&bytes[..n]);
            bytes[n..].copy_from_slice(&crc.to_le_bytes());
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        check_canonical(&bytes);
        if !reseal && !truncate && bytes != original {
            // Any flip is caught (the CRC, or an earlier header check).
            prop_assert!(decode_frame(&bytes, DEFAULT_MAX_FRAME).is_err());
        }
    }
}
