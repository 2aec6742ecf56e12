//! Link emulation on loopback: a token-bucket writer that caps the bytes per second put on
//! the socket, plus an added one-way delay, so that a 1 or 10 Mbit/s uplink can be measured
//! against the latency model's `bits / R` term.

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

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
}

impl<W: Write> ShapedWriter<W> {
    /// Wraps `inner`; `None` means an unshaped link.
    pub fn new(inner: W, shaping: Option<LinkShaping>) -> Self {
        let bucket = shaping.map(|s| TokenBucket::new(s.rate_bps, BUCKET_BYTES));
        Self {
            inner,
            shaping,
            bucket,
        }
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
        self.begin_message();
        self.write_all(bytes)?;
        self.flush()
    }

    /// Starts a message on the emulated link: sleeps the added delay and empties the bucket,
    /// so the bytes written next take their full `8·n / rate` (what
    /// [`send_message`](Self::send_message) does before writing).
    pub fn begin_message(&mut self) {
        if let Some(shaping) = self.shaping.filter(|s| !s.added_delay.is_zero()) {
            thread::sleep(shaping.added_delay);
        }
        if let Some(bucket) = &mut self.bucket {
            bucket.drain();
        }
    }
}

impl<W: Write> Write for ShapedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
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
