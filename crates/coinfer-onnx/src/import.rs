//! ONNX → [`Network`]: a walk along the graph from its input to its logits that recognises the
//! block kinds of [`BlockSpec`] and copies their weights.
//!
//! The walk keeps one "current" tensor. A tensor read by one node starts a chain
//! (convolution [→ batch norm] → activation, pooling, flatten, linear); a tensor read by two
//! nodes starts a residual block, which must join again at an `Add`. Every node on the way is
//! checked against what the block form can represent; what it cannot is an [`OnnxError`]
//! naming the node and its operator.

use std::path::{Path, PathBuf};

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use coinfer_data::Normalization;
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, FeatureShape, NetSpec, Network};
use serde::{Deserialize, Serialize};

use crate::error::OnnxError;
use crate::graph::{Graph, Node};

/// The metadata key (`metadata_props`) from which the input normalisation is read: a JSON
/// object `{"mean": [..], "std": [..]}` with one value per input channel.
pub const NORMALIZATION_KEY: &str = "coinfer:normalization";

/// The batch norm epsilon of every imported batch norm (burn's default, which is what a saved
/// network is loaded with); other epsilons are folded into the running variance.
const EPSILON: f64 = 1e-5;

/// What the file does not say and the caller may.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportOptions {
    /// `[channels, height, width]` of one input, for models whose input shape is dynamic (also
    /// checked against a static one).
    pub input_shape: Option<[usize; 3]>,
    /// The input normalisation; overrides the one in the file's metadata.
    pub normalization: Option<Normalization>,
    /// The network's name (default: the file stem).
    pub name: Option<String>,
}

/// An imported classifier.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network: an ordinary spec and its weights.
    pub network: Network,
    /// The input normalisation, from the options, the file's metadata or leading `Sub`/`Div`
    /// nodes (in that order), if any says it.
    pub normalization: Option<Normalization>,
    /// Width of the logits.
    pub num_classes: usize,
    /// The default-domain opset the file was written with.
    pub opset: i64,
    /// The file.
    pub source: PathBuf,
}

/// Reads an ONNX CNN classifier into a [`Network`] on `device`.
///
/// # Errors
/// [`OnnxError`] naming the node and operator the network form cannot represent, or the file
/// problem.
pub fn import(
    path: impl AsRef<Path>,
    options: &ImportOptions,
    device: &Device,
) -> Result<Imported, OnnxError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(OnnxError::io(path))?;
    import_bytes(&bytes, path, options, device)
}

/// [`import`] on bytes already read; `path` only names the model in errors.
///
/// # Errors
/// As [`import`].
pub fn import_bytes(
    bytes: &[u8],
    path: &Path,
    options: &ImportOptions,
    device: &Device,
) -> Result<Imported, OnnxError> {
    let graph = Graph::decode(bytes, path)?;
    let input = input_shape(&graph, options)?;
    let mut walk = Walk {
        graph: &graph,
        shape: input,
        blocks: Vec::new(),
        weights: Vec::new(),
        leading: LeadingNorm::default(),
    };
    walk.run()?;
    let name = options.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "onnx".into())
    });
    let spec = NetSpec {
        name,
        input,
        blocks: walk.blocks,
    };
    spec.check()?;
    let num_classes = spec.num_classes()?;
    if let Some(Some(width)) = graph.output_dims.get(1)
        && *width != num_classes
    {
        return Err(OnnxError::Model {
            path: path.to_path_buf(),
            reason: format!(
                "the graph output {} declares {width} classes but the network computes {num_classes}",
                graph.output
            ),
        });
    }
    let network = build(spec, walk.weights, device)?;
    let normalization = match &options.normalization {
        Some(n) => Some(n.clone()),
        None => match graph.metadata.get(NORMALIZATION_KEY) {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| OnnxError::Model {
                path: path.to_path_buf(),
                reason: format!("metadata {NORMALIZATION_KEY}: {e}"),
            })?),
            None => walk.leading.normalization(input.channels),
        },
    };
    if let Some(norm) = &normalization
        && (norm.mean.len() != input.channels || norm.std.len() != input.channels)
    {
        return Err(OnnxError::Model {
            path: path.to_path_buf(),
            reason: format!(
                "the normalisation has {} means and {} stds for {} input channels",
                norm.mean.len(),
                norm.std.len(),
                input.channels
            ),
        });
    }
    Ok(Imported {
        network,
        normalization,
        num_classes,
        opset: graph.opset,
        source: path.to_path_buf(),
    })
}

fn input_shape(graph: &Graph, options: &ImportOptions) -> Result<FeatureShape, OnnxError> {
    let dims = &graph.input_dims;
    let dynamic = |reason: String| OnnxError::DynamicShape {
        node: graph.input.clone(),
        op: "input".into(),
        reason,
    };
    if !dims.is_empty() && dims.len() != 4 {
        return Err(OnnxError::Unsupported {
            node: graph.input.clone(),
            op: "input".into(),
            reason: format!(
                "the input has {} dimensions; an image classifier takes [N, C, H, W]",
                dims.len()
            ),
        });
    }
    let from_file: Option<[usize; 3]> = match dims.as_slice() {
        [_, Some(c), Some(h), Some(w)] => Some([*c, *h, *w]),
        _ => None,
    };
    let [c, h, w] = match (from_file, options.input_shape) {
        (Some(file), Some(given)) if file != given => {
            return Err(OnnxError::Model {
                path: graph.path.clone(),
                reason: format!(
                    "the input shape {given:?} given does not match the file's {file:?}"
                ),
            });
        }
        (Some(shape), _) | (None, Some(shape)) => shape,
        (None, None) => {
            return Err(dynamic(format!(
                "the input's [C, H, W] is {:?} in the file; give it (--input-shape C,H,W)",
                dims.iter().skip(1).collect::<Vec<_>>()
            )));
        }
    };
    Ok(FeatureShape::image(c, h, w))
}

/// Per-channel `Sub`/`Div` by constants before the first block: the normalisation folded into
/// the graph.
#[derive(Debug, Default)]
struct LeadingNorm {
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
}

impl LeadingNorm {
    fn normalization(&self, channels: usize) -> Option<Normalization> {
        if self.mean.is_none() && self.std.is_none() {
            return None;
        }
        Some(Normalization {
            mean: self.mean.clone().unwrap_or_else(|| vec![0.0; channels]),
            std: self.std.clone().unwrap_or_else(|| vec![1.0; channels]),
        })
    }
}

/// A convolution with the batch norm it feeds (or an identity batch norm carrying its bias).
#[derive(Debug, Clone)]
pub(crate) struct ConvBn {
    pub weight: Vec<f32>,
    pub dims: [usize; 4],
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// The weights of one imported block, in the order the block's module holds them.
#[derive(Debug, Clone)]
enum BlockWeights {
    None,
    Conv(ConvBn),
    Basic(ConvBn, ConvBn, Option<ConvBn>),
    Depthwise(ConvBn, ConvBn),
    Inverted(ConvBn, ConvBn, ConvBn),
    /// Weight `[in, out]` and bias `[out]`.
    Linear(Vec<f32>, Vec<f32>),
}

/// A parsed convolution unit: geometry, weights, the tensor after its batch norm.
#[derive(Debug, Clone)]
struct Unit {
    node: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    out_channels: usize,
    in_channels: usize,
    weights: ConvBn,
    out: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Relu,
    Relu6,
}

struct Walk<'g> {
    graph: &'g Graph,
    shape: FeatureShape,
    blocks: Vec<BlockSpec>,
    weights: Vec<BlockWeights>,
    leading: LeadingNorm,
}

impl<'g> Walk<'g> {
    fn node(&self, index: usize) -> &'g Node {
        &self.graph.nodes[index]
    }

    fn unsupported(&self, index: usize, reason: impl Into<String>) -> OnnxError {
        let node = self.node(index);
        OnnxError::Unsupported {
            node: node.name.clone(),
            op: node.op.clone(),
            reason: reason.into(),
        }
    }

    fn run(&mut self) -> Result<(), OnnxError> {
        let mut current = self.graph.input.clone();
        while current != self.graph.output {
            let consumers = self.graph.consumers_of(&current);
            current = match *consumers {
                [] => {
                    return Err(OnnxError::Model {
                        path: self.graph.path.clone(),
                        reason: format!(
                            "tensor {current} is neither read by a node nor the graph output {}",
                            self.graph.output
                        ),
                    });
                }
                [node] => self.chain(node, &current)?,
                [a, b] => self.residual(a, b, &current)?,
                [_, _, extra, ..] => {
                    let node = self.node(extra);
                    return Err(OnnxError::Branch {
                        node: node.name.clone(),
                        op: node.op.clone(),
                        reason: format!(
                            "tensor {current} is read by {} nodes; only a residual block \
                             (two readers joined by an Add) may branch",
                            consumers.len()
                        ),
                    });
                }
            };
        }
        Ok(())
    }

    fn push(
        &mut self,
        node: usize,
        block: BlockSpec,
        weights: BlockWeights,
    ) -> Result<(), OnnxError> {
        let index = self.blocks.len();
        self.shape = block
            .output_shape(index, self.shape)
            .map_err(|e| self.unsupported(node, e.to_string()))?;
        self.blocks.push(block);
        self.weights.push(weights);
        Ok(())
    }

    /// The one node reading `tensor` (inside a block, where nothing may branch).
    fn single_reader(&self, tensor: &str, after: usize) -> Result<Option<usize>, OnnxError> {
        if tensor == self.graph.output {
            return Ok(None);
        }
        match *self.graph.consumers_of(tensor) {
            [] => Ok(None),
            [only] => Ok(Some(only)),
            [_, second, ..] => {
                let node = self.node(second);
                let at = self.node(after);
                Err(OnnxError::Branch {
                    node: node.name.clone(),
                    op: node.op.clone(),
                    reason: format!(
                        "the output {tensor} of {} ({}) is read by several nodes inside a block",
                        at.name, at.op
                    ),
                })
            }
        }
    }

    /// Imports the node reading `current` and what follows it as one block; returns the
    /// block's output tensor.
    fn chain(&mut self, index: usize, current: &str) -> Result<String, OnnxError> {
        let node = self.node(index);
        let out = node.outputs.first().cloned().unwrap_or_default();
        match node.op.as_str() {
            "Identity" => Ok(out),
            "Dropout" => {
                if node.outputs.get(1).is_some_and(|m| !m.is_empty()) {
                    return Err(self.unsupported(index, "the dropout mask output is used"));
                }
                Ok(out)
            }
            "Sub" | "Div" if self.blocks.is_empty() => self.leading_norm(index, current),
            "Conv" => self.conv_chain(index),
            "MaxPool" | "AveragePool" => self.pool(index),
            "GlobalAveragePool" => {
                self.push(index, BlockSpec::GlobalAvgPool, BlockWeights::None)?;
                Ok(out)
            }
            "Flatten" => {
                let axis = node.int("axis", 1);
                if axis != 1 {
                    return Err(
                        self.unsupported(index, format!("axis {axis} (only 1: keep the batch)"))
                    );
                }
                if !self.shape.flat {
                    self.push(index, BlockSpec::Flatten, BlockWeights::None)?;
                }
                Ok(out)
            }
            "Reshape" => self.reshape(index),
            "Gemm" => self.gemm(index),
            "MatMul" => self.matmul(index),
            "Relu" | "Clip" | "BatchNormalization" | "Add" => Err(self.unsupported(
                index,
                "only after a convolution (conv-bn-relu, depthwise-separable, inverted \
                 residual) or inside a residual block",
            )),
            other => Err(OnnxError::UnsupportedOp {
                node: node.name.clone(),
                op: other.into(),
                reason: format!("coinfer imports {SUPPORTED}"),
            }),
        }
    }

    fn leading_norm(&mut self, index: usize, current: &str) -> Result<String, OnnxError> {
        let node = self.node(index);
        let constant = node
            .inputs
            .iter()
            .position(|i| i != current)
            .and_then(|p| self.graph.consts.get(&node.inputs[p]).map(|c| (p, c)));
        let channels = self.shape.channels;
        let Some((1, value)) = constant else {
            return Err(self.unsupported(
                index,
                "only `input - constant` / `input / constant` (the input normalisation) is supported",
            ));
        };
        let values = value.f32s();
        let per_channel = match values.len() {
            1 => vec![values[0]; channels],
            n if n == channels => values,
            n => {
                return Err(self.unsupported(
                    index,
                    format!("{n} constants for {channels} input channels"),
                ));
            }
        };
        let is_sub = node.op == "Sub";
        let taken = if is_sub {
            self.leading.mean.is_some() || self.leading.std.is_some()
        } else {
            self.leading.std.is_some()
        };
        if taken {
            return Err(self.unsupported(index, "the normalisation must be one Sub then one Div"));
        }
        if is_sub {
            self.leading.mean = Some(per_channel);
        } else {
            self.leading.std = Some(per_channel);
        }
        Ok(node.outputs.first().cloned().unwrap_or_default())
    }

    fn conv_chain(&mut self, index: usize) -> Result<String, OnnxError> {
        let first = self.unit(index, self.shape.channels)?;
        if first.groups > 1 {
            // Depthwise-separable: depthwise 3×3 → ReLU6 → pointwise 1×1 → ReLU.
            self.expect_depthwise(&first)?;
            let (act, after) = self.activation(&first)?;
            if act != Some(Act::Relu6) {
                return Err(self.unsupported(first.node, "a depthwise convolution must be followed by ReLU6 (Clip 0..6) and a 1×1 convolution"));
            }
            let next = self.expect_reader(&after, first.node, "Conv")?;
            let pointwise = self.unit(next, first.out_channels)?;
            self.expect_pointwise(&pointwise)?;
            let (act, out) = self.activation(&pointwise)?;
            if act != Some(Act::Relu) {
                return Err(self.unsupported(pointwise.node, "the pointwise convolution of a depthwise-separable block must be followed by ReLU"));
            }
            self.push(
                first.node,
                BlockSpec::DepthwiseSeparable {
                    out_channels: pointwise.out_channels,
                    stride: first.stride,
                },
                BlockWeights::Depthwise(first.weights, pointwise.weights),
            )?;
            return Ok(out);
        }
        let (act, after) = self.activation(&first)?;
        match act {
            Some(Act::Relu) => {
                self.push(
                    first.node,
                    BlockSpec::ConvBnRelu {
                        out_channels: first.out_channels,
                        kernel: first.kernel,
                        stride: first.stride,
                        padding: first.padding,
                    },
                    BlockWeights::Conv(first.weights),
                )?;
                Ok(after)
            }
            Some(Act::Relu6) => {
                let (block, weights, out) = self.inverted_tail(first, after)?;
                if let BlockSpec::InvertedResidual {
                    out_channels,
                    stride,
                    ..
                } = block
                    && BlockSpec::inverted_residual_adds_input(
                        self.shape.channels,
                        out_channels,
                        stride,
                    )
                {
                    return Err(self.unsupported(
                        index,
                        "an inverted residual with stride 1 and equal widths must add its input \
                         (coinfer's block always does)",
                    ));
                }
                self.push(index, block, weights)?;
                Ok(out)
            }
            None => Err(self.unknown_reader(&first).unwrap_or_else(|| {
                self.unsupported(
                    first.node,
                    "a convolution must be followed by ReLU (conv-bn-relu) or ReLU6 (inverted \
                 residual expansion), or end a residual branch",
                )
            })),
        }
    }

    /// From an expansion unit followed by ReLU6 (output `after`): depthwise → ReLU6 →
    /// projection. Returns the block (without its shortcut decided) and the projection's
    /// output tensor.
    fn inverted_tail(
        &mut self,
        expand: Unit,
        after: String,
    ) -> Result<(BlockSpec, BlockWeights, String), OnnxError> {
        if expand.kernel != 1 || expand.stride != 1 || expand.padding != 0 {
            return Err(self.unsupported(expand.node, "a convolution followed by ReLU6 must be the 1×1, stride-1 expansion of an inverted residual"));
        }
        let next = self.expect_reader(&after, expand.node, "Conv")?;
        let depthwise = self.unit(next, expand.out_channels)?;
        self.expect_depthwise(&depthwise)?;
        let (act, after) = self.activation(&depthwise)?;
        if act != Some(Act::Relu6) {
            return Err(self.unsupported(
                depthwise.node,
                "the depthwise convolution of an inverted residual must be followed by ReLU6",
            ));
        }
        let next = self.expect_reader(&after, depthwise.node, "Conv")?;
        let project = self.unit(next, expand.out_channels)?;
        self.expect_pointwise(&project)?;
        let block = BlockSpec::InvertedResidual {
            expand_channels: expand.out_channels,
            out_channels: project.out_channels,
            stride: depthwise.stride,
        };
        let out = project.out.clone();
        Ok((
            block,
            BlockWeights::Inverted(expand.weights, depthwise.weights, project.weights),
            out,
        ))
    }

    fn expect_depthwise(&self, unit: &Unit) -> Result<(), OnnxError> {
        if unit.groups != unit.in_channels || unit.out_channels != unit.in_channels {
            return Err(self.unsupported(unit.node, format!(
                "grouped convolution with {} groups on {} channels: only depthwise (groups = channels, one filter each) is supported",
                unit.groups, unit.in_channels
            )));
        }
        if unit.kernel != 3 || unit.padding != 1 {
            return Err(self.unsupported(unit.node, format!(
                "depthwise convolution {}×{} with padding {}: coinfer's depthwise blocks are 3×3 with padding 1",
                unit.kernel, unit.kernel, unit.padding
            )));
        }
        Ok(())
    }

    fn expect_pointwise(&self, unit: &Unit) -> Result<(), OnnxError> {
        if unit.kernel != 1 || unit.stride != 1 || unit.padding != 0 || unit.groups != 1 {
            return Err(self.unsupported(
                unit.node,
                "expected a dense 1×1, stride-1 convolution without padding",
            ));
        }
        Ok(())
    }

    fn expect_reader(&self, tensor: &str, after: usize, op: &str) -> Result<usize, OnnxError> {
        match self.single_reader(tensor, after)? {
            Some(next) if self.node(next).op == op => Ok(next),
            Some(next) => Err(self.unsupported(
                next,
                format!("expected {op} here (after {})", self.node(after).name),
            )),
            None => {
                Err(self.unsupported(after, format!("the graph ends here; expected {op} next")))
            }
        }
    }

    /// An [`OnnxError::UnsupportedOp`] for the node reading a unit's output when that node's
    /// operator is not one coinfer imports (rather than blaming the convolution).
    fn unknown_reader(&self, unit: &Unit) -> Option<OnnxError> {
        let reader = *self.graph.consumers_of(&unit.out).first()?;
        let node = self.node(reader);
        let known = [
            "Conv",
            "BatchNormalization",
            "Relu",
            "Clip",
            "Add",
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "Flatten",
            "Reshape",
            "Gemm",
            "MatMul",
            "Identity",
            "Dropout",
        ];
        (!known.contains(&node.op.as_str())).then(|| OnnxError::UnsupportedOp {
            node: node.name.clone(),
            op: node.op.clone(),
            reason: format!("coinfer imports {SUPPORTED}"),
        })
    }

    /// The activation reading a unit's output, if any: `(activation, tensor after it)`.
    fn activation(&self, unit: &Unit) -> Result<(Option<Act>, String), OnnxError> {
        let Some(next) = self.single_reader(&unit.out, unit.node)? else {
            return Ok((None, unit.out.clone()));
        };
        let node = self.node(next);
        let out = node.outputs.first().cloned().unwrap_or_default();
        match node.op.as_str() {
            "Relu" => Ok((Some(Act::Relu), out)),
            "Clip" => {
                let bound = |position: usize, attr: &str, default: f32| -> f32 {
                    node.inputs
                        .get(position)
                        .filter(|n| !n.is_empty())
                        .and_then(|n| self.graph.consts.get(n))
                        .and_then(|c| c.values.first().map(|&v| v as f32))
                        .unwrap_or_else(|| node.float(attr, default))
                };
                let (lo, hi) = (bound(1, "min", f32::MIN), bound(2, "max", f32::MAX));
                if lo == 0.0 && hi == 6.0 {
                    Ok((Some(Act::Relu6), out))
                } else {
                    Err(self.unsupported(
                        next,
                        format!("Clip({lo}, {hi}): only Clip(0, 6) (ReLU6) is supported"),
                    ))
                }
            }
            _ => Ok((None, unit.out.clone())),
        }
    }

    /// Parses the `Conv` at `index` (input with `in_channels` channels) and the
    /// `BatchNormalization` reading it, if one does.
    fn unit(&self, index: usize, in_channels: usize) -> Result<Unit, OnnxError> {
        let node = self.node(index);
        if node.op != "Conv" {
            return Err(self.unsupported(index, "expected a convolution"));
        }
        let weight = self.weight(index, 1)?;
        let [out_channels, per_group, kh, kw] = match weight.dims.as_slice() {
            &[o, i, h, w] => [o, i, h, w],
            other => {
                return Err(self.weight_error(
                    index,
                    1,
                    format!(
                        "shape {other:?}: a 2-D convolution weight is [out, in/groups, kh, kw]"
                    ),
                ));
            }
        };
        let groups = usize::try_from(node.int("group", 1)).unwrap_or(0);
        if groups == 0 || per_group * groups != in_channels {
            return Err(self.unsupported(index, format!(
                "the weight takes {per_group} channels per group × {groups} groups but the input has {in_channels} channels"
            )));
        }
        if kh != kw {
            return Err(self.unsupported(index, format!("kernel {kh}×{kw}: only square kernels")));
        }
        let uniform = |name: &str, default: i64, what: &str| -> Result<usize, OnnxError> {
            let values = node.ints(name).map(<[i64]>::to_vec).unwrap_or_default();
            let first = values.first().copied().unwrap_or(default);
            if values.iter().any(|&v| v != first) || first < 0 {
                return Err(self.unsupported(
                    index,
                    format!("{name} {values:?}: only equal {what} on every side / axis"),
                ));
            }
            Ok(first as usize)
        };
        let stride = uniform("strides", 1, "strides")?;
        let dilation = uniform("dilations", 1, "dilations")?;
        if dilation != 1 {
            return Err(self.unsupported(
                index,
                format!("dilation {dilation}: only undilated convolutions"),
            ));
        }
        let mut padding = uniform("pads", 0, "padding")?;
        match node.string("auto_pad").as_deref() {
            None | Some("NOTSET") => {}
            Some("VALID") => padding = 0,
            Some(mode @ ("SAME_UPPER" | "SAME_LOWER")) => {
                if stride != 1 || kh % 2 == 0 {
                    return Err(self.unsupported(index, format!("auto_pad {mode} with stride {stride} and kernel {kh}: only stride 1 with an odd kernel (symmetric padding)")));
                }
                padding = kh / 2;
            }
            Some(other) => return Err(self.unsupported(index, format!("auto_pad {other}"))),
        }
        let bias = match node.inputs.get(2).filter(|n| !n.is_empty()) {
            Some(_) => {
                let b = self.weight(index, 2)?;
                if b.values.len() != out_channels {
                    return Err(self.weight_error(
                        index,
                        2,
                        format!("{} values for {out_channels} filters", b.values.len()),
                    ));
                }
                b.f32s()
            }
            None => vec![0.0; out_channels],
        };
        let conv_out = node.outputs.first().cloned().unwrap_or_default();
        // A batch norm reading the convolution takes its bias: bn(conv(x) + b) has mean μ − b.
        let bn_node = self
            .single_reader(&conv_out, index)?
            .filter(|&n| self.node(n).op == "BatchNormalization");
        let (gamma, beta, mean, var, out) = match bn_node {
            Some(bn) => {
                let bn_n = self.node(bn);
                if bn_n.outputs.iter().skip(1).any(|o| !o.is_empty())
                    || bn_n.int("training_mode", 0) != 0
                {
                    return Err(self.unsupported(
                        bn,
                        "batch norm in training mode (export the model in eval mode)",
                    ));
                }
                let epsilon = f64::from(bn_n.float("epsilon", 1e-5));
                let param = |position: usize| -> Result<Vec<f32>, OnnxError> {
                    let c = self.weight(bn, position)?;
                    if c.values.len() != out_channels {
                        return Err(self.weight_error(
                            bn,
                            position,
                            format!("{} values for {out_channels} channels", c.values.len()),
                        ));
                    }
                    Ok(c.f32s())
                };
                let (mut gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
                let mean: Vec<f32> = mean.iter().zip(&bias).map(|(m, b)| m - b).collect();
                // Carry the file's epsilon in the variance: var' + 1e-5 = var + ε (if that
                // would be negative, the difference goes into γ instead).
                let var: Vec<f32> = var
                    .iter()
                    .zip(gamma.iter_mut())
                    .map(|(&v, g)| {
                        let shifted = f64::from(v) + epsilon - EPSILON;
                        if shifted >= 0.0 {
                            shifted as f32
                        } else {
                            *g = (f64::from(*g) * (EPSILON / (f64::from(v) + epsilon)).sqrt())
                                as f32;
                            0.0
                        }
                    })
                    .collect();
                let out = bn_n.outputs.first().cloned().unwrap_or_default();
                (gamma, beta, mean, var, out)
            }
            None => (
                vec![1.0; out_channels],
                bias,
                vec![0.0; out_channels],
                vec![(1.0 - EPSILON) as f32; out_channels],
                conv_out,
            ),
        };
        Ok(Unit {
            node: index,
            kernel: kh,
            stride,
            padding,
            groups,
            out_channels,
            in_channels,
            weights: ConvBn {
                weight: weight.f32s(),
                dims: [out_channels, per_group, kh, kw],
                gamma,
                beta,
                mean,
                var,
            },
            out,
        })
    }

    fn weight(&self, index: usize, position: usize) -> Result<&'g crate::graph::Const, OnnxError> {
        let node = self.node(index);
        let name = node.inputs.get(position).cloned().unwrap_or_default();
        self.graph.consts.get(&name).ok_or_else(|| {
            if name.is_empty() {
                self.weight_error(index, position, "missing input".into())
            } else {
                OnnxError::DynamicShape {
                    node: node.name.clone(),
                    op: node.op.clone(),
                    reason: format!("input {position} ({name}) must be a constant (an initializer), not computed"),
                }
            }
        })
    }

    fn weight_error(&self, index: usize, position: usize, reason: String) -> OnnxError {
        let node = self.node(index);
        OnnxError::Weight {
            node: node.name.clone(),
            op: node.op.clone(),
            tensor: node.inputs.get(position).cloned().unwrap_or_default(),
            reason,
        }
    }

    /// A block whose input `x` is read by the nodes `a` and `b`: a basic block (identity or
    /// projection shortcut) or an inverted residual (identity shortcut).
    fn residual(&mut self, a: usize, b: usize, x: &str) -> Result<String, OnnxError> {
        let in_channels = self.shape.channels;
        let (main, shortcut) = match (self.node(a).op.as_str(), self.node(b).op.as_str()) {
            ("Add", "Conv") => (b, None),
            ("Conv", "Add") => (a, None),
            ("Conv", "Conv") => {
                let ua = self.unit(a, in_channels)?;
                let ub = self.unit(b, in_channels)?;
                let joins = |u: &Unit| {
                    self.graph
                        .consumers_of(&u.out)
                        .first()
                        .is_some_and(|&n| self.node(n).op == "Add")
                };
                match (joins(&ua), joins(&ub)) {
                    (true, false) => (b, Some(ua)),
                    (false, true) => (a, Some(ub)),
                    _ => {
                        return Err(OnnxError::Branch {
                            node: self.node(a).name.clone(),
                            op: "Conv".into(),
                            reason: format!(
                                "tensor {x} feeds two convolutions but neither is a shortcut joining the other branch at an Add"
                            ),
                        });
                    }
                }
            }
            (oa, ob) => {
                return Err(OnnxError::Branch {
                    node: self.node(b).name.clone(),
                    op: ob.into(),
                    reason: format!(
                        "tensor {x} is read by {} ({oa}) and {} ({ob}); a residual block starts with a convolution and joins at an Add",
                        self.node(a).name,
                        self.node(b).name
                    ),
                });
            }
        };
        let skip = shortcut
            .as_ref()
            .map_or_else(|| x.to_string(), |u| u.out.clone());
        let first = self.unit(main, in_channels)?;
        let (act, after) = self.activation(&first)?;
        let (block, weights, branch_out) = match act {
            Some(Act::Relu) => {
                let next = self.expect_reader(&after, first.node, "Conv")?;
                let second = self.unit(next, first.out_channels)?;
                if first.kernel != 3 || first.padding != 1 || first.groups != 1 || second.kernel != 3 || second.padding != 1 || second.stride != 1 || second.groups != 1 {
                    return Err(self.unsupported(first.node, "a basic block is two dense 3×3 convolutions with padding 1 (the second with stride 1)"));
                }
                let out_channels = second.out_channels;
                let needs_projection = first.stride != 1 || in_channels != out_channels;
                match (&shortcut, needs_projection) {
                    (Some(u), true) => {
                        if u.kernel != 1 || u.padding != 0 || u.groups != 1 || u.stride != first.stride || u.out_channels != out_channels {
                            return Err(self.unsupported(u.node, format!("the projection shortcut must be a 1×1 convolution with the block's stride {} and {out_channels} filters", first.stride)));
                        }
                    }
                    (Some(u), false) => return Err(self.unsupported(u.node, "a projection shortcut on a block that keeps its shape (coinfer's block uses the identity there)")),
                    (None, true) => return Err(self.unsupported(first.node, "an identity shortcut on a block that changes its shape")),
                    (None, false) => {}
                }
                let block = BlockSpec::BasicBlock {
                    mid_channels: first.out_channels,
                    out_channels,
                    stride: first.stride,
                };
                let out = second.out.clone();
                let weights = BlockWeights::Basic(first.weights, second.weights, shortcut.map(|u| u.weights));
                (block, weights, out)
            }
            Some(Act::Relu6) => {
                if let Some(u) = &shortcut {
                    return Err(self.unsupported(u.node, "an inverted residual with a projection shortcut (coinfer's has an identity shortcut or none)"));
                }
                let (block, weights, out) = self.inverted_tail(first, after)?;
                if let BlockSpec::InvertedResidual { out_channels, stride, .. } = block
                    && !BlockSpec::inverted_residual_adds_input(in_channels, out_channels, stride)
                {
                    return Err(self.unsupported(main, "an identity shortcut on an inverted residual that changes its shape"));
                }
                (block, weights, out)
            }
            None => return Err(self.unsupported(main, "the residual branch must start with a convolution followed by ReLU (basic block) or ReLU6 (inverted residual)")),
        };
        // The join: Add(branch, skip), then ReLU for a basic block.
        let add = self.expect_reader(&branch_out, main, "Add")?;
        let add_node = self.node(add);
        let mut inputs: Vec<&str> = add_node.inputs.iter().map(String::as_str).collect();
        inputs.sort_unstable();
        let mut expected = vec![branch_out.as_str(), skip.as_str()];
        expected.sort_unstable();
        if inputs != expected {
            return Err(OnnxError::Branch {
                node: add_node.name.clone(),
                op: "Add".into(),
                reason: format!(
                    "adds {:?}; a residual block adds its branch {branch_out} and its shortcut {skip}",
                    add_node.inputs
                ),
            });
        }
        let added = add_node.outputs.first().cloned().unwrap_or_default();
        let out = if matches!(block, BlockSpec::BasicBlock { .. }) {
            match self.single_reader(&added, add)? {
                Some(relu) if self.node(relu).op == "Relu" => {
                    self.node(relu).outputs.first().cloned().unwrap_or_default()
                }
                _ => return Err(self.unsupported(add, "a basic block ends in ReLU after the Add")),
            }
        } else {
            added
        };
        self.push(main, block, weights)?;
        Ok(out)
    }

    fn pool(&mut self, index: usize) -> Result<String, OnnxError> {
        let node = self.node(index);
        let kernel = node
            .ints("kernel_shape")
            .map(<[i64]>::to_vec)
            .unwrap_or_default();
        let strides = node
            .ints("strides")
            .map(<[i64]>::to_vec)
            .unwrap_or_else(|| vec![1, 1]);
        let pads = node
            .ints("pads")
            .map(<[i64]>::to_vec)
            .unwrap_or_else(|| vec![0; 4]);
        let same = |v: &[i64]| v.iter().all(|&x| x == v[0]) && !v.is_empty() && v[0] >= 0;
        if kernel.len() != 2 || !same(&kernel) || !same(&strides) || !same(&pads) {
            return Err(self.unsupported(index, format!("kernel {kernel:?}, strides {strides:?}, pads {pads:?}: only square windows with equal strides and padding")));
        }
        if node.int("ceil_mode", 0) != 0 {
            return Err(self.unsupported(index, "ceil_mode 1 (only floor)"));
        }
        if let Some(d) = node.ints("dilations")
            && d.iter().any(|&x| x != 1)
        {
            return Err(self.unsupported(index, "dilated pooling"));
        }
        if node
            .string("auto_pad")
            .is_some_and(|m| m != "NOTSET" && m != "VALID")
        {
            return Err(self.unsupported(index, "auto_pad SAME_* (give explicit pads)"));
        }
        if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(self.unsupported(index, "the indices output of MaxPool"));
        }
        let (kernel, stride, padding) = (kernel[0] as usize, strides[0] as usize, pads[0] as usize);
        let block = if node.op == "MaxPool" {
            BlockSpec::MaxPool {
                kernel,
                stride,
                padding,
            }
        } else {
            if padding > 0 && node.int("count_include_pad", 0) == 0 {
                return Err(self.unsupported(index, "average pooling with padding that excludes the padding from the count (coinfer counts it, as PyTorch does by default)"));
            }
            BlockSpec::AvgPool {
                kernel,
                stride,
                padding,
            }
        };
        self.push(index, block, BlockWeights::None)?;
        Ok(node.outputs.first().cloned().unwrap_or_default())
    }

    fn reshape(&mut self, index: usize) -> Result<String, OnnxError> {
        let node = self.node(index);
        let shape = self.weight(index, 1)?;
        let elements = self.shape.elements() as f64;
        let target = &shape.values;
        // [N, C·H·W] (or coinfer's own [N, C·H·W, 1, 1]) with N copied (0), inferred (-1) or
        // the export batch (1).
        let trailing_ones = target.len() == 4 && target[2] == 1.0 && target[3] == 1.0;
        let flattens = (target.len() == 2 || trailing_ones)
            && ((matches!(target[0], 0.0 | 1.0) && (target[1] == -1.0 || target[1] == elements))
                || (target[0] == -1.0 && target[1] == elements));
        if !flattens {
            return Err(self.unsupported(index, format!("reshape to {target:?}: only flattening [N, C, H, W] to [N, {elements}] is supported")));
        }
        if !self.shape.flat {
            self.push(index, BlockSpec::Flatten, BlockWeights::None)?;
        }
        Ok(node.outputs.first().cloned().unwrap_or_default())
    }

    fn gemm(&mut self, index: usize) -> Result<String, OnnxError> {
        let node = self.node(index);
        if node.float("alpha", 1.0) != 1.0
            || node.float("beta", 1.0) != 1.0
            || node.int("transA", 0) != 0
        {
            return Err(self.unsupported(index, "only alpha = beta = 1 and transA = 0"));
        }
        let b = self.weight(index, 1)?;
        let [rows, cols] = match b.dims.as_slice() {
            &[r, c] => [r, c],
            other => {
                return Err(self.weight_error(
                    index,
                    1,
                    format!("shape {other:?}: expected a matrix"),
                ));
            }
        };
        let trans_b = node.int("transB", 0) != 0;
        let (in_features, out_features) = if trans_b { (cols, rows) } else { (rows, cols) };
        let values = b.f32s();
        // burn's Linear keeps [in, out].
        let weight = if trans_b {
            let mut t = vec![0.0; values.len()];
            for o in 0..rows {
                for i in 0..cols {
                    t[i * rows + o] = values[o * cols + i];
                }
            }
            t
        } else {
            values
        };
        let bias = match node.inputs.get(2).filter(|n| !n.is_empty()) {
            Some(_) => self.bias(index, 2, out_features)?,
            None => vec![0.0; out_features],
        };
        let out = node.outputs.first().cloned().unwrap_or_default();
        self.linear(index, in_features, out_features, weight, bias, out)
    }

    fn bias(
        &self,
        index: usize,
        position: usize,
        out_features: usize,
    ) -> Result<Vec<f32>, OnnxError> {
        let c = self.weight(index, position)?;
        let values = c.f32s();
        match values.len() {
            n if n == out_features => Ok(values),
            1 => Ok(vec![values[0]; out_features]),
            n => Err(self.weight_error(
                index,
                position,
                format!("{n} values for {out_features} outputs"),
            )),
        }
    }

    fn matmul(&mut self, index: usize) -> Result<String, OnnxError> {
        let node = self.node(index);
        let position = match node
            .inputs
            .iter()
            .position(|i| self.graph.consts.contains_key(i))
        {
            Some(1) => 1,
            _ => {
                return Err(
                    self.unsupported(index, "only `activation × constant matrix` is supported")
                );
            }
        };
        let b = self.weight(index, position)?;
        let [in_features, out_features] = match b.dims.as_slice() {
            &[r, c] => [r, c],
            other => {
                return Err(self.weight_error(
                    index,
                    1,
                    format!("shape {other:?}: expected a matrix"),
                ));
            }
        };
        let product = node.outputs.first().cloned().unwrap_or_default();
        let (bias, out) = match self.single_reader(&product, index)? {
            Some(add) if self.node(add).op == "Add" => {
                let add_node = self.node(add);
                let Some(p) = add_node.inputs.iter().position(|i| i != &product) else {
                    return Err(self.unsupported(add, "adds the product to itself"));
                };
                (
                    self.bias(add, p, out_features)?,
                    add_node.outputs.first().cloned().unwrap_or_default(),
                )
            }
            _ => (vec![0.0; out_features], product),
        };
        self.linear(index, in_features, out_features, b.f32s(), bias, out)
    }

    fn linear(
        &mut self,
        index: usize,
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        out: String,
    ) -> Result<String, OnnxError> {
        if !self.shape.flat {
            return Err(self.unsupported(
                index,
                format!(
                    "a fully connected layer on a {:?} activation; flatten it first",
                    self.shape.dims()
                ),
            ));
        }
        if self.shape.channels != in_features {
            return Err(self.unsupported(
                index,
                format!(
                    "the weight takes {in_features} features but the input has {}",
                    self.shape.channels
                ),
            ));
        }
        let (relu, out) = match self.single_reader(&out, index)? {
            Some(r) if self.node(r).op == "Relu" => (
                true,
                self.node(r).outputs.first().cloned().unwrap_or_default(),
            ),
            _ => (false, out),
        };
        self.push(
            index,
            BlockSpec::Linear { out_features, relu },
            BlockWeights::Linear(weight, bias),
        )?;
        Ok(out)
    }
}

/// The operators the importer reads, for error messages and docs.
pub const SUPPORTED: &str = "Conv (dense or depthwise), BatchNormalization, Relu, Clip(0, 6), Add \
     (residual), MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape (flatten), Gemm, \
     MatMul(+Add), Identity, Dropout, and a leading Sub/Div (normalisation)";

fn tensor<const D: usize>(values: &[f32], dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(burn::tensor::TensorData::new(values.to_vec(), dims), device)
}

fn set_conv_bn(conv: &mut Conv2d, bn: &mut BatchNorm, w: &ConvBn, device: &Device) {
    conv.weight = Param::from_tensor(tensor(&w.weight, w.dims, device));
    conv.bias = None;
    let c = w.dims[0];
    bn.gamma = Param::from_tensor(tensor(&w.gamma, [c], device));
    bn.beta = Param::from_tensor(tensor(&w.beta, [c], device));
    bn.running_mean = RunningState::new(tensor(&w.mean, [c], device));
    bn.running_var = RunningState::new(tensor(&w.var, [c], device));
    bn.epsilon = EPSILON;
}

/// Builds the network for `spec` and copies the imported weights into it.
fn build(spec: NetSpec, weights: Vec<BlockWeights>, device: &Device) -> Result<Network, OnnxError> {
    let (spec, mut module) = Network::new(spec, device)?.into_parts();
    for (block, w) in module.blocks.iter_mut().zip(&weights) {
        match (block, w) {
            (Block::ConvBnRelu(b), BlockWeights::Conv(c)) => {
                set_conv_bn(&mut b.conv, &mut b.bn, c, device)
            }
            (Block::Basic(b), BlockWeights::Basic(c1, c2, short)) => {
                set_conv_bn(&mut b.conv1, &mut b.bn1, c1, device);
                set_conv_bn(&mut b.conv2, &mut b.bn2, c2, device);
                match (&mut b.shortcut, short) {
                    (Some(p), Some(s)) => set_conv_bn(&mut p.conv, &mut p.bn, s, device),
                    (None, None) => {}
                    _ => return Err(OnnxError::Export("internal: shortcut mismatch".into())),
                }
            }
            (Block::DepthwiseSeparable(b), BlockWeights::Depthwise(d, p)) => {
                set_conv_bn(&mut b.depthwise, &mut b.bn1, d, device);
                set_conv_bn(&mut b.pointwise, &mut b.bn2, p, device);
            }
            (Block::InvertedResidual(b), BlockWeights::Inverted(e, d, p)) => {
                set_conv_bn(&mut b.expand, &mut b.bn1, e, device);
                set_conv_bn(&mut b.depthwise, &mut b.bn2, d, device);
                set_conv_bn(&mut b.project, &mut b.bn3, p, device);
            }
            (Block::Linear(b), BlockWeights::Linear(weight, bias)) => {
                let [i, o] = b.linear.weight.dims();
                b.linear.weight = Param::from_tensor(tensor(weight, [i, o], device));
                b.linear.bias = Some(Param::from_tensor(tensor(bias, [o], device)));
            }
            (_, BlockWeights::None) => {}
            _ => {
                return Err(OnnxError::Export(
                    "internal: block and weights disagree".into(),
                ));
            }
        }
    }
    Ok(Network::from_parts(spec, module)?)
}

/// Reads a `--model` argument as the CLI does: a path ending in `.onnx` is imported (with
/// `input_shape`, the data set's `[C, H, W]`, for a model whose input shape is dynamic);
/// anything else is a zoo name, for which this returns `None`.
///
/// # Errors
/// As [`import`].
pub fn import_model_arg(
    model: &str,
    input_shape: Option<[usize; 3]>,
    device: &Device,
) -> Result<Option<Imported>, OnnxError> {
    if !is_onnx_path(model) {
        return Ok(None);
    }
    let path = Path::new(model);
    let bytes = std::fs::read(path).map_err(OnnxError::io(path))?;
    let graph_shape = Graph::decode(&bytes, path)?.input_dims;
    let file_has_shape = matches!(graph_shape.as_slice(), [_, Some(_), Some(_), Some(_)]);
    let options = ImportOptions {
        // A static shape in the file wins; the data set's is checked against the network later.
        input_shape: if file_has_shape { None } else { input_shape },
        ..ImportOptions::default()
    };
    import_bytes(&bytes, path, &options, device).map(Some)
}

/// Whether a `--model` argument names an ONNX file rather than a zoo model.
pub fn is_onnx_path(model: &str) -> bool {
    Path::new(model)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}
