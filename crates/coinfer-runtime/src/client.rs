//! [`DeviceClient`]: runs the device half, encodes the split feature, sends it to an edge
//! server and returns the logits with a timing breakdown.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use burn::prelude::*;

use crate::error::{ErrorCode, RuntimeError};
use crate::frame::{
    DEFAULT_MAX_FRAME, Frame, FrameBody, PlanTag, encode_frame, read_frame, write_frame,
};
use crate::server::{Token, check_digest, check_token};
use crate::shaping::{LinkShaping, TracePlayer};
use crate::tls::ClientTls;
use crate::transport::{Socket, Transport};
use coinfer_codec::SharedCodec;
use coinfer_split::{Network, inference::InferenceNetwork};
use std::sync::Arc;

/// Device client options.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// How long connecting may take (per resolved address).
    pub connect_timeout: Duration,
    /// How long to wait for a reply (the edge's queueing and compute included).
    pub read_timeout: Duration,
    /// How long sending one frame may take (a shaped link's transmit time included).
    pub write_timeout: Duration,
    /// Largest reply frame accepted.
    pub max_frame: usize,
    /// Emulated uplink (rate cap and added delay); `None` sends at loopback speed.
    pub shaping: Option<LinkShaping>,
    /// An emulated link that changes (replaces `shaping`): every connection of the client
    /// plays the same trace.
    pub trace: Option<Arc<TracePlayer>>,
    /// The deployment token presented in the Hello (servers started with a token refuse
    /// clients without it).
    pub token: Option<Token>,
    /// TLS to the server (its CA, the name to check, an optional client certificate);
    /// `None` speaks plain TCP. The shaped link carries the TLS records.
    pub tls: Option<ClientTls>,
    /// How many times one request is retried on a new connection when the connection fails
    /// (reset, timeout, server gone) or the server answers `Busy` / `ShuttingDown`; inference
    /// is idempotent, so a retried request gives the same answer.
    pub retries: u32,
    /// Wait before the first retry; it doubles for each further one, up to [`MAX_BACKOFF`].
    pub retry_backoff: Duration,
}

/// Longest wait between two retries of one request.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME,
            shaping: None,
            trace: None,
            token: None,
            tls: None,
            retries: 3,
            retry_backoff: Duration::from_millis(50),
        }
    }
}

impl ClientConfig {
    /// Checks every option.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] naming the first bad field.
    pub fn check(&self) -> Result<(), RuntimeError> {
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return Err(RuntimeError::InvalidConfig {
                    field,
                    reason: "must be positive".into(),
                });
            }
        }
        if self.max_frame < 1024 {
            return Err(RuntimeError::InvalidConfig {
                field: "max_frame",
                reason: format!(
                    "{} bytes is too small for a reply (minimum 1024)",
                    self.max_frame
                ),
            });
        }
        if let Some(shaping) = &self.shaping {
            shaping.check()?;
        }
        check_token(self.token.as_ref().map(Token::expose))?;
        if self.retries > 0 && self.retry_backoff.is_zero() {
            return Err(RuntimeError::InvalidConfig {
                field: "retry_backoff",
                reason: "must be positive when retries are on".into(),
            });
        }
        Ok(())
    }
}

/// Where the time of one request went, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timing {
    /// The device half's forward pass.
    pub device_s: f64,
    /// Encoding the split feature.
    pub encode_s: f64,
    /// From the start of sending to the reply's arrival, minus the edge's queue, decode and
    /// compute time: transmission both ways, the emulated link, framing and scheduling.
    pub wire_s: f64,
    /// Waiting for the edge worker (includes a dynamic-batching window).
    pub queue_s: f64,
    /// Decoding the feature on the edge.
    pub decode_s: f64,
    /// The edge half's forward pass (the whole merged batch's, with dynamic batching).
    pub edge_s: f64,
    /// Device forward to reply, end to end.
    pub total_s: f64,
}

/// The answer to one [`DeviceClient::infer`].
#[derive(Debug, Clone, PartialEq)]
pub struct InferResult {
    /// The request id the server answered.
    pub request_id: u64,
    /// `batch × classes` logits, row-major.
    pub logits: Vec<f32>,
    /// Samples in the request.
    pub batch: usize,
    /// Logits per sample.
    pub classes: usize,
    /// Where the time went.
    pub timing: Timing,
    /// Bytes of the codec payload (the feature on the wire).
    pub payload_bytes: usize,
    /// Bytes of the whole Infer frame (payload plus 60 bytes of framing).
    pub frame_bytes: usize,
    /// Requests that shared the edge's forward pass (1 without dynamic batching).
    pub batch_requests: u32,
}

impl InferResult {
    /// The logits as a `[batch, classes]` tensor on `device`.
    pub fn logits_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::<2>::from_data(
            TensorData::new(self.logits.clone(), [self.batch, self.classes]),
            device,
        )
    }

    /// The arg-max class of each sample.
    pub fn predictions(&self) -> Vec<usize> {
        self.logits
            .chunks(self.classes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 { (i, v) } else { best }
                    })
                    .0
            })
            .collect()
    }
}

/// The device side of a split network: a connection to an edge server that has passed the
/// plan-digest handshake.
///
/// Requests are synchronous (one in flight per client); open one client per thread for
/// concurrency. Dropping the client says Bye to the server.
///
/// ```
/// use std::sync::Arc;
/// use burn::prelude::*;
/// use coinfer_codec::Float32Codec;
/// use coinfer_runtime::{ClientConfig, DeviceClient, EdgeServer, ServerConfig};
/// use coinfer_split::{Network, zoo};
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let (device_half, edge_half) = net.clone().split(3)?;
/// let codec = Arc::new(Float32Codec);
/// let server = EdgeServer::bind("127.0.0.1:0", edge_half, codec.clone(), "plan-1", ServerConfig::default())?
///     .spawn()?;
///
/// let mut client = DeviceClient::connect(server.local_addr(), device_half, codec, "plan-1", ClientConfig::default())?;
/// let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
/// let remote = client.infer(x.clone())?;
/// // A lossless codec gives the whole network's logits.
/// let local = net.logits(x)?.into_data().to_vec::<f32>().unwrap();
/// assert!(remote.logits.iter().zip(&local).all(|(a, b)| (a - b).abs() < 1e-5));
///
/// // A client built for another plan is refused at the handshake.
/// let (other_device, _) = net.split(3)?;
/// let refused = DeviceClient::connect(server.local_addr(), other_device, Arc::new(Float32Codec), "plan-2", ClientConfig::default());
/// assert!(refused.unwrap_err().to_string().contains("plan digest mismatch"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DeviceClient {
    link: Link,
    /// The plans this client runs: one for [`connect`](Self::connect), a set's for
    /// [`connect_set`](Self::connect_set).
    plans: Vec<ClientPlan>,
    /// What the Hello carries: the plan's digest, or the set's.
    digest: String,
    hello_codec: coinfer_codec::CodecId,
    hello_feature: [usize; 3],
    addrs: Vec<SocketAddr>,
    config: ClientConfig,
    next_id: u64,
    open: bool,
    reconnects: u64,
}

/// One plan a client can run: the device half of a split plan with its codec (the edge answers),
/// or the whole network on the device (a device-only plan: nothing is sent).
pub struct ClientPlan {
    digest: String,
    tag: PlanTag,
    network: Network,
    /// `network` with batch norm folded: what requests run.
    fast: InferenceNetwork,
    /// `None` for a device-only plan.
    codec: Option<SharedCodec>,
    /// The split feature per sample (the device-only plan's logits shape).
    feature: [usize; 3],
    /// Emulated device: device half and encoding take at least this long.
    device_time: Option<Duration>,
}

impl std::fmt::Debug for ClientPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPlan")
            .field("digest", &self.digest)
            .field("codec", &self.codec.as_ref().map(|c| c.id()))
            .field("feature", &self.feature)
            .finish_non_exhaustive()
    }
}

impl ClientPlan {
    /// The device half of the plan named `digest`, encoding with `codec`.
    ///
    /// # Errors
    /// [`RuntimeError::Model`] when the half's shapes cannot be inferred or folded.
    pub fn remote(
        device_half: Network,
        codec: SharedCodec,
        digest: impl Into<String>,
    ) -> Result<ClientPlan, RuntimeError> {
        let digest = digest.into();
        check_digest(&digest, None)?;
        let shapes = device_half.spec().shapes()?;
        Ok(ClientPlan {
            tag: PlanTag::of(&digest),
            digest,
            fast: InferenceNetwork::from_network(&device_half)?,
            feature: shapes[shapes.len() - 1].dims(),
            network: device_half,
            codec: Some(codec),
            device_time: None,
        })
    }

    /// A device-only plan named `digest`: `network` is the whole (possibly pruned) network.
    ///
    /// # Errors
    /// As [`remote`](Self::remote).
    pub fn local(network: Network, digest: impl Into<String>) -> Result<ClientPlan, RuntimeError> {
        let digest = digest.into();
        check_digest(&digest, None)?;
        let shapes = network.spec().shapes()?;
        Ok(ClientPlan {
            tag: PlanTag::of(&digest),
            digest,
            fast: InferenceNetwork::from_network(&network)?,
            feature: shapes[shapes.len() - 1].dims(),
            network,
            codec: None,
            device_time: None,
        })
    }

    /// Emulates a slower device, as [`LinkShaping`] emulates a link: the device half and the
    /// encoding of each request take at least `time` (the client sleeps out the rest before
    /// sending), e.g. the latency model's device + encode prediction for a microcontroller.
    pub fn emulate_device_time(mut self, time: Duration) -> ClientPlan {
        self.device_time = Some(time);
        self
    }

    /// Sleeps out the emulated device time of a request started at `start`.
    fn pad(&self, start: Instant) {
        if let Some(left) = self
            .device_time
            .and_then(|t| t.checked_sub(start.elapsed()))
        {
            thread::sleep(left);
        }
    }

    /// The plan's digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the device answers alone (nothing is sent).
    pub fn is_local(&self) -> bool {
        self.codec.is_none()
    }

    /// The network the device runs (the device half, or the whole network).
    pub fn network(&self) -> &Network {
        &self.network
    }
}

/// One greeted connection.
struct Link {
    stream: Transport<rustls::ClientConnection>,
    peer: SocketAddr,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("peer", &self.link.peer)
            .field("plans", &self.plans)
            .field("digest", &self.digest)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// Connects to the edge server at `addr` and shakes hands: the server checks that the
    /// plan `digest`, the codec and the split feature shape are its own.
    ///
    /// # Errors
    /// [`RuntimeError::HandshakeRefused`] with the server's message (e.g. `plan digest
    /// mismatch: server has X, client has Y`), [`RuntimeError::InvalidConfig`] for bad options,
    /// [`RuntimeError::Io`] / [`RuntimeError::Timeout`] when the server cannot be reached.
    pub fn connect(
        addr: impl ToSocketAddrs,
        device: Network,
        codec: SharedCodec,
        digest: impl Into<String>,
        config: ClientConfig,
    ) -> Result<DeviceClient, RuntimeError> {
        config.check()?;
        let digest = digest.into();
        check_digest(&digest, config.token.as_ref().map(Token::expose))?;
        let plan = ClientPlan::remote(device, codec, digest.clone())?;
        Self::open(addr, vec![plan], digest, config)
    }

    /// Connects to an edge server that serves a plan set (`coinfer serve --plans`): the Hello
    /// carries `set_digest`, and each request is tagged with the plan it was computed under
    /// ([`infer_with`](Self::infer_with)). `plans` are the set's plans in the set's order;
    /// device-only ones ([`ClientPlan::local`]) never use the connection, but at least one plan
    /// must be remote.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`RuntimeError::InvalidConfig`] (field `plans`) for a set
    /// without a remote plan.
    pub fn connect_set(
        addr: impl ToSocketAddrs,
        plans: Vec<ClientPlan>,
        set_digest: impl Into<String>,
        config: ClientConfig,
    ) -> Result<DeviceClient, RuntimeError> {
        config.check()?;
        let digest = set_digest.into();
        check_digest(&digest, config.token.as_ref().map(Token::expose))?;
        Self::open(addr, plans, digest, config)
    }

    fn open(
        addr: impl ToSocketAddrs,
        plans: Vec<ClientPlan>,
        digest: String,
        config: ClientConfig,
    ) -> Result<DeviceClient, RuntimeError> {
        let Some((hello_codec, hello_feature)) = plans
            .iter()
            .find_map(|p| p.codec.as_ref().map(|c| (c.id(), p.feature)))
        else {
            return Err(RuntimeError::InvalidConfig {
                field: "plans",
                reason: "no plan of the set uses the edge server".into(),
            });
        };
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| RuntimeError::io("resolving the server address", e))?
            .collect();
        let link = Link::open(&addrs, &digest, hello_codec, hello_feature, &config)?;
        Ok(DeviceClient {
            link,
            plans,
            digest,
            hello_codec,
            hello_feature,
            addrs,
            config,
            next_id: 1,
            open: true,
            reconnects: 0,
        })
    }

    /// The plans this client runs, in the order [`infer_with`](Self::infer_with) numbers them.
    pub fn plans(&self) -> &[ClientPlan] {
        &self.plans
    }

    /// Whether the last connection is still open (a lost one is reopened by the next remote
    /// request).
    pub fn is_connected(&self) -> bool {
        self.open
    }

    /// How many times the client opened a new connection after losing one.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The edge server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.link.peer
    }

    /// The device half this client runs (of its first plan).
    pub fn device_half(&self) -> &Network {
        &self.plans[0].network
    }

    /// Runs the device half on `x` (`[B, C, H, W]` of the network's input), sends the encoded
    /// feature and waits for the edge's logits.
    ///
    /// # Errors
    /// [`RuntimeError::Model`] / [`RuntimeError::Codec`] for device-side failures (the input's
    /// shape, a non-finite feature), [`RuntimeError::Remote`] when the server answers with an
    /// error frame (the connection stays usable), I/O, timeout and framing errors otherwise
    /// (the connection is then closed, and the next call opens a new one). Lost connections
    /// and `Busy` / `ShuttingDown` answers are first retried on a new connection, up to
    /// [`ClientConfig::retries`] times with doubling backoff.
    pub fn infer(&mut self, x: Tensor<4>) -> Result<InferResult, RuntimeError> {
        self.infer_with(0, x)
    }

    /// Runs request `x` under plan `plan` of [`plans`](Self::plans): a remote plan as
    /// [`infer`](Self::infer) does, tagged with that plan; a device-only plan on the device alone
    /// (its timing is all `device_s`, nothing is sent).
    ///
    /// # Errors
    /// As [`infer`](Self::infer); [`RuntimeError::InvalidConfig`] (field `plan`) for an index
    /// outside the plans.
    pub fn infer_with(&mut self, plan: usize, x: Tensor<4>) -> Result<InferResult, RuntimeError> {
        let Some(chosen) = self.plans.get(plan) else {
            return Err(RuntimeError::InvalidConfig {
                field: "plan",
                reason: format!("plan {plan} of {}", self.plans.len()),
            });
        };
        let start = Instant::now();
        let feature = chosen.fast.forward(x)?;
        let dims = feature.dims();
        let device_done = Instant::now();
        let request_id = self.next_id;
        self.next_id += 1;
        let Some(codec) = chosen.codec.clone() else {
            return local_result(chosen, request_id, start, feature);
        };
        let tag = chosen.tag;
        let payload = codec.encode(feature)?;
        chosen.pad(start);
        let encoded = Instant::now();
        let frame = Frame {
            request_id,
            plan: tag,
            codec: codec.id(),
            shape: [
                crate::frame::dim_u32(dims[0])?,
                crate::frame::dim_u32(dims[1])?,
                crate::frame::dim_u32(dims[2])?,
                crate::frame::dim_u32(dims[3])?,
            ],
            body: FrameBody::Infer {
                payload: payload.bytes,
            },
        };
        let bytes = encode_frame(&frame)?;
        let payload_bytes = bytes.len() - crate::frame::HEADER_LEN - crate::frame::CRC_LEN;
        let reply = self.exchange_with_retries(&bytes, request_id);
        let received = Instant::now();
        let reply = reply?;
        let (timing, logits) = match reply.body {
            FrameBody::Result { timing, logits } if reply.request_id == request_id => {
                (timing, logits)
            }
            FrameBody::Error { code, message } if reply.request_id == request_id => {
                return Err(RuntimeError::Remote {
                    request_id,
                    code,
                    message,
                });
            }
            other => {
                // A reply to something else: the conversation is lost.
                self.open = false;
                return Err(RuntimeError::UnexpectedFrame {
                    request_id,
                    expected: "the Result of this request",
                    found: format!("{:?} for request {}", other.kind(), reply.request_id),
                });
            }
        };
        let [batch, classes, _, _] = reply.shape.map(|d| d as usize);
        let secs = |us: u64| us as f64 * 1e-6;
        let (queue_s, decode_s, edge_s) = (
            secs(timing.queue_us),
            secs(timing.decode_us),
            secs(timing.edge_us),
        );
        let round_trip = received.duration_since(encoded).as_secs_f64();
        Ok(InferResult {
            request_id,
            logits,
            batch,
            classes,
            timing: Timing {
                device_s: device_done.duration_since(start).as_secs_f64(),
                encode_s: encoded.duration_since(device_done).as_secs_f64(),
                wire_s: (round_trip - queue_s - decode_s - edge_s).max(0.0),
                queue_s,
                decode_s,
                edge_s,
                total_s: received.duration_since(start).as_secs_f64(),
            },
            payload_bytes,
            frame_bytes: bytes.len(),
            batch_requests: timing.batch_requests,
        })
    }

    /// Sends one frame and reads the reply, on a new connection if the last one was lost, and
    /// again on a fresh connection (after a backoff) while the failure is transient.
    fn exchange_with_retries(
        &mut self,
        bytes: &[u8],
        request_id: u64,
    ) -> Result<Frame, RuntimeError> {
        let mut attempt = 0u32;
        loop {
            let result = self.reopen().and_then(|()| self.exchange(bytes));
            let transient = match &result {
                Ok(frame) => match &frame.body {
                    FrameBody::Error { code, .. } if frame.request_id == request_id => {
                        matches!(code, ErrorCode::Busy | ErrorCode::ShuttingDown)
                    }
                    _ => false,
                },
                Err(e) => is_transient(e),
            };
            if !transient || attempt >= self.config.retries {
                return result;
            }
            // The server is going away or overloaded: leave this connection for another one.
            self.drop_link();
            let backoff = self
                .config
                .retry_backoff
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_BACKOFF);
            thread::sleep(backoff);
            attempt += 1;
        }
    }

    /// Runs device-only plan `plan` on `x` while the radio probes the link: a Hello sent on
    /// the open connection (over the emulated link like a request, but not counted by a
    /// trace's request clock) and its echo timed. The device's compute and the probe run at
    /// the same time, as a device's CPU and radio would. Returns the answer and the probe's
    /// `(frame bits, wire seconds)`, or its failure (the connection is then closed).
    ///
    /// # Errors
    /// The answer's: as [`infer_with`](Self::infer_with); [`RuntimeError::InvalidConfig`]
    /// (field `plan`) when `plan` is not device-only.
    pub fn infer_local_probing(
        &mut self,
        plan: usize,
        x: Tensor<4>,
    ) -> (
        Result<InferResult, RuntimeError>,
        Result<(u64, f64), RuntimeError>,
    ) {
        if !self.plans.get(plan).is_some_and(ClientPlan::is_local) {
            let e = || RuntimeError::InvalidConfig {
                field: "plan",
                reason: format!("plan {plan} is not a device-only plan"),
            };
            return (Err(e()), Err(e()));
        }
        let hello = match &self.config.token {
            Some(token) => Frame::hello_with_token(
                &self.digest,
                token.expose(),
                self.hello_codec,
                self.hello_feature,
            ),
            None => Frame::hello(&self.digest, self.hello_codec, self.hello_feature),
        }
        .and_then(|f| encode_frame(&f));
        if !self.open {
            let _ = self.reopen();
        }
        let open = self.open;
        let max_frame = self.config.max_frame;
        let request_id = self.next_id;
        self.next_id += 1;
        let (answer, probe) = {
            let link = &mut self.link;
            let chosen = &self.plans[plan];
            thread::scope(|scope| {
                let probe = scope.spawn(move || {
                    let bytes = hello?;
                    if !open {
                        return Err(RuntimeError::ConnectionClosed);
                    }
                    let start = Instant::now();
                    let stream = &mut link.stream;
                    stream
                        .socket_mut()
                        .begin_probe()
                        .and_then(|()| stream.write_all(&bytes))
                        .and_then(|()| stream.flush())
                        .map_err(|e| RuntimeError::io("probing the link", e))?;
                    let reply = read_frame(stream, max_frame)?;
                    match reply.body {
                        FrameBody::Hello { .. } => {
                            Ok((8 * bytes.len() as u64, start.elapsed().as_secs_f64()))
                        }
                        other => Err(RuntimeError::UnexpectedFrame {
                            request_id: reply.request_id,
                            expected: "a Hello reply",
                            found: format!("{:?}", other.kind()),
                        }),
                    }
                });
                let answer = local_answer(chosen, request_id, x);
                let probe = probe.join().unwrap_or_else(|_| {
                    Err(RuntimeError::Internal("the probe thread panicked".into()))
                });
                (answer, probe)
            })
        };
        if probe.is_err() && open {
            self.drop_link();
        }
        (answer, probe)
    }

    /// Opens a new connection (with a Hello) if the last one was lost; does nothing on an open
    /// one. An adaptive client probes a link it saw fail this way.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn reconnect(&mut self) -> Result<(), RuntimeError> {
        self.reopen()
    }

    /// Opens a new connection (with a Hello) if the last one was lost.
    fn reopen(&mut self) -> Result<(), RuntimeError> {
        if self.open {
            return Ok(());
        }
        self.link = Link::open(
            &self.addrs,
            &self.digest,
            self.hello_codec,
            self.hello_feature,
            &self.config,
        )?;
        self.open = true;
        self.reconnects += 1;
        Ok(())
    }

    fn drop_link(&mut self) {
        self.open = false;
        self.link.stream.shutdown();
    }

    /// Sends one frame over the (shaped) link and reads the reply; closes on failure.
    fn exchange(&mut self, bytes: &[u8]) -> Result<Frame, RuntimeError> {
        let stream = &mut self.link.stream;
        let result = stream
            .socket_mut()
            .begin_message()
            .and_then(|()| stream.write_all(bytes))
            .and_then(|()| stream.flush())
            .map_err(|e| RuntimeError::io("sending a frame", e))
            .and_then(|()| read_frame(stream, self.config.max_frame));
        if result.is_err() {
            self.drop_link();
        }
        result
    }

    /// Says Bye and closes the connection (what dropping the client does).
    pub fn close(mut self) {
        self.say_bye();
    }

    fn say_bye(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let bye = Frame::bye(PlanTag::of(&self.digest), self.hello_codec);
        let _ = write_frame(&mut self.link.stream, &bye);
        self.link.stream.shutdown();
    }
}

impl Drop for DeviceClient {
    fn drop(&mut self) {
        self.say_bye();
    }
}

/// The answer of a device-only plan whose forward pass started at `start`.
fn local_result(
    plan: &ClientPlan,
    request_id: u64,
    start: Instant,
    logits: Tensor<4>,
) -> Result<InferResult, RuntimeError> {
    let dims = logits.dims();
    let values = logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| RuntimeError::Internal(format!("reading the logits back: {e:?}")))?;
    plan.pad(start);
    let device_s = start.elapsed().as_secs_f64();
    Ok(InferResult {
        request_id,
        logits: values,
        batch: dims[0],
        classes: dims[1],
        timing: Timing {
            device_s,
            total_s: device_s,
            ..Timing::default()
        },
        payload_bytes: 0,
        frame_bytes: 0,
        batch_requests: 0,
    })
}

/// Runs a device-only plan on `x`.
fn local_answer(
    plan: &ClientPlan,
    request_id: u64,
    x: Tensor<4>,
) -> Result<InferResult, RuntimeError> {
    let start = Instant::now();
    let logits = plan.fast.forward(x)?;
    local_result(plan, request_id, start, logits)
}

/// Whether a failure may pass on another connection: the connection was lost or timed out, or
/// the server refused the handshake as busy or shutting down.
fn is_transient(error: &RuntimeError) -> bool {
    match error {
        RuntimeError::Io { .. }
        | RuntimeError::Timeout { .. }
        | RuntimeError::Truncated { .. }
        | RuntimeError::ConnectionClosed => true,
        RuntimeError::HandshakeRefused { code, .. } => {
            matches!(code, ErrorCode::Busy | ErrorCode::ShuttingDown)
        }
        _ => false,
    }
}

impl Link {
    /// Connects to the first address that answers and shakes hands: the server checks the
    /// plan `digest`, the codec, the split feature shape and the token.
    fn open(
        addrs: &[SocketAddr],
        digest: &str,
        codec: coinfer_codec::CodecId,
        feature: [usize; 3],
        config: &ClientConfig,
    ) -> Result<Link, RuntimeError> {
        let stream = connect_any(addrs, config.connect_timeout)?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(config.read_timeout)))
            .and_then(|()| stream.set_write_timeout(Some(config.write_timeout)))
            .map_err(|e| RuntimeError::io("configuring the socket", e))?;
        let peer = stream
            .peer_addr()
            .map_err(|e| RuntimeError::io("reading the peer address", e))?;
        let hello = match &config.token {
            Some(token) => Frame::hello_with_token(digest, token.expose(), codec, feature)?,
            None => Frame::hello(digest, codec, feature)?,
        };
        let socket = match &config.trace {
            Some(trace) => Socket::traced(stream, trace.clone()),
            None => Socket::new(stream, config.shaping),
        };
        let mut stream = match &config.tls {
            None => Transport::Plain(socket),
            Some(tls) => {
                let connection = tls.connection(peer.ip()).map_err(|e| RuntimeError::Tls {
                    during: "starting TLS",
                    failure: crate::TlsFailure::of(&e),
                    source: e,
                })?;
                let mut stream = Transport::tls(connection, socket);
                stream.handshake()?;
                stream
            }
        };
        write_frame(&mut stream, &hello)?;
        let reply = read_frame(&mut stream, config.max_frame)?;
        match reply.body {
            FrameBody::Hello {
                digest: ref server_digest,
            } if *server_digest == digest && reply.codec == codec => {}
            FrameBody::Hello {
                digest: server_digest,
            } => {
                return Err(RuntimeError::HandshakeRefused {
                    code: ErrorCode::DigestMismatch,
                    message: format!(
                        "the server greeted with plan {server_digest} and codec {}, the client \
                         has plan {digest} and codec {codec}",
                        reply.codec,
                    ),
                });
            }
            FrameBody::Error { code, message } => {
                return Err(RuntimeError::HandshakeRefused { code, message });
            }
            other => {
                return Err(RuntimeError::UnexpectedFrame {
                    request_id: reply.request_id,
                    expected: "a Hello reply",
                    found: format!("{:?}", other.kind()),
                });
            }
        }
        Ok(Link { stream, peer })
    }
}

/// Connects to the first of `addrs` that answers.
fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, RuntimeError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => RuntimeError::io("connecting to the edge server", e),
        None => RuntimeError::InvalidConfig {
            field: "addr",
            reason: "the server address resolves to nothing".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An option name and a change that breaks it.
    type Breaker = (&'static str, fn(&mut ClientConfig));

    #[test]
    fn each_bad_option_is_named() {
        let cases: [Breaker; 5] = [
            ("connect_timeout", |c| c.connect_timeout = Duration::ZERO),
            ("read_timeout", |c| c.read_timeout = Duration::ZERO),
            ("write_timeout", |c| c.write_timeout = Duration::ZERO),
            ("max_frame", |c| c.max_frame = 10),
            ("shaping.rate_bps", |c| {
                c.shaping = Some(LinkShaping::new(0.0, Duration::ZERO))
            }),
        ];
        for (field, breaks) in cases {
            let mut config = ClientConfig::default();
            breaks(&mut config);
            match config.check() {
                Err(RuntimeError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(ClientConfig::default().check().is_ok());
    }

    #[test]
    fn predictions_are_row_argmax() {
        let result = InferResult {
            request_id: 1,
            logits: vec![0.1, 0.9, 0.0, 3.0, -1.0, 2.0],
            batch: 2,
            classes: 3,
            timing: Timing::default(),
            payload_bytes: 0,
            frame_bytes: 0,
            batch_requests: 1,
        };
        assert_eq!(result.predictions(), vec![1, 0]);
    }
}
