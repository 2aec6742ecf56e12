//! `train_classifier` really trains: a few steps on a tiny real subset lower the cross-entropy
//! on that subset, change the weights but not the architecture, and report every step.

use burn::prelude::*;
use coinfer_data::{Normalization, embedded};
use coinfer_split::train::{TrainConfig, train_classifier};
use coinfer_split::{Network, zoo};

/// burn's random generator is process-wide and the tests of this file run in parallel: each
/// test holds this lock for its whole run, so that a seeded test draws the same numbers every
/// time.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Mean cross-entropy of `net` on the whole of `data`, computed here from the logits.
fn mean_cross_entropy(
    net: &Network,
    data: &coinfer_data::ImageDataset,
    norm: &Normalization,
    device: &Device,
) -> f32 {
    let all: Vec<usize> = (0..data.len()).collect();
    let (x, labels) = data.batch(&all, norm, device).unwrap();
    let log_p = burn::tensor::activation::log_softmax(net.logits(x).unwrap(), 1);
    let [n, classes] = log_p.dims();
    let log_p: Vec<f32> = log_p.into_data().try_into_vec().unwrap();
    let labels: Vec<i64> = labels.into_data().iter::<i64>().collect();
    -labels
        .iter()
        .enumerate()
        .map(|(i, &l)| log_p[i * classes + l as usize])
        .sum::<f32>()
        / n as f32
}

#[test]
fn a_few_steps_on_a_tiny_subset_lower_the_loss_and_change_the_weights() {
    let _rng = serial();
    let device = Device::flex();
    device.seed(3);
    let data = embedded::fashion_mnist_subset()
        .unwrap()
        .train
        .class_balanced_subset(16, 1)
        .unwrap();
    let norm = Normalization::fit(&data);
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let before = mean_cross_entropy(&net.clone().valid(), &data, &norm, &device);
    let config = TrainConfig {
        budget: coinfer_data::Budget::Epochs(3),
        batch_size: 32,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut steps = Vec::new();
    let trained = train_classifier(net.clone(), &data, &norm, &config, &device, |p| {
        steps.push((p.epoch, p.step, p.steps_per_epoch));
    })
    .unwrap();
    // 160 images in batches of 32: 5 steps per epoch, each reported once.
    let expected: Vec<_> = (0..3)
        .flat_map(|e| (1..=5).map(move |s| (e, s, 5)))
        .collect();
    assert_eq!(steps, expected);
    assert_eq!(trained.spec(), net.spec());
    assert_ne!(trained.digest(), net.digest(), "the weights changed");
    let after = mean_cross_entropy(&trained, &data, &norm, &device);
    assert!(
        after < before,
        "cross-entropy on the training subset went from {before} to {after}"
    );
}

#[test]
fn an_image_budget_is_the_epoch_budget_batch_for_batch_and_cuts_the_last_pass() {
    let _rng = serial();
    let device = Device::flex();
    let data = embedded::fashion_mnist_subset()
        .unwrap()
        .train
        .class_balanced_subset(16, 1)
        .unwrap();
    let norm = Normalization::fit(&data);
    let run = |budget| {
        device.seed(5);
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        let config = TrainConfig {
            budget,
            batch_size: 32,
            seed: 2,
            ..TrainConfig::default()
        };
        let mut steps = Vec::new();
        let trained = train_classifier(net, &data, &norm, &config, &device, |p| {
            steps.push((p.epoch, p.step, p.total_step, p.total_steps));
        })
        .unwrap();
        (trained.digest(), steps)
    };
    // 160 images: `images:320` is `epochs:2`, the same batches, the same weights.
    let (by_epochs, epoch_steps) = run(coinfer_data::Budget::Epochs(2));
    let (by_images, image_steps) = run(coinfer_data::Budget::Images(320));
    assert_eq!(epoch_steps, image_steps);
    assert_eq!(by_epochs, by_images);
    // 200 images: one pass (5 batches) and the first 2 batches (40 images) of the next.
    let (_, steps) = run(coinfer_data::Budget::Images(200));
    let expected: Vec<_> = (1..=5)
        .map(|s| (0, s, s, 7))
        .chain((1..=2).map(|s| (1, s, 5 + s, 7)))
        .collect();
    assert_eq!(steps, expected);
}

#[test]
fn a_dataset_with_more_classes_than_the_network_is_refused() {
    let _rng = serial();
    let device = Device::flex();
    let data = embedded::fashion_mnist_subset()
        .unwrap()
        .train
        .class_balanced_subset(2, 1)
        .unwrap();
    let net = Network::new(zoo::resnet_mini(5), &device).unwrap();
    let err = train_classifier(
        net,
        &data,
        &Normalization::fit(&data),
        &TrainConfig::default(),
        &device,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("10 classes"), "{err}");
}
