//! DDPG against random actions on a deterministic toy problem with a known optimum, with the
//! same evaluation budget for both (one evaluation = one finished episode) and several seeds.
//!
//! The problem: six decisions `a_i` in `[0, 1]`, one per step; the episode's reward is
//! `1 - mse(a, TARGETS) / mse(0.5, TARGETS)`. The optimum is `a = TARGETS` (reward 1); all
//! decisions at 0.5 score 0. Random search over six dimensions rarely comes close with a small
//! budget, while DDPG learns each step's target from the shared reward.

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

/// Best reward of `BUDGET` episodes of uniform random actions (xorshift, seeded).
fn random_best(seed: u64) -> f32 {
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
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Best reward DDPG found in `BUDGET` episodes (its warm-up episodes included).
fn ddpg_best(seed: u64) -> f32 {
    let config = small_config(seed);
    let mut env = Targets::default();
    let mut agent = Ddpg::new(config, env.state_dim(), &Device::flex()).unwrap();
    let mut episodes = 0;
    agent.train(&mut env, BUDGET, |_| episodes += 1).unwrap();
    assert_eq!(episodes, BUDGET, "both methods get the same budget");
    agent.best().unwrap().reward
}

#[test]
fn ddpg_beats_random_actions_with_the_same_budget() {
    assert_eq!(reward(&TARGETS), 1.0, "the known optimum");
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
    let ddpg: Vec<f32> = SEEDS.iter().map(|&s| ddpg_best(s)).collect();
    let random: Vec<f32> = SEEDS.iter().map(|&s| random_best(s)).collect();
    println!("best of {BUDGET} episodes per seed {SEEDS:?}: DDPG {ddpg:?}, random {random:?}");
    assert!(
        mean(&ddpg) > mean(&random),
        "DDPG mean best {} ≤ random mean best {} (DDPG {ddpg:?}, random {random:?})",
        mean(&ddpg),
        mean(&random)
    );
}
