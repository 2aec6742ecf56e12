//! The crate's single error type.

use std::path::PathBuf;

use crate::codec::CodecId;

/// Everything that can go wrong while configuring a codec, encoding a feature, decoding a
/// payload, or training / saving / loading an autoencoder.
///
/// Decoding never panics on hostile input: every malformed payload maps to one of these
/// variants, and the message names the header field or byte range at fault.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The payload ends before a field that must be present.
    #[error("payload truncated: {field} needs bytes {needed_end} but the payload has {len}")]
    Truncated {
        /// The header field or body section being read.
        field: &'static str,
        /// The offset just past the field.
        needed_end: usize,
        /// The payload length.
        len: usize,
    },
    /// The first four bytes are not the coinfer feature magic.
    #[error("payload bytes 0..4 (magic) are {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
        /// The magic this crate writes.
        expected: [u8; 4],
    },
    /// The format version byte names a version this crate cannot read.
    #[error("payload byte 4 (format version) is {found}, this decoder reads version {supported}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version this crate reads and writes.
        supported: u8,
    },
    /// The codec kind byte names no known codec.
    #[error("payload byte 5 (codec kind) is {kind}, which names no known codec")]
    UnknownCodecKind {
        /// The kind byte found.
        kind: u8,
    },
    /// A header field holds a value no encoder writes (reserved bits, zero ratio, ...).
    #[error("payload header field `{field}` holds {value}: {reason}")]
    BadHeaderField {
        /// The header field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A bit width outside 1..=8.
    #[error("bit width {bits} is out of range 1..=8 (in {context})")]
    BitsOutOfRange {
        /// The bit width given.
        bits: u8,
        /// Where it came from (payload header, codec constructor, config).
        context: &'static str,
    },
    /// The payload was written by another codec than the one decoding it.
    #[error("payload was written by codec {found:?} but decoded with {expected:?}")]
    CodecMismatch {
        /// The decoder's codec id.
        expected: CodecId,
        /// The codec id in the payload header.
        found: CodecId,
    },
    /// A feature shape (from a tensor or a payload header) is empty, overflows or exceeds the cap.
    #[error("shape {shape:?} is invalid: {reason}")]
    InvalidShape {
        /// The shape `[B, C, H, W]`.
        shape: [u64; 4],
        /// Why it is rejected.
        reason: String,
    },
    /// A section's length does not match what the header implies.
    #[error("payload section `{field}` has {found} bytes, the header implies {expected}")]
    LengthMismatch {
        /// The section (body, ranges, histogram...).
        field: &'static str,
        /// The length implied by the header.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// The CRC32 trailer does not match the payload (bit flips, truncation, splicing).
    #[error("payload CRC32 mismatch: trailer says {stored:#010x}, bytes hash to {computed:#010x}")]
    CrcMismatch {
        /// The CRC stored in the last four bytes.
        stored: u32,
        /// The CRC computed over the rest.
        computed: u32,
    },
    /// A stored quantization range is not finite, inverted, or too wide for f32 arithmetic.
    #[error("quantization range {index} is [{min}, {max}]: {reason}")]
    InvalidRange {
        /// Range index (0 for per-tensor, the channel for per-channel).
        index: usize,
        /// Stored minimum.
        min: f32,
        /// Stored maximum.
        max: f32,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The feature to quantize holds a NaN or an infinity.
    #[error("feature element {index} is {value}, quantizing codecs need finite values")]
    NonFiniteFeature {
        /// Flat index of the first bad element.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A decoded symbol lies outside `0..2^bits`.
    #[error("symbol {symbol} at index {index} does not fit in {bits} bits")]
    SymbolOutOfRange {
        /// Flat index.
        index: usize,
        /// Symbol value.
        symbol: u32,
        /// Bit width.
        bits: u8,
    },
    /// The entropy-coded section (histogram or coded words) is malformed.
    #[error("entropy-coded section invalid: {reason}")]
    EntropyCoding {
        /// What is wrong.
        reason: String,
    },
    /// An image codec's encoder refused a sample, or an image file in a payload does not
    /// decode to the size and colour its header states.
    #[error("image codec {codec}, sample {sample}: {reason}")]
    Image {
        /// The codec (`png`, `jpeg-q75`, ...).
        codec: String,
        /// Index of the sample in the batch.
        sample: usize,
        /// The encoder's or decoder's message, or the mismatch found.
        reason: String,
    },
    /// A codec or training parameter is out of its valid range.
    #[error("invalid parameter `{field}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter name.
        field: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A tensor does not have the shape this codec or model expects.
    #[error("{what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was checked.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Reading a tensor's values back to the host failed.
    #[error("reading tensor data for {what}: {reason}")]
    TensorData {
        /// Which tensor.
        what: &'static str,
        /// burn's message.
        reason: String,
    },
    /// A burn record (autoencoder weights) could not be saved or loaded.
    #[error("autoencoder weights {path}: {reason}")]
    Record {
        /// The weights file.
        path: PathBuf,
        /// burn's message.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// JSON (a config or a codec family) could not be parsed.
    #[error("JSON in {context}: {source}")]
    Json {
        /// The file or value being parsed.
        context: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
}
