//! The interface between the agent and the problem it searches.

/// A sequential decision problem with one continuous action in `[0, 1]` per step.
///
/// An episode starts with [`reset`](Environment::reset) and runs [`step`](Environment::step)
/// until a [`Step`] says `done`. Following AMC, only the reward of the last step counts: the agent
/// assigns it to every transition of the episode, so intermediate rewards may be `0.0`.
pub trait Environment {
    /// The environment's own error type; the agent boxes it into
    /// [`AgentError::Environment`](crate::AgentError::Environment).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Length of every state vector this environment returns.
    fn state_dim(&self) -> usize;

    /// Starts an episode and returns its first state.
    fn reset(&mut self) -> Result<Vec<f32>, Self::Error>;

    /// Applies `action` (in `[0, 1]`) and returns the next state.
    fn step(&mut self, action: f32) -> Result<Step, Self::Error>;
}

/// What the environment returns for one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The next state (same length as [`Environment::state_dim`], also when `done`).
    pub state: Vec<f32>,
    /// The reward; the agent reads it only on the step that is `done`.
    pub reward: f32,
    /// Whether the episode ended with this step.
    pub done: bool,
    /// The action the environment really applied, in `[0, 1]`: the agent's action, or that
    /// action clipped (e.g. so that a resource budget stays reachable). The agent stores this
    /// one in its replay buffer, as AMC does.
    pub applied_action: f32,
}

impl Step {
    /// A step that applied the agent's action unchanged.
    pub fn new(state: Vec<f32>, reward: f32, done: bool, action: f32) -> Self {
        Self {
            state,
            reward,
            done,
            applied_action: action,
        }
    }

    /// Replaces the applied action (after clipping it).
    pub fn with_applied_action(mut self, applied_action: f32) -> Self {
        self.applied_action = applied_action;
        self
    }
}
