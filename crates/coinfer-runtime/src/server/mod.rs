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

//!
//! One file per role: the options (`config.rs`), the digest and token checks (`auth.rs`),
//! admission of connections and frames (`admission.rs`), one connection's state machine
//! (`connection.rs`) and the counters (`stats.rs`); binding, the accept loop and shutdown here.

mod admission;
mod auth;
mod config;
mod connection;
mod stats;

pub use auth::{MAX_TOKEN_LEN, Token};
pub(crate) use auth::{check_digest, check_token};
pub use config::ServerConfig;
pub use stats::ServerStats;
pub(crate) use stats::Stats;

use admission::{CLOSE_GRACE, linger_close, refuse, refuse_busy};
use connection::Connection;

use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use burn::prelude::*;
use coinfer_codec::CodecId;

use crate::error::{ErrorCode, RuntimeError};
use crate::frame::{CRC_LEN, HEADER_LEN, MAGIC, PlanTag, codec_to_wire};
use crate::tls::ServerTls;
use crate::transport::{Socket, Transport};
use crate::worker::{Job, Worker, WorkerPlan};
use coinfer_codec::SharedCodec;
use coinfer_split::{Network, inference::InferenceNetwork};

/// Requests that may wait for the worker before connection threads block (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// Largest frame a connection may send before its Hello is accepted.
const PRE_HELLO_MAX_FRAME: usize = 64 << 10;
/// Bytes the frame-size bound allows per sample beyond 4 bytes per feature value (codec
/// headers), and per frame (entropy-coder slack).
const SAMPLE_SLACK: usize = 256;
const FRAME_SLACK: usize = 64 << 10;
/// Stack of a connection thread (it only frames bytes; the model runs on the worker).
const CONNECTION_STACK: usize = 256 << 10;

/// What a connection needs to know about one served plan.
#[derive(Debug, Clone)]
struct ServedPlan {
    digest: String,
    tag: PlanTag,
    codec: CodecId,
    /// The edge half's per-sample input `[C, H, W]`: the split feature.
    feature: [usize; 3],
}

/// What every connection thread needs to know about the plans.
struct Shared {
    /// The digest a Hello names: the plan's, or the plan set's.
    digest: String,
    plan: PlanTag,
    /// The codec of the first plan (error frames carry it).
    codec: CodecId,
    /// The served plans (one, or a set's, in the set's order).
    plans: Vec<ServedPlan>,
    /// Whether `digest` names a plan set (a Hello with it may send any of `plans`).
    is_set: bool,
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
    plans: Vec<EdgePlan>,
    /// The plan set's digest (`None`: one plan, named by its own digest).
    set_digest: Option<String>,
    max_frame: usize,
    config: ServerConfig,
}

/// The edge half of one plan, its codec and its digest: what an [`EdgeServer`] serves.
pub struct EdgePlan {
    edge: Network,
    codec: SharedCodec,
    digest: String,
    feature: [usize; 3],
    classes: usize,
}

impl std::fmt::Debug for EdgePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgePlan")
            .field("edge", &self.edge.spec().name)
            .field("codec", &self.codec.id())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl EdgePlan {
    /// The edge half `edge` of the plan named `digest`, decoding with `codec`.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] for a digest over 256 bytes, a codec without a wire code
    /// or an edge half that does not end in `[classes, 1, 1]` logits.
    pub fn new(
        edge: Network,
        codec: SharedCodec,
        digest: impl Into<String>,
    ) -> Result<EdgePlan, RuntimeError> {
        let digest = digest.into();
        check_digest(&digest, None)?;
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
        Ok(EdgePlan {
            feature: edge.spec().input.dims(),
            classes: out.channels,
            edge,
            codec,
            digest,
        })
    }
}

impl std::fmt::Debug for EdgeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeServer")
            .field("local_addr", &self.local_addr)
            .field("plans", &self.plans)
            .field("set_digest", &self.set_digest)
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
        let plan = EdgePlan::new(edge, codec, digest)?;
        Self::bind_plans(addr, vec![plan], None, config)
    }

    /// Binds `addr` to serve every plan of a plan set on one port: a client greets with
    /// `set_digest` and tags each request with the plan it computed
    /// ([`DeviceClient::connect_set`](crate::DeviceClient::connect_set)); a request tagged with
    /// a plan outside the set is refused with [`ErrorCode::PlanNotInSet`]. A client built for
    /// one plan of the set (greeting with that plan's digest) is served that plan, as by
    /// [`bind`](Self::bind).
    ///
    /// # Errors
    /// As [`bind`](Self::bind); [`RuntimeError::InvalidConfig`] (field `plans`) for an empty set
    /// or two plans with the same digest, or a set digest equal to a plan's.
    pub fn bind_set(
        addr: impl ToSocketAddrs,
        plans: Vec<EdgePlan>,
        set_digest: impl Into<String>,
        config: ServerConfig,
    ) -> Result<EdgeServer, RuntimeError> {
        config.check()?;
        let set_digest = set_digest.into();
        check_digest(&set_digest, config.token.as_ref().map(Token::expose))?;
        if plans.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                field: "plans",
                reason: "a plan set needs at least one plan with an edge half".into(),
            });
        }
        for (i, plan) in plans.iter().enumerate() {
            if plan.digest == set_digest || plans[..i].iter().any(|p| p.digest == plan.digest) {
                return Err(RuntimeError::InvalidConfig {
                    field: "plans",
                    reason: format!("plan digest {} appears twice in the set", plan.digest),
                });
            }
        }
        Self::bind_plans(addr, plans, Some(set_digest), config)
    }

    fn bind_plans(
        addr: impl ToSocketAddrs,
        plans: Vec<EdgePlan>,
        set_digest: Option<String>,
        config: ServerConfig,
    ) -> Result<EdgeServer, RuntimeError> {
        if let Some(token) = &config.token {
            for plan in &plans {
                check_digest(&plan.digest, Some(token.expose()))?;
            }
        }
        let max_frame = plans
            .iter()
            .map(|p| plan_max_frame(p.feature, config.max_request_batch))
            .max()
            .unwrap_or(0)
            .min(config.max_frame);
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
            max_frame,
            plans,
            set_digest,
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
        let device = self.plans[0]
            .edge
            .module()
            .devices()
            .into_iter()
            .next()
            .unwrap_or_default();
        let served: Vec<ServedPlan> = self
            .plans
            .iter()
            .map(|p| ServedPlan {
                digest: p.digest.clone(),
                tag: PlanTag::of(&p.digest),
                codec: p.codec.id(),
                feature: p.feature,
            })
            .collect();
        let digest = self
            .set_digest
            .clone()
            .unwrap_or_else(|| served[0].digest.clone());
        let shared = Arc::new(Shared {
            plan: PlanTag::of(&digest),
            digest,
            codec: served[0].codec,
            is_set: self.set_digest.is_some(),
            plans: served,
            config: self.config.clone(),
            max_frame: self.max_frame,
            stats: stats.clone(),
            shutting_down: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            unauthenticated: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
        });
        let plans = self
            .plans
            .into_iter()
            .map(|p| {
                Ok(WorkerPlan {
                    // Batch norm folded once here; every request then runs the inference form.
                    edge: InferenceNetwork::from_network(&p.edge)?,
                    codec: p.codec,
                    classes: p.classes,
                })
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let worker = Worker {
            plans,
            device,
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

#[cfg(test)]
mod tests {
    use super::auth::same_secret;
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
