//! A deployable plan for the CLI runtime tests: random weights, split 2, 8-bit codec.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use coinfer_automl::prelude::*;
use coinfer_automl::{PlanArtifacts, SplitPlan};

/// A scratch folder for this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coinfer-bad-flags-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A deployable plan (random weights, split 2, 8-bit codec) in `dir`; returns plan.json.
pub fn write_plan(dir: &Path) -> PathBuf {
    let device = Device::flex();
    let whole = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let backbone_digest = whole.digest();
    let (device_half, edge_half) = whole.split(2).unwrap();
    device_half.save(dir.join("device.bin")).unwrap();
    edge_half.save(dir.join("edge.bin")).unwrap();
    let plan = SplitPlan {
        model: "resnet-mini".into(),
        backbone_digest,
        split: 2,
        pruned_blocks: vec![],
        prune_ratios: vec![],
        kept_channels: vec![],
        codec: CodecId::Quant {
            bits: 8,
            per_channel: true,
            entropy: false,
        },
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
