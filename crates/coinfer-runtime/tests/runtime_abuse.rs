//! Abusive clients against the server's deadlines and budgets (scaled down; the full attack
//! with latency and memory figures is `cargo run --release -p coinfer-runtime --example
//! runtime_abuse`): slow frames, sockets that never say Hello, oversized batches, frames over
//! the byte budget, clients without the deployment token, and a client whose server dies.

mod runtime_common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use coinfer_codec::CodecId;
use coinfer_runtime::{
    ClientConfig, DeviceClient, ErrorCode, FrameBody, RuntimeError, ServerConfig, Token,
    encode_frame,
};
use runtime_common::*;

const QUANT: CodecId = CodecId::Quant {
    bits: 8,
    per_channel: true,
    entropy: false,
};

/// An Infer frame of `batch` samples (seeded inputs) under `codec`, encoded.
fn batch_frame(fx: &Fixture, codec: CodecId, request_id: u64, batch: usize) -> Vec<u8> {
    let codec = runtime_common::codec(codec);
    encode_frame(&batch_infer_frame(
        fx,
        codec.as_ref(),
        request_id,
        request_id,
        batch,
    ))
    .unwrap()
}

fn client_with(
    fx: &Fixture,
    addr: impl std::net::ToSocketAddrs,
    codec: CodecId,
    config: ClientConfig,
) -> Result<DeviceClient, RuntimeError> {
    DeviceClient::connect(
        addr,
        fx.device_half.clone(),
        runtime_common::codec(codec),
        &fx.digest,
        config,
    )
}

#[test]
fn a_frame_trickled_byte_by_byte_is_cut_by_the_frame_deadline() {
    let fx = fixture();
    // The idle timeout alone would never fire: a byte comes every 100 ms.
    let config = ServerConfig {
        read_timeout: Duration::from_secs(30),
        frame_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(QUANT), config);
    let mut slow: Vec<TcpStream> = (0..8).map(|_| raw(server.local_addr())).collect();
    for stream in &mut slow {
        raw_hello(stream, &fx, QUANT);
    }
    let bytes = batch_frame(&fx, QUANT, 1, 1);
    // 40 bytes of a frame of more than 1 KiB, 100 ms apart: 4 s, far past the deadline; the
    // trickle stops at the first write the server no longer takes.
    'trickle: for byte in &bytes[..40] {
        for stream in &mut slow {
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                break 'trickle;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    for stream in &mut slow {
        expect_closed(stream);
    }
    assert_good_client(&fx, server.local_addr(), codec(QUANT));
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.timed_out, 8, "{stats:?}");
    assert_eq!(stats.panics, 0);
}

#[test]
fn a_connection_that_never_says_hello_is_closed_by_the_hello_deadline() {
    let fx = fixture();
    let config = ServerConfig {
        read_timeout: Duration::from_secs(30),
        hello_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(QUANT), config);
    let mut silent = raw(server.local_addr());
    expect_closed(&mut silent);
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.timed_out, 1, "{stats:?}");
}

#[test]
fn sockets_without_hello_beyond_the_cap_evict_the_oldest_not_the_newcomer() {
    let fx = fixture();
    let config = ServerConfig {
        hello_timeout: Duration::from_secs(30),
        max_unauthenticated: 4,
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(QUANT), config);
    let mut idle: Vec<TcpStream> = (0..10).map(|_| raw(server.local_addr())).collect();
    // The newcomer is served although 10 silent sockets came before it.
    assert_good_client(&fx, server.local_addr(), codec(QUANT));
    // The 7 oldest were closed to make room (for the 6 later ones and the good client).
    for stream in &mut idle[..7] {
        expect_closed(stream);
    }
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.evicted, 7, "{stats:?}");
    assert_eq!(stats.refused, 0);
}

#[test]
fn a_batch_over_the_cap_is_refused_on_its_header() {
    let fx = fixture();
    let config = ServerConfig {
        max_request_batch: 4,
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(QUANT), config);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, QUANT);
    // Only the header goes out: the refusal must not wait for the payload.
    let bytes = batch_frame(&fx, QUANT, 7, 5);
    stream.write_all(&bytes[..56]).unwrap();
    let message = expect_error(&mut stream, ErrorCode::BadField, 7);
    assert!(message.contains("`batch` is 5"), "{message}");
    expect_closed(&mut stream);
    // A device client gets the typed error too; 4 samples are served.
    let mut client = client_with(&fx, server.local_addr(), QUANT, ClientConfig::default()).unwrap();
    match client.infer(input(&fx.device, 1, 5)) {
        Err(RuntimeError::Remote { code, .. }) => assert_eq!(code, ErrorCode::BadField),
        other => panic!("expected a BadField refusal, got {other:?}"),
    }
    let ok = client.infer(input(&fx.device, 1, 4)).unwrap();
    assert_eq!(ok.batch, 4);
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.over_budget, 2, "{stats:?}");
    assert_eq!(stats.panics, 0);
}

#[test]
fn frames_over_the_global_byte_budget_are_refused_busy_and_retried() {
    let fx = fixture();
    let bytes = batch_frame(&fx, CodecId::Float32, 1, 2);
    // Room for one such frame, not two.
    let config = ServerConfig {
        max_request_batch: 2,
        max_in_flight_bytes: bytes.len() + bytes.len() / 2,
        max_frame: bytes.len() + bytes.len() / 2,
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(CodecId::Float32), config);
    let mut holder = raw(server.local_addr());
    raw_hello(&mut holder, &fx, CodecId::Float32);
    holder.write_all(&bytes[..1000]).unwrap();
    // The holder's frame is admitted once its header is in: wait until the server holds
    // exactly its bytes (an observable condition, not a sleep that a loaded machine can
    // outlast; "any bytes" could still be the holder's Hello, released after its reply).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.in_flight_bytes() != bytes.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder's frame header was not admitted within 30 s"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let mut second = raw(server.local_addr());
    raw_hello(&mut second, &fx, CodecId::Float32);
    second.write_all(&bytes[..56]).unwrap();
    expect_error(&mut second, ErrorCode::Busy, 1);
    // The holder finishes and is answered; the budget is free again.
    holder.write_all(&bytes[1000..]).unwrap();
    let reply = read_reply(&mut holder).unwrap();
    assert!(matches!(reply.body, FrameBody::Result { .. }), "{reply:?}");
    drop(holder);
    let mut client = client_with(
        &fx,
        server.local_addr(),
        CodecId::Float32,
        ClientConfig::default(),
    )
    .unwrap();
    assert_eq!(client.infer(input(&fx.device, 3, 2)).unwrap().batch, 2);
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.over_budget, 1, "{stats:?}");
}

#[test]
fn a_token_server_refuses_clients_without_the_right_token() {
    let fx = fixture();
    let config = ServerConfig {
        token: Some("s3cret-deployment".into()),
        ..ServerConfig::default()
    };
    let server = spawn(&fx, codec(QUANT), config);
    let with = |token: Option<&str>| ClientConfig {
        token: token.map(Token::from),
        ..ClientConfig::default()
    };
    for token in [None, Some("wrong"), Some("s3cret-deploymenT")] {
        match client_with(&fx, server.local_addr(), QUANT, with(token)) {
            Err(RuntimeError::HandshakeRefused { code, .. }) => {
                assert_eq!(code, ErrorCode::Unauthorized, "{token:?}")
            }
            other => panic!("{token:?}: expected Unauthorized, got {other:?}"),
        }
    }
    let mut client = client_with(
        &fx,
        server.local_addr(),
        QUANT,
        with(Some("s3cret-deployment")),
    )
    .unwrap();
    let got = client.infer(input(&fx.device, 5, 1)).unwrap();
    let expected = expected_logits(&fx, codec(QUANT).as_ref(), input(&fx.device, 5, 1));
    assert_close(&got.logits, &expected, 1e-5, "token client");
    server.shutdown().unwrap();
}

#[test]
fn a_client_whose_server_dies_retries_on_the_next_address() {
    let fx = fixture();
    let first = spawn(&fx, codec(QUANT), ServerConfig::default());
    let second = spawn(&fx, codec(QUANT), ServerConfig::default());
    let addrs: [SocketAddr; 2] = [first.local_addr(), second.local_addr()];
    let mut client = client_with(&fx, &addrs[..], QUANT, ClientConfig::default()).unwrap();
    assert_eq!(client.peer_addr(), addrs[0]);
    client.infer(input(&fx.device, 1, 1)).unwrap();
    first.shutdown().unwrap();
    // The same request object, answered by the surviving server.
    let got = client.infer(input(&fx.device, 2, 1)).unwrap();
    let expected = expected_logits(&fx, codec(QUANT).as_ref(), input(&fx.device, 2, 1));
    assert_close(&got.logits, &expected, 1e-5, "after failover");
    assert_eq!(client.peer_addr(), addrs[1]);
    assert_eq!(client.reconnects(), 1);
    // Without retries the loss is reported.
    let mut fragile = client_with(
        &fx,
        second.local_addr(),
        QUANT,
        ClientConfig {
            retries: 0,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    second.shutdown().unwrap();
    assert!(fragile.infer(input(&fx.device, 3, 1)).is_err());
}
