//! PyTorch-exported models (tools/onnx/export_fixtures.py) import into coinfer and reproduce
//! ONNX Runtime's logits (1e-4) and test accuracy (exactly) on the embedded test images.

mod common;

use burn::prelude::*;
use coinfer_data::Normalization;
use coinfer_onnx::{ImportOptions, OnnxError, import};
use coinfer_split::inference::InferenceNetwork;
use common::*;

fn kinds(spec: &coinfer_split::NetSpec) -> Vec<&'static str> {
    spec.blocks.iter().map(|b| b.kind()).collect()
}

#[test]
fn fixtures_reproduce_onnx_runtime_logits_and_accuracy() {
    let device = Device::flex();
    let expected = expected();
    let data = test_images();
    let models = expected["models"].as_object().expect("models");
    assert_eq!(models.len(), 3, "three fixtures expected");
    let block_kinds = |name: &str| -> Vec<&'static str> {
        match name {
            "plain_cnn.onnx" => vec![
                "conv_bn_relu",
                "max_pool",
                "conv_bn_relu",
                "max_pool",
                "conv_bn_relu",
                "avg_pool",
                "flatten",
                "linear",
                "linear",
            ],
            "resnet_projection.onnx" => vec![
                "conv_bn_relu",
                "basic_block",
                "basic_block",
                "global_avg_pool",
                "flatten",
                "linear",
            ],
            "mobilenetv2_block.onnx" => vec![
                "conv_bn_relu",
                "depthwise_separable",
                "inverted_residual",
                "inverted_residual",
                "global_avg_pool",
                "flatten",
                "linear",
            ],
            other => panic!("unknown fixture {other}"),
        }
    };
    for (name, want) in models {
        let imported = import(fixture(name), &ImportOptions::default(), &device)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kinds(imported.network.spec()), block_kinds(name), "{name}");
        assert_eq!(imported.num_classes, 10, "{name}");
        assert_eq!(imported.opset, want["opset"].as_i64().unwrap(), "{name}");
        let norm = imported
            .normalization
            .clone()
            .expect("normalisation from metadata");
        assert_eq!(norm, Normalization::fashion_mnist(), "{name}");
        // Both forms coinfer runs: the training form and the folded inference form.
        let net = imported.network.valid();
        let fast = InferenceNetwork::from_network(&net).unwrap();
        let first = want["first_logits"].as_array().unwrap();
        let reference: Vec<f32> = first
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let (x, _) = batch(&data, 0..first.len(), &norm, &device);
        let slow = host2(net.logits(x.clone()).unwrap());
        let folded = host2(fast.logits(x).unwrap());
        let (d_slow, d_fast) = (
            max_abs_diff(&slow, &reference),
            max_abs_diff(&folded, &reference),
        );
        assert!(
            d_slow <= 1e-4,
            "{name}: training form differs from ONNX Runtime by {d_slow}"
        );
        assert!(
            d_fast <= 1e-4,
            "{name}: inference form differs from ONNX Runtime by {d_fast}"
        );
        // Accuracy on the whole embedded test set, exactly.
        let mut correct = 0;
        for start in (0..data.len()).step_by(250) {
            let (x, labels) = batch(&data, start..(start + 250).min(data.len()), &norm, &device);
            let logits = host2(fast.logits(x).unwrap());
            for (row, label) in logits.chunks_exact(10).zip(labels) {
                let arg = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i as i64)
                    .unwrap();
                correct += usize::from(arg == label);
            }
        }
        let want_correct = want["correct"].as_u64().unwrap() as usize;
        println!(
            "{{\"model\":\"{name}\",\"correct\":{correct},\"onnxruntime_correct\":{want_correct},\"images\":{},\"max_abs_logit_diff\":{d_fast:e}}}",
            data.len()
        );
        assert_eq!(
            correct, want_correct,
            "{name}: test accuracy differs from ONNX Runtime's"
        );
    }
}

#[test]
fn an_unsupported_operator_is_named_with_its_node() {
    let err = import(
        fixture("unsupported_sigmoid.onnx"),
        &ImportOptions::default(),
        &Device::flex(),
    )
    .expect_err("Sigmoid is not supported");
    match &err {
        OnnxError::UnsupportedOp { op, node, .. } => {
            assert_eq!(op, "Sigmoid");
            assert!(!node.is_empty());
        }
        other => panic!("expected UnsupportedOp, got {other:?}"),
    }
    let line = err.to_string();
    assert!(
        line.contains("Sigmoid") && line.starts_with("node "),
        "{line}"
    );
}

#[test]
fn garbage_and_missing_files_are_typed_errors() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("coinfer-onnx-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("garbage.onnx");
    std::fs::write(&path, [0xff, 0xff, 0xff, 0x01, 0x02]).unwrap();
    assert!(matches!(
        import(&path, &ImportOptions::default(), &device),
        Err(OnnxError::Decode { .. })
    ));
    assert!(matches!(
        import(dir.join("missing.onnx"), &ImportOptions::default(), &device),
        Err(OnnxError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}
