//! `coinfer search`: the options of the main job, handed to the library's pipeline
//! ([`CoInference::search`]), and its report printed.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use clap::Args;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::Budget;
use coinfer_automl::split::Network;
use coinfer_automl::{
    CoInference, CoInferenceBuilder, ComputeSource, LinkSource, Reward, SearchConfig,
};

use crate::backend::BackendChoice;
use crate::data::{self, DatasetChoice};
use crate::progress::Bars;

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
    /// (a folder of loose `*.bin` batches is split 80/20 into train and test), or an image
    /// folder (`train/<class>/`, `test/<class>/`, or `<class>/` split 80/20 per class; PNG or
    /// JPEG, brought to `--model`'s input size and channels).
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
    /// Input shape `C,H,W` of an ONNX `--model` whose file leaves it dynamic.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    pub(crate) input_shape: Option<Vec<usize>>,
    /// Load this trained backbone (`Network::save` file) instead of training one. It should
    /// not have seen the validation images (see `split_validation`), or every plan scores
    /// its training accuracy.
    #[arg(long)]
    pub(crate) backbone: Option<PathBuf>,
    /// Backbone training epochs (when training); short for `--backbone-budget epochs:N`.
    #[arg(long, default_value_t = 8, conflicts_with = "backbone_budget")]
    pub(crate) backbone_epochs: usize,
    /// Backbone training budget (when training): `epochs:N`, or `images:N` whatever the
    /// data's size (e.g. `images:220000`, four passes over the full Fashion-MNIST).
    #[arg(long)]
    pub(crate) backbone_budget: Option<Budget>,
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
    /// Validation images every plan is scored on. At 1,000 images and 90 % confidence, a plan
    /// that disagrees with the backbone on 4 % of them passes a 1-point tolerance only if it
    /// loses no more images than it gains; 10,000 images let it lose 74 (`coinfer
    /// confidence` prints the table; the report states each decision's interval).
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
    /// Epochs per autoencoder, over its --ae-train-images; short for `--ae-budget epochs:N`.
    #[arg(long, default_value_t = 5, conflicts_with = "ae_budget")]
    pub(crate) ae_epochs: usize,
    /// Training budget per autoencoder: `epochs:N` (passes over its --ae-train-images) or
    /// `images:N`.
    #[arg(long)]
    pub(crate) ae_budget: Option<Budget>,
    /// Training images the autoencoders draw from (a class-balanced prefix of the training
    /// part; more than it holds: all of it).
    #[arg(long, default_value_t = CodecSetup::default().ae_train_images)]
    pub(crate) ae_train_images: usize,
    /// Fine-tuning epochs of the chosen plan; 0 turns fine-tuning and re-ranking off
    /// [default: 1, or the --config file's].
    #[arg(long)]
    pub(crate) finetune_epochs: Option<usize>,
    /// Budget of the three-step fine-tune's first step (device half), `epochs:N` or
    /// `images:N` (what a large data set wants); the codec and joint steps get twice it
    /// [default: epochs:1, or the --config file's].
    #[arg(long)]
    pub(crate) finetune_budget: Option<Budget>,
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
    /// epochs and budget and the refinement budget given on the command line.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

/// The search configuration: the `--config` file (or the library's defaults with the
/// command line's codec and baseline options), then episodes, warm-up, seed, fine-tune epochs
/// and the refinement budget from the command line where given. Checked by the builder.
fn search_config(args: &SearchArgs) -> CliResult<SearchConfig> {
    let mut config = match &args.config {
        Some(path) => SearchConfig::load(path)?,
        None => {
            let mut config = SearchConfig {
                validation_images: args.validation_images,
                baselines: !args.no_baselines,
                exhaustive_levels: args.exhaustive_levels,
                ..SearchConfig::default()
            };
            config.codecs.ae_ratios = args.ae_ratios.clone();
            config.codecs.spatial_ratios = args.spatial_ratios.clone();
            config.codecs.ae_budget = args.ae_budget.unwrap_or(Budget::Epochs(args.ae_epochs));
            config.codecs.ae_train_images = args.ae_train_images;
            config
        }
    };
    if let Some(budget) = args.finetune_budget {
        config.three_step.device_budget = budget;
        config.three_step.codec_budget = budget.scaled(2.0);
        config.three_step.joint_budget = budget.scaled(2.0);
    }
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
    Ok(config)
}

/// The builder the options describe (shared by `search` and `sweep`), writing into `out`.
pub(crate) fn builder(
    args: &SearchArgs,
    device: &Device,
    out: &Path,
) -> CliResult<CoInferenceBuilder> {
    let config = search_config(args)?;
    let shape = args.input_shape.as_deref().map(|s| [s[0], s[1], s[2]]);
    let imported = coinfer_onnx::import_model_arg(&args.model, shape, device)?;
    let input = match &imported {
        Some(onnx) => onnx.network.spec().input.dims(),
        None => data::model_input(&args.model).ok_or_else(|| {
            format!(
                "unknown model `{}` (known: {}, or an .onnx file)",
                args.model,
                coinfer_automl::split::zoo::MODEL_NAMES.join(", ")
            )
        })?,
    };
    let (data, label, classes) =
        data::load(args.dataset, args.data_dir.as_deref(), config.seed, input)?;
    println!(
        "data: {} train / {} test images ({label})",
        data.train.len(),
        data.test.len()
    );
    let builder = CoInference::builder()
        .data(data)
        .data_label(&label)
        .class_names(classes)
        .device(args.device.parse::<ComputeSource>()?)
        .link(args.link.parse::<LinkSource>()?)
        .edge(args.edge.parse::<ComputeSource>()?)
        .reward(Reward::from_options(
            &args.reward,
            args.tolerance_points,
            args.budget_ms,
        )?)
        .config(config)
        .backend(device.clone())
        .output(out)
        .resume(args.resume)
        .observer(Bars::default());
    Ok(match (&args.backbone, imported) {
        (Some(path), _) => {
            println!("backbone: loading {}", path.display());
            builder.model(Network::load(path, device)?)
        }
        (None, Some(onnx)) => {
            println!(
                "backbone: imported {} ({} blocks, opset {})",
                args.model,
                onnx.network.spec().blocks.len(),
                onnx.opset
            );
            match onnx.normalization {
                Some(norm) => builder.normalization(norm).model(onnx.network),
                None => builder.model(onnx.network),
            }
        }
        (None, None) => builder
            .train_backbone(
                &args.model,
                args.backbone_budget
                    .unwrap_or(Budget::Epochs(args.backbone_epochs)),
            )
            .backbone_cache(args.results.join("cache").join(args.backend.name())),
    })
}

/// The search the options describe, built (backbone trained or loaded, profiles resolved),
/// writing into `out` or else `<results>/<run>/` (shared by `sweep` and `race`).
pub(crate) fn built(args: &SearchArgs, out: Option<&Path>) -> CliResult<CoInference> {
    let device = Device::flex();
    let published = out.map_or_else(|| args.results.join(&args.run), Path::to_path_buf);
    Ok(builder(args, &device, &published)?.build()?)
}

/// Runs the main job (the library's pipeline) and prints its report.
pub fn run(args: SearchArgs) -> CliResult<()> {
    let device = Device::flex();
    let out = args.results.join(&args.run);
    let report = builder(&args, &device, &out)?.build()?.search()?;
    println!("{}", report.to_markdown());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
            (
                300,
                50,
                coinfer_automl::DEFAULT_SEED,
                coinfer_automl::DEFAULT_SEED,
                1,
                coinfer_automl::DEFAULT_VALIDATION_IMAGES
            )
        );
        let config =
            search_config(&parse(&["--episodes", "5", "--validation-images", "50"])).unwrap();
        assert_eq!(overridable(&config), (5, 50, 1, 1, 1, 50));
    }
}
