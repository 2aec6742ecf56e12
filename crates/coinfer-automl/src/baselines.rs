//! Simpler searches on the same evaluator and reward, to measure what the DDPG agent adds.
//!
//! [`Baseline`] is the one list of them: the session runs [`Baseline::ALL`] in order, the
//! report and the CLI's plots read a result's [`Baseline`] (never its name). Adding a baseline
//! is a variant here (name, description, how it runs) plus its test.

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

/// Every baseline search, in the order the session runs and reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The whole unpruned backbone on the device.
    DeviceOnly,
    /// The 8-bit input uploaded, everything on the edge.
    EdgeOnly,
    /// The best split with no pruning, float32 or 8-bit feature (Neurosurgeon).
    SplitOnly,
    /// One pruning ratio for every layer from a grid, every split and codec.
    UniformGrid,
    /// Random actions through the agent's environment, one run per seed.
    Random,
    /// Every per-layer ratio combination of a grid (when its levels are > 0).
    ExhaustiveGrid,
}

/// The knobs of the baselines that have any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineSettings {
    /// Levels of the uniform grid.
    pub grid_levels: usize,
    /// Distinct plans each random run may evaluate.
    pub random_budget: usize,
    /// One random run per seed.
    pub seeds: Vec<u64>,
    /// Levels of the exhaustive grid; 0 skips it.
    pub exhaustive_levels: usize,
}

impl Baseline {
    /// Every baseline, in run and report order.
    pub const ALL: [Baseline; 6] = [
        Baseline::DeviceOnly,
        Baseline::EdgeOnly,
        Baseline::SplitOnly,
        Baseline::UniformGrid,
        Baseline::Random,
        Baseline::ExhaustiveGrid,
    ];

    /// Short name, as in reports (`edge-only`).
    pub fn name(self) -> &'static str {
        match self {
            Baseline::DeviceOnly => "device-only",
            Baseline::EdgeOnly => "edge-only",
            Baseline::SplitOnly => "split-only",
            Baseline::UniformGrid => "uniform-grid",
            Baseline::Random => "random",
            Baseline::ExhaustiveGrid => "exhaustive-grid",
        }
    }

    /// One line on what it does.
    pub fn description(self) -> &'static str {
        match self {
            Baseline::DeviceOnly => "the whole unpruned backbone on the device; nothing is sent",
            Baseline::EdgeOnly => {
                "the raw input, 8-bit quantized, uploaded; the edge runs everything"
            }
            Baseline::SplitOnly => {
                "the best split point, no pruning, the feature in float32 or 8-bit (Neurosurgeon)"
            }
            Baseline::UniformGrid => {
                "one pruning ratio for all layers from a grid, every split and codec"
            }
            Baseline::Random => "uniform random actions through the agent's environment and budget",
            Baseline::ExhaustiveGrid => {
                "every per-layer combination of a ratio grid, every split and codec (reference optimum)"
            }
        }
    }

    /// Whether it runs more than once (one result per seed).
    pub fn per_seed(self) -> bool {
        self == Baseline::Random
    }

    /// Runs it on `evaluator` under `reward`: one result, one per seed, or none (an exhaustive
    /// grid of 0 levels).
    ///
    /// # Errors
    /// As the baseline's function ([`device_only`], [`edge_only`], ...).
    pub fn run(
        self,
        evaluator: &mut PlanEvaluator,
        reward: &Reward,
        settings: &BaselineSettings,
    ) -> Result<Vec<BaselineResult>, AutomlError> {
        Ok(match self {
            Baseline::DeviceOnly => vec![device_only(evaluator, reward)?],
            Baseline::EdgeOnly => vec![edge_only(evaluator, reward)?],
            Baseline::SplitOnly => vec![split_only(evaluator, reward)?],
            Baseline::UniformGrid => vec![uniform_grid(evaluator, reward, settings.grid_levels)?],
            Baseline::Random => {
                let budget = settings.random_budget;
                let mut runs = Vec::with_capacity(settings.seeds.len());
                for &seed in &settings.seeds {
                    runs.push(random_search(evaluator, reward, budget, budget * 20, seed)?);
                }
                runs
            }
            Baseline::ExhaustiveGrid if settings.exhaustive_levels == 0 => Vec::new(),
            Baseline::ExhaustiveGrid => {
                vec![exhaustive_grid(
                    evaluator,
                    reward,
                    settings.exhaustive_levels,
                )?]
            }
        })
    }

    /// The baseline a report line names (`random (seed 3)` is [`Baseline::Random`]): for
    /// reports written before results recorded their [`Baseline`].
    pub fn from_name(name: &str) -> Option<Baseline> {
        Baseline::ALL
            .into_iter()
            .find(|b| name == b.name() || (b.per_seed() && name.starts_with(b.name())))
    }
}

/// The best plan one search method found, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Which baseline (absent in reports written before it was recorded: see
    /// [`kind`](Self::kind)).
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// The seed of a per-seed baseline's run.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Display name (`edge-only`, `random (seed 0)`, ...).
    pub name: String,
    /// Its best plan.
    pub best: Evaluation,
    /// That plan's reward.
    pub reward: f32,
    /// Distinct plans the method evaluated.
    pub evaluations: usize,
}

impl BaselineResult {
    fn new(baseline: Baseline, best: Evaluation, reward: f32, evaluations: usize) -> Self {
        BaselineResult {
            baseline: Some(baseline),
            seed: None,
            name: baseline.name().to_string(),
            best,
            reward,
            evaluations,
        }
    }

    /// Which baseline produced it.
    pub fn kind(&self) -> Option<Baseline> {
        self.baseline.or_else(|| Baseline::from_name(&self.name))
    }

    /// Whether a plot of single plans shows it: every baseline once (a per-seed baseline by
    /// its first run).
    pub fn plotted(&self, all: &[BaselineResult]) -> bool {
        match self.kind() {
            Some(kind) if kind.per_seed() => all
                .iter()
                .find(|r| r.kind() == Some(kind))
                .is_some_and(|first| std::ptr::eq(first, self)),
            _ => true,
        }
    }

    /// Whether it is one plan of a single-run baseline (per-seed runs are summarised in the
    /// search-methods table, not drawn as latency bars).
    pub fn single_run(&self) -> bool {
        self.kind().is_none_or(|kind| !kind.per_seed())
    }
}

fn best_of(
    baseline: Baseline,
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    decisions: impl IntoIterator<Item = Decision>,
) -> Result<BaselineResult, AutomlError> {
    evaluator.begin_session();
    let mut best: Option<(Evaluation, f32)> = None;
    for decision in decisions {
        let evaluation = evaluator.evaluate(&decision)?;
        let score = reward.score(evaluation.accuracy, evaluation.latency.total);
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((evaluation, score));
        }
    }
    let (best, reward) = best.ok_or_else(|| {
        AutomlError::InvalidDecision(format!(
            "the {} baseline has no plan to evaluate",
            baseline.name()
        ))
    })?;
    Ok(BaselineResult::new(
        baseline,
        best,
        reward,
        evaluator.session_evaluations(),
    ))
}

fn codec_index(evaluator: &PlanEvaluator, candidate: usize, id: CodecId) -> Option<usize> {
    evaluator.space().candidates[candidate]
        .family
        .entries
        .iter()
        .position(|e| e.id == id)
}

/// Device only: the whole unpruned backbone on the device; nothing is sent.
pub fn device_only(
    evaluator: &PlanEvaluator,
    reward: &Reward,
) -> Result<BaselineResult, AutomlError> {
    let best = evaluator.device_only()?;
    let score = reward.score(best.accuracy, best.latency.total);
    Ok(BaselineResult::new(Baseline::DeviceOnly, best, score, 1))
}

/// Edge only: the raw input, 8-bit quantized, is uploaded and the edge runs everything.
pub fn edge_only(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
) -> Result<BaselineResult, AutomlError> {
    let candidate = evaluator
        .space()
        .candidates
        .iter()
        .position(|c| c.split == 0)
        .ok_or_else(|| AutomlError::InvalidDecision("the space has no edge-only split".into()))?;
    let codec = codec_index(evaluator, candidate, CodecId::quant(8, false)).ok_or_else(|| {
        AutomlError::InvalidDecision("the raw input has no 8-bit quantizer in its family".into())
    })?;
    best_of(
        Baseline::EdgeOnly,
        evaluator,
        reward,
        [Decision {
            candidate,
            prune_ratios: Vec::new(),
            codec,
        }],
    )
}

/// Split only, à la Neurosurgeon: the best split point with no pruning and the feature sent
/// in float32 or 8-bit.
pub fn split_only(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
) -> Result<BaselineResult, AutomlError> {
    let mut decisions = Vec::new();
    for (candidate, cand) in evaluator.space().candidates.iter().enumerate() {
        for id in [CodecId::Float32, CodecId::quant(8, false)] {
            if let Some(codec) = codec_index(evaluator, candidate, id) {
                decisions.push(Decision {
                    candidate,
                    prune_ratios: vec![0.0; cand.prunable.len()],
                    codec,
                });
            }
        }
    }
    best_of(Baseline::SplitOnly, evaluator, reward, decisions)
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

/// Every split × every ratio vector `ratio_sets` gives for that split × every codec.
fn with_every_codec(
    evaluator: &PlanEvaluator,
    ratio_sets: impl Fn(&SplitCandidate) -> Vec<Vec<f32>>,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for (candidate, cand) in evaluator.space().candidates.iter().enumerate() {
        for prune_ratios in ratio_sets(cand) {
            decisions.extend((0..cand.family.len()).map(|codec| Decision {
                candidate,
                prune_ratios: prune_ratios.clone(),
                codec,
            }));
        }
    }
    decisions
}

/// One ratio for every prunable layer (from a grid of `levels`), every split, every codec.
pub fn uniform_grid(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    levels: usize,
) -> Result<BaselineResult, AutomlError> {
    let ratios = grid_levels(evaluator.space().max_prune, levels);
    let decisions = with_every_codec(evaluator, |cand| {
        let layers = cand.prunable.len();
        if layers == 0 {
            return vec![Vec::new()];
        }
        ratios.iter().map(|&r| vec![r; layers]).collect()
    });
    best_of(Baseline::UniformGrid, evaluator, reward, decisions)
}

/// Every combination of a per-layer ratio grid of `levels` levels, every split, every codec:
/// the reference optimum of the search-efficiency comparison.
pub fn exhaustive_grid(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    levels: usize,
) -> Result<BaselineResult, AutomlError> {
    let ratios = grid_levels(evaluator.space().max_prune, levels);
    let decisions = with_every_codec(evaluator, |cand| {
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
    });
    best_of(Baseline::ExhaustiveGrid, evaluator, reward, decisions)
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
        seed: Some(seed),
        name: format!("random (seed {seed})"),
        ..BaselineResult::new(Baseline::Random, best, reward, evaluations)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_has_a_unique_name_found_again_by_from_name() {
        let names: std::collections::HashSet<&str> =
            Baseline::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), Baseline::ALL.len());
        for b in Baseline::ALL {
            assert_eq!(Baseline::from_name(b.name()), Some(b));
            assert!(!b.description().is_empty());
        }
        assert_eq!(
            Baseline::from_name("random (seed 3)"),
            Some(Baseline::Random)
        );
        assert_eq!(Baseline::from_name("split-only-ish"), None);
    }

    #[test]
    fn old_reports_without_the_baseline_field_still_load() {
        let json = r#"{"name":"random (seed 1)","reward":0.5,"evaluations":3,
            "best":{"split":0,"prune_ratios":[],"kept":[],"codec":{"kind":"float32"},
            "payload_bits":0,"accuracy":0.5,"latency":{"device":0,"encode":0,"transmit":0,
            "rtt":0,"decode":0,"edge":0,"total":0},"device_flops":0}}"#;
        let old: BaselineResult = serde_json::from_str(json).unwrap();
        assert_eq!(old.baseline, None);
        assert_eq!(old.kind(), Some(Baseline::Random));
        assert!(!old.single_run());
    }
}
