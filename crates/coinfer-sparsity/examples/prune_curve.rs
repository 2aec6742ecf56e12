//! Test accuracy of a trained backbone under L1 filter pruning (no fine-tuning), with each
//! pruning recovery (`none`, `bn`: batch-norm re-estimation, `reconstruct`: least-squares
//! reconstruction + batch-norm re-estimation), at ratios 0.1 … 0.8, applied to every prunable
//! layer (`uniform`) and to each prunable layer alone. Accuracy is on the embedded
//! Fashion-MNIST test subset (1,000 images); recovery calibrates on images of the training part
//! (never the validation or test images).
//!
//! ```text
//! cargo run --release -p coinfer-sparsity --example prune_curve -- [--json] [--calibration N] [path/to/backbone.cfnet]
//! ```
//!
//! Without a path it loads the backbone `coinfer search` caches by default
//! (`results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet`, relative to the current
//! directory), training and caching it the same way when it is missing: `resnet-mini`, 8 epochs,
//! seed 1, on the embedded training images minus the 500 validation images of seed 1.
//! `--calibration N` (default 256) sets the number of calibration images (class-balanced, from
//! the training part). `--json` prints one JSON object per line on stdout instead of Markdown
//! tables; progress always goes to stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::prelude::*;
use coinfer_data::{ImageDataset, Normalization, embedded};
use coinfer_profile::NetCost;
use coinfer_sparsity::{
    Calibration, PrunableKind, PruneRatios, PruneRecovery, prunable_layers, prune_spec,
    prune_with_recovery,
};
use coinfer_split::train::{EVAL_BATCH_SIZE, TrainConfig, evaluate, train_classifier};
use coinfer_split::{Network, zoo};

/// Where `coinfer search` caches its default backbone.
const CACHE: &str = "results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet";
const VALIDATION_IMAGES: usize = 500;
const SEED: u64 = 1;
const EPOCHS: usize = 8;
const RATIOS: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

struct Args {
    path: Option<PathBuf>,
    json: bool,
    calibration: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: None,
        json: false,
        calibration: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => args.json = true,
            "--calibration" => {
                let value = it.next().ok_or("--calibration needs a number")?;
                args.calibration = value
                    .parse()
                    .map_err(|e| format!("--calibration {value}: {e}"))?;
                if args.calibration < 10 {
                    return Err("--calibration: at least 10 images (one per class)".into());
                }
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            path => args.path = Some(PathBuf::from(path)),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cached default backbone, trained and cached like `coinfer search` does when missing.
fn default_backbone(
    train_part: &ImageDataset,
    norm: &Normalization,
    device: &Device,
) -> Result<Network, Box<dyn std::error::Error>> {
    let cache = PathBuf::from(CACHE);
    if cache.exists() {
        eprintln!("backbone: reusing {CACHE}");
        return Ok(Network::load(&cache, device)?);
    }
    eprintln!("backbone: {CACHE} is missing; training resnet-mini ({EPOCHS} epochs, seed {SEED})");
    device.seed(SEED);
    let net = Network::new(zoo::resnet_mini(10), device)?;
    let config = TrainConfig {
        budget: coinfer_data::Budget::Epochs(EPOCHS),
        seed: SEED,
        ..TrainConfig::default()
    };
    let trained = train_classifier(net, train_part, norm, &config, device, |p| {
        if p.step + 1 == p.steps_per_epoch {
            eprintln!(
                "  epoch {}/{EPOCHS}: loss {:.3}, accuracy {:.1}% ({:.0} s)",
                p.epoch + 1,
                p.loss,
                100.0 * p.accuracy,
                p.elapsed_s
            );
        }
    })?;
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    trained.save(&cache)?;
    eprintln!("backbone: saved to {CACHE}");
    Ok(trained)
}

/// CPU time of this process so far (user + system, all threads), in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Unlike wall time it does not grow when other
/// processes share the cores.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // Fields 14 and 15 of the file (utime, stime), in clock ticks of 1/100 s.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A row label (`uniform` or a layer name) and the ratios it applies for a given ratio.
type Target = (String, Box<dyn Fn(f32) -> PruneRatios>);

/// `value` rounded to `digits` decimals (for readable JSON).
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// One measured point.
struct Point {
    layer: String,
    ratio: f32,
    recovery: PruneRecovery,
    accuracy: f32,
    recovery_ms: f64,
    recovery_cpu_ms: Option<f64>,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let device = Device::flex();
    let data = embedded::fashion_mnist_subset()?;
    let norm = Normalization::fit(&data.train);
    // The same split as `coinfer search`: validation images are never used here.
    let (_validation, train_part) = data
        .train
        .split(VALIDATION_IMAGES as f64 / data.train.len() as f64, SEED)?;
    let net = match &args.path {
        Some(path) => {
            eprintln!("backbone: loading {}", path.display());
            Network::load(path, &device)?
        }
        None => default_backbone(&train_part, &norm, &device)?,
    }
    .valid();

    let calibration_set = train_part.class_balanced_subset(args.calibration / 10, SEED)?;
    let indices: Vec<usize> = (0..calibration_set.len()).collect();
    let calibration = Calibration::new(&net, calibration_set.batch(&indices, &norm, &device)?.0)?;
    let dense_accuracy = evaluate(&net, &data.test, &norm, EVAL_BATCH_SIZE, &device)?;
    let layers = prunable_layers(net.spec())?;
    eprintln!(
        "{}: dense test accuracy {:.2}% on {} images; {} calibration images; prunable layers {:?}",
        net.spec().name,
        100.0 * dense_accuracy,
        data.test.len(),
        calibration.len(),
        layers.iter().map(|l| l.block).collect::<Vec<_>>()
    );

    let layer_name = |block: usize, kind: PrunableKind| match kind {
        PrunableKind::ConvBnRelu => format!("block{block}.conv"),
        PrunableKind::BasicBlockInner => format!("block{block}.conv1"),
        PrunableKind::DepthwiseSeparablePointwise => format!("block{block}.pointwise"),
        PrunableKind::InvertedResidualExpand => format!("block{block}.expand"),
    };
    let mut targets: Vec<Target> = vec![("uniform".into(), Box::new(PruneRatios::Uniform))];
    for layer in &layers {
        let block = layer.block;
        targets.push((
            layer_name(block, layer.kind),
            Box::new(move |ratio| PruneRatios::ByBlock(BTreeMap::from([(block, ratio)]))),
        ));
    }

    let total = targets.len() * RATIOS.len() * PruneRecovery::ALL.len();
    let mut points = Vec::with_capacity(total);
    for (layer, ratios_of) in &targets {
        for ratio in RATIOS {
            for recovery in PruneRecovery::ALL {
                let (start, cpu_start) = (Instant::now(), cpu_seconds());
                let pruned = prune_with_recovery(&net, &ratios_of(ratio), recovery, &calibration)?;
                let recovery_ms = start.elapsed().as_secs_f64() * 1e3;
                let recovery_cpu_ms = cpu_start.zip(cpu_seconds()).map(|(a, b)| (b - a) * 1e3);
                let accuracy = evaluate(&pruned, &data.test, &norm, EVAL_BATCH_SIZE, &device)?;
                eprintln!(
                    "[{}/{total}] {layer} {ratio:.1} {recovery}: {:.1}% ({recovery_ms:.0} ms)",
                    points.len() + 1,
                    100.0 * accuracy
                );
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "layer": layer,
                            "ratio": round(f64::from(ratio), 2),
                            "recovery": recovery,
                            "test_accuracy": round(f64::from(accuracy), 4),
                            "dense_test_accuracy": round(f64::from(dense_accuracy), 4),
                            "recovery_ms": round(recovery_ms, 1),
                            "recovery_cpu_ms": recovery_cpu_ms.map(|ms| round(ms, 1)),
                        })
                    );
                }
                points.push(Point {
                    layer: layer.clone(),
                    ratio,
                    recovery,
                    accuracy,
                    recovery_ms,
                    recovery_cpu_ms,
                });
            }
        }
    }
    for recovery in PruneRecovery::ALL {
        let uniform: Vec<&Point> = points
            .iter()
            .filter(|p| p.layer == "uniform" && p.recovery == recovery)
            .collect();
        let plans = uniform.len().max(1) as f64;
        let wall = uniform.iter().map(|p| p.recovery_ms).sum::<f64>() / plans;
        let cpu: Option<f64> = uniform.iter().map(|p| p.recovery_cpu_ms).sum();
        eprintln!(
            "uniform plans, {recovery}: prune + recovery {wall:.0} ms wall, {} CPU per plan on \
             average ({} calibration images)",
            cpu.map_or_else(|| "?".into(), |c| format!("{:.0} ms", c / plans)),
            calibration.len()
        );
    }
    if !args.json {
        print_tables(&net, &points, dense_accuracy, &targets)?;
    }
    Ok(())
}

fn print_tables(
    net: &Network,
    points: &[Point],
    dense: f32,
    targets: &[Target],
) -> Result<(), Box<dyn std::error::Error>> {
    let cell = |layer: &str, ratio: f32, recovery: PruneRecovery| {
        points
            .iter()
            .find(|p| p.layer == layer && p.ratio == ratio && p.recovery == recovery)
            .map_or_else(
                || "-".to_string(),
                |p| {
                    format!(
                        "{:.1}% ({:+.1})",
                        100.0 * p.accuracy,
                        100.0 * (p.accuracy - dense)
                    )
                },
            )
    };
    let dense_cost = NetCost::of(net.spec())?.totals();
    println!(
        "Uniform pruning; dense test accuracy {:.1}%; cells: test accuracy (points vs dense).\n",
        100.0 * dense
    );
    println!("| ratio | MACs | params | none | bn | reconstruct |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for ratio in RATIOS {
        let cost = NetCost::of(&prune_spec(net.spec(), &PruneRatios::Uniform(ratio))?)?.totals();
        println!(
            "| {ratio:.1} | {:.1}% | {:.1}% | {} | {} | {} |",
            100.0 * cost.macs as f64 / dense_cost.macs as f64,
            100.0 * cost.params as f64 / dense_cost.params as f64,
            cell("uniform", ratio, PruneRecovery::None),
            cell("uniform", ratio, PruneRecovery::BatchNorm),
            cell("uniform", ratio, PruneRecovery::Reconstruct),
        );
    }
    println!("\nOne layer pruned at a time (the others dense); same cells.\n");
    println!(
        "| layer | recovery | {} |",
        RATIOS.map(|r| format!("{r:.1}")).join(" | ")
    );
    println!("|---|---|{}", "---:|".repeat(RATIOS.len()));
    for (layer, _) in targets.iter().filter(|(name, _)| name != "uniform") {
        for recovery in PruneRecovery::ALL {
            let cells: Vec<String> = RATIOS.iter().map(|&r| cell(layer, r, recovery)).collect();
            println!("| {layer} | {recovery} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}
