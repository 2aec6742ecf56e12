//! The facade's error type: every sub-crate's error, plus the search's own.

use std::path::PathBuf;

/// Everything that can go wrong while building, running or reporting a co-inference search.
#[derive(Debug, thiserror::Error)]
pub enum AutomlError {
    /// Network spec, weights, split or training.
    #[error(transparent)]
    Split(#[from] coinfer_split::SplitError),
    /// Reading or batching data.
    #[error(transparent)]
    Data(#[from] coinfer_data::DataError),
    /// Pruning.
    #[error(transparent)]
    Sparsity(#[from] coinfer_sparsity::SparsityError),
    /// Feature codecs.
    #[error(transparent)]
    Codec(#[from] coinfer_codec::CodecError),
    /// Profiles and the latency model.
    #[error(transparent)]
    Profile(#[from] coinfer_profile::ProfileError),
    /// The DDPG agent.
    #[error(transparent)]
    Agent(#[from] coinfer_agent::AgentError),
    /// The runtime refused a setting or failed (plan sets served and run).
    #[error(transparent)]
    Runtime(#[from] coinfer_runtime::RuntimeError),
    /// A search setting is invalid.
    #[error("invalid search setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting's name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The builder is missing a required part.
    #[error("the search needs {0}: call `.{0}(..)` on the builder")]
    Missing(&'static str),
    /// An action or decision that does not fit the search space.
    #[error("invalid decision: {0}")]
    InvalidDecision(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be read or written.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An SVG plot could not be drawn.
    #[error("{path}: cannot draw the plot: {reason}")]
    Plot {
        /// The plot's file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The validation images the search would score plans on include images the backbone was
    /// trained on (its [`TrainedOn`](coinfer_split::TrainedOn) record says so).
    #[error(
        "{overlap} of the {validation} validation images are images the backbone was trained on \
         (it was trained on `{data}` with seed {seed} and {held_out} validation images held out): \
         plans would be scored on memorised images; {remedy}"
    )]
    ValidationOverlap {
        /// Validation images the backbone saw in training.
        overlap: usize,
        /// Validation images asked for.
        validation: usize,
        /// The backbone's training data, as recorded.
        data: String,
        /// The seed of the backbone's validation split.
        seed: u64,
        /// Validation images the backbone held out.
        held_out: usize,
        /// What to do about it.
        remedy: String,
    },
}

impl AutomlError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AutomlError {
        let path = path.into();
        move |source| AutomlError::Io { path, source }
    }
}
