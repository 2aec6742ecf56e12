//! The inference form of a trained network: batch norm folded into the preceding convolution,
//! the residual shortcut's bias merged into the block's last convolution, no autodiff and no
//! training state.
//!
//! A [`Network`] keeps the training form (convolution → batch norm → ReLU as separate modules,
//! running statistics, optimiser-visible parameters). Deployed halves never train, so
//! [`InferenceNetwork::from_network`] folds every batch norm once:
//!
//! ```text
//! W' = W · γ / √(σ² + ε)        b' = β − μ · γ / √(σ² + ε)
//! ```
//!
//! and each convolution then runs with its bias added in the same kernel call, followed by the
//! ReLU. A basic block with a projection shortcut adds the shortcut's folded bias to its second
//! convolution's bias, so the whole block is three convolutions, one add and two ReLUs.
//! Depthwise-separable blocks and inverted residuals fold every convolution (depthwise ones
//! too: one output channel per filter) the same way. burn has
//! no fused convolution + ReLU op, so the ReLU stays a separate (cheap, elementwise) op.
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_split::{zoo, Network};
//! use coinfer_split::inference::InferenceNetwork;
//!
//! let device = Device::flex();
//! let net = Network::new(zoo::resnet_mini(10), &device)?;
//! let (device_half, edge_half) = net.valid().split(2)?;
//! let device_fast = InferenceNetwork::from_network(&device_half)?;
//! let edge_fast = InferenceNetwork::from_network(&edge_half)?;
//!
//! let x = Tensor::<4>::random([3, 1, 28, 28], burn::tensor::Distribution::Default, &device);
//! let slow = edge_half.logits(device_half.forward(x.clone())?)?;
//! let fast = edge_fast.logits(device_fast.forward(x)?)?;
//! slow.into_data()
//!     .assert_approx_eq::<f32>(&fast.into_data(), burn::tensor::Tolerance::absolute(1e-4));
//! # Ok::<(), coinfer_split::SplitError>(())
//! ```

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::TensorData;

use crate::SplitError;
use crate::model::Block;
use crate::network::Network;
use crate::spec::{BlockSpec, NetSpec};

mod cpu;

use cpu::{CpuBlock, CpuConv, CpuLinear, CpuNetwork, Nhwc, Window};

/// A convolution with its batch norm folded in: weight `[out, in, k, k]`, bias `[out]`.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    /// Folded weight, `[out_channels, in_channels, kernel, kernel]`.
    pub weight: Tensor<4>,
    /// Folded bias, `[out_channels]`.
    pub bias: Tensor<1>,
    /// Stride, padding and dilation of the original convolution.
    pub options: ConvOptions<2>,
}

impl FoldedConv {
    /// Folds `bn` (running statistics) into `conv` (which must have no bias of its own, or one
    /// that is folded along).
    fn fold(conv: &Conv2d, bn: &BatchNorm, what: &str) -> Result<FoldedConv, SplitError> {
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
            PaddingConfig2d::Valid => [(0, 0), (0, 0)],
            PaddingConfig2d::Same => {
                return Err(SplitError::Weights(format!(
                    "{what}: `Same` padding cannot be folded without the input size"
                )));
            }
        };
        let options =
            ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
        let weight = conv.weight.val();
        let [out_channels, _, _, _] = weight.dims();
        let [bn_channels] = bn.gamma.dims();
        if bn_channels != out_channels {
            return Err(SplitError::Weights(format!(
                "{what}: the convolution has {out_channels} output channels but its batch norm {bn_channels}"
            )));
        }
        // scale = γ / √(σ² + ε); W' = W · scale (per output channel); b' = β + (b − μ) · scale.
        let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
        let conv_bias = match &conv.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([out_channels], &weight.device()),
        };
        let bias = bn.beta.val() + (conv_bias - bn.running_mean.value()) * scale.clone();
        let weight = weight * scale.reshape([out_channels, 1, 1, 1]);
        Ok(FoldedConv {
            weight,
            bias,
            options,
        })
    }

    /// The same convolution on host buffers; `keep_bias: false` drops the bias (a projection
    /// shortcut whose bias was merged into the block's last convolution).
    fn to_cpu(&self, what: &str, keep_bias: bool) -> Result<CpuConv, SplitError> {
        let [out_channels, per_group, kernel, kernel_w] = self.weight.dims();
        let o = &self.options;
        let padding = o.padding[0].0;
        let square = kernel == kernel_w
            && o.stride[0] == o.stride[1]
            && o.padding.iter().all(|&(a, b)| a == padding && b == padding)
            && o.dilation == [1, 1];
        let depthwise = o.groups > 1;
        let grouping_fits = !depthwise || (o.groups == out_channels && per_group == 1);
        if !square || !grouping_fits {
            return Err(SplitError::Weights(format!(
                "{what}: the CPU kernels run square, undilated, dense or depthwise convolutions only"
            )));
        }
        let bias = if keep_bias {
            host_values(&self.bias, what)?
        } else {
            vec![0.0; out_channels]
        };
        Ok(CpuConv::new(
            &host_values(&self.weight, what)?,
            bias,
            out_channels,
            per_group * o.groups,
            kernel,
            o.stride[0],
            padding,
            depthwise,
        ))
    }

    /// Convolution plus bias, without an activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            self.options.clone(),
        )
    }
}

/// A residual basic block in inference form.
#[derive(Debug, Clone)]
pub struct FoldedBasicBlock {
    /// First convolution (ReLU follows).
    pub conv1: FoldedConv,
    /// Second convolution; its bias also carries the shortcut's folded bias.
    pub conv2: FoldedConv,
    /// Projection shortcut (1×1 convolution, no bias: it was merged into `conv2`), or identity.
    pub shortcut: Option<FoldedConv>,
}

impl FoldedBasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = match &self.shortcut {
            Some(projection) => conv2d(
                x.clone(),
                projection.weight.clone(),
                None,
                projection.options.clone(),
            ),
            None => x.clone(),
        };
        let y = relu(self.conv1.forward(x));
        relu(self.conv2.forward(y) + skip)
    }
}

/// A depthwise-separable convolution in inference form.
#[derive(Debug, Clone)]
pub struct FoldedDepthwiseSeparable {
    /// Depthwise convolution (groups = channels; ReLU6 follows).
    pub depthwise: FoldedConv,
    /// Pointwise convolution (ReLU follows).
    pub pointwise: FoldedConv,
}

impl FoldedDepthwiseSeparable {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.pointwise.forward(relu6(self.depthwise.forward(x))))
    }
}

/// An inverted residual block in inference form.
#[derive(Debug, Clone)]
pub struct FoldedInvertedResidual {
    /// 1×1 expansion (ReLU6 follows).
    pub expand: FoldedConv,
    /// 3×3 depthwise convolution (ReLU6 follows).
    pub depthwise: FoldedConv,
    /// 1×1 linear projection (no activation).
    pub project: FoldedConv,
    /// Whether the input is added to the output.
    pub residual: bool,
}

impl FoldedInvertedResidual {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = self.residual.then(|| x.clone());
        let y = relu6(self.expand.forward(x));
        let y = self.project.forward(relu6(self.depthwise.forward(y)));
        match skip {
            Some(skip) => y + skip,
            None => y,
        }
    }
}

/// A fully connected layer in inference form, weight stored `[in, out]`.
#[derive(Debug, Clone)]
pub struct InferenceLinear {
    /// `[in_features, out_features]`.
    pub weight: Tensor<2>,
    /// `[out_features]`, if any.
    pub bias: Option<Tensor<1>>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// One block of an [`InferenceNetwork`], mirroring [`Block`].
#[derive(Debug, Clone)]
pub enum InferenceBlock {
    /// Convolution with folded batch norm, then ReLU.
    ConvRelu(FoldedConv),
    /// Residual basic block.
    Basic(Box<FoldedBasicBlock>),
    /// Depthwise-separable convolution.
    DepthwiseSeparable(Box<FoldedDepthwiseSeparable>),
    /// MobileNetV2 inverted residual.
    InvertedResidual(Box<FoldedInvertedResidual>),
    /// Max pooling.
    MaxPool(MaxPool2d),
    /// Average pooling.
    AvgPool(AvgPool2d),
    /// Global average pooling.
    GlobalAvgPool(AdaptiveAvgPool2d),
    /// `[B, C, H, W]` → `[B, C·H·W, 1, 1]`.
    Flatten,
    /// Fully connected layer.
    Linear(InferenceLinear),
}

impl InferenceBlock {
    fn from_block(block: &Block, index: usize) -> Result<InferenceBlock, SplitError> {
        let what = |part: &str| format!("block {index} ({part})");
        Ok(match block {
            Block::ConvBnRelu(b) => {
                InferenceBlock::ConvRelu(FoldedConv::fold(&b.conv, &b.bn, &what("conv"))?)
            }
            Block::Basic(b) => {
                let conv1 = FoldedConv::fold(&b.conv1, &b.bn1, &what("conv1"))?;
                let mut conv2 = FoldedConv::fold(&b.conv2, &b.bn2, &what("conv2"))?;
                let shortcut = match &b.shortcut {
                    Some(projection) => {
                        let folded =
                            FoldedConv::fold(&projection.conv, &projection.bn, &what("shortcut"))?;
                        conv2.bias = conv2.bias + folded.bias.clone();
                        Some(folded)
                    }
                    None => None,
                };
                InferenceBlock::Basic(Box::new(FoldedBasicBlock {
                    conv1,
                    conv2,
                    shortcut,
                }))
            }
            Block::DepthwiseSeparable(b) => {
                InferenceBlock::DepthwiseSeparable(Box::new(FoldedDepthwiseSeparable {
                    depthwise: FoldedConv::fold(&b.depthwise, &b.bn1, &what("depthwise"))?,
                    pointwise: FoldedConv::fold(&b.pointwise, &b.bn2, &what("pointwise"))?,
                }))
            }
            Block::InvertedResidual(b) => {
                InferenceBlock::InvertedResidual(Box::new(FoldedInvertedResidual {
                    expand: FoldedConv::fold(&b.expand, &b.bn1, &what("expand"))?,
                    depthwise: FoldedConv::fold(&b.depthwise, &b.bn2, &what("depthwise"))?,
                    project: FoldedConv::fold(&b.project, &b.bn3, &what("project"))?,
                    residual: b.residual,
                }))
            }
            Block::MaxPool(pool) => InferenceBlock::MaxPool(pool.clone()),
            Block::AvgPool(pool) => InferenceBlock::AvgPool(pool.clone()),
            Block::GlobalAvgPool(pool) => InferenceBlock::GlobalAvgPool(pool.clone()),
            Block::Flatten(_) => InferenceBlock::Flatten,
            Block::Linear(b) => InferenceBlock::Linear(InferenceLinear {
                weight: b.linear.weight.val(),
                bias: b.linear.bias.as_ref().map(|bias| bias.val()),
                relu: b.relu,
            }),
        })
    }

    /// Runs the block on a `[B, C, H, W]` activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            InferenceBlock::ConvRelu(conv) => relu(conv.forward(x)),
            InferenceBlock::Basic(block) => block.forward(x),
            InferenceBlock::DepthwiseSeparable(block) => block.forward(x),
            InferenceBlock::InvertedResidual(block) => block.forward(x),
            InferenceBlock::MaxPool(pool) => pool.forward(x),
            InferenceBlock::AvgPool(pool) => pool.forward(x),
            InferenceBlock::GlobalAvgPool(pool) => pool.forward(x),
            InferenceBlock::Flatten => {
                let [batch, c, h, w] = x.dims();
                x.reshape([batch, c * h * w, 1, 1])
            }
            InferenceBlock::Linear(linear) => {
                let [batch, features, _, _] = x.dims();
                let y = x.reshape([batch, features]).matmul(linear.weight.clone());
                let y = match &linear.bias {
                    Some(bias) => y + bias.clone().unsqueeze::<2>(),
                    None => y,
                };
                let y = if linear.relu { relu(y) } else { y };
                let [_, out] = y.dims();
                y.reshape([batch, out, 1, 1])
            }
        }
    }
}

/// A tensor's values on the host, as `f32`.
fn host_values<const D: usize>(tensor: &Tensor<D>, what: &str) -> Result<Vec<f32>, SplitError> {
    tensor
        .to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| SplitError::Weights(format!("{what}: reading the weights: {e:?}")))
}

/// Whether tensors on `device` live in host memory and carry no autodiff graph: the devices
/// the CPU kernels serve.
fn is_host(device: &Device) -> bool {
    if device.is_autodiff() {
        return false;
    }
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    // burn deprecates the ndarray backend; coinfer keeps it optional (docs/backends.md).
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if *device == Device::ndarray() {
        return true;
    }
    false
}

impl InferenceBlock {
    /// The same block on host buffers.
    fn to_cpu(&self, spec: &BlockSpec, index: usize) -> Result<CpuBlock, SplitError> {
        let what = |part: &str| format!("block {index} ({part})");
        Ok(match (self, spec) {
            (InferenceBlock::ConvRelu(conv), _) => {
                CpuBlock::ConvRelu(conv.to_cpu(&what("conv"), true)?)
            }
            (InferenceBlock::Basic(b), _) => CpuBlock::Basic {
                conv1: b.conv1.to_cpu(&what("conv1"), true)?,
                conv2: b.conv2.to_cpu(&what("conv2"), true)?,
                shortcut: match &b.shortcut {
                    Some(projection) => Some(projection.to_cpu(&what("shortcut"), false)?),
                    None => None,
                },
            },
            (InferenceBlock::DepthwiseSeparable(b), _) => CpuBlock::DepthwiseSeparable {
                depthwise: b.depthwise.to_cpu(&what("depthwise"), true)?,
                pointwise: b.pointwise.to_cpu(&what("pointwise"), true)?,
            },
            (InferenceBlock::InvertedResidual(b), _) => CpuBlock::InvertedResidual {
                expand: b.expand.to_cpu(&what("expand"), true)?,
                depthwise: b.depthwise.to_cpu(&what("depthwise"), true)?,
                project: b.project.to_cpu(&what("project"), true)?,
                residual: b.residual,
            },
            (
                InferenceBlock::MaxPool(_),
                &BlockSpec::MaxPool {
                    kernel,
                    stride,
                    padding,
                },
            ) => CpuBlock::MaxPool(Window {
                kernel,
                stride,
                padding,
            }),
            (
                InferenceBlock::AvgPool(_),
                &BlockSpec::AvgPool {
                    kernel,
                    stride,
                    padding,
                },
            ) => CpuBlock::AvgPool(Window {
                kernel,
                stride,
                padding,
            }),
            (InferenceBlock::GlobalAvgPool(_), _) => CpuBlock::GlobalAvgPool,
            (InferenceBlock::Flatten, _) => CpuBlock::Flatten,
            (InferenceBlock::Linear(linear), _) => {
                let [in_features, out_features] = linear.weight.dims();
                CpuBlock::Linear(CpuLinear {
                    weight: host_values(&linear.weight, &what("linear"))?,
                    bias: match &linear.bias {
                        Some(bias) => Some(host_values(bias, &what("linear bias"))?),
                        None => None,
                    },
                    in_features,
                    out_features,
                    relu: linear.relu,
                })
            }
            (InferenceBlock::MaxPool(_) | InferenceBlock::AvgPool(_), other) => {
                return Err(SplitError::Weights(format!(
                    "{}: a pooling module where the spec has a {} block",
                    what("pool"),
                    other.kind()
                )));
            }
        })
    }
}

/// An activation in the layout of the inference form's CPU kernels (channels last), made by
/// [`InferenceNetwork::host_activation`].
#[derive(Debug, Clone)]
pub struct HostActivation(Nhwc);

/// A network (or one half of a split network) in inference form: see the [module
/// docs](self). Built once from a trained [`Network`]; its outputs equal the training form's
/// inference outputs (batch norm on running statistics) up to float rounding.
///
/// On the CPU backends (flex, ndarray) it runs on the inference form's own kernels (see
/// [`Self::runs_cpu_kernels`]); on other devices (wgpu) as burn ops.
#[derive(Debug, Clone)]
pub struct InferenceNetwork {
    spec: NetSpec,
    /// The blocks, in execution order (one per spec block).
    pub blocks: Vec<InferenceBlock>,
    /// The same network on host buffers, when its weights live on a CPU backend.
    cpu: Option<Arc<CpuNetwork>>,
}

impl InferenceNetwork {
    /// Folds `network` (any device: autodiff is dropped) into its inference form.
    ///
    /// Fails with [`SplitError::Weights`] naming the block if a convolution and its batch norm
    /// disagree on the channel count or a convolution uses `Same` padding.
    pub fn from_network(network: &Network) -> Result<InferenceNetwork, SplitError> {
        let module = network.module().valid();
        let on_host = module.devices().iter().all(is_host);
        let blocks = module
            .blocks
            .iter()
            .enumerate()
            .map(|(index, block)| InferenceBlock::from_block(block, index))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = network.spec().clone();
        let cpu = if on_host {
            Some(Arc::new(cpu_form(&spec, &blocks)?))
        } else {
            None
        };
        Ok(InferenceNetwork { spec, blocks, cpu })
    }

    /// Whether [`forward`](Self::forward) runs the CPU kernels on inputs from a CPU backend
    /// (true when the weights live on flex or ndarray).
    pub fn runs_cpu_kernels(&self) -> bool {
        self.cpu.is_some()
    }

    /// The network's spec (unchanged by folding).
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Runs every block; same contract as [`Network::forward`].
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>, SplitError> {
        crate::network::check_input(&self.spec, &x)?;
        Ok(self.forward_unchecked(x))
    }

    /// Runs every block without checking the input shape (the caller did).
    pub fn forward_unchecked(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        match self.route(x) {
            Route::Kernels(cpu, host) => from_host(cpu.forward(host), &device),
            Route::BurnOps(x) => self.forward_burn_ops(x),
        }
    }

    /// Where `x` runs: on the CPU kernels, converted to their layout, when they serve it (a
    /// CPU form, a CPU device, float32 values), else as burn ops.
    fn route(&self, x: Tensor<4>) -> Route<'_> {
        let device = x.device();
        let Some(cpu) = self.cpu.as_deref().filter(|_| is_host(&device)) else {
            return Route::BurnOps(x);
        };
        let dims = x.dims();
        let data = x.into_data();
        match data.as_slice::<f32>() {
            Ok(values) => Route::Kernels(cpu, Nhwc::from_nchw(values, dims)),
            // Not f32 (a half-precision input): burn's ops convert it on the way.
            Err(_) => Route::BurnOps(Tensor::from_data(data, &device)),
        }
    }

    /// `x` in the CPU kernels' own layout, when [`forward`](Self::forward) would run it on
    /// them (a CPU device and float32 values); `None` otherwise. With
    /// [`forward_block_host`](Self::forward_block_host) it times blocks without the layout
    /// conversions a whole forward pass pays only at its two ends.
    pub fn host_activation(&self, x: Tensor<4>) -> Option<HostActivation> {
        match self.route(x) {
            Route::Kernels(_, host) => Some(HostActivation(host)),
            Route::BurnOps(_) => None,
        }
    }

    /// Runs block `index` alone on the CPU kernels, in their layout (see
    /// [`host_activation`](Self::host_activation)).
    ///
    /// Fails with [`SplitError::InvalidOption`] when there is no block `index` or the network
    /// has no CPU form, and with [`SplitError::InputShape`] when `x` is not the block's input.
    pub fn forward_block_host(
        &self,
        index: usize,
        x: &HostActivation,
    ) -> Result<HostActivation, SplitError> {
        let cpu = self.cpu.as_ref().ok_or_else(|| SplitError::InvalidOption {
            field: "device",
            reason: "the network's weights are not on a CPU backend".into(),
        })?;
        Ok(HostActivation(cpu.forward_block(index, &x.0)?))
    }

    /// Runs every block as burn ops, whatever the device (the path of GPU backends; on the CPU
    /// it is the reference the CPU kernels are tested and benchmarked against).
    pub fn forward_burn_ops(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }

    /// Runs a network that ends in its classifier; same contract as [`Network::logits`].
    pub fn logits(&self, x: Tensor<4>) -> Result<Tensor<2>, SplitError> {
        crate::network::into_logits(self.forward(x)?)
    }

    /// Moves the weights to `device`.
    pub fn to_device(self, device: &Device) -> InferenceNetwork {
        let conv = |c: FoldedConv| FoldedConv {
            weight: c.weight.to_device(device),
            bias: c.bias.to_device(device),
            options: c.options,
        };
        let blocks: Vec<InferenceBlock> = self
            .blocks
            .into_iter()
            .map(|block| match block {
                InferenceBlock::ConvRelu(c) => InferenceBlock::ConvRelu(conv(c)),
                InferenceBlock::Basic(b) => {
                    let b = *b;
                    InferenceBlock::Basic(Box::new(FoldedBasicBlock {
                        conv1: conv(b.conv1),
                        conv2: conv(b.conv2),
                        shortcut: b.shortcut.map(conv),
                    }))
                }
                InferenceBlock::DepthwiseSeparable(b) => {
                    InferenceBlock::DepthwiseSeparable(Box::new(FoldedDepthwiseSeparable {
                        depthwise: conv(b.depthwise),
                        pointwise: conv(b.pointwise),
                    }))
                }
                InferenceBlock::InvertedResidual(b) => {
                    let b = *b;
                    InferenceBlock::InvertedResidual(Box::new(FoldedInvertedResidual {
                        expand: conv(b.expand),
                        depthwise: conv(b.depthwise),
                        project: conv(b.project),
                        residual: b.residual,
                    }))
                }
                InferenceBlock::Linear(l) => InferenceBlock::Linear(InferenceLinear {
                    weight: l.weight.to_device(device),
                    bias: l.bias.map(|b| b.to_device(device)),
                    relu: l.relu,
                }),
                other => other,
            })
            .collect();
        // Same values on every device, so a CPU form built before stays valid.
        let cpu = if is_host(device) {
            self.cpu
                .or_else(|| cpu_form(&self.spec, &blocks).ok().map(Arc::new))
        } else {
            None
        };
        InferenceNetwork {
            spec: self.spec,
            blocks,
            cpu,
        }
    }
}

/// The CPU kernels' form of `blocks`, checked against `spec`.
fn cpu_form(spec: &NetSpec, blocks: &[InferenceBlock]) -> Result<CpuNetwork, SplitError> {
    let cpu_blocks = blocks
        .iter()
        .zip(&spec.blocks)
        .enumerate()
        .map(|(index, (block, block_spec))| block.to_cpu(block_spec, index))
        .collect::<Result<_, _>>()?;
    CpuNetwork::new(cpu_blocks, spec)
}

/// Where [`InferenceNetwork::forward_unchecked`] runs an input (see `route`).
// Moved once per forward pass, never stored: the size difference of the variants is moot.
#[allow(clippy::large_enum_variant)]
enum Route<'a> {
    Kernels(&'a CpuNetwork, Nhwc),
    BurnOps(Tensor<4>),
}

/// An activation from the CPU kernels as an NCHW tensor on `device`.
fn from_host(x: Nhwc, device: &Device) -> Tensor<4> {
    let (values, dims) = x.into_nchw();
    Tensor::from_data(TensorData::new(values, dims), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::{Distribution, Tolerance};

    /// Replaces every 1-D float parameter and running statistic (γ, β, μ, σ², biases) with
    /// random values, so folding has non-trivial statistics to fold.
    struct RandomiseNorms;

    impl ModuleMapper for RandomiseNorms {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D != 1 {
                return param;
            }
            let (id, tensor, mapper) = param.consume();
            let shape = tensor.shape();
            // Strictly positive values keep σ² valid; the range also spreads γ, β and μ.
            let fresh = Tensor::random(shape, Distribution::Uniform(0.2, 1.8), &tensor.device());
            Param::from_mapped_value(id, fresh, mapper)
        }
    }

    fn randomised(spec: NetSpec, device: &Device) -> Network {
        let net = Network::new(spec, device).unwrap();
        let (spec, module) = net.into_parts();
        let module = randomise_running_stats(module.map(&mut RandomiseNorms), device);
        Network::from_parts(spec, module).unwrap().valid()
    }

    /// Running mean/var are `RunningState`s, not `Param`s: set them explicitly.
    fn randomise_running_stats(
        mut module: crate::model::NetModule,
        device: &Device,
    ) -> crate::model::NetModule {
        fn fresh(bn: &mut BatchNorm, device: &Device) {
            let [c] = bn.gamma.dims();
            bn.running_mean = burn::module::RunningState::new(Tensor::random(
                [c],
                Distribution::Normal(0.0, 0.5),
                device,
            ));
            bn.running_var = burn::module::RunningState::new(Tensor::random(
                [c],
                Distribution::Uniform(0.3, 2.0),
                device,
            ));
        }
        for block in &mut module.blocks {
            match block {
                Block::ConvBnRelu(b) => fresh(&mut b.bn, device),
                Block::Basic(b) => {
                    fresh(&mut b.bn1, device);
                    fresh(&mut b.bn2, device);
                    if let Some(p) = &mut b.shortcut {
                        fresh(&mut p.bn, device);
                    }
                }
                Block::DepthwiseSeparable(b) => {
                    fresh(&mut b.bn1, device);
                    fresh(&mut b.bn2, device);
                }
                Block::InvertedResidual(b) => {
                    fresh(&mut b.bn1, device);
                    fresh(&mut b.bn2, device);
                    fresh(&mut b.bn3, device);
                }
                _ => {}
            }
        }
        module
    }

    fn assert_folds_at_every_split(spec: NetSpec, input: [usize; 4]) {
        let device = Device::flex();
        device.seed(7);
        let net = randomised(spec, &device);
        let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
        let reference = net.logits(x.clone()).unwrap().into_data();
        let blocks = net.spec().blocks.len();
        for at in 0..=blocks {
            let (device_half, edge_half) = net.clone().split(at).unwrap();
            let device_fast = InferenceNetwork::from_network(&device_half).unwrap();
            let edge_fast = InferenceNetwork::from_network(&edge_half).unwrap();
            let logits = edge_fast
                .logits(device_fast.forward(x.clone()).unwrap())
                .unwrap()
                .into_data();
            reference.assert_approx_eq::<f32>(&logits, Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn folded_resnet_mini_matches_at_every_split() {
        assert_folds_at_every_split(zoo::resnet_mini(10), [2, 1, 28, 28]);
    }

    #[test]
    fn folded_resnet18_matches_at_every_split() {
        assert_folds_at_every_split(zoo::resnet18_cifar(10), [1, 3, 32, 32]);
    }

    #[test]
    fn folded_mobilenetv2_mini_matches_at_every_split() {
        assert_folds_at_every_split(zoo::mobilenetv2_mini(10), [2, 1, 28, 28]);
    }

    #[test]
    fn folded_mobilenetv2_cifar_matches_at_every_split() {
        assert_folds_at_every_split(zoo::mobilenetv2_cifar(10), [1, 3, 32, 32]);
    }

    /// Every block kind, odd sizes, padding in pools, a pruned basic block, two linear layers.
    fn every_kind() -> NetSpec {
        use crate::spec::FeatureShape;
        NetSpec {
            name: "every-kind".into(),
            input: FeatureShape::image(3, 17, 15),
            blocks: vec![
                BlockSpec::ConvBnRelu {
                    out_channels: 6,
                    kernel: 5,
                    stride: 1,
                    padding: 2,
                },
                BlockSpec::MaxPool {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                },
                BlockSpec::BasicBlock {
                    mid_channels: 5,
                    out_channels: 8,
                    stride: 2,
                },
                BlockSpec::BasicBlock {
                    mid_channels: 3,
                    out_channels: 8,
                    stride: 1,
                },
                BlockSpec::DepthwiseSeparable {
                    out_channels: 12,
                    stride: 2,
                },
                BlockSpec::InvertedResidual {
                    expand_channels: 20,
                    out_channels: 12,
                    stride: 1,
                },
                BlockSpec::InvertedResidual {
                    expand_channels: 24,
                    out_channels: 7,
                    stride: 2,
                },
                BlockSpec::AvgPool {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                BlockSpec::Flatten,
                BlockSpec::Linear {
                    out_features: 16,
                    relu: true,
                },
                BlockSpec::Linear {
                    out_features: 10,
                    relu: false,
                },
            ],
        }
    }

    /// The CPU kernels against burn's ops on the same folded weights, at every split point.
    fn assert_cpu_kernels_match_burn_ops(spec: NetSpec, input: [usize; 4]) {
        let device = Device::flex();
        device.seed(11);
        let net = randomised(spec, &device);
        let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
        for at in 0..=net.spec().blocks.len() {
            let (device_half, edge_half) = net.clone().split(at).unwrap();
            let device_fast = InferenceNetwork::from_network(&device_half).unwrap();
            let edge_fast = InferenceNetwork::from_network(&edge_half).unwrap();
            assert!(device_fast.runs_cpu_kernels() && edge_fast.runs_cpu_kernels());
            let feature = device_fast.forward(x.clone()).unwrap();
            let reference = device_fast.forward_burn_ops(x.clone());
            assert_eq!(feature.dims(), reference.dims(), "split {at}");
            reference
                .into_data()
                .assert_approx_eq::<f32>(&feature.clone().into_data(), Tolerance::absolute(1e-4));
            let logits = edge_fast.forward(feature.clone()).unwrap().into_data();
            let reference = edge_fast.forward_burn_ops(feature).into_data();
            reference.assert_approx_eq::<f32>(&logits, Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn cpu_kernels_match_burn_ops_on_every_block_kind() {
        assert_cpu_kernels_match_burn_ops(every_kind(), [1, 3, 17, 15]);
        assert_cpu_kernels_match_burn_ops(every_kind(), [5, 3, 17, 15]);
    }

    #[test]
    fn cpu_kernels_match_burn_ops_on_the_zoo_in_batches() {
        assert_cpu_kernels_match_burn_ops(zoo::resnet_mini(10), [6, 1, 28, 28]);
        assert_cpu_kernels_match_burn_ops(zoo::mobilenetv2_mini(10), [3, 1, 28, 28]);
    }

    #[test]
    fn threaded_cpu_kernels_give_the_same_logits() {
        // resnet18 at batch 4 has products above the threshold that splits them by columns.
        let device = Device::flex();
        device.seed(3);
        let net = randomised(zoo::resnet18_cifar(10), &device);
        let fast = InferenceNetwork::from_network(&net).unwrap();
        let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let one = crate::Threads::new(1).unwrap();
        let three = crate::Threads::new(3).unwrap();
        let a = one.install(|| fast.forward(x.clone()).unwrap().into_data());
        let b = three.install(|| fast.forward(x.clone()).unwrap().into_data());
        a.assert_approx_eq::<f32>(&b, Tolerance::absolute(1e-4));
        let reference = fast.forward_burn_ops(x).into_data();
        reference.assert_approx_eq::<f32>(&b, Tolerance::absolute(1e-4));
    }

    #[test]
    fn host_blocks_chained_give_the_forward_pass() {
        let device = Device::flex();
        device.seed(5);
        let net = randomised(zoo::mobilenetv2_mini(10), &device);
        let fast = InferenceNetwork::from_network(&net).unwrap();
        let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let mut host = fast.host_activation(x.clone()).unwrap();
        for index in 0..fast.blocks.len() {
            host = fast.forward_block_host(index, &host).unwrap();
        }
        let chained = from_host(host.0, &device);
        fast.forward(x.clone())
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(&chained.into_data(), Tolerance::absolute(1e-5));
        // The wrong block for the activation, and a block that does not exist, are refused.
        let input = fast.host_activation(x).unwrap();
        assert!(matches!(
            fast.forward_block_host(1, &input),
            Err(SplitError::InputShape { .. })
        ));
        assert!(matches!(
            fast.forward_block_host(fast.blocks.len(), &input),
            Err(SplitError::InvalidOption { field: "index", .. })
        ));
    }

    #[test]
    fn randomised_statistics_change_the_output() {
        // Guards the test above: with default statistics (μ = 0, σ² = 1, γ = 1, β = 0) folding
        // would be almost the identity and prove little.
        let device = Device::flex();
        device.seed(7);
        let plain = Network::new(zoo::resnet_mini(10), &device).unwrap().valid();
        let (spec, module) = plain.clone().into_parts();
        let module = randomise_running_stats(module.map(&mut RandomiseNorms), &device);
        let random = Network::from_parts(spec, module).unwrap();
        let x = Tensor::<4>::random([1, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let a = plain.logits(x.clone()).unwrap().into_data();
        let b = random.logits(x).unwrap().into_data();
        let diff: f32 = a
            .iter::<f32>()
            .zip(b.iter::<f32>())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(
            diff > 1e-2,
            "randomised statistics barely moved the logits ({diff})"
        );
    }

    #[test]
    fn wrong_input_shape_is_rejected() {
        let device = Device::flex();
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        let fast = InferenceNetwork::from_network(&net).unwrap();
        let x = Tensor::<4>::zeros([1, 3, 28, 28], &device);
        assert!(matches!(
            fast.forward(x),
            Err(SplitError::InputShape { .. })
        ));
    }
}
