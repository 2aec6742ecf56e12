//! `coinfer plans` (a plan set for a range of link rates) and `coinfer adaptive-bench` (the
//! adaptive client, every plan of a set alone and an oracle over link traces).

use std::net::SocketAddr;
use std::path::PathBuf;

use burn::prelude::*;
use clap::Args;
use coinfer_automl::adaptive::{BenchConfig, draw_latency, run_trace};
use coinfer_automl::planset::PlanSet;
use coinfer_automl::runtime::{EdgeServer, LinkTrace, ServerConfig};

use crate::data::{self, DatasetChoice};
use crate::search::{SearchArgs, builder};

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options of `coinfer plans` (plus every option of `coinfer search`: backbone, codecs,
/// reward, device, link and edge; the link's rate is replaced by the grid, and its RTT too
/// when `--rtts-ms` is given).
#[derive(Args, Debug)]
pub struct PlansArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Link rates to score the plans at, kbit/s (default: 16 log-spaced values, 5 kbit/s to
    /// 10 Mbit/s).
    #[arg(long, value_delimiter = ',')]
    rates_kbps: Vec<f64>,
    /// Round-trip times to score the plans at, milliseconds (default: the link's).
    #[arg(long, value_delimiter = ',')]
    rtts_ms: Vec<f64>,
    /// Where to write set.json and the plans (default: results/<run>-plans/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Builds the plan set (the library's
/// [`CoInference::plan_set`](coinfer_automl::CoInference::plan_set)) and prints its members as
/// JSON lines.
pub fn run(args: PlansArgs) -> CliResult<()> {
    let device = Device::flex();
    let out = args.out.clone().unwrap_or_else(|| {
        args.search
            .results
            .join(format!("{}-plans", args.search.run))
    });
    let rates: Vec<f64> = if args.rates_kbps.is_empty() {
        (0..16)
            .map(|i| 5e3 * 10f64.powf(i as f64 * (2000f64).log10() / 15.0))
            .collect()
    } else {
        args.rates_kbps.iter().map(|k| k * 1e3).collect()
    };
    let rtts: Vec<f64> = args.rtts_ms.iter().map(|ms| ms / 1e3).collect();
    let set = builder(&args.search, &device, &out)?
        .build()?
        .plan_set(&rates, &rtts)?;
    for member in &set.members {
        println!("{}", serde_json::to_string(member)?);
    }
    println!(
        "plan set {} ({} plans) in {}",
        set.digest(),
        set.members.len(),
        out.join("set.json").display()
    );
    Ok(())
}

/// Options of `coinfer adaptive-bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The plan set (`set.json` written by `coinfer plans`).
    #[arg(long)]
    plans: PathBuf,
    /// Link traces to run (JSON files; see `docs/runtime.md`).
    #[arg(long, required = true)]
    trace: Vec<PathBuf>,
    /// Requests per trace and policy.
    #[arg(long, default_value_t = 90)]
    requests: usize,
    /// On a trace timed in seconds: one request every this many milliseconds.
    #[arg(long, default_value_t = 200.0)]
    period_ms: f64,
    /// The chooser's hysteresis, percent.
    #[arg(long, default_value_t = 5.0)]
    hysteresis_pct: f64,
    /// Run the device halves at this machine's speed instead of the set's predicted device
    /// time.
    #[arg(long)]
    no_device_emulation: bool,
    /// Write the per-request JSON lines and one latency plot per trace here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the test images of `--dataset` from this directory (default: the embedded
    /// Fashion-MNIST test subset).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Format of `--data-dir`.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetChoice,
}

/// Serves the set on a loopback port in this process and runs every trace: prints one JSON
/// line per request (`"kind":"request"`) and per trace and policy (`"kind":"summary"`).
pub fn bench(args: BenchArgs) -> CliResult<()> {
    let device = Device::flex();
    let set = PlanSet::deploy(&args.plans, &device)?;
    let traces = args
        .trace
        .iter()
        .map(|p| LinkTrace::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let server = EdgeServer::bind_set(
        "127.0.0.1:0",
        set.edge_plans()?,
        set.digest.clone(),
        ServerConfig::default(),
    )?
    .spawn()?;
    let addr: SocketAddr = server.local_addr();
    let norm = set.members[0].plan.normalization.clone();
    let input = set.members[0].device.spec().input.dims();
    let test = data::load(args.dataset, args.data_dir.as_deref(), 1, input)?
        .0
        .test;
    let count = args.requests.min(test.len()).max(1);
    let images = (0..count)
        .map(|k| {
            let i = k * test.len() / count;
            let (x, y) = test.batch(&[i], &norm, &device)?;
            Ok((x, y.into_scalar::<i64>() as usize))
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    let config = BenchConfig {
        requests: args.requests,
        period_s: args.period_ms / 1e3,
        hysteresis: args.hysteresis_pct / 100.0,
        emulate_device: !args.no_device_emulation,
        ..BenchConfig::default()
    };
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    for trace in &traces {
        let mut rows = Vec::new();
        let summaries = run_trace(&set, addr, trace, &images, &config, |row| {
            rows.push(row.clone());
        })?;
        for row in &rows {
            let mut value = serde_json::to_value(row)?;
            value["kind"] = "request".into();
            if args.out.is_none() {
                println!("{value}");
            }
        }
        for summary in &summaries {
            let mut value = serde_json::to_value(summary)?;
            value["kind"] = "summary".into();
            println!("{value}");
        }
        if let Some(out) = &args.out {
            let lines: Vec<String> = rows
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?;
            let path = out.join(format!("{}.jsonl", trace.name));
            std::fs::write(&path, lines.join("\n") + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            draw_latency(
                &rows,
                &format!("Latency over the {} trace", trace.name),
                &out.join(format!("{}.svg", trace.name)),
            )?;
        }
    }
    server.shutdown()?;
    Ok(())
}
