//! The defining property of the crate: cutting a network anywhere and running
//! `edge(device(x))` gives the whole network's output.

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_split::{BlockSpec, FeatureShape, NetSpec, Network, SplitError, zoo};

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// A small spec that exercises every block kind, including a hidden linear layer.
fn every_block_kind() -> NetSpec {
    NetSpec {
        name: "every-kind".into(),
        input: FeatureShape::image(3, 16, 16),
        blocks: vec![
            BlockSpec::ConvBnRelu {
                out_channels: 8,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            BlockSpec::BasicBlock {
                mid_channels: 8,
                out_channels: 8,
                stride: 1,
            },
            BlockSpec::MaxPool {
                kernel: 2,
                stride: 2,
                padding: 0,
            },
            BlockSpec::BasicBlock {
                mid_channels: 6,
                out_channels: 12,
                stride: 2,
            },
            BlockSpec::DepthwiseSeparable {
                out_channels: 10,
                stride: 1,
            },
            BlockSpec::InvertedResidual {
                expand_channels: 30,
                out_channels: 10,
                stride: 1,
            },
            BlockSpec::InvertedResidual {
                expand_channels: 20,
                out_channels: 12,
                stride: 2,
            },
            BlockSpec::AvgPool {
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            BlockSpec::Flatten,
            BlockSpec::Linear {
                out_features: 16,
                relu: true,
            },
            BlockSpec::Linear {
                out_features: 5,
                relu: false,
            },
        ],
    }
}

fn check_every_split(spec: NetSpec, device: &Device) {
    device.seed(7);
    let [c, h, w] = spec.input.dims();
    let net = Network::new(spec, device).unwrap().valid();
    let x = Tensor::<4>::random([3, c, h, w], Distribution::Normal(0.0, 1.0), device);
    let whole = net.logits(x.clone()).unwrap();
    for at in 0..=net.spec().blocks.len() {
        let (device_half, edge_half) = net.clone().split(at).unwrap();
        let feature = device_half.forward(x.clone()).unwrap();
        let logits = edge_half.logits(feature).unwrap();
        let diff = max_abs_diff(whole.clone(), logits);
        assert!(diff <= 1e-5, "split at {at}: max |diff| = {diff}");
    }
}

#[test]
fn split_anywhere_equals_whole_resnet_mini() {
    check_every_split(zoo::resnet_mini(10), &Device::flex());
}

/// The reference paper's backbone: stem, eight basic blocks (three with a projection
/// shortcut), pooling, flatten and the classifier — every one of its 13 split points.
#[test]
fn split_anywhere_equals_whole_resnet18_cifar() {
    check_every_split(zoo::resnet18_cifar(10), &Device::flex());
}

/// Stem, a depthwise-separable block, four inverted residuals (one with an identity
/// shortcut), the 1×1 conv and the head: every one of its 11 split points.
#[test]
fn split_anywhere_equals_whole_mobilenetv2_mini() {
    check_every_split(zoo::mobilenetv2_mini(10), &Device::flex());
}

#[test]
fn split_anywhere_equals_whole_mobilenetv2_cifar() {
    check_every_split(zoo::mobilenetv2_cifar(10), &Device::flex());
}

#[test]
fn split_anywhere_equals_whole_every_block_kind() {
    check_every_split(every_block_kind(), &Device::flex());
}

#[test]
fn split_with_trained_batch_norm_statistics() {
    // Running statistics differ from the initial ones after a few training-mode forwards; the
    // split must carry them into the halves.
    let device = Device::flex();
    device.seed(3);
    let spec = zoo::resnet_mini(10);
    let net = Network::new(spec.clone(), &device).unwrap();
    let (spec, module) = net.into_parts();
    let module = burn::module::Module::train(module);
    let ad = device.clone().autodiff();
    for _ in 0..3 {
        let x = Tensor::<4>::random([8, 1, 28, 28], Distribution::Normal(0.5, 2.0), &ad);
        let _ = module.forward_features(x);
    }
    let net = Network::from_parts(spec, burn::module::Module::valid(&module)).unwrap();
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let whole = net.logits(x.clone()).unwrap();
    let (d, e) = net.split(4).unwrap();
    let split = e.logits(d.forward(x).unwrap()).unwrap();
    assert!(max_abs_diff(whole, split) <= 1e-5);
}

#[test]
fn join_undoes_split() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap().valid();
    let digest = net.digest();
    let (d, e) = net.split(3).unwrap();
    let joined = Network::join(d, e).unwrap();
    assert_eq!(joined.digest(), digest);
    assert_eq!(joined.spec().name, "resnet-mini");
}

#[test]
fn join_rejects_halves_that_do_not_chain() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let (d, _) = net.clone().split(2).unwrap();
    let (_, e) = net.split(4).unwrap();
    assert!(matches!(Network::join(d, e), Err(SplitError::Weights(_))));
}

#[test]
fn wrong_input_shape_is_an_error_not_a_panic() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let x = Tensor::<4>::zeros([1, 3, 28, 28], &device);
    let err = net.forward(x).unwrap_err();
    assert!(matches!(err, SplitError::InputShape { .. }), "{err}");
    assert!(err.to_string().contains("[1, 3, 28, 28]"), "{err}");
}

#[test]
fn split_past_the_end_is_rejected() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let blocks = net.spec().blocks.len();
    assert!(matches!(
        net.split(blocks + 1),
        Err(SplitError::SplitOutOfRange { .. })
    ));
}

/// flex and ndarray must agree on the same weights (the deprecated backend stays usable).
#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; kept as an optional backend.
fn flex_and_ndarray_forwards_agree() {
    let flex = Device::flex();
    let ndarray = Device::ndarray();
    flex.seed(11);
    let net = Network::new(zoo::resnet_mini(10), &flex).unwrap().valid();
    let bytes = net.to_bytes().unwrap();
    let on_ndarray = Network::from_bytes(&bytes, std::path::Path::new("memory"), &ndarray).unwrap();
    let x = Tensor::<4>::random([4, 1, 28, 28], Distribution::Normal(0.0, 1.0), &flex);
    let x_nd = Tensor::<4>::from_data(x.clone().into_data(), &ndarray);
    let a = net.logits(x).unwrap().into_data();
    let b = on_ndarray.logits(x_nd).unwrap().into_data();
    a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-4));
}
