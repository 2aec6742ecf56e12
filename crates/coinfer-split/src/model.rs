//! Burn modules built from a [`NetSpec`]: one [`Block`] per spec block, run in order.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{BatchNorm, BatchNormConfig, Identity, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::activation::relu6;

use coinfer_kernels::{Activation, batch_norm, batch_norm_act, conv2d};

use crate::SplitError;
use crate::spec::{BlockSpec, FeatureShape, NetSpec};

fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .init(device)
}

/// A 3×3 depthwise convolution (one filter per channel, padding 1, no bias).
fn depthwise(channels: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels, channels], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_groups(channels)
        .with_bias(false)
        .init(device)
}

fn new_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// Convolution (no bias) → batch norm → ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch normalisation.
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm_act(&self.bn, conv2d(&self.conv, x), None, Activation::Relu)
    }
}

/// Projection shortcut of a basic block: 1×1 convolution + batch norm.
#[derive(Module, Debug)]
pub struct Projection {
    /// The 1×1 convolution.
    pub conv: Conv2d,
    /// Its batch normalisation.
    pub bn: BatchNorm,
}

/// ResNet basic block (see [`BlockSpec::BasicBlock`]).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution (`in → mid`, carries the stride); the one pruning shrinks.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// Second 3×3 convolution (`mid → out`).
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// Projection shortcut when the shape changes, else identity.
    pub shortcut: Option<Projection>,
}

impl BasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = match &self.shortcut {
            Some(projection) => batch_norm(&projection.bn, conv2d(&projection.conv, x.clone())),
            None => x.clone(),
        };
        let y = batch_norm_act(&self.bn1, conv2d(&self.conv1, x), None, Activation::Relu);
        batch_norm_act(
            &self.bn2,
            conv2d(&self.conv2, y),
            Some(skip),
            Activation::Relu,
        )
    }
}

/// Depthwise-separable convolution (see [`BlockSpec::DepthwiseSeparable`]).
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    /// 3×3 depthwise convolution (`in → in`, groups = in, carries the stride).
    pub depthwise: Conv2d,
    /// Batch norm after `depthwise` (ReLU6 follows).
    pub bn1: BatchNorm,
    /// 1×1 pointwise convolution (`in → out`); the one pruning shrinks.
    pub pointwise: Conv2d,
    /// Batch norm after `pointwise` (ReLU follows).
    pub bn2: BatchNorm,
}

impl DepthwiseSeparable {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu6(batch_norm(&self.bn1, conv2d(&self.depthwise, x)));
        batch_norm_act(
            &self.bn2,
            conv2d(&self.pointwise, y),
            None,
            Activation::Relu,
        )
    }
}

/// MobileNetV2 inverted residual (see [`BlockSpec::InvertedResidual`]).
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion convolution (`in → expand`); the one pruning shrinks.
    pub expand: Conv2d,
    /// Batch norm after `expand` (ReLU6 follows).
    pub bn1: BatchNorm,
    /// 3×3 depthwise convolution (`expand → expand`, groups = expand, carries the stride).
    pub depthwise: Conv2d,
    /// Batch norm after `depthwise` (ReLU6 follows).
    pub bn2: BatchNorm,
    /// 1×1 linear projection (`expand → out`).
    pub project: Conv2d,
    /// Batch norm after `project` (no activation).
    pub bn3: BatchNorm,
    /// Whether the block's input is added to its output (stride 1, `in == out`).
    pub residual: bool,
}

impl InvertedResidual {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = self.residual.then(|| x.clone());
        let y = relu6(batch_norm(&self.bn1, conv2d(&self.expand, x)));
        let y = relu6(batch_norm(&self.bn2, conv2d(&self.depthwise, y)));
        batch_norm_act(&self.bn3, conv2d(&self.project, y), skip, Activation::None)
    }
}

/// Fully connected layer, optionally followed by a ReLU, on a `[B, n, 1, 1]` activation.
#[derive(Module, Debug)]
pub struct LinearBlock {
    /// The layer (weight stored `[in, out]`).
    pub linear: Linear,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// One block of a [`NetModule`], mirroring [`BlockSpec`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Block {
    /// See [`BlockSpec::ConvBnRelu`].
    ConvBnRelu(ConvBnRelu),
    /// See [`BlockSpec::BasicBlock`].
    Basic(BasicBlock),
    /// See [`BlockSpec::DepthwiseSeparable`].
    DepthwiseSeparable(DepthwiseSeparable),
    /// See [`BlockSpec::InvertedResidual`].
    InvertedResidual(InvertedResidual),
    /// See [`BlockSpec::MaxPool`].
    MaxPool(MaxPool2d),
    /// See [`BlockSpec::AvgPool`].
    AvgPool(AvgPool2d),
    /// See [`BlockSpec::GlobalAvgPool`].
    GlobalAvgPool(AdaptiveAvgPool2d),
    /// See [`BlockSpec::Flatten`] (a reshape; no parameters).
    Flatten(Identity),
    /// See [`BlockSpec::Linear`].
    Linear(LinearBlock),
}

impl Block {
    /// Builds the block for `spec` on an input of `input` shape, with fresh weights.
    fn init(spec: &BlockSpec, input: FeatureShape, device: &Device) -> Block {
        match *spec {
            BlockSpec::ConvBnRelu {
                out_channels,
                kernel,
                stride,
                padding,
            } => Block::ConvBnRelu(ConvBnRelu {
                conv: conv(
                    input.channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    device,
                ),
                bn: new_batch_norm(out_channels, device),
            }),
            BlockSpec::BasicBlock {
                mid_channels,
                out_channels,
                stride,
            } => {
                let shortcut =
                    (stride != 1 || input.channels != out_channels).then(|| Projection {
                        conv: conv(input.channels, out_channels, 1, stride, 0, device),
                        bn: new_batch_norm(out_channels, device),
                    });
                Block::Basic(BasicBlock {
                    conv1: conv(input.channels, mid_channels, 3, stride, 1, device),
                    bn1: new_batch_norm(mid_channels, device),
                    conv2: conv(mid_channels, out_channels, 3, 1, 1, device),
                    bn2: new_batch_norm(out_channels, device),
                    shortcut,
                })
            }
            BlockSpec::DepthwiseSeparable {
                out_channels,
                stride,
            } => Block::DepthwiseSeparable(DepthwiseSeparable {
                depthwise: depthwise(input.channels, stride, device),
                bn1: new_batch_norm(input.channels, device),
                pointwise: conv(input.channels, out_channels, 1, 1, 0, device),
                bn2: new_batch_norm(out_channels, device),
            }),
            BlockSpec::InvertedResidual {
                expand_channels,
                out_channels,
                stride,
            } => Block::InvertedResidual(InvertedResidual {
                expand: conv(input.channels, expand_channels, 1, 1, 0, device),
                bn1: new_batch_norm(expand_channels, device),
                depthwise: depthwise(expand_channels, stride, device),
                bn2: new_batch_norm(expand_channels, device),
                project: conv(expand_channels, out_channels, 1, 1, 0, device),
                bn3: new_batch_norm(out_channels, device),
                residual: BlockSpec::inverted_residual_adds_input(
                    input.channels,
                    out_channels,
                    stride,
                ),
            }),
            BlockSpec::MaxPool {
                kernel,
                stride,
                padding,
            } => Block::MaxPool(
                MaxPool2dConfig::new([kernel, kernel])
                    .with_strides([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        padding, padding, padding, padding,
                    ))
                    .init(),
            ),
            BlockSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => Block::AvgPool(
                AvgPool2dConfig::new([kernel, kernel])
                    .with_strides([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        padding, padding, padding, padding,
                    ))
                    .init(),
            ),
            BlockSpec::GlobalAvgPool => {
                Block::GlobalAvgPool(AdaptiveAvgPool2dConfig::new([1, 1]).init())
            }
            BlockSpec::Flatten => Block::Flatten(Identity),
            BlockSpec::Linear { out_features, relu } => Block::Linear(LinearBlock {
                linear: LinearConfig::new(input.channels, out_features).init(device),
                relu,
            }),
        }
    }

    /// Runs the block on a `[B, C, H, W]` activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Block::ConvBnRelu(block) => block.forward(x),
            Block::Basic(block) => block.forward(x),
            Block::DepthwiseSeparable(block) => block.forward(x),
            Block::InvertedResidual(block) => block.forward(x),
            Block::MaxPool(pool) => pool.forward(x),
            Block::AvgPool(pool) => pool.forward(x),
            Block::GlobalAvgPool(pool) => pool.forward(x),
            Block::Flatten(_) => {
                let [batch, c, h, w] = x.dims();
                x.reshape([batch, c * h * w, 1, 1])
            }
            Block::Linear(block) => {
                let [batch, features, _, _] = x.dims();
                let y = block.linear.forward(x.reshape([batch, features]));
                let y = if block.relu {
                    Relu::new().forward(y)
                } else {
                    y
                };
                let [_, out] = y.dims();
                y.reshape([batch, out, 1, 1])
            }
        }
    }
}

/// A network (or one half of a split network) as a burn module: its blocks in order.
///
/// Every activation is a `[B, C, H, W]` tensor (flat vectors are `[B, n, 1, 1]`), so any block
/// boundary is a valid cut and [`forward_features`](Self::forward_features) of the device half
/// feeds the edge half directly.
#[derive(Module, Debug)]
pub struct NetModule {
    /// The blocks, in execution order.
    pub blocks: Vec<Block>,
}

impl NetModule {
    /// Builds the module for a spec with freshly initialised weights (validates the spec's
    /// shapes first). Seed the device (`device.seed(..)`) for reproducible weights.
    pub fn from_spec(spec: &NetSpec, device: &Device) -> Result<NetModule, SplitError> {
        let shapes = spec.shapes()?;
        let blocks = spec
            .blocks
            .iter()
            .zip(&shapes)
            .map(|(block, &input)| Block::init(block, input, device))
            .collect();
        Ok(NetModule { blocks })
    }

    /// Runs all blocks; returns the final `[B, C, H, W]` activation.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }

    /// Runs all blocks of a whole network and returns the `[B, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let y = self.forward_features(x);
        let [batch, classes, _, _] = y.dims();
        y.reshape([batch, classes])
    }

    /// Cuts the module after `at` blocks: `(blocks[..at], blocks[at..])`. The weights are moved,
    /// not copied. `at` past the end is clamped by the caller: see [`crate::Network::split`].
    pub fn split_at(self, at: usize) -> (NetModule, NetModule) {
        let mut device = self.blocks;
        let edge = device.split_off(at.min(device.len()));
        (NetModule { blocks: device }, NetModule { blocks: edge })
    }
}
