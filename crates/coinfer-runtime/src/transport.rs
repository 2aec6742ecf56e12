//! The byte stream under the frame code: a TCP socket, plain or wrapped in TLS.
//!
//! The server's clocks (the idle timeout per read, the deadline of the Hello or of the frame
//! being read) are enforced on the TCP socket itself, under the TLS layer: a peer that trickles
//! TLS record bytes cannot stretch a frame (or the TLS handshake, which counts against the
//! Hello deadline) past its deadline. The client's link shaping sits there too, so an emulated
//! uplink carries the TLS records with their overhead.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use rustls::{ConnectionCommon, SideData, StreamOwned};

use crate::error::RuntimeError;
use crate::shaping::{LinkShaping, ShapedWriter, TracePlayer};

/// How a server reads a socket: the idle timeout per read, and a deadline for what is being
/// read (`None`: armed at the next byte, `frame` from then).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) idle: Duration,
    pub(crate) frame: Duration,
    pub(crate) deadline: Option<Instant>,
}

/// A TCP socket (writes shaped when a link is emulated), read under an optional [`Clock`].
#[derive(Debug)]
pub(crate) struct Socket {
    link: ShapedWriter<TcpStream>,
    clock: Option<Clock>,
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream, shaping: Option<LinkShaping>) -> Self {
        Self {
            link: ShapedWriter::new(tcp, shaping),
            clock: None,
        }
    }

    /// A client socket on a link that follows a trace.
    pub(crate) fn traced(tcp: TcpStream, trace: std::sync::Arc<TracePlayer>) -> Self {
        Self {
            link: ShapedWriter::with_trace(tcp, trace),
            clock: None,
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        self.link.get_ref()
    }

    /// Reads from now on under `clock`.
    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = Some(clock);
    }

    /// Starts a message on the emulated link: its delay, then an empty token bucket.
    pub(crate) fn begin_message(&mut self) -> io::Result<()> {
        self.link.begin_message()
    }

    /// Starts a probe on the emulated link (not counted as a request by a trace).
    pub(crate) fn begin_probe(&mut self) -> io::Result<()> {
        self.link.begin_probe()
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tcp = self.link.get_ref();
        let Some(clock) = &mut self.clock else {
            return (&*tcp).read(buf);
        };
        let wait = match clock.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        "the frame missed its deadline",
                    ));
                }
                left.min(clock.idle)
            }
            None => clock.idle,
        };
        tcp.set_read_timeout(Some(wait))?;
        let n = (&*tcp).read(buf)?;
        if n > 0 && clock.deadline.is_none() {
            clock.deadline = Some(Instant::now() + clock.frame);
        }
        Ok(n)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.link.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.link.flush()
    }
}

/// A connection's byte stream: plain TCP or TLS over it (`C`: rustls' client or server
/// connection).
pub(crate) enum Transport<C> {
    Plain(Socket),
    Tls(Box<StreamOwned<C, Socket>>),
}

impl<C, S> Transport<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// TLS with `connection` over `socket`; [`handshake`](Self::handshake) runs it.
    pub(crate) fn tls(connection: C, socket: Socket) -> Self {
        Self::Tls(Box::new(StreamOwned::new(connection, socket)))
    }

    pub(crate) fn socket(&self) -> &Socket {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(tls) => &tls.sock,
        }
    }

    pub(crate) fn socket_mut(&mut self) -> &mut Socket {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(tls) => &mut tls.sock,
        }
    }

    /// Runs the TLS handshake to its end (nothing for plain TCP), under the socket's clock.
    ///
    /// # Errors
    /// [`RuntimeError::Tls`] when a side refuses (certificates, protocol),
    /// [`RuntimeError::Timeout`] past the deadline, [`RuntimeError::Io`] when the peer leaves.
    pub(crate) fn handshake(&mut self) -> Result<(), RuntimeError> {
        let Self::Tls(tls) = self else {
            return Ok(());
        };
        while tls.conn.is_handshaking() {
            let (read, written) = tls
                .conn
                .complete_io(&mut tls.sock)
                .map_err(|e| RuntimeError::io("the TLS handshake", e))?;
            if read == 0 && written == 0 && tls.conn.is_handshaking() {
                return Err(RuntimeError::io(
                    "the TLS handshake",
                    io::Error::new(ErrorKind::UnexpectedEof, "the peer closed the connection"),
                ));
            }
        }
        Ok(())
    }

    /// Ends TLS politely (a `close_notify` alert, sent within `grace`) and hands back the TCP
    /// socket.
    pub(crate) fn close(self, grace: Duration) -> TcpStream {
        match self {
            Self::Plain(socket) => socket.link.into_inner(),
            Self::Tls(tls) => {
                let (mut conn, mut socket) = tls.into_parts();
                let _ = socket.tcp().set_write_timeout(Some(grace));
                conn.send_close_notify();
                while conn.wants_write() {
                    if !matches!(conn.write_tls(&mut socket), Ok(n) if n > 0) {
                        break;
                    }
                }
                socket.link.into_inner()
            }
        }
    }

    /// Closes both directions at once (no goodbye).
    pub(crate) fn shutdown(&self) {
        let _ = self.socket().tcp().shutdown(Shutdown::Both);
    }
}

impl<C, S> Read for Transport<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl<C, S> Write for Transport<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(socket) => socket.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}
