//! The adversarial suite against a live edge server with default limits, while one legitimate
//! client measures its latency: 260 greeted slowloris connections trickling Infer frames at
//! 1 byte/s (reconnecting when cut), 260 sockets that never say Hello, one request over the
//! batch cap and one maximum-size batch, 12 connections announcing 60 MiB frames and sending
//! half, 12 half-sent maximum-size frames, and a stream of hostile frames (garbage, bad CRC,
//! bad kinds). Prints JSON lines (figures in `docs/runtime.md`); progress on stderr.
//!
//! ```text
//! cargo run --release -p coinfer-runtime --example runtime_abuse -- [--seconds 15] [--slowloris 260] [--silent 260]
//! ```
//! RSS is this whole process (server, attackers and client), read from `/proc/self/status`.

use std::error::Error;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use burn::prelude::*;
use coinfer_codec::CodecId;
use coinfer_codec::{SharedCodec, fixed_codec};
use coinfer_runtime::{
    ClientConfig, DeviceClient, EdgeServer, Frame, FrameBody, PlanTag, ServerConfig, encode_frame,
    read_frame,
};
use coinfer_split::{Network, zoo};

const CODEC: CodecId = CodecId::Quant {
    bits: 8,
    per_channel: true,
    entropy: false,
};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn p(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize] * 1e3
}

/// `seconds` of sequential requests (one every 10 ms): latencies and failures.
fn legit(
    addr: SocketAddr,
    half: &Network,
    codec: &SharedCodec,
    digest: &str,
    seconds: f64,
) -> (Vec<f64>, usize) {
    let device = Device::flex();
    let mut errors = 0;
    let mut latencies = Vec::new();
    let mut client = match DeviceClient::connect(
        addr,
        half.clone(),
        codec.clone(),
        digest,
        ClientConfig {
            retries: 0,
            ..ClientConfig::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("legitimate client refused: {e}");
            return (latencies, 1);
        }
    };
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut k = 0u32;
    while Instant::now() < end {
        let x = Tensor::<4>::ones([1, 1, 28, 28], &device) * (k as f32 / 1e3);
        let t = Instant::now();
        match client.infer(x) {
            Ok(_) => latencies.push(t.elapsed().as_secs_f64()),
            Err(e) => {
                errors += 1;
                eprintln!("legitimate request failed: {e}");
            }
        }
        k += 1;
        thread::sleep(Duration::from_millis(10));
    }
    (latencies, errors)
}

fn greeted(addr: SocketAddr, digest: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let hello = Frame::hello(digest, CODEC, [32, 7, 7]).ok()?;
    s.write_all(&encode_frame(&hello).ok()?).ok()?;
    match read_frame(&mut s, 1 << 20).ok()?.body {
        FrameBody::Hello { .. } => Some(s),
        _ => None,
    }
}

fn infer_bytes(digest: &str, batch: u32, payload: Vec<u8>) -> Vec<u8> {
    encode_frame(&Frame {
        request_id: 1,
        plan: PlanTag::of(digest),
        codec: CODEC,
        shape: [batch, 32, 7, 7],
        body: FrameBody::Infer { payload },
    })
    .unwrap()
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut seconds = 15.0f64;
    let mut slowloris = 260usize;
    let mut silent_sockets = 260usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse()?,
            "--slowloris" => slowloris = value.parse()?,
            "--silent" => silent_sockets = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
    let digest = net.digest();
    let (half, edge) = net.split(2)?;
    let codec = fixed_codec(CODEC)?;
    let config = ServerConfig::default();
    let server = EdgeServer::bind("127.0.0.1:0", edge, codec.clone(), &digest, config.clone())?;
    let max_frame = server.max_frame();
    let server = server.spawn()?;
    let addr = server.local_addr();

    eprintln!("unloaded: {seconds} s of requests");
    let (mut quiet, quiet_errors) = legit(addr, &half, &codec, &digest, seconds / 3.0);
    println!(
        "{{\"phase\":\"unloaded\",\"requests\":{},\"errors\":{quiet_errors},\"p50_ms\":{:.3},\"p95_ms\":{:.3}}}",
        quiet.len(),
        p(&mut quiet, 0.5),
        p(&mut quiet, 0.95)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    // Slowloris, greeted: one byte per second per connection, reconnect when cut.
    {
        let (stop, digest) = (stop.clone(), digest.clone());
        attackers.push(thread::spawn(move || {
            let frame = infer_bytes(&digest, 1, vec![0; 1600]);
            let mut conns: Vec<(Option<TcpStream>, usize)> = (0..slowloris)
                .map(|_| (greeted(addr, &digest), 0))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                for (conn, at) in &mut conns {
                    let ok = conn
                        .as_mut()
                        .is_some_and(|s| s.write_all(&frame[*at..*at + 1]).is_ok());
                    if ok {
                        *at = (*at + 1) % frame.len();
                    } else {
                        *conn = greeted(addr, &digest);
                        *at = 0;
                    }
                }
                thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    // Sockets that never say Hello (reopened when closed).
    {
        let stop = stop.clone();
        attackers.push(thread::spawn(move || {
            let mut silent: Vec<Option<TcpStream>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                silent.retain(|s| {
                    s.as_ref().is_some_and(|s| {
                        s.set_nonblocking(true).is_ok() && !matches!(s.peek(&mut [0u8; 1]), Ok(0))
                    })
                });
                while silent.len() < silent_sockets {
                    silent.push(TcpStream::connect(addr).ok());
                }
                thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    // Over the batch cap, then one maximum-size batch; 12 × 60 MiB announced and half sent;
    // 12 half-sent maximum-size frames.
    {
        let digest = digest.clone();
        let half = half.clone();
        let codec = codec.clone();
        let cap = config.max_request_batch;
        attackers.push(thread::spawn(move || {
            if let Some(mut s) = greeted(addr, &digest) {
                let mut header = infer_bytes(&digest, 85_597, vec![]);
                header[52..56].copy_from_slice(&(64u32 << 20).to_le_bytes());
                let _ = s.write_all(&header[..56]);
            }
            let device = Device::flex();
            if let Ok(feature) = half.forward(Tensor::<4>::ones([cap, 1, 28, 28], &device))
                && let Ok(payload) = codec.encode(feature)
                && let Some(mut s) = greeted(addr, &digest)
            {
                let _ = s.write_all(&infer_bytes(&digest, cap as u32, payload.bytes));
                let _ = read_frame(&mut s, 1 << 24);
            }
            let mut held = Vec::new();
            for _ in 0..12 {
                if let Some(mut s) = greeted(addr, &digest) {
                    let mut header = infer_bytes(&digest, 1, vec![]);
                    header[52..56].copy_from_slice(&(60u32 << 20).to_le_bytes());
                    let _ = s.write_all(&header[..56]);
                    let _ = s.write_all(&vec![0u8; 30 << 20]);
                    held.push(s);
                }
                if let Some(mut s) = greeted(addr, &digest) {
                    let n = max_frame - 60;
                    let mut header = infer_bytes(&digest, cap as u32, vec![]);
                    header[52..56].copy_from_slice(&(n as u32).to_le_bytes());
                    let _ = s.write_all(&header[..56]);
                    let _ = s.write_all(&vec![0u8; n / 2]);
                    held.push(s);
                }
            }
            thread::sleep(Duration::from_secs(30));
            drop(held);
        }));
    }
    // Hostile frames: garbage, flipped CRC, unknown kinds.
    {
        let (stop, digest) = (stop.clone(), digest.clone());
        attackers.push(thread::spawn(move || {
            let good = infer_bytes(&digest, 1, vec![1; 1568]);
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if let Some(mut s) = greeted(addr, &digest) {
                    let mut bytes = good.clone();
                    match k % 3 {
                        0 => bytes
                            .iter_mut()
                            .for_each(|b| *b = b.wrapping_mul(31) ^ k as u8),
                        1 => *bytes.last_mut().unwrap() ^= 1,
                        _ => bytes[6] = 200,
                    }
                    let _ = s.write_all(&bytes);
                    let _ = read_frame(&mut s, 1 << 20);
                }
                k += 1;
                thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss = {
        let stop = rss_stop.clone();
        thread::spawn(move || {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss_kib("VmRSS:"));
                thread::sleep(Duration::from_millis(100));
            }
            max
        })
    };
    eprintln!("attack: waiting 2 s for the attackers to settle, then {seconds} s of requests");
    thread::sleep(Duration::from_secs(2));
    let (mut loud, loud_errors) = legit(addr, &half, &codec, &digest, seconds);
    let stats = server.stats();
    stop.store(true, Ordering::Relaxed);
    rss_stop.store(true, Ordering::Relaxed);
    let rss_max = rss.join().unwrap_or(0);
    println!(
        "{{\"phase\":\"attack\",\"requests\":{},\"errors\":{loud_errors},\"p50_ms\":{:.3},\"p95_ms\":{:.3},\"slowloris\":{slowloris},\"silent\":{silent_sockets}}}",
        loud.len(),
        p(&mut loud, 0.5),
        p(&mut loud, 0.95)
    );
    println!(
        "{{\"phase\":\"server\",\"max_frame\":{max_frame},\"connections\":{},\"refused\":{},\"evicted\":{},\"timed_out\":{},\"over_budget\":{},\"errors\":{},\"panics\":{},\"rss_max_mib\":{:.1},\"rss_hwm_mib\":{:.1}}}",
        stats.connections,
        stats.refused,
        stats.evicted,
        stats.timed_out,
        stats.over_budget,
        stats.errors,
        stats.panics,
        rss_max as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
    std::process::exit(0);
}
