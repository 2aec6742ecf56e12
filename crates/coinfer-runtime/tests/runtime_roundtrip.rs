//! The TCP runtime gives the in-process answer: round trips with a lossless and an 8-bit codec,
//! dynamic batching (a merge counted), handshake refusals (another plan, codec or split point;
//! `Busy` beyond `max_connections`), a panic in the edge worker answered as `Internal`, and
//! link shaping. Nothing here asserts a duration.

mod runtime_common;

use std::time::Duration;

use coinfer_codec::SharedCodec;
use coinfer_codec::{CodecId, FeatureCodec};
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
    // A long window that closes early once all six clients' requests are in: every round of
    // requests can be merged into one forward pass.
    let config = ServerConfig {
        batch_window: Some(Duration::from_millis(500)),
        max_batch: 6,
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
    println!(
        "batching: {} requests in {} forward passes (largest batch {})",
        stats.results, stats.forward_passes, stats.max_batch_seen
    );
    assert_eq!((stats.results, stats.errors), (24, 0));
    // Requests were merged: fewer forward passes than requests, and at least one pass ran
    // several requests at once (never more than `max_batch`).
    assert!(stats.forward_passes < stats.results, "{stats:?}");
    assert!((2..=6).contains(&stats.max_batch_seen), "{stats:?}");
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

/// Shaping changes when the bytes arrive, not which bytes: the answer through a 1 Mbit/s link
/// with 20 ms of added delay is the in-process one, and the link's transmit time is
/// `8 · frame bytes / rate`. How long the shaped request really takes is measured, not asserted
/// here (timing on a shared machine is noisy): `runtime_load --rate-mbps` prints it beside
/// `8·bytes/R` (docs/runtime.md, "Link shaping").
#[test]
fn a_shaped_link_delivers_the_in_process_answer() {
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
    let result = client.infer(input(&fx.device, 7, 4)).unwrap();
    // 4 samples of 32·7·7 f32, the codec's 32 bytes and the frame's 60: 25 180 bytes, which
    // take 201.44 ms at 1 Mbit/s.
    assert_eq!(result.frame_bytes, 4 * 1568 * 4 + 32 + 60);
    assert_eq!(
        shaping.transmit_time(result.frame_bytes),
        Duration::from_micros(201_440)
    );
    let expected = expected_logits(&fx, codec.as_ref(), input(&fx.device, 7, 4));
    assert_close(&result.logits, &expected, 1e-5, "shaped");
    // A second request on the same shaped connection.
    let again = client.infer(input(&fx.device, 8, 1)).unwrap();
    let expected = expected_logits(&fx, codec.as_ref(), input(&fx.device, 8, 1));
    assert_close(&again.logits, &expected, 1e-5, "shaped, second request");
    println!(
        "shaped 1 Mbit/s: {} frame bytes, wire {:.1} ms (8·bytes/R + delay = {:.1} ms)",
        result.frame_bytes,
        result.timing.wire_s * 1e3,
        (shaping.transmit_time(result.frame_bytes) + shaping.added_delay).as_secs_f64() * 1e3
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

#[test]
fn a_client_beyond_max_connections_is_refused_with_busy() {
    let fx = fixture();
    let codec = codec(CodecId::Float32);
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec.clone(), config);
    let addr = server.local_addr();
    let mut first = connect(&fx, addr, codec.clone()).unwrap();
    first.infer(input(&fx.device, 1, 1)).unwrap();
    // The only slot is taken: the next client is refused at the handshake.
    let err = connect(&fx, addr, codec.clone()).unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::HandshakeRefused { code: ErrorCode::Busy, message }
                if message.contains("too many connections")
        ),
        "{err}"
    );
    assert_eq!(server.stats().refused, 1);
    // The connected client is not disturbed.
    let result = first.infer(input(&fx.device, 2, 1)).unwrap();
    let expected = expected_logits(&fx, codec.as_ref(), input(&fx.device, 2, 1));
    assert_close(
        &result.logits,
        &expected,
        1e-5,
        "the first client after a refusal",
    );
    first.close();
    // Once it has left, its slot is free again (the server notices when its thread ends).
    let mut next = None;
    for _ in 0..500 {
        match connect(&fx, addr, codec.clone()) {
            Ok(client) => {
                next = Some(client);
                break;
            }
            Err(RuntimeError::HandshakeRefused {
                code: ErrorCode::Busy,
                ..
            }) => std::thread::sleep(Duration::from_millis(10)),
            Err(other) => panic!("expected Busy or a connection, got {other}"),
        }
    }
    let mut next = next.expect("the slot was freed after the first client left");
    next.infer(input(&fx.device, 3, 1)).unwrap();
    drop(next);
    let stats = server.shutdown().unwrap();
    assert!(stats.refused >= 1 && stats.panics == 0, "{stats:?}");
}

/// Encodes like its inner codec; decoding panics the first `panics` times, then works.
struct PanickingDecoder {
    inner: SharedCodec,
    panics: std::sync::atomic::AtomicUsize,
}

impl FeatureCodec for PanickingDecoder {
    fn id(&self) -> CodecId {
        self.inner.id()
    }
    fn encode(
        &self,
        feature: burn::prelude::Tensor<4>,
    ) -> Result<coinfer_codec::Payload, coinfer_codec::CodecError> {
        self.inner.encode(feature)
    }
    fn decode(
        &self,
        payload: &[u8],
        device: &burn::prelude::Device,
    ) -> Result<burn::prelude::Tensor<4>, coinfer_codec::CodecError> {
        use std::sync::atomic::Ordering;
        if self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("decoder bug");
        }
        self.inner.decode(payload, device)
    }
}

#[test]
fn a_panic_in_the_edge_worker_is_answered_as_internal_and_the_server_goes_on() {
    let fx = fixture();
    let good = codec(CodecId::quant(8, true));
    let panicky = arc(PanickingDecoder {
        inner: good.clone(),
        panics: 1.into(),
    });
    let server = spawn(&fx, panicky, ServerConfig::default());
    let mut client = connect(&fx, server.local_addr(), good.clone()).unwrap();
    let err = client.infer(input(&fx.device, 4, 1)).unwrap_err();
    match &err {
        RuntimeError::Remote {
            request_id,
            code,
            message,
        } => {
            assert_eq!((*request_id, *code), (1, ErrorCode::Internal));
            assert!(message.contains("decoder bug"), "{message}");
        }
        other => panic!("expected an Internal error reply, got {other:?}"),
    }
    // The same connection and the worker go on.
    let result = client.infer(input(&fx.device, 5, 1)).unwrap();
    let expected = expected_logits(&fx, good.as_ref(), input(&fx.device, 5, 1));
    assert_close(&result.logits, &expected, 1e-5, "after the panic");
    drop(client);
    let stats = server.shutdown().expect("no server thread died");
    assert_eq!((stats.results, stats.errors, stats.panics), (1, 1, 0));
}
