//! Least-squares reconstruction of a layer and exact batch-norm statistics, the two tools of
//! pruning recovery ([`crate::recover`]).
//!
//! # Reconstruction
//! After pruning removes input channels of a layer (its *consumer*), the layer's remaining
//! weights are refitted so that, on the calibration images, its output stays as close as
//! possible to the **dense** network's output of that layer (He et al. 2017, *Channel Pruning
//! for Accelerating Very Deep Neural Networks*; ThiNet; AMC):
//!
//! `W = argmin ‖X W − Y‖² + λ ‖W‖²`, solved from the normal equations `(XᵀX + λI) W = XᵀY`
//! by a Cholesky factorisation ([`faer`]),
//!
//! where the rows of `X` are the layer's input patches (im2col of the kept input channels) in
//! the **pruned** network, so errors of earlier layers are compensated, and the rows of `Y` are
//! the dense network's pre-batch-norm outputs at the same positions. `λ` is
//! [`RIDGE`] times the mean diagonal of `XᵀX`. To keep the cost down, at most
//! `max(ROWS_PER_UNKNOWN · d, MIN_ROWS)` rows (`d` unknowns per output) are used, spread over
//! all images and positions by a fixed stride permutation.
//!
//! # Batch-norm statistics
//! [`reestimate_batch_norm`] replaces a batch norm's running mean and variance by the exact
//! per-channel mean and (population) variance of its input over the calibration images.

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use faer::prelude::Solve;
use faer::{Mat, Side};

use crate::tensors::values;

/// Ridge strength relative to the mean diagonal of `XᵀX`.
pub const RIDGE: f64 = 1e-3;
/// Rows of the normal equations per unknown weight of one output (before [`MIN_ROWS`]).
pub const ROWS_PER_UNKNOWN: usize = 8;
/// Fewest rows used when that many are available.
pub const MIN_ROWS: usize = 2048;

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// At most `max(ROWS_PER_UNKNOWN · unknowns, MIN_ROWS)` of the `n` rows of `x` and `y`,
/// picked as `i · step mod n` for a prime `step` coprime with `n` (distinct rows spread over
/// images and positions, deterministic).
fn sample_rows(x: Tensor<2>, y: Tensor<2>, unknowns: usize) -> (Tensor<2>, Tensor<2>) {
    let [n, _] = x.dims();
    let m = n.min((ROWS_PER_UNKNOWN * unknowns).max(MIN_ROWS));
    if m == n {
        return (x, y);
    }
    let step = [7919usize, 7927, 7933, 7937]
        .into_iter()
        .find(|&p| gcd(p, n) == 1)
        .unwrap_or(1);
    let rows: Vec<i32> = (0..m).map(|i| ((i * step) % n) as i32).collect();
    let index = Tensor::<1, Int>::from_ints(TensorData::new(rows, [m]), &x.device());
    (x.select(0, index.clone()), y.select(0, index))
}

/// Solves `(XᵀX + λI) W = XᵀY` for `x: [n, d]`, `y: [n, o]`; returns `W` as `[d, o]`.
fn ridge_solve(x: Tensor<2>, y: Tensor<2>) -> Result<Tensor<2>, String> {
    let [_, d] = x.dims();
    let [_, o] = y.dims();
    let device = x.device();
    let xt = x.clone().transpose();
    let gram = values(xt.clone().matmul(x)).map_err(|e| e.to_string())?;
    let cross = values(xt.matmul(y)).map_err(|e| e.to_string())?;
    if gram.iter().chain(&cross).any(|v| !v.is_finite()) {
        return Err("the calibration activations are not finite".into());
    }
    let mean_diagonal = (0..d).map(|i| f64::from(gram[i * d + i])).sum::<f64>() / d as f64;
    // An all-zero input (dead channels) still gets a well-posed system: W = 0.
    let lambda = if mean_diagonal > 0.0 {
        RIDGE * mean_diagonal
    } else {
        1.0
    };
    let a = Mat::<f64>::from_fn(d, d, |i, j| {
        f64::from(gram[i * d + j]) + if i == j { lambda } else { 0.0 }
    });
    let b = Mat::<f64>::from_fn(d, o, |i, j| f64::from(cross[i * o + j]));
    let llt = a
        .llt(Side::Lower)
        .map_err(|e| format!("the normal equations are not positive definite: {e:?}"))?;
    let w = llt.solve(&b);
    let data: Vec<f32> = (0..d)
        .flat_map(|i| (0..o).map(move |j| (i, j)))
        .map(|(i, j)| w[(i, j)] as f32)
        .collect();
    Ok(Tensor::from_data(TensorData::new(data, [d, o]), &device))
}

/// The symmetric `[height, width]` padding of `conv`.
fn symmetric_padding(conv: &Conv2d) -> Result<[usize; 2], String> {
    match conv.padding {
        PaddingConfig2d::Valid => Ok([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Ok([top, left])
        }
        ref other => Err(format!("padding {other:?} is not supported")),
    }
}

/// `conv` (whose input channels may have been pruned) with weights refitted so that
/// `conv(input) ≈ target` in the least-squares sense (see the [module docs](self)).
///
/// `input` is `[N, C, H, W]` with `C` the conv's (kept) input channels; `target` is
/// `[N, O, H', W']`, the dense layer's output restricted to the conv's output filters.
pub(crate) fn fit_conv(
    conv: &Conv2d,
    input: Tensor<4>,
    target: Tensor<4>,
) -> Result<Conv2d, String> {
    let [o, c, kh, kw] = conv.weight.dims();
    if conv.groups != 1 {
        return Err(format!("grouped convolutions ({} groups)", conv.groups));
    }
    let padding = symmetric_padding(conv)?;
    let patches = unfold4d(
        input,
        [kh, kw],
        UnfoldOptions::new(conv.stride, padding, conv.dilation),
    );
    let [n, d, positions] = patches.dims();
    let [tn, to, th, tw] = target.dims();
    if [tn, to, th * tw] != [n, o, positions] {
        return Err(format!(
            "target {:?} does not match {n} images × {o} filters × {positions} positions",
            target.dims()
        ));
    }
    let x = patches.swap_dims(1, 2).reshape([n * positions, d]);
    let y = target.permute([0, 2, 3, 1]).reshape([n * positions, o]);
    let (x, y) = sample_rows(x, y, d);
    let weight = ridge_solve(x, y)?.transpose().reshape([o, c, kh, kw]);
    Ok(Conv2d {
        weight: Param::from_tensor(weight),
        bias: conv.bias.clone(),
        stride: conv.stride,
        kernel_size: conv.kernel_size,
        dilation: conv.dilation,
        groups: conv.groups,
        padding: conv.padding.clone(),
    })
}

/// `linear` (whose input rows may have been pruned) with weight and bias refitted so that
/// `linear(input) ≈ target`; `input` is `[N, in]`, `target` `[N, out]` (bias included).
pub(crate) fn fit_linear(
    linear: &Linear,
    input: Tensor<2>,
    target: Tensor<2>,
) -> Result<Linear, String> {
    let [features, outputs] = linear.weight.dims();
    let [n, f] = input.dims();
    if f != features || target.dims() != [n, outputs] {
        return Err(format!(
            "input {:?} / target {:?} do not match a {features} → {outputs} layer",
            input.dims(),
            target.dims()
        ));
    }
    let Some(bias) = &linear.bias else {
        let weight = ridge_solve(input, target)?;
        return Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: None,
        });
    };
    let ones = Tensor::<2>::ones([n, 1], &input.device());
    let solution = ridge_solve(Tensor::cat(vec![input, ones], 1), target)?;
    let weight = solution.clone().slice([0..features, 0..outputs]);
    let new_bias = solution
        .slice([features..features + 1, 0..outputs])
        .reshape([outputs]);
    debug_assert_eq!(bias.dims(), [outputs]);
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(new_bias)),
    })
}

/// `bn` with its running mean and variance replaced by the exact per-channel mean and
/// population variance of `input` (`[N, C, H, W]`, the batch norm's input on the calibration
/// images); γ and β are kept.
pub(crate) fn reestimate_batch_norm(bn: &BatchNorm, input: &Tensor<4>) -> BatchNorm {
    let [n, c, h, w] = input.dims();
    let flat = input.clone().swap_dims(0, 1).reshape([c, n * h * w]);
    let mean = flat.clone().mean_dim(1);
    let var = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
    BatchNorm {
        gamma: bn.gamma.clone(),
        beta: bn.beta.clone(),
        training: bn.training.clone(),
        running_mean: RunningState::new(mean.reshape([c]).detach()),
        running_var: RunningState::new(var.reshape([c]).detach()),
        momentum: bn.momentum,
        epsilon: bn.epsilon,
    }
}
