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
//! use coinfer_split::{zoo, InferenceNetwork, Network};
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

use crate::SplitError;
use crate::model::Block;
use crate::network::Network;
use crate::spec::NetSpec;

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

/// A network (or one half of a split network) in inference form: see the [module
/// docs](self). Built once from a trained [`Network`]; its outputs equal the training form's
/// inference outputs (batch norm on running statistics) up to float rounding.
#[derive(Debug, Clone)]
pub struct InferenceNetwork {
    spec: NetSpec,
    /// The blocks, in execution order (one per spec block).
    pub blocks: Vec<InferenceBlock>,
}

impl InferenceNetwork {
    /// Folds `network` (any device: autodiff is dropped) into its inference form.
    ///
    /// Fails with [`SplitError::Weights`] naming the block if a convolution and its batch norm
    /// disagree on the channel count or a convolution uses `Same` padding.
    pub fn from_network(network: &Network) -> Result<InferenceNetwork, SplitError> {
        let module = network.module().valid();
        let blocks = module
            .blocks
            .iter()
            .enumerate()
            .map(|(index, block)| InferenceBlock::from_block(block, index))
            .collect::<Result<_, _>>()?;
        Ok(InferenceNetwork {
            spec: network.spec().clone(),
            blocks,
        })
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
        let blocks = self
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
        InferenceNetwork {
            spec: self.spec,
            blocks,
        }
    }
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
