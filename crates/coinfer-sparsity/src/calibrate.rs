//! [`Calibration`]: the images pruning recovery fits on, checked once.
//!
//! Recovery ([`prune_with_recovery`](crate::prune_with_recovery)) re-estimates batch-norm
//! statistics and refits the layers that lost input channels on these images, so they must come
//! from the **training** split (never the validation images a search scores plans on, nor the
//! test images), normalised exactly as the network's inputs are.

use burn::prelude::*;
use burn::tensor::activation::{relu, relu6};
use coinfer_split::Network;
use coinfer_split::model::Block;

use crate::SparsityError;
use crate::check::check_weights;
use crate::tensors::values;

/// Calibration images and what the dense network computes on them, made once per dense network
/// and reused for every pruning plan.
///
/// Holds normalised training images `[N, C, H, W]` (on the network's device, `N ≥ 1`, every
/// value finite) and, for every convolution and linear layer of the dense network, its output on
/// them (before batch norm): the targets of least-squares reconstruction. Memory: one float per
/// output element of every layer per image (about 40 MB for `resnet-mini` and 512 images).
///
/// ```
/// use burn::prelude::*;
/// use coinfer_split::{zoo, Network};
/// use coinfer_sparsity::Calibration;
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let images = Tensor::<4>::zeros([16, 1, 28, 28], &device);
/// let calibration = Calibration::new(&net, images)?;
/// assert_eq!(calibration.len(), 16);
/// # Ok::<(), coinfer_sparsity::SparsityError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Calibration {
    images: Tensor<4>,
    /// [`Network::digest`] of the dense network the targets come from.
    digest: String,
    /// Per block of the dense network: its layers' outputs on `images`.
    targets: Vec<DenseOutputs>,
}

/// The dense network's pre-batch-norm layer outputs of one block on the calibration images.
#[derive(Debug, Clone)]
// One value per block, built once per calibration: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DenseOutputs {
    /// A conv-bn-relu: its convolution.
    ConvBnRelu { conv: Tensor<4> },
    /// A basic block: both convolutions and the projection shortcut, if any.
    Basic {
        conv1: Tensor<4>,
        conv2: Tensor<4>,
        shortcut: Option<Tensor<4>>,
    },
    /// A depthwise-separable block: its pointwise convolution (the depthwise convolution is never
    /// refitted).
    DepthwiseSeparable { pointwise: Tensor<4> },
    /// An inverted residual: its expansion and projection (the depthwise convolution is never
    /// refitted).
    InvertedResidual {
        expand: Tensor<4>,
        project: Tensor<4>,
    },
    /// A linear layer (bias included, before any ReLU), on the flattened input.
    Linear { linear: Tensor<2> },
    /// Pooling and flatten: nothing to fit.
    Other,
}

impl Calibration {
    /// Checks a batch of normalised training images against `dense` and runs `dense` on them
    /// once (in inference mode), keeping every layer's output.
    ///
    /// Fails with [`SparsityError::EmptyCalibration`] for a batch of zero images (or images of
    /// zero size), [`SparsityError::CalibrationShape`] unless the images have the network's
    /// input shape, [`SparsityError::NonFiniteCalibration`] naming the first image holding a NaN
    /// or infinity, and [`SparsityError::WeightsMismatch`] if the network's weights do not match
    /// its spec.
    pub fn new(dense: &Network, images: Tensor<4>) -> Result<Calibration, SparsityError> {
        let [n, c, h, w] = images.dims();
        if n == 0 || c * h * w == 0 {
            return Err(SparsityError::EmptyCalibration { dims: [n, c, h, w] });
        }
        let expected = dense.spec().input.dims();
        if [c, h, w] != expected {
            return Err(SparsityError::CalibrationShape {
                expected,
                got: [c, h, w],
            });
        }
        let per_image = c * h * w;
        if let Some(position) = values(images.clone())?.iter().position(|v| !v.is_finite()) {
            return Err(SparsityError::NonFiniteCalibration {
                image: position / per_image,
            });
        }
        check_weights(dense)?;
        let valid = dense.valid();
        let mut x = images.clone();
        let mut targets = Vec::with_capacity(valid.module().blocks.len());
        for block in &valid.module().blocks {
            let outputs;
            (x, outputs) = trace_block(block, x);
            targets.push(outputs);
        }
        Ok(Calibration {
            images,
            digest: dense.digest(),
            targets,
        })
    }

    /// The images, `[N, C, H, W]`.
    pub fn images(&self) -> &Tensor<4> {
        &self.images
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dims()[0]
    }

    /// Always `false`: [`Calibration::new`] rejects an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails with [`SparsityError::CalibrationNetwork`] unless `dense` is the network this
    /// calibration was made with (same spec and weights).
    pub(crate) fn check_network(&self, dense: &Network) -> Result<(), SparsityError> {
        let digest = dense.digest();
        if digest != self.digest {
            return Err(SparsityError::CalibrationNetwork {
                expected: self.digest.clone(),
                got: digest,
            });
        }
        Ok(())
    }

    /// The dense outputs of block `index`.
    pub(crate) fn targets(&self, index: usize) -> &DenseOutputs {
        self.targets.get(index).unwrap_or(&DenseOutputs::Other)
    }
}

/// Runs one block of the dense network, keeping its layers' outputs.
fn trace_block(block: &Block, x: Tensor<4>) -> (Tensor<4>, DenseOutputs) {
    match block {
        Block::ConvBnRelu(m) => {
            let conv = m.conv.forward(x);
            (
                relu(m.bn.forward(conv.clone())),
                DenseOutputs::ConvBnRelu { conv },
            )
        }
        Block::Basic(m) => {
            let shortcut = m.shortcut.as_ref().map(|p| p.conv.forward(x.clone()));
            let skip = match (&m.shortcut, &shortcut) {
                (Some(p), Some(z)) => p.bn.forward(z.clone()),
                _ => x.clone(),
            };
            let conv1 = m.conv1.forward(x);
            let conv2 = m.conv2.forward(relu(m.bn1.forward(conv1.clone())));
            let y = relu(m.bn2.forward(conv2.clone()) + skip);
            (
                y,
                DenseOutputs::Basic {
                    conv1,
                    conv2,
                    shortcut,
                },
            )
        }
        Block::DepthwiseSeparable(m) => {
            let mid = relu6(m.bn1.forward(m.depthwise.forward(x)));
            let pointwise = m.pointwise.forward(mid);
            (
                relu(m.bn2.forward(pointwise.clone())),
                DenseOutputs::DepthwiseSeparable { pointwise },
            )
        }
        Block::InvertedResidual(m) => {
            let skip = m.residual.then(|| x.clone());
            let expand = m.expand.forward(x);
            let mid = relu6(m.bn1.forward(expand.clone()));
            let mid = relu6(m.bn2.forward(m.depthwise.forward(mid)));
            let project = m.project.forward(mid);
            let y = m.bn3.forward(project.clone());
            let y = match skip {
                Some(skip) => y + skip,
                None => y,
            };
            (y, DenseOutputs::InvertedResidual { expand, project })
        }
        Block::Linear(m) => {
            let [batch, features, _, _] = x.dims();
            let linear = m.linear.forward(x.reshape([batch, features]));
            let y = if m.relu {
                relu(linear.clone())
            } else {
                linear.clone()
            };
            let [_, out] = y.dims();
            (
                y.reshape([batch, out, 1, 1]),
                DenseOutputs::Linear { linear },
            )
        }
        other => (other.forward(x), DenseOutputs::Other),
    }
}
