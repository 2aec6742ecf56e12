//! Hand-built graphs that the block form cannot represent: each is a typed error naming the
//! node and its operator, never a panic and never a silently different network.

use burn::prelude::*;
use coinfer_onnx::proto::*;
use coinfer_onnx::{ImportOptions, OnnxError, import_bytes};
use prost::Message;

fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: FLOAT,
        name: name.into(),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: name.into(),
        op_type: op.into(),
        ..Default::default()
    }
}

fn io(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: d.is_none().then(|| "n".into()),
                        })
                        .collect(),
                }),
            }),
        }),
        ..Default::default()
    }
}

/// input [N, 1, 4, 4] → conv(2 filters, 3×3, pad 1) → relu → `body` → output.
fn model(body: Vec<NodeProto>, input_dims: &[Option<i64>], opset: i64) -> Vec<u8> {
    let mut conv = node("conv0", "Conv", &["x", "w"], "c");
    conv.attribute = vec![AttributeProto {
        name: "pads".into(),
        ints: vec![1, 1, 1, 1],
        r#type: attribute_type::INTS,
        ..Default::default()
    }];
    let mut nodes = vec![conv, node("relu0", "Relu", &["c"], "r")];
    nodes.extend(body);
    ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: vec![
                tensor("w", &[2, 1, 3, 3], &[0.1; 18]),
                tensor("fc", &[32, 3], &[0.01; 96]),
            ],
            input: vec![io("x", input_dims)],
            output: vec![io("y", &[None, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn head() -> Vec<NodeProto> {
    vec![
        node("flat", "Flatten", &["r"], "f"),
        node("fc", "MatMul", &["f", "fc"], "y"),
    ]
}

fn import(bytes: &[u8]) -> Result<coinfer_onnx::Imported, OnnxError> {
    import_bytes(
        bytes,
        std::path::Path::new("test.onnx"),
        &ImportOptions::default(),
        &Device::flex(),
    )
}

#[test]
fn the_valid_base_graph_imports() {
    let imported = import(&model(head(), &[None, Some(1), Some(4), Some(4)], 13)).unwrap();
    let kinds: Vec<_> = imported
        .network
        .spec()
        .blocks
        .iter()
        .map(|b| b.kind())
        .collect();
    assert_eq!(kinds, ["conv_bn_relu", "flatten", "linear"]);
    assert_eq!(imported.num_classes, 3);
}

#[test]
fn a_branch_that_is_not_a_residual_is_refused() {
    let body = vec![
        node("left", "Relu", &["r"], "a"),
        node("right", "Sigmoid", &["r"], "b"),
        node("join", "Add", &["a", "b"], "y"),
    ];
    let err = import(&model(body, &[None, Some(1), Some(4), Some(4)], 13)).unwrap_err();
    assert!(matches!(err, OnnxError::Branch { .. }), "{err}");
    assert!(err.to_string().contains("not a residual"), "{err}");
}

#[test]
fn a_dynamic_input_shape_needs_the_shape_given() {
    let bytes = model(head(), &[None, Some(1), None, None], 13);
    let err = import(&bytes).unwrap_err();
    assert!(matches!(err, OnnxError::DynamicShape { .. }), "{err}");
    let options = ImportOptions {
        input_shape: Some([1, 4, 4]),
        ..ImportOptions::default()
    };
    import_bytes(
        &bytes,
        std::path::Path::new("test.onnx"),
        &options,
        &Device::flex(),
    )
    .unwrap();
}

#[test]
fn opsets_outside_11_to_20_are_refused() {
    for opset in [9, 21] {
        let err = import(&model(head(), &[None, Some(1), Some(4), Some(4)], opset)).unwrap_err();
        assert!(matches!(err, OnnxError::Model { .. }), "{err}");
        assert!(err.to_string().contains(&format!("opset {opset}")), "{err}");
    }
}

#[test]
fn clip_other_than_relu6_is_refused_with_its_node() {
    let mut conv = node("conv1", "Conv", &["r", "w2"], "c1");
    conv.attribute = vec![AttributeProto {
        name: "pads".into(),
        ints: vec![1, 1, 1, 1],
        r#type: attribute_type::INTS,
        ..Default::default()
    }];
    let mut clip = node("clip1", "Clip", &["c1", "lo", "hi"], "y");
    clip.input = vec!["c1".into(), "lo".into(), "hi".into()];
    let mut bytes_model = ModelProto::decode(
        model(vec![conv, clip], &[None, Some(1), Some(4), Some(4)], 13).as_slice(),
    )
    .unwrap();
    let graph = bytes_model.graph.as_mut().unwrap();
    graph
        .initializer
        .push(tensor("w2", &[2, 2, 3, 3], &[0.1; 36]));
    graph.initializer.push(tensor("lo", &[], &[-1.0]));
    graph.initializer.push(tensor("hi", &[], &[1.0]));
    let err = import(&bytes_model.encode_to_vec()).unwrap_err();
    match &err {
        OnnxError::Unsupported { node, op, .. } => {
            assert_eq!((node.as_str(), op.as_str()), ("clip1", "Clip"))
        }
        other => panic!("{other:?}"),
    }
}
