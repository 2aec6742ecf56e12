//! Local refinement of a search's answer: steepest-ascent hill climbing over the plan space,
//! from the best few plans the agent (or anyone) found.
//!
//! DDPG samples the space; with a few dozen episodes it can end next to a better plan without
//! landing on it (a pruning ratio one step too low, the neighbouring codec, the next split).
//! Refinement walks from each start to its best neighbour under the same reward — a tabu
//! walk: never back to a plan it walked through, and on even when that neighbour is no
//! better, for up to `patience` moves without a new best (one block more on the device may
//! cost a little before pruning that block pays) — until the evaluation budget is spent.
//! A plan's neighbours are:
//!
//! - every other codec of its split;
//! - each prunable layer's ratio one step up or down, and at 0 and at `max_prune`;
//! - the neighbouring split points (one block more or fewer on the device), keeping the ratios
//!   of the layers both share, with every codec of the new split;
//! - from device-only (a start outside the space: the whole backbone on the device), the
//!   deepest split point with every codec, and back (only when device-only is a start).
//!
//! With [`RefineConfig::unpruned_starts`], the walks may also start from the unpruned form of
//! the best start at every split among the starts (scored first, within the budget): a
//! sampler's deep plans are often infeasible only because of their pruning, and their unpruned
//! form can be the best plan of the split (the race, `docs/results.md`).
//!
//! Every neighbour is scored by the [`PlanEvaluator`], so a plan is never run twice (its cache
//! is shared with the agent and the baselines); the budget counts the plans the current
//! search session had not asked for yet, the same way the agent and the baselines are charged.
//!
//! ```no_run
//! # use coinfer_automl::{refine::{refine, RefineConfig}, evaluator::PlanEvaluator, Reward};
//! # fn demo(evaluator: &mut PlanEvaluator) -> Result<(), coinfer_automl::AutomlError> {
//! let reward = Reward::default();
//! let start = evaluator.device_only()?;
//! let refined = refine(evaluator, &reward, &[start], &RefineConfig::default().check()?)?;
//! println!("{} moves, {} more plans", refined.moves, refined.evaluations);
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::{Evaluation, PlanEvaluator};
use crate::reward::Reward;
use crate::space::Decision;

/// Settings of the local refinement (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefineConfig {
    /// How many of the best distinct plans found so far to climb from (0: no refinement).
    pub starts: usize,
    /// Most plans all climbs together may ask for beyond those the session already had.
    pub max_evaluations: usize,
    /// Step of a pruning-ratio move.
    pub ratio_step: f32,
    /// Moves a walk may make without beating its best plan before it stops (0: plain hill
    /// climbing, which stops at the first plan no neighbour beats).
    pub patience: usize,
    /// Before climbing, also score the unpruned form of the best start at every split among
    /// the starts, and climb from it when it ranks among the best (off by default).
    #[serde(default)]
    pub unpruned_starts: bool,
}

impl Default for RefineConfig {
    fn default() -> Self {
        RefineConfig {
            starts: 3,
            max_evaluations: 150,
            ratio_step: 0.1,
            patience: 3,
            unpruned_starts: false,
        }
    }
}

/// [`RefineConfig`] that passed [`RefineConfig::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckedRefineConfig(RefineConfig);

impl std::ops::Deref for CheckedRefineConfig {
    type Target = RefineConfig;
    fn deref(&self) -> &RefineConfig {
        &self.0
    }
}

impl RefineConfig {
    /// Checks the settings: `refine.ratio_step` in (0, 1] when refinement is on.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the field.
    pub fn check(self) -> Result<CheckedRefineConfig, AutomlError> {
        if self.starts > 0 && !(self.ratio_step > 0.0 && self.ratio_step <= 1.0) {
            return Err(AutomlError::InvalidConfig {
                field: "refine.ratio_step",
                reason: format!("must be in (0, 1], got {}", self.ratio_step),
            });
        }
        Ok(CheckedRefineConfig(self))
    }
}

/// What refinement did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refinement {
    /// The best start (the answer before refinement).
    pub start: Evaluation,
    /// The best plan after refinement (`start` when no neighbour was better).
    pub best: Evaluation,
    /// Moves made, over all climbs.
    pub moves: usize,
    /// Plans the climbs asked for that the session had not evaluated before.
    pub evaluations: usize,
}

impl Refinement {
    /// Whether refinement found a better plan than its best start.
    pub fn improved(&self, reward: &Reward) -> bool {
        reward.score(&self.best) > reward.score(&self.start)
    }
}

/// Where a climb stands: a plan of the space, or device-only (outside it).
#[derive(Debug, Clone, PartialEq)]
enum Position {
    DeviceOnly,
    Plan(Decision),
}

/// What makes two positions the same plan: split candidate, filters kept, codec (`None`:
/// device-only).
type PlanIdentity = Option<(usize, Vec<usize>, usize)>;

fn identity(evaluator: &PlanEvaluator, position: &Position) -> PlanIdentity {
    match position {
        Position::DeviceOnly => None,
        Position::Plan(d) => Some((d.candidate, evaluator.space().kept(d), d.codec)),
    }
}

/// Walks from each of `starts` (best score first; at most `config.starts` distinct ones)
/// towards better plans under `reward` (see the [module docs](self)), within `config.max_evaluations` plans in all that the
/// evaluator's current session had not asked for yet (see
/// [`PlanEvaluator::begin_session`]), and returns the best plan seen. A start that is
/// neither device-only nor a plan of the evaluator's space is an error.
pub fn refine(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    starts: &[Evaluation],
    config: &CheckedRefineConfig,
) -> Result<Refinement, AutomlError> {
    let mut ordered: Vec<&Evaluation> = starts.iter().collect();
    ordered.sort_by(|a, b| reward.score(b).total_cmp(&reward.score(a)));
    let Some(&first) = ordered.first() else {
        return Err(AutomlError::InvalidConfig {
            field: "refine",
            reason: "no plan to start from".into(),
        });
    };
    let budget_start = evaluator.session_evaluations();
    let out_of_budget =
        |e: &PlanEvaluator| e.session_evaluations() - budget_start >= config.max_evaluations;
    // The unpruned form of the best start at each split (a pruned start may be infeasible
    // where its unpruned form is the best plan of its split).
    let mut unpruned: Vec<Evaluation> = Vec::new();
    if config.unpruned_starts {
        let mut splits: Vec<usize> = Vec::new();
        for start in &ordered {
            if splits.contains(&start.split) {
                continue;
            }
            splits.push(start.split);
            let Position::Plan(mut decision) = position_of(evaluator, start)? else {
                continue;
            };
            if decision.prune_ratios.iter().all(|&r| r == 0.0) {
                continue;
            }
            if out_of_budget(evaluator) {
                break;
            }
            decision.prune_ratios.iter_mut().for_each(|r| *r = 0.0);
            unpruned.push(evaluator.evaluate(&decision)?);
        }
    }
    ordered.extend(unpruned.iter());
    ordered.sort_by(|a, b| reward.score(b).total_cmp(&reward.score(a)));
    // Distinct starts, best first. Device-only is a neighbour only when it is a start (a
    // deployable answer must otherwise stay a plan of the space).
    let mut positions: Vec<(Position, &Evaluation)> = Vec::new();
    let mut device_only = false;
    for start in ordered {
        let position = position_of(evaluator, start)?;
        device_only |= position == Position::DeviceOnly;
        if positions.len() < config.starts && !positions.iter().any(|(p, _)| *p == position) {
            positions.push((position, start));
        }
    }
    let mut best = first.clone();
    let mut moves = 0;
    // Plans walked through (by identity: two ratios that keep the same filters are one plan).
    let mut visited: Vec<PlanIdentity> = Vec::new();
    for (mut position, start) in positions {
        if visited.contains(&identity(evaluator, &position)) {
            continue;
        }
        let mut walk_best = start.clone();
        let mut stale = 0;
        loop {
            visited.push(identity(evaluator, &position));
            // The best neighbour not walked through yet, better or not (a tabu walk: it may
            // cross a plateau or a small dip on the way to a better plan).
            let mut step: Option<(Position, Evaluation)> = None;
            for neighbour in neighbours(evaluator, &position, config.ratio_step, device_only) {
                if out_of_budget(evaluator) {
                    break;
                }
                if visited.contains(&identity(evaluator, &neighbour)) {
                    continue;
                }
                let evaluation = match &neighbour {
                    Position::DeviceOnly => evaluator.device_only()?,
                    Position::Plan(decision) => evaluator.evaluate(decision)?,
                };
                if step
                    .as_ref()
                    .is_none_or(|(_, e)| reward.score(&evaluation) > reward.score(e))
                {
                    step = Some((neighbour, evaluation));
                }
            }
            let Some((next, evaluation)) = step else {
                break;
            };
            let improves = reward.score(&evaluation) > reward.score(&walk_best);
            if !improves && (stale >= config.patience || out_of_budget(evaluator)) {
                break;
            }
            moves += 1;
            position = next;
            if improves {
                walk_best = evaluation;
                stale = 0;
            } else {
                stale += 1;
            }
        }
        if reward.score(&walk_best) > reward.score(&best) {
            best = walk_best;
        }
    }
    Ok(Refinement {
        start: first.clone(),
        best,
        moves,
        evaluations: evaluator.session_evaluations() - budget_start,
    })
}

fn position_of(
    evaluator: &PlanEvaluator,
    evaluation: &Evaluation,
) -> Result<Position, AutomlError> {
    if evaluation.split == evaluator.backbone().spec().blocks.len() && evaluation.kept.is_empty() {
        return Ok(Position::DeviceOnly);
    }
    evaluator.decision_of(evaluation).map(Position::Plan)
}

/// The neighbours of a position (see the [module docs](self)), each a valid decision of the
/// space or, when `device_only`, device-only.
fn neighbours(
    evaluator: &PlanEvaluator,
    position: &Position,
    step: f32,
    device_only: bool,
) -> Vec<Position> {
    let space = evaluator.space();
    let last = space.candidates.len().saturating_sub(1);
    let every_codec = |candidate: usize, prune_ratios: Vec<f32>| {
        (0..space.candidates[candidate].family.len()).map(move |codec| Decision {
            candidate,
            prune_ratios: prune_ratios.clone(),
            codec,
        })
    };
    let mut out: Vec<Decision> = Vec::new();
    let decision = match position {
        Position::DeviceOnly => {
            if !space.candidates.is_empty() {
                let zeros = vec![0.0; space.candidates[last].prunable.len()];
                out.extend(every_codec(last, zeros));
            }
            return out.into_iter().map(Position::Plan).collect();
        }
        Position::Plan(decision) => decision,
    };
    let candidate = &space.candidates[decision.candidate];
    // Other codecs of the same split.
    out.extend(
        every_codec(decision.candidate, decision.prune_ratios.clone())
            .filter(|d| d.codec != decision.codec),
    );
    // One layer's ratio moved.
    for (layer, &ratio) in decision.prune_ratios.iter().enumerate() {
        let mut values = [ratio - step, ratio + step, 0.0, space.max_prune]
            .map(|r| r.clamp(0.0, space.max_prune));
        values.sort_by(f32::total_cmp);
        for (i, &value) in values.iter().enumerate() {
            if value == ratio || (i > 0 && values[i - 1] == value) {
                continue;
            }
            let mut prune_ratios = decision.prune_ratios.clone();
            prune_ratios[layer] = value;
            out.push(Decision {
                prune_ratios,
                ..decision.clone()
            });
        }
    }
    // The neighbouring splits, with the shared layers' ratios.
    let neighbours_split = [
        decision.candidate.checked_sub(1),
        (decision.candidate < last).then_some(decision.candidate + 1),
    ];
    for other in neighbours_split.into_iter().flatten() {
        let ratios = space.candidates[other]
            .prunable
            .iter()
            .map(|layer| {
                candidate
                    .prunable
                    .iter()
                    .position(|l| l == layer)
                    .map_or(0.0, |i| decision.prune_ratios[i])
            })
            .collect();
        out.extend(every_codec(other, ratios));
    }
    let mut positions: Vec<Position> = out.into_iter().map(Position::Plan).collect();
    if device_only && decision.candidate == last && decision.prune_ratios.iter().all(|&r| r == 0.0)
    {
        positions.push(Position::DeviceOnly);
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_step_outside_zero_to_one_is_rejected() {
        for ratio_step in [0.0, -0.1, 1.5, f32::NAN] {
            let config = RefineConfig {
                ratio_step,
                ..RefineConfig::default()
            };
            assert!(matches!(
                config.check(),
                Err(AutomlError::InvalidConfig {
                    field: "refine.ratio_step",
                    ..
                })
            ));
        }
        let off = RefineConfig {
            starts: 0,
            ratio_step: 0.0,
            ..RefineConfig::default()
        };
        assert!(off.check().is_ok());
    }
}
