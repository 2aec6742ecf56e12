//! Trains a zoo backbone (default: the compact ResNet, 28×28 grey) on Fashion-MNIST and reports
//! test accuracy and wall time; the last stdout line is one JSON object with the figures
//! (model, parameters, multiply-accumulates, FLOPs, epochs, test accuracy, training seconds).
//!
//! ```text
//! cargo run --release --example train_backbone                 # embedded 6k/1k subset
//! cargo run --release --example train_backbone -- --full       # full 60k/10k from disk
//! cargo run --release --example train_backbone -- --model mobilenetv2-mini
//! cargo run --release --example train_backbone -- --training-ops burn   # on burn-flex's ops
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use coinfer_automl::profile::NetCost;
use coinfer_data::{Budget, Normalization, embedded, fashion_mnist};
use coinfer_kernels::TrainingOps;
use coinfer_split::train::{TrainConfig, evaluate, train_classifier};
use coinfer_split::{Network, zoo};

/// Train the default backbone and report its test accuracy.
#[derive(Parser)]
struct Args {
    /// Use the full Fashion-MNIST (60k/10k) from `--data-dir` instead of the embedded subset.
    #[arg(long)]
    full: bool,
    /// Directory of the full Fashion-MNIST (default: $COINFER_FASHION_MNIST,
    /// ../shared/data/fashion-mnist, /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Model from the zoo.
    #[arg(long, default_value = "resnet-mini")]
    model: String,
    /// Training budget: `epochs:N` or `images:N`.
    #[arg(long, default_value_t = TrainConfig::default().budget)]
    budget: Budget,
    /// Batch size.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    lr: f64,
    /// Seed of weights and batch order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to save the trained network.
    #[arg(long)]
    out: Option<PathBuf>,
    /// What training runs on: `kernels` (coinfer-kernels) or `burn` (burn-flex's own ops).
    #[arg(long, default_value = "kernels")]
    training_ops: TrainingOps,
    /// Threads of the training kernels (all cores when absent).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    args.training_ops.set_global();
    if let Some(threads) = args.threads {
        coinfer_split::Threads::init_global(threads)?;
    }
    let data = if args.full {
        let dir = match args.data_dir {
            Some(dir) => dir,
            None => fashion_mnist::default_dir()?,
        };
        fashion_mnist::load_dir(dir)?
    } else {
        embedded::fashion_mnist_subset()?
    };
    println!(
        "data: {} train / {} test images ({})",
        data.train.len(),
        data.test.len(),
        if args.full {
            "full Fashion-MNIST"
        } else {
            "embedded subset"
        }
    );
    let norm = Normalization::fit(&data.train);
    let device = Device::flex();
    device.seed(args.seed);
    let spec = zoo::by_name(&args.model, 10).ok_or("unknown model")?;
    let net = Network::new(spec, &device)?;
    println!(
        "model: {} ({} parameters)",
        net.spec().name,
        net.num_params()
    );
    let config = TrainConfig {
        budget: args.budget,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let start = Instant::now();
    let mut last_epoch = usize::MAX;
    let trained = train_classifier(net, &data.train, &norm, &config, &device, |p| {
        if p.step == p.steps_per_epoch || (p.step % 100 == 0 && p.epoch != last_epoch) {
            println!(
                "epoch {} step {}/{} ({}/{} of {}): loss {:.4} train acc {:.2}% ({:.0} s)",
                p.epoch + 1,
                p.step,
                p.steps_per_epoch,
                p.total_step,
                p.total_steps,
                config.budget,
                p.loss,
                100.0 * p.accuracy,
                p.elapsed_s
            );
        }
        if p.step == p.steps_per_epoch {
            last_epoch = p.epoch;
        }
    })?;
    let train_s = start.elapsed().as_secs_f64();
    let accuracy = evaluate(&trained, &data.test, &norm, 256, &device)?;
    println!(
        "test accuracy {:.2}% after {}, training took {:.1} s",
        100.0 * accuracy,
        config.budget,
        train_s
    );
    if let Some(out) = &args.out {
        trained.save(out)?;
        println!("saved to {}", out.display());
    }
    let cost = NetCost::of(trained.spec())?.totals();
    println!(
        "{}",
        serde_json::json!({
            "model": trained.spec().name,
            "data": if args.full { "fashion-mnist-full" } else { "fashion-mnist-subset" },
            "params": trained.num_params(),
            "macs": cost.macs,
            "flops": cost.flops,
            "budget": config.budget,
            "seed": args.seed,
            "training_ops": args.training_ops.name(),
            "threads": coinfer_split::Threads::global_count(),
            "test_accuracy": accuracy,
            "train_s": train_s,
        })
    );
    Ok(())
}
