//! Accuracy of a trained backbone under uniform L1 filter pruning (no fine-tuning): the
//! ratio is applied to every prunable layer, from 0 to 0.9, and the pruned network is
//! evaluated on the embedded Fashion-MNIST test subset (1,000 images). A second table prunes
//! one layer at a time (the others dense) to show which layers are sensitive.
//!
//! ```text
//! cargo run --release -p coinfer-sparsity --example prune_curve [-- path/to/backbone.cfnet]
//! ```
//!
//! The default backbone is `results/backbone/resnet-mini-subset.cfnet`, made by
//! `cargo run --release --example train_backbone -- --out results/backbone/resnet-mini-subset.cfnet`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::prelude::*;
use coinfer_data::{Normalization, embedded};
use std::collections::BTreeMap;

use coinfer_profile::NetCost;
use coinfer_sparsity::{PruneRatios, prunable_layers, prune};
use coinfer_split::Network;
use coinfer_split::train::{EVAL_BATCH_SIZE, evaluate};

const DEFAULT_BACKBONE: &str = "results/backbone/resnet-mini-subset.cfnet";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(DEFAULT_BACKBONE), PathBuf::from);
    if !path.exists() {
        eprintln!(
            "no trained backbone at {}. Make one (from the workspace root) with\n  \
             cargo run --release --example train_backbone -- --out {DEFAULT_BACKBONE}\n\
             or pass the path of a network saved by Network::save.",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let device = Device::flex();
    let net = Network::load(&path, &device)?.valid();
    let data = embedded::fashion_mnist_subset()?;
    let norm = Normalization::fit(&data.train);
    let layers = prunable_layers(net.spec())?;
    println!(
        "backbone: {} ({}), {} prunable layers at blocks {:?}; test set: {} images\n",
        net.spec().name,
        path.display(),
        layers.len(),
        layers.iter().map(|l| l.block).collect::<Vec<_>>(),
        data.test.len()
    );
    println!("| ratio | kept filters per layer | MACs | params | test accuracy |");
    println!("|---:|---|---:|---:|---:|");
    let dense = NetCost::of(net.spec())?.totals();
    for tenth in 0..10u8 {
        let ratio = f32::from(tenth) / 10.0;
        let pruned = prune(&net, &PruneRatios::Uniform(ratio))?;
        let cost = NetCost::of(pruned.spec())?.totals();
        let kept: Vec<String> = prunable_layers(pruned.spec())?
            .iter()
            .map(|l| l.channels.to_string())
            .collect();
        let accuracy = evaluate(&pruned, &data.test, &norm, EVAL_BATCH_SIZE, &device)?;
        println!(
            "| {ratio:.1} | {} | {} ({:.1}%) | {} ({:.1}%) | {:.1}% |",
            kept.join(" / "),
            cost.macs,
            100.0 * cost.macs as f64 / dense.macs as f64,
            cost.params,
            100.0 * cost.params as f64 / dense.params as f64,
            100.0 * accuracy
        );
    }

    let alone = [0.25f32, 0.5, 0.75];
    println!("\nOne layer pruned at a time (test accuracy):\n");
    println!(
        "| layer (block, kind, filters) | {} |",
        alone.map(|r| format!("ratio {r}")).join(" | ")
    );
    println!("|---|{}", "---:|".repeat(alone.len()));
    for layer in &layers {
        let mut row = format!(
            "| block {} {:?} ({}) |",
            layer.block, layer.kind, layer.channels
        );
        for ratio in alone {
            let ratios = PruneRatios::ByBlock(BTreeMap::from([(layer.block, ratio)]));
            let accuracy = evaluate(
                &prune(&net, &ratios)?,
                &data.test,
                &norm,
                EVAL_BATCH_SIZE,
                &device,
            )?;
            row.push_str(&format!(" {:.1}% |", 100.0 * accuracy));
        }
        println!("{row}");
    }
    Ok(ExitCode::SUCCESS)
}
