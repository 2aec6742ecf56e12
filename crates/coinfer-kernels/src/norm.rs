//! Batch normalisation in training mode on flat NCHW `f32` buffers: the batch statistics, the
//! normalised output and the backward pass, one pass per step over each `(image, channel)`
//! plane, channels in parallel over the current rayon pool.

use rayon::prelude::*;

use crate::buffer::zeroed;

/// Sizes of one call: `[N, C, H·W]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormShape {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) plane: usize,
}

impl NormShape {
    fn planes<'a>(&self, data: &'a [f32], channel: usize) -> impl Iterator<Item = &'a [f32]> {
        let (c, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |n| &data[(n * c + channel) * plane..][..plane])
    }

    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// Per channel: the batch mean and the biased variance (as burn's `batch_norm_train`); each
/// plane summed in `f32`, the planes in `f64`.
pub(crate) fn stats(shape: &NormShape, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = shape
                .planes(x, c)
                .map(|p| f64::from(p.iter().sum::<f32>()))
                .sum();
            let mean = (sum / shape.count()) as f32;
            let squares: f64 = shape
                .planes(x, c)
                .map(|p| f64::from(p.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()))
                .sum();
            (mean, (squares / shape.count()) as f32)
        })
        .unzip()
}

fn inv_std(var: f32, epsilon: f64) -> f32 {
    (1.0 / (f64::from(var) + epsilon).sqrt()) as f32
}

/// The per-channel `(scale, shift)` of the normalisation: `x · scale + shift`.
fn affine(
    channel: usize,
    gamma: &[f32],
    beta: &[f32],
    (mean, var): (&[f32], &[f32]),
    epsilon: f64,
) -> (f32, f32) {
    let scale = gamma[channel] * inv_std(var[channel], epsilon);
    (scale, beta[channel] - mean[channel] * scale)
}

/// One batch norm in training mode with the batch's own statistics, plus an optional residual
/// input: `(x − mean) / sqrt(var + ε) · γ + β + skip`. What the forward pass and the ReLU's
/// backward share, so that the mask is recomputed with the forward's own arithmetic.
pub(crate) struct NormInput<'a> {
    pub(crate) shape: &'a NormShape,
    pub(crate) x: &'a [f32],
    pub(crate) gamma: &'a [f32],
    pub(crate) beta: &'a [f32],
    /// Per channel: the batch mean and biased variance.
    pub(crate) stats: (&'a [f32], &'a [f32]),
    pub(crate) epsilon: f64,
    /// `x`'s shape, added after the normalisation.
    pub(crate) skip: Option<&'a [f32]>,
}

impl NormInput<'_> {
    /// Plane `i` (image × channel) of the sum before any activation, into `out`.
    fn sum_into(&self, i: usize, out: &mut [f32]) {
        let plane = self.shape.plane;
        let (scale, shift) = affine(
            i % self.shape.channels,
            self.gamma,
            self.beta,
            self.stats,
            self.epsilon,
        );
        for (o, &v) in out.iter_mut().zip(&self.x[i * plane..][..plane]) {
            *o = v * scale + shift;
        }
        if let Some(skip) = self.skip {
            for (o, &s) in out.iter_mut().zip(&skip[i * plane..][..plane]) {
                *o += s;
            }
        }
    }

    /// The sum, through a ReLU when `relu`.
    pub(crate) fn forward(&self, relu: bool) -> Vec<f32> {
        let mut out = zeroed(self.x.len());
        out.par_chunks_mut(self.shape.plane)
            .enumerate()
            .for_each(|(i, out)| {
                self.sum_into(i, out);
                if relu {
                    for o in out.iter_mut() {
                        *o = o.max(0.0);
                    }
                }
            });
        out
    }

    /// `dy` back through the ReLU that followed [`forward`](Self::forward): zero where the sum
    /// was not positive (as burn's `relu` backward), the sum recomputed plane by plane.
    pub(crate) fn through_relu(&self, dy: &[f32]) -> Vec<f32> {
        let mut g = zeroed(self.x.len());
        let plane = self.shape.plane;
        g.par_chunks_mut(plane)
            .zip(dy.par_chunks(plane))
            .enumerate()
            .for_each(|(i, (g, dy))| {
                self.sum_into(i, g);
                for (g, &dy) in g.iter_mut().zip(dy) {
                    *g = if *g > 0.0 { dy } else { 0.0 };
                }
            });
        g
    }
}

/// Gradients of [`NormInput::forward`] without the ReLU (statistics included) with respect to `x`, `γ` and `β`.
pub(crate) fn backward(
    shape: &NormShape,
    x: &[f32],
    gamma: &[f32],
    (mean, var): (&[f32], &[f32]),
    epsilon: f64,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = shape.count();
    // Per channel: Σ dy and Σ dy · x̂.
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (mean[c], inv_std(var[c], epsilon));
            let (mut sum, mut dot) = (0.0f64, 0.0f64);
            for (x, dy) in shape.planes(x, c).zip(shape.planes(dy, c)) {
                sum += f64::from(dy.iter().sum::<f32>());
                dot += f64::from(
                    x.iter()
                        .zip(dy)
                        .map(|(&x, &g)| g * (x - m) * s)
                        .sum::<f32>(),
                );
            }
            (sum as f32, dot as f32)
        })
        .unzip();
    let mut dx = zeroed(x.len());
    let (c, plane) = (shape.channels, shape.plane);
    dx.par_chunks_mut(plane)
        .zip(x.par_chunks(plane).zip(dy.par_chunks(plane)))
        .enumerate()
        .for_each(|(i, (dx, (x, dy)))| {
            let channel = i % c;
            let (m, s) = (mean[channel], inv_std(var[channel], epsilon));
            let mean_dy = (f64::from(dbeta[channel]) / count) as f32;
            let mean_dy_xhat = (f64::from(dgamma[channel]) / count) as f32;
            let scale = gamma[channel] * s;
            for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
                let xhat = (x - m) * s;
                *d = scale * (g - mean_dy - xhat * mean_dy_xhat);
            }
        });
    (dx, dgamma, dbeta)
}
