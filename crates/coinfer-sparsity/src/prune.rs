//! Structured L1 filter pruning: remove whole filters of the prunable layers (see
//! [`crate::layers`] for which) together with the input channels that read them, so that the
//! pruned network is really smaller and faster.
//!
//! For every prunable layer with `C` filters and ratio `p`, the
//! [`kept_channels(C, p)`](crate::kept_channels) filters with the largest L1 norm of their
//! convolution weights survive (ties go to the lower index), in their original order. Norms
//! are taken on the unpruned network's weights, so the choice for one layer never depends on
//! the ratios of the others (the "independent" strategy of Li et al., *Pruning Filters for
//! Efficient ConvNets*, 2017). Removed with a filter are its batch-norm entries (γ, β,
//! running mean and variance) and its input slice in the consumer: the next convolution, the
//! inner `conv2` of a basic block, the `conv1` and projection shortcut of a basic block, the
//! expansion of an inverted residual, the `height × width` rows of a linear layer after a
//! flatten; a depthwise convolution reading the removed channels (in the next
//! depthwise-separable block, or in the same inverted residual after its expansion) loses the
//! same filters, with their batch-norm entries, and the layer after it the same inputs.
//!
//! Sliced tensors become new parameters (fresh ids, so no optimizer state of the dense network
//! can be applied to them by mistake); tensors that do not change are shared with the input
//! network, so ratio 0 gives back exactly the same network.

use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use coinfer_split::model::{
    BasicBlock, Block, ConvBnRelu, DepthwiseSeparable, InvertedResidual, LinearBlock, Projection,
};
use coinfer_split::{BlockSpec, NetSpec, Network, model::NetModule};

use crate::check::check_weights;
use crate::layers::{Consumer, PrunableKind};
use crate::ratios::ResolvedLayer;
use crate::tensors::{select, select_param, values};
use crate::{PruneRatios, SparsityError};

/// The spec `network` would have after [`prune`] with `ratios`: the same blocks with smaller
/// `out_channels` (conv-bn-relu) and `mid_channels` (basic blocks). Needs no weights, so a
/// search can cost a candidate before pruning anything.
///
/// ```
/// use coinfer_split::{zoo, BlockSpec};
/// use coinfer_sparsity::{prune_spec, PruneRatios};
///
/// let ratios = PruneRatios::PerLayer(vec![0.5, 0.0, 0.25, 0.0]);
/// let pruned = prune_spec(&zoo::resnet_mini(10), &ratios)?;
/// assert_eq!(
///     pruned.blocks[0],
///     BlockSpec::ConvBnRelu { out_channels: 16, kernel: 3, stride: 2, padding: 1 }
/// );
/// assert_eq!(
///     pruned.blocks[2],
///     BlockSpec::BasicBlock { mid_channels: 48, out_channels: 64, stride: 2 }
/// );
/// # Ok::<(), coinfer_sparsity::SparsityError>(())
/// ```
pub fn prune_spec(spec: &NetSpec, ratios: &PruneRatios) -> Result<NetSpec, SparsityError> {
    let layers = ratios.resolve_layers(spec)?;
    Ok(pruned_spec(spec, &layers))
}

fn pruned_spec(spec: &NetSpec, layers: &[ResolvedLayer]) -> NetSpec {
    let mut pruned = spec.clone();
    for resolved in layers {
        match &mut pruned.blocks[resolved.layer.block] {
            BlockSpec::ConvBnRelu { out_channels, .. }
            | BlockSpec::DepthwiseSeparable { out_channels, .. } => *out_channels = resolved.kept,
            BlockSpec::BasicBlock { mid_channels, .. } => *mid_channels = resolved.kept,
            BlockSpec::InvertedResidual {
                expand_channels, ..
            } => *expand_channels = resolved.kept,
            // `layer_at` only returns the kinds above.
            _ => {}
        }
    }
    pruned
}

/// Prunes `network` with `ratios` and returns the smaller network (spec and weights).
///
/// Works in training or inference mode and on any device; the result lives where the input
/// does. Fails if the ratios do not fit the spec (see [`PruneRatios::resolve`]) or if the
/// module does not match the spec ([`SparsityError::WeightsMismatch`]).
///
/// ```
/// use burn::prelude::*;
/// use coinfer_split::{zoo, Network};
/// use coinfer_sparsity::{prune, PruneRatios};
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let pruned = prune(&net, &PruneRatios::Uniform(0.5))?;
/// assert!(pruned.num_params() < net.num_params());
/// let logits = pruned.logits(Tensor::<4>::zeros([2, 1, 28, 28], &device))?;
/// assert_eq!(logits.dims(), [2, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prune(network: &Network, ratios: &PruneRatios) -> Result<Network, SparsityError> {
    Ok(prune_keeping(network, ratios)?.0)
}

/// What [`prune_keeping`] kept, per block (`None` where nothing was removed).
pub(crate) struct Kept {
    /// Kept output filters of the block's prunable layer, ascending.
    pub out: Vec<Option<Vec<usize>>>,
    /// Kept inputs of the block's consumer layers (channels, or rows of a linear layer).
    pub input: Vec<Option<Vec<usize>>>,
}

/// [`prune`], also returning what was kept.
pub(crate) fn prune_keeping(
    network: &Network,
    ratios: &PruneRatios,
) -> Result<(Network, Kept), SparsityError> {
    let spec = network.spec();
    let layers = ratios.resolve_layers(spec)?;
    check_weights(network)?;
    let module = network.module();
    let blocks = module.blocks.len();
    // Kept output filters of a block's prunable layer, and kept input indices of a consumer.
    let mut out_keep: Vec<Option<Vec<usize>>> = vec![None; blocks];
    let mut in_keep: Vec<Option<Vec<usize>>> = vec![None; blocks];
    for resolved in layers.iter().filter(|r| r.kept < r.layer.channels) {
        let block = resolved.layer.block;
        let conv = match (&module.blocks[block], resolved.layer.kind) {
            (Block::ConvBnRelu(m), PrunableKind::ConvBnRelu) => &m.conv,
            (Block::Basic(m), PrunableKind::BasicBlockInner) => &m.conv1,
            (Block::DepthwiseSeparable(m), PrunableKind::DepthwiseSeparablePointwise) => {
                &m.pointwise
            }
            (Block::InvertedResidual(m), PrunableKind::InvertedResidualExpand) => &m.expand,
            // check_weights has matched every block with its spec; kept as an error, not a panic.
            _ => {
                return Err(SparsityError::WeightsMismatch {
                    block,
                    kind: spec.blocks[block].kind(),
                    reason: "the module's block has no convolution to prune".into(),
                });
            }
        };
        let keep = strongest_filters(conv, resolved.kept)?;
        match resolved.consumer {
            Consumer::Own => {}
            Consumer::Conv(next)
            | Consumer::Depthwise(next)
            | Consumer::Expand(next)
            | Consumer::Projection(next) => {
                in_keep[next] = Some(keep.clone());
            }
            Consumer::Linear {
                block: next,
                spatial,
            } => {
                in_keep[next] = Some(
                    keep.iter()
                        .flat_map(|&c| c * spatial..(c + 1) * spatial)
                        .collect(),
                );
            }
        }
        out_keep[block] = Some(keep);
    }
    let pruned_blocks = module
        .blocks
        .iter()
        .zip(out_keep.iter().zip(&in_keep))
        .map(|(block, (out, input))| prune_block(block, out.as_deref(), input.as_deref()))
        .collect();
    let pruned = Network::from_parts(
        pruned_spec(spec, &layers),
        NetModule {
            blocks: pruned_blocks,
        },
    )?;
    Ok((
        pruned,
        Kept {
            out: out_keep,
            input: in_keep,
        },
    ))
}

/// Indices of the `kept` filters of `conv` with the largest L1 norms, ascending.
fn strongest_filters(conv: &Conv2d, kept: usize) -> Result<Vec<usize>, SparsityError> {
    let [filters, ..] = conv.weight.dims();
    let weights = values(conv.weight.val())?;
    let per_filter = weights.len() / filters.max(1);
    let norms: Vec<f64> = weights
        .chunks_exact(per_filter.max(1))
        .map(|w| w.iter().map(|&x| f64::from(x.abs())).sum())
        .collect();
    let mut order: Vec<usize> = (0..filters).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    order.truncate(kept);
    order.sort_unstable();
    Ok(order)
}

/// `block` with output filters restricted to `out` (the inner width for a basic block) and
/// input channels to `input`; a clone when both are `None`.
fn prune_block(block: &Block, out: Option<&[usize]>, input: Option<&[usize]>) -> Block {
    if out.is_none() && input.is_none() {
        return block.clone();
    }
    match block {
        Block::ConvBnRelu(m) => Block::ConvBnRelu(ConvBnRelu {
            conv: prune_conv(&m.conv, out, input),
            bn: prune_bn(&m.bn, out),
        }),
        Block::Basic(m) => Block::Basic(BasicBlock {
            conv1: prune_conv(&m.conv1, out, input),
            bn1: prune_bn(&m.bn1, out),
            conv2: prune_conv(&m.conv2, None, out),
            bn2: m.bn2.clone(),
            shortcut: m.shortcut.as_ref().map(|p| Projection {
                conv: prune_conv(&p.conv, None, input),
                bn: p.bn.clone(),
            }),
        }),
        Block::DepthwiseSeparable(m) => Block::DepthwiseSeparable(DepthwiseSeparable {
            // The depthwise filters follow the input channels one to one.
            depthwise: prune_depthwise(&m.depthwise, input),
            bn1: prune_bn(&m.bn1, input),
            pointwise: prune_conv(&m.pointwise, out, input),
            bn2: prune_bn(&m.bn2, out),
        }),
        Block::InvertedResidual(m) => Block::InvertedResidual(InvertedResidual {
            expand: prune_conv(&m.expand, out, input),
            bn1: prune_bn(&m.bn1, out),
            depthwise: prune_depthwise(&m.depthwise, out),
            bn2: prune_bn(&m.bn2, out),
            project: prune_conv(&m.project, None, out),
            bn3: m.bn3.clone(),
            residual: m.residual,
        }),
        Block::Linear(m) => Block::Linear(LinearBlock {
            linear: Linear {
                weight: match input {
                    Some(rows) => select_param(&m.linear.weight, 0, rows),
                    None => m.linear.weight.clone(),
                },
                bias: m.linear.bias.clone(),
            },
            relu: m.relu,
        }),
        other => other.clone(),
    }
}

fn prune_conv(conv: &Conv2d, out: Option<&[usize]>, input: Option<&[usize]>) -> Conv2d {
    if out.is_none() && input.is_none() {
        return conv.clone();
    }
    let mut weight = conv.weight.val();
    if let Some(out) = out {
        weight = select(weight, 0, out);
    }
    if let Some(input) = input {
        weight = select(weight, 1, input);
    }
    let bias = match (&conv.bias, out) {
        (Some(bias), Some(out)) => Some(select_param(bias, 0, out)),
        (bias, _) => bias.clone(),
    };
    Conv2d {
        weight: burn::module::Param::from_tensor(weight),
        bias,
        stride: conv.stride,
        kernel_size: conv.kernel_size,
        dilation: conv.dilation,
        groups: conv.groups,
        padding: conv.padding.clone(),
    }
}

/// A depthwise convolution (one filter per channel) restricted to `channels`: its filters and
/// its group count shrink together.
fn prune_depthwise(conv: &Conv2d, channels: Option<&[usize]>) -> Conv2d {
    let Some(channels) = channels else {
        return conv.clone();
    };
    Conv2d {
        groups: channels.len(),
        ..prune_conv(conv, Some(channels), None)
    }
}

fn prune_bn(bn: &BatchNorm, out: Option<&[usize]>) -> BatchNorm {
    let Some(out) = out else {
        return bn.clone();
    };
    BatchNorm {
        gamma: select_param(&bn.gamma, 0, out),
        beta: select_param(&bn.beta, 0, out),
        training: bn.training.clone(),
        running_mean: RunningState::new(select(bn.running_mean.value_sync(), 0, out)),
        running_var: RunningState::new(select(bn.running_var.value_sync(), 0, out)),
        momentum: bn.momentum,
        epsilon: bn.epsilon,
    }
}
