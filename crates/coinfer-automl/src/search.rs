//! The builder users embed, and the search session behind it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use coinfer_agent::{Ddpg, DdpgConfig};
use std::sync::Arc;

use coinfer_codec::SharedCodec;
use coinfer_data::{ImageDataset, Normalization, TrainTest};
use coinfer_profile::{ComputeProfile, LatencyModel, LinkProfile};
use coinfer_split::Network;
use coinfer_split::train::evaluate_with;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::baselines::{self, BaselineResult};
use crate::codecs::{CodecProgress, CodecSetup, build_codecs};
use crate::env::{CoInferenceEnv, EpisodeRecord};
use crate::evaluator::{Evaluation, PlanEvaluator, ValidationSet};
use crate::finetune::{FineTuneConfig, fine_tune};
use crate::plan::{PlanArtifacts, SplitPlan};
use crate::reward::Reward;
use crate::space::{Decision, SearchSpace};

/// Every setting of a search, with defaults that follow AMC and the reference paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// DDPG episodes (one plan each).
    pub episodes: usize,
    /// The agent's hyper-parameters.
    pub ddpg: DdpgConfig,
    /// Largest fraction of filters a layer may lose.
    pub max_prune: f32,
    /// Validation images (class-balanced, split off the training set) every plan is scored on.
    pub validation_images: usize,
    /// Codecs offered at each split.
    pub codecs: CodecSetup,
    /// Fine-tuning of the chosen plan.
    pub finetune: FineTuneConfig,
    /// Seed of the validation split (the agent has its own in `ddpg.seed`).
    pub seed: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            episodes: 300,
            ddpg: DdpgConfig {
                warmup_episodes: 50,
                ..DdpgConfig::default()
            },
            max_prune: 0.8,
            validation_images: 500,
            codecs: CodecSetup::default(),
            finetune: FineTuneConfig::default(),
            seed: 17,
        }
    }
}

impl SearchConfig {
    /// Checks every field (the sub-configs check their own).
    pub fn validate(&self) -> Result<(), AutomlError> {
        if self.episodes == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "episodes",
                reason: "must be at least 1".into(),
            });
        }
        if self.validation_images < 10 {
            return Err(AutomlError::InvalidConfig {
                field: "validation_images",
                reason: format!(
                    "{} is too few to score a plan (at least 10)",
                    self.validation_images
                ),
            });
        }
        if !(0.0..1.0).contains(&self.max_prune) {
            return Err(AutomlError::InvalidConfig {
                field: "max_prune",
                reason: format!("must be in [0, 1), got {}", self.max_prune),
            });
        }
        self.ddpg.validate()?;
        self.codecs.validate()
    }
}

/// `(training part, validation part)` of a training set: `validation_images` images drawn by
/// `seed`. The search scores plans on the validation part and trains codecs and fine-tunes on
/// the training part, so **train the backbone on the training part too** (same images and
/// seed): plans scored on images the backbone has memorised all look equally accurate.
pub fn split_validation(
    train: &ImageDataset,
    validation_images: usize,
    seed: u64,
) -> Result<(ImageDataset, ImageDataset), AutomlError> {
    let n = train.len();
    if validation_images == 0 || validation_images >= n {
        return Err(AutomlError::InvalidConfig {
            field: "validation_images",
            reason: format!(
                "{validation_images} validation images do not fit a {n}-image training set"
            ),
        });
    }
    let (validation, rest) = train.split(validation_images as f64 / n as f64, seed)?;
    Ok((rest, validation))
}

/// Builds a [`CoInference`] search; see the crate docs for the ten-line version.
#[derive(Default)]
pub struct CoInferenceBuilder {
    model: Option<Network>,
    data: Option<TrainTest>,
    normalization: Option<Normalization>,
    device: Option<ComputeProfile>,
    link: Option<LinkProfile>,
    edge: Option<ComputeProfile>,
    reward: Reward,
    config: SearchConfig,
    backend: Option<Device>,
    names: [String; 3],
}

impl CoInferenceBuilder {
    /// The trained backbone (a whole classifier).
    pub fn model(mut self, model: Network) -> Self {
        self.model = Some(model);
        self
    }

    /// Training and test data (validation images are split off the training set).
    pub fn data(mut self, data: TrainTest) -> Self {
        self.data = Some(data);
        self
    }

    /// Input normalisation (default: fitted on the training set).
    pub fn normalization(mut self, norm: Normalization) -> Self {
        self.normalization = Some(norm);
        self
    }

    /// The device's compute profile.
    pub fn device(mut self, profile: ComputeProfile) -> Self {
        self.device = Some(profile);
        self
    }

    /// The wireless link.
    pub fn link(mut self, link: LinkProfile) -> Self {
        self.link = Some(link);
        self
    }

    /// The edge server's compute profile.
    pub fn edge(mut self, profile: ComputeProfile) -> Self {
        self.edge = Some(profile);
        self
    }

    /// Names of the device, link and edge profiles, recorded in the plan.
    pub fn profile_names(mut self, device: &str, link: &str, edge: &str) -> Self {
        self.names = [device.into(), link.into(), edge.into()];
        self
    }

    /// The reward (default: `-error · ln T`).
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

    /// Checks everything and builds the search.
    pub fn build(self) -> Result<CoInference, AutomlError> {
        let model = self.model.ok_or(AutomlError::Missing("model"))?;
        let data = self.data.ok_or(AutomlError::Missing("data"))?;
        let device = self.device.ok_or(AutomlError::Missing("device"))?;
        let link = self.link.ok_or(AutomlError::Missing("link"))?;
        let edge = self.edge.ok_or(AutomlError::Missing("edge"))?;
        self.config.validate()?;
        self.reward.validate()?;
        model.spec().validate()?;
        let latency = LatencyModel::new(device, link, edge)?;
        let norm = self
            .normalization
            .unwrap_or_else(|| Normalization::fit(&data.train));
        if data.train.len() <= self.config.validation_images {
            return Err(AutomlError::InvalidConfig {
                field: "validation_images",
                reason: format!(
                    "{} validation images leave nothing of a {}-image training set",
                    self.config.validation_images,
                    data.train.len()
                ),
            });
        }
        Ok(CoInference {
            model: model.valid(),
            data,
            norm,
            latency,
            reward: self.reward,
            config: self.config,
            backend: self.backend.unwrap_or_else(Device::flex),
            names: self.names,
        })
    }
}

/// A configured co-inference search.
///
/// A small, complete run (random backbone, fixed codecs, a handful of episodes — a real search
/// uses a trained backbone, the default [`SearchConfig`] and a few hundred episodes):
///
/// ```
/// use coinfer_automl::codecs::CodecSetup;
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CoInference {
    model: Network,
    data: TrainTest,
    norm: Normalization,
    latency: LatencyModel,
    reward: Reward,
    config: SearchConfig,
    backend: Device,
    names: [String; 3],
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The best plan (fine-tuned, with test accuracy).
    pub plan: SplitPlan,
    /// Every DDPG episode.
    pub episodes: Vec<EpisodeRecord>,
    /// Distinct plans the agent evaluated.
    pub evaluations: usize,
    /// Every distinct plan evaluated by anyone in the session (for the accuracy–latency
    /// scatter).
    pub evaluated: Vec<Evaluation>,
    /// Baselines, when they were run.
    pub baselines: Vec<BaselineResult>,
    /// Validation accuracy of the unpruned backbone.
    pub backbone_accuracy: f32,
    /// Test accuracy of the unpruned backbone.
    pub backbone_test_accuracy: f32,
    /// Wall time of the search, seconds.
    pub seconds: f64,
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

    /// Builds the codec families (training the autoencoders) and the plan evaluator.
    pub fn prepare(
        &self,
        progress: impl FnMut(&CodecProgress),
    ) -> Result<SearchSession<'_>, AutomlError> {
        let (train, validation) = self.validation_split()?;
        let spec = self.model.spec().clone();
        let splits: Vec<usize> = spec
            .shapes()?
            .iter()
            .take(spec.blocks.len())
            .take_while(|s| !s.flat)
            .enumerate()
            .map(|(i, _)| i)
            .collect();
        let (families, bank) = build_codecs(
            &self.model,
            &splits,
            &train,
            &self.norm,
            &self.config.codecs,
            &self.backend,
            progress,
        )?;
        let mut families = families.into_iter();
        let space = SearchSpace::new(&spec, self.config.max_prune, |_, _| {
            families.next().ok_or_else(|| AutomlError::InvalidConfig {
                field: "codecs",
                reason: "fewer codec families than split candidates".into(),
            })
        })?;
        let validation = ValidationSet::new(&validation, &self.norm, 250, &self.backend)?;
        let evaluator = PlanEvaluator::new(
            self.model.clone(),
            space,
            bank,
            self.latency.clone(),
            validation,
        )?;
        Ok(SearchSession {
            search: self,
            evaluator,
            train,
        })
    }

    fn validation_split(&self) -> Result<(ImageDataset, ImageDataset), AutomlError> {
        split_validation(
            &self.data.train,
            self.config.validation_images,
            self.config.seed,
        )
    }

    /// The whole search with defaults: prepare, run DDPG, fine-tune the best plan.
    pub fn search(&self) -> Result<SearchReport, AutomlError> {
        let mut session = self.prepare(|_| {})?;
        let run = session.run_ddpg(None, |_| {})?;
        session.report(run, Vec::new(), None)
    }
}

/// A prepared search: codecs trained, evaluator ready.
pub struct SearchSession<'a> {
    search: &'a CoInference,
    evaluator: PlanEvaluator,
    train: ImageDataset,
}

/// The outcome of the agent's episodes.
#[derive(Debug, Clone)]
pub struct DdpgRun {
    /// Every episode, in order.
    pub records: Vec<EpisodeRecord>,
    /// Distinct plans the agent evaluated.
    pub evaluations: usize,
}

impl DdpgRun {
    /// The episode with the highest reward.
    pub fn best(&self) -> Option<&EpisodeRecord> {
        self.records
            .iter()
            .max_by(|a, b| a.reward.total_cmp(&b.reward))
    }
}

const RECORDS_FILE: &str = "episodes.json";
const AGENT_DIR: &str = "agent";

impl SearchSession<'_> {
    /// The plan evaluator (space, cache, latency model).
    pub fn evaluator(&mut self) -> &mut PlanEvaluator {
        &mut self.evaluator
    }

    /// Runs the DDPG agent for the configured number of episodes.
    ///
    /// With `checkpoint = Some(dir)` the agent and every finished episode are saved to `dir`
    /// every 10 episodes and at the end, and a search started on a `dir` that holds a
    /// checkpoint resumes from it: nothing already evaluated is lost or re-run.
    pub fn run_ddpg(
        &mut self,
        checkpoint: Option<&Path>,
        mut on_episode: impl FnMut(&EpisodeRecord),
    ) -> Result<DdpgRun, AutomlError> {
        let config = &self.search.config;
        self.evaluator.begin_session();
        let device = &self.search.backend;
        let (mut agent, mut previous) = match checkpoint {
            Some(dir) if dir.join(AGENT_DIR).exists() => resume(dir, device)?,
            _ => (
                Ddpg::new(config.ddpg.clone(), crate::env::STATE_DIM, device)?,
                Vec::new(),
            ),
        };
        previous.truncate(agent.episodes_done());
        self.evaluator
            .restore(previous.iter().map(|r| r.evaluation.clone()))?;
        for record in &previous {
            // Re-charge the session for plans evaluated before the interruption.
            self.evaluator.charge(&record.decision)?;
        }
        let mut env =
            CoInferenceEnv::with_records(&mut self.evaluator, self.search.reward, previous)?;
        while agent.episodes_done() < config.episodes {
            agent.run_episode(&mut env)?;
            let record = env.records().last().expect("an episode just finished");
            on_episode(record);
            let done = agent.episodes_done();
            if let Some(dir) = checkpoint
                && (done % 10 == 0 || done == config.episodes)
            {
                save_records(dir, env.records())?;
                agent.save_checkpoint(dir.join(AGENT_DIR))?;
            }
        }
        let evaluations = env.evaluations();
        Ok(DdpgRun {
            records: env.into_records(),
            evaluations,
        })
    }

    /// Runs the baselines on the same evaluator and reward: device-only, edge-only,
    /// split-only, uniform grid, random search with `random_budget` evaluations (mean over
    /// `seeds`), and — when `exhaustive_levels > 0` — the exhaustive grid.
    pub fn baselines(
        &mut self,
        grid_levels: usize,
        random_budget: usize,
        seeds: &[u64],
        exhaustive_levels: usize,
    ) -> Result<Vec<BaselineResult>, AutomlError> {
        let reward = self.search.reward;
        let ev = &mut self.evaluator;
        let mut results = vec![
            baselines::device_only(ev, &reward)?,
            baselines::edge_only(ev, &reward)?,
            baselines::split_only(ev, &reward)?,
            baselines::uniform_grid(ev, &reward, grid_levels)?,
        ];
        for &seed in seeds {
            let mut random =
                baselines::random_search(ev, &reward, random_budget, random_budget * 20, seed)?;
            random.name = format!("random (seed {seed})");
            results.push(random);
        }
        if exhaustive_levels > 0 {
            results.push(baselines::exhaustive_grid(ev, &reward, exhaustive_levels)?);
        }
        Ok(results)
    }

    /// Fine-tunes the best plan of `run`, measures its test accuracy with the real codec,
    /// exports it to `out` (when given) and assembles the report.
    pub fn report(
        &mut self,
        run: DdpgRun,
        baselines: Vec<BaselineResult>,
        out: Option<&Path>,
    ) -> Result<SearchReport, AutomlError> {
        let start = Instant::now();
        let best = run
            .best()
            .ok_or_else(|| AutomlError::InvalidConfig {
                field: "episodes",
                reason: "the search ran no episode".into(),
            })?
            .clone();
        let plan = self.finalize(&best.decision, best.reward, out, |_, _, _| {})?;
        let search = self.search;
        let norm = &search.norm;
        let backbone_test_accuracy = coinfer_split::train::evaluate(
            &search.model,
            &search.data.test,
            norm,
            250,
            &search.backend,
        )?;
        Ok(SearchReport {
            plan,
            episodes: run.records,
            evaluations: run.evaluations,
            evaluated: self.evaluator.evaluated().into_iter().cloned().collect(),
            baselines,
            backbone_accuracy: self.evaluator.backbone_accuracy()?,
            backbone_test_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Fine-tunes a decision's device half (and autoencoder), measures test accuracy with the
    /// real codec, and, with `out`, saves device half, edge half, codec and `plan.json` there.
    pub fn finalize(
        &mut self,
        decision: &Decision,
        reward: f32,
        out: Option<&Path>,
        progress: impl FnMut(usize, usize, f32),
    ) -> Result<SplitPlan, AutomlError> {
        let search = self.search;
        let evaluation = self.evaluator.evaluate(decision)?;
        let pruned = self.evaluator.pruned_network(decision)?;
        let candidate = &self.evaluator.space().candidates[decision.candidate];
        let split = candidate.split;
        let pruned_blocks: Vec<usize> = candidate.prunable.iter().map(|l| l.block).collect();
        let autoencoder = self
            .evaluator
            .bank()
            .codec(decision.candidate, decision.codec)
            .and_then(|c| c.autoencoder().cloned());
        let (device_half, tuned_ae) = fine_tune(
            &pruned,
            split,
            evaluation.codec,
            autoencoder.as_ref(),
            &self.train,
            &search.norm,
            &search.config.finetune,
            &search.backend,
            progress,
        )?;
        let (_, edge_half) = pruned.split(split)?;
        let codec: SharedCodec = match (&tuned_ae, evaluation.codec) {
            (Some(ae), _) => Arc::new(ae.clone()),
            (None, id) => coinfer_codec::fixed_codec(id)?,
        };
        let test_accuracy = evaluate_with(
            &device_half,
            &search.data.test,
            &search.norm,
            250,
            &search.backend,
            |device_half, images| {
                let feature = device_half.forward(images)?;
                let received = codec
                    .roundtrip(feature)
                    .map_err(|e| coinfer_split::SplitError::Readback(e.to_string()))?;
                edge_half.logits(received)
            },
        )?;
        let mut plan = SplitPlan {
            model: search.model.spec().name.clone(),
            backbone_digest: search.model.digest(),
            split,
            pruned_blocks,
            prune_ratios: evaluation.prune_ratios.clone(),
            kept_channels: evaluation.kept.clone(),
            codec: evaluation.codec,
            payload_bits: evaluation.payload_bits,
            search_accuracy: evaluation.accuracy,
            test_accuracy: Some(test_accuracy),
            predicted: evaluation.latency,
            reward,
            profiles: search.names.clone(),
            normalization: search.norm.clone(),
            artifacts: None,
        };
        if let Some(out) = out {
            std::fs::create_dir_all(out).map_err(AutomlError::io(out))?;
            device_half.save(out.join("device.cfnet"))?;
            edge_half.save(out.join("edge.cfnet"))?;
            let codec_file = match &tuned_ae {
                Some(ae) => {
                    ae.save(&out.join("codec.bpk"))?;
                    Some("codec.bpk".to_string())
                }
                None => None,
            };
            plan.artifacts = Some(PlanArtifacts {
                device: "device.cfnet".into(),
                edge: "edge.cfnet".into(),
                codec: codec_file,
                device_digest: device_half.digest(),
                edge_digest: edge_half.digest(),
            });
            plan.save(out.join("plan.json"))?;
        }
        Ok(plan)
    }

    /// Test accuracy of any evaluated decision without fine-tuning (for baselines).
    pub fn test_accuracy(&mut self, decision: &Decision) -> Result<f32, AutomlError> {
        let search = self.search;
        let pruned = self.evaluator.pruned_network(decision)?;
        let split = self.evaluator.space().candidates[decision.candidate].split;
        let codec = self
            .evaluator
            .bank()
            .codec(decision.candidate, decision.codec)
            .ok_or_else(|| AutomlError::InvalidDecision("no such codec".into()))?
            .codec();
        let (device_half, edge_half) = pruned.split(split)?;
        Ok(evaluate_with(
            &device_half,
            &search.data.test,
            &search.norm,
            250,
            &search.backend,
            |d, images| {
                let received = codec
                    .roundtrip(d.forward(images)?)
                    .map_err(|e| coinfer_split::SplitError::Readback(e.to_string()))?;
                edge_half.logits(received)
            },
        )?)
    }
}

fn save_records(dir: &Path, records: &[EpisodeRecord]) -> Result<(), AutomlError> {
    std::fs::create_dir_all(dir).map_err(AutomlError::io(dir))?;
    let path = dir.join(RECORDS_FILE);
    let tmp = path.with_extension("partial");
    let json = serde_json::to_vec(records).map_err(|e| AutomlError::Json {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, json).map_err(AutomlError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(AutomlError::io(&path))
}

fn resume(dir: &Path, device: &Device) -> Result<(Ddpg, Vec<EpisodeRecord>), AutomlError> {
    let agent = Ddpg::resume(dir.join(AGENT_DIR), device)?;
    let path: PathBuf = dir.join(RECORDS_FILE);
    let records = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AutomlError::Json {
            path: path.clone(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(AutomlError::Io { path, source }),
    };
    Ok((agent, records))
}
