//! An edge-only plan that sends the image as WebP, deployed for real: the device encodes the
//! Fashion-MNIST image as a WebP file, the edge decodes it and runs the whole network. Over
//! TCP the answers equal the in-process plan's on the same decoded image; `coinfer serve` and
//! `coinfer infer` run it as separate processes.

mod runtime_plan;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use burn::prelude::Tensor;
use coinfer_automl::codec::ImageFormat;
use coinfer_automl::prelude::*;
use coinfer_automl::runtime::{ClientConfig, DeviceClient, EdgeServer, ServerConfig};
use coinfer_automl::{PlanArtifacts, SplitPlan};
use runtime_plan::scratch;

/// A deployable edge-only plan (random weights, split 0) sending the image with `codec`.
fn write_edge_only_plan(dir: &Path, codec: CodecId) -> PathBuf {
    let device = Device::flex();
    let whole = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let backbone_digest = whole.digest();
    let (device_half, edge_half) = whole.split(0).unwrap();
    device_half.save(dir.join("device.bin")).unwrap();
    edge_half.save(dir.join("edge.bin")).unwrap();
    let plan = SplitPlan {
        model: "resnet-mini".into(),
        backbone_digest,
        split: 0,
        pruned_blocks: vec![],
        prune_ratios: vec![],
        kept_channels: vec![],
        codec,
        payload_bits: 0,
        search_accuracy: 0.0,
        test_accuracy: None,
        predicted: Breakdown::default(),
        reward: 0.0,
        profiles: ["device".into(), "link".into(), "edge".into()],
        normalization: Normalization::fashion_mnist(),
        artifacts: Some(PlanArtifacts {
            device: "device.bin".into(),
            edge: "edge.bin".into(),
            codec: None,
            device_digest: device_half.digest(),
            edge_digest: edge_half.digest(),
        }),
        recovery: Default::default(),
        fine_tuning: Vec::new(),
    };
    let path = dir.join("plan.json");
    plan.save(&path).unwrap();
    path
}

fn logits(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn a_webp_edge_only_plan_answers_over_tcp_as_in_process() {
    let dir = scratch("webp-plan");
    let webp = CodecId::image(ImageFormat::Webp, 75);
    let plan_path = write_edge_only_plan(&dir, webp);
    let device = Device::flex();
    let deployed = SplitPlan::deploy(&plan_path, &device).unwrap();
    assert_eq!(deployed.codec.id(), webp);
    assert_eq!(
        deployed.device.spec().blocks.len(),
        0,
        "edge-only: no device block"
    );
    let digest = deployed.plan.digest();
    let server = EdgeServer::bind(
        "127.0.0.1:0",
        deployed.edge.clone(),
        deployed.codec.clone(),
        &digest,
        ServerConfig::default(),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let mut client = DeviceClient::connect(
        server.local_addr(),
        deployed.device.clone(),
        deployed.codec.clone(),
        &digest,
        ClientConfig::default(),
    )
    .unwrap();
    let data = embedded::fashion_mnist_subset().unwrap().test;
    let codec = deployed.codec.clone();
    for i in [0, 7, 123] {
        let (x, _) = data
            .batch(&[i], &deployed.plan.normalization, &device)
            .unwrap();
        let result = client.infer(x.clone()).unwrap();
        // The same image through the codec in process: the edge half on the decoded image.
        let payload = codec.encode(x.clone()).unwrap();
        assert_eq!(
            result.payload_bytes,
            payload.len(),
            "the payload is the WebP file"
        );
        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        let expected = logits(deployed.edge.logits(decoded.clone()).unwrap());
        assert_eq!(result.logits.len(), 10);
        for (a, b) in result.logits.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-5, "image {i}: {a} vs {b}");
        }
        // A lossy image: the decoded input is close to, not equal to, the original.
        let (original, back) = (
            x.into_data().try_into_vec::<f32>().unwrap(),
            decoded.into_data().try_into_vec::<f32>().unwrap(),
        );
        let step = 1.0 / (255.0 * deployed.plan.normalization.std[0]);
        let mean_error: f32 = original
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / original.len() as f32;
        assert!(mean_error > 0.0 && mean_error < 10.0 * step, "{mean_error}");
    }
    client.close();
    let stats = server.shutdown().unwrap();
    assert_eq!((stats.results, stats.errors), (3, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the server when the test ends, whatever happens.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn coinfer_serve_and_infer_run_a_webp_edge_only_plan() {
    let dir = scratch("webp-cli");
    let plan = write_edge_only_plan(&dir, CodecId::image(ImageFormat::Webp, 50));
    let plan = plan.to_str().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["serve", "--plan", plan, "--addr", "127.0.0.1:0"])
        .env_remove("COINFER_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("coinfer serve starts");
    let stdout = server.stdout.take().unwrap();
    let server = Reaped(server);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let json = dir.join("infer.json");
    let out = Command::new(env!("CARGO_BIN_EXE_coinfer"))
        .args(["infer", "--plan", plan, "--server", &addr, "--n", "12"])
        .args(["--json", json.to_str().unwrap()])
        .env_remove("COINFER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("coinfer infer runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["codec"], "webp-q50");
    assert_eq!(summary["split"], 0);
    assert_eq!(summary["requests"], 12);
    // The last request's payload: a WebP file of a 28×28 image plus 44 bytes of framing,
    // far below the raw 8-bit image's 784 bytes.
    let payload = summary["payload_bytes"].as_u64().unwrap();
    assert!((60..784).contains(&payload), "{payload}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
