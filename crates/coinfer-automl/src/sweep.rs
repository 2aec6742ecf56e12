//! The regime map: where co-inference pays.
//!
//! Whether a split beats sending the image or running everything on the device depends on the
//! regime — device speed, link rate, round-trip time — more than on anything the search
//! decides. A [`SweepGrid`] spans those three axes; [`SearchSession::sweep`] runs the DDPG
//! search and every [baseline](crate::baselines::Baseline) at every grid point on one trained
//! backbone and codec bank. A plan's accuracy does not depend on the profiles, so the
//! evaluator's cache is shared across the whole grid and each point only re-predicts latency
//! (and evaluates the plans no earlier point asked for).
//!
//! The search's answer at a point is the best of the agent's plans and the trivial plans —
//! device-only and the image sent with each input codec — refined by local search
//! ([`SearchSession::answer`], [`crate::refine`]): device-only has no split to search (it is
//! split point L, outside the agent's space), and a tool that cannot say "don't offload" or
//! "just send the image" where that is right is wrong there.
//!
//! ```no_run
//! # use coinfer_automl::prelude::*;
//! # use coinfer_automl::sweep::SweepGrid;
//! # fn demo(search: &CoInference) -> Result<(), AutomlError> {
//! let mut session = search.prepare()?;
//! let grid = SweepGrid::default_grid(ComputeProfile::preset("edge-gateway", None)?);
//! let sweep = session.sweep(&grid, 60, None, |done, total, _| eprintln!("{done}/{total}"))?;
//! for point in &sweep.points {
//!     println!("{} bit/s: {}", point.rate_bps, point.searched.kind);
//! }
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use coinfer_agent::Ddpg;
use coinfer_profile::{ComputeProfile, LatencyModel, LinkProfile};
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::baselines::{Baseline, BaselineSettings};
use crate::env::{CoInferenceEnv, EpisodeRecord, STATE_DIM};
use crate::evaluator::Evaluation;
use crate::session::SearchSession;

/// Default per-block overhead of the swept devices (the `device-*` presets' order).
pub const DEFAULT_DEVICE_OVERHEAD_S: f64 = 5e-5;
/// Default per-message overhead of the swept links (transport headers + frame header).
pub const DEFAULT_MESSAGE_OVERHEAD_BYTES: u64 = 80;

/// The axes of a sweep: every combination of link rate × device speed × RTT is one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepGrid {
    /// Link goodputs, bit/s.
    pub rates_bps: Vec<f64>,
    /// Effective device throughputs, FLOP/s (analytic devices).
    pub device_flops_per_s: Vec<f64>,
    /// Round-trip times, seconds.
    pub rtts_s: Vec<f64>,
    /// Fixed cost of every device block, seconds.
    pub device_overhead_s: f64,
    /// Bytes every message adds to the payload.
    pub per_message_overhead_bytes: u64,
    /// The edge server (one for the whole grid).
    pub edge: ComputeProfile,
}

impl SweepGrid {
    /// The default grid: 10 log-spaced rates from 10 kbit/s to 100 Mbit/s, devices of 0.05,
    /// 0.1, 1 and 10 GFLOP/s (a weak microcontroller to a mid-range phone), RTTs of 0, 10 and
    /// 30 ms: 120 points.
    pub fn default_grid(edge: ComputeProfile) -> SweepGrid {
        SweepGrid {
            rates_bps: (0..10)
                .map(|i| 1e4 * 10f64.powf(i as f64 * 4.0 / 9.0))
                .collect(),
            device_flops_per_s: vec![5e7, 1e8, 1e9, 1e10],
            rtts_s: vec![0.0, 0.01, 0.03],
            device_overhead_s: DEFAULT_DEVICE_OVERHEAD_S,
            per_message_overhead_bytes: DEFAULT_MESSAGE_OVERHEAD_BYTES,
            edge,
        }
    }

    /// Checks every axis: non-empty, every value finite and positive (RTT may be 0).
    pub fn check(&self) -> Result<(), AutomlError> {
        let axis = |field: &'static str, values: &[f64], zero_ok: bool| {
            if values.is_empty() {
                return Err(AutomlError::InvalidConfig {
                    field,
                    reason: "needs at least one value".into(),
                });
            }
            match values
                .iter()
                .find(|v| !(v.is_finite() && (**v > 0.0 || (zero_ok && **v == 0.0))))
            {
                Some(bad) => Err(AutomlError::InvalidConfig {
                    field,
                    reason: format!(
                        "{bad} is not a finite {} number",
                        if zero_ok { "non-negative" } else { "positive" }
                    ),
                }),
                None => Ok(()),
            }
        };
        axis("sweep.rates_bps", &self.rates_bps, false)?;
        axis("sweep.device_flops_per_s", &self.device_flops_per_s, false)?;
        axis("sweep.rtts_s", &self.rtts_s, true)?;
        axis(
            "sweep.device_overhead_s",
            std::slice::from_ref(&self.device_overhead_s),
            true,
        )?;
        self.edge.check()?;
        Ok(())
    }

    /// Every point, rate fastest-varying: `(rate, device FLOP/s, RTT)`.
    pub fn points(&self) -> Vec<(f64, f64, f64)> {
        let mut points = Vec::new();
        for &rtt in &self.rtts_s {
            for &flops in &self.device_flops_per_s {
                for &rate in &self.rates_bps {
                    points.push((rate, flops, rtt));
                }
            }
        }
        points
    }

    /// The latency model of one point.
    pub fn model(
        &self,
        rate_bps: f64,
        flops: f64,
        rtt_s: f64,
    ) -> Result<LatencyModel, AutomlError> {
        Ok(LatencyModel::new(
            ComputeProfile::analytic(flops, self.device_overhead_s)?,
            LinkProfile::new(rate_bps, rtt_s, self.per_message_overhead_bytes)?,
            self.edge.clone(),
        )?)
    }
}

/// A plan at one point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// Predicted end-to-end latency, seconds.
    pub latency_s: f64,
    /// Validation accuracy (no fine-tuning).
    pub accuracy: f32,
    /// Split point (`L`, the number of blocks, for device-only).
    pub split: usize,
    /// The codec (`float32` for device-only: nothing is sent).
    pub codec: String,
    /// Pruning ratios of the device's prunable layers.
    pub prune_ratios: Vec<f32>,
    /// What kind of plan it is: `device-only`, `edge-only` (split 0) or `split k`.
    pub kind: String,
    /// Whether it meets the reward's accuracy requirement.
    pub feasible: bool,
}

impl SweepPlan {
    fn of(evaluation: &Evaluation, blocks: usize, feasible: bool) -> SweepPlan {
        let kind = match evaluation.split {
            0 => "edge-only".to_string(),
            s if s >= blocks => "device-only".to_string(),
            s => format!("split {s}"),
        };
        SweepPlan {
            latency_s: evaluation.latency.total,
            accuracy: evaluation.accuracy,
            split: evaluation.split,
            codec: evaluation.codec.to_string(),
            prune_ratios: evaluation.prune_ratios.clone(),
            kind,
            feasible,
        }
    }
}

/// A baseline's best plan at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepBaseline {
    /// [`Baseline::name`].
    pub name: String,
    /// Predicted end-to-end latency, seconds.
    pub latency_s: f64,
    /// Validation accuracy.
    pub accuracy: f32,
    /// The plan.
    pub plan: SweepPlan,
}

/// One grid point's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Link goodput, bit/s.
    pub rate_bps: f64,
    /// Device throughput, FLOP/s.
    pub device_flops_per_s: f64,
    /// Round-trip time, seconds.
    pub rtt_s: f64,
    /// The search's answer (best of the agent's plans and the trivial ones, refined).
    pub searched: SweepPlan,
    /// Every baseline's best plan, in [`Baseline::ALL`] order.
    pub baselines: Vec<SweepBaseline>,
    /// Distinct plans the search (the agent and the refinement) asked for at this point.
    pub agent_evaluations: usize,
}

impl SweepPoint {
    /// The fastest feasible baseline (any, if none is feasible).
    pub fn best_baseline(&self) -> Option<&SweepBaseline> {
        let fastest = |only_feasible: bool| {
            self.baselines
                .iter()
                .filter(|b| b.plan.feasible || !only_feasible)
                .min_by(|a, b| a.latency_s.total_cmp(&b.latency_s))
        };
        fastest(true).or_else(|| fastest(false))
    }

    /// The searched plan's speed-up over the baseline called `name`.
    pub fn speedup_over(&self, name: &str) -> Option<f64> {
        self.baselines
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.latency_s / self.searched.latency_s)
    }
}

/// Everything a sweep produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The grid.
    pub grid: SweepGrid,
    /// Agent episodes per point.
    pub episodes_per_point: usize,
    /// The reward every plan was scored with.
    pub reward: crate::Reward,
    /// Validation accuracy of the backbone.
    pub backbone_accuracy: f32,
    /// The points, in [`SweepGrid::points`] order.
    pub points: Vec<SweepPoint>,
    /// Distinct plans run on the validation set over the whole sweep.
    pub distinct_plans: usize,
}

impl SearchSession<'_> {
    /// Runs the agent (`episodes` per point, the session's DDPG settings and seed) and every
    /// baseline at every point of `grid`.
    ///
    /// With `resume = Some(report)`, points already in `report` (same grid order) are kept and
    /// their plans restored into the cache, so an interrupted sweep continues where it
    /// stopped. `on_point(done, total, point)` is called after every point.
    pub fn sweep(
        &mut self,
        grid: &SweepGrid,
        episodes: usize,
        resume: Option<SweepReport>,
        mut on_point: impl FnMut(usize, usize, &SweepPoint),
    ) -> Result<SweepReport, AutomlError> {
        grid.check()?;
        if episodes == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "sweep.episodes",
                reason: "must be at least 1".into(),
            });
        }
        let reward = self.reward();
        let mut points = match resume {
            Some(previous) if previous.grid == *grid && previous.reward == reward => {
                previous.points
            }
            _ => Vec::new(),
        };
        let all = grid.points();
        let blocks = self.evaluator().backbone().spec().blocks.len();
        let settings = self.baseline_settings(episodes);
        for (index, &(rate, flops, rtt)) in all.iter().enumerate().skip(points.len()) {
            self.evaluator()
                .set_latency_model(grid.model(rate, flops, rtt)?)?;
            let records = self.agent_records(episodes)?;
            let searched = self.answer(&records, true)?.best;
            // The search's cost: the plans the agent and the refinement asked for.
            let agent_evaluations = self.evaluator().session_evaluations();
            let baselines = Baseline::ALL
                .iter()
                .map(|&baseline| {
                    let settings = BaselineSettings {
                        random_budget: agent_evaluations.max(1),
                        ..settings.clone()
                    };
                    let result = baseline.run(self.evaluator(), &reward, &settings)?;
                    let plan =
                        SweepPlan::of(&result.best, blocks, reward.is_feasible(&result.best));
                    Ok(SweepBaseline {
                        name: result.name,
                        latency_s: plan.latency_s,
                        accuracy: plan.accuracy,
                        plan,
                    })
                })
                .collect::<Result<Vec<_>, AutomlError>>()?;
            let point = SweepPoint {
                rate_bps: rate,
                device_flops_per_s: flops,
                rtt_s: rtt,
                searched: SweepPlan::of(&searched, blocks, reward.is_feasible(&searched)),
                baselines,
                agent_evaluations,
            };
            on_point(index + 1, all.len(), &point);
            points.push(point);
        }
        Ok(SweepReport {
            grid: grid.clone(),
            episodes_per_point: episodes,
            reward,
            backbone_accuracy: self.evaluator().backbone_accuracy()?,
            points,
            distinct_plans: self.evaluator().evaluations(),
        })
    }

    /// A fresh agent (the session's DDPG settings and seed) run for `episodes` episodes on the
    /// current latency model, in a fresh evaluator session: its episodes.
    fn agent_records(&mut self, episodes: usize) -> Result<Vec<EpisodeRecord>, AutomlError> {
        let mut config = self.config().ddpg.clone();
        config.warmup_episodes = config.warmup_episodes.min(episodes / 2);
        let reward = self.reward();
        let backend = self.backend().clone();
        let mut agent = Ddpg::new(config, STATE_DIM, &backend)?;
        self.evaluator().begin_session();
        let mut env = CoInferenceEnv::with_checked_reward(self.evaluator(), reward)?;
        for _ in 0..episodes {
            agent.run_episode(&mut env)?;
        }
        Ok(env.into_records())
    }
}

/// Saves a (possibly partial) sweep atomically, so that `--resume` finds a whole file.
pub fn save_sweep(report: &SweepReport, path: &Path) -> Result<(), AutomlError> {
    let json = serde_json::to_string_pretty(report).map_err(|e| AutomlError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, json).map_err(AutomlError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(AutomlError::io(path))
}

/// Loads a sweep saved by [`save_sweep`].
pub fn load_sweep(path: &Path) -> Result<SweepReport, AutomlError> {
    let bytes = std::fs::read(path).map_err(AutomlError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| AutomlError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The sweep as a Markdown table: one row per point with the winner and the speed-ups.
pub fn sweep_markdown(report: &SweepReport) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| RTT (ms) | device (GFLOP/s) | rate (kbit/s) | searched plan | latency (ms) | val. acc. | best baseline | its latency (ms) | speed-up vs device-only | vs edge-only-raw | vs neurosurgeon | vs best baseline |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"
    );
    for p in &report.points {
        let best = p.best_baseline();
        let ratio = |name: &str| {
            p.speedup_over(name)
                .map_or("–".into(), |r| format!("{r:.2}×"))
        };
        let _ = writeln!(
            md,
            "| {:.0} | {:.2} | {:.1} | {} {}{} | {:.2} | {:.1} % | {} | {:.2} | {} | {} | {} | {} |",
            p.rtt_s * 1e3,
            p.device_flops_per_s / 1e9,
            p.rate_bps / 1e3,
            p.searched.kind,
            p.searched.codec,
            if p.searched.feasible {
                ""
            } else {
                " (over tolerance)"
            },
            p.searched.latency_s * 1e3,
            100.0 * p.searched.accuracy,
            best.map_or("–", |b| b.name.as_str()),
            best.map_or(f64::NAN, |b| b.latency_s * 1e3),
            ratio("device-only"),
            ratio("edge-only-raw"),
            ratio("neurosurgeon"),
            best.map_or("–".into(), |b| format!(
                "{:.2}×",
                b.latency_s / p.searched.latency_s
            )),
        );
    }
    md
}
