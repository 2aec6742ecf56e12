//! Cross-crate: a plan chosen and exported by `coinfer-automl` is deployed with the
//! `coinfer-runtime` TCP runtime, and the logits that come back equal the in-process pipeline.

use std::path::Path;

use burn::prelude::*;
use coinfer_automl::codec::CodecId;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{Normalization, TrainTest, embedded};
use coinfer_automl::profile::{ComputeProfile, LinkProfile};
use coinfer_automl::runtime::{ClientConfig, DeviceClient, EdgeServer, RuntimeError, ServerConfig};
use coinfer_automl::space::Decision;
use coinfer_automl::split::inference::InferenceNetwork;
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::{CoInference, SearchConfig, SplitPlan};

fn small_data() -> TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    TrainTest {
        train: full.train.class_balanced_subset(20, 2).unwrap(),
        test: full.test.class_balanced_subset(5, 2).unwrap(),
    }
}

#[test]
fn an_exported_plan_serves_over_tcp_with_the_in_process_result() {
    let device = Device::flex();
    let search = CoInference::builder()
        .model(Network::new(zoo::resnet_mini(10), &device).unwrap())
        .data(small_data())
        .device(ComputeProfile::analytic(1e9, 50e-6).unwrap())
        .link(LinkProfile::new(10e6, 0.01, 80).unwrap())
        .edge(ComputeProfile::analytic(1e12, 30e-6).unwrap())
        .config(SearchConfig {
            validation_images: 40,
            codecs: CodecSetup::fixed_only(),
            ..SearchConfig::default()
        })
        .backend(device.clone())
        .build()
        .unwrap();
    let mut session = search.prepare().unwrap();
    // Split after block 2, both device layers pruned, per-tensor 8-bit quantizer.
    let space = session.evaluator().space().clone();
    let candidate = space.candidates.iter().position(|c| c.split == 2).unwrap();
    let codec = space.candidates[candidate]
        .family
        .entries
        .iter()
        .position(|e| e.id == CodecId::quant(8, false))
        .unwrap();
    let decision = Decision {
        candidate,
        prune_ratios: vec![0.25, 0.5],
        codec,
    };
    let out = std::env::temp_dir().join(format!("coinfer-deploy-{}", std::process::id()));
    let plan = session
        .finalize(&decision, 0.0, Some(&out), |_, _, _| {})
        .unwrap();
    assert_eq!(plan.kept_channels, [24, 16]);

    let deployed = SplitPlan::deploy(out.join("plan.json"), &device).unwrap();
    let digest = deployed.plan.digest();
    let data = small_data();
    let norm: Normalization = deployed.plan.normalization.clone();
    let (x, _) = data.test.batch(&[0, 7, 13], &norm, &device).unwrap();
    // The runtime runs both halves in inference form (batch norm folded into the
    // convolutions), which reorders the float arithmetic; computed in burn's module form, a
    // feature value within rounding of an 8-bit quantizer's bin edge can land one step away
    // and move the logits by ~1e-4 (seen once in CI). So the in-process result is computed in
    // the same inference form, and the comparison checks the runtime, not the folding.
    let device_half = InferenceNetwork::from_network(&deployed.device).unwrap();
    let edge_half = InferenceNetwork::from_network(&deployed.edge).unwrap();
    let expected = edge_half
        .logits(
            deployed
                .codec
                .roundtrip(device_half.forward(x.clone()).unwrap())
                .unwrap(),
        )
        .unwrap();

    let server = EdgeServer::bind(
        "127.0.0.1:0",
        deployed.edge.clone(),
        deployed.codec.clone(),
        digest.clone(),
        ServerConfig::default(),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let addr = server.local_addr();
    let mut client = DeviceClient::connect(
        addr,
        deployed.device.clone(),
        deployed.codec.clone(),
        digest,
        ClientConfig::default(),
    )
    .unwrap();
    let result = client.infer(x).unwrap();
    let got = result.logits_tensor(&device);
    // Equal to the in-process result up to rounding (the server may run another batch
    // layout), relative to the logits' scale.
    let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
    let diff = (got - expected).abs().max().into_scalar::<f32>();
    assert!(
        diff <= 2e-5 * scale.max(10.0),
        "max |diff| = {diff} (scale {scale})"
    );
    client.close();

    // A device holding another plan is refused at the handshake.
    let refused = DeviceClient::connect(
        addr,
        deployed.device,
        deployed.codec,
        "0000000000000000",
        ClientConfig::default(),
    );
    assert!(matches!(
        refused,
        Err(RuntimeError::HandshakeRefused { .. })
    ));
    server.shutdown().unwrap();
    std::fs::remove_dir_all(Path::new(&out)).ok();
}
