//! `--model path.onnx` on the command line: an unsupported model is one line naming the node
//! and the operator, a non-zero exit and no panic; a supported one is profiled.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../coinfer-onnx/tests/fixtures")
        .join(name)
}

#[test]
fn an_unsupported_onnx_model_is_one_line_naming_node_and_operator() {
    let model = fixture("unsupported_sigmoid.onnx");
    let output = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["profile", "--model", model.to_str().unwrap(), "--out"])
        .arg(std::env::temp_dir().join("coinfer-onnx-cli-unused.json"))
        .output()
        .expect("run coinfer");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(
        lines[0].starts_with("error: node ") && lines[0].contains("(Sigmoid)"),
        "{stderr}"
    );
}

/// The PyTorch residual fixture through the whole main job on tiny settings (its weights as
/// they are: no training), then `coinfer export` of the chosen plan: the files a user deploys.
#[test]
fn an_onnx_model_is_searched_and_its_plan_exported() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coinfer-onnx-cli-search");
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let model = fixture("resnet_projection.onnx");
    let output = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["search", "--model", model.to_str().unwrap()])
        .args(["--results", results.to_str().unwrap(), "--run", "onnx"])
        .args([
            "--validation-images",
            "100",
            "--episodes",
            "4",
            "--warmup",
            "2",
        ])
        .args([
            "--ae-ratios",
            "--spatial-ratios",
            "--refine-evaluations",
            "10",
        ])
        .args(["--exhaustive-levels", "0", "--finetune-epochs", "0"])
        .output()
        .expect("run coinfer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("backbone: imported"), "{stdout}");
    // A model trained elsewhere carries no training record: the report says so.
    assert!(stdout.contains("no training record"), "{stdout}");
    let plan = results.join("onnx").join("plan.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("onnx/report.json")).unwrap()).unwrap();
    // The fixture's own accuracy on the embedded test images is far above chance.
    assert!(
        report["backbone_test_accuracy"].as_f64().unwrap() > 0.5,
        "{report}"
    );

    let out = dir.join("export");
    let export = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["export", "--plan", plan.to_str().unwrap(), "--onnx"])
        .arg(&out)
        .output()
        .expect("run coinfer export");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with(".onnx")),
        "no ONNX file exported: {files:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
