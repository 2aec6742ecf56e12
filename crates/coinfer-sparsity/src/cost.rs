//! Analytic cost of every block of a spec: multiply-accumulates, stored parameters, output size.
//!
//! Minimal on purpose (`coinfer-profile` has the full cost model): enough to see what pruning
//! saves and to check pruned weights against the spec.

use std::iter::Sum;
use std::ops::Add;

use coinfer_split::{BlockSpec, NetSpec};
use serde::{Deserialize, Serialize};

use crate::SparsityError;

/// The analytic cost of one block (or, summed, of a network).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCost {
    /// Multiply-accumulates of the convolutions and linear layers for one sample:
    /// `k² · C_in · C_out · H_out · W_out` per convolution (both of a basic block and its
    /// projection shortcut), `in · out` per linear layer. Batch norm, ReLU, pooling, the
    /// residual addition and biases are not counted (they are O(activations), not
    /// O(activations × channels)).
    pub macs: u64,
    /// Scalars stored in the block's weights, as burn's `Module::num_params` counts them:
    /// convolution weights (no bias), `4 · C` per batch norm (γ, β, running mean and
    /// variance), `in · out + out` per linear layer.
    pub params: u64,
    /// Scalars in the block's output activation for one sample (summed: all activations
    /// written by the network).
    pub output_elements: u64,
}

impl Add for BlockCost {
    type Output = BlockCost;

    fn add(self, other: BlockCost) -> BlockCost {
        BlockCost {
            macs: self.macs + other.macs,
            params: self.params + other.params,
            output_elements: self.output_elements + other.output_elements,
        }
    }
}

impl Sum for BlockCost {
    fn sum<I: Iterator<Item = BlockCost>>(iter: I) -> BlockCost {
        iter.fold(BlockCost::default(), Add::add)
    }
}

/// The cost of every block of `spec`, in order (sum them for the network:
/// `flops(&spec)?.into_iter().sum::<BlockCost>()`).
///
/// ```
/// use coinfer_split::zoo;
/// use coinfer_sparsity::{flops, BlockCost};
///
/// let costs = flops(&zoo::resnet_mini(10))?;
/// // The stem: 3×3 convolution, 1 → 32 channels, stride 2 → 14×14.
/// assert_eq!(costs[0].macs, 9 * 32 * 14 * 14);
/// let total: BlockCost = costs.into_iter().sum();
/// assert!(total.macs > 5_000_000);
/// # Ok::<(), coinfer_sparsity::SparsityError>(())
/// ```
pub fn flops(spec: &NetSpec) -> Result<Vec<BlockCost>, SparsityError> {
    let shapes = spec.shapes()?;
    Ok(spec
        .blocks
        .iter()
        .zip(shapes.windows(2))
        .map(|(block, io)| {
            let (input, output) = (io[0], io[1]);
            let c_in = input.channels as u64;
            let pixels = (output.height * output.width) as u64;
            let conv = |k: usize, c_in: u64, c_out: u64| {
                let weights = (k * k) as u64 * c_in * c_out;
                (weights * pixels, weights + 4 * c_out)
            };
            let (macs, params) = match *block {
                BlockSpec::ConvBnRelu {
                    out_channels,
                    kernel,
                    ..
                } => conv(kernel, c_in, out_channels as u64),
                BlockSpec::BasicBlock {
                    mid_channels,
                    out_channels,
                    stride,
                } => {
                    let (mid, out) = (mid_channels as u64, out_channels as u64);
                    let parts = [
                        conv(3, c_in, mid),
                        conv(3, mid, out),
                        if stride != 1 || c_in != out {
                            conv(1, c_in, out)
                        } else {
                            (0, 0)
                        },
                    ];
                    parts
                        .iter()
                        .fold((0, 0), |(m, p), &(dm, dp)| (m + dm, p + dp))
                }
                BlockSpec::Linear { out_features, .. } => {
                    let out = out_features as u64;
                    (c_in * out, c_in * out + out)
                }
                BlockSpec::MaxPool { .. }
                | BlockSpec::AvgPool { .. }
                | BlockSpec::GlobalAvgPool
                | BlockSpec::Flatten => (0, 0),
            };
            BlockCost {
                macs,
                params,
                output_elements: output.elements() as u64,
            }
        })
        .collect())
}
