//! Hostile or broken clients: the edge server answers a typed error or closes that connection,
//! keeps serving well-behaved clients, and never panics (`shutdown` fails if a thread did).

mod runtime_common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use coinfer_codec::CodecId;
use coinfer_codec::SharedCodec;
use coinfer_runtime::{
    ErrorCode, Frame, FrameBody, PlanTag, ServerConfig, ServerHandle, encode_frame,
};
use runtime_common::*;

const CODEC: CodecId = CodecId::Quant {
    bits: 8,
    per_channel: true,
    entropy: false,
};

fn server(fx: &Fixture) -> (ServerHandle, SharedCodec) {
    let codec = codec(CODEC);
    let config = ServerConfig {
        read_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    (spawn(fx, codec.clone(), config), codec)
}

/// After the bad input: a good client is served and no server thread panicked.
fn still_serving(fx: &Fixture, server: ServerHandle, codec: SharedCodec) {
    assert_good_client(fx, server.local_addr(), codec);
    let stats = server.shutdown().expect("no server thread panicked");
    assert_eq!(stats.panics, 0);
    assert!(stats.results >= 2, "{stats:?}");
}

fn good_frame_bytes(fx: &Fixture, codec: &SharedCodec, request_id: u64) -> Vec<u8> {
    encode_frame(&infer_frame(fx, codec.as_ref(), request_id, request_id).0).unwrap()
}

#[test]
fn random_bytes_get_bad_magic_then_close() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    let mut garbage: Vec<u8> = input_values(99, 2)
        .iter()
        .map(|v| (v.to_bits() >> 7) as u8)
        .take(4096)
        .collect();
    garbage[0] = b'x';
    stream.write_all(&garbage).unwrap();
    expect_error(&mut stream, ErrorCode::BadMagic, 0);
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn a_truncated_frame_closes_the_connection() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let bytes = good_frame_bytes(&fx, &codec, 1);
    stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn wrong_magic_gets_an_error_then_close() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let mut bytes = good_frame_bytes(&fx, &codec, 1);
    bytes[..4].copy_from_slice(b"HTTP");
    stream.write_all(&bytes).unwrap();
    let message = expect_error(&mut stream, ErrorCode::BadMagic, 0);
    assert!(message.contains("magic"), "{message}");
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn wrong_version_gets_an_error_then_close() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    let mut bytes = encode_frame(&Frame::hello(&fx.digest, CODEC, FEATURE).unwrap()).unwrap();
    bytes[4..6].copy_from_slice(&3u16.to_le_bytes());
    stream.write_all(&reseal(bytes)).unwrap();
    let message = expect_error(&mut stream, ErrorCode::UnsupportedVersion, 0);
    assert!(message.contains("version 2"), "{message}");
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn wrong_crc_gets_an_error_and_the_connection_goes_on() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let mut bytes = good_frame_bytes(&fx, &codec, 5);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    stream.write_all(&bytes).unwrap();
    let message = expect_error(&mut stream, ErrorCode::CrcMismatch, 5);
    assert!(message.contains("CRC32"), "{message}");
    raw_good_request(&mut stream, &fx, codec.as_ref(), 6);
    still_serving(&fx, server, codec);
}

#[test]
fn an_oversized_length_is_refused_before_allocating() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let mut bytes = good_frame_bytes(&fx, &codec, 1);
    bytes[52..56].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    stream.write_all(&bytes).unwrap();
    let message = expect_error(&mut stream, ErrorCode::Oversized, 0);
    assert!(message.contains("maximum frame size"), "{message}");
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn a_shape_that_does_not_fit_the_plan_is_refused_and_the_connection_goes_on() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let (mut frame, _) = infer_frame(&fx, codec.as_ref(), 3, 3);
    frame.shape = [1, 16, 7, 7];
    stream.write_all(&encode_frame(&frame).unwrap()).unwrap();
    let message = expect_error(&mut stream, ErrorCode::ShapeMismatch, 3);
    assert!(message.contains("[B, 32, 7, 7]"), "{message}");
    // A batch size that disagrees with the payload is caught after decoding.
    let (mut frame, _) = infer_frame(&fx, codec.as_ref(), 4, 4);
    frame.shape[0] = 2;
    stream.write_all(&encode_frame(&frame).unwrap()).unwrap();
    expect_error(&mut stream, ErrorCode::ShapeMismatch, 4);
    raw_good_request(&mut stream, &fx, codec.as_ref(), 5);
    still_serving(&fx, server, codec);
}

#[test]
fn a_corrupt_feature_payload_is_refused_and_the_connection_goes_on() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    raw_hello(&mut stream, &fx, CODEC);
    let (mut frame, _) = infer_frame(&fx, codec.as_ref(), 8, 8);
    let FrameBody::Infer { payload } = &mut frame.body else {
        panic!("infer_frame built a {:?} frame", frame.body);
    };
    payload[40] ^= 0x55;
    stream.write_all(&encode_frame(&frame).unwrap()).unwrap();
    expect_error(&mut stream, ErrorCode::BadPayload, 8);
    raw_good_request(&mut stream, &fx, codec.as_ref(), 9);
    still_serving(&fx, server, codec);
}

#[test]
fn unknown_kinds_and_out_of_turn_frames_are_refused_and_the_connection_goes_on() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stream = raw(server.local_addr());
    // Infer before Hello.
    stream.write_all(&good_frame_bytes(&fx, &codec, 1)).unwrap();
    expect_error(&mut stream, ErrorCode::UnexpectedFrame, 1);
    raw_hello(&mut stream, &fx, CODEC);
    // Unknown kind byte.
    let mut bytes = good_frame_bytes(&fx, &codec, 2);
    bytes[6] = 200;
    stream.write_all(&reseal(bytes)).unwrap();
    expect_error(&mut stream, ErrorCode::UnknownKind, 2);
    // A client sending an Error frame.
    let error = Frame::error(3, PlanTag::of(&fx.digest), CODEC, ErrorCode::Internal, "hi");
    stream.write_all(&encode_frame(&error).unwrap()).unwrap();
    expect_error(&mut stream, ErrorCode::UnexpectedFrame, 3);
    // A frame computed under another plan.
    let (mut frame, _) = infer_frame(&fx, codec.as_ref(), 4, 4);
    frame.plan = PlanTag::of("another plan");
    stream.write_all(&encode_frame(&frame).unwrap()).unwrap();
    expect_error(&mut stream, ErrorCode::DigestMismatch, 4);
    raw_good_request(&mut stream, &fx, codec.as_ref(), 5);
    // Bye closes.
    let bye = Frame::bye(PlanTag::of(&fx.digest), CODEC);
    stream.write_all(&encode_frame(&bye).unwrap()).unwrap();
    expect_closed(&mut stream);
    still_serving(&fx, server, codec);
}

#[test]
fn a_client_vanishing_mid_frame_does_not_disturb_the_others() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    {
        let mut stream = raw(server.local_addr());
        raw_hello(&mut stream, &fx, CODEC);
        let bytes = good_frame_bytes(&fx, &codec, 1);
        stream.write_all(&bytes[..100]).unwrap();
        // Dropped here without a Bye or a shutdown.
    }
    still_serving(&fx, server, codec);
}

#[test]
fn a_stalled_client_is_timed_out_while_others_are_served() {
    let fx = fixture();
    let (server, codec) = server(&fx);
    let mut stalled = raw(server.local_addr());
    raw_hello(&mut stalled, &fx, CODEC);
    let bytes = good_frame_bytes(&fx, &codec, 1);
    stalled.write_all(&bytes[..200]).unwrap();
    // Served while the stalled connection still holds half a frame.
    assert_good_client(&fx, server.local_addr(), codec.clone());
    // The server's 2 s read timeout closes the stalled connection.
    expect_closed(&mut stalled);
    still_serving(&fx, server, codec);
}
