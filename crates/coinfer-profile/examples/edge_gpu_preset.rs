//! Builds the measured H200 edge presets (`presets/edge-h200-eager.json`,
//! `presets/edge-h200-graph.json`) from the real GPU timings in
//! `../shared/data/edge-gpu/h200-pytorch.json`, and prints how far the analytic `edge-gpu`
//! preset is from them, one JSON object per line.
//!
//! ```text
//! cargo run --release -p coinfer-profile --example edge_gpu_preset -- --json
//! cargo run --release -p coinfer-profile --example edge_gpu_preset -- --write   # regenerate the presets
//! ```
//!
//! The data hold the time of the edge half of every split point (blocks `split..`) at batch 1.
//! A block's time is the difference of two consecutive edge halves. Timing noise can make a
//! longer suffix measure faster than a shorter one (ResNet-18 eager: split 3 took 1,928 µs,
//! split 2 1,737 µs); the suffix times are first made non-increasing in the split by
//! pool-adjacent-violators (the least-squares monotone fit), so that no block has a negative
//! time. Every pooled run is reported on stderr.

use std::path::{Path, PathBuf};

use clap::Parser;
use coinfer_profile::{
    BlockTiming, ComputeProfile, NetCost, ProfileTable, TimingStats,
    preset::{ComputePreset, PresetModel},
};
use coinfer_split::{NetSpec, zoo};
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(about = "Measured H200 edge presets from ../shared/data/edge-gpu")]
struct Args {
    /// The measurements (default: ../shared/data/edge-gpu/h200-pytorch.json beside the repo).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Rewrite presets/edge-h200-eager.json and presets/edge-h200-graph.json.
    #[arg(long)]
    write: bool,
    /// Print the comparison as JSON lines (default: a Markdown table).
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Measurements {
    gpu: String,
    torch: String,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    model: String,
    batch: usize,
    split: usize,
    eager_us: f64,
    graph_us: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = args
        .data
        .unwrap_or_else(|| root.join("../shared/data/edge-gpu/h200-pytorch.json"));
    let measurements: Measurements = serde_json::from_str(
        &std::fs::read_to_string(&data).map_err(|e| format!("{}: {e}", data.display()))?,
    )?;
    let analytic = ComputeProfile::preset("edge-gpu", None)?;
    if !args.json {
        println!(
            "| preset | model | split | measured edge half (µs) | analytic `edge-gpu` (µs) | analytic / measured |"
        );
        println!("|---|---|---:|---:|---:|---:|");
    }
    for (mode, pick) in [
        ("eager", (|r: &Row| r.eager_us) as fn(&Row) -> f64),
        ("graph", |r: &Row| r.graph_us),
    ] {
        let name = format!("edge-h200-{mode}");
        let mut tables = Vec::new();
        for spec in [zoo::resnet_mini(10), zoo::resnet18_cifar(10)] {
            let table = table_for(&spec, &measurements, pick, mode)?;
            let preset_profile = ComputeProfile::measured(table.clone())?;
            let measured = preset_profile.block_times(&spec)?;
            let predicted = analytic.block_times(&spec)?;
            for split in 0..spec.blocks.len() {
                let m: f64 = measured[split..].iter().sum();
                let a: f64 = predicted[split..].iter().sum();
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "preset": name, "model": spec.name, "split": split,
                            "measured_s": m, "analytic_edge_gpu_s": a, "analytic_over_measured": a / m,
                        })
                    );
                } else {
                    println!(
                        "| `{name}` | {} | {split} | {:.1} | {:.1} | {:.2} |",
                        spec.name,
                        m * 1e6,
                        a * 1e6,
                        a / m
                    );
                }
            }
            tables.push(table);
        }
        let preset = ComputePreset {
            name: name.clone(),
            description: format!(
                "Measured: the edge halves of the zoo's resnet-mini and resnet18-cifar on one {} \
                 ({}, {mode}{}), batch 1, median of 200 runs (../shared/data/edge-gpu); other \
                 networks are refused.",
                measurements.gpu,
                measurements.torch,
                if mode == "graph" {
                    ", replayed as CUDA graphs"
                } else {
                    ""
                }
            ),
            profile: PresetModel::Tables { tables },
        };
        if args.write {
            let path = root.join(format!("crates/coinfer-profile/presets/{name}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&preset)? + "\n")?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The per-block table of `spec` from the batch-1 edge-half times of its zoo name.
fn table_for(
    spec: &NetSpec,
    data: &Measurements,
    pick: fn(&Row) -> f64,
    mode: &str,
) -> Result<ProfileTable, Box<dyn std::error::Error>> {
    let blocks = spec.blocks.len();
    let rows: Vec<&Row> = data
        .rows
        .iter()
        .filter(|r| r.model == spec.name && r.batch == 1)
        .collect();
    let head = rows
        .iter()
        .map(|r| r.split)
        .max()
        .ok_or("no batch-1 rows")?;
    if head >= blocks {
        return Err(format!(
            "{}: split {head} measured, but the network has {blocks} blocks",
            spec.name
        )
        .into());
    }
    let mut measured = vec![f64::NAN; head + 1];
    for row in rows {
        measured[row.split] = pick(row) * 1e-6;
    }
    if let Some(split) = measured.iter().position(|t| t.is_nan()) {
        return Err(format!("{}: no batch-1 row for split {split}", spec.name).into());
    }
    let measured = non_increasing_fit(&measured);
    // The measurement's last "block" is the classifier head (global pooling, flatten, linear:
    // our last blocks from `head` on). Its time goes to the last block, so that an edge half
    // starting anywhere inside the head still pays it.
    let monotone: Vec<f64> = (0..blocks).map(|k| measured[k.min(head)]).collect();

    let cost = NetCost::of(spec)?;
    let shapes = spec.shapes()?;
    let rows = (0..blocks)
        .map(|i| BlockTiming {
            index: i,
            kind: spec.blocks[i].kind().to_string(),
            output: shapes[i + 1],
            flops: cost.blocks[i].flops,
            time: TimingStats::exact(monotone[i] - monotone.get(i + 1).copied().unwrap_or(0.0)),
        })
        .collect();
    Ok(ProfileTable {
        network: spec.name.clone(),
        spec: spec.clone(),
        backend: format!("{} {} {mode}", data.gpu, data.torch),
        batch_size: 1,
        warmup: 30,
        repeats: 200,
        blocks: rows,
    })
}

/// The least-squares non-increasing fit of `values` (pool adjacent violators); every pooled
/// value is reported on stderr.
fn non_increasing_fit(values: &[f64]) -> Vec<f64> {
    // Blocks of (mean, count); merge while a later block's mean exceeds an earlier one's.
    let mut pools: Vec<(f64, usize)> = Vec::new();
    for &v in values {
        pools.push((v, 1));
        while pools.len() >= 2 {
            let (b, nb) = pools[pools.len() - 1];
            let (a, na) = pools[pools.len() - 2];
            if b <= a {
                break;
            }
            pools.truncate(pools.len() - 2);
            pools.push(((a * na as f64 + b * nb as f64) / (na + nb) as f64, na + nb));
        }
    }
    let fit: Vec<f64> = pools
        .into_iter()
        .flat_map(|(mean, n)| std::iter::repeat_n(mean, n))
        .collect();
    for (split, (raw, fitted)) in values.iter().zip(&fit).enumerate() {
        if (raw - fitted).abs() > 1e-12 {
            eprintln!(
                "split {split}: measured {:.1} µs, monotone fit {:.1} µs",
                raw * 1e6,
                fitted * 1e6
            );
        }
    }
    fit
}
