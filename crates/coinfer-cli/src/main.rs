//! `coinfer`: search a device–edge co-inference plan for a DNN, then serve and run it.
//!
//! ```text
//! coinfer search                      # the main job on the embedded Fashion-MNIST subset
//! coinfer search --help               # every option
//! coinfer sweep                       # the regime map: where a split pays
//! coinfer confidence                  # what --validation-images buys
//! coinfer race --model resnet20-mini   # search methods at equal budgets, over seeds
//! coinfer profile --model resnet-mini --out my-device.json   # measure this machine
//! coinfer search --device my-device.json
//! coinfer serve --plan results/default/plan.json
//! coinfer export --plan results/default/plan.json --onnx out/   # device.onnx + edge.onnx
//! coinfer infer --plan results/default/plan.json --server 127.0.0.1:7878 --rate 10Mbit
//! coinfer plans --run default                 # → results/default-plans/set.json
//! coinfer serve --plans results/default-plans/set.json
//! coinfer infer --plans results/default-plans/set.json --adaptive --trace crates/coinfer-runtime/traces/steps.json
//! coinfer adaptive-bench --plans results/default-plans/set.json --trace crates/coinfer-runtime/traces/steps.json
//! ```

#![forbid(unsafe_code)]

mod backend;
mod confidence;
mod data;
mod export;
mod plans;
mod plot;
mod profile;
mod progress;
mod race;
mod runtime;
mod search;
mod sweep;

use clap::{Parser, Subcommand};

/// Device–edge co-inference: split a DNN between a mobile device and an edge server.
#[derive(Parser)]
#[command(name = "coinfer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads inference and training may use (search, serve, infer, profile); all cores
    /// when absent. A phone-like device wants 1, an edge server its core count. The inference
    /// form's CPU kernels split large matrix products over them, the training kernels chunks of
    /// images; burn's own ops use them only when built with `--features parallel`
    /// (burn-flex's rayon).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// What training runs on: `kernels` (coinfer's training kernels on flex: convolutions and
    /// batch norms, forward and backward, over all threads) or `burn` (burn's own ops, as
    /// before 2026-12-05: reproduces the figures measured then).
    #[arg(long, global = true, default_value = "kernels")]
    training_ops: coinfer_automl::kernels::TrainingOps,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or load) the backbone and its codecs, profile, search with DDPG, run the
    /// baselines, fine-tune the best plan and write results/<run>/.
    Search(Box<search::SearchArgs>),
    /// Where co-inference pays: run the search and every baseline over a grid of link rates,
    /// device speeds and RTTs on one trained backbone and codec bank; write sweep.json,
    /// sweep.md and the regime plots.
    Sweep(Box<sweep::SweepArgs>),
    /// Race search methods (DDPG, DDPG + refinement, random, uniform grid, CMA-ES) at equal
    /// budgets of distinct evaluated plans over several seeds, against the best plan a much
    /// larger search finds; write race.json, race.md and race.svg.
    Race(Box<race::RaceArgs>),
    /// Measure the per-block latency of a backbone on this machine and write a compute
    /// profile for `search --device FILE` / `--edge FILE`.
    Profile(profile::ProfileArgs),
    /// A plan set: the best plan for each of a range of link rates (the search's plans
    /// re-scored at every rate), each exported like a single plan, with set.json.
    Plans(Box<plans::PlansArgs>),
    /// Serve a plan set in this process and run, over link traces, the adaptive client, every
    /// plan of the set alone and an oracle told the true link; JSON lines and latency plots.
    AdaptiveBench(plans::BenchArgs),
    /// Serve the edge half of a plan (or every edge half of a plan set) over TCP.
    Serve(runtime::ServeArgs),
    /// Run the device half of a plan against a server on test images, over an optionally
    /// shaped link, and compare the measured latency with the latency model.
    Infer(runtime::InferArgs),
    /// Write a plan's halves as ONNX models (device.onnx, edge.onnx, codec.json).
    Export(export::ExportArgs),
    /// What a validation set of a given size buys: the most net lost images a plan may show
    /// and still pass the accuracy tolerance (JSON lines, then a table).
    Confidence(confidence::ConfidenceArgs),
    /// Redraw the SVG plots (and report.md) of a finished search from its report.json.
    Plot {
        /// The search's `report.json`; plots are written next to it.
        #[arg(long, default_value = "results/default/report.json")]
        report: std::path::PathBuf,
        /// Redraw a sweep's plots from this `sweep.json` instead.
        #[arg(long)]
        sweep: Option<std::path::PathBuf>,
        /// Print the report's rate–accuracy points (bits per sample and validation accuracy
        /// of every codec at every split point) as JSON lines instead of drawing.
        #[arg(long, conflicts_with = "sweep")]
        rate_json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    cli.training_ops.set_global();
    let threads = match cli.threads {
        Some(threads) => coinfer_automl::split::Threads::init_global(threads),
        None => Ok(()),
    };
    let result = threads
        .map_err(Into::into)
        .and_then(|()| match cli.command {
            Command::Search(args) => search::run(*args),
            Command::Profile(args) => profile::run(args),
            Command::Serve(args) => runtime::serve(args),
            Command::Infer(args) => runtime::infer(args),
            Command::Export(args) => export::run(args),
            Command::Confidence(args) => confidence::run(args),
            Command::Sweep(args) => sweep::run(*args),
            Command::Plans(args) => plans::run(*args),
            Command::AdaptiveBench(args) => plans::bench(args),
            Command::Race(args) => race::run(*args),
            Command::Plot {
                sweep: Some(sweep), ..
            } => sweep::replot(&sweep),
            Command::Plot {
                report,
                rate_json: true,
                ..
            } => plot::print_rate_json(&report),
            Command::Plot { report, .. } => plot::replot(&report),
        });
    if let Err(error) = result {
        match error
            .downcast_ref::<coinfer_automl::AutomlError>()
            .and_then(flag_of)
        {
            Some(flag) => eprintln!("error: {error} (option {flag})"),
            None => eprintln!("error: {error}"),
        }
        let mut source = error.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}

/// The command-line option behind a setting the library refused, so the message names what
/// the user typed.
fn flag_of(error: &coinfer_automl::AutomlError) -> Option<&'static str> {
    let coinfer_automl::AutomlError::InvalidConfig { field, .. } = error else {
        return None;
    };
    Some(match *field {
        "episodes" => "--episodes",
        "validation_images" => "--validation-images",
        "codecs.ae_ratios" => "--ae-ratios",
        "codecs.ae_budget" => "--ae-epochs / --ae-budget",
        "codecs.ae_train_images" => "--ae-train-images",
        "codecs.spatial_ratios" => "--spatial-ratios",
        "backbone.budget" => "--backbone-epochs / --backbone-budget",
        "backbone.model" => "--model",
        "finetune.epochs" => "--finetune-epochs",
        "reward" => "--reward",
        "reward.budget_s" => "--budget-ms",
        "reward.tolerance" => "--tolerance-points",
        "resume" => "--resume",
        "plan_set.rates_bps" => "--rates-kbps",
        "plan_set.rtts_s" => "--rtts-ms",
        "bench.requests" => "--requests",
        "bench.period_s" => "--period-ms",
        "race.budgets" => "--budgets",
        "race.methods" => "--methods",
        "race.seeds" => "--seeds",
        "race.reference_factor" => "--reference-factor",
        "race.refine_share" => "--refine-share",
        _ => return None,
    })
}
