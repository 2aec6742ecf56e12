//! Unstructured magnitude masks: zero the smallest-magnitude weights of the convolution and
//! linear layers without changing any shape.
//!
//! Masks model what an unstructured-sparsity runtime could skip; they do not make the dense
//! burn network faster (use [`prune`](crate::prune) for that). Biases and batch-norm
//! parameters are never masked. Exactly `round(s · n)` weights are zeroed per target (the
//! smallest `|w|`; ties go to the earlier layer, then the lower index); the report counts the
//! zeros actually present afterwards, so weights that were already zero can push the achieved
//! sparsity above the target.

use burn::module::Param;
use burn::prelude::*;
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, NetSpec, Network};
use serde::{Deserialize, Serialize};

use crate::SparsityError;
use crate::check::check_weights;
use crate::tensors::values;

/// Target fraction of zero weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskSparsity {
    /// One threshold over all maskable layers together: `round(s · total)` weights are zeroed
    /// wherever they are smallest.
    Global(f32),
    /// One sparsity per layer, aligned with [`mask_layers`].
    PerLayer(Vec<f32>),
}

/// One weight tensor that [`magnitude_mask`] may zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MaskLayer {
    /// Block index in the spec.
    pub block: usize,
    /// Which weight of the block: `conv`, `conv1`, `conv2`, `shortcut`, `depthwise`,
    /// `pointwise`, `expand`, `project` or `linear`.
    pub name: &'static str,
    /// Number of weights in it.
    pub weights: usize,
}

/// Sparsity achieved in one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// Block index in the spec.
    pub block: usize,
    /// Which weight of the block (see [`MaskLayer::name`]).
    pub name: String,
    /// Number of weights.
    pub weights: usize,
    /// Weights equal to zero after masking.
    pub zeros: usize,
    /// `zeros / weights`.
    pub sparsity: f32,
}

/// What [`magnitude_mask`] achieved, counted on the masked weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskReport {
    /// Every maskable layer, in [`mask_layers`] order.
    pub layers: Vec<LayerSparsity>,
    /// Zeros over all maskable weights.
    pub overall: f32,
}

/// The weight tensors [`magnitude_mask`] works on, in block order (within a basic block:
/// `conv1`, `conv2`, then the projection shortcut if there is one; within a depthwise-separable
/// block `depthwise`, `pointwise`; within an inverted residual `expand`, `depthwise`, `project`).
pub fn mask_layers(spec: &NetSpec) -> Result<Vec<MaskLayer>, SparsityError> {
    let shapes = spec.shapes()?;
    let mut layers = Vec::new();
    for (block, (block_spec, io)) in spec.blocks.iter().zip(shapes.windows(2)).enumerate() {
        let c_in = io[0].channels;
        let mut push = |name, weights| {
            layers.push(MaskLayer {
                block,
                name,
                weights,
            })
        };
        match *block_spec {
            BlockSpec::ConvBnRelu {
                out_channels,
                kernel,
                ..
            } => push("conv", kernel * kernel * c_in * out_channels),
            BlockSpec::BasicBlock {
                mid_channels,
                out_channels,
                stride,
            } => {
                push("conv1", 9 * c_in * mid_channels);
                push("conv2", 9 * mid_channels * out_channels);
                if stride != 1 || c_in != out_channels {
                    push("shortcut", c_in * out_channels);
                }
            }
            BlockSpec::DepthwiseSeparable { out_channels, .. } => {
                push("depthwise", 9 * c_in);
                push("pointwise", c_in * out_channels);
            }
            BlockSpec::InvertedResidual {
                expand_channels,
                out_channels,
                ..
            } => {
                push("expand", c_in * expand_channels);
                push("depthwise", 9 * expand_channels);
                push("project", expand_channels * out_channels);
            }
            BlockSpec::Linear { out_features, .. } => push("linear", c_in * out_features),
            _ => {}
        }
    }
    Ok(layers)
}

/// A mutable weight of the module, of either rank.
enum WeightMut<'a> {
    Conv(&'a mut Param<Tensor<4>>),
    Linear(&'a mut Param<Tensor<2>>),
}

impl WeightMut<'_> {
    fn read(&self) -> Result<Vec<f32>, SparsityError> {
        match self {
            WeightMut::Conv(p) => values(p.val()),
            WeightMut::Linear(p) => values(p.val()),
        }
    }

    fn write(&mut self, data: Vec<f32>) {
        match self {
            WeightMut::Conv(p) => {
                let (dims, device) = (p.dims(), p.val().device());
                **p = Param::from_tensor(Tensor::from_data(TensorData::new(data, dims), &device));
            }
            WeightMut::Linear(p) => {
                let (dims, device) = (p.dims(), p.val().device());
                **p = Param::from_tensor(Tensor::from_data(TensorData::new(data, dims), &device));
            }
        }
    }
}

fn weights_mut(blocks: &mut [Block]) -> Vec<WeightMut<'_>> {
    let mut weights = Vec::new();
    for block in blocks {
        match block {
            Block::ConvBnRelu(m) => weights.push(WeightMut::Conv(&mut m.conv.weight)),
            Block::Basic(m) => {
                weights.push(WeightMut::Conv(&mut m.conv1.weight));
                weights.push(WeightMut::Conv(&mut m.conv2.weight));
                if let Some(p) = &mut m.shortcut {
                    weights.push(WeightMut::Conv(&mut p.conv.weight));
                }
            }
            Block::DepthwiseSeparable(m) => {
                weights.push(WeightMut::Conv(&mut m.depthwise.weight));
                weights.push(WeightMut::Conv(&mut m.pointwise.weight));
            }
            Block::InvertedResidual(m) => {
                weights.push(WeightMut::Conv(&mut m.expand.weight));
                weights.push(WeightMut::Conv(&mut m.depthwise.weight));
                weights.push(WeightMut::Conv(&mut m.project.weight));
            }
            Block::Linear(m) => weights.push(WeightMut::Linear(&mut m.linear.weight)),
            _ => {}
        }
    }
    weights
}

fn check_sparsity(layer: String, value: f32) -> Result<(), SparsityError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SparsityError::InvalidSparsity { layer, value })
    }
}

/// How many of `n` weights a sparsity `s` zeroes: `round(s · n)`.
fn zero_count(s: f32, n: usize) -> usize {
    ((f64::from(s) * n as f64).round() as usize).min(n)
}

/// Zeroes the `count` smallest-magnitude values across `groups` (ties: earlier group, then
/// lower index). Returns which groups changed.
fn zero_smallest(groups: &mut [Vec<f32>], count: usize) -> Vec<bool> {
    let mut changed = vec![false; groups.len()];
    if count == 0 {
        return changed;
    }
    let mut magnitudes: Vec<f32> = groups.iter().flatten().map(|w| w.abs()).collect();
    let (_, &mut threshold, _) = magnitudes.select_nth_unstable_by(count - 1, f32::total_cmp);
    let below = magnitudes
        .iter()
        .filter(|m| m.total_cmp(&threshold).is_lt())
        .count();
    let mut ties = count - below;
    for (group, changed) in groups.iter_mut().zip(&mut changed) {
        for w in group.iter_mut() {
            let order = w.abs().total_cmp(&threshold);
            if order.is_lt() || (order.is_eq() && ties > 0) {
                if order.is_eq() {
                    ties -= 1;
                }
                *w = 0.0;
                *changed = true;
            }
        }
    }
    changed
}

/// Zeroes the smallest-magnitude convolution and linear weights of `network` to reach
/// `sparsity`, and reports the sparsity achieved (zeros counted on the result).
///
/// Sparsities must be in `[0, 1]` ([`SparsityError::InvalidSparsity`]); a per-layer list must
/// have one value per [`mask_layers`] entry ([`SparsityError::WrongCount`]). Layers with
/// nothing to zero are shared with the input, so sparsity 0 returns the same network.
///
/// ```
/// use burn::prelude::*;
/// use coinfer_split::{zoo, Network};
/// use coinfer_sparsity::{magnitude_mask, MaskSparsity};
///
/// let net = Network::new(zoo::resnet_mini(10), &Device::flex())?;
/// let (masked, report) = magnitude_mask(&net, &MaskSparsity::Global(0.5))?;
/// assert!((report.overall - 0.5).abs() < 1e-4);
/// assert_eq!(masked.num_params(), net.num_params());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn magnitude_mask(
    network: &Network,
    sparsity: &MaskSparsity,
) -> Result<(Network, MaskReport), SparsityError> {
    let spec = network.spec();
    let layers = mask_layers(spec)?;
    match sparsity {
        MaskSparsity::Global(s) => check_sparsity("global".into(), *s)?,
        MaskSparsity::PerLayer(list) => {
            if list.len() != layers.len() {
                return Err(SparsityError::WrongCount {
                    what: "mask sparsities",
                    expected: layers.len(),
                    got: list.len(),
                });
            }
            for (layer, &s) in layers.iter().zip(list) {
                check_sparsity(format!("block {} {}", layer.block, layer.name), s)?;
            }
        }
    }
    check_weights(network)?;

    let mut module = network.module().clone();
    let mut weights = weights_mut(&mut module.blocks);
    let mut data = weights
        .iter()
        .map(WeightMut::read)
        .collect::<Result<Vec<_>, _>>()?;
    let changed = match sparsity {
        MaskSparsity::Global(s) => {
            let total = data.iter().map(Vec::len).sum();
            zero_smallest(&mut data, zero_count(*s, total))
        }
        MaskSparsity::PerLayer(list) => data
            .iter_mut()
            .zip(list)
            .map(|(layer, &s)| {
                let count = zero_count(s, layer.len());
                zero_smallest(std::slice::from_mut(layer), count)[0]
            })
            .collect(),
    };
    for ((weight, values), changed) in weights.iter_mut().zip(data).zip(changed) {
        if changed {
            weight.write(values);
        }
    }

    // Count the zeros on the masked tensors themselves, not on the plan.
    let mut report_layers = Vec::with_capacity(layers.len());
    for (layer, weight) in layers.iter().zip(&weights) {
        let zeros = weight.read()?.iter().filter(|&&w| w == 0.0).count();
        report_layers.push(LayerSparsity {
            block: layer.block,
            name: layer.name.to_string(),
            weights: layer.weights,
            zeros,
            sparsity: zeros as f32 / layer.weights.max(1) as f32,
        });
    }
    drop(weights);
    let total: usize = report_layers.iter().map(|l| l.weights).sum();
    let zeros: usize = report_layers.iter().map(|l| l.zeros).sum();
    let report = MaskReport {
        layers: report_layers,
        overall: zeros as f32 / total.max(1) as f32,
    };
    Ok((Network::from_parts(spec.clone(), module)?, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_smallest_breaks_ties_by_group_then_index() {
        let mut groups = vec![vec![3.0, -1.0, 2.0], vec![1.0, -0.5, 1.0]];
        let changed = zero_smallest(&mut groups, 3);
        // -0.5 first, then the tied magnitude 1.0: group 0 index 1, then group 1 index 0.
        assert_eq!(groups, vec![vec![3.0, 0.0, 2.0], vec![0.0, 0.0, 1.0]]);
        assert_eq!(changed, vec![true, true]);
    }

    #[test]
    fn zero_smallest_of_nothing_changes_nothing() {
        let mut groups = vec![vec![1.0, 2.0]];
        assert_eq!(zero_smallest(&mut groups, 0), vec![false]);
        assert_eq!(groups, vec![vec![1.0, 2.0]]);
    }
}
