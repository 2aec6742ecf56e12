//! Which layers structured pruning may shrink, and what else shrinks with them.
//!
//! # The rule
//! A layer is prunable when removing some of its output filters can be matched by removing the
//! same input channels from everything that reads them, without touching a residual sum:
//!
//! - **The inner convolution (`conv1`) of every [`BlockSpec::BasicBlock`]**: its output is the
//!   block's `mid_channels`, read only by `conv2`. The block's output stays tied to the skip
//!   path and is never pruned (as in AMC and the reference three-step framework).
//! - **A [`BlockSpec::ConvBnRelu`]** whose channels, after any pooling blocks (which pass
//!   channels through), are read by
//!   - another `ConvBnRelu` (its convolution loses input channels);
//!   - a `BasicBlock` whose shortcut is a projection whatever the pruning: stride ≠ 1, or fewer
//!     input than output channels (then `conv1` and the projection's 1×1 convolution both lose
//!     input channels);
//!   - `Flatten` then `Linear` (the linear layer loses the `height × width` input rows of every
//!     removed channel).
//!
//! Not prunable: a `ConvBnRelu` that feeds a `BasicBlock` with an **identity** shortcut (its
//! channels are added to the block's output, so they are tied to the residual path), or one
//! with a stride-1 projection from more to fewer channels (pruning could make the input width
//! equal the output width, which turns the shortcut into an identity that has no weights to
//! keep); a `ConvBnRelu` that nothing after it reads (the last block of a device half);
//! pooling, flatten and linear blocks.

use coinfer_split::{BlockSpec, FeatureShape, NetSpec};
use serde::{Deserialize, Serialize};

use crate::SparsityError;

/// Which convolution a [`PrunableLayer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrunableKind {
    /// The convolution of a [`BlockSpec::ConvBnRelu`]; pruning lowers its `out_channels`.
    ConvBnRelu,
    /// The inner `conv1` of a [`BlockSpec::BasicBlock`]; pruning lowers its `mid_channels`.
    BasicBlockInner,
    /// The pointwise convolution of a [`BlockSpec::DepthwiseSeparable`]; pruning lowers its
    /// `out_channels`.
    DepthwiseSeparablePointwise,
    /// The expansion convolution of a [`BlockSpec::InvertedResidual`]; pruning lowers its
    /// `expand_channels`.
    InvertedResidualExpand,
}

/// One layer whose filters structured pruning can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunableLayer {
    /// Index of the block in the spec.
    pub block: usize,
    /// Which convolution of the block.
    pub kind: PrunableKind,
    /// Its current number of filters (output channels).
    pub channels: usize,
    /// The block whose input channels shrink with it: `block` itself for a basic block's
    /// inner convolution and an inverted residual's expansion, a later block for a
    /// conv-bn-relu and a depthwise-separable block. Pruning a layer whose consumer
    /// lies past a split point changes the edge half too, so prune the whole network and then
    /// split it.
    pub consumer: usize,
}

/// The block that reads a prunable layer's output channels and must lose the same inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consumer {
    /// Layers of the same block: `conv2` of a basic block; the depthwise convolution (its
    /// filters) and the projection (its inputs) of an inverted residual.
    Own,
    /// The convolution of the `ConvBnRelu` at this block.
    Conv(usize),
    /// The depthwise convolution (its filters) and the pointwise convolution (its inputs) of
    /// the depthwise-separable block at this block.
    Depthwise(usize),
    /// The expansion convolution of the inverted residual at this block.
    Expand(usize),
    /// `conv1` and the projection shortcut of the basic block at this block.
    Projection(usize),
    /// The linear layer at this block, after a flatten of `spatial = height × width` per channel.
    Linear {
        /// Block index of the linear layer.
        block: usize,
        /// Rows of the linear weight per input channel.
        spatial: usize,
    },
}

impl Consumer {
    /// The consumer's block index; `own` for layers of the same block.
    fn block(self, own: usize) -> usize {
        match self {
            Consumer::Own => own,
            Consumer::Conv(block)
            | Consumer::Depthwise(block)
            | Consumer::Expand(block)
            | Consumer::Projection(block) => block,
            Consumer::Linear { block, .. } => block,
        }
    }
}

/// The prunable layers of `spec`, in block order (see the [module docs](self) for the rule).
///
/// A per-layer ratio vector ([`PruneRatios::PerLayer`](crate::PruneRatios::PerLayer)) is
/// aligned with this list.
///
/// ```
/// use coinfer_split::zoo;
/// use coinfer_sparsity::{prunable_layers, PrunableKind};
///
/// let layers = prunable_layers(&zoo::resnet_mini(10))?;
/// // The stem feeds a stride-2 block (projection shortcut); then the three inner convolutions.
/// assert_eq!(layers.iter().map(|l| l.block).collect::<Vec<_>>(), [0, 1, 2, 3]);
/// assert_eq!(layers[0].kind, PrunableKind::ConvBnRelu);
/// assert_eq!(layers[0].consumer, 1);
/// assert!(layers[1..].iter().all(|l| l.kind == PrunableKind::BasicBlockInner));
/// # Ok::<(), coinfer_sparsity::SparsityError>(())
/// ```
pub fn prunable_layers(spec: &NetSpec) -> Result<Vec<PrunableLayer>, SparsityError> {
    let shapes = spec.shapes()?;
    Ok((0..spec.blocks.len())
        .filter_map(|block| {
            let layer = layer_at(spec, &shapes, block).ok()?;
            Some(layer.0)
        })
        .collect())
}

/// The prunable layer at `block` and its consumer, or why the block cannot be pruned.
/// `shapes` are `spec.shapes()`.
pub(crate) fn layer_at(
    spec: &NetSpec,
    shapes: &[FeatureShape],
    block: usize,
) -> Result<(PrunableLayer, Consumer), SparsityError> {
    let Some(block_spec) = spec.blocks.get(block) else {
        return Err(SparsityError::BlockOutOfRange {
            block,
            blocks: spec.blocks.len(),
        });
    };
    let not_prunable = |reason: String| SparsityError::NotPrunable {
        block,
        kind: block_spec.kind(),
        reason,
    };
    match *block_spec {
        BlockSpec::BasicBlock { mid_channels, .. } => Ok((
            PrunableLayer {
                block,
                kind: PrunableKind::BasicBlockInner,
                channels: mid_channels,
                consumer: block,
            },
            Consumer::Own,
        )),
        BlockSpec::InvertedResidual {
            expand_channels, ..
        } => Ok((
            PrunableLayer {
                block,
                kind: PrunableKind::InvertedResidualExpand,
                channels: expand_channels,
                consumer: block,
            },
            Consumer::Own,
        )),
        BlockSpec::ConvBnRelu { out_channels, .. }
        | BlockSpec::DepthwiseSeparable { out_channels, .. } => {
            let consumer = conv_consumer(spec, shapes, block).map_err(not_prunable)?;
            let kind = if matches!(block_spec, BlockSpec::ConvBnRelu { .. }) {
                PrunableKind::ConvBnRelu
            } else {
                PrunableKind::DepthwiseSeparablePointwise
            };
            Ok((
                PrunableLayer {
                    block,
                    kind,
                    channels: out_channels,
                    consumer: consumer.block(block),
                },
                consumer,
            ))
        }
        _ => Err(not_prunable(
            "only convolutions (conv_bn_relu, the inner conv of basic_block, the pointwise conv \
             of depthwise_separable, the expansion of inverted_residual) have filters to remove"
                .into(),
        )),
    }
}

/// The block reading the output of the `ConvBnRelu` or depthwise-separable block at `block`,
/// skipping pooling.
fn conv_consumer(
    spec: &NetSpec,
    shapes: &[FeatureShape],
    block: usize,
) -> Result<Consumer, String> {
    for (next, next_spec) in spec.blocks.iter().enumerate().skip(block + 1) {
        match *next_spec {
            BlockSpec::MaxPool { .. } | BlockSpec::AvgPool { .. } | BlockSpec::GlobalAvgPool => {}
            BlockSpec::ConvBnRelu { .. } => return Ok(Consumer::Conv(next)),
            BlockSpec::DepthwiseSeparable { .. } => return Ok(Consumer::Depthwise(next)),
            BlockSpec::InvertedResidual {
                out_channels,
                stride,
                ..
            } => {
                let in_channels = shapes[next].channels;
                return if stride != 1 || in_channels < out_channels {
                    Ok(Consumer::Expand(next))
                } else if in_channels == out_channels {
                    Err(format!(
                        "its channels feed block {next}, an inverted residual with an identity \
                         shortcut, so they are tied to the residual sum"
                    ))
                } else {
                    Err(format!(
                        "its channels feed block {next}, a stride-1 inverted residual from \
                         {in_channels} to {out_channels} channels that would start adding its \
                         input if pruned down to {out_channels}"
                    ))
                };
            }
            BlockSpec::BasicBlock {
                out_channels,
                stride,
                ..
            } => {
                let in_channels = shapes[next].channels;
                return if stride != 1 || in_channels < out_channels {
                    Ok(Consumer::Projection(next))
                } else if in_channels == out_channels {
                    Err(format!(
                        "its channels feed block {next}, a basic block with an identity shortcut, \
                         so they are tied to the residual sum"
                    ))
                } else {
                    Err(format!(
                        "its channels feed block {next}, a stride-1 basic block from \
                         {in_channels} to {out_channels} channels whose projection shortcut \
                         would become an identity if pruned down to {out_channels}"
                    ))
                };
            }
            BlockSpec::Flatten => {
                return match spec.blocks.get(next + 1) {
                    Some(BlockSpec::Linear { .. }) => Ok(Consumer::Linear {
                        block: next + 1,
                        spatial: shapes[next].height * shapes[next].width,
                    }),
                    _ => Err(format!(
                        "the flatten at block {next} is not followed by a linear layer"
                    )),
                };
            }
            BlockSpec::Linear { .. } => {
                return Err(format!(
                    "block {next} is a linear layer without a flatten before it"
                ));
            }
        }
    }
    Err("no later block reads its channels (is it the last block of a device half?)".into())
}
