//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when costing, measuring, loading profiles or predicting latency.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A numeric setting is out of its valid range (negative or zero rate, NaN, ...).
    ///
    /// `field` names the culprit the way it is written in JSON, prefixed by its owner when the
    /// owner is known (`link.rate_bps`, `device.slowdown`, `table.blocks[3].median_s`).
    #[error("invalid value for `{field}`: {value} ({requirement})")]
    InvalidValue {
        /// The field, as written in JSON.
        field: String,
        /// The rejected value.
        value: f64,
        /// What the field must satisfy.
        requirement: &'static str,
    },
    /// A measurement option is invalid (zero repeats, zero batch size).
    #[error("invalid measurement option `{field}`: {reason}")]
    InvalidOption {
        /// The option's name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A measured profile table does not describe the network it is asked to cost.
    #[error("profile table of `{table}` does not match network `{network}`: {reason}")]
    TableMismatch {
        /// Name of the network the table was measured on.
        table: String,
        /// Name of the network being costed.
        network: String,
        /// The first difference found (block index, kind, shape...).
        reason: String,
    },
    /// A split point past the last block.
    #[error(
        "split point {split} is out of range: the network has {blocks} blocks (valid: 0..={blocks})"
    )]
    SplitOutOfRange {
        /// The requested split point.
        split: usize,
        /// Number of blocks.
        blocks: usize,
    },
    /// No preset of that name is shipped.
    #[error("unknown {kind} preset `{name}`; known: {known}")]
    UnknownPreset {
        /// `compute` or `link`.
        kind: &'static str,
        /// The requested name.
        name: String,
        /// The shipped names, comma separated.
        known: String,
    },
    /// A measured preset (e.g. `this-machine`) was resolved without a measured table.
    #[error(
        "preset `{preset}` scales a measured profile table; measure one first (measure_blocks) and pass it"
    )]
    TableRequired {
        /// The preset's name.
        preset: String,
    },
    /// The network spec itself is invalid.
    #[error("invalid network spec: {0}")]
    Spec(#[from] coinfer_split::SplitError),
    /// The backend failed while measuring.
    #[error("backend error while measuring {what}: {reason}")]
    Backend {
        /// What was being measured (`block 3`, `forward`).
        what: String,
        /// The backend's message.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document (a file, or an embedded preset) could not be parsed or written.
    #[error("{origin}: {source}")]
    Json {
        /// Where the JSON came from (a path or `preset <name>`).
        origin: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ProfileError> = std::result::Result<T, E>;

/// Rejects a value that is not finite and strictly positive.
pub(crate) fn check_positive(field: impl Into<String>, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ProfileError::InvalidValue {
            field: field.into(),
            value,
            requirement: "must be finite and greater than zero",
        })
    }
}

/// Rejects a value that is not finite and non-negative.
pub(crate) fn check_non_negative(field: impl Into<String>, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(ProfileError::InvalidValue {
            field: field.into(),
            value,
            requirement: "must be finite and at least zero",
        })
    }
}

impl ProfileError {
    /// Prefixes the field of an [`InvalidValue`](Self::InvalidValue) with its owner
    /// (`rate_bps` → `link.rate_bps`); other errors pass through.
    pub(crate) fn within(self, owner: &str) -> ProfileError {
        match self {
            ProfileError::InvalidValue {
                field,
                value,
                requirement,
            } => ProfileError::InvalidValue {
                field: format!("{owner}.{field}"),
                value,
                requirement,
            },
            other => other,
        }
    }
}
