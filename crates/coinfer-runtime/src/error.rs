//! [`RuntimeError`]: everything that can go wrong between a device client and an edge server,
//! and the [`ErrorCode`] an edge server puts in an error frame.

use std::fmt;

use coinfer_codec::CodecError;

use coinfer_split::SplitError;

use crate::tls::{TlsConfigError, TlsFailure};

/// The typed reason carried by an error frame (`u16` on the wire, see `docs/runtime.md`).
///
/// Codes a peer sends that this build does not know decode as [`ErrorCode::Unrecognized`], so
/// a newer server can add codes without breaking older clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame did not start with the protocol magic.
    BadMagic,
    /// The frame's protocol version is not the one this server speaks.
    UnsupportedVersion,
    /// The frame's CRC32 does not match its bytes.
    CrcMismatch,
    /// The frame announces more bytes than the receiver accepts.
    Oversized,
    /// The frame ended before its announced length.
    Truncated,
    /// The frame kind byte names no known kind.
    UnknownKind,
    /// A header or body field holds a value no sender writes.
    BadField,
    /// The feature shape does not fit the plan (or the body does not fit the shape).
    ShapeMismatch,
    /// The client's plan digest differs from the server's.
    DigestMismatch,
    /// The client's codec differs from the server's.
    CodecMismatch,
    /// The codec could not decode the feature payload.
    BadPayload,
    /// A frame kind that is not valid at this point of the conversation.
    UnexpectedFrame,
    /// The server has too many connections open.
    Busy,
    /// The edge model failed on a valid request.
    Internal,
    /// The server is shutting down.
    ShuttingDown,
    /// A read or write did not complete in time.
    Timeout,
    /// The client did not present the deployment's token (or presented another one).
    Unauthorized,
    /// The server speaks TLS only and the client sent a plain-TCP frame.
    TlsRequired,
    /// A plan-set client tagged a request with a plan that is not in the server's set.
    PlanNotInSet,
    /// A code this build does not know.
    Unrecognized(u16),
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            Self::BadMagic => 1,
            Self::UnsupportedVersion => 2,
            Self::CrcMismatch => 3,
            Self::Oversized => 4,
            Self::Truncated => 5,
            Self::UnknownKind => 6,
            Self::BadField => 7,
            Self::ShapeMismatch => 8,
            Self::DigestMismatch => 9,
            Self::CodecMismatch => 10,
            Self::BadPayload => 11,
            Self::UnexpectedFrame => 12,
            Self::Busy => 13,
            Self::Internal => 14,
            Self::ShuttingDown => 15,
            Self::Timeout => 16,
            Self::Unauthorized => 17,
            Self::TlsRequired => 18,
            Self::PlanNotInSet => 19,
            Self::Unrecognized(code) => code,
        }
    }

    /// The code for a wire value (never fails: unknown values become
    /// [`Unrecognized`](Self::Unrecognized)).
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => Self::BadMagic,
            2 => Self::UnsupportedVersion,
            3 => Self::CrcMismatch,
            4 => Self::Oversized,
            5 => Self::Truncated,
            6 => Self::UnknownKind,
            7 => Self::BadField,
            8 => Self::ShapeMismatch,
            9 => Self::DigestMismatch,
            10 => Self::CodecMismatch,
            11 => Self::BadPayload,
            12 => Self::UnexpectedFrame,
            13 => Self::Busy,
            14 => Self::Internal,
            15 => Self::ShuttingDown,
            16 => Self::Timeout,
            17 => Self::Unauthorized,
            18 => Self::TlsRequired,
            19 => Self::PlanNotInSet,
            other => Self::Unrecognized(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unrecognized(code) => write!(f, "unrecognized error code {code}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Everything that can go wrong while framing, serving or requesting a split inference.
///
/// Frame errors that are detected after the whole frame was read (CRC, kind, fields, shape)
/// leave the byte stream in sync: [`keeps_stream_in_sync`](Self::keeps_stream_in_sync) tells
/// the server it may answer and go on reading from the same connection.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The first four bytes of a frame are not the protocol magic.
    #[error("frame bytes 0..4 (magic) are {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
        /// The magic this crate writes.
        expected: [u8; 4],
    },
    /// The frame's protocol version is not the one this build speaks.
    #[error(
        "frame bytes 4..6 (protocol version) are {found}, this build speaks version {supported}"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// The CRC32 trailer does not match the frame (bit flips, splicing).
    #[error(
        "frame {request_id}: CRC32 mismatch, trailer says {stored:#010x} but the bytes hash to {computed:#010x}"
    )]
    CrcMismatch {
        /// The (unverified) request id in the header.
        request_id: u64,
        /// The CRC stored in the trailer.
        stored: u32,
        /// The CRC computed over header and payload.
        computed: u32,
    },
    /// The frame announces more bytes than the receiver accepts; checked before allocating.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    Oversized {
        /// Header, payload and trailer bytes announced.
        len: u64,
        /// The receiver's maximum.
        max: usize,
    },
    /// The bytes end before the frame does.
    #[error("frame truncated in the {what}: needed {needed} bytes, got {got}")]
    Truncated {
        /// The section being read (header, payload and CRC).
        what: &'static str,
        /// Bytes that section needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The peer closed the connection cleanly between two frames.
    #[error("the peer closed the connection")]
    ConnectionClosed,
    /// The frame kind byte names no known kind.
    #[error("frame {request_id}: byte 6 (kind) is {kind}, which names no frame kind")]
    UnknownKind {
        /// The request id in the header.
        request_id: u64,
        /// The kind byte found.
        kind: u8,
    },
    /// A header or body field holds a value no sender writes.
    #[error("frame {request_id}: field `{field}` is {value}: {reason}")]
    BadField {
        /// The request id in the header.
        request_id: u64,
        /// The field at fault.
        field: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A shape does not fit: the body does not match the header's shape, or the feature does
    /// not match the plan's split point.
    #[error("frame {request_id}: {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// The request id.
        request_id: u64,
        /// What was compared.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A socket read or write failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (connect, read header, write frame...).
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A socket read or write did not complete within its timeout.
    #[error("timed out while {during}")]
    Timeout {
        /// What was being done.
        during: &'static str,
    },
    /// TLS failed on a live connection (handshake or record): `failure` says which side
    /// refused what, e.g. a client certificate from a CA the server does not trust.
    #[error("TLS failed during {during}: {failure}: {source}")]
    Tls {
        /// What was being done.
        during: &'static str,
        /// Which side refused what.
        failure: TlsFailure,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// A TLS option (certificate, key or CA file) cannot be used.
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// The edge server refused the handshake (plan digest, codec or feature shape differ).
    #[error("the edge server refused the handshake ({code}): {message}")]
    HandshakeRefused {
        /// The server's reason.
        code: ErrorCode,
        /// The server's message, e.g. `plan digest mismatch: server has X, client has Y`.
        message: String,
    },
    /// The edge server answered a request with an error frame; the connection stays usable.
    #[error("the edge server rejected request {request_id} ({code}): {message}")]
    Remote {
        /// The request the error answers.
        request_id: u64,
        /// The server's reason.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The peer sent a frame that does not fit the conversation.
    #[error("expected {expected} for request {request_id}, got {found}")]
    UnexpectedFrame {
        /// The request id awaited (or the id found, for unsolicited frames).
        request_id: u64,
        /// What was expected.
        expected: &'static str,
        /// What arrived.
        found: String,
    },
    /// A frame field does not fit its wire type (payload over 4 GiB, dimension over `u32`).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The feature codec failed (encoding on the device, decoding on the edge).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The device or edge half failed.
    #[error(transparent)]
    Model(#[from] SplitError),
    /// A server or client option is invalid.
    #[error("invalid runtime option `{field}`: {reason}")]
    InvalidConfig {
        /// The option's name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// An internal thread of the server stopped (panicked or exited early).
    #[error("edge server internal failure: {0}")]
    Internal(String),
}

impl RuntimeError {
    /// Whether the error was found after the whole frame was read, so the next frame starts at
    /// the next byte and the connection can go on.
    pub fn keeps_stream_in_sync(&self) -> bool {
        matches!(
            self,
            Self::CrcMismatch { .. }
                | Self::UnknownKind { .. }
                | Self::BadField { .. }
                | Self::ShapeMismatch { .. }
        )
    }

    /// The request id the error concerns, when one is known.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Self::CrcMismatch { request_id, .. }
            | Self::UnknownKind { request_id, .. }
            | Self::BadField { request_id, .. }
            | Self::ShapeMismatch { request_id, .. }
            | Self::Remote { request_id, .. }
            | Self::UnexpectedFrame { request_id, .. } => Some(*request_id),
            _ => None,
        }
    }

    /// The code an edge server sends back for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadMagic { .. } => ErrorCode::BadMagic,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::CrcMismatch { .. } => ErrorCode::CrcMismatch,
            Self::Oversized { .. } => ErrorCode::Oversized,
            Self::Truncated { .. } | Self::ConnectionClosed => ErrorCode::Truncated,
            Self::UnknownKind { .. } => ErrorCode::UnknownKind,
            Self::BadField { .. }
            | Self::Encode(_)
            | Self::InvalidConfig { .. }
            | Self::TlsConfig(_) => ErrorCode::BadField,
            Self::Tls { failure, .. } => match failure {
                TlsFailure::NotTls => ErrorCode::TlsRequired,
                _ => ErrorCode::Unauthorized,
            },
            Self::ShapeMismatch { .. } => ErrorCode::ShapeMismatch,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::HandshakeRefused { code, .. } | Self::Remote { code, .. } => *code,
            Self::UnexpectedFrame { .. } => ErrorCode::UnexpectedFrame,
            Self::Codec(_) => ErrorCode::BadPayload,
            Self::Io { .. } | Self::Model(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Wraps an I/O error, turning timeouts into [`RuntimeError::Timeout`].
    /// TLS failures (rustls errors carried by the I/O error) become [`RuntimeError::Tls`].
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        if let Some(tls) = source
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Self::Tls {
                during: context,
                failure: TlsFailure::of(tls),
                source: tls.clone(),
            };
        }
        match source.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Self::Timeout { during: context },
            _ => Self::Io {
                context: context.to_string(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_survive() {
        for code in 1..=19 {
            let parsed = ErrorCode::from_code(code);
            assert!(!matches!(parsed, ErrorCode::Unrecognized(_)), "{code}");
            assert_eq!(parsed.code(), code);
        }
        assert_eq!(ErrorCode::from_code(999), ErrorCode::Unrecognized(999));
        assert_eq!(ErrorCode::Unrecognized(999).code(), 999);
    }

    #[test]
    fn only_errors_after_a_complete_frame_keep_the_stream_in_sync() {
        let crc = RuntimeError::CrcMismatch {
            request_id: 7,
            stored: 1,
            computed: 2,
        };
        assert!(crc.keeps_stream_in_sync());
        assert_eq!(crc.request_id(), Some(7));
        let magic = RuntimeError::BadMagic {
            found: *b"XXXX",
            expected: *b"CNFR",
        };
        assert!(!magic.keeps_stream_in_sync());
        assert_eq!(magic.code(), ErrorCode::BadMagic);
    }
}
