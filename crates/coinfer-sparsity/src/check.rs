//! Checks that a network's burn module has the block kinds and parameter shapes its spec
//! implies, so that pruning and masking can slice tensors by the spec's channel counts.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, Network};

use crate::SparsityError;

/// Fails with [`SparsityError::WeightsMismatch`] naming the first block whose module does not
/// match the spec: another block kind, a convolution of another shape, stride or group count,
/// a batch norm of another width, a missing or extra projection shortcut, a linear layer of
/// another shape.
pub fn check_weights(network: &Network) -> Result<(), SparsityError> {
    let spec = network.spec();
    let shapes = spec.shapes()?;
    let blocks = &network.module().blocks;
    if blocks.len() != spec.blocks.len() {
        return Err(SparsityError::WeightsMismatch {
            block: blocks.len().min(spec.blocks.len()),
            kind: "network",
            reason: format!(
                "the spec has {} blocks but the module has {}",
                spec.blocks.len(),
                blocks.len()
            ),
        });
    }
    for (index, (block_spec, block)) in spec.blocks.iter().zip(blocks).enumerate() {
        let input = shapes[index].channels;
        let mismatch = |reason: String| SparsityError::WeightsMismatch {
            block: index,
            kind: block_spec.kind(),
            reason,
        };
        match (block_spec, block) {
            (
                &BlockSpec::ConvBnRelu {
                    out_channels,
                    kernel,
                    stride,
                    ..
                },
                Block::ConvBnRelu(m),
            ) => {
                check_conv(
                    "conv",
                    &m.conv,
                    [out_channels, input, kernel, kernel],
                    stride,
                )
                .map_err(mismatch)?;
                check_bn("bn", &m.bn, out_channels).map_err(mismatch)?;
            }
            (
                &BlockSpec::BasicBlock {
                    mid_channels,
                    out_channels,
                    stride,
                },
                Block::Basic(m),
            ) => {
                check_conv("conv1", &m.conv1, [mid_channels, input, 3, 3], stride)
                    .map_err(mismatch)?;
                check_bn("bn1", &m.bn1, mid_channels).map_err(mismatch)?;
                check_conv("conv2", &m.conv2, [out_channels, mid_channels, 3, 3], 1)
                    .map_err(mismatch)?;
                check_bn("bn2", &m.bn2, out_channels).map_err(mismatch)?;
                let projection = stride != 1 || input != out_channels;
                match (&m.shortcut, projection) {
                    (Some(p), true) => {
                        check_conv(
                            "shortcut conv",
                            &p.conv,
                            [out_channels, input, 1, 1],
                            stride,
                        )
                        .map_err(mismatch)?;
                        check_bn("shortcut bn", &p.bn, out_channels).map_err(mismatch)?;
                    }
                    (None, false) => {}
                    (Some(_), false) => {
                        return Err(mismatch(format!(
                            "the module has a projection shortcut but the spec implies an \
                             identity ({input} → {out_channels} channels, stride 1)"
                        )));
                    }
                    (None, true) => {
                        return Err(mismatch(format!(
                            "the module has an identity shortcut but the spec implies a \
                             projection ({input} → {out_channels} channels, stride {stride})"
                        )));
                    }
                }
            }
            (
                &BlockSpec::DepthwiseSeparable {
                    out_channels,
                    stride,
                },
                Block::DepthwiseSeparable(m),
            ) => {
                check_depthwise("depthwise", &m.depthwise, input, stride).map_err(mismatch)?;
                check_bn("bn1", &m.bn1, input).map_err(mismatch)?;
                check_conv("pointwise", &m.pointwise, [out_channels, input, 1, 1], 1)
                    .map_err(mismatch)?;
                check_bn("bn2", &m.bn2, out_channels).map_err(mismatch)?;
            }
            (
                &BlockSpec::InvertedResidual {
                    expand_channels,
                    out_channels,
                    stride,
                },
                Block::InvertedResidual(m),
            ) => {
                check_conv("expand", &m.expand, [expand_channels, input, 1, 1], 1)
                    .map_err(mismatch)?;
                check_bn("bn1", &m.bn1, expand_channels).map_err(mismatch)?;
                check_depthwise("depthwise", &m.depthwise, expand_channels, stride)
                    .map_err(mismatch)?;
                check_bn("bn2", &m.bn2, expand_channels).map_err(mismatch)?;
                check_conv(
                    "project",
                    &m.project,
                    [out_channels, expand_channels, 1, 1],
                    1,
                )
                .map_err(mismatch)?;
                check_bn("bn3", &m.bn3, out_channels).map_err(mismatch)?;
                let residual = BlockSpec::inverted_residual_adds_input(input, out_channels, stride);
                if m.residual != residual {
                    return Err(mismatch(format!(
                        "the module's residual flag is {} but the spec implies {residual} \
                         ({input} → {out_channels} channels, stride {stride})",
                        m.residual
                    )));
                }
            }
            (&BlockSpec::Linear { out_features, relu }, Block::Linear(m)) => {
                let dims = m.linear.weight.dims();
                if dims != [input, out_features] {
                    return Err(mismatch(format!(
                        "linear weight is {dims:?}, expected [{input}, {out_features}]"
                    )));
                }
                if let Some(bias) = &m.linear.bias
                    && bias.dims() != [out_features]
                {
                    return Err(mismatch(format!(
                        "linear bias is {:?}, expected [{out_features}]",
                        bias.dims()
                    )));
                }
                if m.relu != relu {
                    return Err(mismatch(format!(
                        "the module's relu flag is {} but the spec's is {relu}",
                        m.relu
                    )));
                }
            }
            (BlockSpec::MaxPool { .. }, Block::MaxPool(_))
            | (BlockSpec::AvgPool { .. }, Block::AvgPool(_))
            | (BlockSpec::GlobalAvgPool, Block::GlobalAvgPool(_))
            | (BlockSpec::Flatten, Block::Flatten(_)) => {}
            (_, other) => {
                return Err(mismatch(format!(
                    "the module's block is a {}",
                    module_kind(other)
                )));
            }
        }
    }
    Ok(())
}

fn module_kind(block: &Block) -> &'static str {
    match block {
        Block::ConvBnRelu(_) => "conv_bn_relu",
        Block::Basic(_) => "basic_block",
        Block::DepthwiseSeparable(_) => "depthwise_separable",
        Block::InvertedResidual(_) => "inverted_residual",
        Block::MaxPool(_) => "max_pool",
        Block::AvgPool(_) => "avg_pool",
        Block::GlobalAvgPool(_) => "global_avg_pool",
        Block::Flatten(_) => "flatten",
        Block::Linear(_) => "linear",
    }
}

fn check_conv(name: &str, conv: &Conv2d, dims: [usize; 4], stride: usize) -> Result<(), String> {
    check_grouped_conv(name, conv, dims, stride, 1)
}

/// A 3×3 depthwise convolution of `channels` (weight `[channels, 1, 3, 3]`, one group per channel).
fn check_depthwise(
    name: &str,
    conv: &Conv2d,
    channels: usize,
    stride: usize,
) -> Result<(), String> {
    check_grouped_conv(name, conv, [channels, 1, 3, 3], stride, channels)
}

fn check_grouped_conv(
    name: &str,
    conv: &Conv2d,
    dims: [usize; 4],
    stride: usize,
    groups: usize,
) -> Result<(), String> {
    let got = conv.weight.dims();
    if got != dims {
        return Err(format!("{name} weight is {got:?}, expected {dims:?}"));
    }
    if conv.groups != groups {
        return Err(format!(
            "{name} has {} groups, expected {groups}",
            conv.groups
        ));
    }
    if conv.stride != [stride, stride] {
        return Err(format!(
            "{name} stride is {:?}, expected [{stride}, {stride}]",
            conv.stride
        ));
    }
    if let Some(bias) = &conv.bias
        && bias.dims() != [dims[0]]
    {
        return Err(format!(
            "{name} bias is {:?}, expected [{}]",
            bias.dims(),
            dims[0]
        ));
    }
    Ok(())
}

fn check_bn(name: &str, bn: &BatchNorm, channels: usize) -> Result<(), String> {
    let shapes = [
        ("gamma", bn.gamma.dims()),
        ("beta", bn.beta.dims()),
        ("running mean", bn.running_mean.value().dims()),
        ("running var", bn.running_var.value().dims()),
    ];
    for (what, dims) in shapes {
        if dims != [channels] {
            return Err(format!("{name} {what} is {dims:?}, expected [{channels}]"));
        }
    }
    Ok(())
}
