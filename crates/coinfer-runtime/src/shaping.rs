//! Link emulation on loopback: a token-bucket writer that caps the bytes per second put on
//! the socket, plus an added one-way delay, so that a 1 or 10 Mbit/s uplink can be measured
//! against the latency model's `bits / R` term. A [`LinkTrace`] makes the link change: a list of
//! steps (from a time or a request index on: rate, delay, up or down) played by a
//! [`TracePlayer`] that every shaped writer of a run shares.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// Bucket depth in bytes: about one Ethernet MTU, so bursts stay small and a message of `n`
/// bytes really takes `8·n / rate` seconds.
pub const BUCKET_BYTES: usize = 1500;

/// An emulated uplink: a rate cap and a delay added before each message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkShaping {
    /// Link rate in bits per second.
    pub rate_bps: f64,
    /// Added one-way delay, slept before each message is sent (pass the round-trip time here
    /// to emulate a link's RTT: the downlink is not shaped).
    pub added_delay: Duration,
}

impl LinkShaping {
    /// A link of `rate_bps` bits per second with `added_delay` before each message.
    pub fn new(rate_bps: f64, added_delay: Duration) -> Self {
        Self {
            rate_bps,
            added_delay,
        }
    }

    /// Checks the rate is finite and positive.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] naming `shaping.rate_bps`.
    pub fn check(&self) -> Result<(), RuntimeError> {
        if !(self.rate_bps.is_finite() && self.rate_bps > 0.0) {
            return Err(RuntimeError::InvalidConfig {
                field: "shaping.rate_bps",
                reason: format!("{} is not a finite positive rate", self.rate_bps),
            });
        }
        Ok(())
    }

    /// The time `bytes` take on the link at its rate (the delay excluded).
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.rate_bps)
    }
}

/// A token bucket of `depth` bytes refilled at a fixed byte rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    bytes_per_s: f64,
    depth: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// An empty bucket refilled at `rate_bps / 8` bytes per second, holding at most `depth`
    /// bytes (at least 1).
    pub fn new(rate_bps: f64, depth: usize) -> Self {
        Self {
            bytes_per_s: rate_bps / 8.0,
            depth: depth.max(1) as f64,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// The bucket depth in bytes.
    pub fn depth(&self) -> usize {
        self.depth as usize
    }

    /// Empties the bucket, so the next `n` bytes wait for their full `n / rate`.
    pub fn drain(&mut self) {
        self.tokens = 0.0;
        self.last = Instant::now();
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.bytes_per_s;
        self.tokens = (self.tokens + earned).min(self.depth);
        self.last = now;
    }

    /// Blocks until `n` bytes (at most the depth) may go out, then takes their tokens.
    pub fn take(&mut self, n: usize) {
        let n = (n as f64).min(self.depth);
        loop {
            self.refill();
            if self.tokens >= n {
                self.tokens -= n;
                return;
            }
            let wait = (n - self.tokens) / self.bytes_per_s;
            thread::sleep(Duration::from_secs_f64(wait));
        }
    }

    /// Gives back tokens taken for bytes that were not written after all.
    pub fn refund(&mut self, n: usize) {
        self.tokens = (self.tokens + n as f64).min(self.depth);
    }
}

/// A writer that sends at most the link rate (or passes through when unshaped).
///
/// [`send_message`](Self::send_message) is what the device client uses: it sleeps the added
/// delay, empties the bucket and writes the message in bucket-sized chunks, so an `n`-byte
/// message never completes in less than `delay + 8·n / rate`.
#[derive(Debug)]
pub struct ShapedWriter<W> {
    inner: W,
    shaping: Option<LinkShaping>,
    bucket: Option<TokenBucket>,
    trace: Option<Arc<TracePlayer>>,
    /// On a traced link, whether the link was up for the message being written (`None`
    /// before the first: bytes outside a message, such as a Hello, see the link of now).
    message_up: Option<bool>,
}

impl<W: Write> ShapedWriter<W> {
    /// Wraps `inner`; `None` means an unshaped link.
    pub fn new(inner: W, shaping: Option<LinkShaping>) -> Self {
        let bucket = shaping.map(|s| TokenBucket::new(s.rate_bps, BUCKET_BYTES));
        Self {
            inner,
            shaping,
            bucket,
            trace: None,
            message_up: None,
        }
    }

    /// Wraps `inner` on a link that follows `trace` (a static shaping given to
    /// [`new`](Self::new) is replaced by the trace's step at each message).
    pub fn with_trace(inner: W, trace: Arc<TracePlayer>) -> Self {
        let mut writer = Self::new(inner, None);
        writer.trace = Some(trace);
        writer
    }

    /// The emulated link, if any.
    pub fn shaping(&self) -> Option<LinkShaping> {
        self.shaping
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Unwraps the writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Sends one whole message over the emulated link: delay, then rate-limited bytes.
    ///
    /// # Errors
    /// The inner writer's errors.
    pub fn send_message(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.begin_message()?;
        self.write_all(bytes)?;
        self.flush()
    }

    /// Starts a message on the emulated link: sleeps the added delay and empties the bucket,
    /// so the bytes written next take their full `8·n / rate` (what
    /// [`send_message`](Self::send_message) does before writing). On a traced link it first
    /// takes the trace's step for this message.
    ///
    /// # Errors
    /// On a traced link that is down: [`io::ErrorKind::TimedOut`] after the trace's
    /// `outage_timeout_s` (the time a device waits before it gives the message up).
    pub fn begin_message(&mut self) -> io::Result<()> {
        self.begin(true)
    }

    /// Starts a probe of the link (a message that is not a request): as
    /// [`begin_message`](Self::begin_message), but a trace's request clock does not count it.
    ///
    /// # Errors
    /// As [`begin_message`](Self::begin_message).
    pub fn begin_probe(&mut self) -> io::Result<()> {
        self.begin(false)
    }

    fn begin(&mut self, counted: bool) -> io::Result<()> {
        if let Some(trace) = &self.trace {
            let step = if counted {
                trace.next_message()
            } else {
                trace.current()
            };
            self.message_up = Some(step.up);
            if !step.up {
                thread::sleep(Duration::from_secs_f64(trace.trace().outage_timeout_s));
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the emulated link is down",
                ));
            }
            let shaping = step.shaping();
            if self.shaping != Some(shaping) {
                self.shaping = Some(shaping);
                self.bucket = Some(TokenBucket::new(shaping.rate_bps, BUCKET_BYTES));
            }
        }
        if let Some(shaping) = self.shaping.filter(|s| !s.added_delay.is_zero()) {
            thread::sleep(shaping.added_delay);
        }
        if let Some(bucket) = &mut self.bucket {
            bucket.drain();
        }
        Ok(())
    }
}

impl<W: Write> Write for ShapedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(trace) = &self.trace
            && !self.message_up.unwrap_or_else(|| trace.current().up)
        {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the emulated link is down",
            ));
        }
        let Some(bucket) = &mut self.bucket else {
            return self.inner.write(buf);
        };
        let chunk = buf.len().min(bucket.depth());
        bucket.take(chunk);
        let written = self.inner.write(&buf[..chunk]);
        match written {
            Ok(n) => bucket.refund(chunk - n),
            Err(_) => bucket.refund(chunk),
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a trace step's `at` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceClock {
    /// Seconds since the trace started playing.
    Seconds,
    /// Messages (Infer frames) sent since the trace started playing, from 0.
    Requests,
}

/// One step of a [`LinkTrace`]: from `at` on, the link has this rate and delay, or is down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// When the step starts (seconds or request index, as the trace's clock says).
    pub at: f64,
    /// Uplink rate, bit/s.
    pub rate_bps: f64,
    /// Delay added before each message, seconds (the link's round trip).
    pub delay_s: f64,
    /// Whether the link carries anything; a message sent while it is down is lost.
    #[serde(default = "up")]
    pub up: bool,
}

fn up() -> bool {
    true
}

impl TraceStep {
    /// The static shaping of this step.
    pub fn shaping(&self) -> LinkShaping {
        LinkShaping::new(self.rate_bps, Duration::from_secs_f64(self.delay_s))
    }
}

/// A link that changes: steps of (start, rate, delay, up/down), read from JSON:
///
/// ```json
/// {"name": "steps", "clock": "requests", "outage_timeout_s": 0.5,
///  "steps": [{"at": 0, "rate_bps": 1e4, "delay_s": 0.02},
///            {"at": 30, "rate_bps": 2.5e5, "delay_s": 0.02},
///            {"at": 60, "rate_bps": 1e6, "delay_s": 0.02, "up": true}]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TraceParts")]
pub struct LinkTrace {
    /// A short name (in reports and plots).
    pub name: String,
    /// What `at` counts.
    pub clock: TraceClock,
    /// How long a message sent on a down link takes to fail, seconds.
    pub outage_timeout_s: f64,
    /// The steps, `at` strictly increasing, the first at 0.
    pub steps: Vec<TraceStep>,
}

#[derive(Deserialize)]
struct TraceParts {
    name: String,
    clock: TraceClock,
    #[serde(default = "default_outage_timeout")]
    outage_timeout_s: f64,
    steps: Vec<TraceStep>,
}

fn default_outage_timeout() -> f64 {
    0.5
}

impl TryFrom<TraceParts> for LinkTrace {
    type Error = RuntimeError;

    fn try_from(p: TraceParts) -> Result<LinkTrace, RuntimeError> {
        LinkTrace::new(p.name, p.clock, p.outage_timeout_s, p.steps)
    }
}

impl LinkTrace {
    /// A checked trace.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] naming the step and field: no step, a first step not at
    /// 0, `at` not increasing, a rate not finite and positive, a delay or timeout not finite
    /// and non-negative.
    pub fn new(
        name: impl Into<String>,
        clock: TraceClock,
        outage_timeout_s: f64,
        steps: Vec<TraceStep>,
    ) -> Result<LinkTrace, RuntimeError> {
        let bad =
            |field: &'static str, reason: String| RuntimeError::InvalidConfig { field, reason };
        if !(outage_timeout_s.is_finite() && outage_timeout_s >= 0.0) {
            return Err(bad(
                "trace.outage_timeout_s",
                format!("{outage_timeout_s} is not a finite non-negative number of seconds"),
            ));
        }
        match steps.first() {
            None => return Err(bad("trace.steps", "a trace needs at least one step".into())),
            Some(first) if first.at != 0.0 => {
                return Err(bad(
                    "trace.steps.at",
                    format!("the first step starts at {}, not at 0", first.at),
                ));
            }
            Some(_) => {}
        }
        for (i, step) in steps.iter().enumerate() {
            if i > 0 && !(step.at > steps[i - 1].at && step.at.is_finite()) {
                return Err(bad(
                    "trace.steps.at",
                    format!("step {i} starts at {}, not after step {}", step.at, i - 1),
                ));
            }
            if !(step.rate_bps.is_finite() && step.rate_bps > 0.0) {
                return Err(bad(
                    "trace.steps.rate_bps",
                    format!("step {i}: {} is not a finite positive rate", step.rate_bps),
                ));
            }
            if !(step.delay_s.is_finite() && step.delay_s >= 0.0) {
                return Err(bad(
                    "trace.steps.delay_s",
                    format!(
                        "step {i}: {} is not a finite non-negative delay",
                        step.delay_s
                    ),
                ));
            }
        }
        Ok(LinkTrace {
            name: name.into(),
            clock,
            outage_timeout_s,
            steps,
        })
    }

    /// Reads a trace from a JSON file.
    ///
    /// # Errors
    /// [`RuntimeError::Io`] when the file cannot be read, [`RuntimeError::InvalidConfig`]
    /// (field `trace`, with the file's path) when it is not a valid trace.
    pub fn load(path: &Path) -> Result<LinkTrace, RuntimeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RuntimeError::io("reading the link trace", e))?;
        serde_json::from_str(&text).map_err(|e| RuntimeError::InvalidConfig {
            field: "trace",
            reason: format!("{}: {e}", path.display()),
        })
    }

    /// The step in force at `position` (seconds or request index).
    pub fn step_at(&self, position: f64) -> TraceStep {
        let index = self.steps.partition_point(|s| s.at <= position);
        self.steps[index.saturating_sub(1)]
    }
}

/// A trace being played: its clock starts at [`start`](Self::start) (or at the first message),
/// and every shaped writer holding it sees the same link.
#[derive(Debug)]
pub struct TracePlayer {
    trace: LinkTrace,
    started: Mutex<Option<Instant>>,
    messages: AtomicU64,
}

/// Two players are equal only if they are the same player (one link).
impl PartialEq for TracePlayer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl TracePlayer {
    /// A player of `trace`, not started.
    pub fn new(trace: LinkTrace) -> Arc<TracePlayer> {
        Arc::new(TracePlayer {
            trace,
            started: Mutex::new(None),
            messages: AtomicU64::new(0),
        })
    }

    /// The trace played.
    pub fn trace(&self) -> &LinkTrace {
        &self.trace
    }

    /// (Re)starts the clock: time 0 and request 0 are now.
    pub fn start(&self) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.messages.store(0, Ordering::SeqCst);
    }

    /// Seconds since the start (0 before it).
    pub fn elapsed_s(&self) -> f64 {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(0.0, |t| t.elapsed().as_secs_f64())
    }

    /// Messages counted so far.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::SeqCst)
    }

    /// Counts one more request on the request clock without sending it (a request the device
    /// answered alone, so that every client of a comparison sees the same link at request `i`).
    pub fn skip_message(&self) {
        self.messages.fetch_add(1, Ordering::SeqCst);
    }

    /// The step in force now (for the request clock: for the next message).
    pub fn current(&self) -> TraceStep {
        match self.trace.clock {
            TraceClock::Seconds => self.trace.step_at(self.elapsed_s()),
            TraceClock::Requests => self.trace.step_at(self.messages() as f64),
        }
    }

    /// The step of the message being sent, counting it.
    fn next_message(&self) -> TraceStep {
        {
            let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
            started.get_or_insert_with(Instant::now);
        }
        let step = self.current();
        self.messages.fetch_add(1, Ordering::SeqCst);
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshaped_writer_passes_bytes_through() {
        let mut w = ShapedWriter::new(Vec::new(), None);
        w.send_message(b"hello").unwrap();
        assert_eq!(w.into_inner(), b"hello");
    }

    #[test]
    fn shaped_writer_delivers_every_byte_in_order() {
        // 80 Mbit/s: 4000 bytes need 0.4 ms, so the test stays fast.
        let mut w = ShapedWriter::new(Vec::new(), Some(LinkShaping::new(80e6, Duration::ZERO)));
        let message: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        w.send_message(&message).unwrap();
        assert_eq!(w.into_inner(), message);
    }

    #[test]
    fn rates_must_be_finite_and_positive() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = LinkShaping::new(rate, Duration::ZERO).check().unwrap_err();
            assert!(err.to_string().contains("shaping.rate_bps"), "{err}");
        }
        assert!(LinkShaping::new(1e6, Duration::ZERO).check().is_ok());
        assert_eq!(
            LinkShaping::new(1e6, Duration::ZERO).transmit_time(125_000),
            Duration::from_secs(1)
        );
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    fn step(at: f64, rate_bps: f64, up: bool) -> TraceStep {
        TraceStep {
            at,
            rate_bps,
            delay_s: 0.0,
            up,
        }
    }

    #[test]
    fn the_step_in_force_is_the_last_one_started() {
        let trace = LinkTrace::new(
            "t",
            TraceClock::Requests,
            0.0,
            vec![
                step(0.0, 1e4, true),
                step(3.0, 1e6, true),
                step(5.0, 1e6, false),
            ],
        )
        .unwrap();
        let rates: Vec<(f64, bool)> = (0..7)
            .map(|i| {
                let s = trace.step_at(i as f64);
                (s.rate_bps, s.up)
            })
            .collect();
        assert_eq!(
            rates,
            [
                (1e4, true),
                (1e4, true),
                (1e4, true),
                (1e6, true),
                (1e6, true),
                (1e6, false),
                (1e6, false)
            ]
        );
    }

    #[test]
    fn a_down_link_fails_the_message_and_counts_it() {
        let trace = LinkTrace::new(
            "t",
            TraceClock::Requests,
            0.0,
            vec![
                step(0.0, 80e6, true),
                step(1.0, 80e6, false),
                step(2.0, 80e6, true),
            ],
        )
        .unwrap();
        let player = TracePlayer::new(trace);
        player.start();
        let mut w = ShapedWriter::with_trace(Vec::new(), player.clone());
        w.send_message(b"one").unwrap();
        let err = w.send_message(b"two").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        w.send_message(b"three").unwrap();
        assert_eq!(player.messages(), 3);
        assert_eq!(w.into_inner(), b"onethree");
    }

    #[test]
    fn bad_traces_name_the_field() {
        let cases = [
            (vec![], "trace.steps"),
            (vec![step(1.0, 1e4, true)], "trace.steps.at"),
            (
                vec![step(0.0, 1e4, true), step(0.0, 1e4, true)],
                "trace.steps.at",
            ),
            (vec![step(0.0, 0.0, true)], "trace.steps.rate_bps"),
            (
                vec![TraceStep {
                    delay_s: -1.0,
                    ..step(0.0, 1e4, true)
                }],
                "trace.steps.delay_s",
            ),
        ];
        for (steps, field) in cases {
            match LinkTrace::new("t", TraceClock::Seconds, 0.5, steps) {
                Err(RuntimeError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let json = r#"{"name":"x","clock":"seconds","steps":[{"at":0,"rate_bps":-5,"delay_s":0}]}"#;
        assert!(serde_json::from_str::<LinkTrace>(json).is_err());
    }
}
