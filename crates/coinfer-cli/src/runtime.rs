//! `coinfer serve` and `coinfer infer`: deploy a plan as an edge server and a device client.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use burn::prelude::*;
use clap::Args;
use coinfer_automl::SplitPlan;
use coinfer_automl::data::{embedded, fashion_mnist};
use coinfer_automl::evaluator::codec_compute;
use coinfer_automl::profile::measure::{MeasureConfig, measure_blocks};
use coinfer_automl::profile::{ComputeProfile, LatencyModel, LinkProfile, PlanCost};
use coinfer_automl::runtime::{
    ClientConfig, DeviceClient, EdgeServer, LinkShaping, ServerConfig, Timing,
};
use coinfer_automl::split::Network;
use serde::Serialize;

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Options of `coinfer serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The plan to serve (`results/<run>/plan.json`, written by `coinfer search`).
    #[arg(long)]
    plan: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
    /// Dynamic batching window in milliseconds (off when absent; 0 merges only requests
    /// already waiting).
    #[arg(long)]
    batch_window_ms: Option<f64>,
    /// Largest batch of requests the edge half runs at once.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Read (and idle) timeout per connection, seconds.
    #[arg(long, default_value_t = 30.0)]
    read_timeout_s: f64,
}

/// Options of `coinfer infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// The plan (the same file the server serves).
    #[arg(long)]
    plan: PathBuf,
    /// Address of the edge server.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: String,
    /// Shape the uplink to this rate: a number with an optional unit (`10Mbit`, `1Mbit`,
    /// `500kbit`, `1e7`); unshaped when absent.
    #[arg(long)]
    rate: Option<String>,
    /// One-way delay added before every request, milliseconds (emulates the link's RTT).
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Number of test images to send, one request each.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Full Fashion-MNIST directory (default: the embedded test subset).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print every request's breakdown (default: the first 5).
    #[arg(long)]
    verbose: bool,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_rate(text: &str) -> CliResult<f64> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(unit, scale)| {
            lower
                .strip_suffix(unit)
                .map(|n| (n.trim().to_string(), *scale))
        })
        .unwrap_or((lower.clone(), 1.0));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("--rate `{text}`: expected e.g. 10Mbit, 500kbit or 1e7"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("--rate `{text}` must be positive").into());
    }
    Ok(value * scale)
}

/// Runs the edge server until killed.
pub fn serve(args: ServeArgs) -> CliResult<()> {
    let device = Device::flex();
    let deployed = SplitPlan::deploy(&args.plan, &device)?;
    let digest = deployed.plan.digest();
    let config = ServerConfig {
        batch_window: args
            .batch_window_ms
            .map(|ms| Duration::from_secs_f64(ms / 1e3)),
        max_batch: args.max_batch,
        read_timeout: Duration::from_secs_f64(args.read_timeout_s),
        ..ServerConfig::default()
    };
    let server = EdgeServer::bind(
        &args.addr,
        deployed.edge,
        deployed.codec,
        digest.clone(),
        config,
    )?;
    println!(
        "serving plan {} (split {}, codec {}) on {}",
        digest,
        deployed.plan.split,
        deployed.plan.codec,
        server.local_addr()
    );
    server.serve()?;
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Percentiles {
    p50_ms: f64,
    p95_ms: f64,
}

fn percentiles(mut values: Vec<f64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize] * 1e3;
    Percentiles {
        p50_ms: at(0.5),
        p95_ms: at(0.95),
    }
}

#[derive(Debug, Serialize)]
struct InferSummary {
    plan_digest: String,
    split: usize,
    codec: String,
    rate_bps: Option<f64>,
    delay_ms: f64,
    requests: usize,
    accuracy: f64,
    payload_bytes: usize,
    frame_bytes: usize,
    measured: Vec<(String, Percentiles)>,
    predicted_ms: Vec<(String, f64)>,
    predicted_total_ms: f64,
    measured_total_p50_ms: f64,
    relative_error: f64,
}

/// Sends test images through a running server and compares with the latency model.
pub fn infer(args: InferArgs) -> CliResult<()> {
    let device = Device::flex();
    let deployed = SplitPlan::deploy(&args.plan, &device)?;
    let plan = deployed.plan.clone();
    let digest = plan.digest();
    let rate = args.rate.as_deref().map(parse_rate).transpose()?;
    let delay = Duration::from_secs_f64(args.delay_ms.max(0.0) / 1e3);
    let shaping = rate.map(|rate_bps| LinkShaping::new(rate_bps, delay));
    let data = match &args.data_dir {
        Some(dir) => fashion_mnist::load_dir(dir)?.test,
        None => embedded::fashion_mnist_subset()?.test,
    };
    let n = args.n.min(data.len());
    // Spread the requests over the classes rather than taking the first `n` in file order.
    let indices: Vec<usize> = (0..n).map(|i| i * data.len() / n.max(1)).collect();

    // The prediction for this very setup: this machine's measured blocks on both sides, the
    // shaped link, the added delay as the round trip.
    let whole = Network::join(deployed.device.clone(), deployed.edge.clone())?;
    let table = measure_blocks(&whole, &MeasureConfig::new(), &device)?;
    let here = ComputeProfile::measured(table)?;

    let mut client = DeviceClient::connect(
        &args.server,
        deployed.device,
        deployed.codec,
        digest.clone(),
        ClientConfig {
            shaping,
            ..ClientConfig::default()
        },
    )?;
    let mut timings: Vec<Timing> = Vec::with_capacity(n);
    let (mut correct, mut payload_bytes, mut frame_bytes) = (0usize, 0, 0);
    println!("request | device | encode | wire | queue | decode | edge | total (ms)");
    for (k, &i) in indices.iter().enumerate() {
        let (x, label) = data.batch(&[i], &plan.normalization, &device)?;
        let label = label.into_scalar::<i64>() as usize;
        let result = client.infer(x)?;
        if result.predictions().first() == Some(&label) {
            correct += 1;
        }
        payload_bytes = result.payload_bytes;
        frame_bytes = result.frame_bytes;
        let t = result.timing;
        if args.verbose || k < 5 {
            println!(
                "{:>7} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}",
                result.request_id,
                t.device_s * 1e3,
                t.encode_s * 1e3,
                t.wire_s * 1e3,
                t.queue_s * 1e3,
                t.decode_s * 1e3,
                t.edge_s * 1e3,
                t.total_s * 1e3
            );
        }
        timings.push(t);
    }
    client.close();

    let link = LinkProfile::new(
        rate.unwrap_or(1e12),
        delay.as_secs_f64(),
        (frame_bytes.saturating_sub(payload_bytes)) as u64,
    )?;
    let model = LatencyModel::new(here.clone(), link, here)?;
    let spec = whole.spec();
    let feature = spec.shapes()?[plan.split].dims();
    let (encode, decode) = codec_compute(plan.codec, feature, 1);
    let (encode_s, decode_s) = model.codec_times(&encode, &decode);
    let predicted = model.predict(&PlanCost {
        network: spec,
        split: plan.split,
        payload_bits: 8 * payload_bytes as u64,
        encode_s,
        decode_s,
    })?;

    let column = |f: fn(&Timing) -> f64| percentiles(timings.iter().map(f).collect());
    let measured = vec![
        ("device".to_string(), column(|t| t.device_s)),
        ("encode".to_string(), column(|t| t.encode_s)),
        ("wire".to_string(), column(|t| t.wire_s)),
        ("queue".to_string(), column(|t| t.queue_s)),
        ("decode".to_string(), column(|t| t.decode_s)),
        ("edge".to_string(), column(|t| t.edge_s)),
        ("total".to_string(), column(|t| t.total_s)),
    ];
    let predicted_ms = vec![
        ("device".to_string(), predicted.device * 1e3),
        ("encode".to_string(), predicted.encode * 1e3),
        (
            "wire".to_string(),
            (predicted.transmit + predicted.rtt) * 1e3,
        ),
        ("queue".to_string(), 0.0),
        ("decode".to_string(), predicted.decode * 1e3),
        ("edge".to_string(), predicted.edge * 1e3),
        ("total".to_string(), predicted.total * 1e3),
    ];
    let measured_total = measured.last().map_or(0.0, |(_, p)| p.p50_ms);
    let summary = InferSummary {
        plan_digest: digest,
        split: plan.split,
        codec: plan.codec.to_string(),
        rate_bps: rate,
        delay_ms: args.delay_ms,
        requests: n,
        accuracy: correct as f64 / n.max(1) as f64,
        payload_bytes,
        frame_bytes,
        predicted_total_ms: predicted.total * 1e3,
        measured_total_p50_ms: measured_total,
        relative_error: (measured_total - predicted.total * 1e3) / (predicted.total * 1e3),
        measured,
        predicted_ms,
    };
    println!(
        "\n{} requests, accuracy {:.2}%, payload {} B (frame {} B), link {}",
        n,
        100.0 * summary.accuracy,
        payload_bytes,
        frame_bytes,
        rate.map_or("unshaped".to_string(), |r| format!(
            "{:.3} Mbit/s + {} ms",
            r / 1e6,
            args.delay_ms
        ))
    );
    println!(
        "\n| term | measured p50 (ms) | measured p95 (ms) | predicted (ms) |\n|---|---|---|---|"
    );
    for ((name, m), (_, p)) in summary.measured.iter().zip(&summary.predicted_ms) {
        println!("| {name} | {:.3} | {:.3} | {:.3} |", m.p50_ms, m.p95_ms, p);
    }
    println!(
        "\npredicted total {:.3} ms vs measured p50 {:.3} ms: {:+.1}%",
        summary.predicted_total_ms,
        summary.measured_total_p50_ms,
        100.0 * summary.relative_error
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
