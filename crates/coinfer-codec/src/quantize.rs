//! Uniform `b`-bit quantization (1 ≤ b ≤ 8) of `f32` slices, per tensor or per channel.
//!
//! A range `[min, max]` is cut into `L = 2^b − 1` equal steps of `step = (max − min) / L`;
//! a value maps to the symbol `q = round((x − min) / step)` clamped to `0..=L`, and back to
//! `min + q · step`. Ranges are the data's own min/max (stored in the payload as `f32`), so
//! the quantization error of every element is at most `step / 2`.
//!
//! These are the codec's hot loops: they work on plain slices, branch-free, in fixed-width
//! lanes so that the compiler vectorises them. The tensor-level codecs are thin layers on top.

use serde::{Deserialize, Serialize};

use crate::error::CodecError;

/// Smallest accepted bit width.
pub const MIN_BITS: u8 = 1;
/// Largest accepted bit width (symbols are stored one per `u8` before packing).
pub const MAX_BITS: u8 = 8;

const LANES: usize = 16;

/// A closed quantization interval `[min, max]` with finite bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantRange {
    /// Lower bound; symbol 0 decodes to exactly this value.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl QuantRange {
    /// A checked range: both bounds finite, `min <= max`, and `max − min` finite.
    ///
    /// # Errors
    /// [`CodecError::InvalidRange`] naming range `index` otherwise.
    pub fn new(index: usize, min: f32, max: f32) -> Result<Self, CodecError> {
        let reason = if !min.is_finite() || !max.is_finite() {
            Some("bounds must be finite")
        } else if min > max {
            Some("min is greater than max")
        } else if !(max - min).is_finite() {
            Some("the width max - min overflows f32")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CodecError::InvalidRange {
                index,
                min,
                max,
                reason,
            }),
            None => Ok(Self { min, max }),
        }
    }

    /// The quantization step `(max − min) / (2^bits − 1)`; zero for a constant range and for
    /// ranges so narrow that the step would be subnormal (those collapse to `min`).
    pub fn step(&self, bits: u8) -> f32 {
        let step = (self.max - self.min) / levels(bits) as f32;
        if step >= f32::MIN_POSITIVE { step } else { 0.0 }
    }
}

/// Number of steps `2^bits − 1` (the largest symbol) for a bit width in 1..=8.
pub const fn levels(bits: u8) -> u32 {
    (1u32 << bits) - 1
}

/// Checks that `bits` lies in 1..=8.
///
/// # Errors
/// [`CodecError::BitsOutOfRange`] naming `context`.
pub fn check_bits(bits: u8, context: &'static str) -> Result<(), CodecError> {
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(CodecError::BitsOutOfRange { bits, context })
    }
}

/// Min and max of `values` in one vectorised pass, plus whether every value is finite.
fn min_max_finite(values: &[f32]) -> (f32, f32, bool) {
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    // x · 0 is ±0 for finite x and NaN for NaN or ±inf, so the lane sums flag any of them.
    let mut poison = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            let x = chunk[i];
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
            poison[i] += x * 0.0;
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = if x < lo[i] { x } else { lo[i] };
        hi[i] = if x > hi[i] { x } else { hi[i] };
        poison[i] += x * 0.0;
    }
    let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let finite = poison.iter().all(|p| *p == 0.0);
    (min, max, finite)
}

/// The first non-finite element of `values`, for error messages.
fn first_non_finite(values: &[f32], offset: usize) -> CodecError {
    let (index, value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .map(|(i, v)| (i + offset, *v))
        .unwrap_or((offset, f32::NAN));
    CodecError::NonFiniteFeature { index, value }
}

/// Checks that every element of `values` is finite.
///
/// # Errors
/// [`CodecError::NonFiniteFeature`] naming the first NaN or infinity.
pub fn check_finite(values: &[f32]) -> Result<(), CodecError> {
    if min_max_finite(values).2 {
        Ok(())
    } else {
        Err(first_non_finite(values, 0))
    }
}

/// The range `[min(values), max(values)]`; `[0, 0]` for an empty slice.
///
/// # Errors
/// [`CodecError::NonFiniteFeature`] for a NaN or infinity, [`CodecError::InvalidRange`] when
/// the width overflows `f32`.
pub fn value_range(values: &[f32]) -> Result<QuantRange, CodecError> {
    if values.is_empty() {
        return Ok(QuantRange { min: 0.0, max: 0.0 });
    }
    let (min, max, finite) = min_max_finite(values);
    if !finite {
        return Err(first_non_finite(values, 0));
    }
    QuantRange::new(0, min, max)
}

/// Quantizes `values` to `bits`-bit symbols over `range` into `out` (same length).
///
/// Values outside the range clamp to symbol 0 or `2^bits − 1`; NaN maps to 0. `bits` must be
/// in 1..=8 (checked by the callers; out-of-range widths saturate at 8 bits).
pub fn quantize_slice(values: &[f32], range: QuantRange, bits: u8, out: &mut [u8]) {
    let top = levels(bits.clamp(MIN_BITS, MAX_BITS)) as f32;
    let step = range.step(bits.clamp(MIN_BITS, MAX_BITS));
    let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
    let lo = range.min;
    let quantize_one = |x: f32| -> u8 {
        // +0.5 then truncation rounds half up. Clamping low first sends NaN to 0; both
        // clamps compile to vector max/min, and the clamped value fits the casts exactly.
        let v = (x - lo) * inv + 0.5;
        let v = if v > 0.0 { v } else { 0.0 };
        let v = if v < top { v } else { top };
        v as i32 as u8
    };
    let mut src = values.chunks_exact(LANES);
    let mut dst = out.chunks_exact_mut(LANES);
    for (x, q) in (&mut src).zip(&mut dst) {
        for i in 0..LANES {
            q[i] = quantize_one(x[i]);
        }
    }
    for (x, q) in src.remainder().iter().zip(dst.into_remainder()) {
        *q = quantize_one(*x);
    }
}

/// Maps `bits`-bit symbols back to values: `out[i] = range.min + symbols[i] · step`.
pub fn dequantize_slice(symbols: &[u8], range: QuantRange, bits: u8, out: &mut [f32]) {
    let step = range.step(bits.clamp(MIN_BITS, MAX_BITS));
    let lo = range.min;
    let mut src = symbols.chunks_exact(LANES);
    let mut dst = out.chunks_exact_mut(LANES);
    for (q, x) in (&mut src).zip(&mut dst) {
        for i in 0..LANES {
            x[i] = lo + f32::from(q[i]) * step;
        }
    }
    for (q, x) in src.remainder().iter().zip(dst.into_remainder()) {
        *x = lo + f32::from(*q) * step;
    }
}

/// A quantized feature: `b`-bit symbols (one per byte, NCHW order) plus the ranges that map
/// them back to values.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Bit width, 1..=8.
    pub bits: u8,
    /// Feature shape `[B, C, H, W]`.
    pub shape: [usize; 4],
    /// Whether `ranges` holds one range per channel (shared by the batch) or one overall.
    pub per_channel: bool,
    /// One range (per tensor) or `C` ranges (per channel).
    pub ranges: Vec<QuantRange>,
    /// Symbols in `0..2^bits`, one per element.
    pub symbols: Vec<u8>,
}

impl Quantized {
    /// Dequantizes into a new vector (NCHW order).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.symbols.len()];
        self.dequantize_into(&mut out);
        out
    }

    /// Dequantizes into `out`, which must hold `symbols.len()` values (extra values are left
    /// untouched, missing ones skipped).
    pub fn dequantize_into(&self, out: &mut [f32]) {
        for_each_segment(self.shape, self.per_channel, |range_index, span| {
            if let (Some(symbols), Some(values), Some(range)) = (
                self.symbols.get(span.clone()),
                out.get_mut(span),
                self.ranges.get(range_index),
            ) {
                dequantize_slice(symbols, *range, self.bits, values);
            }
        });
    }
}

/// Calls `f(range_index, element_span)` for every contiguous run of elements sharing one
/// range: the whole tensor, or each `(batch, channel)` plane.
pub(crate) fn for_each_segment(
    shape: [usize; 4],
    per_channel: bool,
    mut f: impl FnMut(usize, std::ops::Range<usize>),
) {
    let [batch, channels, height, width] = shape;
    let plane = height * width;
    if per_channel {
        for b in 0..batch {
            for c in 0..channels {
                let start = (b * channels + c) * plane;
                f(c, start..start + plane);
            }
        }
    } else {
        f(0, 0..batch * channels * plane);
    }
}

/// Per-tensor or per-channel ranges of an NCHW feature (per-channel ranges span the batch).
///
/// # Errors
/// [`CodecError::NonFiniteFeature`] or [`CodecError::InvalidRange`].
pub fn feature_ranges(
    values: &[f32],
    shape: [usize; 4],
    per_channel: bool,
) -> Result<Vec<QuantRange>, CodecError> {
    check_len(values.len(), shape)?;
    if !per_channel {
        return Ok(vec![value_range(values)?]);
    }
    let mut bounds = vec![(f32::INFINITY, f32::NEG_INFINITY); shape[1]];
    let mut failure = None;
    for_each_segment(shape, true, |c, span| {
        if failure.is_some() {
            return;
        }
        let start = span.start;
        let plane = &values[span];
        let (min, max, finite) = min_max_finite(plane);
        if !finite {
            failure = Some(first_non_finite(plane, start));
        }
        let bound = &mut bounds[c];
        bound.0 = bound.0.min(min);
        bound.1 = bound.1.max(max);
    });
    if let Some(err) = failure {
        return Err(err);
    }
    bounds
        .into_iter()
        .enumerate()
        .map(|(c, (min, max))| {
            if min > max {
                // Empty planes (H·W = 0) carry no information; give them a zero range.
                Ok(QuantRange { min: 0.0, max: 0.0 })
            } else {
                QuantRange::new(c, min, max)
            }
        })
        .collect()
}

fn check_len(len: usize, shape: [usize; 4]) -> Result<(), CodecError> {
    let expected = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    if expected != Some(len) {
        return Err(CodecError::ShapeMismatch {
            what: "feature values",
            expected: format!("{shape:?} = {expected:?} elements"),
            found: format!("{len} elements"),
        });
    }
    Ok(())
}

/// Quantizes an NCHW feature with its own min/max ranges.
///
/// # Errors
/// [`CodecError::BitsOutOfRange`], [`CodecError::ShapeMismatch`] when `values.len()` is not the
/// shape's product, [`CodecError::NonFiniteFeature`], [`CodecError::InvalidRange`].
pub fn quantize(
    values: &[f32],
    shape: [usize; 4],
    bits: u8,
    per_channel: bool,
) -> Result<Quantized, CodecError> {
    check_bits(bits, "quantize")?;
    let ranges = feature_ranges(values, shape, per_channel)?;
    Ok(quantize_with_ranges(
        values,
        shape,
        bits,
        per_channel,
        ranges,
    ))
}

/// Quantizes with given ranges (lengths must already agree with `shape`).
pub(crate) fn quantize_with_ranges(
    values: &[f32],
    shape: [usize; 4],
    bits: u8,
    per_channel: bool,
    ranges: Vec<QuantRange>,
) -> Quantized {
    let mut symbols = vec![0u8; values.len()];
    for_each_segment(shape, per_channel, |c, span| {
        if let Some(range) = ranges.get(c) {
            quantize_slice(&values[span.clone()], *range, bits, &mut symbols[span]);
        }
    });
    Quantized {
        bits,
        shape,
        per_channel,
        ranges,
        symbols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_bits_map_to_four_levels() {
        let values = [0.0, 0.9, 1.1, 2.0, 3.0];
        let range = QuantRange { min: 0.0, max: 3.0 };
        let mut q = [0u8; 5];
        quantize_slice(&values, range, 2, &mut q);
        assert_eq!(q, [0, 1, 1, 2, 3]);
        let mut back = [0.0f32; 5];
        dequantize_slice(&q, range, 2, &mut back);
        assert_eq!(back, [0.0, 1.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn out_of_range_values_clamp() {
        let range = QuantRange {
            min: -1.0,
            max: 1.0,
        };
        let mut q = [0u8; 4];
        quantize_slice(&[-5.0, 5.0, f32::NAN, 1.0], range, 4, &mut q);
        assert_eq!(q, [0, 15, 0, 15]);
    }

    #[test]
    fn constant_range_decodes_to_the_constant() {
        let values = [2.5f32; 37];
        let range = value_range(&values).unwrap();
        assert_eq!(range.step(4), 0.0);
        let mut q = [9u8; 37];
        quantize_slice(&values, range, 4, &mut q);
        assert!(q.iter().all(|s| *s == 0));
        let mut back = [0.0f32; 37];
        dequantize_slice(&q, range, 4, &mut back);
        assert!(back.iter().all(|v| *v == 2.5));
    }

    #[test]
    fn non_finite_values_are_named() {
        let mut values = vec![0.0f32; 40];
        values[33] = f32::INFINITY;
        assert!(matches!(
            value_range(&values),
            Err(CodecError::NonFiniteFeature { index: 33, .. })
        ));
        values[33] = 0.0;
        values[7] = f32::NAN;
        assert!(matches!(
            feature_ranges(&values, [1, 2, 4, 5], true),
            Err(CodecError::NonFiniteFeature { index: 7, .. })
        ));
    }

    #[test]
    fn range_checks_reject_each_bad_bound() {
        assert!(QuantRange::new(0, 1.0, 0.0).is_err());
        assert!(QuantRange::new(0, f32::NAN, 0.0).is_err());
        assert!(QuantRange::new(3, -f32::MAX, f32::MAX).is_err());
        assert!(QuantRange::new(0, -1.0, 1.0).is_ok());
    }

    #[test]
    fn per_channel_ranges_span_the_batch() {
        // B=2, C=2, H*W=2: channel 0 holds 0,1 (b0) and 5,6 (b1); channel 1 holds 10,11 / -3,-2.
        let values = [0.0, 1.0, 10.0, 11.0, 5.0, 6.0, -3.0, -2.0];
        let ranges = feature_ranges(&values, [2, 2, 1, 2], true).unwrap();
        assert_eq!(
            ranges,
            vec![
                QuantRange { min: 0.0, max: 6.0 },
                QuantRange {
                    min: -3.0,
                    max: 11.0
                }
            ]
        );
    }

    #[test]
    fn shape_must_match_length() {
        assert!(matches!(
            quantize(&[0.0; 5], [1, 1, 2, 2], 4, false),
            Err(CodecError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            quantize(&[0.0; 4], [1, 1, 2, 2], 0, false),
            Err(CodecError::BitsOutOfRange { bits: 0, .. })
        ));
    }

    proptest! {
        /// Several channels whose ranges differ by orders of magnitude: per-channel ranges are
        /// each channel's own min/max (so a small channel gets a small step), a global range is
        /// the min/max of everything; either way the error is at most half of the step used.
        #[test]
        fn error_is_at_most_half_a_step(
            bits in 1u8..=8,
            per_channel: bool,
            (channels, width, values) in (2usize..=5, 1usize..=40).prop_flat_map(|(c, w)| {
                (Just(c), Just(w), proptest::collection::vec(-1.0f32..1.0, c * w))
            }),
        ) {
            // Channel c spans about ±10^c.
            let values: Vec<f32> = values
                .iter()
                .enumerate()
                .map(|(i, v)| v * 10f32.powi((i / width) as i32))
                .collect();
            let shape = [1, channels, 1, width];
            let q = quantize(&values, shape, bits, per_channel).unwrap();
            let back = q.dequantize();
            let channel = |c: usize| &values[c * width..(c + 1) * width];
            let min_max = |xs: &[f32]| {
                xs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
            };
            if per_channel {
                prop_assert_eq!(q.ranges.len(), channels);
                for c in 0..channels {
                    prop_assert_eq!((q.ranges[c].min, q.ranges[c].max), min_max(channel(c)));
                }
            } else {
                prop_assert_eq!(q.ranges.len(), 1);
                prop_assert_eq!((q.ranges[0].min, q.ranges[0].max), min_max(&values));
            }
            for (i, (x, y)) in values.iter().zip(&back).enumerate() {
                let c = i / width;
                let step = q.ranges[if per_channel { c } else { 0 }].step(bits);
                prop_assert!((x - y).abs() <= step * 0.5 + 1e-4 * x.abs().max(1.0),
                    "channel {c}: x={x} y={y} step={step}");
            }
            prop_assert!(q.symbols.iter().all(|s| u32::from(*s) <= levels(bits)));
        }
    }
}
