//! Shared fixtures of the runtime tests: a random-weight compact ResNet split in two, an edge
//! server on 127.0.0.1:0, deterministic inputs and the in-process expected logits.

#![allow(dead_code)]

pub mod certs;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use burn::prelude::*;
use coinfer_codec::{CodecId, FeatureCodec};
use coinfer_codec::{SharedCodec, fixed_codec};
use coinfer_runtime::{
    ClientConfig, DEFAULT_MAX_FRAME, DeviceClient, EdgeServer, Frame, FrameBody, PlanTag,
    RuntimeError, ServerConfig, ServerHandle, encode_frame, read_frame,
};
use coinfer_split::{Network, zoo};

/// Where the tests cut the compact ResNet: after the stem and the first basic block, so the
/// feature is `[32, 7, 7]`.
pub const SPLIT: usize = 2;
/// The split feature's per-sample shape.
pub const FEATURE: [usize; 3] = [32, 7, 7];

/// A whole network and its two halves.
pub struct Fixture {
    pub device: Device,
    pub whole: Network,
    pub device_half: Network,
    pub edge_half: Network,
    pub digest: String,
}

pub fn fixture() -> Fixture {
    let device = Device::flex();
    let whole = Network::new(zoo::resnet_mini(10), &device)
        .expect("the zoo network builds")
        .valid();
    let digest = whole.digest();
    let (device_half, edge_half) = whole.clone().split(SPLIT).expect("split point in range");
    assert_eq!(edge_half.spec().input.dims(), FEATURE);
    Fixture {
        device,
        whole,
        device_half,
        edge_half,
        digest,
    }
}

pub fn codec(id: CodecId) -> SharedCodec {
    fixed_codec(id).expect("a fixed codec")
}

/// Deterministic input values for sample `seed` (no global RNG: tests run concurrently).
pub fn input_values(seed: u64, batch: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    (0..batch * 28 * 28)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

pub fn input(device: &Device, seed: u64, batch: usize) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(input_values(seed, batch), [batch, 1, 28, 28]),
        device,
    )
}

/// `edge.logits(decode(encode(device.forward(x))))`, in process.
pub fn expected_logits(fx: &Fixture, codec: &dyn FeatureCodec, x: Tensor<4>) -> Vec<f32> {
    let feature = fx.device_half.forward(x).unwrap();
    let payload = codec.encode(feature).unwrap();
    let decoded = codec.decode(&payload.bytes, &fx.device).unwrap();
    to_vec(fx.edge_half.logits(decoded).unwrap())
}

pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

pub fn assert_close(got: &[f32], expected: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "{what}: logit {i} is {a}, expected {b}"
        );
    }
}

pub fn spawn(fx: &Fixture, codec: SharedCodec, config: ServerConfig) -> ServerHandle {
    EdgeServer::bind(
        "127.0.0.1:0",
        fx.edge_half.clone(),
        codec,
        &fx.digest,
        config,
    )
    .expect("bind on loopback")
    .spawn()
    .expect("server threads start")
}

pub fn connect(
    fx: &Fixture,
    addr: SocketAddr,
    codec: SharedCodec,
) -> Result<DeviceClient, RuntimeError> {
    DeviceClient::connect(
        addr,
        fx.device_half.clone(),
        codec,
        &fx.digest,
        ClientConfig::default(),
    )
}

/// A well-behaved client connects, infers, and gets the in-process logits.
pub fn assert_good_client(fx: &Fixture, addr: SocketAddr, codec: SharedCodec) {
    let mut client = connect(fx, addr, codec.clone()).expect("a good client connects");
    for seed in [11, 12] {
        let got = client
            .infer(input(&fx.device, seed, 1))
            .expect("a good request");
        let expected = expected_logits(fx, codec.as_ref(), input(&fx.device, seed, 1));
        assert_close(&got.logits, &expected, 1e-5, "good client after bad input");
    }
    client.close();
}

/// A raw socket to the server (for sending broken bytes).
pub fn raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends a valid Hello on a raw socket and checks the server greets back.
pub fn raw_hello(stream: &mut TcpStream, fx: &Fixture, codec: CodecId) {
    let hello = Frame::hello(&fx.digest, codec, FEATURE).unwrap();
    stream.write_all(&encode_frame(&hello).unwrap()).unwrap();
    let reply = read_reply(stream).expect("a Hello reply");
    assert!(
        matches!(reply.body, FrameBody::Hello { .. }),
        "{:?}",
        reply.body
    );
}

pub fn read_reply(stream: &mut TcpStream) -> Result<Frame, RuntimeError> {
    read_frame(stream, DEFAULT_MAX_FRAME)
}

/// A valid Infer frame for input `seed` and the logits the server must answer with.
pub fn infer_frame(
    fx: &Fixture,
    codec: &dyn FeatureCodec,
    request_id: u64,
    seed: u64,
) -> (Frame, Vec<f32>) {
    let frame = batch_infer_frame(fx, codec, request_id, seed, 1);
    (
        frame,
        expected_logits(fx, codec, input(&fx.device, seed, 1)),
    )
}

/// A valid Infer frame of `batch` samples from input `seed`.
pub fn batch_infer_frame(
    fx: &Fixture,
    codec: &dyn FeatureCodec,
    request_id: u64,
    seed: u64,
    batch: usize,
) -> Frame {
    let feature = fx
        .device_half
        .forward(input(&fx.device, seed, batch))
        .unwrap();
    let dims = feature.dims();
    let payload = codec.encode(feature).unwrap();
    Frame {
        request_id,
        plan: PlanTag::of(&fx.digest),
        codec: codec.id(),
        shape: dims.map(|d| d as u32),
        body: FrameBody::Infer {
            payload: payload.bytes,
        },
    }
}

/// Sends a valid request on a raw socket and checks the answer.
pub fn raw_good_request(
    stream: &mut TcpStream,
    fx: &Fixture,
    codec: &dyn FeatureCodec,
    request_id: u64,
) {
    let (frame, expected) = infer_frame(fx, codec, request_id, request_id);
    stream.write_all(&encode_frame(&frame).unwrap()).unwrap();
    let reply = read_reply(stream).expect("a reply on the same connection");
    assert_eq!(reply.request_id, request_id);
    match reply.body {
        FrameBody::Result { logits, .. } => assert_close(&logits, &expected, 1e-5, "raw request"),
        other => panic!("expected a Result, got {other:?}"),
    }
}

/// Asserts the next reply is an Error frame with `code` (for `request_id`) and returns its message.
pub fn expect_error(
    stream: &mut TcpStream,
    code: coinfer_runtime::ErrorCode,
    request_id: u64,
) -> String {
    let reply = read_reply(stream).expect("an error frame");
    assert_eq!(reply.request_id, request_id, "{:?}", reply.body);
    match reply.body {
        FrameBody::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            message
        }
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

/// Asserts the server closed the connection (clean end, or a reset).
pub fn expect_closed(stream: &mut TcpStream) {
    match read_reply(stream) {
        Err(RuntimeError::ConnectionClosed | RuntimeError::Io { .. }) => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

pub fn arc<C: FeatureCodec + Send + Sync + 'static>(codec: C) -> SharedCodec {
    Arc::new(codec)
}
