//! Training kernels: convolutions and batch norms whose forward **and backward** passes run on
//! coinfer's own CPU code, plugged into burn's autodiff as a backend extension, so that modules,
//! optimisers, records and the GPU path stay burn's.
//!
//! burn-flex runs a convolution as direct loops, its input gradient as a transposed convolution
//! and its weight gradient as another convolution, with AVX2 matrix products at most; its batch
//! norm in training mode is a chain of generic ops (transposes, means, broadcasts) forward and
//! backward. Here:
//!
//! - every convolution of a training step (forward, input gradient, weight gradient) is one faer
//!   matrix product per chunk of images and channel group, around a channels-last im2col (runs of
//!   `C_in` values per tap) and col2im ([`conv`](crate::ConvGeometry));
//! - batch norm in training mode is three fused passes forward (statistics, normalise) and two
//!   backward;
//! - chunks of images (convolutions) and channels (batch norm) run in parallel over the current
//!   rayon pool. The chunking depends on the shapes only and partial sums are added in chunk
//!   order, so a result does not depend on the thread count.
//!
//! [`conv2d`] and [`batch_norm`] are what the models call instead of `Conv2d::forward` and
//! `BatchNorm::forward`. On a flex device (plain or with autodiff) they run the extension
//! [`TrainKernels`]: for `Flex` the forward kernels, for `Autodiff<Flex>` the forward kernels and
//! backward nodes of their own. On any other device (ndarray, wgpu), for what the kernels do not
//! cover (dilation, asymmetric padding, non-`f32` tensors, batch norm in inference mode) and when
//! [`TrainingOps::Burn`] is chosen, they call burn's own op, so every backend keeps working and
//! older figures can be reproduced.
//!
//! ```
//! use burn::nn::conv::Conv2dConfig;
//! use burn::prelude::*;
//!
//! let device = Device::flex().autodiff();
//! let conv = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
//! let x = Tensor::<4>::ones([2, 3, 9, 9], &device).require_grad();
//! let y = coinfer_kernels::conv2d(&conv, x.clone());
//! let grads = y.sum().backward();
//! assert_eq!(x.grad(&grads).unwrap().dims(), [2, 3, 9, 9]);
//! ```
//!
//! # Features
//! - `flex` (default): the kernels on burn-flex. Without it every call is burn's own op.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod buffer;
mod conv;
#[cfg(feature = "flex")]
mod extension;
mod norm;
mod training_ops;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

pub use conv::ConvGeometry;
#[cfg(feature = "flex")]
pub use extension::TrainKernels;
pub use training_ops::{ParseTrainingOpsError, TrainingOps};

/// Whether tensors on `device` run on the kernels: a flex device (with or without autodiff),
/// the `flex` feature on, and [`TrainingOps::global`] is `Kernels`.
pub fn runs_on_kernels(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        extension::runs_on_kernels(device)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// `conv.forward(x)`: on the training kernels when `x` lives on a flex device and the
/// convolution has dilation 1 and symmetric padding; burn's own convolution otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    {
        extension::conv2d(conv, x)
    }
    #[cfg(not(feature = "flex"))]
    {
        conv.forward(x)
    }
}

/// `bn.forward(x)`: on the training kernels when it normalises with the batch's statistics
/// (training mode: an autodiff device and a layer that is not frozen) on a flex device; burn's
/// own otherwise. The running statistics are updated as burn's `BatchNorm` does
/// (`running · (1 − momentum) + batch · momentum`, biased batch variance).
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        extension::batch_norm(bn, x)
    }
    #[cfg(not(feature = "flex"))]
    {
        bn.forward(x)
    }
}

/// What follows the batch norm in [`batch_norm_act`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: `bn(x) + skip`.
    None,
    /// A ReLU: `relu(bn(x) + skip)`.
    Relu,
}

/// `activation(bn.forward(x) + skip)` (without `skip` when `None`): a batch norm, an optional
/// residual add and an optional ReLU in one pass forward and two backward on the kernels,
/// where [`batch_norm`] runs on them and `skip` has `x`'s shape (burn's own ops, one after
/// the other, otherwise). The running statistics are updated as [`batch_norm`] does.
///
/// Fusing saves the separate passes (and tensors) of the add and the ReLU, forward and
/// backward, which burn-flex runs on one thread.
pub fn batch_norm_act(
    bn: &BatchNorm,
    x: Tensor<4>,
    skip: Option<Tensor<4>>,
    activation: Activation,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    {
        extension::batch_norm_act(bn, x, skip, activation)
    }
    #[cfg(not(feature = "flex"))]
    {
        let y = bn.forward(x);
        let y = match skip {
            Some(skip) => y + skip,
            None => y,
        };
        match activation {
            Activation::None => y,
            Activation::Relu => burn::tensor::activation::relu(y),
        }
    }
}
