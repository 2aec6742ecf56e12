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
