//! The co-inference search as a sequential decision problem for the DDPG agent.
//!
//! An episode decides, one step each: the split point, then the pruning ratio of every
//! prunable device layer (in block order), then the codec. Each step sees a normalised state
//! describing what is being decided (design §1); the reward arrives at the last step.

use coinfer_agent::{Environment, Step};
use coinfer_profile::NetCost;
use coinfer_split::BlockSpec;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::{Evaluation, PlanEvaluator};
use crate::reward::Reward;
use crate::space::{Decision, SearchSpace};

/// Length of the state vector.
pub const STATE_DIM: usize = 13;

/// One finished episode: what was decided and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Episode number (0-based).
    pub episode: usize,
    /// The decision after budget clipping.
    pub decision: Decision,
    /// Its evaluation.
    pub evaluation: Evaluation,
    /// Its reward.
    pub reward: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Split,
    Prune(usize),
    Codec,
}

/// The environment: owns nothing but a mutable borrow of the evaluator (whose cache it fills).
pub struct CoInferenceEnv<'a> {
    evaluator: &'a mut PlanEvaluator,
    reward: Reward,
    phase: Phase,
    decision: Decision,
    previous_action: f32,
    records: Vec<EpisodeRecord>,
    /// Per-block FLOPs of the unpruned backbone and their total.
    block_flops: Vec<u64>,
    total_flops: f64,
    max_channels: f64,
    input_pixels: f64,
    link_feature: f32,
}

impl<'a> CoInferenceEnv<'a> {
    /// An environment over `evaluator`'s space, scoring plans with `reward`.
    pub fn new(evaluator: &'a mut PlanEvaluator, reward: Reward) -> Result<Self, AutomlError> {
        reward.check()?;
        CoInferenceEnv::with_checked_reward(evaluator, reward)
    }

    /// [`new`](Self::new) with a reward the builder has checked.
    pub(crate) fn with_checked_reward(
        evaluator: &'a mut PlanEvaluator,
        reward: Reward,
    ) -> Result<Self, AutomlError> {
        let spec = evaluator.backbone().spec().clone();
        let cost = NetCost::of(&spec)?;
        let block_flops: Vec<u64> = cost.blocks.iter().map(|b| b.flops).collect();
        let total_flops = block_flops.iter().sum::<u64>().max(1) as f64;
        let shapes = spec.shapes()?;
        let max_channels = shapes.iter().map(|s| s.channels).max().unwrap_or(1) as f64;
        let input_pixels = (spec.input.height * spec.input.width) as f64;
        // log10 of the link rate over 1 kbit/s .. 10 Gbit/s, in [0, 1].
        let rate = evaluator.latency_model().link().rate_bps.max(1.0);
        let link_feature = ((rate.log10() - 3.0) / 7.0).clamp(0.0, 1.0) as f32;
        Ok(CoInferenceEnv {
            evaluator,
            reward,
            phase: Phase::Split,
            decision: Decision {
                candidate: 0,
                prune_ratios: Vec::new(),
                codec: 0,
            },
            previous_action: 0.0,
            records: Vec::new(),
            block_flops,
            total_flops,
            max_channels,
            input_pixels,
            link_feature,
        })
    }

    /// Like [`new`](Self::new), continuing after `records` (episodes finished before an
    /// interruption).
    pub(crate) fn with_records(
        evaluator: &'a mut PlanEvaluator,
        reward: Reward,
        records: Vec<EpisodeRecord>,
    ) -> Result<Self, AutomlError> {
        let mut env = CoInferenceEnv::with_checked_reward(evaluator, reward)?;
        env.records = records;
        Ok(env)
    }

    /// The episodes finished so far.
    pub fn records(&self) -> &[EpisodeRecord] {
        &self.records
    }

    /// Distinct plans evaluated in the evaluator's current session.
    pub fn evaluations(&self) -> usize {
        self.evaluator.session_evaluations()
    }

    /// Takes the finished episodes out.
    pub fn into_records(self) -> Vec<EpisodeRecord> {
        self.records
    }

    fn space(&self) -> &SearchSpace {
        self.evaluator.space()
    }

    /// The state vector of the current phase.
    fn state(&self) -> Vec<f32> {
        let mut s = vec![0.0f32; STATE_DIM];
        let spec = self.evaluator.backbone().spec();
        let blocks = spec.blocks.len().max(1) as f32;
        s[11] = self.previous_action;
        s[12] = self.link_feature;
        match self.phase {
            Phase::Split => {
                s[0] = 1.0;
                s[8] = 1.0;
                s[10] = 1.0;
            }
            Phase::Prune(i) => {
                let candidate = &self.space().candidates[self.decision.candidate];
                let layer = candidate.prunable[i];
                let shapes = spec.shapes().unwrap_or_default();
                let out = shapes.get(layer.block + 1).copied();
                let (kernel, stride) = match spec.blocks[layer.block] {
                    BlockSpec::ConvBnRelu { kernel, stride, .. } => (kernel, stride),
                    BlockSpec::BasicBlock { stride, .. } => (3, stride),
                    // The pruned layer is a 1×1 convolution (pointwise or expansion); the
                    // stride is the block's (its depthwise convolution's).
                    BlockSpec::DepthwiseSeparable { stride, .. }
                    | BlockSpec::InvertedResidual { stride, .. } => (1, stride),
                    _ => (1, 1),
                };
                s[1] = 1.0;
                s[3] = layer.block as f32 / blocks;
                s[4] = (layer.channels as f64 / self.max_channels) as f32;
                s[5] = kernel as f32 / 7.0;
                s[6] = stride as f32 / 2.0;
                s[7] = out.map_or(0.0, |o| {
                    ((o.height * o.width) as f64 / self.input_pixels) as f32
                });
                s[8] = (self.block_flops[layer.block] as f64 / self.total_flops) as f32;
                s[9] = self.removed_flops_fraction(i);
                s[10] = candidate.prunable[i + 1..]
                    .iter()
                    .map(|l| self.block_flops[l.block] as f64)
                    .sum::<f64>() as f32
                    / self.total_flops as f32;
            }
            Phase::Codec => {
                let candidate = &self.space().candidates[self.decision.candidate];
                let [c, h, w] = candidate.feature_shape;
                s[2] = 1.0;
                s[3] = candidate.split as f32 / blocks;
                s[4] = (c as f64 / self.max_channels) as f32;
                s[7] = ((h * w) as f64 / self.input_pixels) as f32;
                s[9] = self.removed_flops_fraction(candidate.prunable.len());
            }
        }
        s
    }

    /// FLOPs removed by the ratios chosen so far, as a fraction of the backbone's FLOPs
    /// (first-order: a layer keeping `k` of `C` filters saves `(1 - k/C)` of its block).
    fn removed_flops_fraction(&self, decided: usize) -> f32 {
        let candidate = &self.space().candidates[self.decision.candidate];
        let removed: f64 = candidate.prunable[..decided]
            .iter()
            .zip(&self.decision.prune_ratios)
            .map(|(l, r)| self.block_flops[l.block] as f64 * f64::from(*r) * 0.5)
            .sum();
        (removed / self.total_flops) as f32
    }

    /// The lowest latency reachable from a partial decision: undecided layers at the maximum
    /// ratio, the fastest codec.
    fn best_reachable_latency(&self, candidate: usize, ratios: &[f32]) -> Result<f64, AutomlError> {
        let space = self.space();
        let cand = &space.candidates[candidate];
        let mut full = ratios.to_vec();
        full.resize(cand.prunable.len(), space.max_prune);
        let mut best = f64::INFINITY;
        for codec in 0..cand.family.len() {
            let (latency, _, _) = self.evaluator.predict(&Decision {
                candidate,
                prune_ratios: full.clone(),
                codec,
            })?;
            best = best.min(latency.total);
        }
        Ok(best)
    }

    fn choose_candidate(&self, action: f32) -> Result<(usize, f32), AutomlError> {
        let n = self.space().candidates.len();
        let Some(budget) = self.reward.budget_s() else {
            let c = self.space().candidate_for(action);
            return Ok((c, action));
        };
        let reachable: Vec<f64> = (0..n)
            .map(|c| self.best_reachable_latency(c, &[]))
            .collect::<Result<_, _>>()?;
        let feasible: Vec<usize> = (0..n).filter(|&c| reachable[c] <= budget).collect();
        let chosen = if feasible.is_empty() {
            (0..n)
                .min_by(|&a, &b| reachable[a].total_cmp(&reachable[b]))
                .unwrap_or(0)
        } else {
            let wanted = self.space().candidate_for(action);
            if feasible.contains(&wanted) {
                return Ok((wanted, action));
            }
            // The feasible candidate nearest to the one asked for.
            *feasible
                .iter()
                .min_by_key(|&&c| c.abs_diff(wanted))
                .expect("non-empty")
        };
        Ok((chosen, SearchSpace::bin_centre(chosen, n)))
    }

    fn choose_ratio(&self, layer: usize, action: f32) -> Result<(f32, f32), AutomlError> {
        let space = self.space();
        let max = space.max_prune;
        let mut ratio = space.ratio_for(action);
        let Some(budget) = self.reward.budget_s() else {
            return Ok((ratio, action.clamp(0.0, 1.0)));
        };
        // AMC's clipping: prune at least as much as keeps the budget reachable.
        let mut ratios = self.decision.prune_ratios[..layer].to_vec();
        ratios.push(ratio);
        let step = max / 20.0;
        while ratio < max && self.best_reachable_latency(self.decision.candidate, &ratios)? > budget
        {
            ratio = (ratio + step).min(max);
            *ratios.last_mut().expect("pushed") = ratio;
        }
        Ok((ratio, space.action_for_ratio(ratio)))
    }

    fn choose_codec(&self, action: f32) -> Result<(usize, f32), AutomlError> {
        let candidate = self.decision.candidate;
        let n = self.space().candidates[candidate].family.len();
        let wanted = self.space().codec_for(candidate, action);
        let Some(budget) = self.reward.budget_s() else {
            return Ok((wanted, action));
        };
        let mut latencies = Vec::with_capacity(n);
        for codec in 0..n {
            let (latency, _, _) = self.evaluator.predict(&Decision {
                candidate,
                prune_ratios: self.decision.prune_ratios.clone(),
                codec,
            })?;
            latencies.push(latency.total);
        }
        if latencies[wanted] <= budget {
            return Ok((wanted, action));
        }
        let chosen = (0..n)
            .filter(|&c| latencies[c] <= budget)
            .min_by_key(|&c| c.abs_diff(wanted))
            .unwrap_or_else(|| {
                (0..n)
                    .min_by(|&a, &b| latencies[a].total_cmp(&latencies[b]))
                    .unwrap_or(0)
            });
        Ok((chosen, SearchSpace::bin_centre(chosen, n)))
    }

    fn finish(&mut self) -> Result<Step, AutomlError> {
        let evaluation = self.evaluator.evaluate(&self.decision)?;
        let reward = self.reward.score(&evaluation);
        self.records.push(EpisodeRecord {
            episode: self.records.len(),
            decision: self.decision.clone(),
            evaluation,
            reward,
        });
        Ok(Step::new(
            vec![0.0; STATE_DIM],
            reward,
            true,
            self.previous_action,
        ))
    }
}

impl Environment for CoInferenceEnv<'_> {
    type Error = AutomlError;

    fn state_dim(&self) -> usize {
        STATE_DIM
    }

    fn reset(&mut self) -> Result<Vec<f32>, AutomlError> {
        self.phase = Phase::Split;
        self.decision = Decision {
            candidate: 0,
            prune_ratios: Vec::new(),
            codec: 0,
        };
        self.previous_action = 0.0;
        Ok(self.state())
    }

    fn step(&mut self, action: f32) -> Result<Step, AutomlError> {
        let applied = match self.phase {
            Phase::Split => {
                let (candidate, applied) = self.choose_candidate(action)?;
                self.decision.candidate = candidate;
                self.phase = if self.space().candidates[candidate].prunable.is_empty() {
                    Phase::Codec
                } else {
                    Phase::Prune(0)
                };
                applied
            }
            Phase::Prune(i) => {
                let (ratio, applied) = self.choose_ratio(i, action)?;
                self.decision.prune_ratios.push(ratio);
                let layers = self.space().candidates[self.decision.candidate]
                    .prunable
                    .len();
                self.phase = if i + 1 < layers {
                    Phase::Prune(i + 1)
                } else {
                    Phase::Codec
                };
                applied
            }
            Phase::Codec => {
                let (codec, applied) = self.choose_codec(action)?;
                self.decision.codec = codec;
                self.previous_action = applied;
                return self.finish().map(|s| s.with_applied_action(applied));
            }
        };
        self.previous_action = applied;
        Ok(Step::new(self.state(), 0.0, false, applied))
    }
}
