//! `coinfer search`: the main job, end to end.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use clap::Args;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::TrainTest;
use coinfer_automl::profile::{ComputeProfile, LinkProfile, preset};
use coinfer_automl::profile::{MeasureConfig, ProfileTable, measure_blocks};
use coinfer_automl::split::train::{EVAL_BATCH_SIZE, TrainConfig, evaluate, train_classifier};
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::{
    Baseline, BaselineSettings, CheckpointSummary, CoInference, Reward, SearchConfig, SearchReport,
    inspect_checkpoint, split_validation,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::BackendChoice;
use crate::data::{self, DatasetChoice};
use crate::plots;

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Options of `coinfer search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Run name: results go to `<results>/<run>/`.
    #[arg(long, default_value = "default")]
    pub(crate) run: String,
    /// Folder holding all runs (and the backbone cache, `<results>/cache/`).
    #[arg(long, default_value = "results")]
    pub(crate) results: PathBuf,
    /// Read `--dataset` from this directory instead of the embedded 6k/1k Fashion-MNIST
    /// subset (e.g. ../shared/data/fashion-mnist).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Format of `--data-dir`: IDX files for the MNIST family, binary batches for CIFAR-10
    /// (a folder of loose `*.bin` batches is split 80/20 into train and test).
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    pub(crate) dataset: DatasetChoice,
    /// burn backend to run on (must be compiled in: cargo features flex, ndarray, wgpu).
    #[arg(long, value_enum, default_value = "flex")]
    pub(crate) backend: BackendChoice,
    /// Backbone from the zoo: resnet-mini or mobilenetv2-mini for 28×28 grey images,
    /// resnet18-cifar or mobilenetv2-cifar for 32×32 colour images; or a trained ONNX
    /// classifier, `path/to/model.onnx` (docs/onnx.md), used as it is (no training).
    #[arg(long, default_value = "resnet-mini")]
    pub(crate) model: String,
    /// Load this trained backbone (`Network::save` file) instead of training one. It should
    /// not have seen the validation images (see `split_validation`), or every plan scores
    /// its training accuracy.
    #[arg(long)]
    pub(crate) backbone: Option<PathBuf>,
    /// Backbone training epochs (when training).
    #[arg(long, default_value_t = 8)]
    pub(crate) backbone_epochs: usize,
    /// Device compute profile: a preset (device-mcu, device-1gflops, device-10gflops,
    /// this-machine) or a
    /// ComputeProfile JSON file.
    #[arg(long, default_value = "device-mcu")]
    pub(crate) device: String,
    /// Link profile: a preset (link-802154, link-ble, link-1mbps, link-10mbps, link-100mbps)
    /// or a LinkProfile JSON file. The paper's regime is `--device device-1gflops --link
    /// link-10mbps --edge edge-gpu`.
    #[arg(long, default_value = "link-802154")]
    pub(crate) link: String,
    /// Edge compute profile: a preset (edge-gateway, edge-gpu, edge-h200-eager,
    /// edge-h200-graph, edge-cpu, this-machine) or a JSON file.
    #[arg(long, default_value = "edge-gateway")]
    pub(crate) edge: String,
    /// Reward: `within-tolerance` (the fastest plan within --tolerance-points of the
    /// backbone's accuracy, decided by a paired comparison on the validation images),
    /// `error-log-latency` (AMC's -error·ln T) or `budget` (accuracy under --budget-ms,
    /// actions clipped to keep it reachable).
    #[arg(long, default_value = "within-tolerance")]
    pub(crate) reward: String,
    /// Accepted accuracy drop of `--reward within-tolerance`, in points.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) tolerance_points: f32,
    /// Latency budget for `--reward budget`, milliseconds.
    #[arg(long)]
    pub(crate) budget_ms: Option<f64>,
    /// DDPG episodes [default: 300, or the --config file's].
    #[arg(long)]
    pub(crate) episodes: Option<usize>,
    /// Warm-up episodes with random actions [default: 50, or the --config file's].
    #[arg(long)]
    pub(crate) warmup: Option<usize>,
    /// Seed of the backbone, the validation split and the agent [default: 1, or the
    /// --config file's].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Validation images every plan is scored on.
    #[arg(long, default_value_t = coinfer_automl::DEFAULT_VALIDATION_IMAGES)]
    pub(crate) validation_images: usize,
    /// Channel ratios r of the 1×1 autoencoders (comma separated; `--ae-ratios` alone for
    /// none).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "4,16")]
    pub(crate) ae_ratios: Vec<u16>,
    /// Channel ratios of the spatial (stride-2, 3×3, batch-norm) autoencoders (comma
    /// separated; `--spatial-ratios` alone for none).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "8,16")]
    pub(crate) spatial_ratios: Vec<u16>,
    /// Epochs per autoencoder.
    #[arg(long, default_value_t = 5)]
    pub(crate) ae_epochs: usize,
    /// Fine-tuning epochs of the chosen plan [default: 1, or the --config file's].
    #[arg(long)]
    pub(crate) finetune_epochs: Option<usize>,
    /// Most plans the local refinement after the agent may evaluate (0: it only revisits
    /// plans already evaluated) [default: 150, or the --config file's].
    #[arg(long)]
    pub(crate) refine_evaluations: Option<usize>,
    /// Skip the baselines.
    #[arg(long)]
    pub(crate) no_baselines: bool,
    /// Levels per layer of the exhaustive grid baseline (0 skips it; its size grows as
    /// levels^layers).
    #[arg(long, default_value_t = 2)]
    pub(crate) exhaustive_levels: usize,
    /// Resume an interrupted search of the same run from its checkpoint (the one it left in
    /// `<results>/.<run>.partial/`, else the finished run's, to run more episodes).
    #[arg(long)]
    pub(crate) resume: bool,
    /// A SearchConfig JSON file. Its values stand, except episodes, warm-up, seed, fine-tune
    /// epochs and the refinement budget given on the command line.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
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

/// Defaults of the overridable options when there is no `--config` file.
const DEFAULT_EPISODES: usize = 300;
const DEFAULT_WARMUP: usize = 50;
const DEFAULT_SEED: u64 = 1;
const DEFAULT_FINETUNE_EPOCHS: usize = 1;

/// The search configuration: the `--config` file (or the command-line options and defaults),
/// then episodes, warm-up, seed, fine-tune epochs and the refinement budget from the command
/// line where given.
fn search_config(args: &SearchArgs) -> CliResult<SearchConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let mut config = SearchConfig {
                episodes: DEFAULT_EPISODES,
                validation_images: args.validation_images,
                codecs: CodecSetup {
                    ae_ratios: args.ae_ratios.clone(),
                    spatial_ratios: args.spatial_ratios.clone(),
                    ae_epochs: args.ae_epochs,
                    ..CodecSetup::default()
                },
                seed: DEFAULT_SEED,
                ..SearchConfig::default()
            };
            config.ddpg.warmup_episodes = DEFAULT_WARMUP;
            config.ddpg.seed = DEFAULT_SEED;
            config.finetune.epochs = DEFAULT_FINETUNE_EPOCHS;
            config
        }
    };
    if let Some(episodes) = args.episodes {
        config.episodes = episodes;
    }
    if let Some(warmup) = args.warmup {
        config.ddpg.warmup_episodes = warmup;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
        config.ddpg.seed = seed;
    }
    if let Some(epochs) = args.finetune_epochs {
        config.finetune.epochs = epochs;
    }
    if let Some(evaluations) = args.refine_evaluations {
        config.refine.max_evaluations = evaluations;
    }
    // Fail before training a backbone, not after.
    config.clone().check()?;
    Ok(config)
}

/// Trains (or loads) the backbone; the seed and validation split are the search's.
/// An ONNX `--model` comes trained, with its own input normalisation (returned when the file
/// says it).
fn backbone(
    args: &SearchArgs,
    config: &SearchConfig,
    data: &TrainTest,
    tag: &str,
    device: &Device,
) -> CliResult<(Network, Option<coinfer_onnx::Normalization>)> {
    let (seed, validation_images) = (config.seed, config.validation_images);
    if let Some(path) = &args.backbone {
        println!("backbone: loading {}", path.display());
        return Ok((Network::load(path, device)?, None));
    }
    let image_shape = data.train.image_shape();
    if let Some(imported) = coinfer_onnx::import_model_arg(&args.model, Some(image_shape), device)?
    {
        println!(
            "backbone: imported {} ({} blocks, opset {})",
            args.model,
            imported.network.spec().blocks.len(),
            imported.opset
        );
        if imported.network.spec().input.dims() != image_shape {
            return Err(format!(
                "{} takes {:?} images but {tag} has {image_shape:?}",
                args.model,
                imported.network.spec().input.dims()
            )
            .into());
        }
        return Ok((imported.network, imported.normalization));
    }
    let cache = args.results.join("cache").join(format!(
        "{}-{tag}-e{}-s{seed}-v{validation_images}-{}.cfnet",
        args.model,
        args.backbone_epochs,
        args.backend.name()
    ));
    if cache.exists() {
        println!("backbone: reusing {}", cache.display());
        return Ok((Network::load(&cache, device)?, None));
    }
    // Train on the training part only: the search scores plans on the held-out validation part.
    let (train_part, _) = split_validation(&data.train, validation_images, seed)?;
    let spec = zoo::by_name(&args.model, data.train.num_classes()).ok_or_else(|| {
        format!(
            "unknown model `{}` (known: {:?})",
            args.model,
            zoo::MODEL_NAMES
        )
    })?;
    if spec.input.dims() != data.train.image_shape() {
        return Err(format!(
            "model `{}` takes {:?} images but {tag} has {:?} (pick a model for the data set)",
            args.model,
            spec.input.dims(),
            data.train.image_shape()
        )
        .into());
    }
    device.seed(seed);
    let net = Network::new(spec, device)?;
    let norm = coinfer_automl::data::Normalization::fit(&data.train);
    let config = TrainConfig {
        epochs: args.backbone_epochs,
        seed,
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
    Ok((trained, None))
}

pub(crate) fn compute_profile(name: &str, table: &ProfileTable) -> CliResult<ComputeProfile> {
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
        ("within-tolerance", _) => {
            let reward = Reward::within_tolerance(args.tolerance_points / 100.0);
            reward.check()?;
            Ok(reward)
        }
        ("error-log-latency", _) => Ok(Reward::ErrorLogLatency),
        ("budget", Some(ms)) => Ok(Reward::AccuracyUnderBudget { budget_s: ms / 1e3 }),
        ("budget", None) => Err("--reward budget needs --budget-ms".into()),
        (other, _) => Err(format!(
            "unknown reward `{other}` (within-tolerance, error-log-latency or budget)"
        )
        .into()),
    }
}

fn write(path: &Path, text: &str) -> CliResult<()> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Refuses numeric options no search can use, before anything is trained or written.
fn check_flags(args: &SearchArgs) -> CliResult<()> {
    let autoencoders = !args.ae_ratios.is_empty() || !args.spatial_ratios.is_empty();
    let positive = [
        ("--episodes", args.episodes.unwrap_or(1)),
        ("--validation-images", args.validation_images),
        ("--ae-epochs", if autoencoders { args.ae_epochs } else { 1 }),
    ];
    for (flag, value) in positive {
        if value == 0 {
            return Err(format!("{flag} must be at least 1").into());
        }
    }
    if args.backbone.is_none() && args.backbone_epochs == 0 {
        return Err("--backbone-epochs must be at least 1 when no --backbone is given".into());
    }
    if args.ae_ratios.contains(&0) {
        return Err("--ae-ratios: a ratio must be at least 1".into());
    }
    if args.spatial_ratios.contains(&0) {
        return Err("--spatial-ratios: a ratio must be at least 1".into());
    }
    if let Some(ms) = args.budget_ms
        && !(ms.is_finite() && ms > 0.0)
    {
        return Err(format!("--budget-ms {ms} must be positive and finite").into());
    }
    Ok(())
}

/// What [`build_search`] sets up: the search, the block table measured on this machine, and the
/// wall time of the steps before the session.
pub struct Built {
    /// The search, checked.
    pub search: CoInference,
    /// Per-block timings of the backbone on this machine.
    pub table: ProfileTable,
    /// Seconds spent training (or loading) the backbone.
    pub training_s: f64,
    /// Seconds spent profiling it.
    pub profiling_s: f64,
}

/// Loads the data, trains (or loads) the backbone, profiles it and builds the search the
/// options describe (shared by `search` and `sweep`). Nothing is written into `out` before
/// every option is checked.
pub fn build_search(args: &SearchArgs, device: &Device, out: &Path) -> CliResult<Built> {
    check_flags(args)?;
    let config = search_config(args)?;
    let (data, tag) = data::load(args.dataset, args.data_dir.as_deref(), config.seed)?;
    println!(
        "data: {} train / {} test images ({tag})",
        data.train.len(),
        data.test.len()
    );
    let training = Instant::now();
    let (backbone, normalization) = backbone(args, &config, &data, &tag, device)?;
    let training_s = training.elapsed().as_secs_f64();

    println!("profiling the backbone's blocks on this machine (batch 1)...");
    let profiling = Instant::now();
    let table = measure_blocks(&backbone, &MeasureConfig::new(), device)?;
    let profiling_s = profiling.elapsed().as_secs_f64();
    let device_profile = compute_profile(&args.device, &table)?;
    let edge_profile = compute_profile(&args.edge, &table)?;
    let link = link_profile(&args.link)?;

    let builder = match normalization {
        Some(norm) => CoInference::builder().normalization(norm),
        None => CoInference::builder(),
    };
    let search = builder
        .model(backbone)
        .data(data)
        .device(device_profile)
        .link(link)
        .edge(edge_profile)
        .profile_names(&args.device, &args.link, &args.edge)
        .reward(reward(args)?)
        .config(config)
        .backend(device.clone())
        .build()?;
    // Every option is checked by now: only a valid search writes into the run's folder.
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    table.save(out.join("profile-this-machine.json"))?;
    Ok(Built {
        search,
        table,
        training_s,
        profiling_s,
    })
}

/// Trains the codecs of `search` with a progress bar and writes their table to `out`.
pub fn prepare_session<'a>(
    search: &'a CoInference,
    out: &Path,
) -> CliResult<coinfer_automl::SearchSession<'a>> {
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
    write_codec_table(&mut session, out)?;
    Ok(session)
}

/// Runs the main job. Everything is written into a staging folder beside the run's
/// (`<results>/.<run>.partial`) and renamed over `<results>/<run>` only when the search has
/// finished, so a search that fails leaves an earlier run of the same name as it was; an
/// interrupted search leaves its checkpoint there for `--resume`.
pub fn run(args: SearchArgs) -> CliResult<()> {
    let start = Instant::now();
    let device = Device::flex();
    check_flags(&args)?;
    let out = args.results.join(&args.run);
    let staging = stage(&out, args.resume)?;
    let checkpoint = staging.join("checkpoint");
    // A corrupt checkpoint is reported now, before the backbone, the profile and the codecs.
    let resumed = resumed_from(&checkpoint, &out, args.resume, &device)?;
    let built = build_search(&args, &device, &staging)?;
    let (training_s, profiling_s) = (built.training_s, built.profiling_s);
    let mut session = prepare_session(&built.search, &staging)?;

    let episodes_bar = bar(session.config().episodes as u64, "DDPG search");
    let mut best = f32::NEG_INFINITY;
    if let Some(resumed) = resumed {
        // The bar starts at the checkpoint's episode, its best reward includes the earlier
        // episodes.
        episodes_bar.set_position(resumed.episodes_done as u64);
        if let Some(reward) = resumed.best_reward {
            best = reward;
            episodes_bar.set_prefix(format!(
                "best reward {best:.4} (resumed after episode {})",
                resumed.episodes_done
            ));
        }
    }
    let run = session.run_ddpg(Some(&checkpoint), |record| {
        best = best.max(record.reward);
        // A resumed search starts at its checkpoint's episode, not at 0.
        episodes_bar.set_position(record.episode as u64 + 1);
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
        let which: Vec<Baseline> = Baseline::ALL
            .into_iter()
            .filter(|b| *b != Baseline::ExhaustiveGrid || args.exhaustive_levels > 0)
            .collect();
        let settings = BaselineSettings {
            exhaustive_levels: args.exhaustive_levels,
            ..session.baseline_settings(run.evaluations.max(1))
        };
        let baseline_bar = bar(which.len() as u64, "baselines");
        let results = session.baselines(&which, &settings, |b| {
            baseline_bar.set_prefix(b.name());
            baseline_bar.inc(1);
        })?;
        baseline_bar.finish();
        results
    };

    // Export the edge-only baseline as a deployable plan too, for runtime comparisons.
    if let Some(edge_only) = baselines
        .iter()
        .find(|b| Baseline::from_name(&b.name) == Some(Baseline::EdgeOnlyRaw))
    {
        let decision = session.evaluator().decision_of(&edge_only.best)?;
        session.finalize(
            &decision,
            edge_only.reward,
            Some(&staging.join("edge-only")),
            |_, _, _| {},
        )?;
    }

    println!(
        "re-ranking the fastest plans near the tolerance by their fine-tuned accuracy, then fine-tuning the chosen plan (three steps)..."
    );
    let mut report = session.report(run, baselines, Some(&staging))?;
    report.phases.training_s = training_s;
    report.phases.profiling_s = profiling_s;
    let json = serde_json::to_string_pretty(&report)?;
    write(&staging.join("report.json"), &json)?;
    let mut md = report.to_markdown();
    md.push_str(&format!(
        "\nTotal wall time of `coinfer search`: {:.1} s.\n",
        start.elapsed().as_secs_f64()
    ));
    write(&staging.join("report.md"), &md)?;
    draw_plots(&report, &staging)?;
    publish(&staging, &out)?;
    println!("{md}");
    println!("results in {}", out.display());
    Ok(())
}

/// `<results>/.<run>.<what>`: a sibling of the run's folder.
pub(crate) fn sibling(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.{what}"))
}

/// Prepares the staging folder of the run at `out`: a fresh one, or with `resume` the one an
/// interrupted search left (its checkpoint), else a copy of the finished run's checkpoint.
fn stage(out: &Path, resume: bool) -> CliResult<PathBuf> {
    let staging = sibling(out, "partial");
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    if !resume && staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
    }
    let checkpoint = staging.join("checkpoint");
    let finished = out.join("checkpoint");
    if resume && !checkpoint.exists() && finished.join("agent").exists() {
        copy_dir(&finished, &checkpoint)?;
    }
    Ok(staging)
}

/// Copies a folder tree (a checkpoint: a few small files).
fn copy_dir(from: &Path, to: &Path) -> CliResult<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// With `--resume`: reads and checks the checkpoint (a corrupt one is an error naming its
/// file), or says that there is none.
fn resumed_from(
    checkpoint: &Path,
    out: &Path,
    resume: bool,
    device: &Device,
) -> CliResult<Option<CheckpointSummary>> {
    if !resume {
        return Ok(None);
    }
    if !checkpoint.join("agent").exists() {
        println!(
            "--resume: no checkpoint in {} (nor an interrupted search in {}), the search starts \
             from episode 0",
            out.join("checkpoint").display(),
            checkpoint.display()
        );
        return Ok(None);
    }
    let summary = inspect_checkpoint(checkpoint, device)
        .map_err(|e| format!("--resume: the checkpoint cannot be used: {e}"))?;
    println!(
        "--resume: the checkpoint holds {} episodes, the search goes on from there",
        summary.episodes_done
    );
    Ok(Some(summary))
}

/// Replaces the run's folder `out` with the finished `staging` one.
pub(crate) fn publish(staging: &Path, out: &Path) -> CliResult<()> {
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    let old = sibling(out, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    if out.exists() {
        std::fs::rename(out, &old).map_err(|e| io(out, e))?;
    }
    if let Err(e) = std::fs::rename(staging, out) {
        // Put the earlier run back.
        let _ = std::fs::rename(&old, out);
        return Err(io(staging, e).into());
    }
    let _ = std::fs::remove_dir_all(&old);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_run_is_replaced_only_when_it_is_published() {
        let results = std::env::temp_dir().join(format!("coinfer-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&results);
        let out = results.join("run");
        std::fs::create_dir_all(out.join("checkpoint").join("agent")).unwrap();
        std::fs::write(out.join("report.md"), "earlier").unwrap();
        std::fs::write(out.join("checkpoint").join("agent").join("a"), "state").unwrap();
        // A new search stages beside the run; until it is published the run is as it was.
        let staging = stage(&out, false).unwrap();
        assert_eq!(staging, results.join(".run.partial"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("report.md"), "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "earlier"
        );
        // A fresh search discards what an earlier one left in staging.
        assert!(!stage(&out, false).unwrap().exists());
        // --resume starts from the finished run's checkpoint.
        let staging = stage(&out, true).unwrap();
        let copied = staging.join("checkpoint").join("agent").join("a");
        assert_eq!(std::fs::read_to_string(copied).unwrap(), "state");
        std::fs::write(staging.join("report.md"), "new").unwrap();
        publish(&staging, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "new"
        );
        assert!(!staging.exists() && !sibling(&out, "old").exists());
        let _ = std::fs::remove_dir_all(&results);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SearchArgs,
    }

    fn parse(options: &[&str]) -> SearchArgs {
        Cli::try_parse_from(std::iter::once("search").chain(options.iter().copied()))
            .unwrap()
            .args
    }

    /// (episodes, warm-up, seed, agent seed, fine-tune epochs, validation images)
    fn overridable(c: &SearchConfig) -> (usize, usize, u64, u64, usize, usize) {
        (
            c.episodes,
            c.ddpg.warmup_episodes,
            c.seed,
            c.ddpg.seed,
            c.finetune.epochs,
            c.validation_images,
        )
    }

    #[test]
    fn config_file_values_stand_unless_given_on_the_command_line() {
        let mut file = SearchConfig {
            episodes: 7,
            seed: 11,
            validation_images: 123,
            ..SearchConfig::default()
        };
        file.ddpg.warmup_episodes = 3;
        file.ddpg.seed = 11;
        file.finetune.epochs = 4;
        file.refine.max_evaluations = 33;
        let path = std::env::temp_dir().join(format!("coinfer-config-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let p = path.to_str().unwrap();

        let config = search_config(&parse(&["--config", p])).unwrap();
        assert_eq!(overridable(&config), (7, 3, 11, 11, 4, 123));
        assert_eq!(config.refine.max_evaluations, 33);
        let config = search_config(&parse(&["--config", p, "--refine-evaluations", "0"])).unwrap();
        assert_eq!(config.refine.max_evaluations, 0);

        let config =
            search_config(&parse(&["--config", p, "--episodes", "9", "--seed", "2"])).unwrap();
        assert_eq!(overridable(&config), (9, 3, 2, 2, 4, 123));

        let config = search_config(&parse(&[
            "--config",
            p,
            "--warmup",
            "1",
            "--finetune-epochs",
            "0",
        ]))
        .unwrap();
        assert_eq!(overridable(&config), (7, 1, 11, 11, 0, 123));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn without_a_config_file_the_documented_defaults_apply() {
        let config = search_config(&parse(&[])).unwrap();
        assert_eq!(
            overridable(&config),
            (300, 50, 1, 1, 1, coinfer_automl::DEFAULT_VALIDATION_IMAGES)
        );
        let config =
            search_config(&parse(&["--episodes", "5", "--validation-images", "50"])).unwrap();
        assert_eq!(overridable(&config), (5, 50, 1, 1, 1, 50));
    }
}
