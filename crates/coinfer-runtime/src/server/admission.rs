//! Admission: which frames a connection may send (size before the Hello, the batch cap, the
//! global byte budget) and how refused connections are answered and closed.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{PRE_HELLO_MAX_FRAME, Shared};
use crate::error::ErrorCode;
use crate::frame::{Frame, FrameHead, FrameKind, write_frame};

/// How long sending a TLS `close_notify` may take when closing.
pub(super) const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Answers a connection we will not serve with one error frame, then closes it.
pub(super) fn refuse(stream: TcpStream, shared: &Shared, code: ErrorCode, message: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let frame = Frame::error(0, shared.plan, shared.codec, code, message);
    if write_frame(&mut &stream, &frame).is_ok() {
        shared.stats.errors.fetch_add(1, Ordering::Relaxed);
    }
    linger_close(stream);
}

/// Refuses a connection the accept thread cannot take: a `Busy` error frame on plain TCP; on
/// a TLS server (where the client expects a TLS handshake, not a frame) the socket is closed
/// without a reply, which the client sees as a lost connection and retries.
pub(super) fn refuse_busy(stream: TcpStream, shared: &Shared, message: &str) {
    if shared.config.tls.is_some() {
        let _ = stream.shutdown(Shutdown::Both);
    } else {
        refuse(stream, shared, ErrorCode::Busy, message);
    }
}

/// Closes after an error reply without losing it: half-close, then drain what the peer still
/// sends for a moment, so the kernel does not reset the connection (and discard our reply)
/// because unread bytes were left behind.
pub(super) fn linger_close(stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut sink = [0u8; 16 * 1024];
    let mut drained = 0usize;
    while Instant::now() < deadline && drained < (4 << 20) {
        match (&stream).read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Frame bytes a connection holds against [`Shared::in_flight`]; released on drop.
pub(super) struct Budget<'a> {
    pub(super) shared: &'a Shared,
    pub(super) bytes: usize,
}

impl Drop for Budget<'_> {
    fn drop(&mut self) {
        self.shared
            .in_flight
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Checks a frame's header before its payload is allocated: frame size before the Hello, the
/// batch cap, the global byte budget. A refusal names the request, its code and why.
pub(super) fn admit<'a>(
    shared: &'a Shared,
    greeted: bool,
    head: &FrameHead,
) -> Result<Budget<'a>, (u64, ErrorCode, String)> {
    let id = head.request_id;
    if !greeted && head.total_len > PRE_HELLO_MAX_FRAME {
        return Err((
            id,
            ErrorCode::Oversized,
            format!(
                "frame of {} bytes before the Hello handshake (at most {PRE_HELLO_MAX_FRAME})",
                head.total_len
            ),
        ));
    }
    let batch = head.shape[0] as usize;
    if head.kind == FrameKind::Infer.byte() && batch > shared.config.max_request_batch {
        return Err((
            id,
            ErrorCode::BadField,
            format!(
                "frame {id}: field `batch` is {batch}: the server takes at most {} samples per \
                 request, split the batch",
                shared.config.max_request_batch
            ),
        ));
    }
    let bytes = head.total_len;
    let before = shared.in_flight.fetch_add(bytes, Ordering::SeqCst);
    let budget = Budget { shared, bytes };
    if before + bytes > shared.config.max_in_flight_bytes {
        return Err((
            id,
            ErrorCode::Busy,
            format!(
                "frame {id}: the server holds {before} bytes of frames, {bytes} more would \
                 exceed its budget of {}; retry later",
                shared.config.max_in_flight_bytes
            ),
        ));
    }
    Ok(budget)
}
