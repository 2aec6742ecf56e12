//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when describing, building, splitting, saving or training a
/// network.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The network's input shape has a zero dimension.
    #[error("invalid network input shape {input:?}: every dimension must be at least 1")]
    InvalidInput {
        /// The offending `[channels, height, width]`.
        input: [usize; 3],
    },
    /// A block cannot run on the shape produced by the blocks before it.
    #[error("block {index} ({kind}): {reason}")]
    InvalidBlock {
        /// Position of the block in the spec.
        index: usize,
        /// Kind of the block (`conv_bn_relu`, `linear`, ...).
        kind: &'static str,
        /// Why it does not fit.
        reason: String,
    },
    /// The spec has no blocks.
    #[error("the network has no blocks")]
    EmptyNetwork,
    /// The network does not end in a flat vector of logits.
    #[error(
        "the network must end in a flat vector of logits (flatten + linear); it ends in {shape:?}"
    )]
    NoClassifierHead {
        /// The last activation's `[channels, height, width]`.
        shape: [usize; 3],
    },
    /// A split point past the last block.
    #[error(
        "split point {at} is out of range: the network has {blocks} blocks (valid: 0..={blocks})"
    )]
    SplitOutOfRange {
        /// The requested split point.
        at: usize,
        /// Number of blocks.
        blocks: usize,
    },
    /// An input tensor whose per-sample shape is not the one the network expects.
    #[error("input shape {got:?} does not match the network input [batch, {expected:?}]")]
    InputShape {
        /// Expected `[channels, height, width]`.
        expected: [usize; 3],
        /// The tensor's dims.
        got: Vec<usize>,
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
    /// A saved network file is corrupt or not a coinfer network.
    #[error("{path}: not a valid coinfer network file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The weights do not fit the spec (missing tensors, wrong shapes).
    #[error("weights do not match the network spec: {0}")]
    Weights(String),
    /// A training or evaluation setting is invalid.
    #[error("invalid training option `{field}`: {reason}")]
    InvalidOption {
        /// The option's name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The data could not be read or batched.
    #[error(transparent)]
    Data(#[from] coinfer_data::DataError),
    /// The dataset does not fit the network (image shape or number of classes).
    #[error("dataset does not fit the network: {0}")]
    DatasetMismatch(String),
    /// A tensor could not be read back from the backend.
    #[error("tensor readback failed: {0}")]
    Readback(String),
}
