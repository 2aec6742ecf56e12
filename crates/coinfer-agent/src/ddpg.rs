//! The DDPG agent and its search loop.

use std::fmt;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use chacha20::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};

use crate::baseline::MovingAverage;
use crate::config::{CheckedDdpgConfig, DdpgConfig};
use crate::env::Environment;
use crate::error::AgentError;
use crate::network::{Actor, Critic};
use crate::noise::{TruncatedNormal, sigma_at};
use crate::replay::{ReplayBuffer, Transition};
use crate::target::soft_update;

/// What one training episode did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOutcome {
    /// 0-based index of the episode since the agent was created.
    pub episode: usize,
    /// The episode's (final-step) reward.
    pub reward: f32,
    /// The actions the environment applied, one per step.
    pub actions: Vec<f32>,
    /// Whether the actions were warm-up (uniform random) ones; no learning happens then.
    pub warmup: bool,
    /// Standard deviation of the exploration noise (`None` during warm-up).
    pub sigma: Option<f32>,
    /// Mean critic loss over the updates run after the episode (`None` if none ran).
    pub critic_loss: Option<f32>,
    /// Mean `Q(s, μ(s))` over the updates' batches, the quantity the actor ascends.
    pub policy_value: Option<f32>,
}

/// The best episode seen so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestEpisode {
    /// Its index.
    pub episode: usize,
    /// Its reward.
    pub reward: f32,
    /// Its applied actions.
    pub actions: Vec<f32>,
}

/// A greedy (noise-free, non-learning) episode, see [`Ddpg::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// The episode's (final-step) reward.
    pub reward: f32,
    /// The actions the environment applied.
    pub actions: Vec<f32>,
}

/// Means of the per-update statistics of one learning phase.
struct LearnStats {
    critic_loss: f32,
    policy_value: f32,
}

/// A DDPG agent (Lillicrap et al. 2016) with AMC's search protocol (He et al. 2018).
///
/// Per episode: warm-up episodes act uniformly at random; later ones draw each action from a
/// normal distribution around the actor's output truncated to `[0, 1]`, with σ decaying per
/// episode. When the episode ends, its final reward is given to every transition, they enter the
/// replay buffer, and (after warm-up) `updates_per_step` gradient updates run per transition:
/// the sampled rewards minus a moving-average baseline, the critic regressed on
/// `r + γ·Q'(s', μ'(s'))` (not bootstrapped at `done`), the actor ascending `Q(s, μ(s))`, and
/// both target networks soft-updated.
pub struct Ddpg {
    pub(crate) config: DdpgConfig,
    pub(crate) state_dim: usize,
    /// Inference device (targets, acting).
    pub(crate) device: Device,
    /// The same device with autodiff (online networks).
    pub(crate) train_device: Device,
    pub(crate) actor: Actor,
    pub(crate) critic: Critic,
    pub(crate) actor_target: Actor,
    pub(crate) critic_target: Critic,
    pub(crate) actor_optim: ModuleOptimizer,
    pub(crate) critic_optim: ModuleOptimizer,
    pub(crate) replay: ReplayBuffer,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) episode: usize,
    pub(crate) baseline: MovingAverage,
    pub(crate) best: Option<BestEpisode>,
}

impl fmt::Debug for Ddpg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ddpg")
            .field("config", &self.config)
            .field("state_dim", &self.state_dim)
            .field("episode", &self.episode)
            .field("replay_len", &self.replay.len())
            .field("baseline", &self.baseline.value())
            .field("best", &self.best.as_ref().map(|b| (b.episode, b.reward)))
            .finish_non_exhaustive()
    }
}

fn tensor2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len().max(1) as f32
}

/// Checks a state from the environment: dimension and finiteness.
fn checked_state(
    state: Vec<f32>,
    dim: usize,
    during: impl Fn() -> String,
) -> Result<Vec<f32>, AgentError> {
    if state.len() != dim {
        return Err(AgentError::StateDimMismatch {
            context: during(),
            expected: dim,
            found: state.len(),
        });
    }
    if let Some(index) = state.iter().position(|x| !x.is_finite()) {
        return Err(AgentError::InvalidEnvOutput {
            during: during(),
            reason: format!("state[{index}] = {}", state[index]),
        });
    }
    Ok(state)
}

/// One finished episode before it is stored: `(s, a, s', done)` per step and the final reward.
struct Trajectory {
    steps: Vec<(Vec<f32>, f32, Vec<f32>, bool)>,
    reward: f32,
}

/// Runs one episode of `env`, choosing actions with `choose`.
fn roll_out<E: Environment>(
    env: &mut E,
    state_dim: usize,
    max_steps: usize,
    episode: usize,
    mut choose: impl FnMut(&[f32]) -> Result<f32, AgentError>,
) -> Result<Trajectory, AgentError> {
    if env.state_dim() != state_dim {
        return Err(AgentError::StateDimMismatch {
            context: "Environment::state_dim".into(),
            expected: state_dim,
            found: env.state_dim(),
        });
    }
    let state = env.reset().map_err(|e| AgentError::Environment {
        during: "reset".into(),
        source: Box::new(e),
    })?;
    let mut state = checked_state(state, state_dim, || "reset".into())?;
    let mut steps = Vec::new();
    for index in 0..max_steps {
        let during = || format!("step {index}");
        let action = choose(&state)?;
        let step = env.step(action).map_err(|e| AgentError::Environment {
            during: during(),
            source: Box::new(e),
        })?;
        let next = checked_state(step.state, state_dim, during)?;
        let applied = step.applied_action;
        if !(0.0..=1.0).contains(&applied) {
            return Err(AgentError::InvalidEnvOutput {
                during: during(),
                reason: format!("applied_action = {applied} is not in [0, 1]"),
            });
        }
        if step.done && !step.reward.is_finite() {
            return Err(AgentError::InvalidEnvOutput {
                during: during(),
                reason: format!("final reward = {}", step.reward),
            });
        }
        steps.push((state, applied, next.clone(), step.done));
        if step.done {
            return Ok(Trajectory {
                steps,
                reward: step.reward,
            });
        }
        state = next;
    }
    Err(AgentError::EpisodeTooLong { episode, max_steps })
}

impl Ddpg {
    /// A fresh agent for states of length `state_dim`, its networks on `device` (autodiff is
    /// added for training; pass a plain device).
    ///
    /// Everything random the agent does (weight initialisation, exploration, replay sampling)
    /// draws from one ChaCha8 generator seeded with `config.seed`, so the same seed on the same
    /// backend replays the same search.
    pub fn new(config: DdpgConfig, state_dim: usize, device: &Device) -> Result<Self, AgentError> {
        Ddpg::with_config(config.checked()?, state_dim, device)
    }

    /// [`new`](Self::new) with a config checked before (by a caller that checks its settings
    /// once, where they enter).
    pub fn with_config(
        config: CheckedDdpgConfig,
        state_dim: usize,
        device: &Device,
    ) -> Result<Self, AgentError> {
        let config = config.into_inner();
        if state_dim == 0 {
            return Err(AgentError::EmptyState);
        }
        let device = device.clone().inner();
        let train_device = device.clone().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let actor = Actor::new(
            state_dim,
            &config.hidden,
            config.layer_norm,
            &mut rng,
            &train_device,
        );
        let critic = Critic::new(
            state_dim,
            &config.hidden,
            config.layer_norm,
            &mut rng,
            &train_device,
        );
        Ok(Self {
            actor_target: actor.valid(),
            critic_target: critic.valid(),
            actor,
            critic,
            actor_optim: AdamConfig::new().init(),
            critic_optim: AdamConfig::new().init(),
            replay: ReplayBuffer::new(config.replay_capacity),
            rng,
            episode: 0,
            baseline: MovingAverage::new(config.baseline_decay),
            best: None,
            state_dim,
            device,
            train_device,
            config,
        })
    }

    /// The agent's hyper-parameters.
    pub fn config(&self) -> &DdpgConfig {
        &self.config
    }

    /// Length of the state vectors the agent expects.
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }

    /// Number of training episodes completed (the index of the next one).
    pub fn episodes_done(&self) -> usize {
        self.episode
    }

    /// Whether the next episode is a warm-up (uniform random) one.
    pub fn in_warmup(&self) -> bool {
        self.episode < self.config.warmup_episodes
    }

    /// Exploration σ of the next episode (`None` during warm-up).
    pub fn sigma(&self) -> Option<f32> {
        sigma_at(
            self.episode,
            self.config.warmup_episodes,
            self.config.noise_sigma0,
            self.config.noise_decay,
        )
    }

    /// The current reward baseline (`None` before the first update).
    pub fn baseline(&self) -> Option<f32> {
        self.baseline.value()
    }

    /// The replay buffer.
    pub fn replay(&self) -> &ReplayBuffer {
        &self.replay
    }

    /// The best training episode so far (by reward; the earliest wins ties).
    pub fn best(&self) -> Option<&BestEpisode> {
        self.best.as_ref()
    }

    /// The action for `state`: with `explore`, a warm-up uniform draw or a truncated-normal draw
    /// around the actor's output; without, the actor's output `μ(s)`.
    pub fn act(&mut self, state: &[f32], explore: bool) -> Result<f32, AgentError> {
        if state.len() != self.state_dim {
            return Err(AgentError::StateDimMismatch {
                context: "act".into(),
                expected: self.state_dim,
                found: state.len(),
            });
        }
        if !explore {
            return self.policy(state);
        }
        match self.sigma() {
            None => Ok(self.rng.random_range(0.0..=1.0)),
            Some(sigma) => {
                let mean = self.policy(state)?;
                let noise = TruncatedNormal::new(mean, sigma).ok_or(AgentError::Diverged {
                    what: "actor output",
                })?;
                Ok(noise.sample(&mut self.rng))
            }
        }
    }

    /// `μ(s)` for one state of the right length.
    fn policy(&self, state: &[f32]) -> Result<f32, AgentError> {
        let input = tensor2(state.to_vec(), [1, self.state_dim], &self.device);
        let action = self.actor.valid().forward(input).into_scalar::<f32>();
        if action.is_finite() {
            Ok(action)
        } else {
            Err(AgentError::Diverged {
                what: "actor output",
            })
        }
    }

    /// Runs one training episode on `env`: explore, store the transitions, learn (after warm-up).
    ///
    /// If the environment fails mid-episode the error is returned, nothing is stored and the
    /// episode counter does not advance (the random generator does).
    pub fn run_episode<E: Environment>(
        &mut self,
        env: &mut E,
    ) -> Result<EpisodeOutcome, AgentError> {
        let episode = self.episode;
        let sigma = self.sigma();
        let (state_dim, max_steps) = (self.state_dim, self.config.max_episode_steps);
        let trajectory = roll_out(env, state_dim, max_steps, episode, |s| self.act(s, true))?;
        let actions: Vec<f32> = trajectory.steps.iter().map(|step| step.1).collect();
        let updates = trajectory.steps.len() * self.config.updates_per_step;
        for (state, action, next_state, done) in trajectory.steps {
            self.replay.push(Transition {
                state,
                action,
                reward: trajectory.reward,
                next_state,
                done,
            });
        }
        let stats = match sigma {
            Some(_) => Some(self.learn(updates)?),
            None => None,
        };
        self.episode += 1;
        if self
            .best
            .as_ref()
            .is_none_or(|b| trajectory.reward > b.reward)
        {
            self.best = Some(BestEpisode {
                episode,
                reward: trajectory.reward,
                actions: actions.clone(),
            });
        }
        Ok(EpisodeOutcome {
            episode,
            reward: trajectory.reward,
            actions,
            warmup: sigma.is_none(),
            sigma,
            critic_loss: stats.as_ref().map(|s| s.critic_loss),
            policy_value: stats.as_ref().map(|s| s.policy_value),
        })
    }

    /// Runs `episodes` training episodes, calling `on_episode` after each.
    pub fn train<E: Environment>(
        &mut self,
        env: &mut E,
        episodes: usize,
        mut on_episode: impl FnMut(&EpisodeOutcome),
    ) -> Result<(), AgentError> {
        for _ in 0..episodes {
            let outcome = self.run_episode(env)?;
            on_episode(&outcome);
        }
        Ok(())
    }

    /// Runs one greedy episode (actions `μ(s)`, no noise, nothing stored or learned).
    pub fn evaluate<E: Environment>(&self, env: &mut E) -> Result<Rollout, AgentError> {
        let trajectory = roll_out(
            env,
            self.state_dim,
            self.config.max_episode_steps,
            self.episode,
            |s| self.policy(s),
        )?;
        Ok(Rollout {
            reward: trajectory.reward,
            actions: trajectory.steps.iter().map(|step| step.1).collect(),
        })
    }

    /// Runs `updates` gradient updates and returns their mean statistics.
    fn learn(&mut self, updates: usize) -> Result<LearnStats, AgentError> {
        let mut critic_losses = Vec::with_capacity(updates);
        let mut policy_values = Vec::with_capacity(updates);
        for _ in 0..updates {
            let (critic_loss, policy_value) = self.update()?;
            critic_losses.push(critic_loss);
            policy_values.push(policy_value);
        }
        Ok(LearnStats {
            critic_loss: mean(&critic_losses),
            policy_value: mean(&policy_values),
        })
    }

    /// One DDPG update on a sampled batch; returns (critic loss, mean `Q(s, μ(s))`).
    pub(crate) fn update(&mut self) -> Result<(f32, f32), AgentError> {
        let Some(batch) = self.replay.sample(&mut self.rng, self.config.batch_size) else {
            return Ok((0.0, 0.0));
        };
        let baseline = self.baseline.observe(mean(&batch.rewards));
        let rewards: Vec<f32> = batch.rewards.iter().map(|r| r - baseline).collect();
        let (n, dim) = (batch.len, self.state_dim);

        let target_q = {
            let next_states = tensor2(batch.next_states, [n, dim], &self.device);
            let next_actions = self.actor_target.forward(next_states.clone());
            let next_q = self.critic_target.forward(next_states, next_actions);
            let not_done = tensor2(batch.not_done, [n, 1], &self.device);
            tensor2(rewards, [n, 1], &self.device)
                + next_q * not_done.mul_scalar(self.config.discount)
        };
        let states = tensor2(batch.states, [n, dim], &self.train_device);
        let actions = tensor2(batch.actions, [n, 1], &self.train_device);
        let critic_loss = self.critic_loss(states.clone(), actions, target_q.autodiff());
        let critic_loss_value = critic_loss.clone().into_scalar::<f32>();
        if !critic_loss_value.is_finite() {
            return Err(AgentError::Diverged {
                what: "critic loss",
            });
        }
        let grads = GradientsParams::from_grads(critic_loss.backward(), &self.critic);
        self.critic = self
            .critic_optim
            .step(self.config.critic_lr, self.critic.clone(), grads);

        // The critic's weights are constants for the actor's step; only μ(s) carries gradients.
        let critic = self.critic.clone().no_grad();
        let policy_value = critic
            .forward(states.clone(), self.actor.forward(states))
            .mean();
        let policy_value_scalar = policy_value.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(policy_value.neg().backward(), &self.actor);
        self.actor = self
            .actor_optim
            .step(self.config.actor_lr, self.actor.clone(), grads);

        self.actor_target = soft_update(self.actor_target.clone(), &self.actor, self.config.tau);
        self.critic_target = soft_update(self.critic_target.clone(), &self.critic, self.config.tau);
        Ok((critic_loss_value, policy_value_scalar))
    }

    /// Mean squared error of the online critic against `target_q` on a batch.
    fn critic_loss(&self, states: Tensor<2>, actions: Tensor<2>, target_q: Tensor<2>) -> Tensor<1> {
        (self.critic.forward(states, actions) - target_q)
            .powi_scalar(2)
            .mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Step;
    use crate::target::flat_params;

    const TARGET: f32 = 0.8;

    /// One-step continuous bandit: reward `1 - 4(a - 0.8)²`.
    struct Bandit;

    #[derive(Debug, thiserror::Error)]
    #[error("bandit failure")]
    struct BanditError;

    impl Environment for Bandit {
        type Error = BanditError;
        fn state_dim(&self) -> usize {
            2
        }
        fn reset(&mut self) -> Result<Vec<f32>, BanditError> {
            Ok(vec![1.0, 0.0])
        }
        fn step(&mut self, action: f32) -> Result<Step, BanditError> {
            let reward = 1.0 - 4.0 * (action - TARGET).powi(2);
            Ok(Step::new(vec![0.0, 1.0], reward, true, action))
        }
    }

    fn small_config() -> DdpgConfig {
        DdpgConfig {
            hidden: vec![32, 32],
            batch_size: 32,
            warmup_episodes: 0,
            seed: 11,
            ..DdpgConfig::default()
        }
    }

    /// Fills the buffer with bandit transitions at evenly spread actions.
    fn fill(agent: &mut Ddpg, count: usize) {
        for i in 0..count {
            let action = i as f32 / (count - 1) as f32;
            let step = Bandit.step(action).unwrap();
            agent.replay.push(Transition {
                state: vec![1.0, 0.0],
                action,
                reward: step.reward,
                next_state: step.state,
                done: true,
            });
        }
    }

    /// Critic loss on the whole buffer against the (done-masked) rewards minus the baseline.
    fn critic_loss_on_buffer(agent: &Ddpg) -> f32 {
        let transitions: Vec<&Transition> = agent.replay.iter().collect();
        let n = transitions.len();
        let baseline = agent.baseline.value().unwrap_or(0.0);
        let states = transitions.iter().flat_map(|t| t.state.clone()).collect();
        let actions = transitions.iter().map(|t| t.action).collect();
        let targets = transitions.iter().map(|t| t.reward - baseline).collect();
        let device = &agent.train_device;
        agent
            .critic_loss(
                tensor2(states, [n, 2], device),
                tensor2(actions, [n, 1], device),
                tensor2(targets, [n, 1], device),
            )
            .into_scalar::<f32>()
    }

    #[test]
    fn updates_change_the_critic_reduce_its_loss_and_move_the_actor_to_the_optimum() {
        let mut agent = Ddpg::new(small_config(), 2, &Device::flex()).unwrap();
        fill(&mut agent, 41);
        let critic_before = flat_params(&agent.critic);
        let target_before = flat_params(&agent.critic_target);
        let action_before = agent.act(&[1.0, 0.0], false).unwrap();
        agent.update().unwrap();
        let loss_before = critic_loss_on_buffer(&agent);
        for _ in 0..1200 {
            agent.update().unwrap();
        }
        let loss_after = critic_loss_on_buffer(&agent);
        let action_after = agent.act(&[1.0, 0.0], false).unwrap();

        assert_ne!(
            flat_params(&agent.critic),
            critic_before,
            "critic did not change"
        );
        assert_ne!(
            flat_params(&agent.critic_target),
            target_before,
            "target did not follow"
        );
        assert!(
            loss_after < 0.1 * loss_before,
            "critic loss {loss_before} -> {loss_after} did not drop"
        );
        let (gap_before, gap_after) = (
            (action_before - TARGET).abs(),
            (action_after - TARGET).abs(),
        );
        assert!(
            gap_after < 0.25 * gap_before,
            "greedy action {action_before} -> {action_after}, target {TARGET}"
        );
    }

    #[test]
    fn warmup_episodes_are_uniform_and_do_not_learn() {
        let config = DdpgConfig {
            warmup_episodes: 3,
            ..small_config()
        };
        let mut agent = Ddpg::new(config, 2, &Device::flex()).unwrap();
        let actor_before = flat_params(&agent.actor);
        for episode in 0..3 {
            let outcome = agent.run_episode(&mut Bandit).unwrap();
            assert!(outcome.warmup && outcome.sigma.is_none() && outcome.critic_loss.is_none());
            assert_eq!(outcome.episode, episode);
        }
        assert_eq!(flat_params(&agent.actor), actor_before);
        assert_eq!(agent.replay().len(), 3);
        let outcome = agent.run_episode(&mut Bandit).unwrap();
        assert!(!outcome.warmup);
        assert_eq!(outcome.sigma, Some(0.5));
        assert!(outcome.critic_loss.is_some());
        assert_ne!(flat_params(&agent.actor), actor_before);
        assert_eq!(agent.sigma(), Some(0.5 * 0.95));
    }

    #[test]
    fn agent_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Ddpg>();
    }

    #[test]
    fn best_episode_tracks_the_maximum_reward() {
        let mut agent = Ddpg::new(small_config(), 2, &Device::flex()).unwrap();
        let mut rewards = Vec::new();
        agent
            .train(&mut Bandit, 5, |o| rewards.push(o.reward))
            .unwrap();
        let best = agent.best().unwrap();
        let max = rewards.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(best.reward, max);
        assert_eq!(rewards[best.episode], max);
        assert_eq!(best.actions.len(), 1);
    }
}
