//! Pruning recovery: reconstruction lowers the consumer's error on held-out images, ratio 0
//! without recovery is the identity, every recovery runs on a chain with a linear consumer, and
//! every rejected calibration is a typed error.

use std::collections::BTreeMap;
use std::ops::Range;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{relu, relu6};
use coinfer_data::{Normalization, embedded};
use coinfer_sparsity::{
    Calibration, PruneRatios, PruneRecovery, SparsityError, prune, prune_with_recovery,
};
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, FeatureShape, NetSpec, Network, zoo};

/// burn's random generator is process-wide and the tests of this file run in parallel: each
/// test holds this lock for its whole run, so that a seeded test draws the same numbers every
/// time.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn device() -> Device {
    Device::flex()
}

/// Normalised Fashion-MNIST training images `range` of the embedded subset.
fn train_images(range: Range<usize>) -> Tensor<4> {
    let data = embedded::fashion_mnist_subset().unwrap();
    let norm = Normalization::fit(&data.train);
    let indices: Vec<usize> = range.collect();
    data.train.batch(&indices, &norm, &device()).unwrap().0
}

/// A seeded `resnet-mini` whose batch norms hold real statistics of training images (a random
/// network's initial running statistics, 0 and 1, are not), so that it behaves like a trained
/// network's layers do.
fn resnet_mini() -> Network {
    with_real_statistics(zoo::resnet_mini(10))
}

/// `spec`, seeded, with batch-norm statistics of training images (see [`resnet_mini`]).
fn with_real_statistics(spec: NetSpec) -> Network {
    let device = device();
    device.seed(11);
    let net = Network::new(spec, &device).unwrap().valid();
    let calibration = Calibration::new(&net, train_images(0..128)).unwrap();
    prune_with_recovery(
        &net,
        &PruneRatios::Uniform(0.0),
        PruneRecovery::BatchNorm,
        &calibration,
    )
    .unwrap()
}

fn mse(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).powi_scalar(2).mean().into_scalar::<f32>()
}

fn basic(block: &Block) -> &coinfer_split::model::BasicBlock {
    match block {
        Block::Basic(m) => m,
        _ => panic!("not a basic block"),
    }
}

/// Output of `conv1` of block 1 (the consumer of the stem) on `x`.
fn stem_consumer(net: &Network, x: Tensor<4>) -> Tensor<4> {
    let blocks = &net.module().blocks;
    basic(&blocks[1]).conv1.forward(blocks[0].forward(x))
}

/// Output of `conv2` of block 2 (the consumer of its inner convolution) on `x`.
fn inner_consumer(net: &Network, x: Tensor<4>) -> Tensor<4> {
    let blocks = &net.module().blocks;
    let x = blocks[1].forward(blocks[0].forward(x));
    let m = basic(&blocks[2]);
    m.conv2.forward(relu(m.bn1.forward(m.conv1.forward(x))))
}

type Probe = fn(&Network, Tensor<4>) -> Tensor<4>;

/// Prunes each case's block at ratio 0.5 and checks that reconstruction brings the probed
/// consumer's output on held-out images well below both plain pruning's and batch-norm
/// re-estimation's error.
fn assert_reconstruction_helps(dense: &Network, cases: [(usize, Probe); 2]) {
    let calibration = Calibration::new(dense, train_images(128..256)).unwrap();
    let held_out = train_images(256..320);
    for (block, probe) in cases {
        let ratios = PruneRatios::ByBlock(BTreeMap::from([(block, 0.5)]));
        let target = probe(dense, held_out.clone());
        let error = |recovery| {
            let pruned = prune_with_recovery(dense, &ratios, recovery, &calibration).unwrap();
            mse(probe(&pruned, held_out.clone()), target.clone())
        };
        let (none, bn, reconstruct) = (
            error(PruneRecovery::None),
            error(PruneRecovery::BatchNorm),
            error(PruneRecovery::Reconstruct),
        );
        eprintln!("block {block}: consumer MSE none {none}, bn {bn}, reconstruct {reconstruct}");
        assert!(none > 0.0, "block {block}: pruning changed nothing");
        assert!(
            reconstruct < 0.75 * none && reconstruct < 0.75 * bn,
            "block {block}: reconstruction MSE {reconstruct} vs none {none}, bn {bn}"
        );
    }
}

#[test]
fn reconstruction_lowers_the_consumer_error_on_held_out_images() {
    let _rng = serial();
    // Measured: about 0.07× (stem consumer) and 0.6× (inner conv2) of plain pruning's error.
    assert_reconstruction_helps(&resnet_mini(), [(0, stem_consumer), (2, inner_consumer)]);
}

fn inverted(block: &Block) -> &coinfer_split::model::InvertedResidual {
    match block {
        Block::InvertedResidual(m) => m,
        _ => panic!("not an inverted residual"),
    }
}

/// Output of the expansion of block 2 of `mobilenetv2-mini` (the consumer of the
/// depthwise-separable block's pointwise filters) on `x`.
fn pointwise_consumer(net: &Network, x: Tensor<4>) -> Tensor<4> {
    let blocks = &net.module().blocks;
    inverted(&blocks[2])
        .expand
        .forward(blocks[1].forward(blocks[0].forward(x)))
}

/// Output of the projection of block 2 of `mobilenetv2-mini` (the consumer of its own
/// expansion, through the depthwise convolution) on `x`.
fn expansion_consumer(net: &Network, x: Tensor<4>) -> Tensor<4> {
    let blocks = &net.module().blocks;
    let x = blocks[1].forward(blocks[0].forward(x));
    let m = inverted(&blocks[2]);
    let mid = relu6(m.bn1.forward(m.expand.forward(x)));
    m.project
        .forward(relu6(m.bn2.forward(m.depthwise.forward(mid))))
}

#[test]
fn reconstruction_lowers_the_consumer_error_of_pruned_mobilenet_layers() {
    let _rng = serial();
    // Measured: about 0.4× (expansion after pruned pointwise filters) and 0.5× (projection
    // after a pruned expansion) of plain pruning's error.
    assert_reconstruction_helps(
        &with_real_statistics(zoo::mobilenetv2_mini(10)),
        [(1, pointwise_consumer), (2, expansion_consumer)],
    );
}

#[test]
fn ratio_zero_without_recovery_is_the_same_network() {
    let _rng = serial();
    let device = device();
    device.seed(5);
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let calibration = Calibration::new(&net, train_images(0..8)).unwrap();
    let same = prune_with_recovery(
        &net,
        &PruneRatios::Uniform(0.0),
        PruneRecovery::None,
        &calibration,
    )
    .unwrap();
    assert_eq!(same.digest(), net.digest());
    let x = train_images(8..12);
    let (a, b) = (
        net.valid().logits(x.clone()).unwrap(),
        same.valid().logits(x).unwrap(),
    );
    assert_eq!(
        a.into_data().try_into_vec_as::<f32>().unwrap(),
        b.into_data().try_into_vec_as::<f32>().unwrap()
    );
}

/// conv → max pool → conv → flatten → linear: a conv consumer and a linear consumer.
fn chain() -> Network {
    let conv = |out_channels| BlockSpec::ConvBnRelu {
        out_channels,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let spec = NetSpec {
        name: "chain".into(),
        input: FeatureShape::image(1, 8, 8),
        blocks: vec![
            conv(8),
            BlockSpec::MaxPool {
                kernel: 2,
                stride: 2,
                padding: 0,
            },
            conv(12),
            BlockSpec::Flatten,
            BlockSpec::Linear {
                out_features: 10,
                relu: false,
            },
        ],
    };
    let device = device();
    device.seed(2);
    Network::new(spec, &device).unwrap().valid()
}

#[test]
fn every_recovery_runs_on_conv_and_linear_consumers() {
    let _rng = serial();
    let net = chain();
    let device = device();
    let images = Tensor::<4>::random([64, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let calibration = Calibration::new(&net, images.clone()).unwrap();
    let dense = net.logits(images.clone()).unwrap();
    let mut errors = Vec::new();
    for recovery in PruneRecovery::ALL {
        let pruned =
            prune_with_recovery(&net, &PruneRatios::Uniform(0.5), recovery, &calibration).unwrap();
        assert_eq!(
            pruned.num_params(),
            prune(&net, &PruneRatios::Uniform(0.5))
                .unwrap()
                .num_params()
        );
        let logits = pruned.logits(images.clone()).unwrap();
        let error = (logits - dense.clone())
            .powi_scalar(2)
            .mean()
            .into_scalar::<f32>();
        assert!(error.is_finite(), "{recovery}: {error}");
        errors.push(error);
    }
    // On the calibration images themselves, refitting the consumers must beat re-estimating
    // batch norms alone.
    eprintln!("chain logits MSE (none, bn, reconstruct): {errors:?}");
    assert!(errors[2] < errors[1], "{errors:?}");
}

#[test]
fn recovery_names_serialise_and_reconstruct_is_the_default() {
    let _rng = serial();
    assert_eq!(PruneRecovery::default(), PruneRecovery::Reconstruct);
    for (recovery, name) in PruneRecovery::ALL
        .into_iter()
        .zip(["none", "bn", "reconstruct"])
    {
        assert_eq!(
            serde_json::to_string(&recovery).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(recovery.to_string(), name);
        let back: PruneRecovery = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(back, recovery);
    }
    assert!(serde_json::from_str::<PruneRecovery>("\"batch_norm\"").is_err());
}

#[test]
fn an_empty_calibration_is_rejected() {
    let _rng = serial();
    let net = chain();
    let err = Calibration::new(&net, Tensor::<4>::zeros([0, 1, 8, 8], &device())).unwrap_err();
    assert!(
        matches!(err, SparsityError::EmptyCalibration { dims: [0, 1, 8, 8] }),
        "{err}"
    );
}

#[test]
fn calibration_images_of_another_shape_are_rejected() {
    let _rng = serial();
    let net = chain();
    for dims in [[4, 1, 9, 8], [4, 3, 8, 8]] {
        let err = Calibration::new(&net, Tensor::<4>::zeros(dims, &device())).unwrap_err();
        match err {
            SparsityError::CalibrationShape { expected, got } => {
                assert_eq!(expected, [1, 8, 8]);
                assert_eq!(got, [dims[1], dims[2], dims[3]]);
            }
            other => panic!("{dims:?}: unexpected {other}"),
        }
    }
}

#[test]
fn a_non_finite_calibration_image_is_rejected() {
    let _rng = serial();
    let net = chain();
    let mut values = vec![0.5f32; 4 * 64];
    values[2 * 64 + 10] = f32::NAN;
    let images = Tensor::<4>::from_data(TensorData::new(values, [4, 1, 8, 8]), &device());
    let err = Calibration::new(&net, images).unwrap_err();
    assert!(
        matches!(err, SparsityError::NonFiniteCalibration { image: 2 }),
        "{err}"
    );
}

#[test]
fn a_calibration_of_another_network_is_rejected() {
    let _rng = serial();
    let net = chain();
    let calibration = Calibration::new(&net, Tensor::<4>::zeros([2, 1, 8, 8], &device())).unwrap();
    let other = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
    for recovery in PruneRecovery::ALL {
        let err = prune_with_recovery(&other, &PruneRatios::Uniform(0.0), recovery, &calibration)
            .unwrap_err();
        assert!(
            matches!(err, SparsityError::CalibrationNetwork { .. }),
            "{recovery}: {err}"
        );
    }
}

#[test]
fn bad_ratios_are_rejected_with_recovery_too() {
    let _rng = serial();
    let net = chain();
    let calibration = Calibration::new(&net, Tensor::<4>::zeros([2, 1, 8, 8], &device())).unwrap();
    let err = prune_with_recovery(
        &net,
        &PruneRatios::Uniform(1.0),
        PruneRecovery::Reconstruct,
        &calibration,
    )
    .unwrap_err();
    assert!(
        matches!(err, SparsityError::InvalidRatio { ratio: 1.0, .. }),
        "{err}"
    );
}
