//! [`CoInferenceBuilder`]: how users describe a search (backbone, data, profiles, reward,
//! settings, output), checked once into a [`CoInference`].

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use coinfer_data::{Budget, ImageDataset, Normalization, TrainTest};
use coinfer_profile::{LatencyModel, MeasureConfig, ProfileTable, measure_blocks};
use coinfer_split::train::{EVAL_BATCH_SIZE, TrainConfig, evaluate, train_classifier};
use coinfer_split::{Network, TrainedOn, zoo};

use crate::AutomlError;
use crate::config::{CheckedSearchConfig, SearchConfig, split_validation};
use crate::observer::{Observer, Phase, Silent};
use crate::output::RunFolder;
use crate::reward::Reward;
use crate::sources::{Backbone, ComputeSource, LinkSource};

/// What to do when the validation images the search would score plans on include images the
/// backbone was trained on (known from its [`TrainedOn`] record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Draw the validation images among those the backbone never saw (the same number, with
    /// the search's seed) and say so in the report. Refused when too few are unseen.
    #[default]
    Resplit,
    /// Refuse with [`AutomlError::ValidationOverlap`].
    Refuse,
}

/// Builds a [`CoInference`] search; see the crate docs for the ten-line version.
pub struct CoInferenceBuilder {
    backbone: Option<Backbone>,
    data: Option<TrainTest>,
    data_label: String,
    class_names: Vec<String>,
    normalization: Option<Normalization>,
    device: Option<ComputeSource>,
    link: Option<LinkSource>,
    edge: Option<ComputeSource>,
    reward: Reward,
    config: SearchConfig,
    backend: Option<Device>,
    overlap: OverlapPolicy,
    output: Option<PathBuf>,
    resume: bool,
    observer: Box<dyn Observer>,
}

impl Default for CoInferenceBuilder {
    fn default() -> Self {
        CoInferenceBuilder {
            backbone: None,
            data: None,
            data_label: "data".into(),
            class_names: Vec::new(),
            normalization: None,
            device: None,
            link: None,
            edge: None,
            reward: Reward::default(),
            config: SearchConfig::default(),
            backend: None,
            overlap: OverlapPolicy::default(),
            output: None,
            resume: false,
            observer: Box::new(Silent),
        }
    }
}

impl CoInferenceBuilder {
    /// A trained backbone (a whole classifier). When it carries a [`TrainedOn`] record (every
    /// network the pipeline trains does), the validation split is checked against it.
    pub fn model(mut self, model: Network) -> Self {
        self.backbone = Some(Backbone::Trained(model));
        self
    }

    /// Train the zoo model `model` for `budget` (`Budget::Epochs(8)`, or `Budget::Images(n)`
    /// whatever the data's size) on the search's training part (the data minus the validation
    /// images) instead of giving a trained one.
    pub fn train_backbone(mut self, model: &str, budget: Budget) -> Self {
        self.backbone = Some(Backbone::Train {
            model: model.into(),
            budget,
            cache: None,
        });
        self
    }

    /// With [`train_backbone`](Self::train_backbone): keep the trained network in this folder
    /// and reuse it when the same model, data, seed, validation split and budget come again.
    pub fn backbone_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Some(Backbone::Train { cache, .. }) = &mut self.backbone {
            *cache = Some(dir.into());
        }
        self
    }

    /// Training and test data (validation images are split off the training set).
    pub fn data(mut self, data: TrainTest) -> Self {
        self.data = Some(data);
        self
    }

    /// A label of the data (`fashion-mnist-subset`, …) for reports, caches and the trained
    /// backbone's record.
    pub fn data_label(mut self, label: &str) -> Self {
        self.data_label = label.into();
        self
    }

    /// The names of the data's classes in label order (an image folder's sub-folders), kept
    /// in the report; one per class of the data.
    pub fn class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = names;
        self
    }

    /// Input normalisation (default: fitted on the training set).
    pub fn normalization(mut self, norm: Normalization) -> Self {
        self.normalization = Some(norm);
        self
    }

    /// The device's compute profile: a [`ComputeSource`] (parsed from a preset name or a JSON
    /// file) or a [`ComputeProfile`](coinfer_profile::ComputeProfile).
    pub fn device(mut self, profile: impl Into<ComputeSource>) -> Self {
        self.device = Some(profile.into());
        self
    }

    /// The wireless link: a [`LinkSource`] or a [`LinkProfile`](coinfer_profile::LinkProfile).
    pub fn link(mut self, link: impl Into<LinkSource>) -> Self {
        self.link = Some(link.into());
        self
    }

    /// The edge server's compute profile (as [`device`](Self::device)).
    pub fn edge(mut self, profile: impl Into<ComputeSource>) -> Self {
        self.edge = Some(profile.into());
        self
    }

    /// The reward (default: the fastest plan within one point of the backbone's accuracy).
    pub fn reward(mut self, reward: Reward) -> Self {
        self.reward = reward;
        self
    }

    /// Number of DDPG episodes.
    pub fn episodes(mut self, episodes: usize) -> Self {
        self.config.episodes = episodes;
        self
    }

    /// Every other setting at once.
    pub fn config(mut self, config: SearchConfig) -> Self {
        self.config = config;
        self
    }

    /// The burn device models run on (default `Device::flex()`).
    pub fn backend(mut self, device: Device) -> Self {
        self.backend = Some(device);
        self
    }

    /// What to do when the validation images overlap the backbone's training images.
    pub fn on_overlap(mut self, policy: OverlapPolicy) -> Self {
        self.overlap = policy;
        self
    }

    /// Write the run's results (plan, report, codec table, plots, deployable weights, the
    /// agent's checkpoint) to this folder: staged in a sibling `.<name>.partial` folder and
    /// renamed over it only when the search has finished.
    pub fn output(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output = Some(dir.into());
        self
    }

    /// With [`output`](Self::output): go on from the checkpoint an interrupted search left in
    /// the staging folder (else the finished run's).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Where progress goes (default: nowhere).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Box::new(observer);
        self
    }

    /// Checks every option, then trains (or loads) the backbone, chooses the validation images
    /// (never images the backbone was trained on), measures the backbone's blocks on this
    /// machine and resolves the profiles. Nothing is written before every option is checked.
    pub fn build(self) -> Result<CoInference, AutomlError> {
        let backbone = self.backbone.ok_or(AutomlError::Missing("model"))?;
        let data = self.data.ok_or(AutomlError::Missing("data"))?;
        let device = self.device.ok_or(AutomlError::Missing("device"))?;
        let link = self.link.ok_or(AutomlError::Missing("link"))?;
        let edge = self.edge.ok_or(AutomlError::Missing("edge"))?;
        let config = self.config.check()?;
        self.reward.check()?;
        check_backbone(&backbone, &data)?;
        if !self.class_names.is_empty() && self.class_names.len() != data.train.num_classes() {
            return Err(AutomlError::InvalidConfig {
                field: "class_names",
                reason: format!(
                    "{} names for the data's {} classes",
                    self.class_names.len(),
                    data.train.num_classes()
                ),
            });
        }
        if self.resume && self.output.is_none() {
            return Err(AutomlError::InvalidConfig {
                field: "resume",
                reason: "resuming needs an output folder (its checkpoint)".into(),
            });
        }
        split_validation(&data.train, config.validation_images, config.seed)?;
        let backend = self.backend.unwrap_or_else(Device::flex);
        let observer = self.observer;
        let norm = self
            .normalization
            .unwrap_or_else(|| Normalization::fit(&data.train));

        let output = self.output.map(RunFolder::new);
        let resumed = match &output {
            Some(folder) => {
                folder.stage(self.resume)?;
                crate::checkpoint::resumed_from(folder, self.resume, &backend, &*observer)?
            }
            None => None,
        };

        let training = Instant::now();
        let (model, trained_here) = obtain_backbone(
            backbone,
            &data,
            &self.data_label,
            &norm,
            &config,
            &backend,
            &*observer,
        )?;
        let training_s = training.elapsed().as_secs_f64();
        let split = choose_validation(&data.train, &model, &config, self.overlap, trained_here)?;
        observer.note(&split.note);

        observer.note("profiling the backbone's blocks on this machine (batch 1)...");
        let profiling = Instant::now();
        let model = model.valid();
        let table = measure_blocks(&model, &MeasureConfig::new(), &backend)?;
        let profiling_s = profiling.elapsed().as_secs_f64();
        let latency = LatencyModel::new(
            device.resolve(Some(&table))?,
            link.profile().clone(),
            edge.resolve(Some(&table))?,
        )?;
        let names = [
            device.name().to_string(),
            link.profile().name.clone(),
            edge.name().to_string(),
        ];
        Ok(CoInference {
            model,
            data,
            data_label: self.data_label,
            class_names: self.class_names,
            train: split.train,
            validation: split.validation,
            notes: vec![split.note],
            norm,
            latency,
            edge_source: edge,
            reward: self.reward,
            config,
            backend,
            names,
            table,
            output,
            resumed,
            resume: self.resume,
            observer,
            setup_s: [training_s, profiling_s],
        })
    }
}

/// Refuses a zoo name that does not exist, a model whose input is not the data's image shape,
/// and a zero training budget, before anything is trained.
fn check_backbone(backbone: &Backbone, data: &TrainTest) -> Result<(), AutomlError> {
    let spec = match backbone {
        Backbone::Trained(model) => model.spec().clone(),
        Backbone::Train { model, budget, .. } => {
            if budget.is_zero() {
                return Err(AutomlError::InvalidConfig {
                    field: "backbone.budget",
                    reason: format!("a backbone to train needs a budget above 0, got `{budget}`"),
                });
            }
            zoo::by_name(model, data.train.num_classes()).ok_or_else(|| {
                AutomlError::InvalidConfig {
                    field: "backbone.model",
                    reason: format!(
                        "unknown model `{model}` (known: {})",
                        zoo::MODEL_NAMES.join(", ")
                    ),
                }
            })?
        }
    };
    spec.check()?;
    if spec.input.dims() != data.train.image_shape() {
        return Err(AutomlError::InvalidConfig {
            field: "backbone.model",
            reason: format!(
                "model `{}` takes {:?} images but the data has {:?} (pick a model for the data set)",
                spec.name,
                spec.input.dims(),
                data.train.image_shape()
            ),
        });
    }
    Ok(())
}

/// The trained backbone, and whether it was trained (or taken from the cache) here, on the
/// search's own training part.
fn obtain_backbone(
    backbone: Backbone,
    data: &TrainTest,
    label: &str,
    norm: &Normalization,
    config: &CheckedSearchConfig,
    backend: &Device,
    observer: &dyn Observer,
) -> Result<(Network, bool), AutomlError> {
    let (name, budget, cache) = match backbone {
        Backbone::Trained(model) => return Ok((model, false)),
        Backbone::Train {
            model,
            budget,
            cache,
        } => (model, budget, cache),
    };
    let (seed, validation_images) = (config.seed, config.validation_images);
    let trained_for = match budget {
        Budget::Epochs(epochs) => format!("e{epochs}"),
        Budget::Images(images) => format!("i{images}"),
    };
    // Weights trained on burn's ops differ in the last digits from the kernels' ones.
    let ops = match coinfer_kernels::TrainingOps::global() {
        coinfer_kernels::TrainingOps::Kernels => "",
        coinfer_kernels::TrainingOps::Burn => "-burnops",
    };
    let cached = cache.map(|dir| {
        dir.join(format!(
            "{name}-{label}-{trained_for}-s{seed}-v{validation_images}{ops}.cfnet"
        ))
    });
    if let Some(path) = cached.as_ref().filter(|p| p.exists()) {
        observer.note(&format!("backbone: reusing {}", path.display()));
        return Ok((Network::load(path, backend)?, true));
    }
    // Train on the training part only: the search scores plans on the held-out validation part.
    let (train_part, _) = split_validation(&data.train, validation_images, seed)?;
    let spec =
        zoo::by_name(&name, data.train.num_classes()).ok_or(AutomlError::Missing("model"))?;
    backend.seed(seed);
    let net = Network::new(spec, backend)?;
    let train_config = TrainConfig {
        budget,
        seed,
        ..TrainConfig::default()
    };
    let steps = budget.steps(train_part.len(), train_config.batch_size) as u64;
    observer.started(Phase::Backbone, steps);
    let mut done = 0;
    let trained = train_classifier(net, &train_part, norm, &train_config, backend, |p| {
        done += 1;
        observer.advanced(
            Phase::Backbone,
            done,
            steps,
            &format!("loss {:.3} acc {:.1}%", p.loss, 100.0 * p.accuracy),
        );
    })?;
    observer.finished(Phase::Backbone);
    let record = TrainedOn::new(label, &data.train, &train_part, seed, validation_images);
    let trained = trained.with_trained_on(record);
    let accuracy = evaluate(&trained, &data.test, norm, EVAL_BATCH_SIZE, backend)?;
    observer.note(&format!(
        "backbone: {name} trained for {budget} ({} images of {}), test accuracy {:.2}%",
        budget.images(train_part.len(), train_config.batch_size),
        train_part.len(),
        100.0 * accuracy
    ));
    if let Some(path) = &cached {
        trained.save(path)?;
        observer.note(&format!("backbone: saved to {}", path.display()));
    }
    Ok((trained, true))
}

/// The training and validation parts a search runs on, and a sentence on how they were
/// chosen.
struct ValidationChoice {
    train: ImageDataset,
    validation: ImageDataset,
    note: String,
}

/// The search's validation split (`validation_images` drawn by `seed`), checked against the
/// backbone's training record: when the backbone saw some of those images, they are drawn
/// again among the unseen ones (`Resplit`) or the search is refused (`Refuse`).
fn choose_validation(
    train: &ImageDataset,
    model: &Network,
    config: &CheckedSearchConfig,
    policy: OverlapPolicy,
    trained_here: bool,
) -> Result<ValidationChoice, AutomlError> {
    let (n, seed) = (config.validation_images, config.seed);
    let (rest, validation) = split_validation(train, n, seed)?;
    let Some(record) = model.trained_on() else {
        return Ok(ValidationChoice {
            train: rest,
            validation,
            note: format!(
                "warning: the backbone carries no training record (a network saved before \
                 coinfer recorded one, or built in code): whether its training images overlap \
                 the {n} validation images could not be checked"
            ),
        });
    };
    let digests = train.image_digests();
    let overlap = validation
        .image_digests()
        .into_iter()
        .filter(|&d| record.saw(d))
        .count();
    if overlap == 0 {
        let how = if trained_here {
            "trained here on the training part"
        } else {
            "by its training record"
        };
        return Ok(ValidationChoice {
            train: rest,
            validation,
            note: format!(
                "validation: {n} images (seed {seed}), none of them seen by the backbone ({how})"
            ),
        });
    }
    let unseen = digests.iter().filter(|&&d| !record.saw(d)).count();
    let refused = |remedy: String| AutomlError::ValidationOverlap {
        overlap,
        validation: n,
        data: record.data.clone(),
        seed: record.seed,
        held_out: record.validation_images,
        remedy,
    };
    match policy {
        OverlapPolicy::Refuse => Err(refused(format!(
            "use the backbone's split (seed {}, {} validation images) or allow re-splitting \
             ({unseen} training images are unseen)",
            record.seed, record.validation_images
        ))),
        OverlapPolicy::Resplit if unseen < n => Err(refused(format!(
            "only {unseen} training images are unseen by the backbone: ask for at most that \
             many validation images"
        ))),
        OverlapPolicy::Resplit => {
            let (validation, rest) = train.split_eligible(n, seed, |i| !record.saw(digests[i]))?;
            Ok(ValidationChoice {
                train: rest,
                validation,
                note: format!(
                    "validation re-split: {overlap} of the {n} validation images drawn with seed \
                     {seed} were trained on by the backbone (trained on `{}`, seed {}, {} held \
                     out), so the {n} validation images were drawn among the {unseen} it never saw",
                    record.data, record.seed, record.validation_images
                ),
            })
        }
    }
}

/// A configured co-inference search: the backbone trained or loaded, the validation images
/// chosen, the profiles resolved.
///
/// A small, complete run (random backbone, fixed codecs, a handful of episodes, no baselines —
/// a real search uses a trained backbone, the default [`SearchConfig`] and a few hundred
/// episodes):
///
/// ```
/// use coinfer_automl::prelude::*;
///
/// let device = Device::flex();
/// let full = embedded::fashion_mnist_subset()?;
/// let data = TrainTest {
///     train: full.train.class_balanced_subset(20, 1)?,
///     test: full.test.class_balanced_subset(5, 1)?,
/// };
/// let mut config = SearchConfig {
///     episodes: 4,
///     validation_images: 40,
///     codecs: CodecSetup::fixed_only(),
///     baselines: false,
///     ..SearchConfig::default()
/// };
/// config.ddpg.warmup_episodes = 2;
/// let report = CoInference::builder()
///     .model(Network::new(zoo::resnet_mini(10), &device)?)
///     .data(data)
///     .device(ComputeProfile::analytic(2e9, 20e-6)?)
///     .link(LinkProfile::new(10e6, 0.010, 40)?)
///     .edge(ComputeProfile::analytic(1e12, 50e-6)?)
///     .reward(Reward::ErrorLogLatency)
///     .config(config)
///     .build()?
///     .search()?;
/// assert_eq!(report.episodes.len(), 4);
/// assert!(report.plan.predicted.total > 0.0);
/// assert_eq!(report.plan.profiles[1], "10000 kbit/s, 10.0 ms RTT");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CoInference {
    pub(crate) model: Network,
    pub(crate) data: TrainTest,
    pub(crate) data_label: String,
    pub(crate) class_names: Vec<String>,
    pub(crate) train: ImageDataset,
    pub(crate) validation: ImageDataset,
    pub(crate) notes: Vec<String>,
    pub(crate) norm: Normalization,
    pub(crate) latency: LatencyModel,
    pub(crate) edge_source: ComputeSource,
    pub(crate) reward: Reward,
    pub(crate) config: CheckedSearchConfig,
    pub(crate) backend: Device,
    pub(crate) names: [String; 3],
    pub(crate) table: ProfileTable,
    pub(crate) output: Option<RunFolder>,
    pub(crate) resumed: Option<crate::checkpoint::CheckpointSummary>,
    pub(crate) resume: bool,
    pub(crate) observer: Box<dyn Observer>,
    /// Seconds spent training (or loading) the backbone and profiling it.
    pub(crate) setup_s: [f64; 2],
}

impl CoInference {
    /// Starts building a search.
    pub fn builder() -> CoInferenceBuilder {
        CoInferenceBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// The reward.
    pub fn reward(&self) -> Reward {
        self.reward
    }

    /// The backbone (trained, in its inference form).
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// The backbone's blocks measured on this machine (batch 1).
    pub fn block_table(&self) -> &ProfileTable {
        &self.table
    }

    /// The validation images every plan is scored on.
    pub fn validation(&self) -> &ImageDataset {
        &self.validation
    }

    /// How the validation images were chosen (and any warning about them).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}
