//! Shared by the tests: the fixtures, real images, and tract (an independent ONNX runtime).

#![allow(dead_code)]

use std::path::PathBuf;

use burn::prelude::*;
use coinfer_data::{ImageDataset, Normalization};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

pub fn test_images() -> ImageDataset {
    coinfer_data::embedded::fashion_mnist_subset()
        .expect("embedded subset")
        .test
}

/// The first `n` test images, normalised, and their labels.
pub fn batch(
    data: &ImageDataset,
    range: std::ops::Range<usize>,
    norm: &Normalization,
    device: &Device,
) -> (Tensor<4>, Vec<i64>) {
    let indices: Vec<usize> = range.collect();
    let (x, y) = data.batch(&indices, norm, device).expect("batch");
    (
        x,
        y.into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("labels"),
    )
}

pub fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

pub fn host2(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs an ONNX file with tract on `[n, c, h, w]` values; returns the output's values and shape.
pub fn tract_run(
    path: &std::path::Path,
    values: &[f32],
    dims: [usize; 4],
) -> (Vec<f32>, Vec<usize>) {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap_or_else(|e| panic!("tract cannot read {}: {e:?}", path.display()))
        .with_input_fact(0, f32::fact(dims).into())
        .expect("input fact")
        .into_optimized()
        .unwrap_or_else(|e| panic!("tract cannot optimise {}: {e:?}", path.display()))
        .into_runnable()
        .expect("runnable");
    let input = Tensor::from_shape(&dims, values).expect("input tensor");
    let out = model
        .run(tvec!(input.into_tvalue()))
        .unwrap_or_else(|e| panic!("tract cannot run {}: {e:?}", path.display()));
    let view = out[0].to_plain_array_view::<f32>().expect("f32 output");
    (view.iter().copied().collect(), view.shape().to_vec())
}
