//! The baselines the search is measured against, named as the literature names them, in one
//! registry ([`Baseline::ALL`]) that the session, the report, the sweep and the plots all read.
//!
//! Every baseline runs on the same evaluator and reward as the agent and returns the best plan
//! it found under that reward. Adding a baseline: a variant, its name and description, and its
//! arm in [`Baseline::run`] — nothing else reads baseline names.

use coinfer_agent::Environment;
use coinfer_codec::CodecId;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::env::CoInferenceEnv;
use crate::evaluator::{Evaluation, PlanEvaluator};
use crate::reward::Reward;
use crate::space::{Decision, SplitCandidate};

/// A baseline search method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The whole unpruned backbone on the device; nothing is sent.
    DeviceOnly,
    /// The raw 8-bit image is uploaded and the edge runs everything.
    EdgeOnlyRaw,
    /// The image is uploaded uniformly quantized, with the best bit width the family offers
    /// (rANS entropy coding included).
    EdgeOnlyQuantized,
    /// The image is uploaded as a user would send it — PNG, JPEG or WebP, whichever of the
    /// family's qualities scores best.
    EdgeOnlyImage,
    /// Neurosurgeon (Kang et al. 2017): the best split point, no pruning, the feature sent as
    /// float32 (the raw 8-bit image at split 0; device-only is one of its split points).
    Neurosurgeon,
    /// The best split point with one uniform pruning ratio (grid) and the feature in float32.
    PruningOnly,
    /// The best split point and codec, no pruning.
    CompressionOnly,
    /// One uniform ratio (grid) × every split × every codec.
    UniformGrid,
    /// Uniform random actions through the agent's environment, with the agent's budget of
    /// distinct evaluations.
    Random,
    /// Every combination of a coarse per-layer ratio grid × every split × every codec: the
    /// reference optimum of the search-efficiency comparison.
    ExhaustiveGrid,
}

impl Baseline {
    /// Every baseline, in report order.
    pub const ALL: [Baseline; 10] = [
        Baseline::DeviceOnly,
        Baseline::EdgeOnlyRaw,
        Baseline::EdgeOnlyQuantized,
        Baseline::EdgeOnlyImage,
        Baseline::Neurosurgeon,
        Baseline::PruningOnly,
        Baseline::CompressionOnly,
        Baseline::UniformGrid,
        Baseline::Random,
        Baseline::ExhaustiveGrid,
    ];

    /// The name used in reports, JSON and plots (`device-only`, `edge-only-raw`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Baseline::DeviceOnly => "device-only",
            Baseline::EdgeOnlyRaw => "edge-only-raw",
            Baseline::EdgeOnlyQuantized => "edge-only-quantized",
            Baseline::EdgeOnlyImage => "edge-only-image",
            Baseline::Neurosurgeon => "neurosurgeon",
            Baseline::PruningOnly => "pruning-only",
            Baseline::CompressionOnly => "compression-only",
            Baseline::UniformGrid => "uniform-grid",
            Baseline::Random => "random",
            Baseline::ExhaustiveGrid => "exhaustive-grid",
        }
    }

    /// The baseline called `name`.
    pub fn from_name(name: &str) -> Option<Baseline> {
        Baseline::ALL.into_iter().find(|b| b.name() == name)
    }

    /// One line on what the baseline does, for reports.
    pub fn description(self) -> &'static str {
        match self {
            Baseline::DeviceOnly => "whole unpruned backbone on the device, nothing sent",
            Baseline::EdgeOnlyRaw => "raw 8-bit image uploaded, edge runs everything",
            Baseline::EdgeOnlyQuantized => "image uploaded with the best uniform quantizer",
            Baseline::EdgeOnlyImage => "image uploaded as the best PNG, JPEG or WebP",
            Baseline::Neurosurgeon => "best split, no pruning, float32 feature",
            Baseline::PruningOnly => "best split, uniform pruning, float32 feature",
            Baseline::CompressionOnly => "best split and codec, no pruning",
            Baseline::UniformGrid => "uniform ratio grid × every split × every codec",
            Baseline::Random => "random actions, the agent's evaluation budget",
            Baseline::ExhaustiveGrid => "coarse per-layer grid × every split × every codec",
        }
    }

    /// Whether the baseline is one fixed plan (no search): what a user gets without coinfer.
    pub fn is_fixed_plan(self) -> bool {
        matches!(self, Baseline::DeviceOnly | Baseline::EdgeOnlyRaw)
    }

    /// Whether the baseline sends the whole input to the edge (any input codec): what a user
    /// who does not split the network deploys.
    pub fn is_edge_only(self) -> bool {
        matches!(
            self,
            Baseline::EdgeOnlyRaw | Baseline::EdgeOnlyQuantized | Baseline::EdgeOnlyImage
        )
    }

    /// Runs the baseline on `evaluator` under `reward`.
    pub fn run(
        self,
        evaluator: &mut PlanEvaluator,
        reward: &Reward,
        settings: &BaselineSettings,
    ) -> Result<BaselineResult, AutomlError> {
        let name = self.name();
        match self {
            Baseline::DeviceOnly => device_only(evaluator, reward),
            Baseline::EdgeOnlyRaw => {
                let decisions = input_codecs(evaluator, |id| id == CodecId::quant(8, false))?;
                best_of(name, evaluator, reward, decisions)
            }
            Baseline::EdgeOnlyQuantized => {
                let decisions = input_codecs(evaluator, |id| !id.is_image())?;
                best_of(name, evaluator, reward, decisions)
            }
            Baseline::EdgeOnlyImage => {
                let decisions = input_codecs(evaluator, |id| id.is_image())?;
                best_of(name, evaluator, reward, decisions)
            }
            Baseline::Neurosurgeon => {
                let decisions = unpruned(evaluator, uncompressed);
                with_device_only(
                    best_of(name, evaluator, reward, decisions)?,
                    evaluator,
                    reward,
                )
            }
            Baseline::PruningOnly => {
                let ratios = grid_levels(evaluator.space().max_prune, settings.grid_levels);
                let decisions = uniform_ratios(evaluator, &ratios, uncompressed);
                with_device_only(
                    best_of(name, evaluator, reward, decisions)?,
                    evaluator,
                    reward,
                )
            }
            Baseline::CompressionOnly => {
                let decisions = unpruned(evaluator, |_, _| true);
                with_device_only(
                    best_of(name, evaluator, reward, decisions)?,
                    evaluator,
                    reward,
                )
            }
            Baseline::UniformGrid => {
                let ratios = grid_levels(evaluator.space().max_prune, settings.grid_levels);
                let decisions = uniform_ratios(evaluator, &ratios, |_, _| true);
                best_of(name, evaluator, reward, decisions)
            }
            Baseline::Random => random_search(
                evaluator,
                reward,
                settings.random_budget.max(1),
                settings.random_budget.max(1) * 20,
                settings.random_seed,
            ),
            Baseline::ExhaustiveGrid => {
                exhaustive_grid(evaluator, reward, settings.exhaustive_levels)
            }
        }
    }
}

/// The knobs of the searching baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSettings {
    /// Levels of the uniform ratio grid (pruning-only, uniform grid); 4 by default.
    pub grid_levels: usize,
    /// Levels per layer of the exhaustive grid (its size grows as `levels^layers`); 2 by
    /// default.
    pub exhaustive_levels: usize,
    /// Distinct evaluations random search may spend (the agent's, for a fair comparison).
    pub random_budget: usize,
    /// Seed of random search.
    pub random_seed: u64,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            grid_levels: 4,
            exhaustive_levels: 2,
            random_budget: 64,
            random_seed: 0,
        }
    }
}

/// The best plan one search method found, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Method name ([`Baseline::name`]).
    pub name: String,
    /// Its best plan.
    pub best: Evaluation,
    /// That plan's reward.
    pub reward: f32,
    /// Distinct plans the method evaluated.
    pub evaluations: usize,
}

fn best_of(
    name: &str,
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    decisions: impl IntoIterator<Item = Decision>,
) -> Result<BaselineResult, AutomlError> {
    evaluator.begin_session();
    let decisions: Vec<Decision> = decisions.into_iter().collect();
    let mut best: Option<(Evaluation, f32)> = None;
    for evaluation in evaluator.evaluate_all(&decisions)? {
        let score = reward.score(&evaluation);
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((evaluation, score));
        }
    }
    let (best, reward) = best.ok_or_else(|| {
        AutomlError::InvalidDecision(format!("the {name} baseline has no plan to evaluate"))
    })?;
    Ok(BaselineResult {
        name: name.to_string(),
        best,
        reward,
        evaluations: evaluator.session_evaluations(),
    })
}

/// `result`, or device-only when that scores higher (split point L is one of the choices).
fn with_device_only(
    mut result: BaselineResult,
    evaluator: &PlanEvaluator,
    reward: &Reward,
) -> Result<BaselineResult, AutomlError> {
    let device = device_only(evaluator, reward)?;
    result.evaluations += 1;
    if device.reward > result.reward {
        result.best = device.best;
        result.reward = device.reward;
    }
    Ok(result)
}

/// Whether `id` sends the feature at `split` uncompressed: the raw 8-bit image at the input,
/// float32 elsewhere (what Neurosurgeon and pruning-only send).
fn uncompressed(split: usize, id: CodecId) -> bool {
    id == if split == 0 {
        CodecId::quant(8, false)
    } else {
        CodecId::Float32
    }
}

/// Split 0 with every input codec `keep` accepts.
pub(crate) fn input_codecs(
    evaluator: &PlanEvaluator,
    keep: impl Fn(CodecId) -> bool,
) -> Result<Vec<Decision>, AutomlError> {
    let candidate = evaluator
        .space()
        .candidates
        .iter()
        .position(|c| c.split == 0)
        .ok_or_else(|| AutomlError::InvalidDecision("the space has no edge-only split".into()))?;
    let decisions: Vec<Decision> = evaluator.space().candidates[candidate]
        .family
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e.id))
        .map(|(codec, _)| Decision {
            candidate,
            prune_ratios: Vec::new(),
            codec,
        })
        .collect();
    if decisions.is_empty() {
        return Err(AutomlError::InvalidDecision(
            "the raw input's codec family has no codec this baseline needs (the 8-bit \
             quantizer for edge-only-raw, an image codec for edge-only-image)"
                .into(),
        ));
    }
    Ok(decisions)
}

/// Every split × every codec `keep(split, codec)` accepts, no pruning.
fn unpruned(evaluator: &PlanEvaluator, keep: impl Fn(usize, CodecId) -> bool) -> Vec<Decision> {
    uniform_ratios(evaluator, &[0.0], keep)
}

/// Every split × one uniform ratio of `ratios` × every codec `keep(split, codec)` accepts.
fn uniform_ratios(
    evaluator: &PlanEvaluator,
    ratios: &[f32],
    keep: impl Fn(usize, CodecId) -> bool,
) -> Vec<Decision> {
    with_codecs(
        evaluator,
        |cand| {
            let layers = cand.prunable.len();
            if layers == 0 {
                return vec![Vec::new()];
            }
            ratios.iter().map(|&r| vec![r; layers]).collect()
        },
        keep,
    )
}

/// Ratios `0, max/(levels-1), ..., max` of a grid with `levels` levels.
fn grid_levels(max_prune: f32, levels: usize) -> Vec<f32> {
    if levels <= 1 {
        return vec![0.0];
    }
    (0..levels)
        .map(|i| max_prune * i as f32 / (levels - 1) as f32)
        .collect()
}

/// Every split × every ratio vector `ratio_sets` gives for that split × every codec `keep`
/// accepts.
fn with_codecs(
    evaluator: &PlanEvaluator,
    ratio_sets: impl Fn(&SplitCandidate) -> Vec<Vec<f32>>,
    keep: impl Fn(usize, CodecId) -> bool,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for (candidate, cand) in evaluator.space().candidates.iter().enumerate() {
        for prune_ratios in ratio_sets(cand) {
            decisions.extend(
                cand.family
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| keep(cand.split, e.id))
                    .map(|(codec, _)| Decision {
                        candidate,
                        prune_ratios: prune_ratios.clone(),
                        codec,
                    }),
            );
        }
    }
    decisions
}

/// Device only: the whole unpruned backbone on the device; nothing is sent.
pub fn device_only(
    evaluator: &PlanEvaluator,
    reward: &Reward,
) -> Result<BaselineResult, AutomlError> {
    let best = evaluator.device_only()?;
    Ok(BaselineResult {
        name: Baseline::DeviceOnly.name().into(),
        reward: reward.score(&best),
        best,
        evaluations: 1,
    })
}

/// Every combination of a per-layer ratio grid of `levels` levels, every split, every codec:
/// the reference optimum of the search-efficiency comparison.
pub fn exhaustive_grid(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    levels: usize,
) -> Result<BaselineResult, AutomlError> {
    let ratios = grid_levels(evaluator.space().max_prune, levels);
    let decisions = with_codecs(
        evaluator,
        |cand| {
            let layers = cand.prunable.len();
            (0..ratios.len().pow(layers as u32))
                .map(|combo| {
                    let mut rest = combo;
                    (0..layers)
                        .map(|_| {
                            let r = ratios[rest % ratios.len()];
                            rest /= ratios.len();
                            r
                        })
                        .collect()
                })
                .collect()
        },
        |_, _| true,
    );
    best_of(
        Baseline::ExhaustiveGrid.name(),
        evaluator,
        reward,
        decisions,
    )
}

/// Random search: uniform random actions through the same environment (same action mapping
/// and budget clipping as the agent) until `budget` distinct plans were evaluated or
/// `max_episodes` episodes ran.
pub fn random_search(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    budget: usize,
    max_episodes: usize,
    seed: u64,
) -> Result<BaselineResult, AutomlError> {
    evaluator.begin_session();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut env = CoInferenceEnv::new(evaluator, *reward)?;
    let mut best: Option<(Evaluation, f32)> = None;
    for _ in 0..max_episodes {
        env.reset()?;
        loop {
            let step = env.step(rng.random::<f32>())?;
            if step.done {
                break;
            }
        }
        let record = env.records().last().expect("an episode just finished");
        if best.as_ref().is_none_or(|(_, b)| record.reward > *b) {
            best = Some((record.evaluation.clone(), record.reward));
        }
        if env.evaluations() >= budget {
            break;
        }
    }
    let evaluations = env.evaluations();
    let (best, reward) = best.ok_or_else(|| AutomlError::InvalidConfig {
        field: "random.max_episodes",
        reason: "must be at least 1".into(),
    })?;
    Ok(BaselineResult {
        name: Baseline::Random.name().into(),
        best,
        reward,
        evaluations,
    })
}
