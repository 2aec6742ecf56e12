//! Spatial autoencoders on the zoo backbones' real feature shapes, and the three-step
//! fine-tuning of a split plan: what each step trains, what it must leave alone.

use std::sync::Mutex;

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_automl::codec::{AutoencoderCodec, AutoencoderConfig, CodecId, FeatureCodec};
use coinfer_automl::data::{Budget, Normalization, TrainTest, embedded};
use coinfer_automl::finetune::{FineTuneStep, ThreeStepConfig, fine_tune_three_steps};
use coinfer_automl::split::train::{TrainConfig, train_classifier};
use coinfer_automl::split::{Network, zoo};

/// burn's random generator is process-wide and the tests of this file run in parallel: each
/// test holds this lock for its whole run, so that a seeded test draws the same numbers every
/// time.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// burn's seed is process-wide: the tests of this file take turns so that each one's seeded
/// initialisation and batch order are the same from run to run.
static SEEDED: Mutex<()> = Mutex::new(());

#[test]
fn spatial_and_channel_autoencoders_round_trip_every_zoo_feature_shape() {
    let _rng = serial();
    let _turn = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(3);
    for spec in [zoo::resnet_mini(10), zoo::resnet18_cifar(10)] {
        let shapes = spec.shapes().unwrap();
        for split in spec.split_points().filter(|&s| !shapes[s].flat) {
            let [c, h, w] = shapes[split].dims();
            let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &device);
            for config in [
                AutoencoderConfig::new(c, 4)
                    .with_kernel(3)
                    .with_stride(2)
                    .with_batch_norm(true),
                AutoencoderConfig::new(c, 8).with_stride(2),
                AutoencoderConfig::new(c, 4),
            ] {
                let codec = AutoencoderCodec::init(config.clone(), &device).unwrap();
                let decoded = codec.roundtrip(x.clone()).unwrap();
                assert_eq!(
                    decoded.dims(),
                    [1, c, h, w],
                    "{} split {split} with {config:?}",
                    spec.name
                );
            }
        }
    }
}

fn small_data() -> TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    TrainTest {
        train: full.train.class_balanced_subset(20, 1).unwrap(),
        test: full.test.class_balanced_subset(10, 1).unwrap(),
    }
}

fn bytes(network: &Network) -> Vec<u8> {
    network.to_bytes().unwrap()
}

fn weights(codec: &AutoencoderCodec) -> Vec<f32> {
    let device = codec.device().clone();
    let x = Tensor::<4>::ones([1, codec.config().channels, 3, 3], &device);
    codec
        .model()
        .encode_latent(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn steps_one_and_two_train_their_part_only_and_step_three_moves_the_edge() {
    let _rng = serial();
    let _turn = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(21);
    let data = small_data();
    let norm = Normalization::fit(&data.train);
    // A briefly trained backbone: a random one predicts a single class whatever happens.
    let backbone = train_classifier(
        Network::new(zoo::resnet_mini(10), &device).unwrap(),
        &data.train,
        &norm,
        &TrainConfig {
            budget: Budget::Epochs(3),
            batch_size: 50,
            seed: 4,
            ..TrainConfig::default()
        },
        &device,
        |_| {},
    )
    .unwrap();
    let split = 1;
    let [c, _, _] = backbone.spec().shapes().unwrap()[split].dims();
    let codec = AutoencoderCodec::init(
        AutoencoderConfig::new(c, 8)
            .with_bits(4)
            .with_kernel(3)
            .with_stride(2)
            .with_batch_norm(true),
        &device,
    )
    .unwrap();
    let (device_half, edge_half) = backbone.clone().split(split).unwrap();
    let run = |epochs: [usize; 3]| {
        fine_tune_three_steps(
            &backbone,
            &backbone,
            split,
            codec.id(),
            Some(&codec),
            &data.train,
            &data.test,
            &norm,
            &ThreeStepConfig {
                device_budget: Budget::Epochs(epochs[0]),
                codec_budget: Budget::Epochs(epochs[1]),
                joint_budget: Budget::Epochs(epochs[2]),
                batch_size: 50,
                ..ThreeStepConfig::default()
            },
            &device,
            |_| {},
        )
        .unwrap()
    };

    // Step 1 alone: the device half changes; codec and edge half are bit-identical.
    let one = run([1, 0, 0]);
    assert_ne!(bytes(&one.device_half), bytes(&device_half));
    assert_eq!(bytes(&one.edge_half), bytes(&edge_half));
    assert_eq!(weights(one.autoencoder.as_ref().unwrap()), weights(&codec));
    assert_eq!(one.steps.len(), 3);
    assert_eq!(one.steps[0].step, FineTuneStep::DeviceHalf);
    assert_eq!(one.steps[0].budget, Budget::Epochs(1));
    assert!(one.steps[1..].iter().all(|s| s.budget.is_zero()));

    // Step 2 alone: the autoencoder changes; both halves are bit-identical.
    let two = run([0, 1, 0]);
    assert_eq!(bytes(&two.device_half), bytes(&device_half));
    assert_eq!(bytes(&two.edge_half), bytes(&edge_half));
    assert_ne!(weights(two.autoencoder.as_ref().unwrap()), weights(&codec));

    // Step 3: the edge half trains too.
    let three = run([0, 0, 1]);
    assert_ne!(bytes(&three.edge_half), bytes(&edge_half));
    assert_ne!(bytes(&three.device_half), bytes(&device_half));

    // Accuracy is measured around every step and training moves it.
    let moved = [&one.steps[0], &two.steps[1], &three.steps[2]]
        .iter()
        .any(|s| s.accuracy_after != s.accuracy_before);
    assert!(moved, "{:?}", [&one.steps, &two.steps, &three.steps]);
    for report in one.steps.iter().chain(&two.steps).chain(&three.steps) {
        assert!((0.0..=1.0).contains(&report.accuracy_before));
        if report.budget.is_zero() {
            assert_eq!(report.accuracy_after, report.accuracy_before);
            assert_eq!(report.last_loss, None);
        }
    }
}

#[test]
fn fixed_codecs_skip_the_codec_step_and_bad_settings_are_errors() {
    let _rng = serial();
    let _turn = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(22);
    let data = small_data();
    let norm = Normalization::fit(&data.train);
    let backbone = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let config = ThreeStepConfig {
        device_budget: Budget::Epochs(1),
        codec_budget: Budget::Epochs(3),
        joint_budget: Budget::Epochs(0),
        batch_size: 100,
        ..ThreeStepConfig::default()
    };
    let run = |split: usize, codec: CodecId| {
        fine_tune_three_steps(
            &backbone,
            &backbone,
            split,
            codec,
            None,
            &data.train,
            &data.test,
            &norm,
            &config,
            &device,
            |_| {},
        )
    };
    let outcome = run(2, CodecId::quant(4, true)).unwrap();
    assert!(outcome.autoencoder.is_none());
    assert!(outcome.steps[1].budget.is_zero());
    let fail = |split: usize, codec: CodecId| run(split, codec).is_err();
    assert!(fail(0, CodecId::Float32), "split 0 has no device half");
    assert!(fail(1, CodecId::autoencoder(4, 4)), "autoencoder missing");
    assert!(fail(99, CodecId::Float32), "split past the network");
}
