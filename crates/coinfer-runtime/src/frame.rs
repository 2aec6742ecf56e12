//! The binary framing between device clients and edge servers.
//!
//! Every message is one frame: a fixed 56-byte header, a payload, and a CRC32 trailer.
//!
//! ```text
//! offset  size  type      field
//!  0      4     [u8; 4]   magic b"CNFR"
//!  4      2     u16 LE    protocol version (1)
//!  6      1     u8        kind: 1 Hello, 2 Infer, 3 Result, 4 Error, 5 Bye
//!  7      1     u8        flags, zero (reserved)
//!  8      8     u64 LE    request id
//! 16     16     [u8; 16]  plan tag: FNV-1a-128 of the plan digest string
//! 32      2     u16 LE    codec word: bits 0-3 bit width, bit 4 per-channel, bit 5 entropy,
//!                         bits 8-9 kind (0 float32, 1 quant, 2 autoencoder), others zero
//! 34      2     u16 LE    codec ratio (autoencoder r, else 0)
//! 36     16     4 × u32   shape [B, C, H, W] (meaning per kind, see below)
//! 52      4     u32 LE    payload length n
//! 56      n     bytes     payload (per kind, see below)
//! 56+n    4     u32 LE    CRC32 (IEEE, crc32fast) of bytes 0..56+n
//! ```
//!
//! | kind   | shape                         | payload                                          |
//! |--------|-------------------------------|--------------------------------------------------|
//! | Hello  | `[1, C, H, W]` split feature  | UTF-8 plan digest (at most 256 bytes)            |
//! | Infer  | `[B, C, H, W]` feature        | the codec's payload bytes                        |
//! | Result | `[B, classes, 1, 1]`          | 32-byte [`EdgeTiming`], then `B·classes` f32 LE  |
//! | Error  | zeros                         | u16 LE [`ErrorCode`], UTF-8 message              |
//! | Bye    | zeros                         | empty                                            |
//!
//! Receivers check magic, version and the announced length against their maximum frame size
//! before allocating; everything else is checked after the CRC, so errors found there leave
//! the stream in sync (see [`RuntimeError::keeps_stream_in_sync`]).

use std::fmt;
use std::io::{ErrorKind, Read, Write};

use coinfer_codec::CodecId;

use crate::error::{ErrorCode, RuntimeError};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"CNFR";
/// The protocol version this build reads and writes.
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 56;
/// Bytes of the CRC32 trailer.
pub const CRC_LEN: usize = 4;
/// Default maximum frame size (header, payload and trailer): 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
/// Longest plan digest a Hello frame may carry.
pub const MAX_DIGEST_LEN: usize = 256;
/// Longest error message an Error frame carries; longer messages are cut on a char boundary.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Bytes of [`EdgeTiming`] at the start of a Result payload.
pub const TIMING_LEN: usize = 32;

/// What a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Handshake: the client's plan digest, codec and feature shape; the server echoes its own.
    Hello,
    /// One encoded feature to run through the edge half.
    Infer,
    /// The logits for one Infer frame, with the edge's timing.
    Result,
    /// A typed error answering a frame.
    Error,
    /// The client is done; the server closes the connection.
    Bye,
}

impl FrameKind {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Hello => 1,
            Self::Infer => 2,
            Self::Result => 3,
            Self::Error => 4,
            Self::Bye => 5,
        }
    }

    /// The kind for a wire byte, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Hello),
            2 => Some(Self::Infer),
            3 => Some(Self::Result),
            4 => Some(Self::Error),
            5 => Some(Self::Bye),
            _ => None,
        }
    }
}

/// A 128-bit fingerprint of a plan digest string (FNV-1a-128), sent in every frame so the
/// server can refuse features computed under another plan.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlanTag(pub [u8; 16]);

impl PlanTag {
    /// The tag of a plan digest.
    pub fn of(digest: &str) -> Self {
        const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        let hash = digest
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
        Self(hash.to_le_bytes())
    }
}

impl fmt::Debug for PlanTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanTag({self})")
    }
}

impl fmt::Display for PlanTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// How long the edge spent on one request, sent back in every Result frame (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdgeTiming {
    /// From the request's arrival at the worker queue to the start of its decode (includes
    /// the dynamic-batching window).
    pub queue_us: u64,
    /// Decoding the feature payload.
    pub decode_us: u64,
    /// The edge half's forward pass (for a merged batch: the whole batch's pass).
    pub edge_us: u64,
    /// How many requests shared the forward pass (1 without dynamic batching).
    pub batch_requests: u32,
}

/// What a frame carries, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameBody {
    /// Handshake with the sender's plan digest.
    Hello {
        /// The plan digest (at most [`MAX_DIGEST_LEN`] bytes).
        digest: String,
    },
    /// An encoded feature.
    Infer {
        /// The codec's payload bytes.
        payload: Vec<u8>,
    },
    /// Logits answering an Infer frame.
    Result {
        /// The edge's timing.
        timing: EdgeTiming,
        /// `B·classes` logits, row-major.
        logits: Vec<f32>,
    },
    /// A typed error.
    Error {
        /// The reason.
        code: ErrorCode,
        /// A human-readable message naming the culprit.
        message: String,
    },
    /// End of conversation.
    Bye,
}

impl FrameBody {
    /// The kind of frame this body travels in.
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::Hello { .. } => FrameKind::Hello,
            Self::Infer { .. } => FrameKind::Infer,
            Self::Result { .. } => FrameKind::Result,
            Self::Error { .. } => FrameKind::Error,
            Self::Bye => FrameKind::Bye,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The request this frame starts or answers (0 for handshakes).
    pub request_id: u64,
    /// The sender's plan tag.
    pub plan: PlanTag,
    /// The sender's codec.
    pub codec: CodecId,
    /// The shape field (see the module docs for its meaning per kind).
    pub shape: [u32; 4],
    /// The kind-specific content.
    pub body: FrameBody,
}

impl Frame {
    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        self.body.kind()
    }

    /// A Hello frame for `digest`, announcing `codec` and the per-sample feature shape.
    pub fn hello(digest: &str, codec: CodecId, feature: [usize; 3]) -> Result<Self, RuntimeError> {
        let [c, h, w] = feature;
        Ok(Self {
            request_id: 0,
            plan: PlanTag::of(digest),
            codec,
            shape: [1, dim_u32(c)?, dim_u32(h)?, dim_u32(w)?],
            body: FrameBody::Hello {
                digest: digest.to_string(),
            },
        })
    }

    /// An Error frame answering `request_id`; the message is cut to [`MAX_MESSAGE_LEN`] bytes.
    pub fn error(
        request_id: u64,
        plan: PlanTag,
        codec: CodecId,
        code: ErrorCode,
        message: &str,
    ) -> Self {
        let mut end = message.len().min(MAX_MESSAGE_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            request_id,
            plan,
            codec,
            shape: [0; 4],
            body: FrameBody::Error {
                code,
                message: message[..end].to_string(),
            },
        }
    }

    /// A Bye frame.
    pub fn bye(plan: PlanTag, codec: CodecId) -> Self {
        Self {
            request_id: 0,
            plan,
            codec,
            shape: [0; 4],
            body: FrameBody::Bye,
        }
    }

    /// The shape as `usize` dimensions.
    pub fn shape_usize(&self) -> [usize; 4] {
        self.shape.map(|d| d as usize)
    }
}

/// A dimension as the wire's `u32`.
pub(crate) fn dim_u32(d: usize) -> Result<u32, RuntimeError> {
    u32::try_from(d).map_err(|_| RuntimeError::Encode(format!("dimension {d} does not fit in u32")))
}

/// The codec as its wire `(word, ratio)`.
pub fn codec_to_wire(codec: CodecId) -> Result<(u16, u16), RuntimeError> {
    codec
        .check()
        .map_err(|e| RuntimeError::Encode(format!("codec {codec}: {e}")))?;
    let pack = |kind: u16, bits: u8, per_channel: bool, entropy: bool| {
        (kind << 8) | u16::from(bits) | (u16::from(per_channel) << 4) | (u16::from(entropy) << 5)
    };
    Ok(match codec {
        CodecId::Float32 => (pack(0, 0, false, false), 0),
        CodecId::Quant {
            bits,
            per_channel,
            entropy,
        } => (pack(1, bits, per_channel, entropy), 0),
        CodecId::Autoencoder {
            ratio,
            bits,
            entropy,
        } => (pack(2, bits, false, entropy), ratio),
    })
}

/// The codec named by a wire `(word, ratio)`; `request_id` is for the error message.
pub fn codec_from_wire(word: u16, ratio: u16, request_id: u64) -> Result<CodecId, RuntimeError> {
    let bad = |reason: &'static str| RuntimeError::BadField {
        request_id,
        field: "codec",
        value: format!("word {word:#06x}, ratio {ratio}"),
        reason,
    };
    if word & !0x033f != 0 {
        return Err(bad("reserved bits of the codec word are set"));
    }
    let bits = (word & 0x0f) as u8;
    let per_channel = word & 0x10 != 0;
    let entropy = word & 0x20 != 0;
    let codec = match word >> 8 {
        0 if word == 0 && ratio == 0 => CodecId::Float32,
        0 => return Err(bad("float32 has no bits, flags or ratio")),
        1 if ratio == 0 => CodecId::Quant {
            bits,
            per_channel,
            entropy,
        },
        1 => return Err(bad("only autoencoders carry a ratio")),
        2 if !per_channel => CodecId::Autoencoder {
            ratio,
            bits,
            entropy,
        },
        2 => return Err(bad("autoencoder latents have no per-channel ranges")),
        _ => return Err(bad("unknown codec kind")),
    };
    codec
        .check()
        .map_err(|_| bad("bit width outside 1..=8 or zero ratio"))?;
    Ok(codec)
}

/// Serialises a frame: header, payload, CRC32.
///
/// # Errors
/// [`RuntimeError::Encode`] when a field does not fit the wire (payload over 4 GiB, a digest
/// over [`MAX_DIGEST_LEN`], logits that do not fill the shape, a non-zero shape on Error or Bye)
/// — everything this function accepts, [`decode_frame`] reads back unchanged.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, RuntimeError> {
    let (word, ratio) = codec_to_wire(frame.codec)?;
    let payload = body_bytes(frame)?;
    let len = u32::try_from(payload.len()).map_err(|_| {
        RuntimeError::Encode(format!("payload of {} bytes exceeds 4 GiB", payload.len()))
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CRC_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.push(frame.kind().byte());
    out.push(0);
    out.extend_from_slice(&frame.request_id.to_le_bytes());
    out.extend_from_slice(&frame.plan.0);
    out.extend_from_slice(&word.to_le_bytes());
    out.extend_from_slice(&ratio.to_le_bytes());
    for d in frame.shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The payload bytes of a frame, after checking the body fits its shape.
fn body_bytes(frame: &Frame) -> Result<Vec<u8>, RuntimeError> {
    let zero_shape = || {
        if frame.shape == [0; 4] {
            Ok(())
        } else {
            Err(RuntimeError::Encode(format!(
                "{:?} frames carry a zero shape, not {:?}",
                frame.kind(),
                frame.shape
            )))
        }
    };
    match &frame.body {
        FrameBody::Hello { digest } => {
            if digest.len() > MAX_DIGEST_LEN {
                return Err(RuntimeError::Encode(format!(
                    "plan digest of {} bytes exceeds {MAX_DIGEST_LEN}",
                    digest.len()
                )));
            }
            Ok(digest.as_bytes().to_vec())
        }
        FrameBody::Infer { payload } => Ok(payload.clone()),
        FrameBody::Result { timing, logits } => {
            let expected = result_len(frame.shape).map(|n| (n - TIMING_LEN) / 4);
            if expected != Some(logits.len()) {
                return Err(RuntimeError::Encode(format!(
                    "{} logits do not fill the Result shape {:?}",
                    logits.len(),
                    frame.shape
                )));
            }
            let mut out = Vec::with_capacity(TIMING_LEN + 4 * logits.len());
            out.extend_from_slice(&timing.queue_us.to_le_bytes());
            out.extend_from_slice(&timing.decode_us.to_le_bytes());
            out.extend_from_slice(&timing.edge_us.to_le_bytes());
            out.extend_from_slice(&timing.batch_requests.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            for v in logits {
                out.extend_from_slice(&v.to_le_bytes());
            }
            Ok(out)
        }
        FrameBody::Error { code, message } => {
            zero_shape()?;
            let mut out = Vec::with_capacity(2 + message.len());
            out.extend_from_slice(&code.code().to_le_bytes());
            out.extend_from_slice(message.as_bytes());
            Ok(out)
        }
        FrameBody::Bye => zero_shape().map(|()| Vec::new()),
    }
}

/// Payload length of a Result frame with `shape`, if the shape is a valid logits shape.
fn result_len(shape: [u32; 4]) -> Option<usize> {
    let [b, k, h, w] = shape;
    if b == 0 || k == 0 || h != 1 || w != 1 {
        return None;
    }
    (b as usize)
        .checked_mul(k as usize)?
        .checked_mul(4)?
        .checked_add(TIMING_LEN)
}

/// The fixed header, parsed and checked (magic, version, length) but not yet trusted.
struct Header {
    kind: u8,
    flags: u8,
    request_id: u64,
    plan: PlanTag,
    codec_word: u16,
    codec_ratio: u16,
    shape: [u32; 4],
    payload_len: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn parse_header(h: &[u8; HEADER_LEN], max_frame: usize) -> Result<Header, RuntimeError> {
    let magic = [h[0], h[1], h[2], h[3]];
    if magic != MAGIC {
        return Err(RuntimeError::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    let version = u16_at(h, 4);
    if version != PROTOCOL_VERSION {
        return Err(RuntimeError::UnsupportedVersion {
            found: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let payload_len = u32_at(h, 52);
    let total = (HEADER_LEN + CRC_LEN) as u64 + u64::from(payload_len);
    if total > max_frame as u64 {
        return Err(RuntimeError::Oversized {
            len: total,
            max: max_frame,
        });
    }
    let mut plan = [0u8; 16];
    plan.copy_from_slice(&h[16..32]);
    Ok(Header {
        kind: h[6],
        flags: h[7],
        request_id: u64_at(h, 8),
        plan: PlanTag(plan),
        codec_word: u16_at(h, 32),
        codec_ratio: u16_at(h, 34),
        shape: [0, 1, 2, 3].map(|i| u32_at(h, 36 + 4 * i)),
        payload_len: payload_len as usize,
    })
}

/// Checks the CRC over `header_bytes ++ rest` (payload then trailer) and decodes the body.
fn finish(
    header_bytes: &[u8; HEADER_LEN],
    header: Header,
    rest: &[u8],
) -> Result<Frame, RuntimeError> {
    let (payload, trailer) = rest.split_at(header.payload_len);
    let stored = u32_at(trailer, 0);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_bytes);
    hasher.update(payload);
    let computed = hasher.finalize();
    let request_id = header.request_id;
    if stored != computed {
        return Err(RuntimeError::CrcMismatch {
            request_id,
            stored,
            computed,
        });
    }
    let kind = FrameKind::from_byte(header.kind).ok_or(RuntimeError::UnknownKind {
        request_id,
        kind: header.kind,
    })?;
    let bad = |field: &'static str, value: String, reason: &'static str| RuntimeError::BadField {
        request_id,
        field,
        value,
        reason,
    };
    if header.flags != 0 {
        return Err(bad(
            "flags",
            header.flags.to_string(),
            "reserved, must be zero",
        ));
    }
    let codec = codec_from_wire(header.codec_word, header.codec_ratio, request_id)?;
    let shape = header.shape;
    let shape_error = |expected: &str| RuntimeError::ShapeMismatch {
        request_id,
        what: "frame shape",
        expected: expected.to_string(),
        found: format!("{shape:?}"),
    };
    let nonzero_shape = || {
        if shape.contains(&0) {
            Err(shape_error("every dimension at least 1"))
        } else {
            Ok(())
        }
    };
    let zero_shape = || {
        if shape == [0; 4] {
            Ok(())
        } else {
            Err(shape_error("[0, 0, 0, 0]"))
        }
    };
    let utf8 = |field: &'static str, bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| bad(field, e.to_string(), "not valid UTF-8"))
    };
    let body = match kind {
        FrameKind::Hello => {
            nonzero_shape()?;
            if payload.len() > MAX_DIGEST_LEN {
                return Err(bad(
                    "plan digest",
                    format!("{} bytes", payload.len()),
                    "longer than 256 bytes",
                ));
            }
            FrameBody::Hello {
                digest: utf8("plan digest", payload)?,
            }
        }
        FrameKind::Infer => {
            nonzero_shape()?;
            FrameBody::Infer {
                payload: payload.to_vec(),
            }
        }
        FrameKind::Result => {
            let expected = result_len(shape).ok_or_else(|| shape_error("[B, classes, 1, 1]"))?;
            if payload.len() != expected {
                return Err(RuntimeError::ShapeMismatch {
                    request_id,
                    what: "Result payload length",
                    expected: format!("{expected} bytes for shape {shape:?}"),
                    found: format!("{} bytes", payload.len()),
                });
            }
            let (t, values) = payload.split_at(TIMING_LEN);
            if u32_at(t, 28) != 0 {
                return Err(bad(
                    "timing reserved",
                    u32_at(t, 28).to_string(),
                    "reserved, must be zero",
                ));
            }
            FrameBody::Result {
                timing: EdgeTiming {
                    queue_us: u64_at(t, 0),
                    decode_us: u64_at(t, 8),
                    edge_us: u64_at(t, 16),
                    batch_requests: u32_at(t, 24),
                },
                logits: values
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            }
        }
        FrameKind::Error => {
            zero_shape()?;
            if payload.len() < 2 {
                return Err(bad(
                    "error code",
                    format!("{} payload bytes", payload.len()),
                    "an Error payload starts with a u16 code",
                ));
            }
            if payload.len() - 2 > MAX_MESSAGE_LEN {
                return Err(bad(
                    "error message",
                    format!("{} bytes", payload.len() - 2),
                    "longer than 4096 bytes",
                ));
            }
            FrameBody::Error {
                code: ErrorCode::from_code(u16_at(payload, 0)),
                message: utf8("error message", &payload[2..])?,
            }
        }
        FrameKind::Bye => {
            zero_shape()?;
            if !payload.is_empty() {
                return Err(bad(
                    "payload length",
                    payload.len().to_string(),
                    "Bye frames are empty",
                ));
            }
            FrameBody::Bye
        }
    };
    Ok(Frame {
        request_id,
        plan: header.plan,
        codec,
        shape,
        body,
    })
}

/// Decodes the frame at the start of `bytes`; returns it and the number of bytes it used.
///
/// # Errors
/// [`RuntimeError::Truncated`] when `bytes` ends before the frame does, and every malformed
/// frame as its typed variant. Never panics, whatever the bytes.
pub fn decode_frame(bytes: &[u8], max_frame: usize) -> Result<(Frame, usize), RuntimeError> {
    let header_bytes: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(RuntimeError::Truncated {
        what: "header",
        needed: HEADER_LEN,
        got: bytes.len(),
    })?;
    let header = parse_header(header_bytes, max_frame)?;
    let rest_len = header.payload_len + CRC_LEN;
    let rest = bytes
        .get(HEADER_LEN..HEADER_LEN + rest_len)
        .ok_or(RuntimeError::Truncated {
            what: "payload and CRC",
            needed: rest_len,
            got: bytes.len() - HEADER_LEN,
        })?;
    let frame = finish(header_bytes, header, rest)?;
    Ok((frame, HEADER_LEN + rest_len))
}

/// Fills `buf` from `r`. A clean end of stream before the first byte is
/// [`RuntimeError::ConnectionClosed`] when `at_boundary`, any other early end is
/// [`RuntimeError::Truncated`].
fn fill<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
    at_boundary: bool,
) -> Result<(), RuntimeError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 && at_boundary => return Err(RuntimeError::ConnectionClosed),
            Ok(0) => {
                return Err(RuntimeError::Truncated {
                    what,
                    needed: buf.len(),
                    got,
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RuntimeError::io(what, e)),
        }
    }
    Ok(())
}

/// Reads one frame from a stream, checking the announced length against `max_frame` before
/// allocating.
///
/// # Errors
/// [`RuntimeError::ConnectionClosed`] on a clean end of stream between frames,
/// [`RuntimeError::Truncated`] on an end inside a frame, [`RuntimeError::Timeout`] when the
/// stream's read timeout fires, and every malformed frame as its typed variant.
pub fn read_frame<R: Read>(r: &mut R, max_frame: usize) -> Result<Frame, RuntimeError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    fill(r, &mut header_bytes, "frame header", true)?;
    let header = parse_header(&header_bytes, max_frame)?;
    let mut rest = vec![0u8; header.payload_len + CRC_LEN];
    fill(r, &mut rest, "frame payload and CRC", false)?;
    finish(&header_bytes, header, &rest)
}

/// Writes one frame and returns the number of bytes written.
///
/// # Errors
/// As [`encode_frame`], and [`RuntimeError::Io`] / [`RuntimeError::Timeout`] from the writer.
pub fn write_frame<W: Write>(w: &mut W, frame: &Frame) -> Result<usize, RuntimeError> {
    let bytes = encode_frame(frame)?;
    w.write_all(&bytes)
        .and_then(|()| w.flush())
        .map_err(|e| RuntimeError::io("writing a frame", e))?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer() -> Frame {
        Frame {
            request_id: 42,
            plan: PlanTag::of("plan"),
            codec: CodecId::quant(8, true),
            shape: [1, 32, 14, 14],
            body: FrameBody::Infer {
                payload: vec![1, 2, 3, 4, 5],
            },
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let plan = PlanTag::of("abc");
        let frames = [
            Frame::hello("abc", CodecId::autoencoder(4, 2), [32, 14, 14]).unwrap(),
            infer(),
            Frame {
                request_id: 9,
                plan,
                codec: CodecId::Float32,
                shape: [2, 3, 1, 1],
                body: FrameBody::Result {
                    timing: EdgeTiming {
                        queue_us: 1,
                        decode_us: 2,
                        edge_us: 3,
                        batch_requests: 4,
                    },
                    logits: vec![0.5, -1.0, 2.0, 3.0, 4.0, f32::MAX],
                },
            },
            Frame::error(3, plan, CodecId::Float32, ErrorCode::BadPayload, "bad ü"),
            Frame::bye(plan, CodecId::quant(1, false)),
        ];
        for frame in frames {
            let bytes = encode_frame(&frame).unwrap();
            let (back, used) = decode_frame(&bytes, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, frame);
            let read = read_frame(&mut bytes.as_slice(), DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(read, frame);
        }
    }

    #[test]
    fn header_checks_come_before_allocation() {
        let mut bytes = encode_frame(&infer()).unwrap();
        bytes[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&bytes, 1024),
            Err(RuntimeError::Oversized { max: 1024, .. })
        ));
        let mut wrong = encode_frame(&infer()).unwrap();
        wrong[0] = b'X';
        assert!(matches!(
            decode_frame(&wrong, DEFAULT_MAX_FRAME),
            Err(RuntimeError::BadMagic { .. })
        ));
        let mut version = encode_frame(&infer()).unwrap();
        version[4] = 9;
        assert!(matches!(
            decode_frame(&version, DEFAULT_MAX_FRAME),
            Err(RuntimeError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn crc_kind_and_field_errors_keep_the_stream_in_sync() {
        let good = encode_frame(&infer()).unwrap();
        let reseal = |mut b: Vec<u8>| {
            let n = b.len() - CRC_LEN;
            let crc = crc32fast::hash(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut flipped = good.clone();
        flipped[HEADER_LEN] ^= 1;
        let mut kind = good.clone();
        kind[6] = 77;
        let mut codec = good.clone();
        codec[33] = 0x80;
        let mut shape = good.clone();
        shape[36..40].copy_from_slice(&0u32.to_le_bytes());
        for (bytes, what) in [
            (flipped, "crc"),
            (reseal(kind), "kind"),
            (reseal(codec), "codec"),
            (reseal(shape), "shape"),
        ] {
            let err = decode_frame(&bytes, DEFAULT_MAX_FRAME).unwrap_err();
            assert!(err.keeps_stream_in_sync(), "{what}: {err}");
            assert_eq!(err.request_id(), Some(42), "{what}");
        }
    }

    #[test]
    fn truncation_and_clean_close_are_told_apart() {
        let bytes = encode_frame(&infer()).unwrap();
        for cut in [0, 10, HEADER_LEN, bytes.len() - 1] {
            let err = decode_frame(&bytes[..cut], DEFAULT_MAX_FRAME).unwrap_err();
            assert!(
                matches!(err, RuntimeError::Truncated { .. }),
                "{cut}: {err}"
            );
        }
        let empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut &*empty, DEFAULT_MAX_FRAME),
            Err(RuntimeError::ConnectionClosed)
        ));
        assert!(matches!(
            read_frame(&mut &bytes[..HEADER_LEN + 2], DEFAULT_MAX_FRAME),
            Err(RuntimeError::Truncated { .. })
        ));
    }

    #[test]
    fn codec_words_round_trip_and_reject_reserved_bits() {
        for codec in [
            CodecId::Float32,
            CodecId::quant(3, true),
            CodecId::Quant {
                bits: 8,
                per_channel: false,
                entropy: true,
            },
            CodecId::autoencoder(16, 4),
        ] {
            let (word, ratio) = codec_to_wire(codec).unwrap();
            assert_eq!(codec_from_wire(word, ratio, 0).unwrap(), codec);
        }
        assert!(codec_from_wire(0x0400, 0, 0).is_err());
        assert!(codec_from_wire(0x0100, 0, 0).is_err(), "quant with 0 bits");
        assert!(codec_from_wire(0x0109, 0, 0).is_err(), "quant with 9 bits");
        assert!(
            codec_from_wire(0x0204, 0, 0).is_err(),
            "autoencoder ratio 0"
        );
        assert!(
            codec_from_wire(0x0000, 3, 0).is_err(),
            "float32 with a ratio"
        );
    }

    #[test]
    fn result_logits_must_fill_the_shape() {
        let frame = Frame {
            request_id: 1,
            plan: PlanTag::default(),
            codec: CodecId::Float32,
            shape: [1, 10, 1, 1],
            body: FrameBody::Result {
                timing: EdgeTiming::default(),
                logits: vec![0.0; 9],
            },
        };
        assert!(matches!(encode_frame(&frame), Err(RuntimeError::Encode(_))));
    }

    #[test]
    fn long_error_messages_are_cut_on_a_char_boundary() {
        let message = "é".repeat(MAX_MESSAGE_LEN);
        let frame = Frame::error(
            1,
            PlanTag::default(),
            CodecId::Float32,
            ErrorCode::Internal,
            &message,
        );
        let FrameBody::Error { message: cut, .. } = &frame.body else {
            panic!("an error frame")
        };
        assert!(cut.len() <= MAX_MESSAGE_LEN);
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(decode_frame(&bytes, DEFAULT_MAX_FRAME).unwrap().0, frame);
    }
}
