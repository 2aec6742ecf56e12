//! Pruning with recovery: [`prune_with_recovery`] prunes like [`prune`](crate::prune), then
//! repairs the pruned network on calibration images, without any training.
//!
//! The dense network's layer outputs on the calibration images are computed once, when the
//! [`Calibration`] is made; each call then runs one pass of the pruned network over the
//! calibration images, block by block, in order. At every block, with [`PruneRecovery::Reconstruct`], each layer
//! that lost input channels (the consumer of a pruned layer: the next convolution, the inner
//! `conv2` of a basic block, `conv1` and the projection shortcut of the next basic block, the
//! pointwise convolution of a depthwise-separable block, the expansion or the projection of an
//! inverted residual, or the linear layer after a flatten) is refitted by ridge least squares so that, fed with the
//! **pruned** network's actual input, it reproduces the **dense** network's output of that
//! layer (pre-batch-norm; see [`crate::reconstruct`]). Then, with either
//! [`PruneRecovery::BatchNorm`] or [`PruneRecovery::Reconstruct`], every batch norm of the block
//! gets the exact mean and variance of its input over the calibration images. Depthwise
//! convolutions are never refitted (one filter per channel: pruning removes whole filters, so
//! a kept one reads the same channel as in the dense network); their batch norms are
//! re-estimated like every other. Because the
//! pass goes in order, each block is repaired on the output of the already-repaired blocks
//! before it.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, relu6};
use coinfer_split::Network;
use coinfer_split::model::{
    BasicBlock, Block, ConvBnRelu, DepthwiseSeparable, InvertedResidual, LinearBlock,
};
use serde::{Deserialize, Serialize};

use crate::calibrate::{Calibration, DenseOutputs};
use crate::prune::prune_keeping;
use crate::reconstruct::{fit_conv, fit_linear, reestimate_batch_norm};
use crate::tensors::select;
use crate::{PruneRatios, SparsityError, prune};

/// How a pruned network is repaired before it is scored (no training involved).
///
/// Serialises as `"none"`, `"bn"` or `"reconstruct"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PruneRecovery {
    /// Plain pruning: the sliced weights and batch-norm statistics, nothing else.
    #[serde(rename = "none")]
    None,
    /// Re-estimate the running mean and variance of every batch norm on the calibration set.
    #[serde(rename = "bn")]
    BatchNorm,
    /// Least-squares reconstruction of every layer that lost input channels, then batch-norm
    /// re-estimation (the strongest, and the default).
    #[default]
    #[serde(rename = "reconstruct")]
    Reconstruct,
}

impl PruneRecovery {
    /// Every mode, weakest first.
    pub const ALL: [PruneRecovery; 3] = [
        PruneRecovery::None,
        PruneRecovery::BatchNorm,
        PruneRecovery::Reconstruct,
    ];

    /// The serialised name: `none`, `bn` or `reconstruct`.
    pub fn name(self) -> &'static str {
        match self {
            PruneRecovery::None => "none",
            PruneRecovery::BatchNorm => "bn",
            PruneRecovery::Reconstruct => "reconstruct",
        }
    }
}

impl std::fmt::Display for PruneRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Prunes `dense` with `ratios` (as [`prune`]) and repairs the result with `recovery` on
/// `calibration`, which must have been made for `dense` (see the [module docs](self)).
///
/// With [`PruneRecovery::None`] the result is exactly [`prune`]'s (ratio 0 gives back the same
/// network); otherwise it is an inference copy (like [`Network::valid`]) whose batch norms use
/// the re-estimated statistics. Fails with [`SparsityError::CalibrationNetwork`] if
/// `calibration` was made with another network (whatever the recovery), like [`prune`] for bad
/// ratios, and with [`SparsityError::Reconstruction`] if a layer cannot be refitted.
///
/// ```
/// use burn::prelude::*;
/// use coinfer_split::{zoo, Network};
/// use coinfer_sparsity::{prune_with_recovery, Calibration, PruneRatios, PruneRecovery};
///
/// let device = Device::flex();
/// device.seed(3);
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// // In real use: normalised training images (never validation or test images).
/// let images = Tensor::<4>::random([32, 1, 28, 28], burn::tensor::Distribution::Default, &device);
/// let calibration = Calibration::new(&net, images)?; // once per dense network
/// let pruned = prune_with_recovery(
///     &net,
///     &PruneRatios::Uniform(0.5),
///     PruneRecovery::Reconstruct,
///     &calibration,
/// )?;
/// assert!(pruned.num_params() < net.num_params());
/// assert_eq!(pruned.logits(calibration.images().clone())?.dims(), [32, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prune_with_recovery(
    dense: &Network,
    ratios: &PruneRatios,
    recovery: PruneRecovery,
    calibration: &Calibration,
) -> Result<Network, SparsityError> {
    calibration.check_network(dense)?;
    if recovery == PruneRecovery::None {
        return prune(dense, ratios);
    }
    let (pruned, kept) = prune_keeping(&dense.valid(), ratios)?;
    let (spec, mut module) = pruned.into_parts();
    let mut x = calibration.images().clone();
    for (index, block) in module.blocks.iter_mut().enumerate() {
        let repair = Repair {
            block: index,
            reconstruct: recovery == PruneRecovery::Reconstruct,
            kept_filters: kept.out[index].as_deref(),
            lost_inputs: kept.input[index].is_some(),
        };
        x = match (block, calibration.targets(index)) {
            (Block::ConvBnRelu(m), DenseOutputs::ConvBnRelu { conv }) => {
                repair.conv_bn_relu(m, conv, x)?
            }
            (
                Block::Basic(m),
                DenseOutputs::Basic {
                    conv1,
                    conv2,
                    shortcut,
                },
            ) => repair.basic(m, [conv1, conv2], shortcut.as_ref(), x)?,
            (Block::DepthwiseSeparable(m), DenseOutputs::DepthwiseSeparable { pointwise }) => {
                repair.depthwise_separable(m, pointwise, x)?
            }
            (Block::InvertedResidual(m), DenseOutputs::InvertedResidual { expand, project }) => {
                repair.inverted_residual(m, [expand, project], x)?
            }
            (Block::Linear(m), DenseOutputs::Linear { linear }) => repair.linear(m, linear, x)?,
            (block, _) => block.forward(x),
        };
    }
    Ok(Network::from_parts(spec, module)?)
}

/// Runs `conv`, re-estimates `bn` on its output and returns the batch norm's output.
fn recalibrate((conv, bn): (&Conv2d, &mut BatchNorm), input: Tensor<4>) -> Tensor<4> {
    let z = conv.forward(input);
    *bn = reestimate_batch_norm(bn, &z);
    bn.forward(z)
}

/// Repairs one block of the pruned network, given its input in the pruned network and the
/// dense outputs of its layers; returns the block's output.
struct Repair<'a> {
    block: usize,
    reconstruct: bool,
    /// Kept output filters of the block's prunable layer, if it was pruned (then the inner
    /// `conv2` of a basic block lost those input channels).
    kept_filters: Option<&'a [usize]>,
    /// Whether the block's first layers (conv, `conv1` and shortcut, linear) lost inputs.
    lost_inputs: bool,
}

impl Repair<'_> {
    /// Refits `conv` on `input` to reproduce `target` if reconstruction is on and `refit`,
    /// re-estimates `bn` on the conv's output, and returns the batch norm's output.
    fn conv_bn(
        &self,
        layer: &'static str,
        (conv, bn): (&mut Conv2d, &mut BatchNorm),
        input: Tensor<4>,
        target: impl FnOnce() -> Tensor<4>,
        refit: bool,
    ) -> Result<Tensor<4>, SparsityError> {
        if self.reconstruct && refit {
            *conv = fit_conv(conv, input.clone(), target()).map_err(|reason| {
                SparsityError::Reconstruction {
                    block: self.block,
                    layer,
                    reason,
                }
            })?;
        }
        Ok(recalibrate((conv, bn), input))
    }

    /// The dense output `y` restricted to the kept filters of this block's pruned layer.
    fn restrict(&self, y: &Tensor<4>) -> Tensor<4> {
        match self.kept_filters {
            Some(kept) => select(y.clone(), 1, kept),
            None => y.clone(),
        }
    }

    fn conv_bn_relu(
        &self,
        m: &mut ConvBnRelu,
        target: &Tensor<4>,
        x: Tensor<4>,
    ) -> Result<Tensor<4>, SparsityError> {
        let y = self.conv_bn(
            "conv",
            (&mut m.conv, &mut m.bn),
            x,
            || self.restrict(target),
            self.lost_inputs,
        )?;
        Ok(relu(y))
    }

    fn basic(
        &self,
        m: &mut BasicBlock,
        [target1, target2]: [&Tensor<4>; 2],
        target_shortcut: Option<&Tensor<4>>,
        x: Tensor<4>,
    ) -> Result<Tensor<4>, SparsityError> {
        let skip = match (&mut m.shortcut, target_shortcut) {
            (Some(p), Some(target)) => self.conv_bn(
                "shortcut",
                (&mut p.conv, &mut p.bn),
                x.clone(),
                || target.clone(),
                self.lost_inputs,
            )?,
            _ => x.clone(),
        };
        let mid = relu(self.conv_bn(
            "conv1",
            (&mut m.conv1, &mut m.bn1),
            x,
            || self.restrict(target1),
            self.lost_inputs,
        )?);
        let y = self.conv_bn(
            "conv2",
            (&mut m.conv2, &mut m.bn2),
            mid,
            || target2.clone(),
            self.kept_filters.is_some(),
        )?;
        Ok(relu(y + skip))
    }

    /// The depthwise convolution is never refitted: each of its filters reads one channel, so
    /// a kept channel sees the same filter as in the dense network (pruning the block before
    /// removes whole filters, never part of one); only its batch norm is re-estimated. The
    /// pointwise convolution is refitted when the depthwise filters before it were removed.
    fn depthwise_separable(
        &self,
        m: &mut DepthwiseSeparable,
        target: &Tensor<4>,
        x: Tensor<4>,
    ) -> Result<Tensor<4>, SparsityError> {
        let mid = relu6(recalibrate((&m.depthwise, &mut m.bn1), x));
        let y = self.conv_bn(
            "pointwise",
            (&mut m.pointwise, &mut m.bn2),
            mid,
            || self.restrict(target),
            self.lost_inputs,
        )?;
        Ok(relu(y))
    }

    /// The expansion is refitted when the block lost inputs, the projection when the expansion
    /// lost filters (with the depthwise filters after them); the depthwise convolution is never
    /// refitted (see [`depthwise_separable`](Self::depthwise_separable)). Every batch norm is
    /// re-estimated.
    fn inverted_residual(
        &self,
        m: &mut InvertedResidual,
        [target_expand, target_project]: [&Tensor<4>; 2],
        x: Tensor<4>,
    ) -> Result<Tensor<4>, SparsityError> {
        let skip = m.residual.then(|| x.clone());
        let mid = relu6(self.conv_bn(
            "expand",
            (&mut m.expand, &mut m.bn1),
            x,
            || self.restrict(target_expand),
            self.lost_inputs,
        )?);
        let mid = relu6(recalibrate((&m.depthwise, &mut m.bn2), mid));
        let y = self.conv_bn(
            "project",
            (&mut m.project, &mut m.bn3),
            mid,
            || target_project.clone(),
            self.kept_filters.is_some(),
        )?;
        Ok(match skip {
            Some(skip) => y + skip,
            None => y,
        })
    }

    fn linear(
        &self,
        m: &mut LinearBlock,
        target: &Tensor<2>,
        x: Tensor<4>,
    ) -> Result<Tensor<4>, SparsityError> {
        let [batch, features, _, _] = x.dims();
        let x = x.reshape([batch, features]);
        if self.reconstruct && self.lost_inputs {
            m.linear = fit_linear(&m.linear, x.clone(), target.clone()).map_err(|reason| {
                SparsityError::Reconstruction {
                    block: self.block,
                    layer: "linear",
                    reason,
                }
            })?;
        }
        let y = m.linear.forward(x);
        let y = if m.relu { relu(y) } else { y };
        let [_, out] = y.dims();
        Ok(y.reshape([batch, out, 1, 1]))
    }
}
