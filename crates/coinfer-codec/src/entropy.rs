//! Lossless entropy coding of quantized symbols with rANS ([`constriction`]).
//!
//! The model is the empirical histogram of the symbols being sent, normalised to
//! `2^HISTOGRAM_BITS` with every present symbol kept at a frequency of at least 1. The
//! normalised histogram travels in the body (one LEB128 varint per symbol of the `2^b`
//! alphabet, zero for absent symbols), followed by the ANS words (`u32`, little endian). The
//! decoder rebuilds the identical integer model from the histogram, so the coding is exact and
//! platform independent. Coding costs about the empirical entropy of the symbols plus the
//! histogram; the codecs fall back to fixed-length packing when that would be larger (see
//! [`crate::QuantCodec`]).

use constriction::stream::Decode;
use constriction::stream::model::DefaultContiguousCategoricalEntropyModel;
use constriction::stream::stack::DefaultAnsCoder;

use crate::error::CodecError;
use crate::quantize::{MAX_BITS, check_bits};

/// The normalised histogram sums to `2^HISTOGRAM_BITS`.
pub const HISTOGRAM_BITS: u32 = 14;
/// Fixed-point precision of constriction's default models (`DefaultAnsCoder`).
const MODEL_PRECISION: u32 = 24;

/// What entropy coding saved on one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntropyStats {
    /// Bits of the same payload with fixed-length `b`-bit packing.
    pub fixed_bits: u64,
    /// Bits of the payload actually produced (never more than `fixed_bits`).
    pub coded_bits: u64,
}

impl EntropyStats {
    /// Bits saved over fixed-length packing.
    pub fn saved_bits(&self) -> u64 {
        self.fixed_bits.saturating_sub(self.coded_bits)
    }

    /// `coded_bits / fixed_bits` (1.0 when nothing was saved).
    pub fn ratio(&self) -> f64 {
        if self.fixed_bits == 0 {
            1.0
        } else {
            self.coded_bits as f64 / self.fixed_bits as f64
        }
    }
}

/// Histogram of `symbols` over the alphabet `0..2^bits`, normalised to sum to
/// `2^HISTOGRAM_BITS`, with every present symbol at frequency ≥ 1 and absent symbols at 0.
/// Returns all zeros for an empty input.
pub fn normalized_histogram(symbols: &[u8], bits: u8) -> Vec<u32> {
    let alphabet = 1usize << bits.min(MAX_BITS);
    let mut counts = [0u64; 256];
    for &s in symbols {
        counts[s as usize] += 1;
    }
    let counts = &counts[..alphabet];
    let total: u64 = counts.iter().sum();
    let mut freq = vec![0u32; alphabet];
    if total == 0 {
        return freq;
    }
    let target = 1u64 << HISTOGRAM_BITS;
    for (f, &c) in freq.iter_mut().zip(counts) {
        if c > 0 {
            *f = ((c * target / total).max(1)) as u32;
        }
    }
    let sum: u64 = freq.iter().map(|f| u64::from(*f)).sum();
    if sum < target {
        let most = argmax(counts.iter().copied());
        freq[most] += (target - sum) as u32;
    } else {
        // At most 256 symbols each keep ≥ 1 out of 2^14, so there is always room to give back.
        let mut excess = sum - target;
        while excess > 0 {
            let largest = argmax(freq.iter().map(|f| u64::from(*f)));
            let take = excess.min(u64::from(freq[largest]) - 1);
            if take == 0 {
                break;
            }
            freq[largest] -= take as u32;
            excess -= take;
        }
    }
    freq
}

fn argmax(values: impl Iterator<Item = u64>) -> usize {
    let mut best = (0usize, 0u64);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// The rANS model over the present symbols (dense indices) plus the maps between symbols and
/// dense indices.
struct DenseModel {
    model: DefaultContiguousCategoricalEntropyModel,
    symbols: Vec<u8>,
    dense: [u16; 256],
}

impl DenseModel {
    fn from_histogram(freq: &[u32]) -> Result<Self, CodecError> {
        let mut symbols = Vec::new();
        let mut probabilities = Vec::new();
        let mut dense = [u16::MAX; 256];
        for (s, &f) in freq.iter().enumerate() {
            if f > 0 {
                dense[s] = symbols.len() as u16;
                symbols.push(s as u8);
                probabilities.push(f << (MODEL_PRECISION - HISTOGRAM_BITS));
            }
        }
        let model =
            DefaultContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(
                &probabilities,
                false,
            )
            .map_err(|()| CodecError::EntropyCoding {
                reason: format!(
                    "histogram does not sum to 2^{HISTOGRAM_BITS} over {} present symbols",
                    symbols.len()
                ),
            })?;
        Ok(Self {
            model,
            symbols,
            dense,
        })
    }
}

/// Entropy-codes `bits`-bit symbols into a body: histogram varints then ANS words.
///
/// # Errors
/// [`CodecError::BitsOutOfRange`]; [`CodecError::SymbolOutOfRange`] for a symbol
/// `≥ 2^bits`; [`CodecError::EntropyCoding`] if the coder fails.
pub fn encode_symbols(symbols: &[u8], bits: u8) -> Result<Vec<u8>, CodecError> {
    check_bits(bits, "entropy coding")?;
    if let Some(index) = symbols.iter().position(|s| u32::from(*s) >> bits != 0) {
        return Err(CodecError::SymbolOutOfRange {
            index,
            symbol: u32::from(symbols[index]),
            bits,
        });
    }
    let freq = normalized_histogram(symbols, bits);
    let mut body = Vec::with_capacity(freq.len() * 2 + symbols.len() * bits as usize / 16);
    for &f in &freq {
        write_varint(&mut body, f);
    }
    if symbols.is_empty() {
        return Ok(body);
    }
    let model = DenseModel::from_histogram(&freq)?;
    let mut ans = DefaultAnsCoder::new();
    ans.encode_iid_symbols_reverse(
        symbols
            .iter()
            .map(|s| usize::from(model.dense[*s as usize])),
        model.model.as_view(),
    )
    .map_err(|e| CodecError::EntropyCoding {
        reason: format!("ANS encoding failed: {e:?}"),
    })?;
    let words = ans
        .into_compressed()
        .map_err(|e| CodecError::EntropyCoding {
            reason: format!("ANS flush failed: {e:?}"),
        })?;
    for w in words {
        body.extend_from_slice(&w.to_le_bytes());
    }
    Ok(body)
}

/// Decodes `count` symbols of `bits` bits from a body written by [`encode_symbols`].
///
/// # Errors
/// [`CodecError::EntropyCoding`] when the histogram is malformed (bad varint, frequency sum
/// not `2^HISTOGRAM_BITS`), the word section is not a whole number of `u32`s, or the coded
/// data does not hold exactly `count` symbols.
pub fn decode_symbols(body: &[u8], bits: u8, count: usize) -> Result<Vec<u8>, CodecError> {
    check_bits(bits, "entropy decoding")?;
    let alphabet = 1usize << bits;
    let mut freq = Vec::with_capacity(alphabet);
    let mut pos = 0;
    for symbol in 0..alphabet {
        let (f, used) = read_varint(&body[pos..]).ok_or_else(|| CodecError::EntropyCoding {
            reason: format!("histogram entry for symbol {symbol} is not a valid varint"),
        })?;
        if f > 1 << HISTOGRAM_BITS {
            return Err(CodecError::EntropyCoding {
                reason: format!(
                    "histogram entry for symbol {symbol} is {f}, above 2^{HISTOGRAM_BITS}"
                ),
            });
        }
        freq.push(f);
        pos += used;
    }
    let words_bytes = &body[pos..];
    if count == 0 {
        if !words_bytes.is_empty() || freq.iter().any(|f| *f != 0) {
            return Err(CodecError::EntropyCoding {
                reason: "an empty symbol stream must have an empty histogram and no words".into(),
            });
        }
        return Ok(Vec::new());
    }
    let sum: u32 = freq.iter().sum();
    if sum != 1 << HISTOGRAM_BITS {
        return Err(CodecError::EntropyCoding {
            reason: format!("histogram sums to {sum}, expected 2^{HISTOGRAM_BITS}"),
        });
    }
    if !words_bytes.len().is_multiple_of(4) {
        return Err(CodecError::EntropyCoding {
            reason: format!(
                "coded section has {} bytes, not a whole number of u32 words",
                words_bytes.len()
            ),
        });
    }
    let words: Vec<u32> = words_bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let model = DenseModel::from_histogram(&freq)?;
    let mut ans =
        DefaultAnsCoder::from_compressed(words).map_err(|_| CodecError::EntropyCoding {
            reason: "coded section ends in a zero word, which no ANS encoder writes".into(),
        })?;
    let mut out = Vec::with_capacity(count);
    for dense in ans.decode_iid_symbols(count, model.model.as_view()) {
        let dense = dense.map_err(|e| CodecError::EntropyCoding {
            reason: format!("ANS decoding failed: {e:?}"),
        })?;
        let symbol = model
            .symbols
            .get(dense)
            .ok_or_else(|| CodecError::EntropyCoding {
                reason: format!("decoded index {dense} names no present symbol"),
            })?;
        out.push(*symbol);
    }
    if !ans.is_empty() {
        return Err(CodecError::EntropyCoding {
            reason: format!("coded section holds data beyond the {count} symbols of the shape"),
        });
    }
    Ok(out)
}

fn write_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a LEB128 `u32` of at most 5 bytes; `None` when truncated, overlong or overflowing.
fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        let part = u32::from(b & 0x7f);
        if i == 4 && part > 0x0f {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            // Canonical form only: no redundant trailing zero groups.
            if i > 0 && b == 0 {
                return None;
            }
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn histogram_sums_to_target_and_keeps_rare_symbols() {
        let mut symbols = vec![0u8; 100_000];
        symbols[5] = 3;
        let freq = normalized_histogram(&symbols, 2);
        assert_eq!(freq.iter().sum::<u32>(), 1 << HISTOGRAM_BITS);
        assert_eq!(freq[3], 1);
        assert_eq!(freq[1], 0);
    }

    #[test]
    fn full_alphabet_histogram_fits() {
        let symbols: Vec<u8> = (0..=255u8).chain(std::iter::repeat_n(7, 10_000)).collect();
        let freq = normalized_histogram(&symbols, 8);
        assert_eq!(freq.iter().sum::<u32>(), 1 << HISTOGRAM_BITS);
        assert!(freq.iter().all(|f| *f >= 1));
    }

    #[test]
    fn a_single_symbol_costs_no_words() {
        let symbols = vec![5u8; 1000];
        let body = encode_symbols(&symbols, 4).unwrap();
        // 15 one-byte zeros + one two-byte 2^14, and at most a flushed state.
        assert!(body.len() <= 17 + 8, "body is {} bytes", body.len());
        assert_eq!(decode_symbols(&body, 4, 1000).unwrap(), symbols);
    }

    #[test]
    fn skewed_symbols_compress_below_fixed_length() {
        let symbols: Vec<u8> = (0..10_000u32)
            .map(|i| if i % 10 == 0 { (i % 16) as u8 } else { 0 })
            .collect();
        let body = encode_symbols(&symbols, 4).unwrap();
        assert!(
            body.len() < 10_000 * 4 / 8 / 3,
            "body is {} bytes",
            body.len()
        );
        assert_eq!(decode_symbols(&body, 4, symbols.len()).unwrap(), symbols);
    }

    #[test]
    fn wrong_count_is_detected() {
        let symbols: Vec<u8> = (0..500u32).map(|i| (i % 7) as u8).collect();
        let body = encode_symbols(&symbols, 3).unwrap();
        assert!(decode_symbols(&body, 3, 400).is_err());
    }

    #[test]
    fn symbol_wider_than_bits_is_rejected() {
        assert!(matches!(
            encode_symbols(&[1, 4], 2),
            Err(CodecError::SymbolOutOfRange { index: 1, .. })
        ));
    }

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0u32, 1, 127, 128, 16384, u32::MAX] {
            let mut buf = Vec::new();
            write_varint(&mut buf, v);
            assert_eq!(read_varint(&buf), Some((v, buf.len())));
        }
        assert_eq!(read_varint(&[0x80, 0x00]), None);
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]), None);
        assert_eq!(read_varint(&[0x80]), None);
    }

    proptest! {
        #[test]
        fn entropy_round_trips(bits in 1u8..=8, raw in proptest::collection::vec(any::<u8>(), 1..400)) {
            let symbols: Vec<u8> = raw.iter().map(|s| s & ((1u16 << bits) - 1) as u8).collect();
            let body = encode_symbols(&symbols, bits).unwrap();
            prop_assert_eq!(decode_symbols(&body, bits, symbols.len()).unwrap(), symbols);
        }
    }
}
