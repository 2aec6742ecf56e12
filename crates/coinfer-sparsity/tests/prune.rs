//! Structured pruning end to end: costs, identity at ratio 0, commuting with splits, L1
//! selection, dead-filter equivalence, several ratios, and every rejected input.

use std::collections::BTreeMap;

use burn::module::{ModuleVisitor, Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_profile::{CostTotals, NetCost};
use coinfer_sparsity::{
    PrunableKind, PruneRatios, SparsityError, check_weights, prunable_layers, prune, prune_spec,
};
use coinfer_split::model::Block;
use coinfer_split::{BlockSpec, FeatureShape, NetSpec, Network, model::NetModule, zoo};

fn conv(out_channels: usize) -> BlockSpec {
    BlockSpec::ConvBnRelu {
        out_channels,
        kernel: 3,
        stride: 1,
        padding: 1,
    }
}

fn pool(avg: bool) -> BlockSpec {
    if avg {
        BlockSpec::AvgPool {
            kernel: 2,
            stride: 2,
            padding: 0,
        }
    } else {
        BlockSpec::MaxPool {
            kernel: 2,
            stride: 2,
            padding: 0,
        }
    }
}

/// conv → max pool → conv → avg pool → conv → flatten → linear (relu) → linear: every conv is
/// prunable, the last one through the flatten into a linear layer (9 rows per channel).
fn chain_spec() -> NetSpec {
    NetSpec {
        name: "chain".into(),
        input: FeatureShape::image(1, 12, 12),
        blocks: vec![
            conv(8),
            pool(false),
            conv(12),
            pool(true),
            conv(16),
            BlockSpec::Flatten,
            BlockSpec::Linear {
                out_features: 32,
                relu: true,
            },
            BlockSpec::Linear {
                out_features: 10,
                relu: false,
            },
        ],
    }
}

/// A small network whose costs are computed by hand below.
fn hand_spec() -> NetSpec {
    NetSpec {
        name: "hand".into(),
        input: FeatureShape::image(1, 8, 8),
        blocks: vec![
            conv(8),
            pool(false),
            BlockSpec::BasicBlock {
                mid_channels: 8,
                out_channels: 16,
                stride: 2,
            },
            conv(8),
            BlockSpec::Flatten,
            BlockSpec::Linear {
                out_features: 10,
                relu: false,
            },
        ],
    }
}

fn random_bn(bn: &BatchNorm, device: &Device) -> BatchNorm {
    let [c] = bn.gamma.dims();
    let uniform = |lo, hi| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), device);
    BatchNorm {
        gamma: Param::from_tensor(uniform(0.5, 1.5)),
        beta: Param::from_tensor(uniform(-0.5, 0.5)),
        training: bn.training.clone(),
        running_mean: RunningState::new(uniform(-0.5, 0.5)),
        running_var: RunningState::new(uniform(0.5, 1.5)),
        momentum: bn.momentum,
        epsilon: bn.epsilon,
    }
}

/// A network of `spec` in inference mode with random weights and random batch-norm
/// statistics (so that a misaligned batch-norm slice changes the outputs).
fn network(spec: NetSpec) -> Network {
    let device = Device::flex();
    let (spec, mut module) = Network::new(spec, &device).unwrap().into_parts();
    for block in &mut module.blocks {
        match block {
            Block::ConvBnRelu(m) => m.bn = random_bn(&m.bn, &device),
            Block::Basic(m) => {
                m.bn1 = random_bn(&m.bn1, &device);
                m.bn2 = random_bn(&m.bn2, &device);
                if let Some(p) = &mut m.shortcut {
                    p.bn = random_bn(&p.bn, &device);
                }
            }
            Block::DepthwiseSeparable(m) => {
                m.bn1 = random_bn(&m.bn1, &device);
                m.bn2 = random_bn(&m.bn2, &device);
            }
            Block::InvertedResidual(m) => {
                m.bn1 = random_bn(&m.bn1, &device);
                m.bn2 = random_bn(&m.bn2, &device);
                m.bn3 = random_bn(&m.bn3, &device);
            }
            _ => {}
        }
    }
    Network::from_parts(spec, module).unwrap().valid()
}

fn input(net: &Network, batch: usize) -> Tensor<4> {
    let [c, h, w] = net.spec().input.dims();
    Tensor::<4>::random(
        [batch, c, h, w],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}: element {i}: {x} vs {y}");
    }
}

/// Every float tensor of a module (parameters and running statistics), in visit order.
fn all_tensors(module: &NetModule) -> Vec<(Vec<usize>, Vec<f32>)> {
    struct Collect(Vec<(Vec<usize>, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            self.0.push((t.dims().to_vec(), vals(t)));
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

fn total(spec: &NetSpec) -> CostTotals {
    NetCost::of(spec).unwrap().totals()
}

#[test]
fn pruned_costs_match_hand_count_and_num_params() {
    let net = network(hand_spec());
    let layers = prunable_layers(net.spec()).unwrap();
    let found: Vec<_> = layers
        .iter()
        .map(|l| (l.block, l.kind, l.channels))
        .collect();
    assert_eq!(
        found,
        [
            (0, PrunableKind::ConvBnRelu, 8), // feeds a stride-2 (projection) block
            (2, PrunableKind::BasicBlockInner, 8), // mid channels
            (3, PrunableKind::ConvBnRelu, 8), // feeds flatten + linear
        ]
    );
    let pruned = prune(&net, &PruneRatios::PerLayer(vec![0.5, 0.25, 0.5])).unwrap();
    let mut expected = hand_spec();
    expected.blocks[0] = conv(4);
    expected.blocks[2] = BlockSpec::BasicBlock {
        mid_channels: 6,
        out_channels: 16,
        stride: 2,
    };
    expected.blocks[3] = conv(4);
    assert_eq!(pruned.spec(), &expected);

    let costs = NetCost::of(pruned.spec()).unwrap().blocks;
    let macs: Vec<u64> = costs.iter().map(|c| c.macs).collect();
    let params: Vec<u64> = costs.iter().map(|c| c.params).collect();
    let outputs: Vec<u64> = costs.iter().map(|c| c.activation_elements).collect();
    // 0: conv 1→4, 3×3 on 8×8: 9·1·4·64 = 2304 MACs; 36 weights + 4·4 bn = 52.
    // 1: max pool → 4×4×4, free.
    // 2: basic block 4→(6)→16, stride 2, out 2×2: conv1 9·4·6·4 = 864, conv2 9·6·16·4 = 3456,
    //    projection 4·16·4 = 256 → 4576 MACs; 216 + 24 + 864 + 64 + 64 + 64 = 1296 params.
    // 3: conv 16→4, 3×3 on 2×2: 9·16·4·4 = 2304 MACs; 576 + 16 = 592 params.
    // 4: flatten 4·2·2 = 16.  5: linear 16→10: 160 MACs, 160 + 10 = 170 params.
    assert_eq!(macs, [2304, 0, 4576, 2304, 0, 160]);
    assert_eq!(params, [52, 0, 1296, 592, 0, 170]);
    assert_eq!(outputs, [256, 64, 64, 16, 16, 10]);
    let sum = total(pruned.spec());
    assert_eq!((sum.macs, sum.params), (9344, 2110));
    assert_eq!(pruned.num_params(), 2110);
    assert_eq!(total(net.spec()).params as usize, net.num_params());

    let logits = pruned.logits(input(&pruned, 3)).unwrap();
    assert_eq!(logits.dims(), [3, 10]);
}

#[test]
fn analytic_params_equal_num_params_for_the_zoo() {
    for spec in [
        zoo::resnet_mini(10),
        chain_spec(),
        zoo::resnet18_cifar(10),
        zoo::mobilenetv2_mini(10),
        zoo::mobilenetv2_cifar(10),
    ] {
        let net = Network::new(spec.clone(), &Device::flex()).unwrap();
        assert_eq!(
            total(&spec).params as usize,
            net.num_params(),
            "{}",
            spec.name
        );
        let pruned = prune_spec(&spec, &PruneRatios::Uniform(0.5)).unwrap();
        let pruned_net = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
        assert_eq!(pruned_net.spec(), &pruned);
        assert_eq!(
            total(&pruned).params as usize,
            pruned_net.num_params(),
            "{}",
            spec.name
        );
    }
}

#[test]
fn ratio_zero_is_bit_identical() {
    for spec in [
        zoo::resnet_mini(10),
        zoo::resnet18_cifar(10),
        zoo::mobilenetv2_mini(10),
        chain_spec(),
        hand_spec(),
    ] {
        let net = network(spec);
        let x = input(&net, 2);
        let before = vals(net.forward(x.clone()).unwrap());
        let layers = prunable_layers(net.spec()).unwrap().len();
        for ratios in [
            PruneRatios::Uniform(0.0),
            PruneRatios::PerLayer(vec![0.0; layers]),
            PruneRatios::ByBlock(BTreeMap::new()),
            PruneRatios::default(),
        ] {
            let same = prune(&net, &ratios).unwrap();
            assert_eq!(same.spec(), net.spec());
            assert_eq!(all_tensors(same.module()), all_tensors(net.module()));
            assert_eq!(same.digest(), net.digest());
            assert_eq!(vals(same.forward(x.clone()).unwrap()), before);
        }
    }
}

#[test]
fn prune_then_split_equals_split_then_prune() {
    let net = network(zoo::resnet_mini(10));
    let layers = prunable_layers(net.spec()).unwrap();
    assert_eq!(layers.len(), 4);
    let x = input(&net, 2);
    for random in [[0.3f32, 0.55, 0.8, 0.2], [0.9, 0.125, 0.4, 0.6]] {
        for at in net.spec().split_points() {
            // A layer whose consumer lies past the cut shrinks the edge half too: splitting first
            // cannot express it, so it keeps its filters here.
            let ratios: Vec<f32> = layers
                .iter()
                .zip(random)
                .map(|(l, p)| {
                    if l.block < at && l.consumer >= at {
                        0.0
                    } else {
                        p
                    }
                })
                .collect();
            assert!(ratios.iter().filter(|&&p| p > 0.0).count() >= 3);
            let pruned = prune(&net, &PruneRatios::PerLayer(ratios.clone())).unwrap();
            let (device_a, edge_a) = pruned.clone().split(at).unwrap();
            let (device_half, edge_half) = net.clone().split(at).unwrap();
            let (mut device_ratios, mut edge_ratios) = (BTreeMap::new(), BTreeMap::new());
            for (layer, &p) in layers.iter().zip(&ratios) {
                if p == 0.0 {
                    continue;
                }
                if layer.block < at {
                    device_ratios.insert(layer.block, p);
                } else {
                    edge_ratios.insert(layer.block - at, p);
                }
            }
            let device_b = prune(&device_half, &PruneRatios::ByBlock(device_ratios)).unwrap();
            let edge_b = prune(&edge_half, &PruneRatios::ByBlock(edge_ratios)).unwrap();
            assert_eq!(device_a.spec(), device_b.spec(), "device half at {at}");
            assert_eq!(edge_a.spec(), edge_b.spec(), "edge half at {at}");

            let feature_a = device_a.forward(x.clone()).unwrap();
            let feature_b = device_b.forward(x.clone()).unwrap();
            assert_close(
                &vals(feature_a.clone()),
                &vals(feature_b.clone()),
                1e-5,
                &format!("feature at {at}"),
            );
            let logits_a = vals(edge_a.forward(feature_a).unwrap());
            let logits_b = vals(edge_b.forward(feature_b).unwrap());
            assert_close(&logits_a, &logits_b, 1e-5, &format!("logits at {at}"));
            let whole = vals(pruned.forward(x.clone()).unwrap());
            assert_close(&logits_a, &whole, 1e-5, &format!("whole vs split at {at}"));
        }
    }
}

/// Writes `rows` into the first block's conv weight (one row per filter).
fn set_conv_weights(net: Network, block: usize, rows: &[Vec<f32>]) -> Network {
    let device = Device::flex();
    let (spec, mut module) = net.into_parts();
    let Block::ConvBnRelu(m) = &mut module.blocks[block] else {
        panic!("block {block} is not a conv_bn_relu");
    };
    let dims = m.conv.weight.dims();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    m.conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(flat, dims), &device));
    Network::from_parts(spec, module).unwrap()
}

#[test]
fn keeps_filters_with_largest_l1_norm_in_order() {
    let net = network(chain_spec());
    // 8 filters of 1×3×3; filter f holds ±v_f, so its L1 norm is 9·|v_f|.
    let v = [3.0f32, -1.0, 5.0, 3.0, 0.5, -2.0, 3.0, 4.0];
    let rows: Vec<Vec<f32>> = v
        .iter()
        .map(|&x| (0..9).map(|i| if i % 2 == 0 { x } else { -x }).collect())
        .collect();
    let net = set_conv_weights(net, 0, &rows);
    // Keep 3 of 8: 5 (#2), 4 (#7), then the tie of 3 between #0, #3, #6 goes to #0.
    let kept = [0usize, 2, 7];
    let pruned = prune(&net, &PruneRatios::ByBlock(BTreeMap::from([(0, 0.625)]))).unwrap();
    assert_eq!(pruned.spec().blocks[0], conv(3));

    let (Block::ConvBnRelu(old0), Block::ConvBnRelu(new0)) =
        (&net.module().blocks[0], &pruned.module().blocks[0])
    else {
        panic!("block 0 kinds");
    };
    let expected: Vec<f32> = kept.iter().flat_map(|&f| rows[f].clone()).collect();
    assert_eq!(vals(new0.conv.weight.val()), expected);
    let pick = |t: Tensor<1>| {
        let all = vals(t);
        kept.iter().map(|&i| all[i]).collect::<Vec<f32>>()
    };
    assert_eq!(vals(new0.bn.gamma.val()), pick(old0.bn.gamma.val()));
    assert_eq!(vals(new0.bn.beta.val()), pick(old0.bn.beta.val()));
    assert_eq!(
        vals(new0.bn.running_mean.value()),
        pick(old0.bn.running_mean.value())
    );
    assert_eq!(
        vals(new0.bn.running_var.value()),
        pick(old0.bn.running_var.value())
    );

    // The consumer (block 2, after the pool) keeps exactly the input slices [0, 2, 7].
    let (Block::ConvBnRelu(old2), Block::ConvBnRelu(new2)) =
        (&net.module().blocks[2], &pruned.module().blocks[2])
    else {
        panic!("block 2 kinds");
    };
    let old = vals(old2.conv.weight.val()); // [12, 8, 3, 3]
    let mut expected = Vec::new();
    for out in 0..12 {
        for &c in &kept {
            let start = (out * 8 + c) * 9;
            expected.extend_from_slice(&old[start..start + 9]);
        }
    }
    assert_eq!(new2.conv.weight.dims(), [12, 3, 3, 3]);
    assert_eq!(vals(new2.conv.weight.val()), expected);
    // Block 2's own filters and batch norm are untouched.
    assert_eq!(vals(new2.bn.gamma.val()), vals(old2.bn.gamma.val()));
}

/// Makes the given filters of a prunable layer dead: zero weights (so the smallest L1 norm)
/// and a batch norm that maps them to −1, which the ReLU turns into exactly 0.
/// Makes `dead` filters of the prunable layer at `block` output exactly zero after their
/// activation (zero weights, batch norm mapping them to −1 before a ReLU or ReLU6), and so
/// every depthwise channel reading them: pruning them must then leave the outputs unchanged.
fn kill_filters(net: Network, block: usize, dead: &[usize]) -> Network {
    let device = Device::flex();
    let consumer = prunable_layers(net.spec())
        .unwrap()
        .into_iter()
        .find(|l| l.block == block)
        .expect("a prunable layer")
        .consumer;
    let (spec, mut module) = net.into_parts();
    let kill_bn = |bn: &mut BatchNorm| {
        let (mut beta, mut mean) = (vals(bn.beta.val()), vals(bn.running_mean.value()));
        for &f in dead {
            beta[f] = -1.0;
            mean[f] = 0.0;
        }
        let c = beta.len();
        bn.beta = Param::from_tensor(Tensor::from_data(TensorData::new(beta, [c]), &device));
        bn.running_mean = RunningState::new(Tensor::from_data(TensorData::new(mean, [c]), &device));
    };
    // The depthwise convolution of the same inverted residual, or of the next
    // depthwise-separable block, turns zero channels into its batch norm's shift.
    match &mut module.blocks[consumer] {
        Block::InvertedResidual(m) => kill_bn(&mut m.bn2),
        Block::DepthwiseSeparable(m) if consumer != block => kill_bn(&mut m.bn1),
        _ => {}
    }
    let (conv, bn) = match &mut module.blocks[block] {
        Block::ConvBnRelu(m) => (&mut m.conv, &mut m.bn),
        Block::Basic(m) => (&mut m.conv1, &mut m.bn1),
        Block::DepthwiseSeparable(m) => (&mut m.pointwise, &mut m.bn2),
        Block::InvertedResidual(m) => (&mut m.expand, &mut m.bn1),
        _ => panic!("block {block} has no prunable conv"),
    };
    let dims = conv.weight.dims();
    let per_filter = dims[1] * dims[2] * dims[3];
    let mut w = vals(conv.weight.val());
    for &f in dead {
        w[f * per_filter..(f + 1) * per_filter].fill(0.0);
    }
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, dims), &device));
    kill_bn(bn);
    Network::from_parts(spec, module).unwrap()
}

#[test]
fn pruning_dead_filters_keeps_the_outputs() {
    for spec in [
        chain_spec(),
        zoo::resnet_mini(10),
        hand_spec(),
        zoo::mobilenetv2_mini(10),
    ] {
        let name = spec.name.clone();
        let mut net = network(spec);
        let layers = prunable_layers(net.spec()).unwrap();
        for layer in &layers {
            let dead: Vec<usize> = (1..layer.channels).step_by(2).collect();
            net = kill_filters(net, layer.block, &dead);
        }
        let x = input(&net, 2);
        let before = vals(net.logits(x.clone()).unwrap());
        let pruned = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
        let pruned_layers = prunable_layers(pruned.spec()).unwrap();
        for (dense, sparse) in layers.iter().zip(&pruned_layers) {
            assert_eq!(
                sparse.channels,
                dense.channels / 2,
                "{name} block {}",
                dense.block
            );
        }
        assert!(pruned.num_params() < net.num_params());
        let after = vals(pruned.logits(x).unwrap());
        assert_close(&before, &after, 1e-5, &name);
    }
}

#[test]
fn pruned_networks_run_at_several_ratios() {
    for spec in [
        zoo::resnet_mini(10),
        chain_spec(),
        zoo::mobilenetv2_mini(10),
    ] {
        let net = network(spec);
        let x = input(&net, 2);
        let mut last_macs = total(net.spec()).macs;
        for ratio in [0.1f32, 0.3, 0.5, 0.7, 0.9] {
            let pruned = prune(&net, &PruneRatios::Uniform(ratio)).unwrap();
            pruned.spec().check().unwrap();
            check_weights(&pruned).unwrap();
            let logits = pruned.logits(x.clone()).unwrap();
            assert_eq!(logits.dims(), [2, 10], "{} at {ratio}", net.spec().name);
            assert!(vals(logits).iter().all(|v| v.is_finite()));
            let macs = total(pruned.spec()).macs;
            assert!(
                macs < last_macs,
                "{} at {ratio}: {macs} >= {last_macs}",
                net.spec().name
            );
            last_macs = macs;
            // Pruned networks save and load like any other.
            let bytes = pruned.to_bytes().unwrap();
            let back = Network::from_bytes(&bytes, std::path::Path::new("pruned"), &Device::flex())
                .unwrap();
            assert_eq!(back.digest(), pruned.digest());
        }
    }
}

/// Global pooling, flatten and a 10-class linear layer.
fn head() -> [BlockSpec; 3] {
    [
        BlockSpec::GlobalAvgPool,
        BlockSpec::Flatten,
        BlockSpec::Linear {
            out_features: 10,
            relu: false,
        },
    ]
}

/// The blocks of `spec`'s prunable layers.
fn prunable_blocks(spec: &NetSpec) -> Vec<usize> {
    prunable_layers(spec)
        .unwrap()
        .iter()
        .map(|l| l.block)
        .collect()
}

fn residual_spec(stem: usize, out: usize) -> NetSpec {
    small_spec(
        format!("residual-{stem}-{out}"),
        [
            conv(stem),
            BlockSpec::BasicBlock {
                mid_channels: out,
                out_channels: out,
                stride: 1,
            },
        ],
    )
}

/// An 8×8 grey network of `body` followed by the classifier head.
fn small_spec(name: String, body: impl IntoIterator<Item = BlockSpec>) -> NetSpec {
    NetSpec {
        name,
        input: FeatureShape::image(1, 8, 8),
        blocks: body.into_iter().chain(head()).collect(),
    }
}

/// Pruning block `at` of `spec` is refused as `NotPrunable` (a `layer`) because of an
/// identity shortcut.
fn refused_near_a_shortcut(spec: &NetSpec, at: usize, layer: &str) {
    let err = prune_spec(spec, &PruneRatios::ByBlock(BTreeMap::from([(at, 0.5)]))).unwrap_err();
    match &err {
        SparsityError::NotPrunable {
            block,
            kind,
            reason,
        } => {
            assert_eq!((*block, *kind), (at, layer));
            assert!(reason.contains("identity shortcut"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn identity_shortcut_and_unread_convs_are_not_prunable() {
    // A conv feeding an identity-shortcut block is tied to the residual sum.
    let identity = residual_spec(8, 8);
    let blocks = prunable_blocks(&identity);
    assert_eq!(blocks, [1]);
    refused_near_a_shortcut(&identity, 0, "conv_bn_relu");
    // A stride-1 projection from more to fewer channels could turn into an identity.
    let shrink = residual_spec(16, 8);
    let blocks = prunable_blocks(&shrink);
    assert_eq!(blocks, [1]);
    let err = prune_spec(&shrink, &PruneRatios::ByBlock(BTreeMap::from([(0, 0.5)]))).unwrap_err();
    assert!(
        matches!(err, SparsityError::NotPrunable { block: 0, .. }),
        "{err}"
    );
    // From fewer to more channels the projection survives any pruning.
    let grow = residual_spec(4, 8);
    let blocks = prunable_blocks(&grow);
    assert_eq!(blocks, [0, 1]);
    let net = network(grow);
    let pruned = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
    assert_eq!(pruned.spec().blocks[0], conv(2));
    assert_eq!(pruned.logits(input(&pruned, 2)).unwrap().dims(), [2, 10]);

    // A device half ending in a conv: nothing reads it, so it is not prunable there.
    let (device, _) = chain_spec().split(3).unwrap();
    let blocks = prunable_blocks(&device);
    assert_eq!(blocks, [0]);
    let err = prune_spec(&device, &PruneRatios::ByBlock(BTreeMap::from([(2, 0.5)]))).unwrap_err();
    assert!(
        matches!(err, SparsityError::NotPrunable { block: 2, .. }),
        "{err}"
    );
}

#[test]
fn mobilenet_prunes_expansions_and_pointwise_filters_never_bottlenecks() {
    let spec = zoo::mobilenetv2_mini(10);
    let layers = prunable_layers(&spec).unwrap();
    let summary: Vec<(usize, PrunableKind, usize, usize)> = layers
        .iter()
        .map(|l| (l.block, l.kind, l.channels, l.consumer))
        .collect();
    // Stem → depthwise-separable block 1 → inverted residual 2 (16 → 24 channels: no
    // shortcut); the expansions of blocks 2–5 shrink their own block; the last 1×1 conv feeds
    // the linear head.
    assert_eq!(
        summary,
        [
            (0, PrunableKind::ConvBnRelu, 16, 1),
            (1, PrunableKind::DepthwiseSeparablePointwise, 16, 2),
            (2, PrunableKind::InvertedResidualExpand, 96, 2),
            (3, PrunableKind::InvertedResidualExpand, 144, 3),
            (4, PrunableKind::InvertedResidualExpand, 192, 4),
            (5, PrunableKind::InvertedResidualExpand, 192, 5),
            (6, PrunableKind::ConvBnRelu, 256, 9),
        ]
    );
    let net = network(spec.clone());
    let pruned = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
    check_weights(&pruned).unwrap();
    let expected: Vec<BlockSpec> = spec
        .blocks
        .iter()
        .map(|block| match *block {
            BlockSpec::ConvBnRelu {
                out_channels,
                kernel,
                stride,
                padding,
            } => BlockSpec::ConvBnRelu {
                out_channels: out_channels / 2,
                kernel,
                stride,
                padding,
            },
            BlockSpec::DepthwiseSeparable {
                out_channels,
                stride,
            } => BlockSpec::DepthwiseSeparable {
                out_channels: out_channels / 2,
                stride,
            },
            // Outputs (bottlenecks) keep their width, residual or not.
            BlockSpec::InvertedResidual {
                expand_channels,
                out_channels,
                stride,
            } => BlockSpec::InvertedResidual {
                expand_channels: expand_channels / 2,
                out_channels,
                stride,
            },
            ref other => other.clone(),
        })
        .collect();
    assert_eq!(pruned.spec().blocks, expected);
    // The depthwise convolutions lost the same filters (weights and groups).
    match (&pruned.module().blocks[1], &pruned.module().blocks[4]) {
        (Block::DepthwiseSeparable(ds), Block::InvertedResidual(ir)) => {
            assert_eq!(ds.depthwise.weight.dims(), [8, 1, 3, 3]);
            assert_eq!(ds.depthwise.groups, 8);
            assert_eq!(ds.pointwise.weight.dims(), [8, 8, 1, 1]);
            assert_eq!(ir.expand.weight.dims(), [96, 32, 1, 1]);
            assert_eq!(ir.depthwise.weight.dims(), [96, 1, 3, 3]);
            assert_eq!(ir.depthwise.groups, 96);
            assert_eq!(ir.project.weight.dims(), [32, 96, 1, 1]);
            assert!(ir.residual);
        }
        other => panic!("unexpected blocks {other:?}"),
    }
    assert_eq!(pruned.logits(input(&pruned, 2)).unwrap().dims(), [2, 10]);
}

/// conv → depthwise-separable → inverted residual (`in → out`, stride 1) → head.
fn mobile_spec(stem: usize, pointwise: usize, out: usize) -> NetSpec {
    small_spec(
        format!("mobile-{stem}-{pointwise}-{out}"),
        [
            conv(stem),
            BlockSpec::DepthwiseSeparable {
                out_channels: pointwise,
                stride: 1,
            },
            BlockSpec::InvertedResidual {
                expand_channels: 4 * pointwise,
                out_channels: out,
                stride: 1,
            },
        ],
    )
}

#[test]
fn channels_added_by_an_inverted_residual_are_not_prunable() {
    // Identity shortcut: the pointwise output is added to the block's output.
    let identity = mobile_spec(8, 8, 8);
    assert_eq!(prunable_blocks(&identity), [0, 2]);
    refused_near_a_shortcut(&identity, 1, "depthwise_separable");
    // Stride 1 from more to fewer channels: pruning could switch the shortcut on.
    assert_eq!(prunable_blocks(&mobile_spec(8, 16, 8)), [0, 2]);
    // From fewer to more channels there is never a shortcut.
    let grow = mobile_spec(8, 4, 8);
    assert_eq!(prunable_blocks(&grow), [0, 1, 2]);
    let net = network(grow);
    let pruned = prune(&net, &PruneRatios::Uniform(0.5)).unwrap();
    check_weights(&pruned).unwrap();
    assert_eq!(
        pruned.spec().blocks[2],
        BlockSpec::InvertedResidual {
            expand_channels: 8,
            out_channels: 8,
            stride: 1,
        }
    );
    assert_eq!(pruned.logits(input(&pruned, 2)).unwrap().dims(), [2, 10]);
}

#[test]
fn bad_ratios_are_rejected_naming_the_layer() {
    let net = network(zoo::resnet_mini(10));
    for bad in [1.0f32, -0.1, f32::NAN, 1.5, f32::INFINITY] {
        let err = prune(&net, &PruneRatios::PerLayer(vec![0.2, bad, 0.3, 0.1])).unwrap_err();
        match &err {
            SparsityError::InvalidRatio { layer, block, .. } => {
                assert_eq!((*layer, *block), (1, 1))
            }
            other => panic!("{bad}: unexpected {other}"),
        }
        assert!(err.to_string().contains("block 1"), "{err}");
        let err = prune(&net, &PruneRatios::Uniform(bad)).unwrap_err();
        assert!(
            matches!(
                err,
                SparsityError::InvalidRatio {
                    layer: 0,
                    block: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    let err = prune(&net, &PruneRatios::PerLayer(vec![0.5; 5])).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::WrongCount {
                expected: 4,
                got: 5,
                ..
            }
        ),
        "{err}"
    );

    let by_block = |block, p| PruneRatios::ByBlock(BTreeMap::from([(block, p)]));
    let err = prune(&net, &by_block(4, 0.5)).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::NotPrunable {
                block: 4,
                kind: "global_avg_pool",
                ..
            }
        ),
        "{err}"
    );
    let err = prune(&net, &by_block(6, 0.5)).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::NotPrunable {
                block: 6,
                kind: "linear",
                ..
            }
        ),
        "{err}"
    );
    let err = prune(&net, &by_block(99, 0.5)).unwrap_err();
    assert!(
        matches!(
            err,
            SparsityError::BlockOutOfRange {
                block: 99,
                blocks: 7
            }
        ),
        "{err}"
    );
    let err = prune(&net, &by_block(2, 1.0)).unwrap_err();
    assert!(
        matches!(err, SparsityError::InvalidRatio { block: 2, .. }),
        "{err}"
    );

    // An invalid spec is reported by coinfer-split's error.
    let mut spec = zoo::resnet_mini(10);
    spec.input = FeatureShape::image(1, 0, 28);
    assert!(matches!(
        prune_spec(&spec, &PruneRatios::Uniform(0.5)),
        Err(SparsityError::Split(_))
    ));
}

#[test]
fn weights_that_do_not_match_the_spec_are_rejected() {
    let net = network(zoo::resnet_mini(10));
    let (spec, module) = net.into_parts();

    // Same block count, but the spec says block 2 is narrower inside.
    let mut narrow = spec.clone();
    narrow.blocks[2] = BlockSpec::BasicBlock {
        mid_channels: 32,
        out_channels: 64,
        stride: 2,
    };
    let bad = Network::from_parts(narrow, module.clone()).unwrap();
    let err = prune(&bad, &PruneRatios::Uniform(0.5)).unwrap_err();
    match &err {
        SparsityError::WeightsMismatch {
            block,
            kind,
            reason,
        } => {
            assert_eq!((*block, *kind), (2, "basic_block"));
            assert!(reason.contains("conv1"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("block 2"), "{err}");

    // Another block kind at the same position.
    let mut swapped = spec.clone();
    swapped.blocks[4] = BlockSpec::AvgPool {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let bad = Network::from_parts(swapped, module.clone()).unwrap();
    assert!(matches!(
        prune(&bad, &PruneRatios::Uniform(0.0)),
        Err(SparsityError::WeightsMismatch {
            block: 4,
            kind: "avg_pool",
            ..
        })
    ));

    // A different stem width changes the first block's conv and every input after it.
    let mut wide = spec;
    wide.blocks[0] = conv(16);
    let bad = Network::from_parts(wide, module).unwrap();
    assert!(matches!(
        check_weights(&bad),
        Err(SparsityError::WeightsMismatch { block: 0, .. })
    ));
}
