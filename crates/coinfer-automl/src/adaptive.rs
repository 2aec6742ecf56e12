//! The adaptive-client benchmark (`coinfer adaptive-bench`): one edge server serving a plan
//! set, and on each link trace the adaptive client, every plan of the set run alone (static)
//! and an oracle told the true link, each on a fresh connection with the trace restarted, all
//! on the same images in the same order. Every request is a JSON-able [`BenchRequest`], every
//! (trace, policy) a [`BenchSummary`]; [`draw_latency`] plots latency over the run.
//!
//! The device's compute is emulated as the link is: each plan's device half and encoding take
//! at least the set's predicted device time (the set's device profile, e.g. a
//! microcontroller), so the plans compare as they would on that device; the edge half runs on
//! this machine.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::*;
use coinfer_runtime::{
    AdaptiveClient, ClientConfig, DeviceClient, EstimatorConfig, LinkTrace, Policy, Switch,
    TraceClock, TracePlayer,
};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::planset::DeployedSet;

/// Settings of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Requests per (trace, policy).
    pub requests: usize,
    /// On a trace timed in seconds, one request every `period_s` (a request slower than the
    /// period delays the next); on a request-indexed trace requests follow each other.
    pub period_s: f64,
    /// The chooser's hysteresis (fraction).
    pub hysteresis: f64,
    /// The estimator's settings.
    pub estimator: EstimatorConfig,
    /// Whether device compute is emulated at the set's predicted device time.
    pub emulate_device: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            requests: 90,
            period_s: 0.2,
            hysteresis: 0.05,
            estimator: EstimatorConfig::default(),
            emulate_device: true,
        }
    }
}

/// One request of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRequest {
    /// The trace's name.
    pub trace: String,
    /// `adaptive`, `oracle` or `static-<i>`.
    pub policy: String,
    /// Request index from 0.
    pub request: u64,
    /// Seconds since the run started.
    pub at_s: f64,
    /// The member that answered (`None`: unanswered).
    pub plan: Option<usize>,
    /// Its kind (`device-only`, `edge-only`, `split k`), empty when unanswered.
    pub plan_kind: String,
    /// The member chosen before the request.
    pub chosen: usize,
    /// The link as the policy believed it, bit/s and ms.
    pub estimate_rate_bps: f64,
    /// The estimate's RTT, milliseconds.
    pub estimate_rtt_ms: f64,
    /// The true link when the request started.
    pub true_rate_bps: f64,
    /// Whether the true link was up when the request started.
    pub link_up: bool,
    /// Request to answer, milliseconds.
    pub latency_ms: f64,
    /// Whether the answer's class was the label.
    pub correct: Option<bool>,
    /// Why the edge did not answer, when it did not.
    pub failure: Option<String>,
}

/// One (trace, policy) in figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    /// The trace's name.
    pub trace: String,
    /// `adaptive`, `oracle` or `static-<i>` (with the member's kind).
    pub policy: String,
    /// Requests sent.
    pub requests: usize,
    /// Requests without an answer.
    pub lost: usize,
    /// Mean latency of the answered requests, ms.
    pub mean_latency_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Fraction of answers with the label's class.
    pub accuracy: f64,
    /// Requests sent while the link was down, and how many of them the device-only plan
    /// answered.
    pub while_down: usize,
    /// Of `while_down`, answered on the device alone.
    pub device_only_while_down: usize,
    /// Switches of plan (adaptive and oracle).
    pub switches: usize,
    /// Every switch.
    pub switch_log: Vec<Switch>,
}

/// The policies of a run, with their names: adaptive, every member static, oracle.
fn policies(set: &DeployedSet, player: &Arc<TracePlayer>) -> Vec<(String, Policy)> {
    let mut all = vec![("adaptive".to_string(), Policy::Adaptive)];
    for (i, m) in set.set.members.iter().enumerate() {
        all.push((format!("static-{i} ({})", m.kind), Policy::Static(i)));
    }
    all.push(("oracle".to_string(), Policy::Oracle(player.clone())));
    all
}

/// Runs every policy on `trace` against the server at `addr` serving `set`, on `images`
/// (already normalised `[1, C, H, W]` tensors with their labels, cycled).
///
/// # Errors
/// A client that cannot connect at the start, device-side failures; link failures are
/// recorded in the requests.
pub fn run_trace(
    set: &DeployedSet,
    addr: SocketAddr,
    trace: &LinkTrace,
    images: &[(Tensor<4>, usize)],
    config: &BenchConfig,
    mut on_request: impl FnMut(&BenchRequest),
) -> Result<Vec<BenchSummary>, AutomlError> {
    if images.is_empty() || config.requests == 0 {
        return Err(AutomlError::InvalidConfig {
            field: "bench.requests",
            reason: "needs at least one image and one request".into(),
        });
    }
    if !(config.period_s.is_finite() && config.period_s >= 0.0) {
        return Err(AutomlError::InvalidConfig {
            field: "bench.period_s",
            reason: format!("{} is not a finite non-negative time", config.period_s),
        });
    }
    let probe = TracePlayer::new(trace.clone());
    let mut summaries = Vec::new();
    for (name, policy) in policies(set, &probe) {
        // Each policy on a fresh player (the oracle's reads the same one its client sends on).
        let player = match &policy {
            Policy::Oracle(p) => p.clone(),
            _ => TracePlayer::new(trace.clone()),
        };
        let client = DeviceClient::connect_set(
            addr,
            set.client_plans(config.emulate_device)?,
            set.digest.clone(),
            ClientConfig {
                trace: Some(player.clone()),
                retries: 0,
                read_timeout: Duration::from_secs(5),
                write_timeout: Duration::from_secs(30),
                ..ClientConfig::default()
            },
        )?;
        let prior = set.set.nominal_rate_bps;
        let mut adaptive = AdaptiveClient::new(
            client,
            set.set.chooser(config.hysteresis)?,
            set.set.estimator(prior, config.estimator)?,
            policy,
            Some(player.clone()),
        )?;
        player.start();
        let start = Instant::now();
        let mut rows = Vec::with_capacity(config.requests);
        for k in 0..config.requests {
            if trace.clock == TraceClock::Seconds {
                let due = Duration::from_secs_f64(config.period_s * k as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let truth = player.current();
            let (x, label) = &images[k % images.len()];
            let answer = adaptive.infer(x.clone())?;
            let row = BenchRequest {
                trace: trace.name.clone(),
                policy: name.clone(),
                request: answer.request,
                at_s: answer.at_s,
                plan: answer.plan,
                plan_kind: answer
                    .plan
                    .map(|p| set.set.members[p].kind.clone())
                    .unwrap_or_default(),
                chosen: answer.chosen,
                estimate_rate_bps: answer.estimate.rate_bps,
                estimate_rtt_ms: answer.estimate.rtt_s * 1e3,
                true_rate_bps: truth.rate_bps,
                link_up: truth.up,
                latency_ms: answer.latency_s * 1e3,
                correct: answer
                    .result
                    .as_ref()
                    .map(|r| r.predictions().first() == Some(label)),
                failure: answer.failure.clone(),
            };
            on_request(&row);
            rows.push(row);
        }
        summaries.push(summarise(trace, &name, &rows, adaptive.switches()));
    }
    Ok(summaries)
}

fn summarise(
    trace: &LinkTrace,
    policy: &str,
    rows: &[BenchRequest],
    switches: &[Switch],
) -> BenchSummary {
    let answered: Vec<&BenchRequest> = rows.iter().filter(|r| r.plan.is_some()).collect();
    let mut latencies: Vec<f64> = answered.iter().map(|r| r.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let down: Vec<&BenchRequest> = rows.iter().filter(|r| !r.link_up).collect();
    BenchSummary {
        trace: trace.name.clone(),
        policy: policy.to_string(),
        requests: rows.len(),
        lost: rows.len() - answered.len(),
        mean_latency_ms: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        accuracy: answered.iter().filter(|r| r.correct == Some(true)).count() as f64
            / answered.len().max(1) as f64,
        while_down: down.len(),
        device_only_while_down: down.iter().filter(|r| r.plan_kind == "device-only").count(),
        switches: switches.len(),
        switch_log: switches.to_vec(),
    }
}

/// Draws latency over the run (request index) for every policy of one trace, with the true
/// rate on a second panel.
///
/// # Errors
/// [`AutomlError::Plot`] naming the file.
pub fn draw_latency(rows: &[BenchRequest], title: &str, path: &Path) -> Result<(), AutomlError> {
    draw(rows, title, path).map_err(|e| AutomlError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn draw(rows: &[BenchRequest], title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.policy.as_str()) {
            names.push(&r.policy);
        }
    }
    let n = rows.iter().map(|r| r.request + 1).max().unwrap_or(1) as f64;
    let lat: Vec<f64> = rows
        .iter()
        .map(|r| r.latency_ms)
        .filter(|v| *v > 0.0)
        .collect();
    let (lo, hi) = lat
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(460);
    let mut chart = ChartBuilder::on(&top)
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n, ((lo / 1.3)..(hi * 1.3)).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("request")
        .y_desc("latency (ms, log)")
        .draw()?;
    for (k, name) in names.iter().enumerate() {
        let line: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.policy == *name && r.latency_ms > 0.0)
            .map(|r| (r.request as f64, r.latency_ms))
            .collect();
        let (colour, width) = match *name {
            "adaptive" => (BLACK.to_rgba(), 3),
            "oracle" => (RED.to_rgba(), 2),
            _ => (Palette99::pick(k + 2).to_rgba(), 1),
        };
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(width)))?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    let first = names.first().copied().unwrap_or("adaptive");
    let truth: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.policy == first)
        .map(|r| {
            (
                r.request as f64,
                if r.link_up { r.true_rate_bps } else { 1.0 },
            )
        })
        .collect();
    let top_rate = truth.iter().map(|t| t.1).fold(10.0, f64::max);
    let mut rate = ChartBuilder::on(&bottom)
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n, (1f64..top_rate * 2.0).log_scale())?;
    rate.configure_mesh()
        .x_desc("request (of the adaptive run)")
        .y_desc("true rate (bit/s; 1 = down)")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    rate.draw_series(LineSeries::new(truth, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}
