//! Plan sets: the best plan for each of a range of link rates, for a device that follows the
//! link at run time (`coinfer plans`, `coinfer serve --plans`, `coinfer infer --plans
//! --adaptive`).
//!
//! [`SearchSession::plan_set`] re-scores the search's plans (the agent's, the trivial ones —
//! device-only and the input sent with every input codec — and what local refinement finds
//! from them at each rate) with the latency model at every rate of a grid, keeping the search's
//! RTT, device and edge: the best plan under the reward at each rate. Equal winners are merged
//! into one member with the rate intervals where it is best (boundaries at the geometric mean
//! of two neighbouring grid rates). Each member is exported like a single plan (its own folder
//! with `plan.json` and its halves); a device-only member holds the whole network
//! (`device.cfnet`) and no edge half. `set.json` lists them; [`PlanSet::deploy`] loads them
//! back, checking every weight digest, for the edge server and the adaptive client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::prelude::*;
use coinfer_codec::{CodecId, SharedCodec};
use coinfer_profile::{Breakdown, LatencyModel, LinkProfile};
use coinfer_runtime::{
    ClientPlan, EdgePlan, EstimatorConfig, LinkEstimate, LinkEstimator, PlanChooser, PlanCosts,
};
use coinfer_split::Network;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::Evaluation;
use crate::plan::{PlanArtifacts, SplitPlan};
use crate::refine::refine;
use crate::session::SearchSession;

/// File name of a plan set inside its folder.
pub const SET_FILE: &str = "set.json";

/// A rate interval at one RTT of the grid, bit/s: `[from_bps, to_bps)`, `to_bps = None`
/// unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateInterval {
    /// The RTT of the grid row, seconds.
    pub rtt_s: f64,
    /// Lower bound (inclusive).
    pub from_bps: f64,
    /// Upper bound (exclusive); `None`: no bound.
    pub to_bps: Option<f64>,
}

/// One plan of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSetMember {
    /// `device-only`, `edge-only` or `split k`.
    pub kind: String,
    /// Its folder, relative to the set file (holds `plan.json` and the weights).
    pub folder: String,
    /// [`SplitPlan::digest`] of the exported plan: the tag of its requests.
    pub digest: String,
    /// Whether it sends anything (false: device-only).
    pub remote: bool,
    /// Predicted device + encode time, seconds (what an emulated device takes).
    pub device_s: f64,
    /// Predicted compute: device, encode, decode and edge, seconds.
    pub compute_s: f64,
    /// Payload bits per sample.
    pub payload_bits: u64,
    /// Validation accuracy during the search (before fine-tuning).
    pub accuracy: f32,
    /// Test accuracy of the exported plan.
    pub test_accuracy: Option<f32>,
    /// The codec (`float32` for device-only: nothing is sent).
    pub codec: CodecId,
    /// Where it is the best plan of the set.
    pub intervals: Vec<RateInterval>,
}

/// The best plan at each of a range of link rates (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSet {
    /// The rates the plans were scored at, bit/s, ascending.
    pub rates_bps: Vec<f64>,
    /// The RTTs the plans were scored at, seconds, ascending.
    pub rtts_s: Vec<f64>,
    /// The member that is best at each (RTT, rate), RTT-major: entry `r · rates + k` is RTT
    /// `r`, rate `k`.
    pub best_at: Vec<usize>,
    /// The search's RTT, seconds (an adaptive client's first estimate).
    pub rtt_s: f64,
    /// The search's link rate, bit/s (an adaptive client's first estimate).
    pub nominal_rate_bps: f64,
    /// Bytes added to every message (the link profile's).
    pub per_message_overhead_bytes: u64,
    /// Names of the device, link and edge profiles.
    pub profiles: [String; 3],
    /// The plans, in the order of the rates where they are first best.
    pub members: Vec<PlanSetMember>,
}

/// A plan set's members loaded and checked, ready to serve and run.
pub struct DeployedSet {
    /// The set.
    pub set: PlanSet,
    /// Its digest (what the Hello carries).
    pub digest: String,
    /// Per member: the network the device runs (device half, or the whole network) and,
    /// for a remote member, its edge half and codec.
    pub members: Vec<DeployedMember>,
}

/// One loaded member.
pub struct DeployedMember {
    /// The member's plan.
    pub plan: SplitPlan,
    /// The device half (the whole network for device-only).
    pub device: Network,
    /// The edge half and the codec (`None` for device-only).
    pub edge: Option<(Network, SharedCodec)>,
}

fn json_error(path: &Path, reason: impl Into<String>) -> AutomlError {
    AutomlError::Json {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl PlanSet {
    /// A 64-bit fingerprint (hex) of the members' digests, in order, and their intervals.
    pub fn digest(&self) -> String {
        let text = self
            .members
            .iter()
            .map(|m| format!("{}@{:?}", m.digest, m.intervals))
            .collect::<Vec<_>>()
            .join("|");
        format!("set-{}", coinfer_split::fingerprint(text.as_bytes()))
    }

    /// Checks the set: members, one best member per rate, ascending rates.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<(), AutomlError> {
        let bad =
            |field: &'static str, reason: String| AutomlError::InvalidConfig { field, reason };
        if self.members.is_empty() {
            return Err(bad(
                "plan_set.members",
                "a plan set needs at least one plan".into(),
            ));
        }
        if self.best_at.len() != self.rates_bps.len() * self.rtts_s.len() {
            return Err(bad(
                "plan_set.best_at",
                format!(
                    "{} entries for {} rates × {} RTTs",
                    self.best_at.len(),
                    self.rates_bps.len(),
                    self.rtts_s.len()
                ),
            ));
        }
        if let Some(i) = self.best_at.iter().find(|&&i| i >= self.members.len()) {
            return Err(bad(
                "plan_set.best_at",
                format!("member {i} of {}", self.members.len()),
            ));
        }
        if self
            .rates_bps
            .windows(2)
            .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(bad(
                "plan_set.rates_bps",
                "rates must be strictly ascending".into(),
            ));
        }
        if !self.members.iter().any(|m| m.remote) {
            return Err(bad(
                "plan_set.members",
                "no member uses the edge server: there is nothing to serve".into(),
            ));
        }
        if let Some(m) = self.members.iter().find(|m| {
            !(m.compute_s.is_finite()
                && m.compute_s >= 0.0
                && m.device_s.is_finite()
                && m.device_s >= 0.0)
        }) {
            return Err(bad(
                "plan_set.members.compute_s",
                format!("{}: not a finite non-negative time", m.folder),
            ));
        }
        Ok(())
    }

    /// Writes the set as pretty JSON.
    ///
    /// # Errors
    /// [`AutomlError::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), AutomlError> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| json_error(path, e.to_string()))?;
        std::fs::write(path, json).map_err(AutomlError::io(path))
    }

    /// Reads and checks a set written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`AutomlError::Io`], or [`AutomlError::Json`] naming the file when it is not a plan set
    /// or fails [`check`](Self::check).
    pub fn load(path: &Path) -> Result<PlanSet, AutomlError> {
        let text = std::fs::read_to_string(path).map_err(AutomlError::io(path))?;
        let set: PlanSet = serde_json::from_str(&text)
            .map_err(|e| json_error(path, format!("not a plan set: {e}")))?;
        set.check().map_err(|e| json_error(path, e.to_string()))?;
        Ok(set)
    }

    /// Loads every member's weights (checking their digests and that the member's digest is
    /// its plan's).
    ///
    /// # Errors
    /// As [`load`](Self::load) and [`SplitPlan::deploy`], naming the member's file.
    pub fn deploy(path: &Path, device: &Device) -> Result<DeployedSet, AutomlError> {
        let set = PlanSet::load(path)?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut members = Vec::with_capacity(set.members.len());
        for member in &set.members {
            let plan_path = folder.join(&member.folder).join("plan.json");
            let deployed = if member.remote {
                let d = SplitPlan::deploy(&plan_path, device)?;
                DeployedMember {
                    plan: d.plan,
                    device: d.device,
                    edge: Some((d.edge, d.codec)),
                }
            } else {
                let plan = SplitPlan::load(&plan_path)?;
                let artifacts = plan
                    .artifacts
                    .clone()
                    .ok_or_else(|| json_error(&plan_path, "the plan has no exported weights"))?;
                let net_path: PathBuf = plan_path.with_file_name(&artifacts.device);
                let network = Network::load(&net_path, device)?;
                if network.digest() != artifacts.device_digest {
                    return Err(json_error(
                        &net_path,
                        format!(
                            "weights digest {} does not match the plan's {}",
                            network.digest(),
                            artifacts.device_digest
                        ),
                    ));
                }
                if plan.split != network.spec().blocks.len() {
                    return Err(json_error(
                        &plan_path,
                        format!(
                            "a device-only plan runs every block, but split {} is not the \
                             network's {} blocks",
                            plan.split,
                            network.spec().blocks.len()
                        ),
                    ));
                }
                DeployedMember {
                    plan,
                    device: network.valid(),
                    edge: None,
                }
            };
            if deployed.plan.digest() != member.digest {
                return Err(json_error(
                    &plan_path,
                    format!(
                        "plan digest {} is not the set's {}",
                        deployed.plan.digest(),
                        member.digest
                    ),
                ));
            }
            members.push(deployed);
        }
        Ok(DeployedSet {
            digest: set.digest(),
            set,
            members,
        })
    }

    /// What the chooser needs of each member.
    pub fn costs(&self) -> Vec<PlanCosts> {
        self.members
            .iter()
            .map(|m| PlanCosts {
                compute_s: m.compute_s,
                payload_bits: m.payload_bits,
                remote: m.remote,
            })
            .collect()
    }

    /// The member the set names for `rate_bps` at the grid RTT nearest `rtt_s` (by its
    /// intervals).
    pub fn member_for(&self, rate_bps: f64, rtt_s: f64) -> Option<usize> {
        let row = self
            .rtts_s
            .iter()
            .copied()
            .min_by(|a, b| (a - rtt_s).abs().total_cmp(&(b - rtt_s).abs()))?;
        self.members.iter().position(|m| {
            m.intervals.iter().any(|i| {
                i.rtt_s == row && rate_bps >= i.from_bps && i.to_bps.is_none_or(|to| rate_bps < to)
            })
        })
    }

    /// A chooser over the members with `hysteresis`.
    ///
    /// # Errors
    /// As [`PlanChooser::new`].
    pub fn chooser(&self, hysteresis: f64) -> Result<PlanChooser, AutomlError> {
        Ok(PlanChooser::new(
            self.costs(),
            self.per_message_overhead_bytes,
            hysteresis,
        )?)
    }

    /// An estimator starting from `prior_rate_bps` and the set's RTT.
    ///
    /// # Errors
    /// As [`LinkEstimator::new`].
    pub fn estimator(
        &self,
        prior_rate_bps: f64,
        config: EstimatorConfig,
    ) -> Result<LinkEstimator, AutomlError> {
        Ok(LinkEstimator::new(
            LinkEstimate {
                rate_bps: prior_rate_bps,
                rtt_s: self.rtt_s,
                up: true,
            },
            self.per_message_overhead_bytes,
            config,
        )?)
    }
}

impl DeployedSet {
    /// The edge halves to serve ([`coinfer_runtime::EdgeServer::bind_set`]).
    ///
    /// # Errors
    /// As [`EdgePlan::new`].
    pub fn edge_plans(&self) -> Result<Vec<EdgePlan>, AutomlError> {
        self.members
            .iter()
            .filter_map(|m| {
                m.edge.as_ref().map(|(edge, codec)| {
                    Ok(EdgePlan::new(edge.clone(), codec.clone(), m.plan.digest())?)
                })
            })
            .collect()
    }

    /// The device side of every member, in the set's order
    /// ([`coinfer_runtime::DeviceClient::connect_set`]); with `emulate_device`, each takes at
    /// least its predicted device + encode time (the set's device profile, e.g. a
    /// microcontroller, rather than this machine).
    ///
    /// # Errors
    /// As [`ClientPlan::remote`].
    pub fn client_plans(&self, emulate_device: bool) -> Result<Vec<ClientPlan>, AutomlError> {
        self.members
            .iter()
            .zip(&self.set.members)
            .map(|(m, info)| {
                let plan = match &m.edge {
                    Some((_, codec)) => {
                        ClientPlan::remote(m.device.clone(), codec.clone(), m.plan.digest())?
                    }
                    None => ClientPlan::local(m.device.clone(), m.plan.digest())?,
                };
                Ok(if emulate_device {
                    plan.emulate_device_time(Duration::from_secs_f64(info.device_s))
                } else {
                    plan
                })
            })
            .collect()
    }
}

/// Checks a rate grid: non-empty, finite positive values; returns it sorted, duplicates out.
fn checked_rates(rates_bps: &[f64]) -> Result<Vec<f64>, AutomlError> {
    checked_axis("plan_set.rates_bps", rates_bps, false)
}

/// Checks a grid axis: non-empty, finite values, positive (or non-negative with `zero_ok`);
/// returns it sorted, duplicates out.
fn checked_axis(
    field: &'static str,
    values: &[f64],
    zero_ok: bool,
) -> Result<Vec<f64>, AutomlError> {
    if values.is_empty() {
        return Err(AutomlError::InvalidConfig {
            field,
            reason: "needs at least one value".into(),
        });
    }
    if let Some(bad) = values
        .iter()
        .find(|r| !(r.is_finite() && (**r > 0.0 || (zero_ok && **r == 0.0))))
    {
        return Err(AutomlError::InvalidConfig {
            field,
            reason: format!(
                "{bad} is not a finite {} number",
                if zero_ok { "non-negative" } else { "positive" }
            ),
        });
    }
    let mut rates = values.to_vec();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    Ok(rates)
}

/// Identity of a plan across rates.
fn same_plan(a: &Evaluation, b: &Evaluation) -> bool {
    a.split == b.split && a.kept == b.kept && a.codec == b.codec
}

/// The rate intervals of each member from the best member at each grid rate.
fn intervals(
    rates: &[f64],
    best_at: &[usize],
    members: usize,
    rtt_s: f64,
) -> Vec<Vec<RateInterval>> {
    let mut out = vec![Vec::new(); members];
    let mut start = 0;
    for i in 0..rates.len() {
        let last = i + 1 == rates.len();
        if last || best_at[i + 1] != best_at[i] {
            let from_bps = if start == 0 {
                0.0
            } else {
                (rates[start - 1] * rates[start]).sqrt()
            };
            let to_bps = (!last).then(|| (rates[i] * rates[i + 1]).sqrt());
            out[best_at[i]].push(RateInterval {
                rtt_s,
                from_bps,
                to_bps,
            });
            start = i + 1;
        }
    }
    out
}

impl SearchSession<'_> {
    /// The plan set over `rates_bps` × `rtts_s` (see the [module docs](self); no RTT: the
    /// search's) from the agent's episodes `records`; with `out`, every member is fine-tuned and exported into `out/plan-<i>/`
    /// and the set written to `out/set.json`. The evaluator's latency model is restored after.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] for an empty or non-positive rate, or no episode; the
    /// evaluator's and the export's errors.
    pub fn plan_set(
        &mut self,
        records: &[crate::env::EpisodeRecord],
        rates_bps: &[f64],
        rtts_s: &[f64],
        out: Option<&Path>,
    ) -> Result<PlanSet, AutomlError> {
        let rates = checked_rates(rates_bps)?;
        if records.is_empty() {
            return Err(AutomlError::InvalidConfig {
                field: "episodes",
                reason: "the search ran no episode".into(),
            });
        }
        let nominal = self.evaluator().latency_model().clone();
        let link = nominal.link().clone();
        let rtts = if rtts_s.is_empty() {
            vec![link.rtt_s]
        } else {
            checked_axis("plan_set.rtts_s", rtts_s, true)?
        };
        let grid: Vec<(f64, f64)> = rtts
            .iter()
            .flat_map(|&rtt| rates.iter().map(move |&rate| (rtt, rate)))
            .collect();
        let model_at = |(rtt, rate): (f64, f64)| -> Result<LatencyModel, AutomlError> {
            Ok(LatencyModel::new(
                nominal.device().clone(),
                LinkProfile::new(rate, rtt, link.per_message_overhead_bytes)?,
                nominal.edge().clone(),
            )?)
        };
        let reward = self.reward();
        let refine_config = *self.config().refine();
        // The agent's plans and the trivial ones, cached; then refinement from them at each rate.
        for record in records {
            self.evaluator().evaluate(&record.decision)?;
        }
        for decision in crate::baselines::input_codecs(self.evaluator(), |_| true)? {
            self.evaluator().evaluate(&decision)?;
        }
        for &point in &grid {
            self.evaluator().set_latency_model(model_at(point)?)?;
            let mut starts: Vec<Evaluation> =
                self.evaluator().evaluated().into_iter().cloned().collect();
            starts.push(self.evaluator().device_only()?);
            refine(self.evaluator(), &reward, &starts, &refine_config)?;
        }
        // The best of everything at each rate.
        let mut winners: Vec<Evaluation> = Vec::new();
        let mut best_at = Vec::with_capacity(grid.len());
        for &point in &grid {
            self.evaluator().set_latency_model(model_at(point)?)?;
            let mut all: Vec<Evaluation> =
                self.evaluator().evaluated().into_iter().cloned().collect();
            all.push(self.evaluator().device_only()?);
            let best = all
                .into_iter()
                .max_by(|a, b| reward.score(a).total_cmp(&reward.score(b)))
                .expect("device-only is always there");
            let index = match winners.iter().position(|w| same_plan(w, &best)) {
                Some(i) => i,
                None => {
                    winners.push(best);
                    winners.len() - 1
                }
            };
            best_at.push(index);
        }
        // Costs and export at the nominal link.
        self.evaluator().set_latency_model(nominal.clone())?;
        let blocks = self.evaluator().backbone().spec().blocks.len();
        let mut spans = vec![Vec::new(); winners.len()];
        for (row, &rtt) in best_at.chunks(rates.len()).zip(&rtts) {
            for (member, found) in intervals(&rates, row, winners.len(), rtt)
                .into_iter()
                .enumerate()
            {
                spans[member].extend(found);
            }
        }
        let mut members = Vec::with_capacity(winners.len());
        for (i, (winner, spans)) in winners.iter().zip(spans).enumerate() {
            let folder = format!("plan-{i}");
            let device_only = winner.split >= blocks;
            let (plan, latency): (SplitPlan, Breakdown) = if device_only {
                let evaluation = self.evaluator().device_only()?;
                (
                    self.device_only_plan(&evaluation, out.map(|o| o.join(&folder)))?,
                    evaluation.latency,
                )
            } else {
                let decision = self.evaluator().decision_of(winner)?;
                let evaluation = self.evaluator().evaluate(&decision)?;
                let score = reward.score(&evaluation);
                let dir = out.map(|o| o.join(&folder));
                (
                    self.finalize(&decision, score, dir.as_deref(), |_, _, _| {})?,
                    evaluation.latency,
                )
            };
            members.push(PlanSetMember {
                kind: if device_only {
                    "device-only".into()
                } else if winner.split == 0 {
                    "edge-only".into()
                } else {
                    format!("split {}", winner.split)
                },
                folder,
                digest: plan.digest(),
                remote: !device_only,
                device_s: latency.device + latency.encode,
                compute_s: latency.device + latency.encode + latency.decode + latency.edge,
                payload_bits: if device_only { 0 } else { winner.payload_bits },
                accuracy: winner.accuracy,
                test_accuracy: plan.test_accuracy,
                codec: winner.codec,
                intervals: spans,
            });
        }
        let set = PlanSet {
            rates_bps: rates,
            rtts_s: rtts,
            best_at,
            rtt_s: link.rtt_s,
            nominal_rate_bps: link.rate_bps,
            per_message_overhead_bytes: link.per_message_overhead_bytes,
            profiles: self.search().names.clone(),
            members,
        };
        if let Some(out) = out {
            set.save(&out.join(SET_FILE))?;
        }
        Ok(set)
    }

    /// The device-only plan, exported as the whole backbone (`device.cfnet`, no edge half).
    fn device_only_plan(
        &mut self,
        evaluation: &Evaluation,
        out: Option<PathBuf>,
    ) -> Result<SplitPlan, AutomlError> {
        let search = self.search();
        let test_accuracy = coinfer_split::train::evaluate(
            &search.model,
            &search.data.test,
            &search.norm,
            coinfer_split::train::EVAL_BATCH_SIZE,
            &search.backend,
        )?;
        let mut plan = SplitPlan {
            model: search.model.spec().name.clone(),
            backbone_digest: search.model.digest(),
            split: evaluation.split,
            pruned_blocks: Vec::new(),
            prune_ratios: Vec::new(),
            kept_channels: Vec::new(),
            codec: CodecId::Float32,
            payload_bits: 0,
            search_accuracy: evaluation.accuracy,
            test_accuracy: Some(test_accuracy),
            predicted: evaluation.latency,
            reward: self.reward().score(evaluation),
            profiles: search.names.clone(),
            normalization: search.norm.clone(),
            artifacts: None,
            recovery: coinfer_sparsity::PruneRecovery::None,
            fine_tuning: Vec::new(),
        };
        if let Some(out) = out {
            std::fs::create_dir_all(&out).map_err(AutomlError::io(&out))?;
            search.model.save(out.join("device.cfnet"))?;
            plan.artifacts = Some(PlanArtifacts {
                device: "device.cfnet".into(),
                edge: String::new(),
                codec: None,
                device_digest: search.model.digest(),
                edge_digest: String::new(),
            });
            plan.save(out.join("plan.json"))?;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_the_geometric_mean_of_neighbours() {
        let rates = [1e4, 1e5, 1e6, 1e7];
        let spans = intervals(&rates, &[0, 1, 1, 0], 2, 0.02);
        let b = (1e4f64 * 1e5).sqrt();
        let c = (1e6f64 * 1e7).sqrt();
        assert_eq!(
            spans[0],
            [
                RateInterval {
                    rtt_s: 0.02,
                    from_bps: 0.0,
                    to_bps: Some(b)
                },
                RateInterval {
                    rtt_s: 0.02,
                    from_bps: c,
                    to_bps: None
                }
            ]
        );
        assert_eq!(
            spans[1],
            [RateInterval {
                rtt_s: 0.02,
                from_bps: b,
                to_bps: Some(c)
            }]
        );
    }

    #[test]
    fn rate_grids_are_checked_and_sorted() {
        assert_eq!(checked_rates(&[1e6, 1e4, 1e6]).unwrap(), [1e4, 1e6]);
        for bad in [vec![], vec![0.0], vec![f64::NAN], vec![-1.0]] {
            let e = checked_rates(&bad).unwrap_err();
            assert!(e.to_string().contains("plan_set.rates_bps"), "{e}");
        }
        assert_eq!(
            checked_axis("rtt", &[0.03, 0.0], true).unwrap(),
            [0.0, 0.03]
        );
        assert!(checked_axis("rtt", &[-0.01], true).is_err());
    }
}
