//! A decoded ONNX graph in the form the importer walks: nodes with their attributes, constant
//! tensors (initializers and `Constant` nodes) as `f64` values, and who consumes each tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::OnnxError;
use crate::proto::{self, AttributeProto, ModelProto, TensorProto};

/// Opsets of the default domain this importer reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=20;

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name, or `#index` when the file gives none.
    pub name: String,
    /// Operator type (`Conv`, `Relu`, ...).
    pub op: String,
    /// Input tensor names (empty strings for omitted optional inputs).
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
    attrs: Vec<AttributeProto>,
}

/// A constant tensor's shape and values (integers and floats alike, as `f64`).
#[derive(Debug, Clone)]
pub struct Const {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f64>,
}

impl Const {
    /// The values as `f32`.
    pub fn f32s(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
}

/// The graph: nodes in file order, constants, the one data input and the one output.
#[derive(Debug)]
pub struct Graph {
    /// The model file (for errors).
    pub path: PathBuf,
    /// Nodes other than `Constant`.
    pub nodes: Vec<Node>,
    /// Initializers and `Constant` outputs by tensor name.
    pub consts: HashMap<String, Const>,
    /// For each tensor name, the nodes (indices into `nodes`) that read it.
    pub consumers: HashMap<String, Vec<usize>>,
    /// The graph input that is not an initializer.
    pub input: String,
    /// Its dimensions (`None` where symbolic or missing).
    pub input_dims: Vec<Option<usize>>,
    /// The graph output.
    pub output: String,
    /// Its dimensions (`None` where symbolic or missing).
    pub output_dims: Vec<Option<usize>>,
    /// Opset of the default domain.
    pub opset: i64,
    /// `metadata_props` of the model.
    pub metadata: HashMap<String, String>,
}

impl Graph {
    /// Decodes `bytes` (the contents of `path`) and indexes the graph.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Graph, OnnxError> {
        let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Graph::from_model(model, path)
    }

    fn from_model(model: ModelProto, path: &Path) -> Result<Graph, OnnxError> {
        let model_error = |reason: String| OnnxError::Model {
            path: path.to_path_buf(),
            reason,
        };
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| {
                model_error("the model imports no opset of the default domain".into())
            })?;
        if !OPSETS.contains(&opset) {
            return Err(model_error(format!(
                "opset {opset} is not supported (supported: {}..={})",
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        let graph = model
            .graph
            .ok_or_else(|| model_error("the model has no graph".into()))?;
        let mut consts = HashMap::new();
        for tensor in &graph.initializer {
            let value = tensor_values(tensor).map_err(|reason| OnnxError::Weight {
                node: "initializer".into(),
                op: "initializer".into(),
                tensor: tensor.name.clone(),
                reason,
            })?;
            consts.insert(tensor.name.clone(), value);
        }
        let mut nodes = Vec::new();
        for (index, node) in graph.node.into_iter().enumerate() {
            let name = if node.name.is_empty() {
                format!("#{index}")
            } else {
                node.name.clone()
            };
            if !(node.domain.is_empty() || node.domain == "ai.onnx") {
                return Err(OnnxError::UnsupportedOp {
                    node: name,
                    op: format!("{}::{}", node.domain, node.op_type),
                    reason: "only operators of the default ONNX domain are imported".into(),
                });
            }
            if node.op_type == "Constant" {
                let tensor = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| OnnxError::Unsupported {
                        node: name.clone(),
                        op: "Constant".into(),
                        reason: "only a `value` tensor attribute is supported".into(),
                    })?;
                let value = tensor_values(tensor).map_err(|reason| OnnxError::Weight {
                    node: name.clone(),
                    op: "Constant".into(),
                    tensor: node.output.first().cloned().unwrap_or_default(),
                    reason,
                })?;
                for output in &node.output {
                    consts.insert(output.clone(), value.clone());
                }
                continue;
            }
            nodes.push(Node {
                name,
                op: node.op_type,
                inputs: node.input,
                outputs: node.output,
                attrs: node.attribute,
            });
        }
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, node) in nodes.iter().enumerate() {
            for input in &node.inputs {
                if !input.is_empty() && !consts.contains_key(input) {
                    let list = consumers.entry(input.clone()).or_default();
                    if !list.contains(&index) {
                        list.push(index);
                    }
                }
            }
        }
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !consts.contains_key(&i.name))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(model_error(format!(
                "the graph must have exactly one data input; it has {} ({})",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let [output] = graph.output.as_slice() else {
            return Err(model_error(format!(
                "the graph must have exactly one output (the logits); it has {}",
                graph.output.len()
            )));
        };
        Ok(Graph {
            path: path.to_path_buf(),
            nodes,
            consts,
            consumers,
            input: input.name.clone(),
            input_dims: value_dims(input),
            output: output.name.clone(),
            output_dims: value_dims(output),
            opset,
            metadata: model
                .metadata_props
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect(),
        })
    }

    /// The nodes that read `tensor`.
    pub fn consumers_of(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map_or(&[], Vec::as_slice)
    }
}

fn value_dims(info: &proto::ValueInfoProto) -> Vec<Option<usize>> {
    info.r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes a tensor's values; external data and types other than float/double/int32/int64
/// are refused.
pub fn tensor_values(tensor: &TensorProto) -> Result<Const, String> {
    if tensor.data_location == 1 || !tensor.external_data.is_empty() {
        return Err(
            "external data is not supported (save the model with its weights inside)".into(),
        );
    }
    let dims = tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the element count overflows")?;
    let raw = &tensor.raw_data;
    let values: Vec<f64> = match tensor.data_type {
        proto::FLOAT if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        proto::FLOAT => tensor.float_data.iter().map(|&v| f64::from(v)).collect(),
        proto::DOUBLE if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect(),
        proto::DOUBLE => tensor.double_data.clone(),
        proto::INT64 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        proto::INT64 => tensor.int64_data.iter().map(|&v| v as f64).collect(),
        proto::INT32 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        proto::INT32 => tensor.int32_data.iter().map(|&v| f64::from(v)).collect(),
        other => {
            return Err(format!(
                "data type {other} is not supported (float, double, int32, int64 only)"
            ));
        }
    };
    if values.len() != count {
        return Err(format!(
            "holds {} values but its shape {dims:?} needs {count}",
            values.len()
        ));
    }
    Ok(Const { dims, values })
}

impl Node {
    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Option<String> {
        self.attr(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attrs.iter().find(|a| a.name == name)
    }
}
