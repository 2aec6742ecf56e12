//! The error type of this crate.

use coinfer_split::SplitError;

/// Everything that can go wrong when pruning, masking or costing a network.
#[derive(Debug, thiserror::Error)]
pub enum SparsityError {
    /// The spec itself is invalid (its shapes do not chain) or the pruned network could not be
    /// assembled.
    #[error(transparent)]
    Split(#[from] SplitError),
    /// A pruning ratio that is not a fraction of filters to remove in `[0, 1)`.
    #[error(
        "prunable layer {layer} (block {block}): pruning ratio {ratio} is not in [0, 1) \
         (it is the fraction of filters removed)"
    )]
    InvalidRatio {
        /// Position of the layer in [`prunable_layers`](crate::prunable_layers).
        layer: usize,
        /// Block index of the layer in the spec.
        block: usize,
        /// The rejected ratio.
        ratio: f32,
    },
    /// A ratio was given for a block that structured pruning cannot shrink.
    #[error("block {block} ({kind}) cannot be pruned: {reason}")]
    NotPrunable {
        /// Block index in the spec.
        block: usize,
        /// Kind of the block (`max_pool`, `conv_bn_relu`, ...).
        kind: &'static str,
        /// Why its filters cannot be removed.
        reason: String,
    },
    /// A block index past the end of the spec.
    #[error("block {block} is out of range: the network has {blocks} blocks")]
    BlockOutOfRange {
        /// The requested block.
        block: usize,
        /// Number of blocks in the spec.
        blocks: usize,
    },
    /// A per-layer list whose length is not the number of layers it describes.
    #[error("{what}: expected {expected} values (one per layer), got {got}")]
    WrongCount {
        /// What the list is (`pruning ratios`, `mask sparsities`).
        what: &'static str,
        /// Number of layers.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// The network's module does not match its spec (wrong block kind, parameter shape,
    /// shortcut, stride...).
    #[error("block {block} ({kind}): the weights do not match the spec: {reason}")]
    WeightsMismatch {
        /// Block index.
        block: usize,
        /// Kind of the block in the spec.
        kind: &'static str,
        /// What disagrees.
        reason: String,
    },
    /// A mask sparsity that is not a fraction of weights in `[0, 1]`.
    #[error("{layer}: sparsity {value} is not in [0, 1]")]
    InvalidSparsity {
        /// The layer (`block 3 conv1`) or `global`.
        layer: String,
        /// The rejected value.
        value: f32,
    },
    /// A tensor could not be read back from the backend.
    #[error("tensor readback failed: {0}")]
    Readback(String),
    /// A calibration batch without images (or with images of zero size).
    #[error("calibration: the batch {dims:?} holds no images; recovery needs at least one")]
    EmptyCalibration {
        /// Dimensions `[N, C, H, W]` of the rejected batch.
        dims: [usize; 4],
    },
    /// A calibration image holding a NaN or infinite value.
    #[error("calibration: image {image} holds a NaN or infinite value")]
    NonFiniteCalibration {
        /// Index of the first such image in the batch.
        image: usize,
    },
    /// Calibration images whose shape is not the network's input shape.
    #[error("calibration: images are {got:?} (C, H, W) but the network takes {expected:?}")]
    CalibrationShape {
        /// The network's input `[C, H, W]`.
        expected: [usize; 3],
        /// The calibration images' `[C, H, W]`.
        got: [usize; 3],
    },
    /// A calibration made with another network than the one being pruned.
    #[error(
        "calibration: made with the network of digest {expected}, not with this one ({got}); \
         build a Calibration for the network you prune"
    )]
    CalibrationNetwork {
        /// Digest of the network the calibration was made with.
        expected: String,
        /// Digest of the network given.
        got: String,
    },
    /// The least-squares reconstruction of a layer failed (a non-finite activation, or a
    /// layer this crate cannot refit).
    #[error("block {block}: cannot reconstruct {layer}: {reason}")]
    Reconstruction {
        /// Block index.
        block: usize,
        /// Which layer of the block (`conv`, `conv1`, `conv2`, `shortcut`, `linear`).
        layer: &'static str,
        /// What went wrong.
        reason: String,
    },
}
