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
//! all images and positions by a fixed stride permutation; only those rows of `X` are built
//! (im2col on the host), and `XᵀX`, `XᵀY` and the solve run in [`faer`].
//!
//! # Batch-norm statistics
//! [`reestimate_batch_norm`] replaces a batch norm's running mean and variance by the exact
//! per-channel mean and (population) variance of its input over the calibration images.

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use faer::prelude::Solve;
use faer::{Mat, MatRef, Side};

use crate::tensors::values;

/// Ridge strength relative to the mean diagonal of `XᵀX`.
pub const RIDGE: f64 = 1e-3;
/// Rows of the normal equations per unknown weight of one output (before [`MIN_ROWS`]).
pub const ROWS_PER_UNKNOWN: usize = 2;
/// Fewest rows used when that many are available.
pub const MIN_ROWS: usize = 1024;

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// At most `max(ROWS_PER_UNKNOWN · unknowns, MIN_ROWS)` distinct indices out of `0..n`,
/// `i · step mod n` for a prime `step` coprime with `n` (spread over images and positions,
/// deterministic).
fn sample_rows(n: usize, unknowns: usize) -> Vec<usize> {
    let m = n.min((ROWS_PER_UNKNOWN * unknowns).max(MIN_ROWS));
    if m == n {
        return (0..n).collect();
    }
    let step = [7919usize, 7927, 7933, 7937]
        .into_iter()
        .find(|&p| gcd(p, n) == 1)
        .unwrap_or(1);
    (0..m).map(|i| (i * step) % n).collect()
}

/// Solves `(XᵀX + λI) W = XᵀY` for `x: [m, d]`, `y: [m, o]`; returns `W` as `[d, o]`,
/// row-major.
fn ridge_solve(x: MatRef<'_, f32>, y: MatRef<'_, f32>) -> Result<Vec<f32>, String> {
    let d = x.ncols();
    let o = y.ncols();
    let gram: Mat<f32> = x.transpose() * x;
    let cross: Mat<f32> = x.transpose() * y;
    let finite = (0..d).all(|j| {
        (0..d).all(|i| gram[(i, j)].is_finite()) && (0..o).all(|k| cross[(j, k)].is_finite())
    });
    if !finite {
        return Err("the calibration activations are not finite".into());
    }
    let mean_diagonal = (0..d).map(|i| f64::from(gram[(i, i)])).sum::<f64>() / d.max(1) as f64;
    // An all-zero input (dead channels) still gets a well-posed system: W = 0.
    let lambda = if mean_diagonal > 0.0 {
        RIDGE * mean_diagonal
    } else {
        1.0
    };
    let a = Mat::<f64>::from_fn(d, d, |i, j| {
        f64::from(gram[(i, j)]) + if i == j { lambda } else { 0.0 }
    });
    let b = Mat::<f64>::from_fn(d, o, |i, j| f64::from(cross[(i, j)]));
    let llt = a
        .llt(Side::Lower)
        .map_err(|e| format!("the normal equations are not positive definite: {e:?}"))?;
    let w = llt.solve(&b);
    Ok((0..d)
        .flat_map(|i| (0..o).map(move |j| (i, j)))
        .map(|(i, j)| w[(i, j)] as f32)
        .collect())
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
    let [n, ci, h, w] = input.dims();
    let [tn, to, oh, ow] = target.dims();
    if ci != c || tn != n || to != o {
        return Err(format!(
            "input {:?} / target {:?} do not match a {c} → {o} convolution",
            input.dims(),
            target.dims()
        ));
    }
    let [ph, pw] = symmetric_padding(conv)?;
    let [sh, sw] = conv.stride;
    let [dh, dw] = conv.dilation;
    let device = input.device();
    let input = values(input).map_err(|e| e.to_string())?;
    let target = values(target).map_err(|e| e.to_string())?;

    // im2col of the sampled output positions only; column order (channel, ky, kx) is the
    // order of the weight's [C, kh, kw] dimensions.
    let d = c * kh * kw;
    let positions = oh * ow;
    let rows = sample_rows(n * positions, d);
    let mut x = vec![0f32; rows.len() * d];
    let mut y = vec![0f32; rows.len() * o];
    for ((&row, x_row), y_row) in rows
        .iter()
        .zip(x.chunks_exact_mut(d))
        .zip(y.chunks_exact_mut(o))
    {
        let (image, position) = (row / positions, row % positions);
        let (oy, ox) = (position / ow, position % ow);
        let mut col = 0;
        for channel in 0..c {
            let plane = &input[(image * c + channel) * h * w..][..h * w];
            for ky in 0..kh {
                let iy = (oy * sh + ky * dh).checked_sub(ph).filter(|&iy| iy < h);
                for kx in 0..kw {
                    let ix = (ox * sw + kx * dw).checked_sub(pw).filter(|&ix| ix < w);
                    if let (Some(iy), Some(ix)) = (iy, ix) {
                        x_row[col] = plane[iy * w + ix];
                    }
                    col += 1;
                }
            }
        }
        for (out, value) in y_row.iter_mut().enumerate() {
            *value = target[(image * o + out) * positions + position];
        }
    }
    let m = rows.len();
    let solution = ridge_solve(
        MatRef::from_row_major_slice(&x, m, d),
        MatRef::from_row_major_slice(&y, m, o),
    )?;
    let weight = Tensor::<2>::from_data(TensorData::new(solution, [d, o]), &device)
        .transpose()
        .reshape([o, c, kh, kw]);
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
    let device = input.device();
    let with_bias = linear.bias.is_some();
    let d = features + usize::from(with_bias);
    let input = values(input).map_err(|e| e.to_string())?;
    let target = values(target).map_err(|e| e.to_string())?;
    // A column of ones fits the bias with the weights.
    let x = Mat::<f32>::from_fn(n, d, |i, j| {
        if j < features {
            input[i * features + j]
        } else {
            1.0
        }
    });
    let solution = ridge_solve(
        x.as_ref(),
        MatRef::from_row_major_slice(&target, n, outputs),
    )?;
    let (weight, bias) = solution.split_at(features * outputs);
    Ok(Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(weight.to_vec(), [features, outputs]),
            &device,
        )),
        bias: with_bias.then(|| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(bias.to_vec(), [outputs]),
                &device,
            ))
        }),
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
