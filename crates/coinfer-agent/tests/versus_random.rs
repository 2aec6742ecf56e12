//! DDPG against random actions on a deterministic toy problem with a known optimum, with the
//! same evaluation budget for both (one evaluation = one finished episode) and several seeds:
//! after its budget, the agent's greedy policy must clear a bar that a random policy (uniform
//! actions for the same number of episodes, on average) and the untrained actor miss.
//!
//! The problem: six decisions `a_i` in `[0, 1]`, one per step; the episode's reward is
//! `1 - mse(a, TARGETS) / mse(0.5, TARGETS)`. The optimum is `a = TARGETS` (reward 1); all
//! decisions at 0.5 score 0. Random search over six dimensions rarely comes close with a small
//! budget, while DDPG learns each step's target from the shared reward. (Random *search*, which
//! keeps its best of the episodes, is not beaten by the greedy policy at this budget on every
//! seed; the test prints both.)

use burn::prelude::Device;
use coinfer_agent::{Ddpg, Environment, Step};

mod common;
use common::small_config;

const TARGETS: [f32; 6] = [0.1, 0.9, 0.25, 0.7, 0.15, 0.8];
/// Finished episodes each method may evaluate.
const BUDGET: usize = 120;
const SEEDS: [u64; 3] = [1, 2, 3];

fn reward(actions: &[f32]) -> f32 {
    let mse = |xs: &[f32]| -> f32 {
        xs.iter()
            .zip(TARGETS)
            .map(|(a, t)| (a - t).powi(2))
            .sum::<f32>()
            / TARGETS.len() as f32
    };
    1.0 - mse(actions) / mse(&[0.5; TARGETS.len()])
}

/// State: one-hot step index + the previous action.
#[derive(Default)]
struct Targets {
    actions: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

impl Targets {
    fn state(&self) -> Vec<f32> {
        let mut state = vec![0.0; TARGETS.len() + 1];
        let step = self.actions.len();
        if step < TARGETS.len() {
            state[step] = 1.0;
        }
        state[TARGETS.len()] = self.actions.last().copied().unwrap_or(0.0);
        state
    }
}

impl Environment for Targets {
    type Error = Never;

    fn state_dim(&self) -> usize {
        TARGETS.len() + 1
    }

    fn reset(&mut self) -> Result<Vec<f32>, Never> {
        self.actions.clear();
        Ok(self.state())
    }

    fn step(&mut self, action: f32) -> Result<Step, Never> {
        self.actions.push(action);
        let done = self.actions.len() == TARGETS.len();
        let r = if done { reward(&self.actions) } else { 0.0 };
        Ok(Step::new(self.state(), r, done, action))
    }
}

/// Rewards of `BUDGET` episodes of uniform random actions (xorshift, seeded): a random
/// policy, run as often as DDPG trains.
fn random_episodes(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut env = Targets::default();
    (0..BUDGET)
        .map(|_| {
            env.reset().unwrap();
            let mut last = f32::NAN;
            for _ in 0..TARGETS.len() {
                last = env.step(uniform()).unwrap().reward;
            }
            last
        })
        .collect()
}

/// The greedy policy's reward (actions `μ(s)`, no noise) after `episodes` training episodes.
fn greedy_after(seed: u64, episodes: usize) -> f32 {
    let config = small_config(seed);
    let mut env = Targets::default();
    let mut agent = Ddpg::new(config, env.state_dim(), &Device::flex()).unwrap();
    let mut trained = 0;
    agent.train(&mut env, episodes, |_| trained += 1).unwrap();
    assert_eq!(trained, episodes, "both methods get the same budget");
    agent.evaluate(&mut env).unwrap().reward
}

/// What the trained greedy policy must reach on every seed: half-way from "every decision at
/// 0.5" (reward 0) to the optimum (1). A random policy scores about -0.8 per episode on
/// average, and the untrained actor (outputs near 0.5) about 0.
const BAR: f32 = 0.5;

#[test]
fn the_trained_greedy_policy_clears_a_bar_a_random_policy_misses() {
    assert_eq!(reward(&TARGETS), 1.0, "the known optimum");
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
    let trained: Vec<f32> = SEEDS.iter().map(|&s| greedy_after(s, BUDGET)).collect();
    let untrained: Vec<f32> = SEEDS.iter().map(|&s| greedy_after(s, 0)).collect();
    let random: Vec<Vec<f32>> = SEEDS.iter().map(|&s| random_episodes(s)).collect();
    let random_mean: Vec<f32> = random.iter().map(|r| mean(r)).collect();
    // For the record: random search keeps its best episode, which a single policy cannot.
    let random_best: Vec<f32> = random
        .iter()
        .map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect();
    println!(
        "{{\"budget\":{BUDGET},\"seeds\":{SEEDS:?},\"bar\":{BAR},\"ddpg_greedy\":{trained:?},\
         \"untrained_greedy\":{untrained:?},\"random_policy_mean\":{random_mean:?},\
         \"random_search_best\":{random_best:?}}}"
    );
    // The bar discriminates: neither the untrained actor nor the random policy reaches it.
    for (i, seed) in SEEDS.iter().enumerate() {
        assert!(
            untrained[i] < BAR,
            "seed {seed}: the untrained policy scores {} ≥ {BAR}",
            untrained[i]
        );
        assert!(
            random_mean[i] < BAR,
            "seed {seed}: the random policy averages {} ≥ {BAR}",
            random_mean[i]
        );
        assert!(
            trained[i] >= BAR,
            "seed {seed}: the greedy policy after {BUDGET} episodes scores {} < {BAR} \
             (all seeds: {trained:?})",
            trained[i]
        );
    }
}
