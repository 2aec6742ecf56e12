//! [`EdgeServer`]: serves the edge half of a split network to many device clients over TCP.
//!
//! Threads: one accept thread, one thread per connection (reads frames, checks them against
//! the plan, writes replies, all under socket timeouts) and one edge worker that owns the model
//! (see `worker.rs`). Connection threads hand decoded-frame jobs to the worker over a bounded
//! channel and wait for its reply on their own channel, so the worker never waits on a socket.
//!
//! Limits against abusive clients (all in [`ServerConfig`]): a Hello deadline counted from the
//! accept, a whole-frame deadline counted from a frame's first byte (besides the idle timeout
//! between frames), a cap on connections still without Hello (the oldest is closed to make
//! room), a per-request batch cap that also bounds the frame size (checked on the header, before
//! allocating), and a global budget of frame bytes held by all connections at once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use burn::prelude::*;
use coinfer_codec::CodecId;

use crate::SharedCodec;
use crate::error::{ErrorCode, RuntimeError};
use crate::frame::{
    CRC_LEN, DEFAULT_MAX_FRAME, Frame, FrameBody, FrameHead, FrameKind, HEADER_LEN, MAGIC,
    MAX_DIGEST_LEN, PlanTag, codec_to_wire, read_frame_admitted, split_hello, write_frame,
};
use crate::tls::ServerTls;
use crate::transport::{Clock, Socket, Transport};
use crate::worker::{Job, Worker};
use coinfer_split::{InferenceNetwork, Network};

/// Requests that may wait for the worker before connection threads block (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// Largest frame a connection may send before its Hello is accepted.
const PRE_HELLO_MAX_FRAME: usize = 64 << 10;
/// Bytes the frame-size bound allows per sample beyond 4 bytes per feature value (codec
/// headers), and per frame (entropy-coder slack).
const SAMPLE_SLACK: usize = 256;
const FRAME_SLACK: usize = 64 << 10;
/// Longest deployment token.
pub const MAX_TOKEN_LEN: usize = 128;
/// Stack of a connection thread (it only frames bytes; the model runs on the worker).
const CONNECTION_STACK: usize = 256 << 10;

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

/// Counters of a running server (a snapshot from [`ServerHandle::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Connections without Hello closed to make room for newer ones (`max_unauthenticated`).
    pub evicted: u64,
    /// Connections closed because a frame or the Hello missed its deadline, or they idled.
    pub timed_out: u64,
    /// Frames refused on their header: over the batch cap or the global byte budget.
    pub over_budget: u64,
    /// Connections closed in the TLS handshake (a certificate refused, not TLS at all).
    pub tls_refused: u64,
    /// Result frames sent.
    pub results: u64,
    /// Error frames sent.
    pub errors: u64,
    /// Forward passes of the edge half (fewer than `results` when batching merges requests).
    pub forward_passes: u64,
    /// Largest number of requests merged into one forward pass.
    pub max_batch_seen: u64,
    /// Connection threads that panicked (a bug: input never makes the server panic).
    pub panics: u64,
}

/// Live counters shared by the server's threads.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    connections: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    timed_out: AtomicU64,
    over_budget: AtomicU64,
    tls_refused: AtomicU64,
    results: AtomicU64,
    errors: AtomicU64,
    pub(crate) forward_passes: AtomicU64,
    pub(crate) max_batch_seen: AtomicU64,
    panics: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            connections: get(&self.connections),
            refused: get(&self.refused),
            evicted: get(&self.evicted),
            timed_out: get(&self.timed_out),
            over_budget: get(&self.over_budget),
            tls_refused: get(&self.tls_refused),
            results: get(&self.results),
            errors: get(&self.errors),
            forward_passes: get(&self.forward_passes),
            max_batch_seen: get(&self.max_batch_seen),
            panics: get(&self.panics),
        }
    }
}

/// What every connection thread needs to know about the plan.
struct Shared {
    digest: String,
    plan: PlanTag,
    codec: CodecId,
    /// The edge half's per-sample input `[C, H, W]`: the split feature.
    feature: [usize; 3],
    config: ServerConfig,
    /// The frame size bound in force (see [`EdgeServer::max_frame`]).
    max_frame: usize,
    stats: Arc<Stats>,
    shutting_down: AtomicBool,
    /// Clones of the open sockets, so shutdown can unblock their threads.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Clones of the sockets still without Hello, oldest (lowest id) first.
    unauthenticated: Mutex<BTreeMap<u64, TcpStream>>,
    /// Frame bytes held by all connections.
    in_flight: AtomicUsize,
}

/// An edge server bound to an address, not yet serving.
///
/// ```
/// use std::sync::Arc;
/// use burn::prelude::*;
/// use coinfer_codec::QuantCodec;
/// use coinfer_runtime::{ClientConfig, DeviceClient, EdgeServer, ServerConfig};
/// use coinfer_split::{Network, zoo};
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let digest = net.digest();
/// let (device_half, edge_half) = net.split(2)?;
/// let codec = Arc::new(QuantCodec::new(8, false)?);
///
/// // The edge process: bind, then serve on background threads.
/// let server = EdgeServer::bind("127.0.0.1:0", edge_half, codec.clone(), &digest, ServerConfig::default())?;
/// let handle = server.spawn()?;
///
/// // The device process: connect (handshake on the plan digest) and infer.
/// let mut client = DeviceClient::connect(handle.local_addr(), device_half, codec, &digest, ClientConfig::default())?;
/// let result = client.infer(Tensor::<4>::zeros([1, 1, 28, 28], &device))?;
/// assert_eq!((result.batch, result.classes), (1, 10));
/// println!("total {:.2} ms, of which wire {:.2} ms", result.timing.total_s * 1e3, result.timing.wire_s * 1e3);
///
/// client.close();
/// handle.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EdgeServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    edge: Network,
    codec: SharedCodec,
    digest: String,
    feature: [usize; 3],
    classes: usize,
    max_frame: usize,
    config: ServerConfig,
}

impl std::fmt::Debug for EdgeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeServer")
            .field("local_addr", &self.local_addr)
            .field("edge", &self.edge.spec().name)
            .field("codec", &self.codec.id())
            .field("digest", &self.digest)
            .field("config", &self.config)
            .finish()
    }
}

impl EdgeServer {
    /// Binds `addr` (port 0 picks a free port) to serve `edge` — the edge half of the plan
    /// named by `digest` — to clients that encode with `codec`.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] for bad options, a digest over 256 bytes or an edge half
    /// that does not end in `[classes, 1, 1]` logits; [`RuntimeError::Io`] when binding fails.
    pub fn bind(
        addr: impl ToSocketAddrs,
        edge: Network,
        codec: SharedCodec,
        digest: impl Into<String>,
        config: ServerConfig,
    ) -> Result<EdgeServer, RuntimeError> {
        config.check()?;
        let digest = digest.into();
        check_digest(&digest, config.token.as_ref().map(Token::expose))?;
        codec_to_wire(codec.id())?;
        let shapes = edge.spec().shapes()?;
        let out = shapes[shapes.len() - 1];
        if out.height != 1 || out.width != 1 {
            return Err(RuntimeError::InvalidConfig {
                field: "edge",
                reason: format!(
                    "the edge half `{}` ends in {:?}, not in [classes, 1, 1] logits",
                    edge.spec().name,
                    out.dims()
                ),
            });
        }
        let feature = edge.spec().input.dims();
        let max_frame = config
            .max_frame
            .min(plan_max_frame(feature, config.max_request_batch));
        if config.max_in_flight_bytes < max_frame {
            return Err(RuntimeError::InvalidConfig {
                field: "max_in_flight_bytes",
                reason: format!(
                    "{} bytes cannot hold one maximum request of {max_frame} bytes",
                    config.max_in_flight_bytes
                ),
            });
        }
        let listener = TcpListener::bind(addr).map_err(|e| RuntimeError::io("binding", e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::io("reading the bound address", e))?;
        Ok(EdgeServer {
            listener,
            local_addr,
            feature,
            max_frame,
            classes: out.channels,
            edge,
            codec,
            digest,
            config,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The largest frame this server reads: `max_frame`, lowered to what
    /// `max_request_batch` samples of the plan's feature can need at 4 bytes a value.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Serves on the calling thread until the process ends.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn), or [`RuntimeError::Internal`] if a server thread dies.
    pub fn serve(self) -> Result<(), RuntimeError> {
        self.spawn()?.wait()
    }

    /// Starts the accept thread and the edge worker, and returns at once.
    ///
    /// # Errors
    /// [`RuntimeError::Io`] when a thread cannot be started.
    pub fn spawn(self) -> Result<ServerHandle, RuntimeError> {
        let stats = Arc::new(Stats::default());
        let device = self
            .edge
            .module()
            .devices()
            .into_iter()
            .next()
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            plan: PlanTag::of(&self.digest),
            digest: self.digest,
            codec: self.codec.id(),
            feature: self.feature,
            config: self.config.clone(),
            max_frame: self.max_frame,
            stats: stats.clone(),
            shutting_down: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            unauthenticated: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
        });
        let worker = Worker {
            // Batch norm folded once here; every request then runs the inference form.
            edge: InferenceNetwork::from_network(&self.edge)?,
            codec: self.codec,
            device,
            classes: self.classes,
            batch_window: self.config.batch_window,
            max_batch: self.config.max_batch,
            max_samples: self.config.max_request_batch,
            stats,
        };
        let (jobs, queue) = mpsc::sync_channel(QUEUE_DEPTH);
        let worker = thread::Builder::new()
            .name("coinfer-edge-worker".into())
            .spawn(move || worker.run(queue))
            .map_err(|e| RuntimeError::io("starting the edge worker", e))?;
        let listener = self.listener;
        let accept_shared = shared.clone();
        let accept = thread::Builder::new()
            .name("coinfer-edge-accept".into())
            .spawn(move || accept_loop(listener, accept_shared, jobs))
            .map_err(|e| RuntimeError::io("starting the accept thread", e))?;
        Ok(ServerHandle {
            local_addr: self.local_addr,
            shared,
            accept: Some(accept),
            worker: Some(worker),
        })
    }
}

/// The largest frame `batch` samples of a `[C, H, W]` feature can need: 4 bytes a value plus
/// codec slack (no codec this crate knows writes more).
fn plan_max_frame(feature: [usize; 3], batch: usize) -> usize {
    let values = feature.iter().fold(1usize, |n, &d| n.saturating_mul(d));
    let per_sample = values.saturating_mul(4).saturating_add(SAMPLE_SLACK);
    batch
        .saturating_mul(per_sample)
        .saturating_add(HEADER_LEN + CRC_LEN + FRAME_SLACK)
}

/// Checks that a Hello can carry `digest` (and `token`, after a separator).
pub(crate) fn check_digest(digest: &str, token: Option<&str>) -> Result<(), RuntimeError> {
    if digest.len() > MAX_DIGEST_LEN {
        return Err(RuntimeError::InvalidConfig {
            field: "digest",
            reason: format!(
                "{} bytes, the protocol carries at most {MAX_DIGEST_LEN}",
                digest.len()
            ),
        });
    }
    if let Some(token) = token
        && digest.len() + 1 + token.len() > MAX_DIGEST_LEN
    {
        return Err(RuntimeError::InvalidConfig {
            field: "token",
            reason: format!(
                "the digest, a separator and the token must fit in {MAX_DIGEST_LEN} bytes"
            ),
        });
    }
    Ok(())
}

/// A deployment token: a shared secret a client presents in its Hello. Its `Debug` form hides
/// the value, so configurations can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Self(secret.to_string())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

/// Checks a deployment token: 1 to [`MAX_TOKEN_LEN`] bytes, no NUL.
pub(crate) fn check_token(token: Option<&str>) -> Result<(), RuntimeError> {
    match token {
        Some(t) if t.is_empty() || t.len() > MAX_TOKEN_LEN || t.contains('\0') => {
            Err(RuntimeError::InvalidConfig {
                field: "token",
                reason: format!(
                    "must be 1..={MAX_TOKEN_LEN} bytes without NUL, not {} bytes",
                    t.len()
                ),
            })
        }
        _ => Ok(()),
    }
}

/// A running edge server. Dropping it shuts the server down, like [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("digest", &self.digest)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's counters so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats.snapshot()
    }

    /// Frame bytes the connections hold right now against
    /// [`ServerConfig::max_in_flight_bytes`] (a frame counts from its admitted header until
    /// it is answered).
    pub fn in_flight_bytes(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Stops accepting, closes every connection, lets the worker finish, joins all threads and
    /// returns the final counters.
    ///
    /// # Errors
    /// [`RuntimeError::Internal`] if any server thread panicked.
    pub fn shutdown(mut self) -> Result<ServerStats, RuntimeError> {
        self.stop()?;
        let stats = self.stats();
        if stats.panics > 0 {
            return Err(RuntimeError::Internal(format!(
                "{} connection threads panicked",
                stats.panics
            )));
        }
        Ok(stats)
    }

    /// Blocks until the server stops (it only stops through [`shutdown`](Self::shutdown) from
    /// another handle owner, so in practice: forever).
    fn wait(mut self) -> Result<(), RuntimeError> {
        let joined = join("accept", self.accept.take());
        self.stop().and(joined)
    }

    fn stop(&mut self) -> Result<(), RuntimeError> {
        if self.accept.is_none() && self.worker.is_none() {
            return Ok(());
        }
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let accept = join("accept", self.accept.take());
        let worker = join("edge worker", self.worker.take());
        accept.and(worker)
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn join(what: &str, handle: Option<JoinHandle<()>>) -> Result<(), RuntimeError> {
    match handle.map(JoinHandle::join) {
        Some(Err(_)) => Err(RuntimeError::Internal(format!(
            "the {what} thread panicked"
        ))),
        _ => Ok(()),
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, jobs: SyncSender<Job>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    for incoming in listener.incoming() {
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(stream) => stream,
            Err(_) => {
                // Out of descriptors and the like: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        reap(&mut connections, &shared, false);
        if connections.len() >= shared.config.max_connections {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            refuse_busy(stream, &shared, "too many connections, retry later");
            continue;
        }
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        {
            let mut waiting = lock(&shared.unauthenticated);
            if waiting.len() >= shared.config.max_unauthenticated
                && let Some((_, oldest)) = waiting.pop_first()
            {
                // Its thread sees the socket end and exits.
                let _ = oldest.shutdown(Shutdown::Both);
                shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(clone) = stream.try_clone() {
                waiting.insert(id, clone);
            }
        }
        let conn_shared = shared.clone();
        let conn_jobs = jobs.clone();
        let spawned = thread::Builder::new()
            .name(format!("coinfer-edge-conn-{id}"))
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                if let Some(connection) = Connection::open(stream, id, &conn_shared, conn_jobs) {
                    connection.run();
                }
                lock(&conn_shared.unauthenticated).remove(&id);
                lock(&conn_shared.open).remove(&id);
            });
        match spawned {
            Ok(handle) => {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                connections.push(handle);
            }
            Err(_) => {
                lock(&shared.unauthenticated).remove(&id);
                if let Some(stream) = lock(&shared.open).remove(&id) {
                    refuse_busy(stream, &shared, "cannot start a connection thread");
                }
            }
        }
    }
    for (_, stream) in lock(&shared.open).drain() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    reap(&mut connections, &shared, true);
    // `jobs` drops here: once the connections are gone the worker drains its queue and exits.
}

/// Joins finished connection threads (all of them when `all`), counting panics.
fn reap(connections: &mut Vec<JoinHandle<()>>, shared: &Shared, all: bool) {
    let (done, running): (Vec<_>, Vec<_>) = std::mem::take(connections)
        .into_iter()
        .partition(|c| all || c.is_finished());
    *connections = running;
    for connection in done {
        if connection.join().is_err() {
            shared.stats.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A connection thread cannot panic while holding this lock; recover the map regardless.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wraps a new connection in TLS and runs the handshake under the Hello deadline. A client
/// that opens with a plain frame gets a plain `TlsRequired` error frame; a refused handshake
/// (rustls has sent its alert) is lingered on so the alert reaches the peer.
fn secure(
    shared: &Shared,
    tls: &ServerTls,
    socket: Socket,
    hello_deadline: Instant,
) -> Option<Transport<rustls::ServerConnection>> {
    let wait = hello_deadline.saturating_duration_since(Instant::now());
    let mut first = [0u8; 1];
    let peeked = socket
        .tcp()
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .and_then(|()| socket.tcp().peek(&mut first));
    match peeked {
        Ok(1) if first[0] == MAGIC[0] => {
            let tcp = Transport::<rustls::ServerConnection>::Plain(socket).close(CLOSE_GRACE);
            refuse(
                tcp,
                shared,
                ErrorCode::TlsRequired,
                "this server speaks TLS only: connect with TLS (coinfer infer --tls-ca)",
            );
            return None;
        }
        Ok(1) => {}
        Ok(_) => return None,
        Err(_) => {
            shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }
    let connection = tls.connection().ok()?;
    let mut stream = Transport::tls(connection, socket);
    match stream.handshake() {
        Ok(()) => Some(stream),
        Err(RuntimeError::Timeout { .. }) => {
            shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(RuntimeError::Tls { .. }) => {
            shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
            linger_close(stream.close(CLOSE_GRACE));
            None
        }
        Err(_) => None,
    }
}

/// How long sending a TLS `close_notify` may take when closing.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Answers a connection we will not serve with one error frame, then closes it.
fn refuse(stream: TcpStream, shared: &Shared, code: ErrorCode, message: &str) {
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
fn refuse_busy(stream: TcpStream, shared: &Shared, message: &str) {
    if shared.config.tls.is_some() {
        let _ = stream.shutdown(Shutdown::Both);
    } else {
        refuse(stream, shared, ErrorCode::Busy, message);
    }
}

/// Closes after an error reply without losing it: half-close, then drain what the peer still
/// sends for a moment, so the kernel does not reset the connection (and discard our reply)
/// because unread bytes were left behind.
fn linger_close(stream: TcpStream) {
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

/// One client connection, served on its own thread.
struct Connection<'a> {
    stream: Transport<rustls::ServerConnection>,
    id: u64,
    accepted: Instant,
    shared: &'a Shared,
    jobs: SyncSender<Job>,
    greeted: bool,
}

/// Frame bytes a connection holds against [`Shared::in_flight`]; released on drop.
struct Budget<'a> {
    shared: &'a Shared,
    bytes: usize,
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
fn admit<'a>(
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

/// What to do with the connection after a frame.
enum Next {
    Continue,
    Close,
    /// Send nothing more; linger so the last reply is not lost, then close.
    LingerClose,
}

impl<'a> Connection<'a> {
    /// Configures the socket and, on a TLS server, runs the TLS handshake under the Hello
    /// deadline; `None` when the connection ended there (refused, timed out, gone).
    fn open(tcp: TcpStream, id: u64, shared: &'a Shared, jobs: SyncSender<Job>) -> Option<Self> {
        let config = &shared.config;
        let accepted = Instant::now();
        let hello_deadline = accepted + config.hello_timeout;
        tcp.set_nodelay(true)
            .and_then(|()| tcp.set_read_timeout(Some(config.read_timeout)))
            .and_then(|()| tcp.set_write_timeout(Some(config.write_timeout)))
            .ok()?;
        let mut socket = Socket::new(tcp, None);
        socket.set_clock(Clock {
            idle: config.read_timeout,
            frame: config.frame_timeout,
            deadline: Some(hello_deadline),
        });
        let stream = match &config.tls {
            None => Transport::Plain(socket),
            Some(tls) => secure(shared, tls, socket, hello_deadline)?,
        };
        Some(Self {
            stream,
            id,
            accepted,
            shared,
            jobs,
            greeted: false,
        })
    }

    fn run(mut self) {
        let shared = self.shared;
        let config = &shared.config;
        let next = loop {
            let greeted = self.greeted;
            self.stream.socket_mut().set_clock(Clock {
                idle: config.read_timeout,
                frame: config.frame_timeout,
                deadline: (!greeted).then(|| self.accepted + config.hello_timeout),
            });
            let max_frame = if greeted {
                shared.max_frame
            } else {
                shared.max_frame.min(PRE_HELLO_MAX_FRAME)
            };
            let mut refusal = None;
            let read = read_frame_admitted(&mut self.stream, max_frame, |head| {
                admit(shared, greeted, head).map_err(|r| {
                    refusal = Some(r);
                    RuntimeError::ConnectionClosed
                })
            });
            if let Some((id, code, message)) = refusal {
                // The payload was not read: the stream is out of sync.
                shared.stats.over_budget.fetch_add(1, Ordering::Relaxed);
                self.reply_error(id, code, &message);
                break Next::LingerClose;
            }
            let next = match read {
                Ok((frame, budget)) => {
                    let next = self.handle(frame);
                    drop(budget);
                    next
                }
                Err(RuntimeError::ConnectionClosed) => Next::Close,
                Err(RuntimeError::Timeout { .. }) => {
                    shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    Next::Close
                }
                // The TLS layer broke (rustls sent its alert): no frame can follow.
                Err(RuntimeError::Tls { .. }) => {
                    shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                    Next::LingerClose
                }
                Err(e) if e.keeps_stream_in_sync() => {
                    self.reply_error(e.request_id().unwrap_or(0), e.code(), &e.to_string())
                }
                // Resets and ends inside a frame: the peer is gone, and a reply would most
                // likely not be read.
                Err(RuntimeError::Io { .. } | RuntimeError::Truncated { .. }) => Next::Close,
                // Bad magic, version or length: the stream is out of sync, say why and close.
                Err(e) => {
                    self.reply_error(e.request_id().unwrap_or(0), e.code(), &e.to_string());
                    Next::LingerClose
                }
            };
            if !matches!(next, Next::Continue) || self.shared.shutting_down.load(Ordering::SeqCst) {
                break next;
            }
        };
        let stream = self.stream.close(CLOSE_GRACE);
        match next {
            Next::LingerClose => linger_close(stream),
            Next::Continue | Next::Close => {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Sends an error frame; closes the connection if that fails.
    fn reply_error(&mut self, request_id: u64, code: ErrorCode, message: &str) -> Next {
        let frame = Frame::error(
            request_id,
            self.shared.plan,
            self.shared.codec,
            code,
            message,
        );
        match write_frame(&mut self.stream, &frame) {
            Ok(_) => {
                self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }

    fn handle(&mut self, frame: Frame) -> Next {
        let shared = self.shared;
        let id = frame.request_id;
        let kind = frame.kind();
        let shape = frame.shape_usize();
        match frame.body {
            FrameBody::Hello { digest } => self.handshake(&digest, frame.codec, frame.shape),
            // Nothing but Hello (or Bye) is served before the handshake.
            FrameBody::Infer { .. } if !self.greeted => self.reply_error(
                id,
                ErrorCode::UnexpectedFrame,
                &format!("request {id}: Infer before the Hello handshake"),
            ),
            FrameBody::Infer { .. } if frame.plan != shared.plan => self.reply_error(
                id,
                ErrorCode::DigestMismatch,
                &format!(
                    "request {id}: plan tag {} is not the server's {} (plan {})",
                    frame.plan, shared.plan, shared.digest
                ),
            ),
            FrameBody::Infer { .. } if frame.codec != shared.codec => self.reply_error(
                id,
                ErrorCode::CodecMismatch,
                &format!(
                    "request {id}: feature encoded with {} but the server decodes {}",
                    frame.codec, shared.codec
                ),
            ),
            FrameBody::Infer { payload } => {
                if shape[1..] != shared.feature {
                    return self.reply_error(
                        id,
                        ErrorCode::ShapeMismatch,
                        &format!(
                            "request {id}: feature shape {shape:?} does not fit the plan's split \
                             feature [B, {}, {}, {}]",
                            shared.feature[0], shared.feature[1], shared.feature[2]
                        ),
                    );
                }
                self.infer(id, shape, payload)
            }
            FrameBody::Bye => Next::Close,
            FrameBody::Result { .. } | FrameBody::Error { .. } => self.reply_error(
                id,
                ErrorCode::UnexpectedFrame,
                &format!("request {id}: a client sends Hello, Infer or Bye, not {kind:?}"),
            ),
        }
    }

    fn handshake(&mut self, text: &str, codec: CodecId, shape: [u32; 4]) -> Next {
        let shared = self.shared;
        let (digest, token) = split_hello(text);
        let authorized = match (&shared.config.token, token) {
            (None, _) => true,
            (Some(expected), Some(given)) => {
                same_secret(expected.expose().as_bytes(), given.as_bytes())
            }
            (Some(_), None) => false,
        };
        let refusal = if !authorized {
            Some((
                ErrorCode::Unauthorized,
                match token {
                    Some(_) => "the deployment token is wrong".to_string(),
                    None => "this server needs a deployment token in the Hello".to_string(),
                },
            ))
        } else if digest != shared.digest {
            Some((
                ErrorCode::DigestMismatch,
                format!(
                    "plan digest mismatch: server has {}, client has {digest}",
                    shared.digest
                ),
            ))
        } else if codec != shared.codec {
            Some((
                ErrorCode::CodecMismatch,
                format!(
                    "codec mismatch: server decodes {}, client encodes {codec}",
                    shared.codec
                ),
            ))
        } else if shape.map(|d| d as usize)[1..] != shared.feature {
            Some((
                ErrorCode::ShapeMismatch,
                format!(
                    "split feature mismatch: server expects {:?}, client sends {:?}",
                    shared.feature,
                    &shape[1..]
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.reply_error(0, code, &message);
            return Next::LingerClose;
        }
        let reply = match Frame::hello(&shared.digest, shared.codec, shared.feature) {
            Ok(reply) => reply,
            Err(e) => {
                self.reply_error(0, ErrorCode::Internal, &e.to_string());
                return Next::LingerClose;
            }
        };
        match write_frame(&mut self.stream, &reply) {
            Ok(_) => {
                self.greeted = true;
                lock(&shared.unauthenticated).remove(&self.id);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }

    fn infer(&mut self, request_id: u64, shape: [usize; 4], payload: Vec<u8>) -> Next {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            request_id,
            shape,
            payload,
            enqueued: Instant::now(),
            reply,
        };
        if self.jobs.send(job).is_err() {
            self.reply_error(
                request_id,
                ErrorCode::ShuttingDown,
                "the edge worker has stopped",
            );
            return Next::LingerClose;
        }
        let answer = match answer.recv() {
            Ok(Ok(answer)) => answer,
            Ok(Err((code, message))) => return self.reply_error(request_id, code, &message),
            Err(_) => {
                self.reply_error(
                    request_id,
                    ErrorCode::Internal,
                    "the edge worker dropped the request",
                );
                return Next::LingerClose;
            }
        };
        let frame = Frame {
            request_id,
            plan: self.shared.plan,
            codec: self.shared.codec,
            shape: [answer.batch as u32, answer.classes as u32, 1, 1],
            body: FrameBody::Result {
                timing: answer.timing,
                logits: answer.logits,
            },
        };
        match write_frame(&mut self.stream, &frame) {
            Ok(_) => {
                self.shared.stats.results.fetch_add(1, Ordering::Relaxed);
                Next::Continue
            }
            Err(_) => Next::Close,
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An option name and a change that breaks it.
    type Breaker = (&'static str, fn(&mut ServerConfig));

    #[test]
    fn each_bad_option_is_named() {
        let cases: [Breaker; 12] = [
            ("read_timeout", |c| c.read_timeout = Duration::ZERO),
            ("frame_timeout", |c| c.frame_timeout = Duration::ZERO),
            ("hello_timeout", |c| c.hello_timeout = Duration::ZERO),
            ("max_unauthenticated", |c| c.max_unauthenticated = 0),
            ("write_timeout", |c| c.write_timeout = Duration::ZERO),
            ("max_frame", |c| c.max_frame = 10),
            ("max_request_batch", |c| c.max_request_batch = 0),
            ("max_in_flight_bytes", |c| c.max_in_flight_bytes = 100),
            ("token", |c| c.token = Some("".into())),
            ("token", |c| c.token = Some("a\0b".into())),
            ("max_batch", |c| c.max_batch = 0),
            ("max_connections", |c| c.max_connections = 0),
        ];
        for (field, breaks) in cases {
            let mut config = ServerConfig::default();
            breaks(&mut config);
            match config.check() {
                Err(RuntimeError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(ServerConfig::default().check().is_ok());
    }

    #[test]
    fn a_logged_config_does_not_show_the_token() {
        let config = ServerConfig {
            token: Some("hunter2-secret".into()),
            ..ServerConfig::default()
        };
        let logged = format!("{config:?}");
        assert!(!logged.contains("hunter2"), "{logged}");
        assert!(logged.contains("Token(<14 bytes>)"), "{logged}");
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn the_frame_bound_follows_the_plan_feature() {
        // 64 samples of [32, 7, 7] at 4 bytes a value, plus slack: far below 64 MiB.
        let bound = plan_max_frame([32, 7, 7], 64);
        assert_eq!(
            bound,
            64 * (32 * 7 * 7 * 4 + SAMPLE_SLACK) + HEADER_LEN + CRC_LEN + FRAME_SLACK
        );
        assert_eq!(plan_max_frame([usize::MAX, 2, 2], 2), usize::MAX);
    }
}
