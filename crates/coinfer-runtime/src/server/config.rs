//! [`ServerConfig`]: the edge server's options and the limits they set.

use std::time::Duration;

use super::PRE_HELLO_MAX_FRAME;
use super::auth::{Token, check_token};

use crate::error::RuntimeError;
use crate::frame::{CRC_LEN, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::tls::ServerTls;

/// Edge server options.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// How long a connection may stay silent (between or inside frames) before it is closed.
    pub read_timeout: Duration,
    /// How long one frame may take to arrive, from its first byte to its last; the per-read
    /// `read_timeout` alone would let a peer trickle a frame forever (slowloris).
    pub frame_timeout: Duration,
    /// How long a new connection has, from the accept, to complete its Hello.
    pub hello_timeout: Duration,
    /// Most connections without a completed Hello; at the limit the oldest of them is closed
    /// to make room, so idle sockets cannot lock legitimate clients out.
    pub max_unauthenticated: usize,
    /// How long writing one reply may take before the connection is closed.
    pub write_timeout: Duration,
    /// Largest frame accepted (header, payload and CRC), checked before allocating. The server
    /// lowers it to what `max_request_batch` samples of the plan's feature can need (see
    /// [`EdgeServer::max_frame`]); it is also each connection's byte budget, as a connection
    /// has one frame in flight at a time.
    pub max_frame: usize,
    /// Most samples (`B`) in one Infer frame, checked on the header before the payload is
    /// read; larger requests get a `BadField` error. It also caps the samples of one forward
    /// pass when batching merges requests, so no request holds the worker for long.
    pub max_request_batch: usize,
    /// Most frame bytes held by all connections together (being read, queued or computed); a
    /// frame that would exceed it is refused with `Busy` before it is allocated.
    pub max_in_flight_bytes: usize,
    /// The deployment token every client must present in its Hello (`Unauthorized`
    /// otherwise); `None` serves anyone who knows the plan digest.
    pub token: Option<Token>,
    /// TLS (and, with a client CA, mutual TLS) on every connection; `None` serves plain TCP.
    /// The TLS handshake counts against `hello_timeout`; a plain-TCP client gets a
    /// `TlsRequired` error frame.
    pub tls: Option<ServerTls>,
    /// Dynamic batching: merge the requests that reach the worker within this window of the
    /// first one into a single forward pass. `None` (the default) runs each request alone;
    /// `Some(Duration::ZERO)` merges only requests already waiting.
    pub batch_window: Option<Duration>,
    /// Most requests merged into one forward pass.
    pub max_batch: usize,
    /// Most connections served at once; further clients get a `Busy` error frame.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(5),
            max_unauthenticated: 64,
            write_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            max_request_batch: 64,
            max_in_flight_bytes: 256 << 20,
            token: None,
            tls: None,
            batch_window: None,
            max_batch: 16,
            max_connections: 1024,
        }
    }
}

impl ServerConfig {
    /// Checks every option.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] naming the first bad field.
    pub fn check(&self) -> Result<(), RuntimeError> {
        let invalid = |field: &'static str, reason: String| {
            Err(RuntimeError::InvalidConfig { field, reason })
        };
        for (field, value) in [
            ("read_timeout", self.read_timeout),
            ("frame_timeout", self.frame_timeout),
            ("hello_timeout", self.hello_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return invalid(field, "must be positive".into());
            }
        }
        if self.max_unauthenticated == 0 {
            return invalid("max_unauthenticated", "must be at least 1".into());
        }
        if self.max_request_batch == 0 || self.max_request_batch > u32::MAX as usize {
            return invalid(
                "max_request_batch",
                format!("{} is not in 1..=2^32-1", self.max_request_batch),
            );
        }
        if self.max_in_flight_bytes < self.max_frame.min(PRE_HELLO_MAX_FRAME) {
            return invalid(
                "max_in_flight_bytes",
                format!(
                    "{} bytes cannot hold one frame (minimum {})",
                    self.max_in_flight_bytes,
                    self.max_frame.min(PRE_HELLO_MAX_FRAME)
                ),
            );
        }
        check_token(self.token.as_ref().map(Token::expose))?;
        if self.max_frame < HEADER_LEN + CRC_LEN + 64 {
            return invalid(
                "max_frame",
                format!(
                    "{} bytes cannot hold a header, a handshake and a CRC (minimum {})",
                    self.max_frame,
                    HEADER_LEN + CRC_LEN + 64
                ),
            );
        }
        if self.max_batch == 0 {
            return invalid("max_batch", "must be at least 1".into());
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1".into());
        }
        Ok(())
    }
}
