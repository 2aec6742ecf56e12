//! Loopback load experiment for the TCP runtime: N device clients × M requests against one
//! edge server, with dynamic batching off and with a few batching windows; prints throughput
//! and latency percentiles as a Markdown table (the figures in `docs/runtime.md`).
//!
//! ```text
//! cargo run --release -p coinfer-runtime --example runtime_load -- \
//!     [--clients 32] [--requests 50] [--split 2] [--bits 8] [--windows off,0,2,5] [--batch 1] \
//!     [--rate-mbps R]
//! ```
//! `--windows` lists batching windows in milliseconds (`off` = no batching); `--bits 0` sends
//! raw f32 features; `--rate-mbps` shapes every client's uplink to R Mbit/s (token bucket), and
//! the table then compares the measured wire time with `8·frame bytes / R`. Device halves run in the client threads of the same process, so on a small
//! machine they compete with the edge worker for the cores.

use std::error::Error;
use std::time::{Duration, Instant};

use burn::prelude::*;
use coinfer_codec::CodecId;
use coinfer_codec::{SharedCodec, fixed_codec};
use coinfer_runtime::{ClientConfig, DeviceClient, EdgeServer, LinkShaping, ServerConfig};
use coinfer_split::{Network, zoo};

struct Options {
    clients: usize,
    requests: usize,
    split: usize,
    bits: u8,
    batch: usize,
    windows: Vec<Option<Duration>>,
    shaping: Option<LinkShaping>,
}

fn parse() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        clients: 32,
        requests: 50,
        split: 2,
        bits: 8,
        batch: 1,
        windows: vec![
            None,
            Some(Duration::ZERO),
            Some(Duration::from_millis(2)),
            Some(Duration::from_millis(5)),
        ],
        shaping: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => options.clients = value.parse()?,
            "--requests" => options.requests = value.parse()?,
            "--split" => options.split = value.parse()?,
            "--bits" => options.bits = value.parse()?,
            "--batch" => options.batch = value.parse()?,
            "--rate-mbps" => {
                options.shaping = Some(LinkShaping::new(
                    value.parse::<f64>()? * 1e6,
                    Duration::ZERO,
                ));
            }
            "--windows" => {
                options.windows = value
                    .split(',')
                    .map(|w| match w {
                        "off" => Ok(None),
                        ms => ms
                            .parse::<f64>()
                            .map(|ms| Some(Duration::from_secs_f64(ms / 1e3))),
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(options)
}

struct Run {
    seconds: f64,
    latencies_ms: Vec<f64>,
    wire_ms: Vec<f64>,
    frame_bytes: usize,
    forward_passes: u64,
    max_batch: u64,
}

fn run(
    options: &Options,
    whole: &Network,
    codec: &SharedCodec,
    window: Option<Duration>,
) -> Result<Run, Box<dyn Error>> {
    let digest = whole.digest();
    let (device_half, edge_half) = whole.clone().split(options.split)?;
    let config = ServerConfig {
        batch_window: window,
        max_batch: 32,
        ..ServerConfig::default()
    };
    let server =
        EdgeServer::bind("127.0.0.1:0", edge_half, codec.clone(), &digest, config)?.spawn()?;
    let addr = server.local_addr();
    let device = Device::flex();
    let start = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.clients)
            .map(|t| {
                let (device_half, codec, digest, device) =
                    (device_half.clone(), codec.clone(), &digest, &device);
                scope.spawn(move || -> Result<Vec<(f64, f64, usize)>, String> {
                    let config = ClientConfig {
                        shaping: options.shaping,
                        ..ClientConfig::default()
                    };
                    let mut client =
                        DeviceClient::connect(addr, device_half, codec, digest, config)
                            .map_err(|e| e.to_string())?;
                    let mut latencies = Vec::with_capacity(options.requests);
                    for i in 0..options.requests {
                        let x = Tensor::<4>::full(
                            [options.batch, 1, 28, 28],
                            ((t * 31 + i) % 17) as f32 / 17.0,
                            device,
                        );
                        let result = client.infer(x).map_err(|e| e.to_string())?;
                        latencies.push((
                            result.timing.total_s * 1e3,
                            result.timing.wire_s * 1e3,
                            result.frame_bytes,
                        ));
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "client thread panicked".to_string())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = server.shutdown()?;
    let all: Vec<(f64, f64, usize)> = latencies.into_iter().flatten().collect();
    let sorted = |pick: fn(&(f64, f64, usize)) -> f64| {
        let mut v: Vec<f64> = all.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    Ok(Run {
        seconds,
        latencies_ms: sorted(|r| r.0),
        wire_ms: sorted(|r| r.1),
        frame_bytes: all.first().map_or(0, |r| r.2),
        forward_passes: stats.forward_passes,
        max_batch: stats.max_batch_seen,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse()?;
    let device = Device::flex();
    device.seed(7);
    let whole = Network::new(zoo::resnet_mini(10), &device)?.valid();
    let codec = fixed_codec(if options.bits == 0 {
        CodecId::Float32
    } else {
        CodecId::quant(options.bits, true)
    })?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{} clients × {} requests (batch {}), resnet-mini split at {}, codec {}, {cores} cores\n",
        options.clients,
        options.requests,
        options.batch,
        options.split,
        codec.id()
    );
    println!(
        "| batching window | req/s | p50 ms | p95 ms | forward passes | largest batch | frame bytes | wire p50 ms | 8·bytes/R ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &window in &options.windows {
        let r = run(&options, &whole, &codec, window)?;
        let requests = r.latencies_ms.len();
        let at = |p: f64| ((requests - 1) as f64 * p).round() as usize;
        let pct = |p: f64| r.latencies_ms[at(p)];
        let floor = options.shaping.map_or("-".to_string(), |s| {
            format!("{:.1}", s.transmit_time(r.frame_bytes).as_secs_f64() * 1e3)
        });
        let label = window.map_or("off".to_string(), |w| {
            format!("{} ms", w.as_secs_f64() * 1e3)
        });
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {floor} |",
            requests as f64 / r.seconds,
            pct(0.5),
            pct(0.95),
            r.forward_passes,
            r.max_batch,
            r.frame_bytes,
            r.wire_ms[at(0.5)],
        );
    }
    Ok(())
}
