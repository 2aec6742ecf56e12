//! `coinfer search`: the main job, end to end.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use clap::Args;
use coinfer_automl::baselines::Baseline;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{TrainTest, embedded, fashion_mnist};
use coinfer_automl::profile::{ComputeProfile, LinkProfile, preset};
use coinfer_automl::profile::{MeasureConfig, ProfileTable, measure_blocks};
use coinfer_automl::split::train::{EVAL_BATCH_SIZE, TrainConfig, evaluate, train_classifier};
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::{CoInference, Reward, SearchConfig, SearchReport, split_validation};
use indicatif::{ProgressBar, ProgressStyle};

use crate::plots;

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Options of `coinfer search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Run name: results go to `<results>/<run>/`.
    #[arg(long, default_value = "default")]
    run: String,
    /// Folder holding all runs (and the backbone cache, `<results>/cache/`).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Use the full Fashion-MNIST from this directory instead of the embedded 6k/1k subset
    /// (e.g. ../shared/data/fashion-mnist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backbone from the zoo (resnet-mini for 28×28 grey images).
    #[arg(long, default_value = "resnet-mini")]
    model: String,
    /// Load this trained backbone (`Network::save` file) instead of training one. It should
    /// not have seen the validation images (see `split_validation`), or every plan scores
    /// its training accuracy.
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// Backbone training epochs (when training).
    #[arg(long, default_value_t = 8)]
    backbone_epochs: usize,
    /// Device compute profile: a preset (device-1gflops, device-10gflops, this-machine) or a
    /// ComputeProfile JSON file.
    #[arg(long, default_value = "device-1gflops")]
    device: String,
    /// Link profile: a preset (link-1mbps, link-10mbps, link-100mbps) or a LinkProfile JSON file.
    #[arg(long, default_value = "link-10mbps")]
    link: String,
    /// Edge compute profile: a preset (edge-gpu, edge-cpu, this-machine) or a JSON file.
    #[arg(long, default_value = "edge-gpu")]
    edge: String,
    /// Reward: `error-log-latency` (AMC's -error·ln T) or `budget` (accuracy under
    /// --budget-ms, actions clipped to keep it reachable).
    #[arg(long, default_value = "error-log-latency")]
    reward: String,
    /// Latency budget for `--reward budget`, milliseconds.
    #[arg(long)]
    budget_ms: Option<f64>,
    /// DDPG episodes.
    #[arg(long, default_value_t = 300)]
    episodes: usize,
    /// Warm-up episodes with random actions.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Seed of the backbone, the validation split and the agent.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Validation images every plan is scored on.
    #[arg(long, default_value_t = 500)]
    validation_images: usize,
    /// Autoencoder ratios r (comma separated; empty for quantizers only).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    ae_ratios: Vec<u16>,
    /// Epochs per autoencoder.
    #[arg(long, default_value_t = 8)]
    ae_epochs: usize,
    /// Fine-tuning epochs of the chosen plan.
    #[arg(long, default_value_t = 1)]
    finetune_epochs: usize,
    /// Skip the baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Random-search seeds (each gets the agent's evaluation budget).
    #[arg(long, default_value_t = 3)]
    random_seeds: u64,
    /// Levels per layer of the exhaustive grid baseline (0 skips it; its size grows as
    /// levels^layers).
    #[arg(long, default_value_t = 2)]
    exhaustive_levels: usize,
    /// Resume an interrupted search of the same run from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// A SearchConfig JSON file; command-line options above still override episodes,
    /// warm-up and seed.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} ({elapsed}) {prefix}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

fn load_data(args: &SearchArgs) -> CliResult<(TrainTest, String)> {
    Ok(match &args.data_dir {
        Some(dir) => (fashion_mnist::load_dir(dir)?, "fashion-mnist-full".into()),
        None => (
            embedded::fashion_mnist_subset()?,
            "fashion-mnist-subset".into(),
        ),
    })
}

fn backbone(args: &SearchArgs, data: &TrainTest, tag: &str, device: &Device) -> CliResult<Network> {
    if let Some(path) = &args.backbone {
        println!("backbone: loading {}", path.display());
        return Ok(Network::load(path, device)?);
    }
    let cache = args.results.join("cache").join(format!(
        "{}-{tag}-e{}-s{}-v{}.cfnet",
        args.model, args.backbone_epochs, args.seed, args.validation_images
    ));
    if cache.exists() {
        println!("backbone: reusing {}", cache.display());
        return Ok(Network::load(&cache, device)?);
    }
    // Train on the training part only: the search scores plans on the held-out validation part.
    let (train_part, _) = split_validation(&data.train, args.validation_images, args.seed)?;
    let spec = zoo::by_name(&args.model, 10).ok_or_else(|| {
        format!(
            "unknown model `{}` (known: {:?})",
            args.model,
            zoo::MODEL_NAMES
        )
    })?;
    device.seed(args.seed);
    let net = Network::new(spec, device)?;
    let norm = coinfer_automl::data::Normalization::fit(&data.train);
    let config = TrainConfig {
        epochs: args.backbone_epochs,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let steps = train_part.len().div_ceil(config.batch_size) * config.epochs;
    let progress = bar(steps as u64, "training backbone");
    let trained = train_classifier(net, &train_part, &norm, &config, device, |p| {
        progress.inc(1);
        progress.set_prefix(format!("loss {:.3} acc {:.1}%", p.loss, 100.0 * p.accuracy));
    })?;
    progress.finish();
    let accuracy = evaluate(&trained, &data.test, &norm, EVAL_BATCH_SIZE, device)?;
    println!(
        "backbone: test accuracy {:.2}%, saved to {}",
        100.0 * accuracy,
        cache.display()
    );
    trained.save(&cache)?;
    Ok(trained)
}

fn compute_profile(name: &str, table: &ProfileTable) -> CliResult<ComputeProfile> {
    if name.ends_with(".json") {
        let text = std::fs::read_to_string(name).map_err(|e| format!("{name}: {e}"))?;
        let profile: ComputeProfile =
            serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        profile.check()?;
        return Ok(profile);
    }
    Ok(preset::compute_preset(name)?.resolve(Some(table))?)
}

fn link_profile(name: &str) -> CliResult<LinkProfile> {
    if name.ends_with(".json") {
        let text = std::fs::read_to_string(name).map_err(|e| format!("{name}: {e}"))?;
        let link: LinkProfile = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        link.check()?;
        return Ok(link);
    }
    Ok(LinkProfile::preset(name)?)
}

fn reward(args: &SearchArgs) -> CliResult<Reward> {
    match (args.reward.as_str(), args.budget_ms) {
        ("error-log-latency", _) => Ok(Reward::ErrorLogLatency),
        ("budget", Some(ms)) => Ok(Reward::AccuracyUnderBudget { budget_s: ms / 1e3 }),
        ("budget", None) => Err("--reward budget needs --budget-ms".into()),
        (other, _) => Err(format!("unknown reward `{other}` (error-log-latency or budget)").into()),
    }
}

fn write(path: &Path, text: &str) -> CliResult<()> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Runs the main job.
pub fn run(args: SearchArgs) -> CliResult<()> {
    let start = Instant::now();
    let device = Device::flex();
    let out = args.results.join(&args.run);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (data, tag) = load_data(&args)?;
    println!(
        "data: {} train / {} test images ({tag})",
        data.train.len(),
        data.test.len()
    );
    let training = Instant::now();
    let backbone = backbone(&args, &data, &tag, &device)?;
    let training_s = training.elapsed().as_secs_f64();

    println!("profiling the backbone's blocks on this machine (batch 1)...");
    let profiling = Instant::now();
    let table = measure_blocks(&backbone, &MeasureConfig::new(), &device)?;
    let profiling_s = profiling.elapsed().as_secs_f64();
    table.save(out.join("profile-this-machine.json"))?;
    let device_profile = compute_profile(&args.device, &table)?;
    let edge_profile = compute_profile(&args.edge, &table)?;
    let link = link_profile(&args.link)?;

    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => SearchConfig {
            validation_images: args.validation_images,
            codecs: CodecSetup {
                ae_ratios: args.ae_ratios.clone(),
                ae_epochs: args.ae_epochs,
                ..CodecSetup::default()
            },
            ..SearchConfig::default()
        },
    };
    config.episodes = args.episodes;
    config.ddpg.warmup_episodes = args.warmup;
    config.ddpg.seed = args.seed;
    config.seed = args.seed;
    config.finetune.epochs = args.finetune_epochs;
    let search = CoInference::builder()
        .model(backbone)
        .data(data)
        .device(device_profile)
        .link(link)
        .edge(edge_profile)
        .profile_names(&args.device, &args.link, &args.edge)
        .reward(reward(&args)?)
        .config(config)
        .backend(device.clone())
        .build()?;

    let codec_bar = bar(0, "training codecs");
    let mut session = search.prepare(|p| {
        codec_bar.set_length(p.total as u64);
        codec_bar.set_position(p.done as u64);
        codec_bar.set_prefix(format!(
            "split {} r={} train acc {:.1}%",
            p.split,
            p.ratio,
            100.0 * p.train_accuracy
        ));
    })?;
    codec_bar.finish();
    write_codec_table(&mut session, &out)?;

    let checkpoint = out.join("checkpoint");
    if !args.resume && checkpoint.exists() {
        std::fs::remove_dir_all(&checkpoint)
            .map_err(|e| format!("{}: {e}", checkpoint.display()))?;
    }
    let episodes_bar = bar(args.episodes as u64, "DDPG search");
    let mut best = f32::NEG_INFINITY;
    let run = session.run_ddpg(Some(&checkpoint), |record| {
        best = best.max(record.reward);
        episodes_bar.inc(1);
        episodes_bar.set_prefix(format!(
            "best reward {best:.4} (last: split {} {} acc {:.1}% {:.2} ms)",
            record.evaluation.split,
            record.evaluation.codec,
            100.0 * record.evaluation.accuracy,
            record.evaluation.latency.total * 1e3
        ));
    })?;
    episodes_bar.finish();
    println!(
        "DDPG: {} episodes, {} distinct plans evaluated",
        run.records.len(),
        run.evaluations
    );

    let baselines = if args.no_baselines {
        Vec::new()
    } else {
        let names: Vec<&str> = Baseline::ALL.iter().map(|b| b.name()).collect();
        println!("baselines: {}...", names.join(", "));
        let seeds: Vec<u64> = (0..args.random_seeds).collect();
        session.baselines(4, run.evaluations.max(1), &seeds, args.exhaustive_levels)?
    };

    // Export the edge-only baseline as a deployable plan too, for runtime comparisons.
    if let Some(edge_only) = baselines
        .iter()
        .find(|b| b.kind() == Some(Baseline::EdgeOnly))
    {
        let decision = session.evaluator().decision_of(&edge_only.best)?;
        session.finalize(
            &decision,
            edge_only.reward,
            Some(&out.join("edge-only")),
            |_, _, _| {},
        )?;
    }

    println!("fine-tuning the best plan...");
    let mut report = session.report(run, baselines, Some(&out))?;
    report.phases.training_s = training_s;
    report.phases.profiling_s = profiling_s;
    let json = serde_json::to_string_pretty(&report)?;
    write(&out.join("report.json"), &json)?;
    let mut md = report.to_markdown();
    md.push_str(&format!(
        "\nTotal wall time of `coinfer search`: {:.1} s.\n",
        start.elapsed().as_secs_f64()
    ));
    write(&out.join("report.md"), &md)?;
    draw_plots(&report, &out)?;
    println!("{md}");
    println!("results in {}", out.display());
    Ok(())
}

fn draw_plots(report: &SearchReport, out: &Path) -> CliResult<()> {
    plots::rewards(report, &out.join("reward.svg"))?;
    plots::scatter(report, &out.join("scatter.svg"))?;
    plots::breakdown(report, &out.join("breakdown.svg"))
}

/// `coinfer plot`: redraws the plots of a finished search from its `report.json`.
pub fn replot(report_path: &Path) -> CliResult<()> {
    let text = std::fs::read_to_string(report_path)
        .map_err(|e| format!("{}: {e}", report_path.display()))?;
    let report: SearchReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a search report: {e}", report_path.display()))?;
    let out = report_path.parent().unwrap_or(Path::new("."));
    draw_plots(&report, out)?;
    println!("plots written to {}", out.display());
    Ok(())
}

fn write_codec_table(session: &mut coinfer_automl::SearchSession<'_>, out: &Path) -> CliResult<()> {
    let table = coinfer_automl::report::codec_table(session.evaluator())?;
    write(&out.join("codecs.md"), &table)?;
    Ok(())
}
