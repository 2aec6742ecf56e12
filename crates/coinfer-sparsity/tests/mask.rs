//! Magnitude masks: achieved sparsity, which weights are zeroed, identity at 0, bad inputs.

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_sparsity::{MaskSparsity, SparsityError, magnitude_mask, mask_layers};
use coinfer_split::{BlockSpec, Network, zoo};

fn network() -> Network {
    Network::new(zoo::resnet_mini(10), &Device::flex())
        .unwrap()
        .valid()
}

fn mobilenet() -> Network {
    Network::new(zoo::mobilenetv2_mini(10), &Device::flex())
        .unwrap()
        .valid()
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Every maskable weight (conv and linear weights, rank 4 or 2) in visit order, which is
/// the mask_layers order.
fn mask_weights(net: &Network) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D == 4 || D == 2 {
                self.0.push(vals(param.val()));
            }
        }
    }
    let mut collect = Collect(Vec::new());
    net.module().visit(&mut collect);
    collect.0
}

fn input() -> Tensor<4> {
    Tensor::<4>::random(
        [2, 1, 28, 28],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
}

#[test]
fn mask_layers_follow_the_spec() {
    let layers = mask_layers(&zoo::resnet_mini(10)).unwrap();
    let names: Vec<(usize, &str)> = layers.iter().map(|l| (l.block, l.name)).collect();
    assert_eq!(
        names,
        [
            (0, "conv"),
            (1, "conv1"),
            (1, "conv2"),
            (1, "shortcut"),
            (2, "conv1"),
            (2, "conv2"),
            (2, "shortcut"),
            (3, "conv1"),
            (3, "conv2"),
            (3, "shortcut"),
            (6, "linear"),
        ]
    );
    let net = network();
    let sizes: Vec<usize> = mask_weights(&net).iter().map(Vec::len).collect();
    assert_eq!(sizes, layers.iter().map(|l| l.weights).collect::<Vec<_>>());
}

#[test]
fn mobilenet_mask_layers_follow_the_spec_and_masks_land_in_them() {
    let spec = zoo::mobilenetv2_mini(10);
    let layers = mask_layers(&spec).unwrap();
    let names: Vec<(usize, &str)> = layers.iter().take(8).map(|l| (l.block, l.name)).collect();
    assert_eq!(
        names,
        [
            (0, "conv"),
            (1, "depthwise"),
            (1, "pointwise"),
            (2, "expand"),
            (2, "depthwise"),
            (2, "project"),
            (3, "expand"),
            (3, "depthwise"),
        ]
    );
    let sizes: Vec<usize> = mask_weights(&mobilenet()).iter().map(Vec::len).collect();
    assert_eq!(sizes, layers.iter().map(|l| l.weights).collect::<Vec<_>>());
}

#[test]
fn global_mask_reaches_the_target_with_the_smallest_weights() {
    let net = network();
    let original = mask_weights(&net);
    let total: usize = original.iter().map(Vec::len).sum();
    for target in [0.1f32, 0.5, 0.9] {
        let (masked, report) = magnitude_mask(&net, &MaskSparsity::Global(target)).unwrap();
        let after = mask_weights(&masked);
        assert_eq!(after.len(), original.len());
        assert!(after.iter().zip(&original).all(|(a, b)| a.len() == b.len()));
        let zeros: usize = after.iter().flatten().filter(|&&w| w == 0.0).count();
        assert!(
            (zeros as f64 - f64::from(target) * total as f64).abs() <= 1.0,
            "{target}: {zeros} zeros of {total}"
        );
        assert_eq!(report.layers.iter().map(|l| l.zeros).sum::<usize>(), zeros);
        assert!((report.overall - zeros as f32 / total as f32).abs() < 1e-6);
        // Every zeroed weight is no larger than every surviving one, and survivors are unchanged.
        let (mut largest_zeroed, mut smallest_kept) = (0.0f32, f32::INFINITY);
        for (before, after) in original.iter().zip(&after) {
            for (&b, &a) in before.iter().zip(after) {
                if a == 0.0 {
                    largest_zeroed = largest_zeroed.max(b.abs());
                } else {
                    assert_eq!(a, b);
                    smallest_kept = smallest_kept.min(b.abs());
                }
            }
        }
        assert!(largest_zeroed <= smallest_kept, "{target}");
        assert_eq!(masked.spec(), net.spec());
        assert_eq!(masked.num_params(), net.num_params());
        assert_eq!(masked.logits(input()).unwrap().dims(), [2, 10]);
    }
}

#[test]
fn per_layer_mask_reaches_each_target() {
    for net in [network(), mobilenet()] {
        per_layer_mask_reaches_each_target_of(&net);
    }
}

fn per_layer_mask_reaches_each_target_of(net: &Network) {
    let layers = mask_layers(net.spec()).unwrap();
    let targets: Vec<f32> = (0..layers.len()).map(|i| (i as f32 * 0.37) % 1.0).collect();
    let (masked, report) = magnitude_mask(net, &MaskSparsity::PerLayer(targets.clone())).unwrap();
    let after = mask_weights(&masked);
    // One report entry and one weight vector per maskable layer, in block order, so the zip
    // below pairs each target with its own layer and skips none.
    assert_eq!(
        (report.layers.len(), after.len()),
        (layers.len(), layers.len())
    );
    let blocks: Vec<usize> = report.layers.iter().map(|l| l.block).collect();
    assert_eq!(blocks, layers.iter().map(|l| l.block).collect::<Vec<_>>());
    for ((layer, target), weights) in report.layers.iter().zip(&targets).zip(&after) {
        let zeros = weights.iter().filter(|&&w| w == 0.0).count();
        assert_eq!(layer.zeros, zeros, "block {} {}", layer.block, layer.name);
        assert!(
            (zeros as f64 - f64::from(*target) * weights.len() as f64).abs() <= 1.0,
            "block {} {}: {zeros} zeros of {} for {target}",
            layer.block,
            layer.name,
            weights.len()
        );
        assert!((layer.sparsity - zeros as f32 / weights.len() as f32).abs() < 1e-6);
    }
}

#[test]
fn zero_sparsity_changes_nothing() {
    let net = network();
    let x = input();
    let before = vals(net.logits(x.clone()).unwrap());
    let layers = mask_layers(net.spec()).unwrap().len();
    // Random initialisation can produce an exact zero now and then; those count as achieved.
    let weights = mask_weights(&net);
    let total: usize = weights.iter().map(Vec::len).sum();
    let already_zero = weights.iter().flatten().filter(|&&w| w == 0.0).count();
    for sparsity in [
        MaskSparsity::Global(0.0),
        MaskSparsity::PerLayer(vec![0.0; layers]),
    ] {
        let (masked, report) = magnitude_mask(&net, &sparsity).unwrap();
        assert_eq!(vals(masked.logits(x.clone()).unwrap()), before);
        assert_eq!(masked.digest(), net.digest());
        assert_eq!(report.overall, already_zero as f32 / total as f32);
    }
    // Full sparsity zeroes every maskable weight.
    let (_, report) = magnitude_mask(&net, &MaskSparsity::Global(1.0)).unwrap();
    assert_eq!(report.overall, 1.0);
}

#[test]
fn bad_sparsities_and_weights_are_rejected() {
    let net = network();
    for bad in [1.5f32, -0.1, f32::NAN] {
        let err = magnitude_mask(&net, &MaskSparsity::Global(bad)).unwrap_err();
        assert!(
            matches!(err, SparsityError::InvalidSparsity { .. }),
            "{err}"
        );
        let mut list = vec![0.5; 11];
        list[4] = bad;
        let err = magnitude_mask(&net, &MaskSparsity::PerLayer(list)).unwrap_err();
        match &err {
            SparsityError::InvalidSparsity { layer, .. } => assert_eq!(layer, "block 2 conv1"),
            other => panic!("unexpected {other}"),
        }
    }
    let err = magnitude_mask(&net, &MaskSparsity::PerLayer(vec![0.5; 3])).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::WrongCount {
                expected: 11,
                got: 3,
                ..
            }
        ),
        "{err}"
    );

    let (mut spec, module) = net.into_parts();
    spec.blocks[6] = BlockSpec::Linear {
        out_features: 10,
        relu: true,
    };
    let bad = Network::from_parts(spec, module).unwrap();
    let err = magnitude_mask(&bad, &MaskSparsity::Global(0.5)).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::WeightsMismatch {
                block: 6,
                kind: "linear",
                ..
            }
        ),
        "{err}"
    );
}
