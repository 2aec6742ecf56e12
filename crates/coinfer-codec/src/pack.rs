//! Bit-packing of `b`-bit symbols (1 ≤ b ≤ 8) into a dense little-endian bit stream.
//!
//! Symbol `i` occupies bits `[i·b, (i+1)·b)` of the stream, least significant bit first, so
//! eight symbols always fill exactly `b` bytes. Both directions work on whole groups of eight
//! symbols with the bit width as a const generic, which lets the compiler unroll the shifts.
//! Padding bits in the last byte are zero; [`unpack`] rejects a stream where they are not, so
//! every symbol sequence has exactly one packed form.

use crate::error::CodecError;

/// Number of bytes that `count` symbols of `bits` bits occupy once packed, or `None` on
/// overflow.
pub fn packed_len(count: usize, bits: u8) -> Option<usize> {
    count
        .checked_mul(bits as usize)
        .map(|total| total.div_ceil(8))
}

/// Packs `symbols` (each `< 2^bits`; higher bits are masked off) into `out`, which must be
/// exactly [`packed_len`]`(symbols.len(), bits)` bytes long.
///
/// # Errors
/// [`CodecError::BitsOutOfRange`] for `bits` outside 1..=8 and [`CodecError::LengthMismatch`]
/// when `out` has the wrong length.
pub fn pack(symbols: &[u8], bits: u8, out: &mut [u8]) -> Result<(), CodecError> {
    check_lengths(symbols.len(), bits, out.len(), "packed output")?;
    match bits {
        1 => pack_const::<1>(symbols, out),
        2 => pack_const::<2>(symbols, out),
        3 => pack_const::<3>(symbols, out),
        4 => pack_const::<4>(symbols, out),
        5 => pack_const::<5>(symbols, out),
        6 => pack_const::<6>(symbols, out),
        7 => pack_const::<7>(symbols, out),
        _ => out.copy_from_slice(symbols),
    }
    Ok(())
}

/// Unpacks `out.len()` symbols of `bits` bits from `packed`, which must be exactly
/// [`packed_len`]`(out.len(), bits)` bytes long with zero padding bits.
///
/// # Errors
/// [`CodecError::BitsOutOfRange`], [`CodecError::LengthMismatch`], or
/// [`CodecError::BadHeaderField`] when the padding bits of the last byte are not zero.
pub fn unpack(packed: &[u8], bits: u8, out: &mut [u8]) -> Result<(), CodecError> {
    check_lengths(out.len(), bits, packed.len(), "packed body")?;
    match bits {
        1 => unpack_const::<1>(packed, out),
        2 => unpack_const::<2>(packed, out),
        3 => unpack_const::<3>(packed, out),
        4 => unpack_const::<4>(packed, out),
        5 => unpack_const::<5>(packed, out),
        6 => unpack_const::<6>(packed, out),
        7 => unpack_const::<7>(packed, out),
        _ => out.copy_from_slice(packed),
    }
    let used_bits = (out.len() * bits as usize) % 8;
    if let (Some(&last), true) = (packed.last(), used_bits != 0) {
        let padding = last >> used_bits;
        if padding != 0 {
            return Err(CodecError::BadHeaderField {
                field: "packed body padding bits",
                value: u64::from(padding),
                reason: "the unused high bits of the last byte must be zero",
            });
        }
    }
    Ok(())
}

fn check_lengths(
    count: usize,
    bits: u8,
    bytes: usize,
    field: &'static str,
) -> Result<(), CodecError> {
    if !(1..=8).contains(&bits) {
        return Err(CodecError::BitsOutOfRange {
            bits,
            context: "bit packing",
        });
    }
    let expected = packed_len(count, bits).ok_or(CodecError::LengthMismatch {
        field,
        expected: usize::MAX,
        found: bytes,
    })?;
    if expected != bytes {
        return Err(CodecError::LengthMismatch {
            field,
            expected,
            found: bytes,
        });
    }
    Ok(())
}

#[inline(always)]
fn gather<const B: usize>(symbols: &[u8]) -> u64 {
    let mask = (1u64 << B) - 1;
    let mut acc = 0u64;
    for (i, &s) in symbols.iter().enumerate() {
        acc |= (u64::from(s) & mask) << (i * B);
    }
    acc
}

#[inline(always)]
fn scatter<const B: usize>(acc: u64, out: &mut [u8]) {
    let mask = (1u64 << B) - 1;
    for (i, o) in out.iter_mut().enumerate() {
        *o = ((acc >> (i * B)) & mask) as u8;
    }
}

// Lengths are checked by the callers: `out` (resp. `packed`) holds exactly
// `ceil(symbols · B / 8)` bytes, so whole groups of 8 symbols map to whole groups of B bytes
// and the tail group to the remaining `ceil(tail · B / 8)` bytes.
fn pack_const<const B: usize>(symbols: &[u8], out: &mut [u8]) {
    let groups = symbols.chunks_exact(8);
    let tail = groups.remainder();
    let full = symbols.len() / 8;
    let (body, rest) = out.split_at_mut(full * B);
    for (group, bytes) in groups.zip(body.chunks_exact_mut(B)) {
        bytes.copy_from_slice(&gather::<B>(group).to_le_bytes()[..B]);
    }
    if !tail.is_empty() {
        let acc = gather::<B>(tail).to_le_bytes();
        rest.copy_from_slice(&acc[..rest.len()]);
    }
}

fn unpack_const<const B: usize>(packed: &[u8], out: &mut [u8]) {
    let full = out.len() / 8;
    let (body, rest) = packed.split_at(full * B);
    let mut groups = out.chunks_exact_mut(8);
    for (group, bytes) in (&mut groups).zip(body.chunks_exact(B)) {
        let mut word = [0u8; 8];
        word[..B].copy_from_slice(bytes);
        scatter::<B>(u64::from_le_bytes(word), group);
    }
    let tail = groups.into_remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        scatter::<B>(u64::from_le_bytes(word), tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn four_bit_layout_is_low_nibble_first() {
        let mut out = [0u8; 2];
        pack(&[0x1, 0x2, 0x3], 4, &mut out).unwrap();
        assert_eq!(out, [0x21, 0x03]);
    }

    #[test]
    fn three_bit_layout_crosses_bytes() {
        // symbols 0b101, 0b011, 0b111 -> bits 101 | 011<<3 | 111<<6 = 0b1_1101_1101
        let mut out = [0u8; 2];
        pack(&[0b101, 0b011, 0b111], 3, &mut out).unwrap();
        assert_eq!(out, [0b1101_1101, 0b1]);
    }

    #[test]
    fn wrong_output_length_is_an_error() {
        let mut out = [0u8; 3];
        assert!(matches!(
            pack(&[1, 2, 3], 4, &mut out),
            Err(CodecError::LengthMismatch { expected: 2, .. })
        ));
    }

    #[test]
    fn nonzero_padding_is_rejected() {
        let mut out = [0u8; 3];
        assert!(matches!(
            unpack(&[0x21, 0xf3], 4, &mut out),
            Err(CodecError::BadHeaderField { .. })
        ));
    }

    #[test]
    fn bits_out_of_range_is_rejected() {
        let mut out = [0u8; 1];
        assert!(matches!(
            pack(&[1], 9, &mut out),
            Err(CodecError::BitsOutOfRange { bits: 9, .. })
        ));
        assert!(matches!(
            unpack(&[], 0, &mut []),
            Err(CodecError::BitsOutOfRange { bits: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trips(bits in 1u8..=8, raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let symbols: Vec<u8> = raw.iter().map(|s| s & ((1u16 << bits) - 1) as u8).collect();
            let mut packed = vec![0u8; packed_len(symbols.len(), bits).unwrap()];
            pack(&symbols, bits, &mut packed).unwrap();
            let mut back = vec![0u8; symbols.len()];
            unpack(&packed, bits, &mut back).unwrap();
            prop_assert_eq!(back, symbols);
        }
    }
}
