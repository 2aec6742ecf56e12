//! The training kernels against burn's reference convolution and batch norm: forward values,
//! the gradients of every input and parameter (and batch norm's running statistics), on odd
//! shapes, strides, paddings, groups, kernel sizes and batch sizes, with 1 and 3 threads.
#![cfg(feature = "flex")]

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use coinfer_kernels::{Activation, batch_norm, batch_norm_act, conv2d, runs_on_kernels};

/// One case: `[batch, in, h, w]`, out channels, kernel, stride, padding, groups, bias.
#[derive(Debug, Clone, Copy)]
struct Case {
    x: [usize; 4],
    out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    bias: bool,
}

fn layer(case: Case, device: &Device) -> Conv2d {
    Conv2dConfig::new([case.x[1], case.out], case.kernel)
        .with_stride(case.stride)
        .with_padding(PaddingConfig2d::Explicit(
            case.padding[0],
            case.padding[1],
            case.padding[0],
            case.padding[1],
        ))
        .with_groups(case.groups)
        .with_bias(case.bias)
        .init(device)
}

/// `(output, dx, dweight, dbias)` of `sum(conv(x) * r)` through `run`.
fn gradients(
    conv: &Conv2d,
    x: &Tensor<4>,
    r: &Tensor<4>,
    run: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
) -> (TensorData, TensorData, TensorData, Option<TensorData>) {
    let x = x.clone().require_grad();
    let y = run(conv, x.clone());
    let loss = (y.clone() * r.clone()).sum();
    let grads = loss.backward();
    let dx = x.grad(&grads).expect("input gradient").into_data();
    let dw = conv
        .weight
        .val()
        .grad(&grads)
        .expect("weight gradient")
        .into_data();
    let db = conv
        .bias
        .as_ref()
        .map(|b| b.val().grad(&grads).expect("bias gradient").into_data());
    (y.into_data(), dx, dw, db)
}

fn check(case: Case, seed: u64) {
    let device = Device::flex().autodiff();
    assert!(runs_on_kernels(&device));
    device.seed(seed);
    let conv = layer(case, &device);
    let x = Tensor::<4>::random(case.x, Distribution::Normal(0.0, 1.0), &device);
    let y_dims = conv.forward(x.clone()).dims();
    let r = Tensor::<4>::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
    let reference = gradients(&conv, &x, &r, |c, x| c.forward(x));
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let fast = pool.install(|| gradients(&conv, &x, &r, conv2d));
        let tol = Tolerance::<f32>::relative(1e-4).set_absolute(1e-4);
        let what = format!("{case:?}, {threads} threads");
        fast.0.assert_approx_eq::<f32>(&reference.0, tol);
        fast.1.assert_approx_eq::<f32>(&reference.1, tol);
        fast.2.assert_approx_eq::<f32>(&reference.2, tol);
        match (fast.3, reference.3.clone()) {
            (Some(a), Some(b)) => a.assert_approx_eq::<f32>(&b, tol),
            (None, None) => {}
            _ => panic!("bias gradient present on one side only: {what}"),
        }
    }
}

#[test]
fn convolutions_and_their_gradients_equal_burns() {
    let cases = [
        // resnet-mini's layers at batch 5
        Case {
            x: [5, 1, 28, 28],
            out: 16,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
            bias: false,
        },
        Case {
            x: [5, 16, 14, 14],
            out: 32,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            groups: 1,
            bias: false,
        },
        Case {
            x: [5, 16, 14, 14],
            out: 32,
            kernel: [1, 1],
            stride: [2, 2],
            padding: [0, 0],
            groups: 1,
            bias: false,
        },
        // odd sizes, rectangular kernels and strides, bias, padding 2
        Case {
            x: [3, 5, 11, 9],
            out: 7,
            kernel: [3, 5],
            stride: [2, 1],
            padding: [1, 2],
            groups: 1,
            bias: true,
        },
        Case {
            x: [1, 3, 7, 13],
            out: 4,
            kernel: [5, 3],
            stride: [3, 2],
            padding: [2, 0],
            groups: 1,
            bias: true,
        },
        // 1×1 pointwise, batch 1
        Case {
            x: [1, 6, 5, 5],
            out: 9,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
            bias: true,
        },
        // groups and depthwise
        Case {
            x: [4, 6, 9, 9],
            out: 9,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 3,
            bias: true,
        },
        Case {
            x: [4, 8, 10, 10],
            out: 8,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            groups: 8,
            bias: false,
        },
        // the codec's autoencoders: 2×2 stride-2 encoder, 3×3 decoder with bias
        Case {
            x: [6, 32, 7, 7],
            out: 4,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            groups: 1,
            bias: true,
        },
        // a batch larger than one chunk of images (chunks of partial sums)
        Case {
            x: [37, 4, 6, 6],
            out: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
            bias: true,
        },
        // buffers large enough to be zeroed in parallel (input and output over 64 Ki values)
        // and a weight reordered in two pieces (over 2 · 8192 values)
        Case {
            x: [6, 32, 20, 20],
            out: 64,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
            bias: true,
        },
    ];
    for (seed, case) in cases.into_iter().enumerate() {
        check(case, seed as u64 + 1);
    }
}

#[test]
fn same_padding_equals_burns() {
    // "Same" at stride 1 with odd kernels (what the spatial autoencoders' decoders use) is
    // symmetric and runs on the kernels; with an even kernel it is not, and falls back.
    let device = Device::flex().autodiff();
    for (seed, kernel, input) in [
        (5, [3, 3], [3, 4, 7, 9]),
        (6, [5, 1], [2, 3, 6, 5]),
        (7, [2, 2], [2, 3, 6, 6]),
    ] {
        device.seed(seed);
        let conv = Conv2dConfig::new([input[1], 4], kernel)
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
        let y_dims = conv.forward(x.clone()).dims();
        assert_eq!([y_dims[2], y_dims[3]], [input[2], input[3]]);
        let r = Tensor::<4>::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
        let reference = gradients(&conv, &x, &r, |c, x| c.forward(x));
        let fast = gradients(&conv, &x, &r, conv2d);
        let tol = Tolerance::<f32>::relative(1e-4).set_absolute(1e-4);
        fast.0.assert_approx_eq::<f32>(&reference.0, tol);
        fast.1.assert_approx_eq::<f32>(&reference.1, tol);
        fast.2.assert_approx_eq::<f32>(&reference.2, tol);
        fast.3
            .expect("bias gradient")
            .assert_approx_eq::<f32>(&reference.3.expect("bias gradient"), tol);
    }
}

#[test]
fn a_plain_flex_forward_equals_burns() {
    let device = Device::flex();
    device.seed(3);
    let case = Case {
        x: [2, 3, 9, 9],
        out: 4,
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        groups: 1,
        bias: true,
    };
    let conv = layer(case, &device);
    let x = Tensor::<4>::random(case.x, Distribution::Normal(0.0, 1.0), &device);
    conv2d(&conv, x.clone())
        .into_data()
        .assert_approx_eq::<f32>(&conv.forward(x).into_data(), Tolerance::absolute(1e-4));
}

#[test]
fn what_the_kernels_do_not_cover_falls_back_to_burn() {
    let device = Device::flex().autodiff();
    device.seed(4);
    // Dilation 2 and asymmetric padding: burn's own convolution.
    let conv = Conv2dConfig::new([2, 3], [3, 3])
        .with_dilation([2, 2])
        .with_padding(PaddingConfig2d::Explicit(2, 1, 0, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 2, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    conv2d(&conv, x.clone())
        .into_data()
        .assert_eq(&conv.forward(x).into_data(), true);
}

/// `(output, dx, dgamma, dbeta, running mean, running var)` of `sum(bn(x) * r)`.
fn norm_gradients(
    bn: &BatchNorm,
    x: &Tensor<4>,
    r: &Tensor<4>,
    run: impl Fn(&BatchNorm, Tensor<4>) -> Tensor<4>,
) -> Vec<TensorData> {
    let x = x.clone().require_grad();
    let y = run(bn, x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    vec![
        y.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
        bn.gamma
            .val()
            .grad(&grads)
            .expect("gamma gradient")
            .into_data(),
        bn.beta
            .val()
            .grad(&grads)
            .expect("beta gradient")
            .into_data(),
        bn.running_mean.value().into_data(),
        bn.running_var.value().into_data(),
    ]
}

#[test]
fn batch_norm_and_its_gradients_equal_burns() {
    // The last shape is large enough (over 64 Ki values) for buffers zeroed in parallel.
    for (seed, dims) in [
        [5, 3, 7, 7],
        [1, 4, 3, 5],
        [17, 2, 1, 1],
        [2, 6, 4, 4],
        [8, 16, 24, 24],
    ]
    .into_iter()
    .enumerate()
    {
        let device = Device::flex().autodiff();
        device.seed(seed as u64 + 11);
        let c = dims[1];
        let mut bn = BatchNormConfig::new(c).init(&device);
        // Non-trivial affine parameters and running statistics.
        bn.gamma = Param::from_tensor(Tensor::random([c], Distribution::Normal(1.0, 0.5), &device));
        bn.beta = Param::from_tensor(Tensor::random([c], Distribution::Normal(0.0, 0.5), &device));
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
        let r = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let reference = norm_gradients(&bn.clone(), &x, &r, |bn, x| bn.forward(x));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let fast = pool.install(|| norm_gradients(&bn.clone(), &x, &r, batch_norm));
            let tol = Tolerance::<f32>::relative(1e-4).set_absolute(2e-4);
            for (what, (a, b)) in [
                "output",
                "dx",
                "dgamma",
                "dbeta",
                "running mean",
                "running var",
            ]
            .iter()
            .zip(fast.iter().zip(&reference))
            {
                eprintln!("checking {what} of {dims:?}, {threads} threads");
                a.assert_approx_eq::<f32>(b, tol);
            }
        }
    }
}

/// `(output, dx, dskip, dgamma, dbeta, running mean, running var)` of
/// `sum(act(bn(x) + skip) * r)`, on burn's ops or the fused kernel.
fn fused_gradients(
    bn: &BatchNorm,
    x: &Tensor<4>,
    skip: Option<&Tensor<4>>,
    activation: Activation,
    r: &Tensor<4>,
    fused: bool,
) -> Vec<TensorData> {
    let x = x.clone().require_grad();
    let skip = skip.map(|s| s.clone().require_grad());
    let y = if fused {
        batch_norm_act(bn, x.clone(), skip.clone(), activation)
    } else {
        let y = bn.forward(x.clone());
        let y = match &skip {
            Some(skip) => y + skip.clone(),
            None => y,
        };
        match activation {
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::None => y,
        }
    };
    let grads = (y.clone() * r.clone()).sum().backward();
    let mut out = vec![y.into_data(), x.grad(&grads).expect("dx").into_data()];
    if let Some(skip) = skip {
        out.push(skip.grad(&grads).expect("dskip").into_data());
    }
    out.extend([
        bn.gamma.val().grad(&grads).expect("dgamma").into_data(),
        bn.beta.val().grad(&grads).expect("dbeta").into_data(),
        bn.running_mean.value().into_data(),
        bn.running_var.value().into_data(),
    ]);
    out
}

#[test]
fn fused_batch_norm_add_relu_and_its_gradients_equal_burns() {
    // The last shape is large enough (over 64 Ki values) for buffers zeroed in parallel.
    for (seed, dims) in [[5, 3, 7, 7], [2, 6, 4, 4], [17, 2, 1, 1], [8, 16, 24, 24]]
        .into_iter()
        .enumerate()
    {
        for (with_skip, activation) in [
            (false, Activation::Relu),
            (true, Activation::Relu),
            (true, Activation::None),
            (false, Activation::None),
        ] {
            let device = Device::flex().autodiff();
            device.seed(seed as u64 + 21);
            let c = dims[1];
            let mut bn = BatchNormConfig::new(c).init(&device);
            bn.gamma =
                Param::from_tensor(Tensor::random([c], Distribution::Normal(1.0, 0.5), &device));
            bn.beta =
                Param::from_tensor(Tensor::random([c], Distribution::Normal(0.0, 0.5), &device));
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
            let skip = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let skip = with_skip.then_some(&skip);
            let r = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let reference = fused_gradients(&bn.clone(), &x, skip, activation, &r, false);
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool");
                let fast =
                    pool.install(|| fused_gradients(&bn.clone(), &x, skip, activation, &r, true));
                assert_eq!(fast.len(), reference.len());
                let tol = Tolerance::<f32>::relative(1e-4).set_absolute(2e-4);
                for (index, (a, b)) in fast.iter().zip(&reference).enumerate() {
                    eprintln!(
                        "checking part {index} of {dims:?}, skip {with_skip}, {activation:?}, \
                         {threads} threads"
                    );
                    a.assert_approx_eq::<f32>(b, tol);
                }
            }
        }
    }
}

#[test]
fn batch_norm_in_eval_mode_is_burns() {
    let device = Device::flex();
    let bn = BatchNormConfig::new(3).init(&device);
    let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &device);
    batch_norm(&bn, x.clone())
        .into_data()
        .assert_eq(&bn.forward(x).into_data(), true);
}
