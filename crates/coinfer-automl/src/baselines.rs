//! Simpler searches on the same evaluator and reward, to measure what the DDPG agent adds.

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

/// The best plan one search method found, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Method name (`edge-only`, `random`, ...).
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
    let mut best: Option<(Evaluation, f32)> = None;
    for decision in decisions {
        let evaluation = evaluator.evaluate(&decision)?;
        let score = reward.score(evaluation.accuracy, evaluation.latency.total);
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
    Ok(BaselineResult {
        name: "device-only".into(),
        reward: reward.score(best.accuracy, best.latency.total),
        best,
        evaluations: 1,
    })
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
        "edge-only",
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
    best_of("split-only", evaluator, reward, decisions)
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
    best_of("uniform-grid", evaluator, reward, decisions)
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
    best_of("exhaustive-grid", evaluator, reward, decisions)
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
        name: "random".into(),
        best,
        reward,
        evaluations,
    })
}
