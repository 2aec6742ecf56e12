//! A program doing the whole job through the library, as `coinfer search` does: train the
//! default backbone on the embedded Fashion-MNIST subset (held-out validation images), train
//! the codecs, run the DDPG search and the baselines, fine-tune the answer, and publish plan,
//! report, plots and deployable weights into `results/embedded/`. Progress is printed by a
//! small [`Observer`]. The last stdout line is the report's summary as one JSON object.
//!
//! ```text
//! cargo run --release --example embed_search                  # the main job's settings
//! cargo run --release --example embed_search -- --episodes 20 # a shorter search
//! ```

use burn::prelude::*;
use clap::Parser;
use coinfer_automl::prelude::*;
use coinfer_automl::{Observer, Phase};

/// The main job through the library.
#[derive(Parser)]
struct Args {
    /// DDPG episodes.
    #[arg(long, default_value_t = 300)]
    episodes: usize,
    /// Where the run is published.
    #[arg(long, default_value = "results/embedded")]
    out: std::path::PathBuf,
}

/// Prints each phase's start and end and every note; progress every tenth of a phase.
struct Log;

impl Observer for Log {
    fn started(&self, phase: Phase, total: u64) {
        eprintln!("{}: started ({total} steps)", phase.label());
    }

    fn advanced(&self, phase: Phase, done: u64, total: u64, detail: &str) {
        if total > 0 && done.is_multiple_of(total.div_ceil(10).max(1)) {
            eprintln!("{}: {done}/{total} {detail}", phase.label());
        }
    }

    fn finished(&self, phase: Phase) {
        eprintln!("{}: done", phase.label());
    }

    fn note(&self, text: &str) {
        eprintln!("{text}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let report = CoInference::builder()
        .train_backbone("resnet-mini", Budget::Epochs(8))
        .backbone_cache("results/cache/flex")
        .data(embedded::fashion_mnist_subset()?)
        .data_label("fashion-mnist-subset")
        .device("device-mcu".parse::<ComputeSource>()?)
        .link("link-802154".parse::<LinkSource>()?)
        .edge("edge-gateway".parse::<ComputeSource>()?)
        .reward("within-tolerance:1".parse::<Reward>()?)
        .episodes(args.episodes)
        .backend(Device::flex())
        .output(&args.out)
        .observer(Log)
        .build()?
        .search()?;
    println!("{}", report.to_markdown());
    println!(
        "{}",
        serde_json::json!({
            "split": report.plan.split,
            "codec": report.plan.codec.to_string(),
            "latency_ms": report.plan.predicted.total * 1e3,
            "test_accuracy": report.plan.test_accuracy,
            "profiles": report.plan.profiles,
            "notes": report.notes,
        })
    );
    Ok(())
}
