//! `coinfer sweep`: the regime map — where co-inference pays.

use std::path::{Path, PathBuf};

use clap::Args;
use coinfer_automl::sweep::load_sweep;

use crate::search::{SearchArgs, built};

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

/// Runs the sweep (the library's [`CoInference::sweep`](coinfer_automl::CoInference::sweep)):
/// staged beside the output and renamed over it only when it has finished, so a sweep that
/// fails or is interrupted leaves an earlier one of the same name as it was. Prints every
/// point as a JSON line.
pub fn run(args: SweepArgs) -> CliResult<()> {
    let search = built(&args.search, args.out.as_deref())?;
    let mut grid = search.default_sweep_grid()?;
    if !args.rates_kbps.is_empty() {
        grid.rates_bps = args.rates_kbps.iter().map(|k| k * 1e3).collect();
    }
    grid.device_flops_per_s = args.device_gflops.iter().map(|g| g * 1e9).collect();
    grid.rtts_s = args.rtts_ms.iter().map(|ms| ms / 1e3).collect();
    let report = search.sweep(&grid, args.episodes_per_point)?;
    for point in &report.points {
        println!("{}", serde_json::to_string(point)?);
    }
    Ok(())
}

/// `coinfer plot --sweep`: redraws the sweep's plots from its sweep.json.
pub fn replot(path: &Path) -> CliResult<()> {
    let report = load_sweep(path)?;
    let out = path.parent().unwrap_or(Path::new("."));
    coinfer_automl::plots::draw_sweep(&report, out)?;
    println!("plots written to {}", out.display());
    Ok(())
}
