//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when importing or exporting an ONNX model.
///
/// Errors about the graph name the node (its name, or `#index` when it has none) and its
/// operator, so that a user sees at once which part of the model coinfer cannot take.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("{path}: not an ONNX model: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the protobuf decoder said.
        reason: String,
    },
    /// The model as a whole cannot be imported (no graph, several inputs, opset...).
    #[error("{path}: {reason}")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An operator coinfer does not import.
    #[error("node {node} ({op}): unsupported operator: {reason}")]
    UnsupportedOp {
        /// The node's name.
        node: String,
        /// Its operator type.
        op: String,
        /// What is supported instead.
        reason: String,
    },
    /// A supported operator with attributes or inputs coinfer cannot represent.
    #[error("node {node} ({op}): {reason}")]
    Unsupported {
        /// The node's name.
        node: String,
        /// Its operator type.
        op: String,
        /// Why it cannot be represented.
        reason: String,
    },
    /// A shape the network form needs statically is dynamic.
    #[error("node {node} ({op}): dynamic shape: {reason}")]
    DynamicShape {
        /// The node (or graph input) name.
        node: String,
        /// Its operator type (`input` for the graph input).
        op: String,
        /// Which dimension.
        reason: String,
    },
    /// A tensor is used by more than one node outside a residual block.
    #[error("node {node} ({op}): branch that is not a residual block: {reason}")]
    Branch {
        /// The node where the branch starts or ends.
        node: String,
        /// Its operator type.
        op: String,
        /// What was found.
        reason: String,
    },
    /// A weight (initializer) is missing, not `f32`, or has the wrong shape.
    #[error("node {node} ({op}): weight {tensor}: {reason}")]
    Weight {
        /// The node using it.
        node: String,
        /// Its operator type.
        op: String,
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The network description built from the graph is invalid.
    #[error("the imported network is invalid: {0}")]
    Network(#[from] coinfer_split::SplitError),
    /// Exporting a network or codec failed.
    #[error("export: {0}")]
    Export(String),
}

impl OnnxError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OnnxError {
        let path = path.into();
        move |source| OnnxError::Io { path, source }
    }
}
