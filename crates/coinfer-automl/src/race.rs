//! The race: search methods at equal budgets of distinct evaluated plans, over several seeds,
//! on one evaluator and one reward, against a reference optimum found by a much larger search.
//!
//! Methods ([`RaceMethod`]): the DDPG agent, the agent followed by the local refinement
//! ([`crate::refine`]), uniform random search, the uniform ratio grid, and CMA-ES
//! ([`coinfer_agent::CmaEs`]) over a continuous encoding of the plan. Every method is charged
//! for the distinct plans it asks the [`PlanEvaluator`] for (its session count); a plan asked
//! for again is free, and the evaluator's cache is shared, so a plan is run on the validation
//! images once in the whole race.
//!
//! Budgets are nested: the agent, random search and CMA-ES run once per seed up to the largest
//! budget, and their result at a smaller budget `B` is the best plan among their first `B`
//! distinct plans — what a run with budget `B` returns, since none of them reads its budget
//! (the agent's warm-up and noise schedule count episodes, not the budget). The agent with
//! refinement spends [`RaceConfig::refine_share`] of each budget on refinement, climbing from
//! the plans the agent had found when it had spent the rest. The grid takes, at each budget,
//! the most uniform ratio levels whose grid fits it (or, when even the unpruned grid does not
//! fit, that grid's plans in a seeded order until the budget is spent).
//!
//! The reference is the best plan among every plan the race evaluated plus a dedicated larger
//! search (a long refinement from the best plans known, then random search) until the evaluator
//! holds [`RaceConfig::reference_factor`] × the largest budget distinct plans: the best plan
//! known. Each method's gap is `(reference − reward) / |reference|`.

use std::time::Instant;

use burn::prelude::Device;
use coinfer_agent::{CmaEs, CmaEsConfig, Ddpg};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::baselines::random_search;
use crate::config::CheckedSearchConfig;
use crate::env::{CoInferenceEnv, EpisodeRecord, STATE_DIM};
use crate::evaluator::{Evaluation, PlanEvaluator};
use crate::refine::{RefineConfig, refine};
use crate::reward::Reward;
use crate::space::{Decision, SearchSpace};

/// A search method of the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaceMethod {
    /// The DDPG agent alone.
    Ddpg,
    /// The DDPG agent, then local refinement from its best plans.
    DdpgRefine,
    /// Uniform random actions through the agent's environment.
    Random,
    /// One uniform pruning ratio per plan on a grid × every split × every codec.
    UniformGrid,
    /// CMA-ES over `[0, 1]^d`: split, one coordinate per prunable layer, codec.
    CmaEs,
}

impl RaceMethod {
    /// Every method, in report order.
    pub const ALL: [RaceMethod; 5] = [
        RaceMethod::Ddpg,
        RaceMethod::DdpgRefine,
        RaceMethod::Random,
        RaceMethod::UniformGrid,
        RaceMethod::CmaEs,
    ];

    /// The method called `name` ([`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<RaceMethod> {
        RaceMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The name in tables, JSON and plots.
    pub fn name(self) -> &'static str {
        match self {
            RaceMethod::Ddpg => "ddpg",
            RaceMethod::DdpgRefine => "ddpg+refine",
            RaceMethod::Random => "random",
            RaceMethod::UniformGrid => "uniform-grid",
            RaceMethod::CmaEs => "cma-es",
        }
    }
}

/// Settings of a race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaceConfig {
    /// The methods to race (all by default; the reference search runs whatever they are).
    pub methods: Vec<RaceMethod>,
    /// Budgets of distinct evaluated plans.
    pub budgets: Vec<usize>,
    /// Seeds per method: the search's seed, seed + 1, ...
    pub seeds: usize,
    /// The reference search holds this many times the largest budget distinct plans.
    pub reference_factor: usize,
    /// Fraction of a budget the agent with refinement spends on refinement.
    pub refine_share: f32,
    /// Initial step size of CMA-ES on `[0, 1]^d`.
    pub cma_sigma0: f64,
    /// The agent's refinement also climbs from the unpruned form of its best plan at every
    /// split ([`RefineConfig::unpruned_starts`]).
    pub refine_unpruned_starts: bool,
}

impl Default for RaceConfig {
    fn default() -> Self {
        RaceConfig {
            methods: RaceMethod::ALL.to_vec(),
            budgets: vec![50, 100, 200, 400],
            seeds: 5,
            reference_factor: 20,
            refine_share: 0.25,
            cma_sigma0: 0.3,
            refine_unpruned_starts: false,
        }
    }
}

/// A [`RaceConfig`] that passed [`RaceConfig::check`]: budgets sorted, distinct, positive.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRaceConfig(RaceConfig);

impl std::ops::Deref for CheckedRaceConfig {
    type Target = RaceConfig;
    fn deref(&self) -> &RaceConfig {
        &self.0
    }
}

impl RaceConfig {
    /// Checks every field; sorts and de-duplicates the budgets.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the field (`race.budgets`, `race.seeds`, ...).
    pub fn check(mut self) -> Result<CheckedRaceConfig, AutomlError> {
        let bad =
            |field: &'static str, reason: String| AutomlError::InvalidConfig { field, reason };
        self.budgets.sort_unstable();
        self.budgets.dedup();
        if self.budgets.is_empty() || self.budgets[0] == 0 {
            return Err(bad(
                "race.budgets",
                format!("need at least one positive budget, got {:?}", self.budgets),
            ));
        }
        if self.methods.is_empty() {
            return Err(bad("race.methods", "name at least one method".into()));
        }
        if self.seeds == 0 {
            return Err(bad("race.seeds", "must be at least 1".into()));
        }
        if self.reference_factor < 1 {
            return Err(bad("race.reference_factor", "must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.refine_share) {
            return Err(bad(
                "race.refine_share",
                format!("must be in [0, 1), got {}", self.refine_share),
            ));
        }
        CmaEsConfig {
            sigma0: self.cma_sigma0,
            population: None,
            seed: 0,
        }
        .check()
        .map_err(|e| bad("race.cma_sigma0", e.to_string()))?;
        Ok(CheckedRaceConfig(self))
    }
}

/// One method's best plan at one budget and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceRun {
    /// [`RaceMethod::name`].
    pub method: String,
    /// Seed of the run.
    pub seed: u64,
    /// The budget of distinct plans.
    pub budget: usize,
    /// Distinct plans the method evaluated (at most the budget).
    pub evaluations: usize,
    /// Reward of its best plan.
    pub reward: f32,
    /// `(reference − reward) / |reference|`.
    pub gap: f64,
    /// Validation accuracy of its best plan.
    pub accuracy: f32,
    /// Predicted latency of its best plan, milliseconds.
    pub latency_ms: f64,
    /// Split point of its best plan.
    pub split: usize,
    /// Codec of its best plan.
    pub codec: String,
    /// Filters kept per prunable layer.
    pub kept: Vec<usize>,
}

/// Median, smallest and largest of a figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// One method at one budget, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceSummary {
    /// [`RaceMethod::name`].
    pub method: String,
    /// The budget.
    pub budget: usize,
    /// Seeds run.
    pub seeds: usize,
    /// Reward of the best plan.
    pub reward: Spread,
    /// Gap to the reference.
    pub gap: Spread,
    /// Latency of the best plan, milliseconds.
    pub latency_ms: Spread,
    /// Validation accuracy of the best plan.
    pub accuracy: Spread,
    /// Distinct plans evaluated.
    pub evaluations: Spread,
    /// Seeds whose best plan is within 1 % of the reference's reward.
    pub within_one_percent: usize,
}

/// The best plan known: from the race and the larger reference search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceReference {
    /// Distinct plans evaluated in all (the race's and the reference search's).
    pub evaluations: usize,
    /// Its reward.
    pub reward: f32,
    /// Its validation accuracy.
    pub accuracy: f32,
    /// Its predicted latency, milliseconds.
    pub latency_ms: f64,
    /// Its split point.
    pub split: usize,
    /// Its codec.
    pub codec: String,
    /// Filters it keeps per prunable layer.
    pub kept: Vec<usize>,
}

/// The size of the space raced over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSize {
    /// Split points.
    pub splits: usize,
    /// Prunable layers at the deepest split.
    pub prunable_layers: usize,
    /// Codecs offered at each split, in split order.
    pub codecs: Vec<usize>,
    /// Ratio levels per layer of the grid the size is counted on.
    pub grid_levels: usize,
    /// Plans on that grid (every split × every level of every layer × every codec).
    pub grid_plans: u64,
    /// Plans counting every distinct number of kept filters per layer (what the continuous
    /// ratios can reach).
    pub distinct_plans: f64,
}

/// Everything a race measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceReport {
    /// The backbone's name.
    pub model: String,
    /// The reward.
    pub reward: Reward,
    /// Validation images every plan is scored on.
    pub validation_images: usize,
    /// Validation accuracy of the backbone.
    pub backbone_accuracy: f32,
    /// The space.
    pub space: SpaceSize,
    /// The race's settings.
    pub config: RaceConfig,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Every run.
    pub runs: Vec<RaceRun>,
    /// Per method and budget, over seeds.
    pub summary: Vec<RaceSummary>,
    /// The best plan known.
    pub reference: RaceReference,
    /// Mean seconds one new plan cost on the validation images (wall time of the whole race
    /// over distinct plans evaluated, agent updates included).
    pub seconds_per_plan: f64,
    /// Wall time of the race, seconds (codecs and backbone excluded).
    pub wall_s: f64,
}

/// Levels of the grid the space size is counted on (the baselines' uniform grid's).
pub const GRID_LEVELS: usize = 4;

/// The size of `space` on a grid of `levels` ratio levels per layer.
pub fn space_size(space: &SearchSpace, levels: usize) -> SpaceSize {
    let distinct_plans = space
        .candidates
        .iter()
        .map(|c| {
            c.prunable
                .iter()
                .map(|l| {
                    let lowest = coinfer_sparsity::kept_channels(l.channels, space.max_prune);
                    (l.channels - lowest + 1) as f64
                })
                .product::<f64>()
                * c.family.len() as f64
        })
        .sum();
    SpaceSize {
        splits: space.candidates.len(),
        prunable_layers: space
            .candidates
            .iter()
            .map(|c| c.prunable.len())
            .max()
            .unwrap_or(0),
        codecs: space.candidates.iter().map(|c| c.family.len()).collect(),
        grid_levels: levels,
        grid_plans: space.grid_size(levels),
        distinct_plans,
    }
}

/// What one method reported at each budget (before the reference is known).
struct Found {
    method: RaceMethod,
    seed: u64,
    budget: usize,
    evaluations: usize,
    best: Evaluation,
}

/// Best-so-far snapshots of an anytime method at each budget.
struct Anytime<'b> {
    budgets: &'b [usize],
    next: usize,
    best: Option<(Evaluation, f32)>,
    snapshots: Vec<(usize, usize, Evaluation)>,
}

impl<'b> Anytime<'b> {
    fn new(budgets: &'b [usize]) -> Self {
        Anytime {
            budgets,
            next: 0,
            best: None,
            snapshots: Vec::new(),
        }
    }

    /// Records `evaluation` (scored `score`), asked for when the session held `spent` plans.
    fn see(&mut self, evaluation: &Evaluation, score: f32, spent: usize) {
        if spent > self.budgets[self.budgets.len() - 1] {
            return;
        }
        // Budgets passed before this plan was charged close with the best so far.
        while self.next < self.budgets.len() && spent > self.budgets[self.next] {
            self.close(self.budgets[self.next]);
        }
        if self.best.as_ref().is_none_or(|(_, b)| score > *b) {
            self.best = Some((evaluation.clone(), score));
        }
    }

    fn close(&mut self, evaluations: usize) {
        if let Some((best, _)) = &self.best {
            self.snapshots
                .push((self.budgets[self.next], evaluations, best.clone()));
        }
        self.next += 1;
    }

    fn done(&self) -> bool {
        self.next >= self.budgets.len()
    }

    /// Closes the budgets still open with `spent` plans (a method that ran out of plans).
    fn finish(mut self, spent: usize) -> Vec<(usize, usize, Evaluation)> {
        while self.next < self.budgets.len() {
            let budget = self.budgets[self.next];
            self.close(spent.min(budget));
        }
        self.snapshots
    }
}

/// Most episodes (or samples) a method may run per distinct plan of the largest budget before
/// it is stopped: a method stuck on plans it has seen spends nothing and would never end.
const PATIENCE_PER_PLAN: usize = 30;

/// Most agent episodes per distinct plan of the largest budget (an episode costs a few
/// network updates even when its plan is cached, so the agent is held to fewer than the other
/// methods' cheap repeats; a converged agent that keeps proposing the plans it knows ends
/// there with fewer plans than its budget, which the report shows).
const AGENT_EPISODES_PER_PLAN: usize = 4;

/// Runs the race on `evaluator` (see the [module docs](self)); `on_step(done, total, what)`
/// reports progress after every method run.
pub fn race(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    device: &Device,
    search: &CheckedSearchConfig,
    config: &CheckedRaceConfig,
    mut on_step: impl FnMut(usize, usize, &str),
) -> Result<RaceReport, AutomlError> {
    let start = Instant::now();
    let budgets = config.budgets.clone();
    let largest = budgets[budgets.len() - 1];
    let seeds: Vec<u64> = (0..config.seeds as u64).map(|i| search.seed + i).collect();
    let total = seeds.len() * 4 + 1;
    let mut done = 0;
    let mut found: Vec<Found> = Vec::new();
    let push = |found: &mut Vec<Found>,
                method: RaceMethod,
                seed: u64,
                snaps: Vec<(usize, usize, Evaluation)>| {
        for (budget, evaluations, best) in snaps {
            found.push(Found {
                method,
                seed,
                budget,
                evaluations,
                best,
            });
        }
    };
    let runs_method = |m: RaceMethod| config.methods.contains(&m);
    for &seed in &seeds {
        // The agent, once up to the largest budget; refinement from its prefixes.
        if runs_method(RaceMethod::Ddpg) || runs_method(RaceMethod::DdpgRefine) {
            let records = run_agent(evaluator, reward, search, device, seed, largest)?;
            let mut anytime = Anytime::new(&budgets);
            for (record, spent) in &records {
                anytime.see(&record.evaluation, record.reward, *spent);
            }
            let spent = records.last().map_or(0, |(_, s)| *s);
            if runs_method(RaceMethod::Ddpg) {
                push(&mut found, RaceMethod::Ddpg, seed, anytime.finish(spent));
            }
            if runs_method(RaceMethod::DdpgRefine) {
                let snaps = per_budget(&budgets, |budget| {
                    agent_then_refine(evaluator, reward, &records, budget, config)
                })?;
                push(&mut found, RaceMethod::DdpgRefine, seed, snaps);
            }
        }
        done += 1;
        on_step(done, total, &format!("seed {seed}: ddpg, ddpg+refine"));

        if runs_method(RaceMethod::Random) {
            let mut anytime = Anytime::new(&budgets);
            let spent = random_anytime(evaluator, reward, largest, seed, &mut anytime)?;
            push(&mut found, RaceMethod::Random, seed, anytime.finish(spent));
        }
        done += 1;
        on_step(done, total, &format!("seed {seed}: random"));

        if runs_method(RaceMethod::UniformGrid) {
            let snaps = per_budget(&budgets, |budget| {
                uniform_grid(evaluator, reward, budget, seed)
            })?;
            push(&mut found, RaceMethod::UniformGrid, seed, snaps);
        }
        done += 1;
        on_step(done, total, &format!("seed {seed}: uniform grid"));

        if runs_method(RaceMethod::CmaEs) {
            let mut anytime = Anytime::new(&budgets);
            let spent = cma_es(
                evaluator,
                reward,
                largest,
                seed,
                config.cma_sigma0,
                &mut anytime,
            )?;
            push(&mut found, RaceMethod::CmaEs, seed, anytime.finish(spent));
        }
        done += 1;
        on_step(done, total, &format!("seed {seed}: cma-es"));
    }

    let reference = reference_search(evaluator, reward, config.reference_factor * largest)?;
    done += 1;
    on_step(done, total, "reference search");
    let reference_reward = reward.score(&reference);
    let runs: Vec<RaceRun> = found
        .into_iter()
        .map(|f| {
            let score = reward.score(&f.best);
            RaceRun {
                method: f.method.name().into(),
                seed: f.seed,
                budget: f.budget,
                evaluations: f.evaluations,
                reward: score,
                gap: gap(reference_reward, score),
                accuracy: f.best.accuracy,
                latency_ms: f.best.latency.total * 1e3,
                split: f.best.split,
                codec: f.best.codec.to_string(),
                kept: f.best.kept.clone(),
            }
        })
        .collect();
    let summary = summarise(&runs, &budgets);
    let wall_s = start.elapsed().as_secs_f64();
    let evaluations = evaluator.evaluations();
    Ok(RaceReport {
        model: evaluator.backbone().spec().name.clone(),
        reward: *reward,
        validation_images: evaluator.validation_images(),
        backbone_accuracy: evaluator.backbone_accuracy()?,
        space: space_size(evaluator.space(), GRID_LEVELS),
        config: (**config).clone(),
        seeds,
        runs,
        summary,
        reference: RaceReference {
            evaluations,
            reward: reference_reward,
            accuracy: reference.accuracy,
            latency_ms: reference.latency.total * 1e3,
            split: reference.split,
            codec: reference.codec.to_string(),
            kept: reference.kept.clone(),
        },
        seconds_per_plan: wall_s / evaluations.max(1) as f64,
        wall_s,
    })
}

/// `run(budget)` (plans spent, best plan) at every budget, as `(budget, spent, best)`.
fn per_budget(
    budgets: &[usize],
    mut run: impl FnMut(usize) -> Result<(usize, Evaluation), AutomlError>,
) -> Result<Vec<(usize, usize, Evaluation)>, AutomlError> {
    budgets
        .iter()
        .map(|&budget| run(budget).map(|(spent, best)| (budget, spent, best)))
        .collect()
}

/// `(reference − reward) / |reference|`.
fn gap(reference: f32, reward: f32) -> f64 {
    (f64::from(reference) - f64::from(reward)) / f64::from(reference).abs().max(1e-12)
}

/// The agent's episodes until its session holds `budget` plans (or it stops finding new ones),
/// each with the session's count after it.
fn run_agent(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    search: &CheckedSearchConfig,
    device: &Device,
    seed: u64,
    budget: usize,
) -> Result<Vec<(EpisodeRecord, usize)>, AutomlError> {
    evaluator.begin_session();
    let mut ddpg = search.ddpg().clone().into_inner();
    ddpg.seed = seed;
    let ddpg = ddpg.checked()?;
    let mut agent = Ddpg::with_config(ddpg, STATE_DIM, device)?;
    let mut env = CoInferenceEnv::with_checked_reward(evaluator, *reward)?;
    let mut out = Vec::new();
    for _ in 0..budget * AGENT_EPISODES_PER_PLAN {
        agent.run_episode(&mut env)?;
        let record = env
            .records()
            .last()
            .expect("an episode just finished")
            .clone();
        let spent = env.evaluations();
        out.push((record, spent));
        if spent >= budget {
            break;
        }
    }
    Ok(out)
}

/// The agent until it had spent `budget · (1 − share)` plans, then refinement from its plans
/// with the rest; the session's count and the best plan.
fn agent_then_refine(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    records: &[(EpisodeRecord, usize)],
    budget: usize,
    config: &RaceConfig,
) -> Result<(usize, Evaluation), AutomlError> {
    let share = config.refine_share;
    let agent_part = budget - ((budget as f32 * share).round() as usize).min(budget);
    evaluator.begin_session();
    let mut starts: Vec<Evaluation> = Vec::new();
    for (record, spent) in records {
        if *spent > agent_part.max(1) {
            break;
        }
        evaluator.charge(&record.decision)?;
        starts.push(record.evaluation.clone());
    }
    let charged = evaluator.session_evaluations();
    let refine_config = RefineConfig {
        max_evaluations: budget.saturating_sub(charged),
        unpruned_starts: config.refine_unpruned_starts,
        ..RefineConfig::default()
    }
    .check()?;
    let refined = refine(evaluator, reward, &starts, &refine_config)?;
    let best = if reward.score(&refined.best) >= reward.score(&refined.start) {
        refined.best
    } else {
        refined.start
    };
    Ok((evaluator.session_evaluations(), best))
}

/// Random search (the same generator and environment as [`random_search`]), every plan fed to
/// `anytime`; the plans spent.
fn random_anytime(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    budget: usize,
    seed: u64,
    anytime: &mut Anytime<'_>,
) -> Result<usize, AutomlError> {
    use coinfer_agent::Environment;
    evaluator.begin_session();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut env = CoInferenceEnv::with_checked_reward(evaluator, *reward)?;
    for _ in 0..budget * PATIENCE_PER_PLAN {
        env.reset()?;
        while !env.step(rng.random::<f32>())?.done {}
        let record = env.records().last().expect("an episode just finished");
        let spent = env.evaluations();
        let (evaluation, score) = (record.evaluation.clone(), record.reward);
        anytime.see(&evaluation, score, spent);
        if spent >= budget {
            break;
        }
    }
    Ok(env.evaluations())
}

/// The uniform grid at `budget`: the most ratio levels whose grid fits, else the unpruned
/// grid's plans in a seeded order until the budget is spent.
fn uniform_grid(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    budget: usize,
    seed: u64,
) -> Result<(usize, Evaluation), AutomlError> {
    let space = evaluator.space().clone();
    let grid = |levels: usize| -> Vec<Decision> {
        let ratios: Vec<f32> = if levels <= 1 {
            vec![0.0]
        } else {
            (0..levels)
                .map(|i| space.max_prune * i as f32 / (levels - 1) as f32)
                .collect()
        };
        let mut decisions = Vec::new();
        for (candidate, cand) in space.candidates.iter().enumerate() {
            let sets: Vec<Vec<f32>> = if cand.prunable.is_empty() {
                vec![Vec::new()]
            } else {
                ratios
                    .iter()
                    .map(|&r| vec![r; cand.prunable.len()])
                    .collect()
            };
            for prune_ratios in sets {
                for codec in 0..cand.family.len() {
                    decisions.push(Decision {
                        candidate,
                        prune_ratios: prune_ratios.clone(),
                        codec,
                    });
                }
            }
        }
        decisions
    };
    let mut levels = 1;
    while grid(levels + 1).len() <= budget && levels < 1000 {
        levels += 1;
    }
    let mut decisions = grid(levels);
    if decisions.len() > budget {
        decisions.shuffle(&mut StdRng::seed_from_u64(seed));
        decisions.truncate(budget);
    }
    evaluator.begin_session();
    let mut best: Option<(Evaluation, f32)> = None;
    for decision in &decisions {
        let evaluation = evaluator.evaluate(decision)?;
        let score = reward.score(&evaluation);
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((evaluation, score));
        }
    }
    let (best, _) = best.ok_or_else(|| AutomlError::InvalidDecision("empty grid".into()))?;
    Ok((evaluator.session_evaluations(), best))
}

/// The plan a point of `[0, 1]^d` stands for: coordinate 0 the split, 1..=L the layers'
/// ratios (the first `prunable` of them), the last the codec. Outside the cube it is clamped.
fn decode(space: &SearchSpace, x: &[f64]) -> Decision {
    let at = |i: usize| x[i].clamp(0.0, 1.0) as f32;
    let candidate = space.candidate_for(at(0));
    let layers = space.candidates[candidate].prunable.len();
    Decision {
        candidate,
        prune_ratios: (0..layers).map(|l| space.ratio_for(at(1 + l))).collect(),
        codec: space.codec_for(candidate, at(x.len() - 1)),
    }
}

/// CMA-ES on the encoding of [`decode`], minimising `−reward` plus a penalty on the distance
/// outside the unit cube (Hansen's boundary handling by repair and penalty), restarted from a
/// new random mean when a whole generation brings no new plan; the plans spent.
fn cma_es(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    budget: usize,
    seed: u64,
    sigma0: f64,
    anytime: &mut Anytime<'_>,
) -> Result<usize, AutomlError> {
    let space = evaluator.space().clone();
    let dims = 2 + space
        .candidates
        .iter()
        .map(|c| c.prunable.len())
        .max()
        .unwrap_or(0);
    evaluator.begin_session();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC3A5_C85C_97CB_3127);
    let mut restarts = 0u64;
    let mut samples = 0;
    'outer: while !anytime.done() && samples < budget * PATIENCE_PER_PLAN {
        let mean: Vec<f64> = (0..dims).map(|_| rng.random::<f64>()).collect();
        let config = CmaEsConfig {
            sigma0,
            population: None,
            seed: seed.wrapping_mul(1000).wrapping_add(restarts),
        }
        .check()?;
        restarts += 1;
        let mut es = CmaEs::new(mean, &config)?;
        loop {
            let points = es.ask();
            let before = evaluator.session_evaluations();
            let mut scores = Vec::with_capacity(points.len());
            for x in &points {
                samples += 1;
                let evaluation = evaluator.evaluate(&decode(&space, x))?;
                let score = reward.score(&evaluation);
                let spent = evaluator.session_evaluations();
                anytime.see(&evaluation, score, spent);
                if spent >= budget {
                    break 'outer;
                }
                let outside: f64 = x.iter().map(|v| (v - v.clamp(0.0, 1.0)).powi(2)).sum();
                scores.push(-f64::from(score) + outside);
            }
            es.tell(&points, &scores)?;
            if evaluator.session_evaluations() == before || es.sigma() < 1e-8 {
                continue 'outer;
            }
        }
    }
    Ok(evaluator.session_evaluations())
}

/// The reference: refinement from the five best plans known, then random search, until the
/// evaluator holds `total` distinct plans; the best plan it holds.
fn reference_search(
    evaluator: &mut PlanEvaluator,
    reward: &Reward,
    total: usize,
) -> Result<Evaluation, AutomlError> {
    let best_known = |evaluator: &PlanEvaluator| -> Vec<Evaluation> {
        let mut all: Vec<Evaluation> = evaluator.evaluated().into_iter().cloned().collect();
        all.sort_by(|a, b| reward.score(b).total_cmp(&reward.score(a)));
        all
    };
    let mut round = 0u64;
    while evaluator.evaluations() < total && round < 64 {
        let missing = total - evaluator.evaluations();
        let starts: Vec<Evaluation> = best_known(evaluator).into_iter().take(20).collect();
        evaluator.begin_session();
        let config = RefineConfig {
            starts: 5,
            max_evaluations: missing.div_ceil(2),
            ratio_step: 0.05,
            patience: 10,
            unpruned_starts: false,
        }
        .check()?;
        refine(evaluator, reward, &starts, &config)?;
        let missing = total.saturating_sub(evaluator.evaluations());
        if missing > 0 {
            random_search(
                evaluator,
                reward,
                missing,
                missing * PATIENCE_PER_PLAN,
                0xDEC0_DE00 + round,
            )?;
        }
        round += 1;
    }
    best_known(evaluator)
        .into_iter()
        .next()
        .ok_or_else(|| AutomlError::InvalidDecision("the race evaluated no plan".into()))
}

/// Per method and budget, the spread over seeds.
fn summarise(runs: &[RaceRun], budgets: &[usize]) -> Vec<RaceSummary> {
    let mut out = Vec::new();
    for method in RaceMethod::ALL {
        for &budget in budgets {
            let these: Vec<&RaceRun> = runs
                .iter()
                .filter(|r| r.method == method.name() && r.budget == budget)
                .collect();
            if these.is_empty() {
                continue;
            }
            let spread = |f: &dyn Fn(&RaceRun) -> f64| {
                Spread::of(&these.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            out.push(RaceSummary {
                method: method.name().into(),
                budget,
                seeds: these.len(),
                reward: spread(&|r| f64::from(r.reward)),
                gap: spread(&|r| r.gap),
                latency_ms: spread(&|r| r.latency_ms),
                accuracy: spread(&|r| f64::from(r.accuracy)),
                evaluations: spread(&|r| r.evaluations as f64),
                within_one_percent: these.iter().filter(|r| r.gap <= 0.01).count(),
            });
        }
    }
    out
}

/// The race's table (Markdown): per method and budget, reward, gap, latency and accuracy of
/// the best plan (median [min, max] over seeds).
pub fn race_markdown(report: &RaceReport) -> String {
    let r = &report.reference;
    let mut md = format!(
        "Space: {} split points, up to {} prunable layers, {:?} codecs per split: {} plans on a \
         {}-level ratio grid ({:.2e} counting every kept-filter count). Backbone `{}`, validation \
         accuracy {:.2} % on {} images, reward {:?}.\n\nReference (best of {} distinct plans): \
         reward {:.4}, split {}, {}, kept {:?}, {:.3} ms, {:.2} %.\n\n",
        report.space.splits,
        report.space.prunable_layers,
        report.space.codecs,
        report.space.grid_plans,
        report.space.grid_levels,
        report.space.distinct_plans,
        report.model,
        100.0 * report.backbone_accuracy,
        report.validation_images,
        report.reward,
        r.evaluations,
        r.reward,
        r.split,
        r.codec,
        r.kept,
        r.latency_ms,
        100.0 * r.accuracy
    );
    md.push_str(
        "| method | budget | seeds | reward median [min, max] | gap to reference median [min, max] | \
         within 1 % | latency ms median [min, max] | accuracy median [min, max] | plans evaluated (median) |\n\
         |---|---:|---:|---|---|---:|---|---|---:|\n",
    );
    for s in &report.summary {
        md.push_str(&format!(
            "| {} | {} | {} | {:.4} [{:.4}, {:.4}] | {:.2} % [{:.2}, {:.2}] | {}/{} | {:.3} [{:.3}, {:.3}] | {:.1} % [{:.1}, {:.1}] | {:.0} |\n",
            s.method,
            s.budget,
            s.seeds,
            s.reward.median,
            s.reward.min,
            s.reward.max,
            100.0 * s.gap.median,
            100.0 * s.gap.min,
            100.0 * s.gap.max,
            s.within_one_percent,
            s.seeds,
            s.latency_ms.median,
            s.latency_ms.min,
            s.latency_ms.max,
            100.0 * s.accuracy.median,
            100.0 * s.accuracy.min,
            100.0 * s.accuracy.max,
            s.evaluations.median
        ));
    }
    md.push_str(&format!(
        "\nWall time of the race: {:.1} s ({:.3} s per distinct plan, agent updates included).\n",
        report.wall_s, report.seconds_per_plan
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn bad_race_settings_are_refused_by_name() {
        let cases = [
            (
                RaceConfig {
                    budgets: vec![],
                    ..RaceConfig::default()
                },
                "race.budgets",
            ),
            (
                RaceConfig {
                    budgets: vec![0, 10],
                    ..RaceConfig::default()
                },
                "race.budgets",
            ),
            (
                RaceConfig {
                    methods: vec![],
                    ..RaceConfig::default()
                },
                "race.methods",
            ),
            (
                RaceConfig {
                    seeds: 0,
                    ..RaceConfig::default()
                },
                "race.seeds",
            ),
            (
                RaceConfig {
                    reference_factor: 0,
                    ..RaceConfig::default()
                },
                "race.reference_factor",
            ),
            (
                RaceConfig {
                    refine_share: 1.0,
                    ..RaceConfig::default()
                },
                "race.refine_share",
            ),
            (
                RaceConfig {
                    cma_sigma0: -1.0,
                    ..RaceConfig::default()
                },
                "race.cma_sigma0",
            ),
        ];
        for (config, field) in cases {
            let err = config.check().unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let checked = RaceConfig {
            budgets: vec![200, 50, 50],
            ..RaceConfig::default()
        }
        .check()
        .unwrap();
        assert_eq!(checked.budgets, [50, 200]);
    }
}
