//! Ready-made network specs: a compact ResNet for 28×28 grey images (the default, trains on a
//! CPU in minutes), ResNet-18 for 32×32 colour images (CIFAR-10, as in the reference paper), and
//! compact MobileNetV2s (depthwise-separable and inverted residual blocks) for both input sizes.

use crate::spec::{BlockSpec, FeatureShape, NetSpec};

fn basic(out_channels: usize, stride: usize) -> BlockSpec {
    BlockSpec::BasicBlock {
        mid_channels: out_channels,
        out_channels,
        stride,
    }
}

fn head(num_classes: usize) -> [BlockSpec; 3] {
    [
        BlockSpec::GlobalAvgPool,
        BlockSpec::Flatten,
        BlockSpec::Linear {
            out_features: num_classes,
            relu: false,
        },
    ]
}

/// Compact ResNet for `1 × 28 × 28` inputs (MNIST, Fashion-MNIST): a 3×3 stride-2 stem of 32
/// filters (14×14), basic blocks of 32 channels at 7×7 (stride 2), 64 at 4×4 (stride 2) and
/// 128 at 4×4, global pooling and a linear classifier (about 5.6 M multiply-accumulates,
/// 0.3 M parameters).
///
/// The stride-2 stem makes the cheapest split point worth having: its 14×14 feature, once
/// compressed, is smaller than the raw image at a tiny device cost. Every block changes shape
/// through a projection shortcut, so the stem and the inner convolution of every basic block
/// can be pruned: each device-side layer is a decision for the search.
pub fn resnet_mini(num_classes: usize) -> NetSpec {
    let mut blocks = vec![
        BlockSpec::ConvBnRelu {
            out_channels: 32,
            kernel: 3,
            stride: 2,
            padding: 1,
        },
        basic(32, 2),
        basic(64, 2),
        basic(128, 1),
    ];
    blocks.extend(head(num_classes));
    NetSpec {
        name: "resnet-mini".into(),
        input: FeatureShape::image(1, 28, 28),
        blocks,
    }
}

/// ResNet-20-style network for `1 × 28 × 28` inputs, sized for a large search space: a 3×3
/// stride-2 stem of 16 filters (14×14), three stages of three basic blocks (16 channels at
/// 14×14, 32 at 7×7, 64 at 4×4; stride 2 at the start of stages 2 and 3), global pooling and a
/// linear classifier (about 8 M multiply-accumulates, 0.27 M parameters).
///
/// Its 12 split points (the input, after the stem, after each of the nine blocks, after the
/// pooling) and nine prunable layers (the inner convolution of every block; the stem and the
/// block outputs are tied to identity shortcuts, which the pruning rules leave whole) make a
/// space of millions of plans on the baselines' four-level grid.
pub fn resnet20_mini(num_classes: usize) -> NetSpec {
    let mut blocks = vec![BlockSpec::ConvBnRelu {
        out_channels: 16,
        kernel: 3,
        stride: 2,
        padding: 1,
    }];
    for (channels, stride) in [(16, 1), (32, 2), (64, 2)] {
        blocks.push(basic(channels, stride));
        blocks.push(basic(channels, 1));
        blocks.push(basic(channels, 1));
    }
    blocks.extend(head(num_classes));
    NetSpec {
        name: "resnet20-mini".into(),
        input: FeatureShape::image(1, 28, 28),
        blocks,
    }
}

/// ResNet-18 for `3 × 32 × 32` inputs (CIFAR-10): a 3×3 stem of 64 filters, four stages of two
/// basic blocks (64, 128, 256, 512 channels; stride 2 at the start of stages 2–4), global
/// pooling and a linear classifier. The stage ends are the reference paper's split points.
pub fn resnet18_cifar(num_classes: usize) -> NetSpec {
    let mut blocks = vec![BlockSpec::ConvBnRelu {
        out_channels: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
    }];
    for (channels, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
        blocks.push(basic(channels, stride));
        blocks.push(basic(channels, 1));
    }
    blocks.extend(head(num_classes));
    NetSpec {
        name: "resnet18-cifar".into(),
        input: FeatureShape::image(3, 32, 32),
        blocks,
    }
}

/// An inverted residual of expansion factor `t` on `in_channels` inputs.
fn inverted(in_channels: usize, t: usize, out_channels: usize, stride: usize) -> BlockSpec {
    BlockSpec::InvertedResidual {
        expand_channels: t * in_channels,
        out_channels,
        stride,
    }
}

/// MobileNetV2 stages as `(t, out_channels, repeats, stride)` after a stem of `stem` filters
/// and a depthwise-separable block of `first` filters (MobileNetV2's `t = 1` block), then a
/// 1×1 conv-bn-relu of `last` filters and the head.
fn mobilenetv2(
    name: &str,
    input: FeatureShape,
    (stem, stem_stride): (usize, usize),
    (first, first_stride): (usize, usize),
    stages: &[(usize, usize, usize, usize)],
    last: usize,
    num_classes: usize,
) -> NetSpec {
    let mut blocks = vec![
        BlockSpec::ConvBnRelu {
            out_channels: stem,
            kernel: 3,
            stride: stem_stride,
            padding: 1,
        },
        BlockSpec::DepthwiseSeparable {
            out_channels: first,
            stride: first_stride,
        },
    ];
    let mut channels = first;
    for &(t, out, repeats, stride) in stages {
        for repeat in 0..repeats {
            blocks.push(inverted(
                channels,
                t,
                out,
                if repeat == 0 { stride } else { 1 },
            ));
            channels = out;
        }
    }
    blocks.push(BlockSpec::ConvBnRelu {
        out_channels: last,
        kernel: 1,
        stride: 1,
        padding: 0,
    });
    blocks.extend(head(num_classes));
    NetSpec {
        name: name.into(),
        input,
        blocks,
    }
}

/// Compact MobileNetV2 for `1 × 28 × 28` inputs: a 3×3 stride-2 stem of 16 filters (14×14), a
/// stride-2 depthwise-separable block of 16 (7×7), inverted residuals (expansion 6) of 24
/// channels at 7×7, 32 at 4×4 (two, the second with an identity shortcut) and 64 at 4×4, a 1×1
/// conv-bn-relu of 256, global pooling and a linear classifier (about 1.4 M
/// multiply-accumulates, 75 k parameters; sized to train as fast as [`resnet_mini`] on a CPU,
/// where the many small layers of a MobileNet cost more than their multiply-accumulates).
///
/// Prunable: the stem, the depthwise-separable block's pointwise filters, the expansion of
/// every inverted residual and the last 1×1 convolution; inverted residual outputs are not.
pub fn mobilenetv2_mini(num_classes: usize) -> NetSpec {
    mobilenetv2(
        "mobilenetv2-mini",
        FeatureShape::image(1, 28, 28),
        (16, 2),
        (16, 2),
        &[(6, 24, 1, 1), (6, 32, 2, 2), (6, 64, 1, 1)],
        256,
        num_classes,
    )
}

/// Compact MobileNetV2 for `3 × 32 × 32` inputs (CIFAR-10): a 3×3 stride-1 stem of 32 filters,
/// a depthwise-separable block of 16, inverted residuals (expansion 6) of 24 channels at 16×16
/// (two), 32 at 8×8 (three), 64 at 4×4 (three) and 96 at 4×4 (two), a 1×1 conv-bn-relu of 640,
/// global pooling and a linear classifier (MobileNetV2's layout with CIFAR strides, the
/// 160/320-channel stages left out).
pub fn mobilenetv2_cifar(num_classes: usize) -> NetSpec {
    mobilenetv2(
        "mobilenetv2-cifar",
        FeatureShape::image(3, 32, 32),
        (32, 1),
        (16, 1),
        &[(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1)],
        640,
        num_classes,
    )
}

/// The zoo's models by name, for command lines and config files.
pub fn by_name(name: &str, num_classes: usize) -> Option<NetSpec> {
    match name {
        "resnet-mini" => Some(resnet_mini(num_classes)),
        "resnet20-mini" => Some(resnet20_mini(num_classes)),
        "resnet18-cifar" => Some(resnet18_cifar(num_classes)),
        "mobilenetv2-mini" => Some(mobilenetv2_mini(num_classes)),
        "mobilenetv2-cifar" => Some(mobilenetv2_cifar(num_classes)),
        _ => None,
    }
}

/// Names accepted by [`by_name`].
pub const MODEL_NAMES: [&str; 5] = [
    "resnet-mini",
    "resnet20-mini",
    "resnet18-cifar",
    "mobilenetv2-mini",
    "mobilenetv2-cifar",
];
