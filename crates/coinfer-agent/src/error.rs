//! The crate's single error type.

use std::path::PathBuf;

use crate::config::ConfigField;

/// Everything that can go wrong while building, running or checkpointing a [`crate::Ddpg`] agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A [`crate::DdpgConfig`] field holds a value the agent cannot work with.
    #[error("invalid DdpgConfig.{field} = {value}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: ConfigField,
        /// The rejected value, as written in the config.
        value: String,
        /// What the field must satisfy.
        reason: &'static str,
    },

    /// A [`crate::CmaEs`] setting, start or told population is unusable.
    #[error("invalid CMA-ES {field}: {reason}")]
    InvalidCmaEs {
        /// The offending setting or argument (`sigma0`, `population`, `mean`, `scores`, ...).
        field: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// The agent was asked for a state dimension of zero.
    #[error("state_dim must be at least 1")]
    EmptyState,

    /// A state vector does not have the dimension the agent was built for.
    #[error("state dimension mismatch in {context}: expected {expected}, found {found}")]
    StateDimMismatch {
        /// Where the state came from (`"reset"`, `"step 3"`, `"act"`, a checkpoint...).
        context: String,
        /// The agent's state dimension.
        expected: usize,
        /// The length of the offending state vector.
        found: usize,
    },

    /// The environment failed in `reset` or `step`.
    #[error("environment failed in {during}")]
    Environment {
        /// `"reset"` or `"step N"` (0-based step index within the episode).
        during: String,
        /// The environment's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The environment returned something outside its contract (a non-finite state, reward or
    /// applied action, or an applied action outside `[0, 1]`).
    #[error("environment returned an invalid value in {during}: {reason}")]
    InvalidEnvOutput {
        /// `"reset"` or `"step N"`.
        during: String,
        /// What was wrong.
        reason: String,
    },

    /// The environment did not signal `done` within `max_episode_steps` steps.
    #[error("episode {episode} did not end within max_episode_steps = {max_steps}")]
    EpisodeTooLong {
        /// Index of the unfinished episode.
        episode: usize,
        /// The configured limit.
        max_steps: usize,
    },

    /// A network produced a non-finite value (training diverged).
    #[error("training diverged: {what} is not finite")]
    Diverged {
        /// The quantity that became non-finite.
        what: &'static str,
    },

    /// Reading or writing a checkpoint file failed.
    #[error("checkpoint I/O error on {path}")]
    CheckpointIo {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint file exists but its content is not what the agent wrote.
    #[error("bad checkpoint file {path}: {reason}")]
    CheckpointFormat {
        /// The offending file.
        path: PathBuf,
        /// What could not be parsed or did not match.
        reason: String,
    },
}

impl AgentError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::CheckpointIo {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::CheckpointFormat {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
