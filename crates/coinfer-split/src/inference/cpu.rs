//! The inference form's own CPU kernels: a folded network run on plain `f32` buffers.
//!
//! burn-flex runs every convolution as its own op: it converts the activation to NHWC, builds
//! an im2col tile, calls a matrix product and converts back, and it allocates each op's output
//! on every call. On the tiny activations of a device half (a few thousand values) that
//! bookkeeping, not arithmetic, is most of the time. This module runs the same folded network
//! with the activation kept in one layout from the first block to the last:
//!
//! - **Layout CNHW**: `data[((c · batch + b) · height + h) · width + w]`. Channels are the
//!   outer dimension, so a convolution is one matrix product
//!   `out[C_out, B·H·W] = W[C_out, C_in·k·k] · cols[C_in·k·k, B·H·W]` over the whole batch, and
//!   a 1×1 stride-1 convolution needs no im2col at all (its input *is* `cols`). At batch 1 it
//!   is NCHW, so tensors cross the burn boundary without a transpose.
//! - **Fused epilogues**: the output starts as the bias (plus the residual input for the last
//!   convolution of a block), the product accumulates into it, and the activation (ReLU or
//!   ReLU6) is applied in the same pass over the buffer.
//! - **Matrix products in [`faer`]**, which picks its kernels at run time (AVX-512 or AVX2 on
//!   x86-64, NEON on Arm, a small-matrix kernel for tiny products). With more than one thread
//!   in the current rayon pool ([`crate::Threads`]), large products are split by columns.
//! - **Depthwise convolutions, pooling and flattening** are direct loops over planes.
//!
//! Only the CPU backends (flex, ndarray) without autodiff take this path; other devices (wgpu)
//! run the folded network as burn ops. Both give the training form's logits to float rounding
//! (tests at every split point of every zoo backbone, in `inference.rs`).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::SplitError;
use crate::spec::{BlockSpec, FeatureShape, NetSpec};

/// Below this many multiply-accumulates a matrix product is not split across threads.
const PARALLEL_MACS: usize = 1 << 20;

/// The activation after a convolution or linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// None (the linear bottleneck of an inverted residual, a classifier head).
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Identity => {}
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Relu6 => values.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
        }
    }
}

/// An activation in CNHW layout (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planes {
    pub(crate) data: Vec<f32>,
    pub(crate) channels: usize,
    pub(crate) batch: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
}

impl Planes {
    /// From an NCHW buffer of `[batch, channels, height, width]`.
    pub(crate) fn from_nchw(nchw: &[f32], dims: [usize; 4]) -> Planes {
        let [batch, channels, height, width] = dims;
        Planes {
            data: swap_outer(nchw, batch, channels, height * width),
            channels,
            batch,
            height,
            width,
        }
    }

    /// Back to NCHW, with its `[batch, channels, height, width]`.
    pub(crate) fn into_nchw(self) -> (Vec<f32>, [usize; 4]) {
        let plane = self.height * self.width;
        let dims = [self.batch, self.channels, self.height, self.width];
        if self.batch == 1 || self.channels == 1 {
            return (self.data, dims);
        }
        (
            swap_outer(&self.data, self.channels, self.batch, plane),
            dims,
        )
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// `[outer, inner, plane]` → `[inner, outer, plane]`.
fn swap_outer(data: &[f32], outer: usize, inner: usize, plane: usize) -> Vec<f32> {
    if outer == 1 || inner == 1 {
        return data.to_vec();
    }
    let mut out = vec![0.0; data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let src = &data[(o * inner + i) * plane..][..plane];
            out[(i * outer + o) * plane..][..plane].copy_from_slice(src);
        }
    }
    out
}

/// `dst[m, n] += lhs[m, k] · rhs[k, n]`, split by columns over the current rayon pool when the
/// product is large enough to pay for it.
fn matmul_add(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    let threads = rayon::current_num_threads();
    let macs = dst.nrows() * dst.ncols() * lhs.ncols();
    if threads <= 1 || macs < PARALLEL_MACS || dst.ncols() < 2 * 64 {
        matmul(dst, Accum::Add, lhs, rhs, 1.0, Par::Seq);
        return;
    }
    split_columns(dst, lhs, rhs, threads);
}

fn split_columns(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, parts: usize) {
    if parts <= 1 || dst.ncols() < 2 * 64 {
        matmul(dst, Accum::Add, lhs, rhs, 1.0, Par::Seq);
        return;
    }
    let left_parts = parts / 2;
    let at = dst.ncols() * left_parts / parts;
    let (left, right) = dst.split_at_col_mut(at);
    let (rhs_left, rhs_right) = rhs.split_at_col(at);
    rayon::join(
        || split_columns(left, lhs, rhs_left, left_parts),
        || split_columns(right, lhs, rhs_right, parts - left_parts),
    );
}

/// The output columns `ow` whose input column `ow · stride + offset − padding` lies in
/// `0..width`, as a range.
fn valid_columns(
    out_width: usize,
    width: usize,
    stride: usize,
    offset: usize,
    padding: usize,
) -> std::ops::Range<usize> {
    let first = padding.saturating_sub(offset).div_ceil(stride);
    let last = if width + padding > offset {
        ((width - 1 + padding - offset) / stride + 1).min(out_width)
    } else {
        0
    };
    first..last.max(first)
}

/// Output size of a window of `kernel` at `stride` with `padding` on both sides.
fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

/// A folded convolution on the host: weight `[out, in_per_group · k · k]`, bias `[out]`.
#[derive(Debug, Clone)]
pub(crate) struct CpuConv {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) out_channels: usize,
    pub(crate) in_channels: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    /// One filter per channel (groups = channels) instead of a dense convolution.
    pub(crate) depthwise: bool,
}

impl CpuConv {
    /// `activation(conv(x) + bias + add)`.
    fn forward(&self, x: &Planes, add: Option<&Planes>, activation: Activation) -> Planes {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let out_h = out_size(x.height, k, s, p);
        let out_w = out_size(x.width, k, s, p);
        let n = x.batch * out_h * out_w;
        let mut out = vec![0.0; self.out_channels * n];
        for (o, row) in out.chunks_exact_mut(n).enumerate() {
            match add {
                Some(add) => {
                    let skip = &add.data[o * n..][..n];
                    row.iter_mut()
                        .zip(skip)
                        .for_each(|(d, &v)| *d = v + self.bias[o]);
                }
                None => row.fill(self.bias[o]),
            }
        }
        if self.depthwise {
            self.depthwise_into(x, &mut out, out_h, out_w);
        } else {
            let depth = self.in_channels * k * k;
            let lhs = MatRef::from_row_major_slice(&self.weight, self.out_channels, depth);
            let dst = MatMut::from_row_major_slice_mut(&mut out, self.out_channels, n);
            if k == 1 && s == 1 && p == 0 {
                matmul_add(dst, lhs, MatRef::from_row_major_slice(&x.data, depth, n));
            } else {
                let cols = im2col(x, k, s, p, out_h, out_w);
                matmul_add(dst, lhs, MatRef::from_row_major_slice(&cols, depth, n));
            }
        }
        activation.apply(&mut out);
        Planes {
            data: out,
            channels: self.out_channels,
            batch: x.batch,
            height: out_h,
            width: out_w,
        }
    }

    /// Accumulates a depthwise convolution (one `k × k` filter per channel) into `out`.
    fn depthwise_into(&self, x: &Planes, out: &mut [f32], out_h: usize, out_w: usize) {
        let (k, s) = (self.kernel, self.stride);
        let padded = padded_planes(x, self.padding);
        let wp = x.width + 2 * self.padding;
        let plane = (x.height + 2 * self.padding) * wp;
        let out_plane = out_h * out_w;
        for (index, (src, dst)) in padded
            .chunks_exact(plane)
            .zip(out.chunks_exact_mut(out_plane))
            .enumerate()
        {
            let filter = &self.weight[index / x.batch * k * k..][..k * k];
            for (oh, dst_row) in dst.chunks_exact_mut(out_w).enumerate() {
                for kh in 0..k {
                    let src_row = &src[(oh * s + kh) * wp..];
                    for kw in 0..k {
                        let weight = filter[kh * k + kw];
                        if s == 1 {
                            dst_row
                                .iter_mut()
                                .zip(&src_row[kw..kw + out_w])
                                .for_each(|(d, &v)| *d += weight * v);
                        } else {
                            dst_row
                                .iter_mut()
                                .zip(src_row[kw..].iter().step_by(s))
                                .for_each(|(d, &v)| *d += weight * v);
                        }
                    }
                }
            }
        }
    }
}

/// Every `height × width` plane of `x` with `padding` zeros on each side (the input itself
/// when there is none).
fn padded_planes(x: &Planes, padding: usize) -> std::borrow::Cow<'_, [f32]> {
    if padding == 0 {
        return std::borrow::Cow::Borrowed(&x.data);
    }
    let (h, w) = (x.height, x.width);
    let wp = w + 2 * padding;
    let plane = (h + 2 * padding) * wp;
    let mut padded = vec![0.0; x.channels * x.batch * plane];
    for (src, dst) in x
        .data
        .chunks_exact(h * w)
        .zip(padded.chunks_exact_mut(plane))
    {
        for (ih, row) in src.chunks_exact(w).enumerate() {
            dst[(ih + padding) * wp + padding..][..w].copy_from_slice(row);
        }
    }
    std::borrow::Cow::Owned(padded)
}

/// `[C·k·k, B·H_out·W_out]`: row `(c, kh, kw)` holds, for every output position, the input
/// value its window reads at `(kh, kw)` (zero in the padding).
///
/// The windows' read positions are computed once per `(kh, kw)` into a table of offsets into a
/// zero-padded channel; each row is then a plain gather, with no per-pixel bounds logic.
/// Activations of a few pixels per row (a 4×4 plane) make per-row bookkeeping, not copying,
/// the cost to avoid.
fn im2col(x: &Planes, k: usize, s: usize, p: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let padded = padded_planes(x, p);
    let wp = x.width + 2 * p;
    let plane = (x.height + 2 * p) * wp;
    let n = x.batch * out_h * out_w;
    let mut offsets = Vec::with_capacity(k * k * n);
    for kh in 0..k {
        for kw in 0..k {
            for b in 0..x.batch {
                for oh in 0..out_h {
                    let row = b * plane + (oh * s + kh) * wp + kw;
                    offsets.extend((0..out_w).map(|ow| row + ow * s));
                }
            }
        }
    }
    let mut cols = Vec::with_capacity(x.channels * k * k * n);
    for channel in padded.chunks_exact(x.batch * plane) {
        cols.extend(offsets.iter().map(|&i| channel[i]));
    }
    cols
}

/// A fully connected layer on the host, weight `[in, out]` as burn stores it.
#[derive(Debug, Clone)]
pub(crate) struct CpuLinear {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Option<Vec<f32>>,
    pub(crate) in_features: usize,
    pub(crate) out_features: usize,
    pub(crate) relu: bool,
}

impl CpuLinear {
    fn forward(&self, x: &Planes) -> Planes {
        let batch = x.batch;
        let mut out = vec![0.0; self.out_features * batch];
        if let Some(bias) = &self.bias {
            for (row, &b) in out.chunks_exact_mut(batch).zip(bias) {
                row.fill(b);
            }
        }
        // out[o, b] += Wᵀ[o, i] · x[i, b]; W is [in, out] row-major, so Wᵀ is a strided view.
        let lhs = MatRef::from_row_major_slice(&self.weight, self.in_features, self.out_features)
            .transpose();
        let rhs = MatRef::from_row_major_slice(&x.data, self.in_features, batch);
        let dst = MatMut::from_row_major_slice_mut(&mut out, self.out_features, batch);
        matmul_add(dst, lhs, rhs);
        if self.relu {
            Activation::Relu.apply(&mut out);
        }
        Planes {
            data: out,
            channels: self.out_features,
            batch,
            height: 1,
            width: 1,
        }
    }
}

/// A pooling window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

/// One block of a [`CpuNetwork`].
#[derive(Debug, Clone)]
pub(crate) enum CpuBlock {
    ConvRelu(CpuConv),
    Basic {
        conv1: CpuConv,
        /// Its bias carries the projection's folded bias too.
        conv2: CpuConv,
        /// Projection shortcut with a zero bias, or identity.
        shortcut: Option<CpuConv>,
    },
    DepthwiseSeparable {
        depthwise: CpuConv,
        pointwise: CpuConv,
    },
    InvertedResidual {
        expand: CpuConv,
        depthwise: CpuConv,
        project: CpuConv,
        residual: bool,
    },
    MaxPool(Window),
    /// Padding counts in the average (PyTorch's and burn's default).
    AvgPool(Window),
    GlobalAvgPool,
    Flatten,
    Linear(CpuLinear),
}

impl CpuBlock {
    fn forward(&self, x: Planes) -> Planes {
        match self {
            CpuBlock::ConvRelu(conv) => conv.forward(&x, None, Activation::Relu),
            CpuBlock::Basic {
                conv1,
                conv2,
                shortcut,
            } => {
                let y = conv1.forward(&x, None, Activation::Relu);
                match shortcut {
                    Some(projection) => {
                        let skip = projection.forward(&x, None, Activation::Identity);
                        conv2.forward(&y, Some(&skip), Activation::Relu)
                    }
                    None => conv2.forward(&y, Some(&x), Activation::Relu),
                }
            }
            CpuBlock::DepthwiseSeparable {
                depthwise,
                pointwise,
            } => {
                let y = depthwise.forward(&x, None, Activation::Relu6);
                pointwise.forward(&y, None, Activation::Relu)
            }
            CpuBlock::InvertedResidual {
                expand,
                depthwise,
                project,
                residual,
            } => {
                let y = expand.forward(&x, None, Activation::Relu6);
                let y = depthwise.forward(&y, None, Activation::Relu6);
                project.forward(&y, residual.then_some(&x), Activation::Identity)
            }
            CpuBlock::MaxPool(window) => pool(&x, *window, f32::NEG_INFINITY, f32::max, |m| m),
            CpuBlock::AvgPool(window) => {
                let area = (window.kernel * window.kernel) as f32;
                pool(&x, *window, 0.0, |a, v| a + v, |sum| sum / area)
            }
            CpuBlock::GlobalAvgPool => {
                let plane = x.plane();
                let data = x
                    .data
                    .chunks_exact(plane)
                    .map(|values| values.iter().sum::<f32>() / plane as f32)
                    .collect();
                Planes {
                    data,
                    channels: x.channels,
                    batch: x.batch,
                    height: 1,
                    width: 1,
                }
            }
            CpuBlock::Flatten => flatten(x),
            CpuBlock::Linear(linear) => linear.forward(&x),
        }
    }
}

/// A pooling window over every plane: `finish(fold(init, values in the window))`.
fn pool(
    x: &Planes,
    window: Window,
    init: f32,
    fold: impl Fn(f32, f32) -> f32,
    finish: impl Fn(f32) -> f32,
) -> Planes {
    let Window {
        kernel: k,
        stride: s,
        padding: p,
    } = window;
    let (h, w) = (x.height, x.width);
    let out_h = out_size(h, k, s, p);
    let out_w = out_size(w, k, s, p);
    let mut data = vec![init; x.channels * x.batch * out_h * out_w];
    for (src, dst) in x
        .data
        .chunks_exact(h * w)
        .zip(data.chunks_exact_mut(out_h * out_w))
    {
        for oh in 0..out_h {
            let dst_row = &mut dst[oh * out_w..][..out_w];
            for kh in 0..k {
                let Some(ih) = (oh * s + kh).checked_sub(p).filter(|&ih| ih < h) else {
                    continue;
                };
                let src_row = &src[ih * w..][..w];
                for kw in 0..k {
                    for ow in valid_columns(out_w, w, s, kw, p) {
                        dst_row[ow] = fold(dst_row[ow], src_row[ow * s + kw - p]);
                    }
                }
            }
        }
        dst.iter_mut().for_each(|v| *v = finish(*v));
    }
    Planes {
        data,
        channels: x.channels,
        batch: x.batch,
        height: out_h,
        width: out_w,
    }
}

/// `[C, B, H, W]` → `[C·H·W, B, 1, 1]`, feature `c·H·W + h·W + w` as burn's NCHW reshape.
fn flatten(x: Planes) -> Planes {
    let plane = x.plane();
    let features = x.channels * plane;
    let batch = x.batch;
    let data = if plane == 1 || batch == 1 {
        x.data
    } else {
        let mut data = vec![0.0; x.data.len()];
        for c in 0..x.channels {
            for b in 0..batch {
                let src = &x.data[(c * batch + b) * plane..][..plane];
                for (i, &v) in src.iter().enumerate() {
                    data[(c * plane + i) * batch + b] = v;
                }
            }
        }
        data
    };
    Planes {
        data,
        channels: features,
        batch,
        height: 1,
        width: 1,
    }
}

/// A whole folded network (or half) on the host.
#[derive(Debug, Clone)]
pub(crate) struct CpuNetwork {
    pub(crate) blocks: Vec<CpuBlock>,
}

impl CpuNetwork {
    /// Runs every block.
    pub(crate) fn forward(&self, x: Planes) -> Planes {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }

    /// Checks each block's weights against the shapes `spec` implies, so that a forward never
    /// indexes out of bounds.
    pub(crate) fn check(&self, spec: &NetSpec) -> Result<(), SplitError> {
        let shapes = spec.shapes()?;
        if shapes.len() != self.blocks.len() + 1 {
            return Err(SplitError::Weights(format!(
                "{} CPU blocks for a spec of {} blocks",
                self.blocks.len(),
                spec.blocks.len()
            )));
        }
        for (index, ((block, input), block_spec)) in self
            .blocks
            .iter()
            .zip(&shapes)
            .zip(&spec.blocks)
            .enumerate()
        {
            check_block(block, block_spec, *input, index)?;
        }
        Ok(())
    }
}

fn check_conv(conv: &CpuConv, in_channels: usize, what: &str) -> Result<usize, SplitError> {
    let per_filter = if conv.depthwise { 1 } else { in_channels } * conv.kernel * conv.kernel;
    let fits = conv.in_channels == in_channels
        && (!conv.depthwise || conv.out_channels == in_channels)
        && conv.weight.len() == conv.out_channels * per_filter
        && conv.bias.len() == conv.out_channels
        && conv.kernel > 0
        && conv.stride > 0;
    if fits {
        Ok(conv.out_channels)
    } else {
        Err(SplitError::Weights(format!(
            "{what}: weights of {} values for {} filters do not fit {in_channels} input channels",
            conv.weight.len(),
            conv.out_channels
        )))
    }
}

fn check_block(
    block: &CpuBlock,
    spec: &BlockSpec,
    input: FeatureShape,
    index: usize,
) -> Result<(), SplitError> {
    let what = |part: &str| format!("block {index} ({part})");
    let c = input.channels;
    match block {
        CpuBlock::ConvRelu(conv) => {
            check_conv(conv, c, &what("conv"))?;
        }
        CpuBlock::Basic {
            conv1,
            conv2,
            shortcut,
        } => {
            let mid = check_conv(conv1, c, &what("conv1"))?;
            let out = check_conv(conv2, mid, &what("conv2"))?;
            match shortcut {
                Some(projection) => {
                    if check_conv(projection, c, &what("shortcut"))? != out {
                        return Err(SplitError::Weights(what("shortcut width")));
                    }
                }
                None if out != c => return Err(SplitError::Weights(what("identity shortcut"))),
                None => {}
            }
        }
        CpuBlock::DepthwiseSeparable {
            depthwise,
            pointwise,
        } => {
            let mid = check_conv(depthwise, c, &what("depthwise"))?;
            check_conv(pointwise, mid, &what("pointwise"))?;
        }
        CpuBlock::InvertedResidual {
            expand,
            depthwise,
            project,
            residual,
        } => {
            let mid = check_conv(expand, c, &what("expand"))?;
            let mid = check_conv(depthwise, mid, &what("depthwise"))?;
            let out = check_conv(project, mid, &what("project"))?;
            if *residual && out != c {
                return Err(SplitError::Weights(what("residual")));
            }
        }
        CpuBlock::Linear(linear) => {
            let fits = linear.in_features == c
                && linear.weight.len() == linear.in_features * linear.out_features
                && linear
                    .bias
                    .as_ref()
                    .is_none_or(|b| b.len() == linear.out_features);
            if !fits {
                return Err(SplitError::Weights(what("linear")));
            }
        }
        CpuBlock::MaxPool(window) | CpuBlock::AvgPool(window) => {
            if window.kernel == 0 || window.stride == 0 {
                return Err(SplitError::Weights(what("pool window")));
            }
        }
        CpuBlock::GlobalAvgPool | CpuBlock::Flatten => {}
    }
    // The block kinds must agree too (a max pool where the spec says average would run).
    let same_kind = matches!(
        (block, spec),
        (CpuBlock::ConvRelu(_), BlockSpec::ConvBnRelu { .. })
            | (CpuBlock::Basic { .. }, BlockSpec::BasicBlock { .. })
            | (
                CpuBlock::DepthwiseSeparable { .. },
                BlockSpec::DepthwiseSeparable { .. }
            )
            | (
                CpuBlock::InvertedResidual { .. },
                BlockSpec::InvertedResidual { .. }
            )
            | (CpuBlock::MaxPool(_), BlockSpec::MaxPool { .. })
            | (CpuBlock::AvgPool(_), BlockSpec::AvgPool { .. })
            | (CpuBlock::GlobalAvgPool, BlockSpec::GlobalAvgPool)
            | (CpuBlock::Flatten, BlockSpec::Flatten)
            | (CpuBlock::Linear(_), BlockSpec::Linear { .. })
    );
    if same_kind {
        Ok(())
    } else {
        Err(SplitError::Weights(what(spec.kind())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_columns_cover_exactly_the_in_range_reads() {
        for width in 1..9 {
            for stride in 1..4 {
                for padding in 0..3 {
                    for kernel in 1..4 {
                        if width + 2 * padding < kernel {
                            continue;
                        }
                        let out_w = out_size(width, kernel, stride, padding);
                        for offset in 0..kernel {
                            let range = valid_columns(out_w, width, stride, offset, padding);
                            for ow in 0..out_w {
                                let read = (ow * stride + offset) as isize - padding as isize;
                                let inside = read >= 0 && (read as usize) < width;
                                assert_eq!(
                                    range.contains(&ow),
                                    inside,
                                    "w{width} s{stride} p{padding} k{kernel} o{offset} ow{ow}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn conv(out_channels: usize, in_channels: usize, weights: usize) -> CpuConv {
        CpuConv {
            weight: vec![0.5; weights],
            bias: vec![0.0; out_channels],
            out_channels,
            in_channels,
            kernel: 3,
            stride: 1,
            padding: 1,
            depthwise: false,
        }
    }

    fn one_conv_spec() -> NetSpec {
        NetSpec {
            name: "one-conv".into(),
            input: FeatureShape::image(2, 5, 5),
            blocks: vec![BlockSpec::ConvBnRelu {
                out_channels: 4,
                kernel: 3,
                stride: 1,
                padding: 1,
            }],
        }
    }

    #[test]
    fn weights_that_do_not_fit_the_spec_are_refused() {
        let fits = CpuNetwork {
            blocks: vec![CpuBlock::ConvRelu(conv(4, 2, 4 * 2 * 9))],
        };
        assert!(fits.check(&one_conv_spec()).is_ok());
        for wrong in [
            CpuBlock::ConvRelu(conv(4, 2, 4 * 2 * 9 - 1)),
            CpuBlock::ConvRelu(conv(4, 3, 4 * 3 * 9)),
            CpuBlock::GlobalAvgPool,
        ] {
            let net = CpuNetwork {
                blocks: vec![wrong],
            };
            let err = net.check(&one_conv_spec()).unwrap_err();
            assert!(
                matches!(&err, SplitError::Weights(what) if what.contains("block 0")),
                "{err}"
            );
        }
        let too_many = CpuNetwork {
            blocks: vec![CpuBlock::ConvRelu(conv(4, 2, 72)), CpuBlock::Flatten],
        };
        assert!(matches!(
            too_many.check(&one_conv_spec()),
            Err(SplitError::Weights(_))
        ));
    }

    #[test]
    fn a_convolution_adds_its_bias_residual_and_activation() {
        // 1×1 convolution of weight 2 on one channel, bias −1, plus a residual of 0.5, ReLU6:
        // relu6(2·x − 1 + 0.5) on x = [0, 1, 2, 3] gives [0, 1.5, 3.5, 5.5].
        let conv = CpuConv {
            weight: vec![2.0],
            bias: vec![-1.0],
            out_channels: 1,
            in_channels: 1,
            kernel: 1,
            stride: 1,
            padding: 0,
            depthwise: false,
        };
        let x = Planes {
            data: vec![0.0, 1.0, 2.0, 3.0],
            channels: 1,
            batch: 1,
            height: 2,
            width: 2,
        };
        let skip = Planes {
            data: vec![0.5; 4],
            ..x.clone()
        };
        let y = conv.forward(&x, Some(&skip), Activation::Relu6);
        assert_eq!(y.data, vec![0.0, 1.5, 3.5, 5.5]);
        let big = Planes {
            data: vec![10.0; 4],
            ..x
        };
        assert_eq!(
            conv.forward(&big, None, Activation::Relu6).data,
            vec![6.0; 4]
        );
    }

    #[test]
    fn layouts_round_trip() {
        let dims = [3, 2, 2, 5];
        let nchw: Vec<f32> = (0..60).map(|v| v as f32).collect();
        let planes = Planes::from_nchw(&nchw, dims);
        // Channel 1 of image 2 starts at NCHW offset (2·2 + 1)·10.
        assert_eq!(planes.data[(3 + 2) * 10], nchw[(2 * 2 + 1) * 10]);
        assert_eq!(planes.into_nchw(), (nchw, dims));
    }
}
