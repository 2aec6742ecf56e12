//! Pruning with recovery: [`prune_with_recovery`] prunes like [`prune`](crate::prune), then
//! repairs the pruned network on calibration images, without any training.
//!
//! One pass runs the dense and the pruned network side by side over the calibration images,
//! block by block, in order. At every block, with [`PruneRecovery::Reconstruct`], each layer
//! that lost input channels (the consumer of a pruned layer: the next convolution, the inner
//! `conv2` of a basic block, `conv1` and the projection shortcut of the next basic block, or the
//! linear layer after a flatten) is refitted by ridge least squares so that, fed with the
//! **pruned** network's actual input, it reproduces the **dense** network's output of that
//! layer (pre-batch-norm; see [`crate::reconstruct`]). Then, with either
//! [`PruneRecovery::BatchNorm`] or [`PruneRecovery::Reconstruct`], every batch norm of the block
//! gets the exact mean and variance of its input over the calibration images. Because the
//! pass goes in order, each block is repaired on the output of the already-repaired blocks
//! before it.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use coinfer_split::Network;
use coinfer_split::model::{BasicBlock, Block, ConvBnRelu, LinearBlock};
use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
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

/// Prunes `dense` with `ratios` (as [`prune`]) and repairs the result on `calibration` with
/// `recovery` (see the [module docs](self)).
///
/// `calibration` must hold normalised **training** images of the network's input shape on the
/// network's device ([`SparsityError::CalibrationShape`] otherwise); it is checked whatever
/// the recovery. With [`PruneRecovery::None`] the result is exactly [`prune`]'s (ratio 0 gives
/// back the same network); otherwise it is an inference copy (like [`Network::valid`]) whose
/// batch norms use the re-estimated statistics. Fails like [`prune`] for bad ratios or
/// weights, and with [`SparsityError::Reconstruction`] if a layer cannot be refitted.
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
/// let calibration = Calibration::new(images)?;
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
    calibration.check_for(dense.spec())?;
    if recovery == PruneRecovery::None {
        return prune(dense, ratios);
    }
    let dense = dense.valid();
    let (pruned, kept) = prune_keeping(&dense, ratios)?;
    let (spec, mut module) = pruned.into_parts();
    let reconstruct = recovery == PruneRecovery::Reconstruct;
    let mut x_dense = calibration.images().clone();
    let mut x_pruned = x_dense.clone();
    for (index, (block, dense_block)) in module
        .blocks
        .iter_mut()
        .zip(&dense.module().blocks)
        .enumerate()
    {
        let repair = Repair {
            block: index,
            reconstruct,
            kept: kept[index].as_deref(),
        };
        (x_pruned, x_dense) = match (block, dense_block) {
            (Block::ConvBnRelu(pruned), Block::ConvBnRelu(dense)) => {
                repair.conv_bn_relu(pruned, dense, x_pruned, x_dense)?
            }
            (Block::Basic(pruned), Block::Basic(dense)) => {
                repair.basic(pruned, dense, x_pruned, x_dense)?
            }
            (Block::Linear(pruned), Block::Linear(dense)) => {
                repair.linear(pruned, dense, x_pruned, x_dense)?
            }
            (block, dense_block) => (block.forward(x_pruned), dense_block.forward(x_dense)),
        };
    }
    Ok(Network::from_parts(spec, module)?)
}

/// Repairs one block of the pruned network, given its input in the pruned and the dense
/// network; returns the block's output in both.
struct Repair<'a> {
    block: usize,
    reconstruct: bool,
    /// Kept output filters of the block's prunable layer, if it was pruned.
    kept: Option<&'a [usize]>,
}

impl Repair<'_> {
    /// Refits `pruned` on `input` to reproduce `target` when reconstruction is on and the
    /// layer lost input channels; otherwise leaves it as it is.
    fn conv(
        &self,
        layer: &'static str,
        pruned: &mut Conv2d,
        dense: &Conv2d,
        input: &Tensor<4>,
        target: impl FnOnce() -> Tensor<4>,
    ) -> Result<(), SparsityError> {
        if self.reconstruct && pruned.weight.dims()[1] < dense.weight.dims()[1] {
            *pruned = fit_conv(pruned, input.clone(), target()).map_err(|reason| {
                SparsityError::Reconstruction {
                    block: self.block,
                    layer,
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// The dense output `y` restricted to the kept filters of this block's pruned layer.
    fn kept_filters(&self, y: Tensor<4>) -> Tensor<4> {
        match self.kept {
            Some(kept) => select(y, 1, kept),
            None => y,
        }
    }

    fn conv_bn_relu(
        &self,
        pruned: &mut ConvBnRelu,
        dense: &ConvBnRelu,
        x: Tensor<4>,
        x_dense: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), SparsityError> {
        let z_dense = dense.conv.forward(x_dense);
        self.conv("conv", &mut pruned.conv, &dense.conv, &x, || {
            self.kept_filters(z_dense.clone())
        })?;
        let z = pruned.conv.forward(x);
        pruned.bn = reestimate_batch_norm(&pruned.bn, &z);
        Ok((
            relu(pruned.bn.forward(z)),
            relu(dense.bn.forward(z_dense)),
        ))
    }

    fn basic(
        &self,
        pruned: &mut BasicBlock,
        dense: &BasicBlock,
        x: Tensor<4>,
        x_dense: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), SparsityError> {
        let (skip, skip_dense) = match (&mut pruned.shortcut, &dense.shortcut) {
            (Some(projection), Some(dense_projection)) => {
                let z_dense = dense_projection.conv.forward(x_dense.clone());
                self.conv(
                    "shortcut",
                    &mut projection.conv,
                    &dense_projection.conv,
                    &x,
                    || z_dense.clone(),
                )?;
                let z = projection.conv.forward(x.clone());
                projection.bn = reestimate_batch_norm(&projection.bn, &z);
                (
                    projection.bn.forward(z),
                    dense_projection.bn.forward(z_dense),
                )
            }
            _ => (x.clone(), x_dense.clone()),
        };
        let z1_dense = dense.conv1.forward(x_dense);
        self.conv("conv1", &mut pruned.conv1, &dense.conv1, &x, || {
            self.kept_filters(z1_dense.clone())
        })?;
        let z1 = pruned.conv1.forward(x);
        pruned.bn1 = reestimate_batch_norm(&pruned.bn1, &z1);
        let mid = relu(pruned.bn1.forward(z1));
        let mid_dense = relu(dense.bn1.forward(z1_dense));

        let z2_dense = dense.conv2.forward(mid_dense);
        self.conv("conv2", &mut pruned.conv2, &dense.conv2, &mid, || {
            z2_dense.clone()
        })?;
        let z2 = pruned.conv2.forward(mid);
        pruned.bn2 = reestimate_batch_norm(&pruned.bn2, &z2);
        Ok((
            relu(pruned.bn2.forward(z2) + skip),
            relu(dense.bn2.forward(z2_dense) + skip_dense),
        ))
    }

    fn linear(
        &self,
        pruned: &mut LinearBlock,
        dense: &LinearBlock,
        x: Tensor<4>,
        x_dense: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), SparsityError> {
        let flat = |x: Tensor<4>| {
            let [batch, features, _, _] = x.dims();
            x.reshape([batch, features])
        };
        let (x, x_dense) = (flat(x), flat(x_dense));
        let y_dense = dense.linear.forward(x_dense);
        if self.reconstruct && pruned.linear.weight.dims()[0] < dense.linear.weight.dims()[0] {
            pruned.linear = fit_linear(&pruned.linear, x.clone(), y_dense.clone()).map_err(
                |reason| SparsityError::Reconstruction {
                    block: self.block,
                    layer: "linear",
                    reason,
                },
            )?;
        }
        let y = pruned.linear.forward(x);
        let activate = |y: Tensor<2>| {
            let y = if pruned.relu { relu(y) } else { y };
            let [batch, out] = y.dims();
            y.reshape([batch, out, 1, 1])
        };
        Ok((activate(y), activate(y_dense)))
    }
}
