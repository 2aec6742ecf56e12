//! The inference form's own CPU kernels: a folded network run on plain `f32` buffers.
//!
//! burn-flex runs every convolution as its own op: it converts the activation to NHWC, builds
//! an im2col tile, calls a matrix product and converts back, and it allocates each op's output
//! on every call. On the tiny activations of a device half (a few thousand values) that
//! bookkeeping, not arithmetic, is most of the time. This module runs the same folded network
//! with the activation kept in one layout from the first block to the last:
//!
//! - **Layout NHWC** (channels last): `data[((b · height + h) · width + w) · channels + c]`.
//!   A convolution is one matrix product over the whole batch,
//!   `out[B·H·W, C_out] = patches[B·H·W, k·k·C_in] · W[k·k·C_in, C_out]`, whose three operands
//!   are the layouts faer's kernels run fastest (channels-first was slower on this backbone's
//!   shapes). A 1×1 stride-1 convolution needs no im2col (its input *is* the
//!   patch matrix), and im2col copies runs of `C_in` contiguous values.
//! - **Fused epilogues**: the output starts as the bias (plus the residual input for the last
//!   convolution of a block), the product accumulates into it, and the activation (ReLU or
//!   ReLU6) is applied in the same pass over the buffer.
//! - **Matrix products in [`faer`]**, which picks its kernels at run time (AVX-512 or AVX2 on
//!   x86-64, NEON on Arm, a small-matrix kernel for tiny products). With more than one thread
//!   in the current rayon pool ([`crate::Threads`]), large products are split by output
//!   positions.
//! - **Depthwise convolutions, pooling and flattening** are loops over positions, vectorised
//!   over channels.
//!
//! Weights are reordered once, when the network is built. Only the CPU backends (flex,
//! ndarray) without autodiff take this path; other devices (wgpu) run the folded network as
//! burn ops. Both give the training form's logits to float rounding (tests at every split
//! point of every zoo backbone, in `inference.rs`).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::SplitError;
use crate::spec::{BlockSpec, FeatureShape, NetSpec};

/// Below this many multiply-accumulates a matrix product is not split across threads.
const PARALLEL_MACS: usize = 1 << 20;

/// Fewest output positions per thread when a product is split.
const MIN_POSITIONS_PER_THREAD: usize = 64;

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

/// An activation in NHWC layout (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Nhwc {
    pub(crate) data: Vec<f32>,
    pub(crate) batch: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) channels: usize,
}

impl Nhwc {
    /// From an NCHW buffer of `[batch, channels, height, width]`.
    pub(crate) fn from_nchw(nchw: &[f32], dims: [usize; 4]) -> Nhwc {
        let [batch, channels, height, width] = dims;
        Nhwc {
            data: transpose_images(nchw, channels, height * width),
            batch,
            height,
            width,
            channels,
        }
    }

    /// Back to NCHW, with its `[batch, channels, height, width]`.
    pub(crate) fn into_nchw(self) -> (Vec<f32>, [usize; 4]) {
        let dims = [self.batch, self.channels, self.height, self.width];
        let plane = self.height * self.width;
        if self.channels == 1 || plane == 1 {
            return (self.data, dims);
        }
        (transpose_images(&self.data, plane, self.channels), dims)
    }
}

/// Each `[rows, cols]` matrix of `data` (one per image) transposed to `[cols, rows]`.
fn transpose_images(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    if rows == 1 || cols == 1 {
        return data.to_vec();
    }
    let mut out = vec![0.0; data.len()];
    for (src, dst) in data
        .chunks_exact(rows * cols)
        .zip(out.chunks_exact_mut(rows * cols))
    {
        for (r, row) in src.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                dst[c * rows + r] = v;
            }
        }
    }
    out
}

/// `dst[m, n] += lhs[m, k] · rhs[k, n]`, split by columns (output positions) over the current
/// rayon pool when the product is large enough to pay for it.
fn matmul_add(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    let threads = rayon::current_num_threads();
    let macs = dst.nrows() * dst.ncols() * lhs.ncols();
    if threads <= 1 || macs < PARALLEL_MACS {
        matmul(dst, Accum::Add, lhs, rhs, 1.0, Par::Seq);
        return;
    }
    split_columns(dst, lhs, rhs, threads);
}

fn split_columns(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, parts: usize) {
    if parts <= 1 || dst.ncols() < 2 * MIN_POSITIONS_PER_THREAD {
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

/// Output size of a window of `kernel` at `stride` with `padding` on both sides.
fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

/// The input row or column a window at output index `out` reads at kernel offset `offset`,
/// if it is inside the input (not padding).
fn input_index(
    out: usize,
    offset: usize,
    stride: usize,
    padding: usize,
    size: usize,
) -> Option<usize> {
    (out * stride + offset)
        .checked_sub(padding)
        .filter(|&i| i < size)
}

/// Walks every window of `window` over `x`: for each output position (batch, then rows, then
/// columns; `out_h × out_w` per image) and each tap `kh · k + kw` of its window, calls
/// `visit(position, tap, pixel)` with the `C` channels of the input pixel the tap reads, or
/// `None` where it reads padding.
fn for_each_tap(
    x: &Nhwc,
    window: Window,
    out_h: usize,
    out_w: usize,
    mut visit: impl FnMut(usize, usize, Option<&[f32]>),
) {
    let Window {
        kernel: k,
        stride: s,
        padding: p,
    } = window;
    let c = x.channels;
    let mut position = 0;
    for src in x.data.chunks_exact(x.height * x.width * c) {
        for oh in 0..out_h {
            for ow in 0..out_w {
                for kh in 0..k {
                    let ih = input_index(oh, kh, s, p, x.height);
                    for kw in 0..k {
                        let pixel = match (ih, input_index(ow, kw, s, p, x.width)) {
                            (Some(ih), Some(iw)) => Some(&src[(ih * x.width + iw) * c..][..c]),
                            _ => None,
                        };
                        visit(position, kh * k + kw, pixel);
                    }
                }
                position += 1;
            }
        }
    }
}

/// A folded convolution on the host, weights in the kernels' order: `[k, k, C_in, C_out]`
/// for a dense convolution, `[k, k, C]` for a depthwise one.
#[derive(Debug, Clone)]
pub(crate) struct CpuConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    pub(crate) out_channels: usize,
    pub(crate) in_channels: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    /// One filter per channel (groups = channels) instead of a dense convolution.
    pub(crate) depthwise: bool,
}

impl CpuConv {
    /// From burn's weight layout `[C_out, C_in / groups, k, k]` (reordered here) and a bias of
    /// `C_out`. Sizes are checked by [`CpuNetwork::new`], not here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        weight_oihw: &[f32],
        bias: Vec<f32>,
        out_channels: usize,
        in_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        depthwise: bool,
    ) -> CpuConv {
        let taps = kernel * kernel;
        let per_filter = if depthwise { 1 } else { in_channels } * taps;
        let mut weight = vec![0.0; weight_oihw.len()];
        if weight_oihw.len() == out_channels * per_filter {
            for (o, filter) in weight_oihw.chunks_exact(per_filter).enumerate() {
                for (i, taps_of_input) in filter.chunks_exact(taps).enumerate() {
                    for (tap, &v) in taps_of_input.iter().enumerate() {
                        let at = if depthwise {
                            tap * out_channels + o
                        } else {
                            (tap * in_channels + i) * out_channels + o
                        };
                        weight[at] = v;
                    }
                }
            }
        }
        CpuConv {
            weight,
            bias,
            out_channels,
            in_channels,
            kernel,
            stride,
            padding,
            depthwise,
        }
    }

    /// `activation(conv(x) + bias + add)`.
    fn forward(&self, x: &Nhwc, add: Option<&Nhwc>, activation: Activation) -> Nhwc {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let out_h = out_size(x.height, k, s, p);
        let out_w = out_size(x.width, k, s, p);
        let positions = x.batch * out_h * out_w;
        let m = self.out_channels;
        let mut out = Vec::with_capacity(positions * m);
        match add {
            Some(add) => out.extend(
                add.data
                    .iter()
                    .zip(self.bias.iter().cycle())
                    .map(|(&v, &b)| v + b),
            ),
            None => (0..positions).for_each(|_| out.extend_from_slice(&self.bias)),
        }
        if self.depthwise {
            self.depthwise_into(x, &mut out, out_h, out_w);
        } else {
            let depth = self.in_channels * k * k;
            // Column-major views: weights [depth][m] is an m × depth matrix, patches
            // [positions][depth] a depth × positions one, out [positions][m] m × positions.
            let lhs = MatRef::from_column_major_slice(&self.weight, m, depth);
            let dst = MatMut::from_column_major_slice_mut(&mut out, m, positions);
            if k == 1 && s == 1 && p == 0 {
                let rhs = MatRef::from_column_major_slice(&x.data, depth, positions);
                matmul_add(dst, lhs, rhs);
            } else {
                let patches = im2col(x, self.window(), out_h, out_w);
                let rhs = MatRef::from_column_major_slice(&patches, depth, positions);
                matmul_add(dst, lhs, rhs);
            }
        }
        activation.apply(&mut out);
        Nhwc {
            data: out,
            batch: x.batch,
            height: out_h,
            width: out_w,
            channels: m,
        }
    }

    fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// Accumulates a depthwise convolution (one `k × k` filter per channel) into `out`.
    fn depthwise_into(&self, x: &Nhwc, out: &mut [f32], out_h: usize, out_w: usize) {
        let c = x.channels;
        for_each_tap(x, self.window(), out_h, out_w, |position, tap, pixel| {
            let Some(pixel) = pixel else { return };
            let dst = &mut out[position * c..][..c];
            let weights = &self.weight[tap * c..][..c];
            dst.iter_mut()
                .zip(pixel.iter().zip(weights))
                .for_each(|(d, (&v, &w))| *d += v * w);
        });
    }
}

/// `[B·H_out·W_out, k·k·C]`: for every output position, its window's values in `(kh, kw, c)`
/// order (zero in the padding). Each tap copies a run of `C` contiguous channels.
fn im2col(x: &Nhwc, window: Window, out_h: usize, out_w: usize) -> Vec<f32> {
    let c = x.channels;
    let taps = window.kernel * window.kernel;
    let mut patches = Vec::with_capacity(x.batch * out_h * out_w * taps * c);
    for_each_tap(x, window, out_h, out_w, |_, _, pixel| match pixel {
        Some(pixel) => patches.extend_from_slice(pixel),
        None => patches.resize(patches.len() + c, 0.0),
    });
    patches
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
    fn forward(&self, x: &Nhwc) -> Nhwc {
        let batch = x.batch;
        let mut out = match &self.bias {
            Some(bias) => bias.repeat(batch),
            None => vec![0.0; self.out_features * batch],
        };
        // out[b][o] += Σ_i x[b][i] · W[i][o]: as column-major matrices, W [in][out] is
        // out × in, x [b][in] is in × b and out [b][out] is out × b.
        let lhs =
            MatRef::from_column_major_slice(&self.weight, self.out_features, self.in_features);
        let rhs = MatRef::from_column_major_slice(&x.data, self.in_features, batch);
        let dst = MatMut::from_column_major_slice_mut(&mut out, self.out_features, batch);
        matmul_add(dst, lhs, rhs);
        if self.relu {
            Activation::Relu.apply(&mut out);
        }
        Nhwc {
            data: out,
            batch,
            height: 1,
            width: 1,
            channels: self.out_features,
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
    fn forward(&self, x: &Nhwc) -> Nhwc {
        match self {
            CpuBlock::ConvRelu(conv) => conv.forward(x, None, Activation::Relu),
            CpuBlock::Basic {
                conv1,
                conv2,
                shortcut,
            } => {
                let y = conv1.forward(x, None, Activation::Relu);
                match shortcut {
                    Some(projection) => {
                        let skip = projection.forward(x, None, Activation::Identity);
                        conv2.forward(&y, Some(&skip), Activation::Relu)
                    }
                    None => conv2.forward(&y, Some(x), Activation::Relu),
                }
            }
            CpuBlock::DepthwiseSeparable {
                depthwise,
                pointwise,
            } => {
                let y = depthwise.forward(x, None, Activation::Relu6);
                pointwise.forward(&y, None, Activation::Relu)
            }
            CpuBlock::InvertedResidual {
                expand,
                depthwise,
                project,
                residual,
            } => {
                let y = expand.forward(x, None, Activation::Relu6);
                let y = depthwise.forward(&y, None, Activation::Relu6);
                project.forward(&y, residual.then_some(x), Activation::Identity)
            }
            CpuBlock::MaxPool(window) => pool(x, *window, f32::NEG_INFINITY, f32::max, |m| m),
            CpuBlock::AvgPool(window) => {
                let area = (window.kernel * window.kernel) as f32;
                pool(x, *window, 0.0, |a, v| a + v, |sum| sum / area)
            }
            CpuBlock::GlobalAvgPool => {
                let (c, plane) = (x.channels, x.height * x.width);
                let mut data = vec![0.0; x.batch * c];
                for (src, dst) in x.data.chunks_exact(plane * c).zip(data.chunks_exact_mut(c)) {
                    for pixel in src.chunks_exact(c) {
                        dst.iter_mut().zip(pixel).for_each(|(d, &v)| *d += v);
                    }
                    dst.iter_mut().for_each(|d| *d /= plane as f32);
                }
                Nhwc {
                    data,
                    batch: x.batch,
                    height: 1,
                    width: 1,
                    channels: c,
                }
            }
            CpuBlock::Flatten => flatten(x),
            CpuBlock::Linear(linear) => linear.forward(x),
        }
    }
}

/// A pooling window over every channel: `finish(fold(init, values in the window))`.
fn pool(
    x: &Nhwc,
    window: Window,
    init: f32,
    fold: impl Fn(f32, f32) -> f32,
    finish: impl Fn(f32) -> f32,
) -> Nhwc {
    let c = x.channels;
    let out_h = out_size(x.height, window.kernel, window.stride, window.padding);
    let out_w = out_size(x.width, window.kernel, window.stride, window.padding);
    let mut data = vec![init; x.batch * out_h * out_w * c];
    for_each_tap(x, window, out_h, out_w, |position, _, pixel| {
        let Some(pixel) = pixel else { return };
        data[position * c..][..c]
            .iter_mut()
            .zip(pixel)
            .for_each(|(d, &v)| *d = fold(*d, v));
    });
    data.iter_mut().for_each(|v| *v = finish(*v));
    Nhwc {
        data,
        batch: x.batch,
        height: out_h,
        width: out_w,
        channels: c,
    }
}

/// `[B, H, W, C]` → `[B, 1, 1, C·H·W]`, feature `c·H·W + h·W + w` as burn's NCHW reshape.
fn flatten(x: &Nhwc) -> Nhwc {
    let plane = x.height * x.width;
    Nhwc {
        data: transpose_images(&x.data, plane, x.channels),
        batch: x.batch,
        height: 1,
        width: 1,
        channels: x.channels * plane,
    }
}

/// A whole folded network (or half) on the host.
#[derive(Debug, Clone)]
pub(crate) struct CpuNetwork {
    blocks: Vec<CpuBlock>,
    /// Each block's input shape (one per block).
    inputs: Vec<FeatureShape>,
}

impl CpuNetwork {
    /// `blocks` for `spec`, each block's weights checked against the shapes the spec implies,
    /// so that a forward never indexes out of bounds.
    pub(crate) fn new(blocks: Vec<CpuBlock>, spec: &NetSpec) -> Result<CpuNetwork, SplitError> {
        let mut shapes = spec.shapes()?;
        if shapes.len() != blocks.len() + 1 {
            return Err(SplitError::Weights(format!(
                "{} CPU blocks for a spec of {} blocks",
                blocks.len(),
                spec.blocks.len()
            )));
        }
        for (index, ((block, input), block_spec)) in
            blocks.iter().zip(&shapes).zip(&spec.blocks).enumerate()
        {
            check_block(block, block_spec, *input, index)?;
        }
        shapes.pop();
        Ok(CpuNetwork {
            blocks,
            inputs: shapes,
        })
    }

    /// Runs every block.
    pub(crate) fn forward(&self, x: Nhwc) -> Nhwc {
        self.blocks.iter().fold(x, |x, block| block.forward(&x))
    }

    /// Runs block `index` alone; fails when there is no such block or `x` is not its input.
    pub(crate) fn forward_block(&self, index: usize, x: &Nhwc) -> Result<Nhwc, SplitError> {
        let (Some(block), Some(input)) = (self.blocks.get(index), self.inputs.get(index)) else {
            return Err(SplitError::InvalidOption {
                field: "index",
                reason: format!("no block {index} in a network of {}", self.blocks.len()),
            });
        };
        let got = [x.channels, x.height, x.width];
        if got != input.dims() {
            return Err(SplitError::InputShape {
                expected: input.dims(),
                got: got.to_vec(),
            });
        }
        Ok(block.forward(x))
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
            let skip_width = match shortcut {
                Some(projection) => check_conv(projection, c, &what("shortcut"))?,
                None => c,
            };
            if skip_width != out {
                return Err(SplitError::Weights(what("shortcut width")));
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

    fn conv(out_channels: usize, in_channels: usize, weights: usize) -> CpuConv {
        CpuConv::new(
            &vec![0.5; weights],
            vec![0.0; out_channels],
            out_channels,
            in_channels,
            3,
            1,
            1,
            false,
        )
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
        let fits = vec![CpuBlock::ConvRelu(conv(4, 2, 4 * 2 * 9))];
        assert!(CpuNetwork::new(fits, &one_conv_spec()).is_ok());
        for wrong in [
            CpuBlock::ConvRelu(conv(4, 2, 4 * 2 * 9 - 1)),
            CpuBlock::ConvRelu(conv(4, 3, 4 * 3 * 9)),
            CpuBlock::GlobalAvgPool,
        ] {
            let err = CpuNetwork::new(vec![wrong], &one_conv_spec()).unwrap_err();
            assert!(
                matches!(&err, SplitError::Weights(what) if what.contains("block 0")),
                "{err}"
            );
        }
        let too_many = vec![CpuBlock::ConvRelu(conv(4, 2, 72)), CpuBlock::Flatten];
        assert!(matches!(
            CpuNetwork::new(too_many, &one_conv_spec()),
            Err(SplitError::Weights(_))
        ));
    }

    #[test]
    fn a_convolution_adds_its_bias_residual_and_activation() {
        // 1×1 convolution of weight 2 on one channel, bias −1, plus a residual of 0.5, ReLU6:
        // relu6(2·x − 1 + 0.5) on x = [0, 1, 2, 3] gives [0, 1.5, 3.5, 5.5].
        let conv = CpuConv::new(&[2.0], vec![-1.0], 1, 1, 1, 1, 0, false);
        let x = Nhwc {
            data: vec![0.0, 1.0, 2.0, 3.0],
            channels: 1,
            batch: 1,
            height: 2,
            width: 2,
        };
        let skip = Nhwc {
            data: vec![0.5; 4],
            ..x.clone()
        };
        let y = conv.forward(&x, Some(&skip), Activation::Relu6);
        assert_eq!(y.data, vec![0.0, 1.5, 3.5, 5.5]);
        let big = Nhwc {
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
        let nhwc = Nhwc::from_nchw(&nchw, dims);
        // Image 2, row 1, column 3, channel 1: NCHW offset ((2·2 + 1)·2 + 1)·5 + 3.
        assert_eq!(
            nhwc.data[((2 * 2 + 1) * 5 + 3) * 2 + 1],
            nchw[((2 * 2 + 1) * 2 + 1) * 5 + 3]
        );
        assert_eq!(nhwc.into_nchw(), (nchw, dims));
    }

    #[test]
    fn weights_are_reordered_tap_major() {
        // Two filters over three input channels, 1×1 taps: W[o][i] = 10·o + i, stored [i][o].
        let oihw: Vec<f32> = (0..2)
            .flat_map(|o| (0..3).map(move |i| (10 * o + i) as f32))
            .collect();
        let conv = CpuConv::new(&oihw, vec![0.0; 2], 2, 3, 1, 1, 0, false);
        assert_eq!(conv.weight, vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }
}
