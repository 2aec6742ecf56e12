//! Cross-crate: every kind of plan a user deploys is exported by `coinfer-automl`, loaded back
//! with `SplitPlan::deploy`, served over TCP by `coinfer-runtime` (edge server + device client
//! on loopback), and answers with the logits the deployed halves and codec give in process:
//! a pruned plan with a per-channel quantiser, a plan with a learned spatial (stride-2)
//! autoencoder, and a pruned MobileNetV2 plan. (`deploy_roundtrip.rs` serves a pruned plan
//! with a per-tensor quantiser.)

use std::path::PathBuf;

use burn::prelude::*;
use coinfer_automl::codec::CodecId;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{Budget, TrainTest, embedded};
use coinfer_automl::finetune::FineTuneConfig;
use coinfer_automl::profile::{ComputeProfile, LinkProfile};
use coinfer_automl::runtime::{ClientConfig, DeviceClient, EdgeServer, ServerConfig};
use coinfer_automl::space::Decision;
use coinfer_automl::split::inference::InferenceNetwork;
use coinfer_automl::split::{NetSpec, Network, zoo};
use coinfer_automl::{CoInference, SearchConfig, SplitPlan};

fn small_data() -> TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    TrainTest {
        train: full.train.class_balanced_subset(12, 3).unwrap(),
        test: full.test.class_balanced_subset(3, 3).unwrap(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-kinds-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Builds a session on `spec` (fixed seed), finalises the decision `choose` picks on its
/// search space (one fine-tuning epoch), exports it to a scratch folder and returns the
/// exported plan.json.
fn export(
    name: &str,
    spec: NetSpec,
    codecs: CodecSetup,
    choose: impl FnOnce(&coinfer_automl::space::SearchSpace) -> Decision,
) -> PathBuf {
    let device = Device::flex();
    // burn's generator is process-wide and the tests of this binary run in parallel: the
    // weights differ from run to run, but each test compares the runtime with its own
    // in-process result, which does not depend on them.
    let search = CoInference::builder()
        .model(Network::new(spec, &device).unwrap())
        .data(small_data())
        .device(ComputeProfile::analytic(1e9, 50e-6).unwrap())
        .link(LinkProfile::new(10e6, 0.01, 80).unwrap())
        .edge(ComputeProfile::analytic(1e12, 30e-6).unwrap())
        .config(SearchConfig {
            validation_images: 30,
            codecs,
            finetune: FineTuneConfig {
                epochs: 1,
                ..Default::default()
            },
            ..SearchConfig::default()
        })
        .backend(device)
        .build()
        .unwrap();
    let mut session = search.prepare().unwrap();
    let decision = choose(session.evaluator().space());
    let out = scratch(name);
    session
        .finalize(&decision, 0.0, Some(&out), |_, _, _| {})
        .unwrap();
    out.join("plan.json")
}

/// The candidate cutting after block `split` and the index of codec `id` in its family.
fn at(space: &coinfer_automl::space::SearchSpace, split: usize, id: CodecId) -> (usize, usize) {
    let candidate = space
        .candidates
        .iter()
        .position(|c| c.split == split)
        .unwrap_or_else(|| panic!("no split {split} in the space"));
    let codec = space.candidates[candidate]
        .family
        .entries
        .iter()
        .position(|e| e.id == id)
        .unwrap_or_else(|| {
            panic!(
                "split {split} offers no {id:?}: {:?}",
                space.candidates[candidate].family.entries
            )
        });
    (candidate, codec)
}

/// Deploys `plan`, serves its edge half over TCP and checks that three test images sent by
/// the device client come back with the in-process logits (device half → codec round trip →
/// edge half, in inference form). Returns the deployed plan for further checks.
fn serve_and_compare(plan: &PathBuf) -> SplitPlan {
    let device = Device::flex();
    let deployed = SplitPlan::deploy(plan, &device).unwrap();
    let digest = deployed.plan.digest();
    let data = small_data();
    let (x, _) = data
        .test
        .batch(&[0, 11, 22], &deployed.plan.normalization, &device)
        .unwrap();
    // In the inference form the runtime runs (batch norm folded): computed in burn's module
    // form, a feature within rounding of a quantizer's bin edge can land one step away.
    let device_half = InferenceNetwork::from_network(&deployed.device).unwrap();
    let edge_half = InferenceNetwork::from_network(&deployed.edge).unwrap();
    let feature = device_half.forward(x.clone()).unwrap();
    let expected = edge_half
        .logits(deployed.codec.roundtrip(feature).unwrap())
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
    let mut client = DeviceClient::connect(
        server.local_addr(),
        deployed.device.clone(),
        deployed.codec.clone(),
        digest,
        ClientConfig::default(),
    )
    .unwrap();
    let result = client.infer(x).unwrap();
    assert_eq!(result.batch, 3);
    let got = result.logits_tensor(&device);
    // The same inference form on both sides: equal up to rounding (the server may run another
    // batch layout), relative to the logits' scale.
    let scale = expected.clone().abs().max().into_scalar::<f32>().max(10.0);
    let diff = (got - expected).abs().max().into_scalar::<f32>();
    println!(
        "{{\"plan\":\"{}\",\"split\":{},\"codec\":\"{}\",\"max_abs_diff\":{diff:e}}}",
        deployed.plan.model, deployed.plan.split, deployed.plan.codec
    );
    assert!(
        diff <= 2e-5 * scale,
        "{}: served logits differ from the in-process ones by {diff} (scale {scale})",
        plan.display()
    );
    client.close();
    server.shutdown().unwrap();
    deployed.plan
}

#[test]
fn a_pruned_plan_with_a_per_channel_quantiser_serves_the_in_process_logits() {
    let id = CodecId::quant(4, true);
    let plan = export(
        "per-channel",
        zoo::resnet_mini(10),
        CodecSetup::fixed_only(),
        |space| {
            let (candidate, codec) = at(space, 2, id);
            Decision {
                candidate,
                prune_ratios: vec![0.25, 0.5],
                codec,
            }
        },
    );
    let plan = serve_and_compare(&plan);
    assert_eq!(plan.codec, id);
    assert_eq!(plan.kept_channels, [24, 16]);
    assert!(!plan.pruned_blocks.is_empty(), "{plan:?}");
}

#[test]
fn a_learned_spatial_autoencoder_plan_serves_the_in_process_logits() {
    let codecs = CodecSetup {
        spatial_ratios: vec![8],
        spatial_bits: vec![3],
        ae_budget: Budget::Epochs(1),
        ae_train_images: 40,
        ae_batch_size: 20,
        ..CodecSetup::fixed_only()
    };
    let plan = export("spatial", zoo::resnet_mini(10), codecs, |space| {
        let candidate = space.candidates.iter().position(|c| c.split == 2).unwrap();
        let codec = space.candidates[candidate]
            .family
            .entries
            .iter()
            .position(|e| matches!(e.id, CodecId::Autoencoder { stride: 2, .. }))
            .expect("split 2 offers the trained spatial autoencoder");
        Decision {
            candidate,
            prune_ratios: vec![0.0; space.candidates[candidate].prunable.len()],
            codec,
        }
    });
    let plan = serve_and_compare(&plan);
    assert!(
        matches!(plan.codec, CodecId::Autoencoder { stride: 2, .. }),
        "{:?}",
        plan.codec
    );
    assert!(
        plan.artifacts.as_ref().unwrap().codec.is_some(),
        "codec weights exported"
    );
}

#[test]
fn a_pruned_mobilenet_plan_serves_the_in_process_logits() {
    let spec = zoo::mobilenetv2_mini(10);
    let plan = export("mobilenet", spec, CodecSetup::fixed_only(), |space| {
        // The deepest split whose device half has two or more prunable layers.
        let candidate = space
            .candidates
            .iter()
            .rposition(|c| {
                c.prunable.len() >= 2
                    && c.family
                        .entries
                        .iter()
                        .any(|e| e.id == CodecId::quant(8, false))
            })
            .expect("a split with prunable layers");
        let (candidate, codec) = at(
            space,
            space.candidates[candidate].split,
            CodecId::quant(8, false),
        );
        Decision {
            candidate,
            prune_ratios: vec![0.5; space.candidates[candidate].prunable.len()],
            codec,
        }
    });
    let plan = serve_and_compare(&plan);
    assert_eq!(plan.model, "mobilenetv2-mini");
    assert!(!plan.pruned_blocks.is_empty(), "{plan:?}");
}
