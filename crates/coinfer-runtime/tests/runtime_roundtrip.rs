//! The TCP runtime gives the in-process answer: round trips with a lossless and an 8-bit codec,
//! dynamic batching, handshake refusals, and link shaping.

mod runtime_common;

use std::time::{Duration, Instant};

use coinfer_codec::CodecId;
use coinfer_runtime::{
    ClientConfig, DeviceClient, ErrorCode, LinkShaping, RuntimeError, ServerConfig,
};
use runtime_common::*;

#[test]
fn float32_round_trip_equals_the_whole_network() {
    let fx = fixture();
    let codec = codec(CodecId::Float32);
    let server = spawn(&fx, codec.clone(), ServerConfig::default());
    let mut client = connect(&fx, server.local_addr(), codec.clone()).unwrap();
    for (seed, batch) in [(1, 1), (2, 3)] {
        let result = client.infer(input(&fx.device, seed, batch)).unwrap();
        assert_eq!((result.batch, result.classes), (batch, 10));
        let split = expected_logits(&fx, codec.as_ref(), input(&fx.device, seed, batch));
        assert_close(&result.logits, &split, 1e-5, "float32 vs in-process split");
        let whole = to_vec(fx.whole.logits(input(&fx.device, seed, batch)).unwrap());
        assert_close(&result.logits, &whole, 1e-5, "float32 vs whole network");
        // 32·7·7 f32 per sample plus the codec's 32 bytes of header and CRC.
        assert_eq!(result.payload_bytes, batch * 1568 * 4 + 32);
        assert_eq!(result.frame_bytes, result.payload_bytes + 60);
        let t = result.timing;
        assert!(t.total_s >= t.device_s + t.encode_s, "{t:?}");
    }
    client.close();
    let stats = server.shutdown().unwrap();
    assert_eq!((stats.results, stats.errors), (2, 0));
}

#[test]
fn quant8_round_trip_equals_in_process_decode() {
    let fx = fixture();
    for id in [CodecId::quant(8, false), CodecId::quant(8, true)] {
        let codec = codec(id);
        let server = spawn(&fx, codec.clone(), ServerConfig::default());
        let mut client = connect(&fx, server.local_addr(), codec.clone()).unwrap();
        for seed in 3..6 {
            let result = client.infer(input(&fx.device, seed, 1)).unwrap();
            let expected = expected_logits(&fx, codec.as_ref(), input(&fx.device, seed, 1));
            assert_close(&result.logits, &expected, 1e-5, &id.to_string());
            assert_eq!(result.request_id, seed - 2, "ids count up from 1");
        }
        drop(client);
        server.shutdown().unwrap();
    }
}

#[test]
fn dynamic_batching_merges_requests_and_keeps_answers_apart() {
    let fx = fixture();
    let codec = codec(CodecId::quant(8, true));
    let config = ServerConfig {
        batch_window: Some(Duration::from_millis(20)),
        max_batch: 8,
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec.clone(), config);
    let addr = server.local_addr();
    std::thread::scope(|scope| {
        for t in 0..6u64 {
            let (fx, codec) = (&fx, codec.clone());
            scope.spawn(move || {
                let mut client = connect(fx, addr, codec.clone()).unwrap();
                for i in 0..4 {
                    let seed = 100 + t * 10 + i;
                    let result = client.infer(input(&fx.device, seed, 1)).unwrap();
                    let expected = expected_logits(fx, codec.as_ref(), input(&fx.device, seed, 1));
                    assert_close(&result.logits, &expected, 1e-5, "batched");
                }
            });
        }
    });
    let stats = server.shutdown().unwrap();
    assert_eq!((stats.results, stats.errors), (24, 0));
    println!(
        "batching: {} requests in {} forward passes (largest batch {})",
        stats.results, stats.forward_passes, stats.max_batch_seen
    );
}

#[test]
fn handshake_refuses_another_plan_with_both_digests() {
    let fx = fixture();
    let codec = codec(CodecId::Float32);
    let server = spawn(&fx, codec.clone(), ServerConfig::default());
    let err = DeviceClient::connect(
        server.local_addr(),
        fx.device_half.clone(),
        codec.clone(),
        "another-plan",
        ClientConfig::default(),
    )
    .unwrap_err();
    match &err {
        RuntimeError::HandshakeRefused { code, message } => {
            assert_eq!(*code, ErrorCode::DigestMismatch);
            assert_eq!(
                message,
                &format!(
                    "plan digest mismatch: server has {}, client has another-plan",
                    fx.digest
                )
            );
        }
        other => panic!("expected a handshake refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("plan digest mismatch"), "{err}");
    // The server is still fine.
    assert_good_client(&fx, server.local_addr(), codec);
    server.shutdown().unwrap();
}

#[test]
fn handshake_refuses_another_codec_or_split_point() {
    let fx = fixture();
    let server = spawn(&fx, codec(CodecId::Float32), ServerConfig::default());
    let err = connect(&fx, server.local_addr(), codec(CodecId::quant(4, false))).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::HandshakeRefused { code: ErrorCode::CodecMismatch, message } if message.contains("quant4")),
        "{err}"
    );
    let (other_device, _) = fx.whole.clone().split(SPLIT + 1).unwrap();
    let err = DeviceClient::connect(
        server.local_addr(),
        other_device,
        codec(CodecId::Float32),
        &fx.digest,
        ClientConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::HandshakeRefused {
                code: ErrorCode::ShapeMismatch,
                ..
            }
        ),
        "{err}"
    );
    server.shutdown().unwrap();
}

#[test]
fn a_shaped_link_takes_at_least_bits_over_rate() {
    let fx = fixture();
    let codec = codec(CodecId::Float32);
    let server = spawn(&fx, codec.clone(), ServerConfig::default());
    let shaping = LinkShaping::new(1e6, Duration::from_millis(20));
    let config = ClientConfig {
        shaping: Some(shaping),
        ..ClientConfig::default()
    };
    let mut client = DeviceClient::connect(
        server.local_addr(),
        fx.device_half.clone(),
        codec.clone(),
        &fx.digest,
        config,
    )
    .unwrap();
    let start = Instant::now();
    let result = client.infer(input(&fx.device, 7, 4)).unwrap();
    let elapsed = start.elapsed();
    // 4 samples of 32·7·7 f32: a 25 180-byte frame, about 0.2 s at 1 Mbit/s, plus 20 ms.
    let floor = shaping.transmit_time(result.frame_bytes) + shaping.added_delay;
    assert!(elapsed >= floor, "{elapsed:?} < {floor:?}");
    assert!(
        result.timing.wire_s >= floor.as_secs_f64(),
        "wire {} s < {floor:?}",
        result.timing.wire_s
    );
    assert_eq!(result.frame_bytes, 4 * 1568 * 4 + 32 + 60);
    let expected = expected_logits(&fx, codec.as_ref(), input(&fx.device, 7, 4));
    assert_close(&result.logits, &expected, 1e-5, "shaped");
    println!(
        "shaped 1 Mbit/s: {} frame bytes, wire {:.1} ms (floor {:.1} ms)",
        result.frame_bytes,
        result.timing.wire_s * 1e3,
        floor.as_secs_f64() * 1e3
    );
    drop(client);
    server.shutdown().unwrap();
}

#[test]
fn a_bad_input_tensor_is_a_device_side_error() {
    let fx = fixture();
    let codec = codec(CodecId::Float32);
    let server = spawn(&fx, codec.clone(), ServerConfig::default());
    let mut client = connect(&fx, server.local_addr(), codec.clone()).unwrap();
    let wrong = burn::prelude::Tensor::<4>::zeros([1, 3, 28, 28], &fx.device);
    assert!(matches!(client.infer(wrong), Err(RuntimeError::Model(_))));
    // Nothing was sent: the connection goes on.
    let result = client.infer(input(&fx.device, 9, 1)).unwrap();
    assert_eq!(result.request_id, 1);
    drop(client);
    server.shutdown().unwrap();
}
