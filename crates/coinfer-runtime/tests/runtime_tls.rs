//! TLS and mutual TLS between device clients and the edge server, with certificates made at
//! test time (rcgen): a TLS round trip gives the plain-TCP logits; a mutual-TLS server refuses
//! clients without a certificate or with one from another CA (a typed error on the client) and
//! goes on serving good clients; plain and TLS peers that meet get typed errors, not hangs;
//! the deployment token still applies under TLS; bad certificate files are named.

mod runtime_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use coinfer_codec::CodecId;
use coinfer_runtime::{
    ClientConfig, ClientTls, ClientTlsConfig, DeviceClient, ErrorCode, Frame, FrameBody,
    RuntimeError, ServerConfig, ServerTls, ServerTlsConfig, TlsConfigError, TlsFailure, Token,
    encode_frame, read_frame,
};
use runtime_common::certs::{Pki, pki};
use runtime_common::*;
use rustls_pki_types::pem::PemObject;

const QUANT: CodecId = CodecId::Quant {
    bits: 8,
    per_channel: true,
    entropy: false,
};

fn server_tls(pki: &Pki, mutual: bool) -> ServerTls {
    let config = ServerTlsConfig::new(&pki.server_cert, &pki.server_key);
    let config = if mutual {
        config.with_client_ca(&pki.ca)
    } else {
        config
    };
    config.check().expect("the server certificate loads")
}

/// A TLS server with the default Hello deadline (5 s): the good clients' TLS handshake and
/// Hello must not race a short deadline on a loaded machine. The one test of the deadline
/// itself starts its own server ([`STALL_DEADLINE`]).
fn tls_server(fx: &Fixture, tls: ServerTls, token: Option<&str>) -> coinfer_runtime::ServerHandle {
    spawn(
        fx,
        codec(QUANT),
        ServerConfig {
            tls: Some(tls),
            token: token.map(Token::from),
            ..ServerConfig::default()
        },
    )
}

/// The Hello deadline of the stalled-handshake test: short, and far below the test socket's
/// 10 s read timeout, so a close by the deadline and a read that timed out cannot be confused.
const STALL_DEADLINE: Duration = Duration::from_millis(500);

fn client_with(
    fx: &Fixture,
    addr: std::net::SocketAddr,
    tls: Option<ClientTls>,
    token: Option<&str>,
) -> Result<DeviceClient, RuntimeError> {
    DeviceClient::connect(
        addr,
        fx.device_half.clone(),
        codec(QUANT),
        &fx.digest,
        ClientConfig {
            tls,
            token: token.map(Token::from),
            retries: 0,
            read_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        },
    )
}

fn tls_failure(result: Result<DeviceClient, RuntimeError>) -> TlsFailure {
    match result {
        Err(RuntimeError::Tls { failure, .. }) => failure,
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("expected a TLS error, the client was served"),
    }
}

/// Infers seeds 1..=3 and returns the logits.
fn logits(client: &mut DeviceClient, fx: &Fixture) -> Vec<Vec<f32>> {
    (1..=3)
        .map(|seed| {
            client
                .infer(input(&fx.device, seed, 1))
                .expect("served")
                .logits
        })
        .collect()
}

#[test]
fn a_tls_round_trip_gives_the_plain_tcp_logits() {
    let fx = fixture();
    let pki = pki("roundtrip");
    let plain = spawn(&fx, codec(QUANT), ServerConfig::default());
    let tls = tls_server(&fx, server_tls(&pki, false), None);
    let mut plain_client = client_with(&fx, plain.local_addr(), None, None).unwrap();
    let expected = logits(&mut plain_client, &fx);
    // The default checks the connected IP address (the certificate names 127.0.0.1), an
    // explicit server name checks that name.
    for name in [None, Some("localhost")] {
        let mut config = ClientTlsConfig::new(&pki.ca);
        config.server_name = name.map(str::to_string);
        let mut client =
            client_with(&fx, tls.local_addr(), Some(config.check().unwrap()), None).unwrap();
        assert_eq!(logits(&mut client, &fx), expected, "server name {name:?}");
        let single = expected_logits(&fx, codec(QUANT).as_ref(), input(&fx.device, 1, 1));
        assert_close(&expected[0], &single, 1e-5, "TLS logits vs in-process");
        client.close();
    }
    plain_client.close();
    assert_eq!(tls.shutdown().unwrap().tls_refused, 0);
    plain.shutdown().unwrap();
}

#[test]
fn mutual_tls_refuses_clients_without_a_good_certificate_and_serves_the_others() {
    let fx = fixture();
    let pki = pki("mutual");
    let server = tls_server(&fx, server_tls(&pki, true), None);
    let addr = server.local_addr();
    assert!(server_tls(&pki, true).requires_client_certificate());

    let refusals = [
        // No client certificate, and one from an unrelated CA: the server refuses.
        (
            ClientTlsConfig::new(&pki.ca),
            TlsFailure::CertificateRefusedByPeer,
        ),
        (
            ClientTlsConfig::new(&pki.ca)
                .with_client_identity(&pki.other_client_cert, &pki.other_client_key),
            TlsFailure::CertificateRefusedByPeer,
        ),
        // A client that trusts another CA, or expects another name, refuses the server.
        (
            ClientTlsConfig::new(&pki.other_ca)
                .with_client_identity(&pki.client_cert, &pki.client_key),
            TlsFailure::PeerCertificateRejected,
        ),
        (
            ClientTlsConfig::new(&pki.ca)
                .with_server_name("edge.example")
                .with_client_identity(&pki.client_cert, &pki.client_key),
            TlsFailure::PeerCertificateRejected,
        ),
    ];
    for (config, expected) in refusals {
        let tls = config.check().unwrap();
        assert_eq!(
            tls_failure(client_with(&fx, addr, Some(tls), None)),
            expected,
            "{config:?}"
        );
    }

    let good = ClientTlsConfig::new(&pki.ca)
        .with_client_identity(&pki.client_cert, &pki.client_key)
        .check()
        .unwrap();
    assert!(good.has_client_certificate());
    let mut client = client_with(&fx, addr, Some(good), None).expect("a good client is served");
    let got = client.infer(input(&fx.device, 5, 2)).unwrap();
    let expected = expected_logits(&fx, codec(QUANT).as_ref(), input(&fx.device, 5, 2));
    assert_close(&got.logits, &expected, 1e-5, "mutual TLS");
    client.close();
    let stats = server.shutdown().expect("no server thread panicked");
    // The two clients the server refused (those that refused the server may close first).
    assert!(stats.tls_refused >= 2, "{stats:?}");
    assert_eq!(stats.results, 1);
}

#[test]
fn plain_and_tls_peers_that_meet_get_typed_errors() {
    let fx = fixture();
    let pki = pki("mismatch");
    let tls = tls_server(&fx, server_tls(&pki, false), None);
    match client_with(&fx, tls.local_addr(), None, None) {
        Err(RuntimeError::HandshakeRefused { code, message }) => {
            assert_eq!(code, ErrorCode::TlsRequired, "{message}");
        }
        other => panic!("a plain client must be refused with TlsRequired: {other:?}"),
    }
    tls.shutdown().unwrap();
    // A socket that starts a TLS handshake and stalls is cut by the Hello deadline, well
    // before the socket's own 10 s read timeout.
    let short = spawn(
        &fx,
        codec(QUANT),
        ServerConfig {
            tls: Some(server_tls(&pki, false)),
            hello_timeout: STALL_DEADLINE,
            ..ServerConfig::default()
        },
    );
    let began = std::time::Instant::now();
    let mut stalled = raw(short.local_addr());
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut buf = [0u8; 64];
    let read = stalled.read(&mut buf);
    let waited = began.elapsed();
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server closes a stalled handshake: {read:?} after {waited:?}"
    );
    assert!(
        waited >= STALL_DEADLINE && waited < Duration::from_secs(8),
        "closed after {waited:?}, the deadline is {STALL_DEADLINE:?}"
    );
    let stats = short.shutdown().unwrap();
    assert_eq!(stats.timed_out, 1, "{stats:?}");

    let plain = spawn(&fx, codec(QUANT), ServerConfig::default());
    let config = ClientTlsConfig::new(&pki.ca).check().unwrap();
    assert_eq!(
        tls_failure(client_with(&fx, plain.local_addr(), Some(config), None)),
        TlsFailure::NotTls
    );
    plain.shutdown().unwrap();
}

#[test]
fn the_token_still_applies_under_tls() {
    let fx = fixture();
    let pki = pki("token");
    let server = tls_server(&fx, server_tls(&pki, true), Some("s3cret"));
    let addr = server.local_addr();
    let tls = ClientTlsConfig::new(&pki.ca)
        .with_client_identity(&pki.client_cert, &pki.client_key)
        .check()
        .unwrap();
    for token in [None, Some("wrong")] {
        match client_with(&fx, addr, Some(tls.clone()), token) {
            Err(RuntimeError::HandshakeRefused { code, .. }) => {
                assert_eq!(code, ErrorCode::Unauthorized)
            }
            other => panic!("token {token:?}: {other:?}"),
        }
    }
    let mut client = client_with(&fx, addr, Some(tls), Some("s3cret")).unwrap();
    client.infer(input(&fx.device, 9, 1)).unwrap();
    client.close();
    server.shutdown().unwrap();
}

/// The kind of a TLS option error and the option it names.
fn culprit(err: &TlsConfigError) -> (&'static str, &'static str) {
    match err {
        TlsConfigError::Read { field, .. } => ("Read", field),
        TlsConfigError::NoCertificate { field, .. } => ("NoCertificate", field),
        TlsConfigError::NoPrivateKey { field, .. } => ("NoPrivateKey", field),
        TlsConfigError::KeyMismatch { key_field, .. } => ("KeyMismatch", key_field),
        TlsConfigError::BadServerName { .. } => ("BadServerName", "server_name"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn bad_certificate_files_are_named() {
    let pki = pki("files");
    let missing = pki.dir.join("missing.pem");
    let server = |cert, key| ServerTlsConfig::new(cert, key);
    let cases = [
        (
            server(&missing, &pki.server_key).check().err(),
            ("Read", "cert_chain"),
        ),
        // A key where the certificate should be, a certificate where the key should be.
        (
            server(&pki.server_key, &pki.server_key).check().err(),
            ("NoCertificate", "cert_chain"),
        ),
        (
            server(&pki.server_cert, &pki.server_cert).check().err(),
            ("NoPrivateKey", "private_key"),
        ),
        // The client's key with the server's certificate.
        (
            server(&pki.server_cert, &pki.client_key).check().err(),
            ("KeyMismatch", "private_key"),
        ),
        (
            server(&pki.server_cert, &pki.server_key)
                .with_client_ca(&pki.server_key)
                .check()
                .err(),
            ("NoCertificate", "client_ca"),
        ),
        (
            ClientTlsConfig::new(&pki.ca)
                .with_client_identity(&pki.client_cert, &pki.server_key)
                .check()
                .err(),
            ("KeyMismatch", "client_key"),
        ),
        (
            ClientTlsConfig::new(&pki.ca)
                .with_server_name("not a name!")
                .check()
                .err(),
            ("BadServerName", "server_name"),
        ),
    ];
    for (err, expected) in cases {
        let err = err.expect("a bad file is refused");
        assert_eq!(culprit(&err), expected, "{err}");
    }
    let err = server(&missing, &pki.server_key).check().unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let err = server(&pki.server_cert, &pki.client_key)
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    // In-memory PEM works the same way.
    let ca = std::fs::read(&pki.ca).unwrap();
    assert!(ClientTls::from_pem(&ca, Some("localhost"), None).is_ok());
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// A raw TLS connection (rustls directly), trusting the test CA.
fn raw_tls(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

#[test]
fn a_frame_trickled_in_tls_records_is_cut_by_the_frame_deadline() {
    // Each byte written goes out as its own TLS record, so the socket is never idle: only the
    // frame deadline, enforced on the socket under TLS, can end the trickle.
    let fx = fixture();
    let pki = pki("trickle");
    let server = spawn(
        &fx,
        codec(QUANT),
        ServerConfig {
            tls: Some(server_tls(&pki, false)),
            frame_timeout: Duration::from_millis(500),
            ..ServerConfig::default()
        },
    );
    let mut stream = raw_tls(&pki, server.local_addr());
    let hello = Frame::hello(&fx.digest, QUANT, FEATURE).unwrap();
    stream.write_all(&encode_frame(&hello).unwrap()).unwrap();
    let reply = read_frame(&mut stream, 1 << 20).unwrap();
    assert!(matches!(reply.body, FrameBody::Hello { .. }), "{reply:?}");
    let (frame, _) = infer_frame(&fx, codec(QUANT).as_ref(), 1, 3);
    let bytes = encode_frame(&frame).unwrap();
    // 40 bytes 100 ms apart: 4 s, far past the 0.5 s deadline.
    for byte in &bytes[..40] {
        if stream
            .write_all(std::slice::from_ref(byte))
            .and_then(|()| stream.flush())
            .is_err()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut buf = [0u8; 64];
    assert!(
        matches!(stream.read(&mut buf), Ok(0) | Err(_)),
        "the server closed the trickling connection"
    );
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.timed_out, 1, "{stats:?}");
}
