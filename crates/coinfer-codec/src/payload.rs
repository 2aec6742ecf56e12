//! [`Payload`]: the self-describing wire format every codec writes.

use crate::codec::CodecId;
use crate::entropy;
use crate::error::CodecError;
use crate::pack;
use crate::quantize::QuantRange;
use crate::wire::{CodecWire, KIND_AUTOENCODER};

/// First four bytes of every payload.
pub const MAGIC: [u8; 4] = *b"CNFC";
/// Version of the layout described in this module (written by every encoder).
pub const FORMAT_VERSION: u8 = 2;
/// The version before kernel and stride were recorded; still read.
pub const FORMAT_VERSION_1: u8 = 1;
/// Bytes before the ranges.
pub const HEADER_LEN: usize = 28;
/// Bytes of the CRC32 trailer.
pub const CRC_LEN: usize = 4;
/// Largest feature (B·C·H·W elements) a payload may describe: 64 Mi elements (256 MiB as f32).
pub const MAX_FEATURE_ELEMENTS: u64 = 1 << 26;

const FLAG_PER_CHANNEL: u8 = 1;
const FLAG_ENTROPY: u8 = 1 << 1;
const FLAG_ENTROPY_BODY: u8 = 1 << 2;

/// An encoded feature: header, ranges, body and CRC, ready to send — the self-describing
/// wire format every codec writes.
///
/// ```text
/// offset  size  field
///  0      4     magic b"CNFC"
///  4      1     format version (2)
///  5      1     codec kind: 0 float32, 1 uniform quantization, 2 autoencoder, 3 image
///  6      1     bits: 0 for float32, the format for an image (1 PNG, 2 JPEG, 3 WebP,
///               4 lossless WebP), 1..=8 otherwise
///  7      1     flags: bit 0 per-channel ranges, bit 1 entropy coding requested,
///               bit 2 body is entropy coded (else fixed-length packed); other bits zero
///  8      2     autoencoder ratio r, or image quality (u16 LE; 0 for the other kinds)
/// 10      1     autoencoder kernel (odd, 1..=15; 0 for the other kinds)
/// 11      1     autoencoder stride (1..=8; 0 for the other kinds)
/// 12     16     shape B, C, H, W (u32 LE each) of the feature
/// 28      8·n   ranges (f32 min, f32 max) LE: n = 1 per tensor, C per channel, 0 otherwise
///  …            body: raw f32 LE, packed b-bit symbols, histogram + rANS words, or an
///               image codec's normalisation and image files (see [`crate::ImageCodec`])
/// end−4   4     CRC32 (IEEE, crc32fast) of every byte before it
/// ```
/// For the autoencoder the body holds the `[B, ceil(C/r), ceil(H/s), ceil(W/s)]` latent symbols.
/// The codec fields (kind, bits, the two codec flags, ratio, kernel, stride) are a
/// [`CodecWire`]: the one definition of a codec's code, shared with the runtime's frames.
///
/// Version 1 (before kernel and stride were recorded) had zeros at bytes 10 and 11; it is
/// still read, its autoencoders as kernel 1, stride 1.
///
/// [`read_header`] validates magic, version and CRC before trusting anything else, then every
/// field, and caps the shape at [`MAX_FEATURE_ELEMENTS`] so hostile headers cannot make the
/// decoder allocate without bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The wire bytes.
    pub bytes: Vec<u8>,
}

impl Payload {
    /// Size on the wire in bits (header and CRC included).
    pub fn bits(&self) -> u64 {
        self.bytes.len() as u64 * 8
    }

    /// Size on the wire in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the payload has no bytes (never true for an encoder's output).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The parsed, validated header.
    ///
    /// # Errors
    /// As [`read_header`].
    pub fn header(&self) -> Result<PayloadHeader, CodecError> {
        read_header(&self.bytes).map(|(header, _)| header)
    }
}

impl From<Payload> for Vec<u8> {
    fn from(payload: Payload) -> Self {
        payload.bytes
    }
}

/// What a payload header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadHeader {
    /// The codec (and its parameters) that wrote the payload.
    pub codec: CodecId,
    /// Feature shape `[B, C, H, W]`.
    pub shape: [usize; 4],
    /// Whether the body is entropy coded (only when the codec requested it and it paid off).
    pub entropy_coded_body: bool,
}

impl PayloadHeader {
    /// Number of f32 ranges stored after the header.
    pub fn range_count(&self) -> usize {
        match self.codec {
            CodecId::Quant {
                per_channel: true, ..
            } => self.shape[1],
            CodecId::Quant { .. } => 1,
            CodecId::Float32 | CodecId::Autoencoder { .. } | CodecId::Image { .. } => 0,
        }
    }

    /// Number of elements `B·C·H·W` of the feature.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Checks a feature shape: every dimension ≥ 1 and ≤ `u32::MAX`, product ≤
/// [`MAX_FEATURE_ELEMENTS`]. Returns the element count.
///
/// # Errors
/// [`CodecError::InvalidShape`] saying which rule failed.
pub fn check_shape(shape: [u64; 4]) -> Result<usize, CodecError> {
    let invalid = |reason: String| CodecError::InvalidShape { shape, reason };
    if let Some(axis) = shape.iter().position(|d| *d == 0) {
        return Err(invalid(format!("dimension {axis} is zero")));
    }
    if let Some(axis) = shape.iter().position(|d| *d > u64::from(u32::MAX)) {
        return Err(invalid(format!("dimension {axis} does not fit in u32")));
    }
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| invalid("the element count overflows u64".into()))?;
    if elements > MAX_FEATURE_ELEMENTS {
        return Err(invalid(format!(
            "{elements} elements exceed the cap of {MAX_FEATURE_ELEMENTS}"
        )));
    }
    usize::try_from(elements).map_err(|_| invalid("the element count overflows usize".into()))
}

/// Checks a tensor shape given as `usize`.
pub(crate) fn check_feature_shape(shape: [usize; 4]) -> Result<usize, CodecError> {
    check_shape(shape.map(|d| d as u64))
}

/// Builds a payload: header, then sections, then the CRC.
pub(crate) struct PayloadWriter {
    bytes: Vec<u8>,
}

impl PayloadWriter {
    pub(crate) fn new(header: &PayloadHeader, capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN + capacity + CRC_LEN);
        let wire = header.codec.to_wire();
        let flags = (u8::from(wire.per_channel) * FLAG_PER_CHANNEL)
            | (u8::from(wire.entropy) * FLAG_ENTROPY)
            | (u8::from(header.entropy_coded_body) * FLAG_ENTROPY_BODY);
        bytes.extend_from_slice(&MAGIC);
        bytes.push(FORMAT_VERSION);
        bytes.push(wire.kind);
        bytes.push(wire.bits);
        bytes.push(flags);
        bytes.extend_from_slice(&wire.ratio.to_le_bytes());
        bytes.push(wire.kernel);
        bytes.push(wire.stride);
        for d in header.shape {
            // Shapes were checked by `check_shape`, so every dimension fits in u32.
            bytes.extend_from_slice(&(d as u32).to_le_bytes());
        }
        Self { bytes }
    }

    pub(crate) fn ranges(mut self, ranges: &[QuantRange]) -> Self {
        for r in ranges {
            self.bytes.extend_from_slice(&r.min.to_le_bytes());
            self.bytes.extend_from_slice(&r.max.to_le_bytes());
        }
        self
    }

    pub(crate) fn body(mut self, body: &[u8]) -> Self {
        self.bytes.extend_from_slice(body);
        self
    }

    /// Mutable access to append a body in place (f32 values).
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub(crate) fn finish(mut self) -> Payload {
        let crc = crc32fast::hash(&self.bytes);
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        Payload { bytes: self.bytes }
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses and validates a payload's header; returns it with the sections between the header
/// and the CRC (ranges then body).
///
/// Checks, in order: length for the fixed header, magic, version, CRC, flags, the codec
/// fields ([`CodecWire::codec`]), shape. Version-1 payloads are read too (their bytes 10 and
/// 11 must be zero; their autoencoders are 1×1, stride 1).
///
/// # Errors
/// [`CodecError::Truncated`], [`CodecError::BadMagic`], [`CodecError::UnsupportedVersion`],
/// [`CodecError::CrcMismatch`], [`CodecError::UnknownCodecKind`],
/// [`CodecError::BitsOutOfRange`], [`CodecError::BadHeaderField`],
/// [`CodecError::InvalidShape`].
pub fn read_header(bytes: &[u8]) -> Result<(PayloadHeader, &[u8]), CodecError> {
    if bytes.len() < 5 {
        return Err(CodecError::Truncated {
            field: "magic and version",
            needed_end: 5,
            len: bytes.len(),
        });
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != MAGIC {
        return Err(CodecError::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    let version = bytes[4];
    if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
        return Err(CodecError::UnsupportedVersion {
            found: bytes[4],
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(CodecError::Truncated {
            field: "header and CRC",
            needed_end: HEADER_LEN + CRC_LEN,
            len: bytes.len(),
        });
    }
    let (content, trailer) = bytes.split_at(bytes.len() - CRC_LEN);
    let stored = u32_at(trailer, 0);
    let computed = crc32fast::hash(content);
    if stored != computed {
        return Err(CodecError::CrcMismatch { stored, computed });
    }
    let (kind, bits, flags, ratio) = (bytes[5], bytes[6], bytes[7], u16_at(bytes, 8));
    let (kernel, stride) = (bytes[10], bytes[11]);
    let bad = |field, value: u64, reason| CodecError::BadHeaderField {
        field,
        value,
        reason,
    };
    if flags & !(FLAG_PER_CHANNEL | FLAG_ENTROPY | FLAG_ENTROPY_BODY) != 0 {
        return Err(bad("flags", flags.into(), "unknown flag bits are set"));
    }
    let per_channel = flags & FLAG_PER_CHANNEL != 0;
    let entropy = flags & FLAG_ENTROPY != 0;
    let entropy_coded_body = flags & FLAG_ENTROPY_BODY != 0;
    if entropy_coded_body && !entropy {
        return Err(bad(
            "flags",
            flags.into(),
            "an entropy-coded body requires the entropy flag",
        ));
    }
    let (kernel, stride) = if version == FORMAT_VERSION_1 {
        if kernel != 0 || stride != 0 {
            return Err(bad(
                "reserved",
                u64::from(u16_at(bytes, 10)),
                "reserved bytes of a version-1 payload must be zero",
            ));
        }
        if kind == KIND_AUTOENCODER {
            (1, 1)
        } else {
            (0, 0)
        }
    } else {
        (kernel, stride)
    };
    let codec = CodecWire {
        kind,
        bits,
        per_channel,
        entropy,
        ratio,
        kernel,
        stride,
    }
    .codec()?;
    let raw_shape = [0, 1, 2, 3].map(|i| u64::from(u32_at(bytes, 12 + 4 * i)));
    check_shape(raw_shape)?;
    let header = PayloadHeader {
        codec,
        shape: raw_shape.map(|d| d as usize),
        entropy_coded_body,
    };
    Ok((header, &content[HEADER_LEN..]))
}

/// Splits `sections` into the header's ranges (validated) and the body.
pub(crate) fn read_ranges<'a>(
    header: &PayloadHeader,
    sections: &'a [u8],
) -> Result<(Vec<QuantRange>, &'a [u8]), CodecError> {
    let count = header.range_count();
    let needed = count * 8;
    if sections.len() < needed {
        return Err(CodecError::Truncated {
            field: "quantization ranges",
            needed_end: HEADER_LEN + needed,
            len: HEADER_LEN + sections.len(),
        });
    }
    let (raw, body) = sections.split_at(needed);
    let ranges = raw
        .chunks_exact(8)
        .enumerate()
        .map(|(i, r)| {
            let min = f32::from_le_bytes([r[0], r[1], r[2], r[3]]);
            let max = f32::from_le_bytes([r[4], r[5], r[6], r[7]]);
            QuantRange::new(i, min, max)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ranges, body))
}

/// Encodes symbols as a body: entropy coded when requested and smaller than fixed-length
/// packing, else packed. Returns the body, whether it is entropy coded, and the packed size.
pub(crate) fn symbol_body(
    symbols: &[u8],
    bits: u8,
    entropy: bool,
) -> Result<(Vec<u8>, bool, usize), CodecError> {
    let packed_len = pack::packed_len(symbols.len(), bits).ok_or(CodecError::LengthMismatch {
        field: "packed body",
        expected: usize::MAX,
        found: symbols.len(),
    })?;
    if entropy {
        let coded = entropy::encode_symbols(symbols, bits)?;
        if coded.len() < packed_len {
            return Ok((coded, true, packed_len));
        }
    }
    let mut packed = vec![0u8; packed_len];
    pack::pack(symbols, bits, &mut packed)?;
    Ok((packed, false, packed_len))
}

/// Reads `count` symbols from a body written by [`symbol_body`].
pub(crate) fn read_symbol_body(
    body: &[u8],
    bits: u8,
    count: usize,
    entropy_coded: bool,
) -> Result<Vec<u8>, CodecError> {
    if entropy_coded {
        return entropy::decode_symbols(body, bits, count);
    }
    let expected = pack::packed_len(count, bits).unwrap_or(usize::MAX);
    if body.len() != expected {
        return Err(CodecError::LengthMismatch {
            field: "packed body",
            expected,
            found: body.len(),
        });
    }
    let mut symbols = vec![0u8; count];
    pack::unpack(body, bits, &mut symbols)?;
    Ok(symbols)
}

/// Fixed header, trailer and range bits of a payload (everything but the body).
pub(crate) fn overhead_bits(range_count: u64) -> u64 {
    ((HEADER_LEN + CRC_LEN) as u64 + 8 * range_count) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(codec: CodecId) -> PayloadHeader {
        PayloadHeader {
            codec,
            shape: [1, 2, 3, 4],
            entropy_coded_body: false,
        }
    }

    #[test]
    fn header_round_trips() {
        for codec in [
            CodecId::Float32,
            CodecId::Quant {
                bits: 3,
                per_channel: true,
                entropy: true,
            },
            CodecId::Autoencoder {
                ratio: 16,
                bits: 2,
                entropy: false,
                kernel: 3,
                stride: 2,
            },
        ] {
            let payload = PayloadWriter::new(&header(codec), 0).finish();
            assert_eq!(payload.len(), HEADER_LEN + CRC_LEN);
            let (parsed, rest) = read_header(&payload.bytes).unwrap();
            assert_eq!(parsed, header(codec));
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn shape_rules() {
        assert!(check_shape([1, 16, 14, 14]).is_ok());
        assert!(check_shape([1, 0, 14, 14]).is_err());
        assert!(check_shape([u64::from(u32::MAX); 4]).is_err());
        assert!(check_shape([1 << 13, 1 << 13, 2, 1]).is_err());
        assert!(check_shape([1 << 32, 1, 1, 1]).is_err());
    }

    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - CRC_LEN;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn each_header_field_is_checked() {
        let base = PayloadWriter::new(
            &header(CodecId::Quant {
                bits: 4,
                per_channel: false,
                entropy: false,
            }),
            0,
        )
        .finish()
        .bytes;
        let with = |at: usize, value: u8| {
            let mut b = base.clone();
            b[at] = value;
            read_header(&reseal(b)).map(|(h, _)| h)
        };
        assert!(matches!(with(0, b'X'), Err(CodecError::BadMagic { .. })));
        assert!(matches!(
            with(4, 9),
            Err(CodecError::UnsupportedVersion { found: 9, .. })
        ));
        assert!(matches!(
            with(5, 7),
            Err(CodecError::UnknownCodecKind { kind: 7 })
        ));
        assert!(matches!(
            with(6, 9),
            Err(CodecError::BitsOutOfRange { bits: 9, .. })
        ));
        assert!(matches!(
            with(6, 0),
            Err(CodecError::BitsOutOfRange { bits: 0, .. })
        ));
        assert!(matches!(
            with(7, 0x80),
            Err(CodecError::BadHeaderField { field: "flags", .. })
        ));
        assert!(matches!(
            with(7, FLAG_ENTROPY_BODY),
            Err(CodecError::BadHeaderField { field: "flags", .. })
        ));
        assert!(matches!(
            with(8, 1),
            Err(CodecError::BadHeaderField { field: "ratio", .. })
        ));
        assert!(matches!(
            with(10, 1),
            Err(CodecError::BadHeaderField {
                field: "kernel",
                ..
            })
        ));
        assert!(matches!(
            with(11, 1),
            Err(CodecError::BadHeaderField {
                field: "stride",
                ..
            })
        ));
        assert!(matches!(with(12, 0), Err(CodecError::InvalidShape { .. })));
        let mut flipped = base.clone();
        flipped[13] ^= 0x10;
        assert!(matches!(
            read_header(&flipped),
            Err(CodecError::CrcMismatch { .. })
        ));
        assert!(matches!(
            read_header(&base[..10]),
            Err(CodecError::Truncated { .. })
        ));
    }

    /// A payload as version 1 wrote it: same layout, zeros at bytes 10 and 11.
    fn as_version_1(codec: CodecId) -> Vec<u8> {
        let mut bytes = PayloadWriter::new(&header(codec), 0).finish().bytes;
        bytes[4] = FORMAT_VERSION_1;
        bytes[10] = 0;
        bytes[11] = 0;
        reseal(bytes)
    }

    #[test]
    fn version_1_payloads_still_read_with_1x1_autoencoders() {
        for codec in [
            CodecId::Float32,
            CodecId::quant(4, true),
            CodecId::autoencoder(4, 2),
        ] {
            let (parsed, _) = read_header(&as_version_1(codec)).unwrap();
            assert_eq!(parsed.codec, codec);
        }
        let mut bytes = as_version_1(CodecId::quant(4, true));
        bytes[10] = 3;
        assert!(matches!(
            read_header(&reseal(bytes)),
            Err(CodecError::BadHeaderField {
                field: "reserved",
                ..
            })
        ));
        let mut bytes = as_version_1(CodecId::Float32);
        bytes[4] = 3;
        assert!(matches!(
            read_header(&reseal(bytes)),
            Err(CodecError::UnsupportedVersion { found: 3, .. })
        ));
    }
}
