//! The main job, end to end: what `coinfer search` and `coinfer sweep` run, and what a
//! program embedding coinfer gets from [`CoInference::search`] and [`CoInference::sweep`].
//!
//! Codecs → DDPG search (checkpointed) → baselines → the edge-only plan exported → re-ranking
//! and three-step fine-tuning of the answer → report (JSON, Markdown, codec table, plots) →
//! publish. With an output folder everything is written into its staging sibling and renamed
//! over it only at the end.

use std::time::Instant;

use crate::AutomlError;
use crate::baselines::{Baseline, BaselineResult, BaselineSettings};
use crate::builder::CoInference;
use crate::observer::Phase;
use crate::plots;
use crate::race::{CheckedRaceConfig, RaceReport, race, race_markdown};
use crate::report::{SearchReport, codec_table};
use crate::session::{DdpgRun, SearchSession};
use crate::sweep::{SweepGrid, SweepReport, load_sweep, save_sweep, sweep_markdown};

impl CoInference {
    /// Runs the whole search: codecs, the agent, the baselines (unless
    /// [`SearchConfig::baselines`](crate::SearchConfig::baselines) is off), re-ranking and
    /// fine-tuning of the answer; with an [output](crate::CoInferenceBuilder::output) folder
    /// it writes `plan.json`, `report.json`, `report.md`, `codecs.md`, the plots, the deployable
    /// weights (and the edge-only plan's, in `edge-only/`) and publishes them.
    pub fn search(&self) -> Result<SearchReport, AutomlError> {
        let start = Instant::now();
        let mut session = self.prepare()?;
        if let Some(out) = &self.output {
            self.table
                .save(out.staging().join("profile-this-machine.json"))?;
            out.write("codecs.md", &codec_table(session.evaluator())?)?;
        }
        let run = self.run_agent(&mut session)?;
        let baselines = self.run_baselines(&mut session, run.evaluations)?;
        if let Some(out) = &self.output {
            // The edge-only plans (the raw image, the paper's; the best image file), deployable
            // too, for runtime comparisons.
            for (baseline, folder) in [
                (Baseline::EdgeOnlyRaw, "edge-only"),
                (Baseline::EdgeOnlyImage, "edge-only-image"),
            ] {
                if let Some(result) = baselines
                    .iter()
                    .find(|b| Baseline::from_name(&b.name) == Some(baseline))
                {
                    let decision = session.evaluator().decision_of(&result.best)?;
                    let dir = out.staging().join(folder);
                    session.finalize(&decision, result.reward, Some(&dir), |_, _, _| {})?;
                }
            }
        }
        self.observer.note(
            "re-ranking the fastest plans near the tolerance by their fine-tuned accuracy, then \
             fine-tuning the chosen plan (three steps)...",
        );
        let staging = self.output.as_ref().map(|o| o.staging().to_path_buf());
        let report = session.report(run, baselines, staging.as_deref())?;
        if let Some(out) = &self.output {
            let json = serde_json::to_string_pretty(&report).map_err(|e| AutomlError::Json {
                path: out.staging().join("report.json"),
                reason: e.to_string(),
            })?;
            out.write("report.json", &json)?;
            let mut md = report.to_markdown();
            md.push_str(&format!(
                "\nTotal wall time: {:.1} s (backbone and profiling: {:.1} s).\n",
                start.elapsed().as_secs_f64() + self.setup_s[0] + self.setup_s[1],
                self.setup_s[0] + self.setup_s[1]
            ));
            out.write("report.md", &md)?;
            plots::draw_search(&report, out.staging())?;
            out.publish()?;
            self.observer
                .note(&format!("results in {}", out.published().display()));
        }
        Ok(report)
    }

    /// The agent's episodes, checkpointed into the output folder when there is one.
    fn run_agent(&self, session: &mut SearchSession<'_>) -> Result<DdpgRun, AutomlError> {
        let observer = &*self.observer;
        let total = session.config().episodes as u64;
        observer.started(Phase::Search, total);
        let mut best = f32::NEG_INFINITY;
        if let Some(resumed) = &self.resumed {
            best = resumed.best_reward.unwrap_or(best);
            observer.advanced(
                Phase::Search,
                resumed.episodes_done as u64,
                total,
                &format!(
                    "best reward {best:.4} (resumed after episode {})",
                    resumed.episodes_done
                ),
            );
        }
        let checkpoint = self.output.as_ref().map(|o| o.checkpoint());
        let run = session.run_ddpg(checkpoint.as_deref(), |record| {
            best = best.max(record.reward);
            let e = &record.evaluation;
            observer.advanced(
                Phase::Search,
                record.episode as u64 + 1,
                total,
                &format!(
                    "best reward {best:.4} (last: split {} {} acc {:.1}% {:.2} ms)",
                    e.split,
                    e.codec,
                    100.0 * e.accuracy,
                    e.latency.total * 1e3
                ),
            );
        })?;
        observer.finished(Phase::Search);
        observer.note(&format!(
            "DDPG: {} episodes, {} distinct plans evaluated",
            run.records.len(),
            run.evaluations
        ));
        Ok(run)
    }

    /// Every baseline (the exhaustive grid only with levels > 0), random search with the
    /// agent's number of distinct evaluations.
    fn run_baselines(
        &self,
        session: &mut SearchSession<'_>,
        agent_evaluations: usize,
    ) -> Result<Vec<BaselineResult>, AutomlError> {
        if !self.config.baselines {
            return Ok(Vec::new());
        }
        let levels = self.config.exhaustive_levels;
        let which: Vec<Baseline> = Baseline::ALL
            .into_iter()
            .filter(|b| *b != Baseline::ExhaustiveGrid || levels > 0)
            .collect();
        let settings = BaselineSettings {
            exhaustive_levels: levels,
            ..session.baseline_settings(agent_evaluations.max(1))
        };
        let observer = &*self.observer;
        let total = which.len() as u64;
        observer.started(Phase::Baselines, total);
        let mut done = 0;
        let results = session.baselines(&which, &settings, |b| {
            observer.advanced(Phase::Baselines, done, total, b.name());
            done += 1;
        })?;
        observer.finished(Phase::Baselines);
        Ok(results)
    }

    /// The regime map: the agent and every baseline at every point of `grid` (see
    /// [`SearchSession::sweep`]), `episodes_per_point` agent episodes each. With an output
    /// folder it writes `sweep.json`, `sweep.md` and the three plots and publishes them; with
    /// [resume](crate::CoInferenceBuilder::resume) it keeps the points of the published
    /// `sweep.json` of the same grid.
    pub fn sweep(
        &self,
        grid: &SweepGrid,
        episodes_per_point: usize,
    ) -> Result<SweepReport, AutomlError> {
        let start = Instant::now();
        let observer = &*self.observer;
        let previous = match &self.output {
            Some(out) if self.resume => {
                let path = out.published().join("sweep.json");
                if path.exists() {
                    let previous = load_sweep(&path)?;
                    observer.note(&format!(
                        "resuming: {} points already done",
                        previous.points.len()
                    ));
                    Some(previous)
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut session = self.prepare()?;
        if let Some(out) = &self.output {
            self.table
                .save(out.staging().join("profile-this-machine.json"))?;
            out.write("codecs.md", &codec_table(session.evaluator())?)?;
        }
        let total = grid.points().len() as u64;
        observer.started(Phase::Sweep, total);
        let report = session.sweep(grid, episodes_per_point, previous, |done, _, point| {
            observer.advanced(
                Phase::Sweep,
                done as u64,
                total,
                &format!(
                    "{:.0} kbit/s {:.2} GFLOP/s {:.0} ms → {} ({:.1} ms)",
                    point.rate_bps / 1e3,
                    point.device_flops_per_s / 1e9,
                    point.rtt_s * 1e3,
                    point.searched.kind,
                    point.searched.latency_s * 1e3
                ),
            );
        })?;
        observer.finished(Phase::Sweep);
        if let Some(out) = &self.output {
            save_sweep(&report, &out.staging().join("sweep.json"))?;
            let mut md = format!(
                "# Regime sweep\n\n{} points, {} agent episodes each, {} distinct plans run on \
                 the validation set, backbone validation accuracy {:.2} %, reward {:?}.\n\n",
                report.points.len(),
                report.episodes_per_point,
                report.distinct_plans,
                100.0 * report.backbone_accuracy,
                report.reward
            );
            md.push_str(&sweep_markdown(&report));
            md.push_str(&format!(
                "\nWall time of the sweep: {:.1} s (backbone and profiling before it: {:.1} s).\n",
                start.elapsed().as_secs_f64(),
                self.setup_s[0] + self.setup_s[1]
            ));
            out.write("sweep.md", &md)?;
            plots::draw_sweep(&report, out.staging())?;
            out.publish()?;
            observer.note(&format!(
                "sweep written to {} (sweep.json, sweep.md, regime.svg, latency-vs-rate.svg, \
                 speedup.svg)",
                out.published().display()
            ));
        }
        Ok(report)
    }

    /// A plan set over `rates_bps` × `rtts_s` (see [`crate::planset`]; no RTT: the search's):
    /// the codecs, the agent (its episodes checkpointed), then the best plan at every grid
    /// point, re-scored with the latency model with the search's device and edge. With an output folder every member is
    /// fine-tuned and exported (`plan-<i>/`) with `set.json`, and published.
    pub fn plan_set(
        &self,
        rates_bps: &[f64],
        rtts_s: &[f64],
    ) -> Result<crate::planset::PlanSet, AutomlError> {
        let mut session = self.prepare()?;
        let run = self.run_agent(&mut session)?;
        self.observer.note(
            "scoring every plan at every rate, refining, then fine-tuning and exporting each \
             plan of the set...",
        );
        let staging = self.output.as_ref().map(|o| o.staging().to_path_buf());
        let set = session.plan_set(&run.records, rates_bps, rtts_s, staging.as_deref())?;
        if let Some(out) = &self.output {
            out.publish()?;
            self.observer.note(&format!(
                "plan set of {} plans in {}",
                set.members.len(),
                out.published().display()
            ));
        }
        Ok(set)
    }

    /// The race (see [`crate::race`]): the agent, the agent with refinement, random search,
    /// the uniform grid and CMA-ES at `config`'s budgets and seeds, on this search's evaluator
    /// and reward, against the best plan a larger search finds. With an output folder it
    /// writes `race.json`, `race.md`, `race.svg` and `codecs.md` and publishes them.
    pub fn race(&self, config: &CheckedRaceConfig) -> Result<RaceReport, AutomlError> {
        let observer = &*self.observer;
        let mut session = self.prepare()?;
        let total = (config.seeds * 4 + 1) as u64;
        observer.started(Phase::Race, total);
        let reward = self.reward;
        let report = race(
            session.evaluator(),
            &reward,
            &self.backend,
            &self.config,
            config,
            |done, _, what| {
                observer.advanced(Phase::Race, done as u64, total, what);
            },
        )?;
        observer.finished(Phase::Race);
        if let Some(out) = &self.output {
            out.write("codecs.md", &codec_table(session.evaluator())?)?;
            let json = serde_json::to_string_pretty(&report).map_err(|e| AutomlError::Json {
                path: out.staging().join("race.json"),
                reason: e.to_string(),
            })?;
            out.write("race.json", &json)?;
            let md = format!(
                "# Race\n\n{}\nBackbone and profiling before it: {:.1} s.\n",
                race_markdown(&report),
                self.setup_s[0] + self.setup_s[1]
            );
            out.write("race.md", &md)?;
            plots::draw_race(&report, out.staging())?;
            out.publish()?;
            observer.note(&format!(
                "race written to {} (race.json, race.md, race.svg)",
                out.published().display()
            ));
        }
        Ok(report)
    }

    /// The default sweep grid with this search's edge profile (10 rates from 10 kbit/s to
    /// 100 Mbit/s, 4 device speeds, 3 RTTs).
    pub fn default_sweep_grid(&self) -> Result<SweepGrid, AutomlError> {
        Ok(SweepGrid::default_grid(
            self.edge_source.resolve(Some(&self.table))?,
        ))
    }
}
