//! A deployed plan's halves → `device.onnx` + `edge.onnx` + `codec.json`.
//!
//! The halves are exported in their inference form ([`InferenceNetwork`]: batch norm folded,
//! a projection shortcut's bias merged into the block's last convolution), which is what the
//! runtime runs. Every activation stays `[N, C, H, W]` as in coinfer (a flat vector is
//! `[N, n, 1, 1]`), so the device half's output and the edge half's input have the shape of
//! coinfer's split feature; the edge half ends in `[N, classes]` logits.
//!
//! With a learned codec the device half ends with the autoencoder's encoder (convolution,
//! folded batch norm, `tanh`): its output is the latent before quantization. The edge half
//! starts from the dequantized latent (nearest upsampling, crop, decoder convolution, ReLU).
//! With a fixed codec the device half ends at the feature and the edge half starts at the
//! dequantized feature. `codec.json` ([`CodecManifest`]) says how to quantize and pack between
//! the two.

use std::path::{Path, PathBuf};

use burn::nn::BatchNorm;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use coinfer_codec::{AutoencoderCodec, CodecId, LATENT_RANGE};
use coinfer_data::Normalization;
use coinfer_split::inference::InferenceNetwork;
use coinfer_split::inference::{FoldedConv, InferenceBlock};
use coinfer_split::{BlockSpec, FeatureShape, Network};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::OnnxError;
use crate::proto::{
    self, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor,
    ValueInfoProto,
};

/// The opset exported models declare.
pub const EXPORT_OPSET: i64 = 13;
/// File name of the device half.
pub const DEVICE_FILE: &str = "device.onnx";
/// File name of the edge half.
pub const EDGE_FILE: &str = "edge.onnx";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "codec.json";

/// How values are quantized between the halves (absent for the lossless float32 codec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// Bit width `b`; symbols are `0..=2^b − 1`.
    pub bits: u8,
    /// `fixed` (the learned codec's latent: `[min, max] = [-1, 1]`), `per_tensor` or
    /// `per_channel` (min and max of the device output, per channel over the whole batch).
    pub ranges: String,
    /// The fixed range's lower bound, when `ranges` is `fixed`.
    pub min: Option<f32>,
    /// The fixed range's upper bound, when `ranges` is `fixed`.
    pub max: Option<f32>,
    /// The formulas, as coinfer-codec computes them in `f32`.
    pub step: String,
    /// Value → symbol.
    pub symbol: String,
    /// Symbol → value (the edge half's input).
    pub value: String,
    /// How the symbols travel: `fixed-length` bit packing or `rans` when that is smaller.
    pub packing: String,
}

/// What `codec.json` says: which files, which tensors, and the step between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecManifest {
    /// The plan's codec id (as in `plan.json`).
    pub codec: CodecId,
    /// Its display name.
    pub codec_name: String,
    /// `device.onnx`, unless the plan is edge-only with a fixed codec.
    pub device: Option<String>,
    /// `edge.onnx`, unless the plan is device-only.
    pub edge: Option<String>,
    /// The device model's input `[C, H, W]` (normalised pixels).
    pub input: [usize; 3],
    /// The device half's output tensor (`latent` or `feature`) and its `[C, H, W]`.
    pub device_output: Option<(String, [usize; 3])>,
    /// The edge half's input tensor and its `[C, H, W]`.
    pub edge_input: Option<(String, [usize; 3])>,
    /// Quantization between the halves (`None`: raw `f32`).
    pub quantization: Option<Quantization>,
    /// The input normalisation the device applies before the device half.
    pub normalization: Option<Normalization>,
    /// Blocks on the device (the plan's split).
    pub split: usize,
}

/// The codec a plan deploys, as the exporter needs it.
#[derive(Debug, Clone, Copy)]
pub enum ExportCodec<'a> {
    /// A fixed codec (float32 or uniform quantization).
    Fixed(CodecId),
    /// A learned autoencoder.
    Learned(&'a AutoencoderCodec),
}

impl ExportCodec<'_> {
    fn id(&self) -> CodecId {
        match self {
            ExportCodec::Fixed(id) => *id,
            ExportCodec::Learned(codec) => coinfer_codec::FeatureCodec::id(*codec),
        }
    }
}

/// Writes the halves of a deployed plan into `out_dir` (created if missing) and returns what
/// `codec.json` says.
///
/// `device_half` and `edge_half` are the plan's halves (either may have no blocks: an
/// edge-only or a device-only plan, which export one model file).
///
/// # Errors
/// [`OnnxError::Export`] for halves that do not chain, [`OnnxError::Io`] naming the file.
pub fn export(
    device_half: &Network,
    edge_half: &Network,
    codec: ExportCodec<'_>,
    normalization: Option<&Normalization>,
    out_dir: impl AsRef<Path>,
) -> Result<CodecManifest, OnnxError> {
    let out_dir = out_dir.as_ref();
    let device_spec = device_half.spec();
    let cut = *device_spec.shapes()?.last().unwrap_or(&device_spec.input);
    if !edge_half.spec().blocks.is_empty() && cut != edge_half.spec().input {
        return Err(OnnxError::Export(format!(
            "the edge half expects {:?} but the device half produces {cut:?}",
            edge_half.spec().input
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(OnnxError::io(out_dir))?;
    let device_only = edge_half.spec().blocks.is_empty();
    let learned = match codec {
        ExportCodec::Learned(ae) => Some(ae),
        ExportCodec::Fixed(_) => None,
    };
    let id = codec.id();
    let mut manifest = CodecManifest {
        codec: id,
        codec_name: id.to_string(),
        device: None,
        edge: None,
        input: device_spec.input.dims(),
        device_output: None,
        edge_input: None,
        quantization: None,
        normalization: normalization.cloned(),
        split: device_spec.blocks.len(),
    };
    if device_only {
        let mut g = Builder::new("input", device_spec.input);
        let x = g.network(device_half, "input")?;
        let logits = g.logits(&x);
        g.finish_output(&logits, &[None, Some(cut.channels)]);
        write_model(g, &out_dir.join(DEVICE_FILE), "device", normalization)?;
        manifest.device = Some(DEVICE_FILE.into());
        return Ok(manifest);
    }
    // The tensor between the halves.
    let (between_name, between_shape) = match learned {
        Some(ae) => {
            let cfg = ae.config();
            let [_, c, h, w] = cfg.latent_shape([1, cut.channels, cut.height, cut.width]);
            ("latent", [c, h, w])
        }
        None => ("feature", cut.dims()),
    };
    // Device half (+ encoder), unless it would be empty.
    if !device_spec.blocks.is_empty() || learned.is_some() {
        let mut g = Builder::new("input", device_spec.input);
        let mut x = g.network(device_half, "input")?;
        if let Some(ae) = learned {
            x = g.encoder(ae, &x)?;
        }
        g.rename_output(&x, between_name);
        g.finish_output(
            between_name,
            &[
                None,
                Some(between_shape[0]),
                Some(between_shape[1]),
                Some(between_shape[2]),
            ],
        );
        write_model(g, &out_dir.join(DEVICE_FILE), "device", normalization)?;
        manifest.device = Some(DEVICE_FILE.into());
        manifest.device_output = Some((between_name.into(), between_shape));
    }
    let edge_input_shape = FeatureShape {
        channels: between_shape[0],
        height: between_shape[1],
        width: between_shape[2],
        flat: learned.is_none() && cut.flat,
    };
    let mut g = Builder::new(between_name, edge_input_shape);
    let mut x = between_name.to_string();
    if let Some(ae) = learned {
        x = g.decoder(ae, &x, [cut.height, cut.width])?;
    }
    let x = g.network(edge_half, &x)?;
    let logits = g.logits(&x);
    let classes = edge_half.spec().num_classes()?;
    g.finish_output(&logits, &[None, Some(classes)]);
    write_model(g, &out_dir.join(EDGE_FILE), "edge", None)?;
    manifest.edge = Some(EDGE_FILE.into());
    manifest.edge_input = Some((between_name.into(), between_shape));
    manifest.quantization = quantization(id);
    let path = out_dir.join(MANIFEST_FILE);
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| OnnxError::Export(e.to_string()))?;
    std::fs::write(&path, text).map_err(OnnxError::io(&path))?;
    Ok(manifest)
}

fn quantization(id: CodecId) -> Option<Quantization> {
    let formulas = |bits: u8, ranges: &str, fixed: bool, entropy: bool| Quantization {
        bits,
        ranges: ranges.into(),
        min: fixed.then_some(LATENT_RANGE.min),
        max: fixed.then_some(LATENT_RANGE.max),
        step: "step = (max - min) / (2^bits - 1)  (0 when that is below f32::MIN_POSITIVE)".into(),
        symbol:
            "symbol = clamp(floor((x - min) * (1 / step) + 0.5), 0, 2^bits - 1)  (0 when step is 0)"
                .into(),
        value: "x' = min + symbol * step".into(),
        packing: if entropy {
            "rans (when smaller than fixed-length)".into()
        } else {
            "fixed-length".into()
        },
    };
    match id {
        CodecId::Float32 => None,
        CodecId::Quant {
            bits,
            per_channel,
            entropy,
        } => Some(formulas(
            bits,
            if per_channel {
                "per_channel"
            } else {
                "per_tensor"
            },
            false,
            entropy,
        )),
        CodecId::Autoencoder { bits, entropy, .. } => Some(formulas(bits, "fixed", true, entropy)),
        // An image file (PNG, JPEG, WebP) travels as it is: the edge decodes it to the
        // normalised image `edge.onnx` takes (the codec id in the manifest says which format).
        CodecId::Image { .. } => None,
    }
}

fn write_model(
    g: Builder,
    path: &PathBuf,
    what: &str,
    normalization: Option<&Normalization>,
) -> Result<(), OnnxError> {
    let mut metadata = Vec::new();
    if let Some(norm) = normalization {
        metadata.push(StringStringEntryProto {
            key: crate::import::NORMALIZATION_KEY.into(),
            value: serde_json::to_string(norm).map_err(|e| OnnxError::Export(e.to_string()))?,
        });
    }
    let model = ModelProto {
        ir_version: 7,
        producer_name: "coinfer".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: g.nodes,
            name: format!("coinfer-{what}"),
            initializer: g.initializers,
            input: vec![g.input],
            output: g.output.into_iter().collect(),
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: EXPORT_OPSET,
        }],
        metadata_props: metadata,
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).map_err(OnnxError::io(path))
}

fn values<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>, OnnxError> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| OnnxError::Export(format!("reading weights: {e:?}")))
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: proto::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dimension {
                                dim_value: Some(*v as i64),
                                dim_param: None,
                            },
                            None => Dimension {
                                dim_value: None,
                                dim_param: Some("batch".into()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: proto::attribute_type::INTS,
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: proto::attribute_type::INT,
        ..Default::default()
    }
}

/// Accumulates nodes and initializers of one graph.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    input: ValueInfoProto,
    output: Option<ValueInfoProto>,
    counter: usize,
}

impl Builder {
    fn new(input: &str, shape: FeatureShape) -> Builder {
        Builder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            input: value_info(
                input,
                &[
                    None,
                    Some(shape.channels),
                    Some(shape.height),
                    Some(shape.width),
                ],
            ),
            output: None,
            counter: 0,
        }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    fn constant(&mut self, stem: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: proto::FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn constant_i64(&mut self, stem: &str, data: &[i64]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: proto::INT64,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("{out}_node"),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        out
    }

    /// Conv with explicit weight `[o, i/g, k, k]`, bias, stride, symmetric padding, groups.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: &str,
        weight: &[f32],
        dims: [usize; 4],
        bias: Option<&[f32]>,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> String {
        let w = self.constant("w", &dims, weight);
        let b = bias.map(|b| self.constant("b", &[dims[0]], b));
        let mut inputs = vec![x, w.as_str()];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let (k, s, p) = (dims[2] as i64, stride as i64, padding as i64);
        self.node(
            "Conv",
            &inputs,
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &[p, p, p, p]),
                ints("dilations", &[1, 1]),
                int("group", groups as i64),
            ],
        )
    }

    fn folded(&mut self, x: &str, conv: &FoldedConv, keep_bias: bool) -> Result<String, OnnxError> {
        let o = &conv.options;
        let (p, q) = o.padding[0];
        if o.padding.iter().any(|&(a, b)| a != p || b != q)
            || p != q
            || o.stride[0] != o.stride[1]
            || o.dilation != [1, 1]
        {
            return Err(OnnxError::Export(
                "only square, symmetric, undilated convolutions are exported".into(),
            ));
        }
        let dims = conv.weight.dims();
        let weight = values(&conv.weight)?;
        let bias = values(&conv.bias)?;
        Ok(self.conv(
            x,
            &weight,
            dims,
            keep_bias.then_some(bias.as_slice()),
            o.stride[0],
            p,
            o.groups,
        ))
    }

    fn relu6(&mut self, x: &str) -> String {
        let lo = self.constant("zero", &[], &[0.0]);
        let hi = self.constant("six", &[], &[6.0]);
        self.node("Clip", &[x, &lo, &hi], vec![])
    }

    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.constant_i64("shape", shape);
        self.node("Reshape", &[x, &s], vec![])
    }

    /// The blocks of `half` in inference form, from tensor `x`.
    fn network(&mut self, half: &Network, x: &str) -> Result<String, OnnxError> {
        if half.spec().blocks.is_empty() {
            return Ok(x.to_string());
        }
        let inference = InferenceNetwork::from_network(half)?;
        let mut x = x.to_string();
        for (spec, block) in half.spec().blocks.iter().zip(&inference.blocks) {
            x = match (spec, block) {
                (_, InferenceBlock::ConvRelu(conv)) => {
                    let y = self.folded(&x, conv, true)?;
                    self.node("Relu", &[&y], vec![])
                }
                (_, InferenceBlock::Basic(b)) => {
                    let skip = match &b.shortcut {
                        Some(p) => self.folded(&x, p, false)?,
                        None => x.clone(),
                    };
                    let y = self.folded(&x, &b.conv1, true)?;
                    let y = self.node("Relu", &[&y], vec![]);
                    let y = self.folded(&y, &b.conv2, true)?;
                    let y = self.node("Add", &[&y, &skip], vec![]);
                    self.node("Relu", &[&y], vec![])
                }
                (_, InferenceBlock::DepthwiseSeparable(b)) => {
                    let y = self.folded(&x, &b.depthwise, true)?;
                    let y = self.relu6(&y);
                    let y = self.folded(&y, &b.pointwise, true)?;
                    self.node("Relu", &[&y], vec![])
                }
                (_, InferenceBlock::InvertedResidual(b)) => {
                    let y = self.folded(&x, &b.expand, true)?;
                    let y = self.relu6(&y);
                    let y = self.folded(&y, &b.depthwise, true)?;
                    let y = self.relu6(&y);
                    let y = self.folded(&y, &b.project, true)?;
                    if b.residual {
                        self.node("Add", &[&y, &x], vec![])
                    } else {
                        y
                    }
                }
                (
                    BlockSpec::MaxPool {
                        kernel,
                        stride,
                        padding,
                    },
                    _,
                )
                | (
                    BlockSpec::AvgPool {
                        kernel,
                        stride,
                        padding,
                    },
                    _,
                ) => {
                    let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                    let mut attrs = vec![
                        ints("kernel_shape", &[k, k]),
                        ints("strides", &[s, s]),
                        ints("pads", &[p, p, p, p]),
                    ];
                    let op = if matches!(spec, BlockSpec::MaxPool { .. }) {
                        "MaxPool"
                    } else {
                        attrs.push(int("count_include_pad", 1));
                        "AveragePool"
                    };
                    self.node(op, &[&x], attrs)
                }
                (BlockSpec::GlobalAvgPool, _) => self.node("GlobalAveragePool", &[&x], vec![]),
                (BlockSpec::Flatten, _) => self.reshape(&x, &[0, -1, 1, 1]),
                (_, InferenceBlock::Linear(l)) => {
                    let [i, o] = l.weight.dims();
                    let w = values(&l.weight)?;
                    let w = self.constant("w", &[i, o], &w);
                    let flat = self.reshape(&x, &[0, -1]);
                    let mut inputs = vec![flat.as_str(), w.as_str()];
                    let b = match &l.bias {
                        Some(b) => Some(self.constant("b", &[o], &values(b)?)),
                        None => None,
                    };
                    if let Some(b) = &b {
                        inputs.push(b);
                    }
                    let y = self.node("Gemm", &inputs, vec![]);
                    let y = if l.relu {
                        self.node("Relu", &[&y], vec![])
                    } else {
                        y
                    };
                    self.reshape(&y, &[0, -1, 1, 1])
                }
                (other, _) => {
                    return Err(OnnxError::Export(format!(
                        "block kind {} has no ONNX form",
                        other.kind()
                    )));
                }
            };
        }
        Ok(x)
    }

    /// `[N, classes, 1, 1]` → `[N, classes]`.
    fn logits(&mut self, x: &str) -> String {
        self.reshape(x, &[0, -1])
    }

    /// Device side of the autoencoder: `tanh(fold(BN, conv))`.
    fn encoder(&mut self, ae: &AutoencoderCodec, x: &str) -> Result<String, OnnxError> {
        let model = ae.model();
        let (w, dims, b) = fold_host(model.encoder(), model.encoder_norm())?;
        let y = self.conv(x, &w, dims, Some(&b), model.stride(), dims[2] / 2, 1);
        Ok(self.node("Tanh", &[&y], vec![]))
    }

    /// Edge side of the autoencoder: nearest ×s upsampling, crop to `size`, folded conv,
    /// optional ReLU.
    fn decoder(
        &mut self,
        ae: &AutoencoderCodec,
        latent: &str,
        size: [usize; 2],
    ) -> Result<String, OnnxError> {
        let model = ae.model();
        let s = model.stride().max(1);
        let mut x = latent.to_string();
        if s > 1 {
            let [c, h, w] = ae
                .config()
                .latent_shape([1, ae.config().channels, size[0], size[1]])[1..]
                .try_into()
                .unwrap_or([0; 3]);
            let (c, h, w, s64) = (c as i64, h as i64, w as i64, s as i64);
            let six = self.reshape(&x, &[0, c, h, 1, w, 1]);
            let shape = self.constant_i64("expand", &[1, 1, 1, s64, 1, s64]);
            let wide = self.node("Expand", &[&six, &shape], vec![]);
            let up = self.reshape(&wide, &[0, c, h * s64, w * s64]);
            let starts = self.constant_i64("starts", &[0, 0]);
            let ends = self.constant_i64("ends", &[size[0] as i64, size[1] as i64]);
            let axes = self.constant_i64("axes", &[2, 3]);
            x = self.node("Slice", &[&up, &starts, &ends, &axes], vec![]);
        }
        let (w, dims, b) = fold_host(model.decoder(), model.decoder_norm())?;
        let y = self.conv(&x, &w, dims, Some(&b), 1, dims[2] / 2, 1);
        Ok(if model.output_relu() {
            self.node("Relu", &[&y], vec![])
        } else {
            y
        })
    }

    fn rename_output(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        if let Some(node) = self
            .nodes
            .iter_mut()
            .find(|n| n.output.iter().any(|o| o == from))
        {
            for o in node.output.iter_mut().filter(|o| *o == from) {
                *o = to.to_string();
            }
        } else {
            // The output is the input itself: pass it through.
            self.nodes.push(NodeProto {
                input: vec![from.into()],
                output: vec![to.into()],
                name: "identity_node".into(),
                op_type: "Identity".into(),
                ..Default::default()
            });
        }
    }

    fn finish_output(&mut self, name: &str, dims: &[Option<usize>]) {
        self.output = Some(value_info(name, dims));
    }
}

/// A convolution's weights on the host: `(weight, [o, i, k, k], bias)`.
type HostConv = (Vec<f32>, [usize; 4], Vec<f32>);

/// Folds an optional batch norm into a convolution on host values (the autoencoder's layers).
fn fold_host(conv: &Conv2d, bn: Option<&BatchNorm>) -> Result<HostConv, OnnxError> {
    if !matches!(
        conv.padding,
        PaddingConfig2d::Explicit(..) | PaddingConfig2d::Same | PaddingConfig2d::Valid
    ) || conv.dilation != [1, 1]
        || conv.groups != 1
    {
        return Err(OnnxError::Export(
            "the autoencoder's convolution is not a dense, undilated one".into(),
        ));
    }
    let dims = conv.weight.dims();
    let mut weight = values(&conv.weight.val())?;
    let mut bias = match &conv.bias {
        Some(b) => values(&b.val())?,
        None => vec![0.0; dims[0]],
    };
    if let Some(bn) = bn {
        let gamma = values(&bn.gamma.val())?;
        let beta = values(&bn.beta.val())?;
        let mean = values(&bn.running_mean.value())?;
        let var = values(&bn.running_var.value())?;
        let per_filter = weight.len() / dims[0];
        for o in 0..dims[0] {
            let scale = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
            for v in &mut weight[o * per_filter..(o + 1) * per_filter] {
                *v *= scale;
            }
            bias[o] = beta[o] + (bias[o] - mean[o]) * scale;
        }
    }
    Ok((weight, dims, bias))
}
