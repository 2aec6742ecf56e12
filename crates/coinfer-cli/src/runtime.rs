//! `coinfer serve` and `coinfer infer`: deploy a plan as an edge server and a device client.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use coinfer_automl::SplitPlan;
use coinfer_automl::evaluator::codec_compute;
use coinfer_automl::planset::PlanSet;
use coinfer_automl::profile::{ComputeProfile, LatencyModel, LinkProfile, PlanCost};
use coinfer_automl::profile::{MeasureConfig, measure_blocks};
use coinfer_automl::runtime::{
    AdaptiveClient, ClientConfig, ClientTls, ClientTlsConfig, DeviceClient, EdgeServer,
    EstimatorConfig, LinkShaping, LinkTrace, Policy, ServerConfig, ServerTls, ServerTlsConfig,
    Timing, TlsConfigError, Token, TracePlayer,
};
use coinfer_automl::split::Network;
use serde::Serialize;

use crate::backend::BackendChoice;
use crate::data::{self, DatasetChoice};

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Options of `coinfer serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The plan to serve (`results/<run>/plan.json`, written by `coinfer search`).
    #[arg(long, required_unless_present = "plans", conflicts_with = "plans")]
    plan: Option<PathBuf>,
    /// Serve every edge half of a plan set instead (`set.json`, written by `coinfer plans`);
    /// clients greet with the set's digest and tag each request with its plan.
    #[arg(long)]
    plans: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
    /// Dynamic batching window in milliseconds (off when absent; 0 merges only requests
    /// already waiting).
    #[arg(long, value_parser = parse_millis)]
    batch_window_ms: Option<Duration>,
    /// Largest batch of requests the edge half runs at once.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Most samples in one request (larger ones are refused before they are read); also
    /// bounds the frame size.
    #[arg(long, default_value_t = 64)]
    max_request_batch: usize,
    /// Idle timeout per connection (between frames and per read), seconds.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    read_timeout_s: Duration,
    /// Deadline for one whole frame, from its first byte, seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    frame_timeout_s: Duration,
    /// Deadline for a new connection's Hello, from the accept, seconds.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    hello_timeout_s: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Most connections without a completed Hello (the oldest is closed to make room).
    #[arg(long, default_value_t = 64)]
    max_unauthenticated: usize,
    /// Most frame bytes held by all connections at once, MiB.
    #[arg(long, default_value_t = 256)]
    max_in_flight_mib: usize,
    /// Deployment token clients must present (default: the COINFER_TOKEN environment
    /// variable; none when unset, and then anyone who knows the plan digest is served).
    #[arg(long)]
    token: Option<String>,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs `--tls-key`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS. Needs `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// burn backend to run the edge half on (must be compiled in: flex, ndarray, wgpu).
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
}

/// Options of `coinfer infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// The plan (the same file the server serves).
    #[arg(long, required_unless_present = "plans", conflicts_with = "plans")]
    plan: Option<PathBuf>,
    /// Run a plan set (the `set.json` the server serves with `--plans`) with `--adaptive`.
    #[arg(long, requires = "adaptive")]
    plans: Option<PathBuf>,
    /// With `--plans`: before each request pick the plan the latency model predicts fastest
    /// for the link estimated from the previous requests (with hysteresis); on a link failure
    /// answer on the set's device-only plan. Prints every request and every switch as JSON
    /// lines.
    #[arg(long, requires = "plans")]
    adaptive: bool,
    /// With `--plans`: the link follows this trace (JSON; see `docs/runtime.md`) instead of
    /// `--rate` / `--delay-ms`.
    #[arg(long, requires = "plans")]
    trace: Option<PathBuf>,
    /// With `--plans`: run each plan's device half at least as long as the set predicts for
    /// its device (emulating e.g. a microcontroller).
    #[arg(long, requires = "plans")]
    emulate_device: bool,
    /// Address of the edge server.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: String,
    /// Shape the uplink to this rate: a number with an optional unit (`10Mbit`, `1Mbit`,
    /// `500kbit`, `1e7`); unshaped when absent.
    #[arg(long)]
    rate: Option<String>,
    /// One-way delay added before every request, milliseconds (emulates the link's RTT).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    delay_ms: Duration,
    /// Number of test images to send, one request each.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    n: u32,
    /// Deployment token presented to the server (default: the COINFER_TOKEN environment
    /// variable).
    #[arg(long)]
    token: Option<String>,
    /// Connect with TLS, trusting the CAs in this PEM file to sign the server's certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of `--server`).
    #[arg(long, requires = "tls_ca")]
    tls_server_name: Option<String>,
    /// Present this client certificate (PEM) to a mutual-TLS server; needs `--tls-client-key`.
    #[arg(long, requires_all = ["tls_ca", "tls_client_key"])]
    tls_client_cert: Option<PathBuf>,
    /// The private key of `--tls-client-cert` (PEM).
    #[arg(long, requires = "tls_client_cert")]
    tls_client_key: Option<PathBuf>,
    /// Retries of a request on a new connection when the connection is lost.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Read the test images of `--dataset` from this directory (default: the embedded
    /// Fashion-MNIST test subset).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Format of `--data-dir` (see `coinfer search --help`).
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetChoice,
    /// burn backend to run the device half on (must be compiled in: flex, ndarray, wgpu).
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
    /// Print every request's breakdown (default: the first 5).
    #[arg(long)]
    verbose: bool,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Longest duration a time flag takes: one day.
const MAX_FLAG_SECONDS: f64 = 86_400.0;

/// A positive, finite number of seconds up to a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(value.is_finite() && value > 0.0 && value <= MAX_FLAG_SECONDS) {
        return Err(format!(
            "{text} s is not in (0, {MAX_FLAG_SECONDS}] seconds"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// A non-negative, finite number of milliseconds up to a day.
fn parse_millis(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of milliseconds"))?;
    if !(value.is_finite() && (0.0..=MAX_FLAG_SECONDS * 1e3).contains(&value)) {
        return Err(format!(
            "{text} ms is not in [0, {}] milliseconds",
            MAX_FLAG_SECONDS * 1e3
        ));
    }
    Ok(Duration::from_secs_f64(value / 1e3))
}

/// The token from the flag, else from `COINFER_TOKEN`.
fn token(flag: Option<String>) -> Option<Token> {
    flag.or_else(|| {
        std::env::var("COINFER_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
    })
    .map(Token::from)
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
    let rate = value * scale;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("--rate `{text}` must be positive and finite").into());
    }
    Ok(rate)
}

/// Rewrites a TLS option's name in `error` into the flag that set it.
fn name_flags(error: TlsConfigError, flags: &[(&str, &str)]) -> String {
    flags.iter().fold(error.to_string(), |text, (field, flag)| {
        text.replace(&format!("`{field}`"), &format!("`{flag}`"))
    })
}

/// Server TLS from `--tls-cert`, `--tls-key` and `--tls-client-ca`.
fn server_tls(args: &ServeArgs) -> CliResult<Option<ServerTls>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let config = ServerTlsConfig {
        cert_chain: cert.clone(),
        private_key: key.clone(),
        client_ca: args.tls_client_ca.clone(),
    };
    let flags = [
        ("cert_chain", "--tls-cert"),
        ("private_key", "--tls-key"),
        ("client_ca", "--tls-client-ca"),
    ];
    Ok(Some(config.check().map_err(|e| name_flags(e, &flags))?))
}

/// Client TLS from `--tls-ca`, `--tls-server-name` (default: the host of `--server`) and
/// `--tls-client-cert` / `--tls-client-key`.
fn client_tls(args: &InferArgs) -> CliResult<Option<ClientTls>> {
    let Some(ca) = &args.tls_ca else {
        return Ok(None);
    };
    let config = ClientTlsConfig {
        ca: ca.clone(),
        server_name: Some(
            args.tls_server_name
                .clone()
                .unwrap_or_else(|| server_host(&args.server)),
        ),
        client_cert: args.tls_client_cert.clone(),
        client_key: args.tls_client_key.clone(),
    };
    let flags = [
        ("ca", "--tls-ca"),
        ("server_name", "--tls-server-name"),
        ("client_cert", "--tls-client-cert"),
        ("client_key", "--tls-client-key"),
    ];
    Ok(Some(config.check().map_err(|e| name_flags(e, &flags))?))
}

/// The host part of `host:port` (`[v6]:port` → `v6`).
fn server_host(server: &str) -> String {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// Runs the edge server until killed.
pub fn serve(args: ServeArgs) -> CliResult<()> {
    let tls = server_tls(&args)?;
    let device = args.backend.device()?;
    let config = ServerConfig {
        batch_window: args.batch_window_ms,
        max_batch: args.max_batch,
        max_request_batch: args.max_request_batch,
        read_timeout: args.read_timeout_s,
        frame_timeout: args.frame_timeout_s,
        hello_timeout: args.hello_timeout_s,
        max_connections: args.max_connections,
        max_unauthenticated: args.max_unauthenticated,
        max_in_flight_bytes: args
            .max_in_flight_mib
            .checked_mul(1 << 20)
            .ok_or("--max-in-flight-mib is too large")?,
        token: token(args.token),
        tls,
        ..ServerConfig::default()
    };
    config.check()?;
    let secured = match &args.tls_cert {
        None => "",
        Some(_) if args.tls_client_ca.is_some() => " with mutual TLS",
        Some(_) => " with TLS",
    };
    let server = match (&args.plan, &args.plans) {
        (Some(plan), _) => {
            let deployed = SplitPlan::deploy(plan, &device)?;
            let digest = deployed.plan.digest();
            let server = EdgeServer::bind(
                &args.addr,
                deployed.edge,
                deployed.codec,
                digest.clone(),
                config,
            )?;
            println!(
                "serving plan {} (split {}, codec {}){secured} on {}",
                digest,
                deployed.plan.split,
                deployed.plan.codec,
                server.local_addr()
            );
            server
        }
        (None, Some(plans)) => {
            let set = PlanSet::deploy(plans, &device)?;
            let server =
                EdgeServer::bind_set(&args.addr, set.edge_plans()?, set.digest.clone(), config)?;
            println!(
                "serving plan set {} ({} plans, {} with an edge half){secured} on {}",
                set.digest,
                set.members.len(),
                set.members.iter().filter(|m| m.edge.is_some()).count(),
                server.local_addr()
            );
            server
        }
        (None, None) => return Err("--plan or --plans is required".into()),
    };
    server.serve()?;
    Ok(())
}

/// `coinfer infer --plans --adaptive`: the adaptive client on test images; one JSON line per
/// request and per switch, and a summary.
fn infer_set(args: InferArgs, plans: &std::path::Path) -> CliResult<()> {
    let tls = client_tls(&args)?;
    let device = args.backend.device()?;
    let set = PlanSet::deploy(plans, &device)?;
    let rate = args.rate.as_deref().map(parse_rate).transpose()?;
    let trace = match &args.trace {
        Some(path) => Some(TracePlayer::new(LinkTrace::load(path)?)),
        None => None,
    };
    let client = DeviceClient::connect_set(
        &args.server,
        set.client_plans(args.emulate_device)?,
        set.digest.clone(),
        ClientConfig {
            shaping: rate.map(|rate_bps| LinkShaping::new(rate_bps, args.delay_ms)),
            trace: trace.clone(),
            token: token(args.token),
            tls,
            // The adaptive client falls back to the device instead of retrying.
            retries: 0,
            read_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )?;
    let mut adaptive = AdaptiveClient::new(
        client,
        set.set.chooser(0.05)?,
        set.set
            .estimator(set.set.nominal_rate_bps, EstimatorConfig::default())?,
        Policy::Adaptive,
        trace.clone(),
    )?;
    if let Some(trace) = &trace {
        trace.start();
    }
    let norm = set.members[0].plan.normalization.clone();
    let input = set.members[0].device.spec().input.dims();
    let data = data::load(args.dataset, args.data_dir.as_deref(), 1, input)?
        .0
        .test;
    let n = (args.n as usize).min(data.len());
    let (mut correct, mut answered, mut total_ms) = (0usize, 0usize, 0.0);
    let mut switches_seen = 0;
    for k in 0..n {
        let i = k * data.len() / n.max(1);
        let (x, label) = data.batch(&[i], &norm, &device)?;
        let label = label.into_scalar::<i64>() as usize;
        let answer = adaptive.infer(x)?;
        for switch in &adaptive.switches()[switches_seen..] {
            println!(
                "{}",
                serde_json::json!({
                    "kind": "switch", "request": switch.request, "at_s": switch.at_s,
                    "estimate_rate_bps": switch.estimate.rate_bps,
                    "estimate_rtt_ms": switch.estimate.rtt_s * 1e3,
                    "link_up": switch.estimate.up,
                    "from": set.set.members[switch.from].kind,
                    "to": set.set.members[switch.to].kind,
                })
            );
        }
        switches_seen = adaptive.switches().len();
        let ok = answer
            .result
            .as_ref()
            .map(|r| r.predictions().first() == Some(&label));
        if answer.plan.is_some() {
            answered += 1;
            total_ms += answer.latency_s * 1e3;
        }
        correct += usize::from(ok == Some(true));
        println!(
            "{}",
            serde_json::json!({
                "kind": "request", "request": answer.request, "at_s": answer.at_s,
                "plan": answer.plan.map(|p| set.set.members[p].kind.clone()),
                "latency_ms": answer.latency_s * 1e3,
                "estimate_rate_bps": answer.estimate.rate_bps,
                "estimate_rtt_ms": answer.estimate.rtt_s * 1e3,
                "correct": ok, "failure": answer.failure,
            })
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "kind": "summary", "requests": n, "answered": answered, "lost": n - answered,
            "mean_latency_ms": total_ms / answered.max(1) as f64,
            "accuracy": correct as f64 / answered.max(1) as f64,
            "switches": adaptive.switches().len(),
        })
    );
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
    let plan_path = match (&args.plan, &args.plans) {
        (Some(plan), _) => plan.clone(),
        (None, Some(plans)) => {
            let plans = plans.clone();
            return infer_set(args, &plans);
        }
        (None, None) => return Err("--plan or --plans is required".into()),
    };
    let tls = client_tls(&args)?;
    let device = args.backend.device()?;
    let deployed = SplitPlan::deploy(&plan_path, &device)?;
    let plan = deployed.plan.clone();
    let digest = plan.digest();
    let rate = args.rate.as_deref().map(parse_rate).transpose()?;
    let delay = args.delay_ms;
    let shaping = rate.map(|rate_bps| LinkShaping::new(rate_bps, delay));
    // Seed 1 only matters for loose CIFAR-10 batches (which images form the test part); the
    // requests measure latency, not accuracy.
    let input = deployed.device.spec().input.dims();
    let data = data::load(args.dataset, args.data_dir.as_deref(), 1, input)?
        .0
        .test;
    let n = (args.n as usize).min(data.len());
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
            token: token(args.token),
            tls,
            retries: args.retries,
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
    let feature = spec
        .shapes()?
        .get(plan.split)
        .ok_or_else(|| format!("split {} is past the network's blocks", plan.split))?
        .dims();
    let (encode, decode) = codec_compute(plan.codec, feature);
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
        delay_ms: args.delay_ms.as_secs_f64() * 1e3,
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
            args.delay_ms.as_secs_f64() * 1e3
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host_of_the_address() {
        assert_eq!(server_host("edge.local:7878"), "edge.local");
        assert_eq!(server_host("127.0.0.1:7878"), "127.0.0.1");
        assert_eq!(server_host("[::1]:7878"), "::1");
        assert_eq!(server_host("edge"), "edge");
    }
}
