//! The convolution's forward and backward passes on flat NCHW `f32` buffers: each chunk of
//! images turned channels last, im2col (runs of `C_in` values per tap), one faer product per
//! chunk and group, col2im for the input's gradient.
//!
//! Chunks of images are the unit of work: each chunk's patch matrix has about
//! [`TARGET_COLUMNS`] columns (so the products are large enough for faer's micro-kernels and the
//! patches stay in cache), and chunks run in parallel over the current rayon pool. The chunking
//! depends only on the shapes, never on the thread count, and the weight gradient sums the
//! chunks' partial sums in chunk order, so results are the same for every thread count.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::cell::RefCell;

use crate::buffer::zeroed;

thread_local! {
    /// Per-thread work buffers of a chunk (channels-last input, patches, product, channels-last
    /// input gradient), kept between calls: a training step makes hundreds of chunk calls, and
    /// fresh multi-megabyte buffers would cost a page fault per 4 KiB every time.
    static SCRATCH: RefCell<[Vec<f32>; 4]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new()]) };
}

/// Runs `work` with four per-thread buffers of the given lengths (contents unspecified).
fn with_scratch<R>(lens: [usize; 4], work: impl FnOnce([&mut [f32]; 4]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        for (buffer, &len) in buffers.iter_mut().zip(&lens) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        let [a, b, c, d] = &mut *buffers;
        work([
            &mut a[..lens[0]],
            &mut b[..lens[1]],
            &mut c[..lens[2]],
            &mut d[..lens[3]],
        ])
    })
}

/// Columns (output positions × images) a chunk's patch matrix aims at.
const TARGET_COLUMNS: usize = 2048;
/// At least this many chunks per batch (when there are that many images), so two to four
/// threads have work.
const MIN_CHUNKS: usize = 4;

/// Stride, padding and groups of a 2-D convolution (dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Zero padding on each side, vertical and horizontal.
    pub padding: [usize; 2],
    /// Channel groups (1: dense; `in_channels`: depthwise).
    pub groups: usize,
}

/// Every size of one convolution call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvShape {
    pub(crate) batch: usize,
    pub(crate) in_channels: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_channels: usize,
    pub(crate) kernel: [usize; 2],
    pub(crate) geometry: ConvGeometry,
    pub(crate) out_height: usize,
    pub(crate) out_width: usize,
}

impl ConvShape {
    /// The shape of `conv(x, weight)`; `None` when the sizes do not fit together.
    pub(crate) fn new(x: [usize; 4], weight: [usize; 4], geometry: ConvGeometry) -> Option<Self> {
        let [batch, in_channels, height, width] = x;
        let [out_channels, in_per_group, kh, kw] = weight;
        let groups = geometry.groups;
        let [sh, sw] = geometry.stride;
        let [ph, pw] = geometry.padding;
        if groups == 0
            || sh == 0
            || sw == 0
            || in_channels != in_per_group * groups
            || out_channels % groups != 0
            || height + 2 * ph < kh
            || width + 2 * pw < kw
        {
            return None;
        }
        Some(ConvShape {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            geometry,
            out_height: (height + 2 * ph - kh) / sh + 1,
            out_width: (width + 2 * pw - kw) / sw + 1,
        })
    }

    fn in_per_group(&self) -> usize {
        self.in_channels / self.geometry.groups
    }

    fn out_per_group(&self) -> usize {
        self.out_channels / self.geometry.groups
    }

    /// Rows of one group's patch matrix: `in_per_group · kh · kw`.
    fn patch_rows(&self) -> usize {
        self.in_per_group() * self.kernel[0] * self.kernel[1]
    }

    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn out_image_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    /// Images per chunk: enough for [`TARGET_COLUMNS`], few enough for [`MIN_CHUNKS`].
    fn chunk_images(&self) -> usize {
        let by_columns = TARGET_COLUMNS.div_ceil(self.positions().max(1));
        let by_chunks = self.batch.div_ceil(MIN_CHUNKS).max(1);
        by_columns.min(by_chunks).max(1)
    }

    pub(crate) fn output_dims(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }
}

/// One image's `[C, H·W]` planes as `[H·W, C]` (channels last), written into `dst`.
fn to_channels_last(src: &[f32], channels: usize, positions: usize, dst: &mut [f32]) {
    for (c, plane) in src.chunks_exact(positions).enumerate() {
        for (p, &v) in plane.iter().enumerate() {
            dst[p * channels + c] = v;
        }
    }
}

/// The weight `[C_out, C_in/g, kh, kw]` reordered to `[C_out, kh·kw·C_in/g]` (tap-major, the
/// order of [`im2col`]'s columns).
///
/// Output channels run in parallel, in pieces of at least [`TAP_MAJOR_PIECE`] values: every
/// convolution call (forward and backward) reorders its weight before its chunks start.
fn weight_tap_major(shape: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let taps = shape.kernel[0] * shape.kernel[1];
    let cin = shape.in_per_group();
    let row = (cin * taps).max(1);
    let mut out = zeroed(weight.len());
    out.par_chunks_exact_mut(row)
        .zip(weight.par_chunks_exact(row))
        .with_min_len(TAP_MAJOR_PIECE.div_ceil(row))
        .for_each(|(dst, src)| {
            for ci in 0..cin {
                for t in 0..taps {
                    dst[t * cin + ci] = src[ci * taps + t];
                }
            }
        });
    out
}

/// The smallest piece of a weight (values) [`weight_tap_major`] reorders on one thread.
const TAP_MAJOR_PIECE: usize = 8192;
/// Values of the weight gradient one thread sums over the chunks at a time.
const SUM_PIECE: usize = 8192;

/// The reverse of [`weight_tap_major`], added into `dst`.
fn add_weight_channel_major(shape: &ConvShape, tap_major: &[f32], dst: &mut [f32]) {
    let taps = shape.kernel[0] * shape.kernel[1];
    let cin = shape.in_per_group();
    for (src, dst) in tap_major
        .chunks_exact(cin * taps)
        .zip(dst.chunks_exact_mut(cin * taps))
    {
        for ci in 0..cin {
            for t in 0..taps {
                dst[ci * taps + t] += src[t * cin + ci];
            }
        }
    }
}

/// Every tap of one group's patches: for each output position `r` of rows `row..row +
/// positions` of a patch matrix and each kernel tap, `visit(column, pixel)` with the offset
/// of the tap's `C_in/g` values in `cols` (row-major `[positions, kh·kw·C_in/g]`, tap-major
/// columns) and, when the tap falls inside the image rather than on the padding, the offset
/// of the group's channels in the channels-last image. What [`im2col`] and [`col2im`] share.
fn for_each_tap(
    shape: &ConvShape,
    group: usize,
    row: usize,
    mut visit: impl FnMut(usize, Option<usize>),
) {
    let [kh, kw] = shape.kernel;
    let [sh, sw] = shape.geometry.stride;
    let [ph, pw] = shape.geometry.padding;
    let (h, w) = (shape.height as isize, shape.width as isize);
    let cin = shape.in_per_group();
    let first = group * cin;
    let k = shape.patch_rows();
    for oh in 0..shape.out_height {
        for ow in 0..shape.out_width {
            let r = row + oh * shape.out_width + ow;
            for ki in 0..kh {
                let ih = (oh * sh + ki) as isize - ph as isize;
                for kj in 0..kw {
                    let iw = (ow * sw + kj) as isize - pw as isize;
                    let inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
                    let pixel = inside.then(|| (ih * w + iw) as usize * shape.in_channels + first);
                    visit(r * k + (ki * kw + kj) * cin, pixel);
                }
            }
        }
    }
}

/// Writes one group's patches of one channels-last image into rows `row..row + positions` of
/// `cols` (`[positions, kh·kw·C_in/g]`, row-major, tap-major columns).
fn im2col(shape: &ConvShape, image: &[f32], group: usize, cols: &mut [f32], row: usize) {
    let cin = shape.in_per_group();
    for_each_tap(shape, group, row, |column, pixel| {
        let d = &mut cols[column..][..cin];
        match pixel {
            Some(at) => d.copy_from_slice(&image[at..at + cin]),
            None => d.fill(0.0),
        }
    });
}

/// The reverse of [`im2col`]: adds rows `row..row + positions` of `cols` into the group's
/// channels of one channels-last image (the input's gradient).
fn col2im(shape: &ConvShape, cols: &[f32], row: usize, group: usize, image: &mut [f32]) {
    let cin = shape.in_per_group();
    for_each_tap(shape, group, row, |column, pixel| {
        if let Some(at) = pixel {
            let s = &cols[column..][..cin];
            for (d, v) in image[at..at + cin].iter_mut().zip(s) {
                *d += v;
            }
        }
    });
}

/// A chunk of NCHW images as channels-last images, into `out`.
fn chunk_channels_last(shape: &ConvShape, x: &[f32], out: &mut [f32]) {
    let hw = shape.height * shape.width;
    for (src, dst) in x
        .chunks_exact(shape.image_len())
        .zip(out.chunks_exact_mut(shape.image_len()))
    {
        to_channels_last(src, shape.in_channels, hw, dst);
    }
}

/// `conv(x, weight) + bias`: `x` is `[N, C_in, H, W]`, `weight` `[C_out, C_in/groups, kh, kw]`,
/// `bias` `[C_out]`; returns the `[N, C_out, H_out, W_out]` output.
pub(crate) fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = zeroed(shape.batch * shape.out_image_len());
    if out.is_empty() {
        return out;
    }
    let chunk = shape.chunk_images();
    let (k, positions) = (shape.patch_rows(), shape.positions());
    let out_per_group = shape.out_per_group();
    let taps = weight_tap_major(shape, weight);
    out.par_chunks_mut(chunk * shape.out_image_len())
        .zip(x.par_chunks(chunk * shape.image_len()))
        .for_each(|(out, x)| {
            let images = x.len() / shape.image_len();
            let ld = images * positions;
            with_scratch(
                [x.len(), ld * k, out_per_group * ld, 0],
                |[x_last, cols, product, _]| {
                    chunk_channels_last(shape, x, x_last);
                    let x = &*x_last;
                    for group in 0..shape.geometry.groups {
                        for (i, image) in x.chunks_exact(shape.image_len()).enumerate() {
                            im2col(shape, image, group, cols, i * positions);
                        }
                        let lhs = MatRef::from_row_major_slice(
                            &taps[group * out_per_group * k..][..out_per_group * k],
                            out_per_group,
                            k,
                        );
                        let rhs = MatRef::from_row_major_slice(cols, ld, k).transpose();
                        let dst = MatMut::from_row_major_slice_mut(product, out_per_group, ld);
                        matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
                        for (i, out) in out.chunks_exact_mut(shape.out_image_len()).enumerate() {
                            for co in 0..out_per_group {
                                let channel = group * out_per_group + co;
                                let b = bias[channel];
                                let dst = &mut out[channel * positions..][..positions];
                                let src = &product[co * ld + i * positions..][..positions];
                                for (d, s) in dst.iter_mut().zip(src) {
                                    *d = s + b;
                                }
                            }
                        }
                    }
                },
            );
        });
    out
}

/// One chunk's share of the weight and bias gradients.
type Partial = (Vec<f32>, Vec<f32>);

/// What [`backward`] computes: each gradient only when asked for.
#[derive(Debug, Default)]
pub(crate) struct ConvGrads {
    pub(crate) x: Option<Vec<f32>>,
    pub(crate) weight: Option<Vec<f32>>,
    pub(crate) bias: Option<Vec<f32>>,
}

/// Gradients of [`forward`] with respect to `x`, the weight and the bias, given the output's
/// gradient `dy`.
pub(crate) fn backward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    [want_x, want_weight, want_bias]: [bool; 3],
) -> ConvGrads {
    let chunk = shape.chunk_images();
    let (rows, positions) = (shape.patch_rows(), shape.positions());
    let out_per_group = shape.out_per_group();
    let weight_len = shape.out_channels * rows;
    let mut dx = want_x.then(|| zeroed(x.len()));
    let in_chunk = chunk * shape.image_len();
    let out_chunk = chunk * shape.out_image_len();
    if x.is_empty() || dy.is_empty() {
        return ConvGrads {
            x: dx,
            weight: want_weight.then(|| vec![0.0; weight_len]),
            bias: want_bias.then(|| vec![0.0; shape.out_channels]),
        };
    }

    let taps = weight_tap_major(shape, weight);
    let hw = shape.height * shape.width;
    // One chunk: its input gradient in place, its partial weight and bias gradients returned.
    let run = |x: &[f32], dy: &[f32], dx: Option<&mut [f32]>| -> Partial {
        let images = x.len() / shape.image_len();
        let ld = images * positions;
        let mut dweight = vec![0.0f32; if want_weight { weight_len } else { 0 }];
        let mut dbias = vec![0.0f32; if want_bias { shape.out_channels } else { 0 }];
        let x_len = if want_weight { x.len() } else { 0 };
        let dx_len = dx.as_ref().map_or(0, |dx| dx.len());
        with_scratch(
            [x_len, ld * rows, out_per_group * ld, dx_len],
            |[x_last, cols, grad, dx_last]| {
                if want_weight {
                    chunk_channels_last(shape, x, x_last);
                }
                let x = want_weight.then_some(&*x_last);
                let mut dx_last = dx.is_some().then(|| {
                    dx_last.fill(0.0);
                    dx_last
                });
                let mut dweight_taps =
                    vec![0.0f32; if want_weight { out_per_group * rows } else { 0 }];
                for group in 0..shape.geometry.groups {
                    for (i, dy) in dy.chunks_exact(shape.out_image_len()).enumerate() {
                        for co in 0..out_per_group {
                            let channel = group * out_per_group + co;
                            let src = &dy[channel * positions..][..positions];
                            grad[co * ld + i * positions..][..positions].copy_from_slice(src);
                            if want_bias {
                                dbias[channel] += src.iter().sum::<f32>();
                            }
                        }
                    }
                    let grad_mat = MatRef::from_row_major_slice(grad, out_per_group, ld);
                    if let Some(x) = x {
                        for (i, image) in x.chunks_exact(shape.image_len()).enumerate() {
                            im2col(shape, image, group, cols, i * positions);
                        }
                        let dst = MatMut::from_row_major_slice_mut(
                            &mut dweight_taps,
                            out_per_group,
                            rows,
                        );
                        let cols_mat = MatRef::from_row_major_slice(cols, ld, rows);
                        matmul(dst, Accum::Replace, grad_mat, cols_mat, 1.0, Par::Seq);
                        add_weight_channel_major(
                            shape,
                            &dweight_taps,
                            &mut dweight[group * out_per_group * rows..][..out_per_group * rows],
                        );
                    }
                    if let Some(dx_last) = dx_last.as_mut() {
                        let w = MatRef::from_row_major_slice(
                            &taps[group * out_per_group * rows..][..out_per_group * rows],
                            out_per_group,
                            rows,
                        );
                        let dst = MatMut::from_row_major_slice_mut(cols, ld, rows);
                        matmul(dst, Accum::Replace, grad_mat.transpose(), w, 1.0, Par::Seq);
                        for (i, image) in dx_last.chunks_exact_mut(shape.image_len()).enumerate() {
                            col2im(shape, cols, i * positions, group, image);
                        }
                    }
                }
                if let (Some(dx), Some(dx_last)) = (dx, dx_last) {
                    // Channels last back to NCHW.
                    for (src, dst) in dx_last
                        .chunks_exact(shape.image_len())
                        .zip(dx.chunks_exact_mut(shape.image_len()))
                    {
                        for (p, pixel) in src.chunks_exact(shape.in_channels).enumerate() {
                            for (c, &v) in pixel.iter().enumerate() {
                                dst[c * hw + p] = v;
                            }
                        }
                    }
                }
                (dweight, dbias)
            },
        )
    };

    // Per chunk: (partial weight gradient, partial bias gradient).
    let partials: Vec<Partial> = match dx.as_mut() {
        Some(dx) => dx
            .par_chunks_mut(in_chunk)
            .zip(x.par_chunks(in_chunk).zip(dy.par_chunks(out_chunk)))
            .map(|(dx, (x, dy))| run(x, dy, Some(dx)))
            .collect(),
        None => x
            .par_chunks(in_chunk)
            .zip(dy.par_chunks(out_chunk))
            .map(|(x, dy)| run(x, dy, None))
            .collect(),
    };
    // The chunks' partial sums, added in chunk order (each value's order, whatever the
    // pieces of values the threads take).
    let sum = |len: usize, pick: fn(&Partial) -> &[f32]| {
        let mut total = zeroed(len);
        total
            .par_chunks_mut(SUM_PIECE)
            .enumerate()
            .for_each(|(i, total)| {
                for partial in &partials {
                    for (t, p) in total.iter_mut().zip(&pick(partial)[i * SUM_PIECE..]) {
                        *t += p;
                    }
                }
            });
        total
    };
    ConvGrads {
        x: dx,
        weight: want_weight.then(|| sum(weight_len, |p| &p.0)),
        bias: want_bias.then(|| sum(shape.out_channels, |p| &p.1)),
    }
}
