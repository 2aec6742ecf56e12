//! Analytic cost of every block of a (possibly pruned) [`NetSpec`]: MACs, FLOPs, parameters and
//! the size of the activation it hands to the next block.
//!
//! All figures are **per sample** (batch size 1) at inference time.
//!
//! # Counting conventions
//! - **MACs** count the multiply-accumulates of convolutions and linear layers only.
//! - **FLOPs** are `2 · MACs` (one multiply and one add per MAC) plus the element-wise work:
//!   - batch norm at inference is a folded scale and shift: 2 FLOPs per element it normalises;
//!   - ReLU: 1 FLOP (a max) per element; the residual add of a basic block: 1 per element;
//!   - linear bias: 1 per output feature;
//!   - max pooling: `k² − 1` comparisons per output element; average pooling: `k²` per output
//!     element (`k² − 1` adds and a divide); global average pooling: one per input element;
//!   - flatten is a reshape: 0.
//! - **Parameters** are the stored weights exactly as burn's `num_params()` counts them:
//!   convolution kernels (no bias), linear weights and biases, and `4 · C` per batch norm: the
//!   learned scale and shift *and* the running mean and variance, which burn visits like
//!   parameters (they ship with the model, so they count for its size; subtract `2 · C` per
//!   batch norm for the trainable count).
//! - **Activation bytes** are those of the block's output at float32 (4 bytes per element):
//!   what crosses the link uncompressed if the network is cut after that block.

use coinfer_split::{BlockSpec, FeatureShape, NetSpec};
use serde::{Deserialize, Serialize};

use crate::error::{ProfileError, Result};

/// Bytes of one float32 activation element.
pub const FLOAT32_BYTES: u64 = 4;

/// The analytic cost of one block for one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCost {
    /// Position of the block in the network.
    pub index: usize,
    /// The block kind (`conv_bn_relu`, `basic_block`, ...).
    pub kind: String,
    /// Shape of the block's input.
    pub input: FeatureShape,
    /// Shape of the block's output.
    pub output: FeatureShape,
    /// Multiply-accumulates of its convolutions and linear layers.
    pub macs: u64,
    /// Floating-point operations (see the [module docs](self) for what is counted).
    pub flops: u64,
    /// Stored parameters (equal to burn's `num_params()` of the block; see the
    /// [module docs](self)).
    pub params: u64,
    /// Elements of the output activation.
    pub activation_elements: u64,
    /// Bytes of the output activation at float32.
    pub activation_bytes: u64,
}

/// Sums over a run of blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostTotals {
    /// Number of blocks summed.
    pub blocks: usize,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Floating-point operations.
    pub flops: u64,
    /// Stored parameters (as burn's `num_params()`).
    pub params: u64,
}

/// The cost of every block of a network, in order.
///
/// ```
/// use coinfer_profile::NetCost;
/// use coinfer_split::zoo;
///
/// let cost = NetCost::of(&zoo::resnet_mini(10))?;
/// let (device, edge) = (cost.device_part(4)?, cost.edge_part(4)?);
/// assert_eq!(device.flops + edge.flops, cost.totals().flops);
/// assert_eq!(cost.cut_bytes(0)?, 28 * 28 * 4); // the raw input at float32
/// # Ok::<(), coinfer_profile::ProfileError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCost {
    /// The network's name.
    pub name: String,
    /// Shape of one input sample.
    pub input: FeatureShape,
    /// Per-block costs, `blocks[i]` for block `i`.
    pub blocks: Vec<BlockCost>,
}

impl NetCost {
    /// Costs every block of `spec` (its shapes must chain; see [`NetSpec::shapes`]).
    pub fn of(spec: &NetSpec) -> Result<NetCost> {
        let shapes = spec.shapes()?;
        let blocks = spec
            .blocks
            .iter()
            .enumerate()
            .map(|(index, block)| block_cost(index, block, shapes[index], shapes[index + 1]))
            .collect();
        Ok(NetCost {
            name: spec.name.clone(),
            input: spec.input,
            blocks,
        })
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the network has no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Sums over the whole network.
    pub fn totals(&self) -> CostTotals {
        sum(&self.blocks)
    }

    /// Sums over the device part: blocks `[0, split)`.
    pub fn device_part(&self, split: usize) -> Result<CostTotals> {
        self.check_split(split)?;
        Ok(sum(&self.blocks[..split]))
    }

    /// Sums over the edge part: blocks `[split, len)`.
    pub fn edge_part(&self, split: usize) -> Result<CostTotals> {
        self.check_split(split)?;
        Ok(sum(&self.blocks[split..]))
    }

    /// Prefix sums of FLOPs: `prefix[s]` is the device part's FLOPs at split `s`
    /// (`len() + 1` entries, `prefix[0] = 0`).
    pub fn prefix_flops(&self) -> Vec<u64> {
        let mut prefix = Vec::with_capacity(self.blocks.len() + 1);
        let mut total = 0u64;
        prefix.push(0);
        for block in &self.blocks {
            total += block.flops;
            prefix.push(total);
        }
        prefix
    }

    /// The activation shape at split `s`: the input for `s = 0`, else block `s − 1`'s output.
    pub fn cut_shape(&self, split: usize) -> Result<FeatureShape> {
        self.check_split(split)?;
        Ok(match split {
            0 => self.input,
            s => self.blocks[s - 1].output,
        })
    }

    /// Elements of the activation at split `s`.
    pub fn cut_elements(&self, split: usize) -> Result<u64> {
        Ok(self.cut_shape(split)?.elements() as u64)
    }

    /// Bytes of the activation at split `s` at float32 (the uncompressed payload).
    pub fn cut_bytes(&self, split: usize) -> Result<u64> {
        Ok(self.cut_elements(split)? * FLOAT32_BYTES)
    }

    pub(crate) fn check_split(&self, split: usize) -> Result<()> {
        if split > self.blocks.len() {
            return Err(ProfileError::SplitOutOfRange {
                split,
                blocks: self.blocks.len(),
            });
        }
        Ok(())
    }
}

fn sum(blocks: &[BlockCost]) -> CostTotals {
    blocks.iter().fold(
        CostTotals {
            blocks: 0,
            ..CostTotals::default()
        },
        |acc, b| CostTotals {
            blocks: acc.blocks + 1,
            macs: acc.macs + b.macs,
            flops: acc.flops + b.flops,
            params: acc.params + b.params,
        },
    )
}

/// Work of one convolution followed by batch norm (`[in → out]`, `k × k`, on an `h × w` output).
struct ConvBn {
    macs: u64,
    flops: u64,
    params: u64,
}

fn conv_bn(in_channels: u64, out_channels: u64, kernel: u64, out_pixels: u64) -> ConvBn {
    let weights = kernel * kernel * in_channels * out_channels;
    let macs = weights * out_pixels;
    let bn_elements = out_channels * out_pixels;
    ConvBn {
        macs,
        flops: 2 * macs + 2 * bn_elements,
        // Scale, shift, running mean and running variance: burn's num_params() counts all four.
        params: weights + 4 * out_channels,
    }
}

/// Work of a 3×3 depthwise convolution of `channels` followed by batch norm.
fn depthwise_bn(channels: u64, out_pixels: u64) -> ConvBn {
    // One input channel per filter: a 1 → 1 convolution, `channels` times.
    let one = conv_bn(1, 1, 3, out_pixels);
    ConvBn {
        macs: channels * one.macs,
        flops: channels * one.flops,
        params: channels * one.params,
    }
}

/// The cost of `block` (at position `index`) mapping `input` to `output`; the shapes must be the
/// ones [`NetSpec::shapes`] infers.
pub fn block_cost(
    index: usize,
    block: &BlockSpec,
    input: FeatureShape,
    output: FeatureShape,
) -> BlockCost {
    let c_in = input.channels as u64;
    let out_elements = output.elements() as u64;
    let out_pixels = (output.height * output.width) as u64;
    let (macs, flops, params) = match *block {
        BlockSpec::ConvBnRelu {
            out_channels,
            kernel,
            ..
        } => {
            let conv = conv_bn(c_in, out_channels as u64, kernel as u64, out_pixels);
            (conv.macs, conv.flops + out_elements, conv.params)
        }
        BlockSpec::BasicBlock {
            mid_channels,
            out_channels,
            stride,
        } => {
            let (mid, out) = (mid_channels as u64, out_channels as u64);
            let first = conv_bn(c_in, mid, 3, out_pixels);
            let second = conv_bn(mid, out, 3, out_pixels);
            // The same rule as the burn module: a projection when the shape changes.
            let shortcut = (stride != 1 || input.channels != out_channels)
                .then(|| conv_bn(c_in, out, 1, out_pixels));
            let (sc_macs, sc_flops, sc_params) = shortcut
                .map(|s| (s.macs, s.flops, s.params))
                .unwrap_or((0, 0, 0));
            // ReLU after the first conv, then add + ReLU on the output.
            let elementwise = mid * out_pixels + 2 * out_elements;
            (
                first.macs + second.macs + sc_macs,
                first.flops + second.flops + sc_flops + elementwise,
                first.params + second.params + sc_params,
            )
        }
        BlockSpec::DepthwiseSeparable { out_channels, .. } => {
            let out = out_channels as u64;
            // The depthwise convolution is `c_in` separate 3×3 filters of one channel each.
            let depthwise = depthwise_bn(c_in, out_pixels);
            let pointwise = conv_bn(c_in, out, 1, out_pixels);
            // ReLU6 (min and max) after the depthwise convolution, ReLU after the pointwise.
            let elementwise = 2 * c_in * out_pixels + out_elements;
            (
                depthwise.macs + pointwise.macs,
                depthwise.flops + pointwise.flops + elementwise,
                depthwise.params + pointwise.params,
            )
        }
        BlockSpec::InvertedResidual {
            expand_channels,
            out_channels,
            stride,
        } => {
            let (mid, out) = (expand_channels as u64, out_channels as u64);
            // The expansion runs at the input's resolution, the rest at the output's.
            let in_pixels = (input.height * input.width) as u64;
            let expand = conv_bn(c_in, mid, 1, in_pixels);
            let depthwise = depthwise_bn(mid, out_pixels);
            let project = conv_bn(mid, out, 1, out_pixels);
            // ReLU6 (min and max) after the expansion and the depthwise convolution; the add
            // of the identity shortcut.
            let residual =
                BlockSpec::inverted_residual_adds_input(input.channels, out_channels, stride);
            let elementwise =
                2 * mid * (in_pixels + out_pixels) + if residual { out_elements } else { 0 };
            (
                expand.macs + depthwise.macs + project.macs,
                expand.flops + depthwise.flops + project.flops + elementwise,
                expand.params + depthwise.params + project.params,
            )
        }
        BlockSpec::MaxPool { kernel, .. } => {
            let window = (kernel * kernel) as u64;
            (0, window.saturating_sub(1) * out_elements, 0)
        }
        BlockSpec::AvgPool { kernel, .. } => (0, (kernel * kernel) as u64 * out_elements, 0),
        BlockSpec::GlobalAvgPool => (0, input.elements() as u64, 0),
        BlockSpec::Flatten => (0, 0, 0),
        BlockSpec::Linear { out_features, relu } => {
            let out = out_features as u64;
            let macs = c_in * out;
            let relu_flops = if relu { out } else { 0 };
            (macs, 2 * macs + out + relu_flops, macs + out)
        }
    };
    BlockCost {
        index,
        kind: block.kind().to_string(),
        input,
        output,
        macs,
        flops,
        params,
        activation_elements: out_elements,
        activation_bytes: out_elements * FLOAT32_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use coinfer_split::{Network, zoo};

    fn block_params(net: &Network, index: usize) -> u64 {
        net.module().blocks[index].num_params() as u64
    }

    #[test]
    fn params_equal_burn_num_params_for_the_zoo() {
        let device = Device::flex();
        for spec in [
            zoo::resnet_mini(10),
            zoo::resnet18_cifar(10),
            zoo::mobilenetv2_mini(10),
            zoo::mobilenetv2_cifar(10),
        ] {
            let cost = NetCost::of(&spec).unwrap();
            let net = Network::new(spec.clone(), &device).unwrap();
            for (i, block) in cost.blocks.iter().enumerate() {
                assert_eq!(
                    block.params,
                    block_params(&net, i),
                    "{} block {i}",
                    spec.name
                );
            }
            assert_eq!(
                cost.totals().params,
                net.num_params() as u64,
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn params_equal_burn_num_params_for_a_pruned_spec() {
        let mut spec = zoo::resnet_mini(10);
        let unpruned = NetCost::of(&spec).unwrap().totals().params;
        // Both edits must land: a zoo change that moves these blocks fails here instead of
        // quietly testing the unpruned network.
        let BlockSpec::BasicBlock { mid_channels, .. } = &mut spec.blocks[2] else {
            panic!(
                "resnet-mini block 2 is not a basic block: {:?}",
                spec.blocks[2]
            );
        };
        assert!(
            *mid_channels > 17,
            "block 2 has {mid_channels} mid channels"
        );
        *mid_channels = 17;
        let BlockSpec::ConvBnRelu { out_channels, .. } = &mut spec.blocks[0] else {
            panic!(
                "resnet-mini block 0 is not conv-bn-relu: {:?}",
                spec.blocks[0]
            );
        };
        assert!(*out_channels > 24, "block 0 has {out_channels} channels");
        *out_channels = 24;
        let net = Network::new(spec.clone(), &Device::flex()).unwrap();
        let pruned = NetCost::of(&spec).unwrap().totals().params;
        assert!(
            pruned < unpruned,
            "{pruned} params pruned, {unpruned} unpruned"
        );
        assert_eq!(pruned, net.num_params() as u64);
    }

    #[test]
    fn resnet_mini_macs_by_hand() {
        let cost = NetCost::of(&zoo::resnet_mini(10)).unwrap();
        // Stem: 3×3 conv 1 → 32, stride 2, 28×28 → 14×14: 9 · 1 · 32 · 196.
        assert_eq!(cost.blocks[0].macs, 9 * 32 * 196);
        // + BN (2/elt) + ReLU (1/elt) on 32·196 elements.
        assert_eq!(cost.blocks[0].flops, 2 * 9 * 32 * 196 + 3 * 32 * 196);
        // 288 kernel weights + 4 · 32 batch-norm values.
        assert_eq!(cost.blocks[0].params, 288 + 128);
        // Basic block 32 → 32, stride 2, 14×14 → 7×7: 3×3 32→32, 3×3 32→32, 1×1 32→32.
        let pixels = 7 * 7;
        assert_eq!(
            cost.blocks[1].macs,
            9 * 32 * 32 * pixels + 9 * 32 * 32 * pixels + 32 * 32 * pixels
        );
        // Basic block 32 → 64, stride 2, 7×7 → 4×4: 3×3 32→64, 3×3 64→64, 1×1 32→64.
        let pixels = 4 * 4;
        assert_eq!(
            cost.blocks[2].macs,
            9 * 32 * 64 * pixels + 9 * 64 * 64 * pixels + 32 * 64 * pixels
        );
        // FLOPs of that block: 2·MACs + BN on mid, out and the projection (2/elt each)
        // + ReLU on mid + add and ReLU on out.
        let (mid, out) = (64 * pixels, 64 * pixels);
        assert_eq!(
            cost.blocks[2].flops,
            2 * cost.blocks[2].macs + 2 * (mid + out + out) + mid + 2 * out
        );
        // Basic block 64 → 128, stride 1 (projection for the width), 4×4.
        assert_eq!(
            cost.blocks[3].macs,
            9 * 64 * 128 * pixels + 9 * 128 * 128 * pixels + 64 * 128 * pixels
        );
        // Global pooling reads 128 × 4 × 4; the classifier is 128 → 10.
        assert_eq!((cost.blocks[4].macs, cost.blocks[4].flops), (0, 128 * 16));
        let last = cost.blocks.last().unwrap();
        assert_eq!((last.macs, last.params), (1280, 1290));
    }

    #[test]
    fn pooling_costs_by_hand() {
        let spec = NetSpec {
            name: "pools".into(),
            input: FeatureShape::image(3, 8, 8),
            blocks: vec![
                BlockSpec::MaxPool {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
                BlockSpec::AvgPool {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                BlockSpec::Flatten,
                BlockSpec::Linear {
                    out_features: 5,
                    relu: true,
                },
            ],
        };
        let cost = NetCost::of(&spec).unwrap();
        let flops: Vec<u64> = cost.blocks.iter().map(|b| b.flops).collect();
        // 3 comparisons per 3×4×4 output; 9 per 3×4×4 output; free; 2·48·5 + bias 5 + ReLU 5.
        assert_eq!(flops, [3 * 48, 9 * 48, 0, 2 * 48 * 5 + 10]);
        assert_eq!(cost.totals().macs, 48 * 5);
    }

    #[test]
    fn activation_sizes_follow_the_shapes() {
        let cost = NetCost::of(&zoo::resnet_mini(10)).unwrap();
        assert_eq!(cost.blocks[0].activation_elements, 32 * 14 * 14);
        assert_eq!(cost.blocks[1].activation_elements, 32 * 7 * 7);
        assert_eq!(cost.blocks[1].activation_bytes, 4 * 32 * 7 * 7);
        assert_eq!(cost.cut_bytes(2).unwrap(), 4 * 32 * 7 * 7);
        assert_eq!(cost.cut_shape(0).unwrap(), FeatureShape::image(1, 28, 28));
        assert_eq!(cost.cut_elements(cost.len()).unwrap(), 10);
    }

    #[test]
    fn prefix_sums_split_the_totals() {
        let cost = NetCost::of(&zoo::resnet18_cifar(10)).unwrap();
        let prefix = cost.prefix_flops();
        assert_eq!(prefix.len(), cost.len() + 1);
        assert_eq!(prefix[cost.len()], cost.totals().flops);
        for (s, &flops_before) in prefix.iter().enumerate() {
            let device = cost.device_part(s).unwrap();
            let edge = cost.edge_part(s).unwrap();
            assert_eq!(device.flops, flops_before);
            assert_eq!(device.flops + edge.flops, cost.totals().flops);
            assert_eq!(device.params + edge.params, cost.totals().params);
            assert_eq!(device.blocks + edge.blocks, cost.len());
        }
        assert!(matches!(
            cost.device_part(cost.len() + 1),
            Err(ProfileError::SplitOutOfRange { .. })
        ));
    }

    #[test]
    fn pruning_a_block_reduces_its_flops() {
        let dense = NetCost::of(&zoo::resnet_mini(10)).unwrap();
        let mut spec = zoo::resnet_mini(10);
        if let BlockSpec::BasicBlock { mid_channels, .. } = &mut spec.blocks[1] {
            *mid_channels = 16;
        }
        let pruned = NetCost::of(&spec).unwrap();
        assert!(pruned.blocks[1].flops < dense.blocks[1].flops);
        assert!(pruned.blocks[1].params < dense.blocks[1].params);
        assert_eq!(pruned.blocks[1].output, dense.blocks[1].output);
        assert_eq!(pruned.blocks[2], dense.blocks[2]);
    }
}
