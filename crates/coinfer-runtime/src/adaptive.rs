//! Plans that follow the link: a device client holding a plan set estimates the link from its
//! own requests ([`LinkEstimator`]), asks the latency model which plan is fastest for that
//! estimate ([`PlanChooser`], pure: estimate in, plan index out, with hysteresis) and runs it
//! ([`AdaptiveClient`]). When the link fails it answers on the device-only plan of the set (if
//! there is one), probes the link and goes back to the edge once it answers again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use coinfer_profile::LinkProfile;
use serde::{Deserialize, Serialize};

use crate::client::{DeviceClient, InferResult};
use crate::error::RuntimeError;
use crate::shaping::TracePlayer;

/// What the device believes of the link now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkEstimate {
    /// Uplink goodput, bit/s.
    pub rate_bps: f64,
    /// Round-trip time, seconds.
    pub rtt_s: f64,
    /// Whether the link answered the last time it was tried.
    pub up: bool,
}

/// What the chooser knows of one plan of the set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanCosts {
    /// Seconds of compute the plan costs whatever the link: device half, encoding, decoding
    /// and edge half (the latency model's terms without `bits / R + RTT`).
    pub compute_s: f64,
    /// Payload bits on the wire (0 for a device-only plan).
    pub payload_bits: u64,
    /// Whether the plan sends anything (false: device-only).
    pub remote: bool,
}

/// Picks the plan the latency model predicts fastest for a link estimate, with hysteresis.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanChooser {
    plans: Vec<PlanCosts>,
    per_message_overhead_bytes: u64,
    hysteresis: f64,
}

impl PlanChooser {
    /// A chooser over `plans` (the set's order). A switch needs the new plan to be predicted
    /// at least `hysteresis` (a fraction, e.g. 0.1) faster than the current one;
    /// `per_message_overhead_bytes` is added to every remote payload (frame header, TCP/IP).
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`]: no plan, a compute time not finite and non-negative,
    /// a hysteresis outside `[0, 1)`.
    pub fn new(
        plans: Vec<PlanCosts>,
        per_message_overhead_bytes: u64,
        hysteresis: f64,
    ) -> Result<PlanChooser, RuntimeError> {
        if plans.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                field: "chooser.plans",
                reason: "needs at least one plan".into(),
            });
        }
        if let Some((i, p)) = plans
            .iter()
            .enumerate()
            .find(|(_, p)| !(p.compute_s.is_finite() && p.compute_s >= 0.0))
        {
            return Err(RuntimeError::InvalidConfig {
                field: "chooser.plans.compute_s",
                reason: format!(
                    "plan {i}: {} is not a finite non-negative time",
                    p.compute_s
                ),
            });
        }
        if !(0.0..1.0).contains(&hysteresis) {
            return Err(RuntimeError::InvalidConfig {
                field: "chooser.hysteresis",
                reason: format!("{hysteresis} is not in [0, 1)"),
            });
        }
        Ok(PlanChooser {
            plans,
            per_message_overhead_bytes,
            hysteresis,
        })
    }

    /// The plans.
    pub fn plans(&self) -> &[PlanCosts] {
        &self.plans
    }

    /// The first device-only plan, if the set holds one.
    pub fn local_plan(&self) -> Option<usize> {
        self.plans.iter().position(|p| !p.remote)
    }

    /// The predicted latency of `plan` on `link` (seconds; infinite for a remote plan on a
    /// link that is down): `compute + bits / R + RTT`, the link term from [`LinkProfile`].
    pub fn predict(&self, plan: usize, link: &LinkEstimate) -> f64 {
        let p = &self.plans[plan];
        if !p.remote {
            return p.compute_s;
        }
        if !link.up {
            return f64::INFINITY;
        }
        let profile = LinkProfile {
            name: String::new(),
            description: String::new(),
            rate_bps: link.rate_bps,
            rtt_s: link.rtt_s,
            per_message_overhead_bytes: self.per_message_overhead_bytes,
        };
        p.compute_s + profile.transmit_s(p.payload_bits) + link.rtt_s
    }

    /// The plan predicted fastest on `link` (the first of equals).
    pub fn best(&self, link: &LinkEstimate) -> usize {
        (0..self.plans.len())
            .min_by(|&a, &b| self.predict(a, link).total_cmp(&self.predict(b, link)))
            .unwrap_or(0)
    }

    /// The plan to run next, being on `current`: the best plan if it is predicted at least the
    /// hysteresis faster than `current` (or `current` cannot run: link down), else `current`.
    pub fn choose(&self, current: usize, link: &LinkEstimate) -> usize {
        let best = self.best(link);
        let now = self.predict(current.min(self.plans.len() - 1), link);
        if current >= self.plans.len()
            || !now.is_finite()
            || self.predict(best, link) < now * (1.0 - self.hysteresis)
        {
            best
        } else {
            current
        }
    }
}

/// Largest residual of the least-squares fit, as a fraction of the mean wire time.
const FIT_TOLERANCE: f64 = 0.1;

/// A sample whose rate differs from the estimate by more than this factor restarts it.
const CHANGE_FACTOR: f64 = 2.0;

/// Bytes of a frame outside its payload (header and CRC): a probe's payload is the rest.
const FRAME_OVERHEAD_BYTES: u64 = 60;

/// Below `RTT_MARGIN ×` the RTT estimate, a wire time lowers the RTT estimate.
const RTT_MARGIN: f64 = 1.05;

/// Estimator settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EstimatorConfig {
    /// Weight of a new sample in the moving averages (0 < a ≤ 1; the rate is averaged in
    /// the log domain).
    pub smoothing: f64,
    /// Requests kept to fit the RTT when they carried payloads of different sizes.
    pub window: usize,
    /// Oldest sample kept for that fit, seconds (older ones describe another link).
    pub horizon_s: f64,
    /// After a failure, how long the link is taken as down before it is probed again.
    pub probe_interval_s: f64,
    /// While the device answers alone on a link that is up, how often the radio measures the
    /// link (a Hello echo, during the device's compute), seconds.
    pub explore_interval_s: f64,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            smoothing: 0.75,
            window: 8,
            horizon_s: 1.0,
            probe_interval_s: 1.0,
            explore_interval_s: 0.1,
        }
    }
}

/// Estimates goodput and RTT from the device's own requests: each answered request gives the
/// bits it sent and its wire time (round trip minus the edge's queue, decode and compute; the
/// device and encode times are outside it). Over the last `window` requests (none older than
/// `horizon_s`), when there are three or more and their
/// payloads differ in size (by 1.5× or more), a least-squares line `wire = RTT + bits / R`
/// gives both (if every sample lies within 10 % of the mean wire time of it); otherwise the RTT estimate is kept (lowered when a wire time is not clearly
/// above it) and the rest of
/// the wire time is taken as `bits / R`. Both are smoothed by moving averages, except when a
/// sample's rate is more than twice or less than half the estimate: the link changed, and the
/// estimate restarts from that sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEstimator {
    config: EstimatorConfig,
    overhead_bits: f64,
    estimate: LinkEstimate,
    /// (when, bits, wire seconds) of the last requests and probes.
    samples: VecDeque<(Instant, f64, f64)>,
    down_since: Option<Instant>,
    /// When the link was last measured (a request or a probe).
    seen: Instant,
}

impl LinkEstimator {
    /// Starts from `prior` (e.g. the link the plan set was built for);
    /// `per_message_overhead_bytes` is counted with every payload.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] for a smoothing outside `(0, 1]`, an empty window, a
    /// prior rate not finite and positive or an RTT or probe interval not finite and
    /// non-negative.
    pub fn new(
        prior: LinkEstimate,
        per_message_overhead_bytes: u64,
        config: EstimatorConfig,
    ) -> Result<LinkEstimator, RuntimeError> {
        let bad =
            |field: &'static str, reason: String| RuntimeError::InvalidConfig { field, reason };
        if !(config.smoothing > 0.0 && config.smoothing <= 1.0) {
            return Err(bad(
                "estimator.smoothing",
                format!("{} is not in (0, 1]", config.smoothing),
            ));
        }
        if config.window == 0 {
            return Err(bad("estimator.window", "must be at least 1".into()));
        }
        for (field, value) in [
            ("estimator.probe_interval_s", config.probe_interval_s),
            ("estimator.explore_interval_s", config.explore_interval_s),
            ("estimator.horizon_s", config.horizon_s),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(bad(
                    field,
                    format!("{value} is not a finite non-negative time"),
                ));
            }
        }
        if !(prior.rate_bps.is_finite() && prior.rate_bps > 0.0) {
            return Err(bad(
                "estimator.prior.rate_bps",
                format!("{} is not a positive rate", prior.rate_bps),
            ));
        }
        if !(prior.rtt_s.is_finite() && prior.rtt_s >= 0.0) {
            return Err(bad(
                "estimator.prior.rtt_s",
                format!("{} is not a non-negative time", prior.rtt_s),
            ));
        }
        Ok(LinkEstimator {
            config,
            overhead_bits: 8.0 * per_message_overhead_bytes as f64,
            estimate: LinkEstimate { up: true, ..prior },
            samples: VecDeque::new(),
            down_since: None,
            seen: Instant::now(),
        })
    }

    /// The current estimate (down until the probe interval has passed since a failure).
    pub fn estimate(&self) -> LinkEstimate {
        self.estimate
    }

    /// Whether the link is taken as down and the probe interval has passed.
    pub fn probe_due(&self) -> bool {
        self.down_since
            .is_some_and(|t| t.elapsed().as_secs_f64() >= self.config.probe_interval_s)
    }

    /// Whether the link is up but has not been measured for the explore interval.
    pub fn explore_due(&self) -> bool {
        self.estimate.up && self.seen.elapsed().as_secs_f64() >= self.config.explore_interval_s
    }

    /// A request that sent `payload_bits` was answered after `wire_s` on the wire.
    pub fn observe(&mut self, payload_bits: u64, wire_s: f64) {
        self.link_up();
        self.seen = Instant::now();
        if !(wire_s.is_finite() && wire_s > 0.0) {
            return;
        }
        let bits = payload_bits as f64 + self.overhead_bits;
        let now = Instant::now();
        // A sample more than CHANGE_FACTOR away from the estimate (at the RTT estimate) means
        // the link changed: restart from it rather than average it with another link's.
        let rtt = self.estimate.rtt_s.min(wire_s / RTT_MARGIN);
        let single = bits / (wire_s - rtt);
        if (single / self.estimate.rate_bps).ln().abs() > CHANGE_FACTOR.ln() {
            self.samples.clear();
            self.samples.push_back((now, bits, wire_s));
            self.estimate.rate_bps = single;
            self.estimate.rtt_s = rtt;
            return;
        }
        self.samples.push_back((now, bits, wire_s));
        while self.samples.len() > self.config.window
            || self
                .samples
                .front()
                .is_some_and(|s| now.duration_since(s.0).as_secs_f64() > self.config.horizon_s)
        {
            self.samples.pop_front();
        }
        let (rate, rtt) = self.fit().unwrap_or_else(|| {
            // The RTT estimate stands unless the wire time is (nearly) below it: then the
            // RTT is smaller than believed and the link fast.
            let rtt = self.estimate.rtt_s.min(wire_s / RTT_MARGIN);
            (bits / (wire_s - rtt), rtt)
        });
        let a = self.config.smoothing;
        let e = &mut self.estimate;
        e.rate_bps = ((1.0 - a) * e.rate_bps.ln() + a * rate.ln()).exp();
        e.rtt_s = (1.0 - a) * e.rtt_s + a * rtt;
    }

    /// The least-squares `(rate, rtt)` over the window, when its sizes differ enough and the
    /// line is physical (positive slope, non-negative intercept).
    fn fit(&self) -> Option<(f64, f64)> {
        let n = self.samples.len() as f64;
        let (lo, hi) = self
            .samples
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), s| {
                (lo.min(s.1), hi.max(s.1))
            });
        if self.samples.len() < 3 || hi < 1.5 * lo {
            return None;
        }
        let mb = self.samples.iter().map(|s| s.1).sum::<f64>() / n;
        let mw = self.samples.iter().map(|s| s.2).sum::<f64>() / n;
        let sbb: f64 = self.samples.iter().map(|s| (s.1 - mb).powi(2)).sum();
        let sbw: f64 = self.samples.iter().map(|s| (s.1 - mb) * (s.2 - mw)).sum();
        let slope = sbw / sbb;
        let rtt = mw - slope * mb;
        // Samples of a link that changed within the window do not lie on one line: no fit.
        let worst = self
            .samples
            .iter()
            .map(|s| (s.2 - rtt - slope * s.1).abs())
            .fold(0.0, f64::max);
        (slope > 0.0 && rtt >= 0.0 && worst <= FIT_TOLERANCE * mw).then(|| (1.0 / slope, rtt))
    }

    /// A request failed on the link: it is down until probed.
    pub fn link_down(&mut self) {
        self.estimate.up = false;
        self.seen = Instant::now();
        self.down_since = Some(Instant::now());
        self.samples.clear();
    }

    /// The link answered (a probe or a request).
    pub fn link_up(&mut self) {
        self.estimate.up = true;
        self.down_since = None;
    }
}

/// One switch of plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// The request index (from 0) that ran the new plan first.
    pub request: u64,
    /// Seconds since the client started.
    pub at_s: f64,
    /// The estimate that made the choice.
    pub estimate: LinkEstimate,
    /// The plan left.
    pub from: usize,
    /// The plan taken.
    pub to: usize,
}

/// How an [`AdaptiveClient`] picks the plan of each request.
#[derive(Debug, Clone)]
pub enum Policy {
    /// The chooser on the estimator's estimate.
    Adaptive,
    /// Always this plan (falling back to the device-only plan only when it fails).
    Static(usize),
    /// The chooser on the true link, read from the trace being played (a bound no device
    /// can reach: it knows the rate before sending).
    Oracle(Arc<TracePlayer>),
}

/// The answer to one request of an [`AdaptiveClient`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveAnswer {
    /// Request index, from 0.
    pub request: u64,
    /// The plan that answered (`None`: no plan could: the link failed and the set has no
    /// device-only plan).
    pub plan: Option<usize>,
    /// The plan chosen before the request (differs from `plan` after a fallback).
    pub chosen: usize,
    /// The estimate the choice was made on.
    pub estimate: LinkEstimate,
    /// Seconds from the request to its answer (a failed attempt's time included).
    pub latency_s: f64,
    /// Seconds since the client started, at the request.
    pub at_s: f64,
    /// The answer, when there is one.
    pub result: Option<InferResult>,
    /// Why the edge did not answer, when it did not.
    pub failure: Option<String>,
}

/// A device client that follows the link: before each request it picks a plan of its set
/// (see [`Policy`]), after it feeds the estimator; when the link fails it answers on the
/// set's device-only plan and probes the link every `probe_interval_s`.
#[derive(Debug)]
pub struct AdaptiveClient {
    client: DeviceClient,
    chooser: PlanChooser,
    estimator: LinkEstimator,
    policy: Policy,
    trace: Option<Arc<TracePlayer>>,
    current: usize,
    requests: u64,
    started: Instant,
    switches: Vec<Switch>,
}

impl AdaptiveClient {
    /// Wraps a client connected to a plan set ([`DeviceClient::connect_set`]); `chooser`
    /// must describe the client's plans in the same order. Starts on the plan the chooser
    /// picks for the estimator's prior (or the static plan). `trace` is the emulated link the
    /// client sends on, if any: requests answered on the device count on its request clock.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidConfig`] when the chooser's plans do not match the client's
    /// (count, or device-only where the client's plan is remote) or a static plan is out of
    /// range.
    pub fn new(
        client: DeviceClient,
        chooser: PlanChooser,
        estimator: LinkEstimator,
        policy: Policy,
        trace: Option<Arc<TracePlayer>>,
    ) -> Result<AdaptiveClient, RuntimeError> {
        let plans = client.plans();
        if plans.len() != chooser.plans().len()
            || plans
                .iter()
                .zip(chooser.plans())
                .any(|(p, c)| p.is_local() == c.remote)
        {
            return Err(RuntimeError::InvalidConfig {
                field: "chooser.plans",
                reason: "the chooser's plans are not the client's".into(),
            });
        }
        let current = match &policy {
            Policy::Adaptive => chooser.best(&estimator.estimate()),
            Policy::Oracle(truth) => chooser.best(&true_link(truth)),
            Policy::Static(i) if *i < plans.len() => *i,
            Policy::Static(i) => {
                return Err(RuntimeError::InvalidConfig {
                    field: "plan",
                    reason: format!("static plan {i} of {}", plans.len()),
                });
            }
        };
        Ok(AdaptiveClient {
            client,
            chooser,
            estimator,
            policy,
            trace,
            current,
            requests: 0,
            started: Instant::now(),
            switches: Vec::new(),
        })
    }

    /// Every switch so far.
    pub fn switches(&self) -> &[Switch] {
        &self.switches
    }

    /// The plan the next request will start from.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The client underneath.
    pub fn client(&self) -> &DeviceClient {
        &self.client
    }

    /// Answers `x`: picks the plan, runs it, and on a link failure answers on the device-only
    /// plan (when the set has one).
    ///
    /// # Errors
    /// Only device-side failures (the input's shape, the model): a failure of the link or the
    /// server is reported in [`AdaptiveAnswer::failure`] and answered on the device if it can.
    pub fn infer(&mut self, x: Tensor<4>) -> Result<AdaptiveAnswer, RuntimeError> {
        let start = Instant::now();
        let at_s = start.duration_since(self.started).as_secs_f64();
        let request = self.requests;
        self.requests += 1;
        if self.estimator.probe_due() && self.client.reconnect().is_ok() {
            self.estimator.link_up();
        }
        let estimate = match &self.policy {
            Policy::Oracle(truth) => true_link(truth),
            _ => self.estimator.estimate(),
        };
        let chosen = match self.policy {
            Policy::Static(i) if estimate.up => i,
            _ => self.chooser.choose(self.current, &estimate),
        };
        if chosen != self.current && !matches!(self.policy, Policy::Static(_)) {
            self.switches.push(Switch {
                request,
                at_s,
                estimate,
                from: self.current,
                to: chosen,
            });
            self.current = chosen;
        }
        let mut failure = None;
        if self.chooser.plans()[chosen].remote && estimate.up {
            match self.client.infer_with(chosen, x.clone()) {
                Ok(result) => {
                    self.estimator
                        .observe(8 * result.payload_bytes as u64, result.timing.wire_s);
                    return Ok(AdaptiveAnswer {
                        request,
                        plan: Some(chosen),
                        chosen,
                        estimate,
                        latency_s: start.elapsed().as_secs_f64(),
                        at_s,
                        result: Some(result),
                        failure: None,
                    });
                }
                Err(e) if is_device_side(&e) => return Err(e),
                // The server answered with an error: the link works, the device answers.
                Err(e @ RuntimeError::Remote { .. }) => failure = Some(e.to_string()),
                Err(e) => {
                    self.estimator.link_down();
                    failure = Some(e.to_string());
                }
            }
        }
        let local = if self.chooser.plans()[chosen].remote {
            self.chooser.local_plan()
        } else {
            Some(chosen)
        };
        let result = match local {
            // The adaptive client on the device alone: the radio measures the link meanwhile.
            Some(plan)
                if matches!(self.policy, Policy::Adaptive) && self.estimator.explore_due() =>
            {
                let (answer, probe) = self.client.infer_local_probing(plan, x);
                match probe {
                    Ok((frame_bits, wire_s)) => self
                        .estimator
                        .observe(frame_bits.saturating_sub(8 * FRAME_OVERHEAD_BYTES), wire_s),
                    Err(_) => self.estimator.link_down(),
                }
                Some(answer?)
            }
            Some(plan) => Some(self.client.infer_with(plan, x)?),
            None => None,
        };
        if failure.is_none()
            && let Some(trace) = &self.trace
        {
            // Answered without sending the request: the request clock still moves.
            trace.skip_message();
        }
        if failure.is_none() && local.is_none() {
            failure = Some("the link is down and the set has no device-only plan".into());
        }
        Ok(AdaptiveAnswer {
            request,
            plan: local,
            chosen,
            estimate,
            latency_s: start.elapsed().as_secs_f64(),
            at_s,
            result,
            failure,
        })
    }
}

/// The link a trace plays now.
fn true_link(trace: &TracePlayer) -> LinkEstimate {
    let step = trace.current();
    LinkEstimate {
        rate_bps: step.rate_bps,
        rtt_s: step.delay_s,
        up: step.up,
    }
}

/// Whether a request failed on the device (no other plan would do better) rather than on the
/// link or the server.
fn is_device_side(error: &RuntimeError) -> bool {
    matches!(
        error,
        RuntimeError::Model(_) | RuntimeError::Codec(_) | RuntimeError::InvalidConfig { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Device-only 113 ms; the image (300 B) with 1 ms of compute; a split plan (100 B)
    /// with 10 ms of compute.
    fn chooser(hysteresis: f64) -> PlanChooser {
        PlanChooser::new(
            vec![
                PlanCosts {
                    compute_s: 0.113,
                    payload_bits: 0,
                    remote: false,
                },
                PlanCosts {
                    compute_s: 0.001,
                    payload_bits: 2400,
                    remote: true,
                },
                PlanCosts {
                    compute_s: 0.010,
                    payload_bits: 800,
                    remote: true,
                },
            ],
            60,
            hysteresis,
        )
        .unwrap()
    }

    fn link(rate_bps: f64) -> LinkEstimate {
        LinkEstimate {
            rate_bps,
            rtt_s: 0.02,
            up: true,
        }
    }

    /// The wire time the estimator would see for `bits` of payload on `link`.
    fn wire(bits: u64, link: &LinkEstimate) -> f64 {
        link.rtt_s + (bits as f64 + 480.0) / link.rate_bps
    }

    #[test]
    fn the_best_plan_follows_the_rate() {
        let c = chooser(0.0);
        assert_eq!(c.best(&link(10e3)), 0, "device-only at 10 kbit/s");
        assert_eq!(c.best(&link(60e3)), 2, "the split plan at 60 kbit/s");
        assert_eq!(c.best(&link(1e6)), 1, "the image at 1 Mbit/s");
        assert_eq!(
            c.best(&LinkEstimate {
                up: false,
                ..link(1e6)
            }),
            0
        );
        assert_eq!(c.local_plan(), Some(0));
    }

    #[test]
    fn hysteresis_keeps_a_plan_that_is_almost_as_fast() {
        let c = chooser(0.1);
        // Near the split/image boundary both are within 10 % of each other: no switch either way.
        let near = link(180e3);
        let (a, b) = (c.predict(1, &near), c.predict(2, &near));
        assert!((a / b - 1.0).abs() < 0.1, "{a} vs {b}");
        assert_eq!(c.choose(1, &near), 1);
        assert_eq!(c.choose(2, &near), 2);
        // Far from it the faster plan wins.
        assert_eq!(c.choose(2, &link(2e6)), 1);
        // A remote plan on a dead link is always left.
        assert_eq!(c.choose(1, &LinkEstimate { up: false, ..near }), 0);
    }

    /// Plays `rates` (one per request) through estimator and chooser as the adaptive client
    /// does; returns the plan of every request.
    fn play(rates: &[f64]) -> (Vec<usize>, usize) {
        let c = chooser(0.1);
        let mut e = LinkEstimator::new(link(250e3), 60, EstimatorConfig::default()).unwrap();
        let mut current = c.best(&e.estimate());
        let mut plans = Vec::new();
        let mut switches = 0;
        for &rate in rates {
            let next = c.choose(current, &e.estimate());
            switches += usize::from(next != current);
            current = next;
            plans.push(current);
            let p = c.plans()[current];
            if p.remote {
                e.observe(p.payload_bits, wire(p.payload_bits, &link(rate)));
            }
        }
        (plans, switches)
    }

    #[test]
    fn a_constant_rate_never_switches() {
        for rate in [60e3, 120e3, 250e3, 1e6, 10e6] {
            let (plans, switches) = play(&[rate; 100]);
            // At most the first request moves off the prior's plan; never afterwards.
            assert!(switches <= 1, "{rate}: {plans:?}");
            assert!(
                plans[2..].iter().all(|&p| p == plans[2]),
                "{rate}: {plans:?}"
            );
        }
    }

    #[test]
    fn a_step_change_is_followed_within_a_few_requests() {
        // 1 Mbit/s (the image) → 60 kbit/s (the split plan) → 1 Mbit/s.
        let mut rates = vec![1e6; 20];
        rates.extend([60e3; 20]);
        rates.extend([1e6; 20]);
        let (plans, _) = play(&rates);
        assert_eq!(plans[19], 1, "{plans:?}");
        let first = |from: usize, plan: usize| plans[from..].iter().position(|&p| p == plan);
        assert!(first(20, 2).is_some_and(|n| n <= 4), "{plans:?}");
        assert!(plans[30..40].iter().all(|&p| p == 2), "{plans:?}");
        assert!(first(40, 1).is_some_and(|n| n <= 4), "{plans:?}");
        assert!(plans[50..].iter().all(|&p| p == 1), "{plans:?}");
    }

    #[test]
    fn the_estimator_recovers_rate_and_rtt_from_two_sizes() {
        let truth = LinkEstimate {
            rate_bps: 200e3,
            rtt_s: 0.035,
            up: true,
        };
        let mut e = LinkEstimator::new(link(1e6), 60, EstimatorConfig::default()).unwrap();
        for i in 0..16 {
            let bits = if i % 2 == 0 { 800 } else { 2400 };
            e.observe(bits, wire(bits, &truth));
        }
        let got = e.estimate();
        assert!(
            (got.rate_bps / truth.rate_bps - 1.0).abs() < 0.02,
            "{got:?}"
        );
        assert!((got.rtt_s - truth.rtt_s).abs() < 1e-3, "{got:?}");
        e.link_down();
        assert!(!e.estimate().up);
        e.link_up();
        assert!(e.estimate().up);
    }

    #[test]
    fn bad_settings_are_named() {
        let c = PlanChooser::new(Vec::new(), 0, 0.1).unwrap_err();
        assert!(c.to_string().contains("chooser.plans"), "{c}");
        let c = PlanChooser::new(chooser(0.0).plans, 0, 1.0).unwrap_err();
        assert!(c.to_string().contains("chooser.hysteresis"), "{c}");
        let config = EstimatorConfig {
            smoothing: 0.0,
            ..EstimatorConfig::default()
        };
        let e = LinkEstimator::new(link(1e6), 0, config).unwrap_err();
        assert!(e.to_string().contains("estimator.smoothing"), "{e}");
        let e = LinkEstimator::new(link(0.0), 0, EstimatorConfig::default()).unwrap_err();
        assert!(e.to_string().contains("estimator.prior.rate_bps"), "{e}");
    }
}
