//! What TLS costs on loopback: plain TCP vs TLS vs mutual TLS, for the compact ResNet split at
//! 2 with 8-bit per-channel quantization (the runtime's default load plan), one sample per
//! request. Certificates are made at start (rcgen, ECDSA P-256) in a temporary folder.
//!
//! ```text
//! cargo run --release -p coinfer-runtime --example runtime_tls_cost -- \
//!     [--rounds 3] [--connects 20] [--requests 100]
//! ```
//! Per mode it measures `DeviceClient::connect` (TCP connect, TLS handshake, Hello; also the
//! device half's batch-norm folding, the same in every mode): with a fresh TLS configuration
//! each time (a full handshake) and with one shared configuration (TLS 1.3 session
//! resumption after the first), then the latency of `requests` single-sample requests on one
//! connection. The modes take turns for `rounds` rounds, so drifting load on a shared machine
//! hits them alike. One JSON object per mode on stdout; progress on stderr.

#[path = "../tests/runtime_common/certs.rs"]
mod certs;

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use coinfer_codec::QuantCodec;
use coinfer_codec::SharedCodec;
use coinfer_runtime::{
    ClientConfig, ClientTls, DeviceClient, EdgeServer, ServerConfig, ServerHandle, ServerTlsConfig,
};
use coinfer_split::{Network, zoo};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Tls,
    Mutual,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Tls => "tls",
            Self::Mutual => "mtls",
        }
    }
}

#[derive(Default)]
struct Samples {
    connect_full: Vec<f64>,
    connect_resumed: Vec<f64>,
    total: Vec<f64>,
    wire: Vec<f64>,
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] * 1e3
}

fn main() -> Result<(), Box<dyn Error>> {
    let (mut rounds, mut connects, mut requests) = (3usize, 20usize, 100usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => rounds = value.parse()?,
            "--connects" => connects = value.parse()?,
            "--requests" => requests = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
    let digest = net.digest();
    let (device_half, edge_half) = net.split(2)?;
    let codec: SharedCodec = Arc::new(QuantCodec::new(8, true)?);
    let pki = certs::pki("cost");
    let ca = std::fs::read(&pki.ca)?;
    let client_cert = std::fs::read(&pki.client_cert)?;
    let client_key = std::fs::read(&pki.client_key)?;
    let modes = [Mode::Plain, Mode::Tls, Mode::Mutual];
    let mut servers: Vec<ServerHandle> = Vec::new();
    for mode in modes {
        let tls = match mode {
            Mode::Plain => None,
            Mode::Tls => Some(ServerTlsConfig::new(&pki.server_cert, &pki.server_key).check()?),
            Mode::Mutual => Some(
                ServerTlsConfig::new(&pki.server_cert, &pki.server_key)
                    .with_client_ca(&pki.ca)
                    .check()?,
            ),
        };
        let config = ServerConfig {
            tls,
            ..ServerConfig::default()
        };
        servers.push(
            EdgeServer::bind(
                "127.0.0.1:0",
                edge_half.clone(),
                codec.clone(),
                &digest,
                config,
            )?
            .spawn()?,
        );
    }
    let client_tls = |mode: Mode| -> Result<Option<ClientTls>, Box<dyn Error>> {
        Ok(match mode {
            Mode::Plain => None,
            Mode::Tls => Some(ClientTls::from_pem(&ca, Some("localhost"), None)?),
            Mode::Mutual => Some(ClientTls::from_pem(
                &ca,
                Some("localhost"),
                Some((&client_cert, &client_key)),
            )?),
        })
    };
    let connect = |addr: SocketAddr, tls: Option<ClientTls>| {
        DeviceClient::connect(
            addr,
            device_half.clone(),
            codec.clone(),
            &digest,
            ClientConfig {
                tls,
                ..ClientConfig::default()
            },
        )
    };
    let x = Tensor::<4>::ones([1, 1, 28, 28], &device);
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        for (m, &mode) in modes.iter().enumerate() {
            eprintln!("round {}/{rounds}: {}", round + 1, mode.name());
            let addr = servers[m].local_addr();
            let shared = client_tls(mode)?;
            for _ in 0..connects {
                let fresh = client_tls(mode)?;
                let start = Instant::now();
                let client = connect(addr, fresh)?;
                samples[m].connect_full.push(start.elapsed().as_secs_f64());
                client.close();
                let start = Instant::now();
                let client = connect(addr, shared.clone())?;
                samples[m]
                    .connect_resumed
                    .push(start.elapsed().as_secs_f64());
                client.close();
            }
            let mut client = connect(addr, shared)?;
            for _ in 0..10 {
                client.infer(x.clone())?;
            }
            for _ in 0..requests {
                let start = Instant::now();
                let result = client.infer(x.clone())?;
                samples[m].total.push(start.elapsed().as_secs_f64());
                samples[m].wire.push(result.timing.wire_s);
            }
            client.close();
        }
    }
    for (m, mode) in modes.iter().enumerate() {
        let s = &samples[m];
        println!(
            "{{\"mode\":\"{}\",\"plan\":\"resnet-mini split 2, quant8 per-channel, batch 1\",\
             \"connects\":{},\"connect_full_p50_ms\":{:.3},\"connect_resumed_p50_ms\":{:.3},\
             \"requests\":{},\"request_p50_ms\":{:.3},\"request_p95_ms\":{:.3},\
             \"wire_p50_ms\":{:.3},\"wire_p95_ms\":{:.3}}}",
            mode.name(),
            s.connect_full.len(),
            percentile(&s.connect_full, 0.5),
            percentile(&s.connect_resumed, 0.5),
            s.total.len(),
            percentile(&s.total, 0.5),
            percentile(&s.total, 0.95),
            percentile(&s.wire, 0.5),
            percentile(&s.wire, 0.95),
        );
    }
    for server in servers {
        let stats = server.shutdown()?;
        if stats.tls_refused > 0 {
            return Err(format!("{} TLS handshakes refused", stats.tls_refused).into());
        }
    }
    let _ = std::fs::remove_dir_all(&pki.dir);
    Ok(())
}
