//! `coinfer sweep`: the regime map — where co-inference pays.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::Args;
use coinfer_automl::sweep::{SweepGrid, load_sweep, save_sweep, sweep_markdown};

use crate::plots;
use crate::search::{
    SearchArgs, bar, build_search, compute_profile, prepare_session, publish, sibling,
};

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options of `coinfer sweep` (plus every option of `coinfer search` that sets up the
/// backbone, the codecs and the reward; its device and link options are replaced by the grid).
#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Link rates of the grid, kbit/s (default: 10 log-spaced values, 10 kbit/s to
    /// 100 Mbit/s).
    #[arg(long, value_delimiter = ',')]
    rates_kbps: Vec<f64>,
    /// Device throughputs of the grid, GFLOP/s.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,1,10")]
    device_gflops: Vec<f64>,
    /// Round-trip times of the grid, milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,10,30")]
    rtts_ms: Vec<f64>,
    /// Agent episodes at every grid point.
    #[arg(long, default_value_t = 40)]
    episodes_per_point: usize,
    /// Where to write sweep.json, sweep.md and the plots (default: results/<run>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the sweep. As with `coinfer search`, everything is written into a staging folder
/// beside the output (`.<run>.partial`) and renamed over it only when the sweep has finished,
/// so a sweep that fails or is interrupted leaves an earlier one of the same name as it was.
pub fn run(args: SweepArgs) -> CliResult<()> {
    let start = Instant::now();
    let device = Device::flex();
    let published = args
        .out
        .clone()
        .unwrap_or_else(|| args.search.results.join(&args.search.run));
    let out = sibling(&published, "partial");
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let built = build_search(&args.search, &device, &out)?;
    let search = built.search;
    let edge = compute_profile(&args.search.edge, &built.table)?;
    let mut grid = SweepGrid::default_grid(edge);
    if !args.rates_kbps.is_empty() {
        grid.rates_bps = args.rates_kbps.iter().map(|k| k * 1e3).collect();
    }
    grid.device_flops_per_s = args.device_gflops.iter().map(|g| g * 1e9).collect();
    grid.rtts_s = args.rtts_ms.iter().map(|ms| ms / 1e3).collect();
    grid.check()?;
    let mut session = prepare_session(&search, &out)?;

    let json_path = out.join("sweep.json");
    let previous_json = published.join("sweep.json");
    let resume = if args.search.resume && previous_json.exists() {
        let previous = load_sweep(&previous_json)?;
        println!("resuming: {} points already done", previous.points.len());
        Some(previous)
    } else {
        None
    };
    let total = grid.points().len();
    let progress = bar(total as u64, "sweep");
    let report = session.sweep(&grid, args.episodes_per_point, resume, |done, _, point| {
        progress.set_position(done as u64);
        progress.set_prefix(format!(
            "{:.0} kbit/s {:.2} GFLOP/s {:.0} ms → {} ({:.1} ms)",
            point.rate_bps / 1e3,
            point.device_flops_per_s / 1e9,
            point.rtt_s * 1e3,
            point.searched.kind,
            point.searched.latency_s * 1e3
        ));
    })?;
    progress.finish();
    save_sweep(&report, &json_path)?;
    let mut md = format!(
        "# Regime sweep\n\n{} points, {} agent episodes each, {} distinct plans run on the \
         validation set, backbone validation accuracy {:.2} %, reward {:?}.\n\n",
        report.points.len(),
        report.episodes_per_point,
        report.distinct_plans,
        100.0 * report.backbone_accuracy,
        report.reward
    );
    md.push_str(&sweep_markdown(&report));
    md.push_str(&format!(
        "\nWall time of `coinfer sweep`: {:.1} s.\n",
        start.elapsed().as_secs_f64()
    ));
    std::fs::write(out.join("sweep.md"), &md).map_err(|e| format!("{}: {e}", out.display()))?;
    draw(&report, &out)?;
    publish(&out, &published)?;
    for point in &report.points {
        println!("{}", serde_json::to_string(point)?);
    }
    eprintln!(
        "sweep written to {} (sweep.json, sweep.md, regime.svg, latency-vs-rate.svg, speedup.svg)",
        published.display()
    );
    Ok(())
}

fn draw(report: &coinfer_automl::SweepReport, out: &Path) -> CliResult<()> {
    plots::regime_map(report, &out.join("regime.svg"))?;
    plots::latency_vs_rate(report, &out.join("latency-vs-rate.svg"))?;
    plots::speedup_vs_rate(report, &out.join("speedup.svg"))
}

/// `coinfer plot --sweep`: redraws the sweep's plots from its sweep.json.
pub fn replot(path: &Path) -> CliResult<()> {
    let report = load_sweep(path)?;
    let out = path.parent().unwrap_or(Path::new("."));
    draw(&report, out)?;
    println!("plots written to {}", out.display());
    Ok(())
}
