//! [`SearchSession`]: a prepared search (codecs trained, evaluator ready) that runs the DDPG
//! agent, the baselines, and the fine-tuning and export of the chosen plan.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use coinfer_agent::Ddpg;
use coinfer_codec::SharedCodec;
use coinfer_data::ImageDataset;
use coinfer_split::train::{EVAL_BATCH_SIZE, evaluate_with};

use coinfer_sparsity::{Calibration, PruneRecovery};
use rayon::prelude::*;

use crate::AutomlError;
use crate::baselines::{Baseline, BaselineResult, BaselineSettings};
use crate::builder::CoInference;
use crate::checkpoint::{AGENT_DIR, resume, save_records};
use crate::codecs::{CodecProgress, build_codecs};
use crate::config::CheckedSearchConfig;
use crate::config::RERANK_SLACK;
use crate::env::{CoInferenceEnv, EpisodeRecord};
use crate::evaluator::{ConfidenceBasis, Evaluation, PairedDrop};
use crate::evaluator::{PlanEvaluator, ValidationSet};
use crate::finetune::{FineTuneProgress, ThreeStepConfig, ThreeStepOutcome, fine_tune};
use crate::observer::Phase;
use crate::plan::{PlanArtifacts, SplitPlan};
use crate::refine::{Refinement, refine};
use crate::report::{PhaseTimes, Reranked, SearchReport};
use crate::reward::Reward;
use crate::space::{Decision, SearchSpace};
use burn::prelude::Device;

impl CoInference {
    /// Builds the codec families (training the autoencoders, reported to the observer as
    /// [`Phase::Codecs`]) and the plan evaluator.
    pub fn prepare(&self) -> Result<SearchSession<'_>, AutomlError> {
        let start = Instant::now();
        let spec = self.model.spec().clone();
        let splits: Vec<usize> = spec
            .shapes()?
            .iter()
            .take(spec.blocks.len())
            .take_while(|s| !s.flat)
            .enumerate()
            .map(|(i, _)| i)
            .collect();
        let observer = &*self.observer;
        observer.started(Phase::Codecs, 0);
        let (families, bank) = build_codecs(
            &self.model,
            &splits,
            &self.train,
            &self.norm,
            self.config.codecs(),
            &self.backend,
            |p: &CodecProgress| {
                observer.advanced(
                    Phase::Codecs,
                    p.done as u64,
                    p.total as u64,
                    &format!(
                        "split {} r={} train acc {:.1}%",
                        p.split,
                        p.ratio,
                        100.0 * p.train_accuracy
                    ),
                );
            },
        )?;
        observer.finished(Phase::Codecs);
        let mut families = families.into_iter();
        let space = SearchSpace::new(&spec, self.config.max_prune, |_, _| {
            families.next().ok_or_else(|| AutomlError::InvalidConfig {
                field: "codecs",
                reason: "fewer codec families than split candidates".into(),
            })
        })?
        .with_prune_dead_zone(self.config.prune_dead_zone)?;
        let validation =
            ValidationSet::new(&self.validation, &self.norm, EVAL_BATCH_SIZE, &self.backend)?;
        let mut evaluator = PlanEvaluator::new(
            self.model.clone(),
            space,
            bank,
            self.latency.clone(),
            validation,
        )?;
        if self.config.recovery != PruneRecovery::None {
            let calibration = self.calibration(&self.train)?;
            evaluator = evaluator.with_recovery(self.config.recovery, calibration);
        }
        Ok(SearchSession {
            search: self,
            evaluator,
            train: self.train.clone(),
            tuned: Vec::new(),
            phases: PhaseTimes {
                training_s: self.setup_s[0],
                profiling_s: self.setup_s[1],
                codecs_s: start.elapsed().as_secs_f64(),
                ..PhaseTimes::default()
            },
        })
    }

    /// The calibration set of pruning recovery: a class-balanced sample of the training
    /// part (never the validation or test images), normalised as the network's inputs.
    /// Each class gives its share of `calibration_images`, or all it has when it is rarer (a
    /// tiny training part may lack some classes altogether).
    fn calibration(&self, train: &ImageDataset) -> Result<Calibration, AutomlError> {
        let present = train.class_counts().into_iter().filter(|&n| n > 0).count();
        if present == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "validation_images",
                reason: format!(
                    "{} leaves no training image to calibrate pruning recovery with",
                    self.config.validation_images
                ),
            });
        }
        let per_class = self.config.calibration_images.div_ceil(present);
        let sample = train.class_capped_subset(per_class, self.config.seed);
        let n = sample.len().min(self.config.calibration_images);
        let indices: Vec<usize> = (0..n).collect();
        let (images, _) = sample.batch(&indices, &self.norm, &self.backend)?;
        Ok(Calibration::new(&self.model.valid(), images)?)
    }
}

/// A prepared search: codecs trained, evaluator ready.
pub struct SearchSession<'a> {
    search: &'a CoInference,
    evaluator: PlanEvaluator,
    train: ImageDataset,
    /// Three-step fine-tunes already run by re-ranking (same decision, same config, so the
    /// same result): the answer reuses its own instead of training it again.
    tuned: Vec<(Decision, ThreeStepOutcome)>,
    phases: PhaseTimes,
}

/// The outcome of the agent's episodes.
#[derive(Debug, Clone)]
pub struct DdpgRun {
    /// Every episode, in order.
    pub records: Vec<EpisodeRecord>,
    /// Distinct plans the agent evaluated.
    pub evaluations: usize,
}

impl DdpgRun {
    /// The episode with the highest reward.
    pub fn best(&self) -> Option<&EpisodeRecord> {
        self.records
            .iter()
            .max_by(|a, b| a.reward.total_cmp(&b.reward))
    }
}

impl SearchSession<'_> {
    /// Wall time of each phase so far (codecs, search, baselines, fine-tuning).
    pub fn phases(&self) -> &PhaseTimes {
        &self.phases
    }

    /// The search this session runs.
    pub(crate) fn search(&self) -> &CoInference {
        self.search
    }

    /// The plan evaluator (space, cache, latency model).
    pub fn evaluator(&mut self) -> &mut PlanEvaluator {
        &mut self.evaluator
    }

    /// The reward plans are scored with.
    pub fn reward(&self) -> Reward {
        self.search.reward
    }

    /// The search's settings.
    pub fn config(&self) -> &CheckedSearchConfig {
        &self.search.config
    }

    /// The burn device everything runs on.
    pub fn backend(&self) -> &Device {
        &self.search.backend
    }

    /// The baselines' settings for this search, with `random_budget` distinct evaluations for
    /// random search (the agent's, for a fair comparison).
    pub fn baseline_settings(&self, random_budget: usize) -> BaselineSettings {
        BaselineSettings {
            random_budget,
            random_seed: self.search.config.seed,
            ..BaselineSettings::default()
        }
    }

    /// Runs the DDPG agent for the configured number of episodes.
    ///
    /// With `checkpoint = Some(dir)` the agent and every finished episode are saved to `dir`
    /// every 10 episodes and at the end, and a search started on a `dir` that holds a
    /// checkpoint resumes from it: nothing already evaluated is lost or re-run.
    pub fn run_ddpg(
        &mut self,
        checkpoint: Option<&Path>,
        mut on_episode: impl FnMut(&EpisodeRecord),
    ) -> Result<DdpgRun, AutomlError> {
        let start = Instant::now();
        let config = &self.search.config;
        self.evaluator.begin_session();
        let device = &self.search.backend;
        let (mut agent, mut previous) = match checkpoint {
            Some(dir) if dir.join(AGENT_DIR).exists() => resume(dir, device)?,
            _ => (
                Ddpg::with_config(config.ddpg().clone(), crate::env::STATE_DIM, device)?,
                Vec::new(),
            ),
        };
        previous.truncate(agent.episodes_done());
        self.evaluator
            .restore(previous.iter().map(|r| r.evaluation.clone()))?;
        for record in &previous {
            // Re-charge the session for plans evaluated before the interruption.
            self.evaluator.charge(&record.decision)?;
        }
        let mut env =
            CoInferenceEnv::with_records(&mut self.evaluator, self.search.reward, previous)?;
        while agent.episodes_done() < config.episodes {
            agent.run_episode(&mut env)?;
            let record = env.records().last().expect("an episode just finished");
            on_episode(record);
            let done = agent.episodes_done();
            if let Some(dir) = checkpoint
                && (done % 10 == 0 || done == config.episodes)
            {
                save_records(dir, env.records())?;
                agent.save_checkpoint(dir.join(AGENT_DIR))?;
            }
        }
        let evaluations = env.evaluations();
        let records = env.into_records();
        self.phases.search_s += start.elapsed().as_secs_f64();
        Ok(DdpgRun {
            records,
            evaluations,
        })
    }

    /// Runs `baselines` (usually [`Baseline::ALL`]) on the same evaluator and reward, in
    /// order; `on_baseline` is called as each starts.
    pub fn baselines(
        &mut self,
        baselines: &[Baseline],
        settings: &BaselineSettings,
        mut on_baseline: impl FnMut(Baseline),
    ) -> Result<Vec<BaselineResult>, AutomlError> {
        let start = Instant::now();
        let reward = self.search.reward;
        let results = baselines
            .iter()
            .map(|&baseline| {
                on_baseline(baseline);
                baseline.run(&mut self.evaluator, &reward, settings)
            })
            .collect();
        self.phases.baselines_s += start.elapsed().as_secs_f64();
        results
    }

    /// Fine-tunes the best plan of `run`, measures its test accuracy with the real codec,
    /// exports it to `out` (when given) and assembles the report.
    pub fn report(
        &mut self,
        run: DdpgRun,
        baselines: Vec<BaselineResult>,
        out: Option<&Path>,
    ) -> Result<SearchReport, AutomlError> {
        let refinement = self.answer(&run.records, false)?;
        let reward = self.search.reward;
        let decision = self.evaluator.decision_of(&refinement.best)?;
        let score = reward.score(&refinement.best);
        let (decision, score, reranked, tuned) = self.rerank(decision, score)?;
        let confidence = Some(match tuned {
            Some(paired) => reward.confidence_of(&paired, ConfidenceBasis::FineTuned),
            None => reward.confidence_of(&refinement.best.paired, ConfidenceBasis::Search),
        });
        let plan = self.finalize(&decision, score, out, |_, _, _| {})?;
        let search = self.search;
        let norm = &search.norm;
        let backbone_test_accuracy = coinfer_split::train::evaluate(
            &search.model,
            &search.data.test,
            norm,
            EVAL_BATCH_SIZE,
            &search.backend,
        )?;
        // The plans the search evaluated, taken before the rate–accuracy view scores every
        // unpruned codec (which the search itself did not ask for).
        let evaluated = self.evaluator.evaluated().into_iter().cloned().collect();
        let rate_accuracy = crate::rate::rate_accuracy(&mut self.evaluator, &reranked)?;
        Ok(SearchReport {
            plan,
            episodes: run.records,
            evaluations: run.evaluations,
            evaluated,
            baselines,
            backbone_accuracy: self.evaluator.backbone_accuracy()?,
            backbone_test_accuracy,
            seconds: self.phases.session_s(),
            phases: self.phases.clone(),
            data: search.data_label.clone(),
            classes: search.class_names.clone(),
            notes: search.notes.clone(),
            reranked,
            refinement: Some(refinement),
            confidence,
            rate_accuracy,
        })
    }

    /// The search's answer from the agent's episodes: the best plan, under the reward, of the
    /// agent's plans and the trivial ones — the raw input sent with every input codec and, with
    /// `with_device_only`, device-only (outside the plan space: nothing to deploy on the
    /// edge) — refined by local search ([`crate::refine`]) from the best
    /// `config.refine.starts` of them. The trivial plans cost one (cached) evaluation each;
    /// without them the answer could be wrong exactly where co-inference does not pay.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] when there is no episode.
    pub fn answer(
        &mut self,
        records: &[EpisodeRecord],
        with_device_only: bool,
    ) -> Result<Refinement, AutomlError> {
        if records.is_empty() {
            return Err(AutomlError::InvalidConfig {
                field: "episodes",
                reason: "the search ran no episode".into(),
            });
        }
        // Charge a fresh session with the agent's plans, so that the refinement's budget and
        // its count are the plans beyond the agent's (whoever evaluated them first).
        self.evaluator.begin_session();
        for record in records {
            self.evaluator.charge(&record.decision)?;
        }
        let mut starts: Vec<Evaluation> = records.iter().map(|r| r.evaluation.clone()).collect();
        for decision in crate::baselines::input_codecs(&self.evaluator, |_| true)? {
            starts.push(self.evaluator.evaluate(&decision)?);
        }
        if with_device_only {
            starts.push(self.evaluator.device_only()?);
        }
        let start = Instant::now();
        let refinement = refine(
            &mut self.evaluator,
            &self.search.reward,
            &starts,
            self.search.config.refine(),
        )?;
        self.phases.search_s += start.elapsed().as_secs_f64();
        Ok(refinement)
    }

    /// The three-step fine-tune of a decision's pruned network and codec, with distillation
    /// from the dense backbone.
    fn three_steps(
        &self,
        decision: &Decision,
        config: &ThreeStepConfig,
        progress: impl FnMut(&FineTuneProgress),
    ) -> Result<ThreeStepOutcome, AutomlError> {
        let search = self.search;
        let pruned = self.evaluator.pruned_network(decision)?;
        let split = self.evaluator.space().candidates[decision.candidate].split;
        let autoencoder = self
            .evaluator
            .bank()
            .codec(decision.candidate, decision.codec)
            .and_then(|c| c.autoencoder().cloned());
        crate::finetune::three_steps_checked(
            &search.model,
            &pruned,
            split,
            self.evaluator.space().codec_id(decision),
            autoencoder.as_ref(),
            &self.train,
            &search.data.test,
            &search.norm,
            config,
            &search.backend,
            progress,
        )
    }

    /// The three-step fine-tune every plan with a device half gets (re-ranked plans and the
    /// answer alike): [`SearchConfig::three_step`](crate::SearchConfig::three_step) with the
    /// batch size and seed of `finetune`.
    fn three_step_config(&self) -> ThreeStepConfig {
        let config = &self.search.config;
        ThreeStepConfig {
            batch_size: config.finetune.batch_size,
            seed: config.finetune.seed,
            ..config.three_step.clone()
        }
    }

    /// Re-ranking (a guard against validation noise and against scoring plans before
    /// fine-tuning): the [`rerank`](crate::SearchConfig::rerank) fastest distinct plans that
    /// are faster than `decision`, have a device half and drop at most
    /// [`RERANK_SLACK`](crate::RERANK_SLACK) beyond the tolerance get the three-step
    /// fine-tune the answer would get; the fastest whose *fine-tuned* validation accuracy meets the
    /// reward replaces `decision`. Returns the choice, its score, what was tried and, when a
    /// re-ranked plan replaced `decision`, its fine-tuned paired comparison.
    fn rerank(
        &mut self,
        decision: Decision,
        score: f32,
    ) -> Result<(Decision, f32, Vec<Reranked>, Option<PairedDrop>), AutomlError> {
        let search = self.search;
        let reward = search.reward;
        let Reward::FastestWithinTolerance {
            tolerance,
            confidence,
        } = reward
        else {
            return Ok((decision, score, Vec::new(), None));
        };
        if search.config.rerank == 0 || search.config.finetune.epochs == 0 {
            return Ok((decision, score, Vec::new(), None));
        }
        let start = Instant::now();
        let current = self.evaluator.evaluate(&decision)?.latency.total;
        let mut candidates: Vec<Evaluation> = self
            .evaluator
            .evaluated()
            .into_iter()
            .filter(|e| {
                e.split > 0
                    && e.latency.total < current
                    && e.paired.mean() <= f64::from(tolerance) + RERANK_SLACK
            })
            .cloned()
            .collect();
        candidates.sort_by(|a, b| a.latency.total.total_cmp(&b.latency.total));
        candidates.truncate(search.config.rerank);
        let config = self.three_step_config();
        // The candidates are fine-tuned in parallel over the current rayon pool (each is
        // independent and trains on thread-count-independent kernels), then judged in order.
        let this = &*self;
        let tuned = candidates
            .par_iter()
            .map(|evaluation| {
                let candidate = this.evaluator.decision_of(evaluation)?;
                let outcome = this.three_steps(&candidate, &config, |_| {})?;
                let codec: SharedCodec = match &outcome.autoencoder {
                    Some(ae) => Arc::new(ae.clone()),
                    None => coinfer_codec::fixed_codec(evaluation.codec)?,
                };
                let (accuracy, paired) = this.evaluator.score_model(|images| {
                    let feature = outcome.device_half.forward(images)?;
                    let received = codec.roundtrip(feature)?;
                    Ok(outcome.edge_half.logits(received)?)
                })?;
                Ok((candidate, accuracy, paired, outcome))
            })
            .collect::<Result<Vec<_>, AutomlError>>()?;
        let mut tried = Vec::new();
        let mut best = (decision, score, None);
        for (evaluation, (candidate, accuracy, paired, outcome)) in candidates.iter().zip(tuned) {
            self.tuned.push((candidate.clone(), outcome));
            let tuned_score = reward.score_parts(accuracy, evaluation.latency.total, &paired);
            tried.push(Reranked {
                split: evaluation.split,
                codec: evaluation.codec,
                latency_s: evaluation.latency.total,
                accuracy_before: evaluation.accuracy,
                accuracy_after: accuracy,
                feasible: paired.upper_bound(confidence) <= f64::from(tolerance),
                confidence: Some(reward.confidence_of(&paired, ConfidenceBasis::FineTuned)),
            });
            if tuned_score > best.1 {
                best = (candidate, tuned_score, Some(paired));
            }
        }
        self.phases.finetune_s += start.elapsed().as_secs_f64();
        Ok((best.0, best.1, tried, best.2))
    }

    /// Fine-tunes a decision's device half (and autoencoder), measures test accuracy with the
    /// real codec, and, with `out`, saves device half, edge half, codec and `plan.json` there.
    /// Its wall time counts in [`PhaseTimes::finetune_s`].
    pub fn finalize(
        &mut self,
        decision: &Decision,
        reward: f32,
        out: Option<&Path>,
        progress: impl FnMut(usize, usize, f32),
    ) -> Result<SplitPlan, AutomlError> {
        let start = Instant::now();
        let search = self.search;
        let evaluation = self.evaluator.evaluate(decision)?;
        let pruned = self.evaluator.pruned_network(decision)?;
        let candidate = &self.evaluator.space().candidates[decision.candidate];
        let split = candidate.split;
        let pruned_blocks: Vec<usize> = candidate.prunable.iter().map(|l| l.block).collect();
        let autoencoder = self
            .evaluator
            .bank()
            .codec(decision.candidate, decision.codec)
            .and_then(|c| c.autoencoder().cloned());
        // Three-step fine-tuning (device half, codec, then jointly with the edge half, with
        // distillation from the dense backbone) wherever there is a device half; the raw
        // input (split 0) has nothing to train.
        let (device_half, edge_half, tuned_ae, steps) =
            if split > 0 && search.config.finetune.epochs > 0 {
                let reused = self
                    .tuned
                    .iter()
                    .position(|(tuned, _)| tuned == decision)
                    .map(|index| self.tuned.swap_remove(index).1);
                let outcome = match reused {
                    Some(outcome) => outcome,
                    None => {
                        let config = self.three_step_config();
                        let mut progress = progress;
                        self.three_steps(decision, &config, |p| progress(p.done, p.total, p.loss))?
                    }
                };
                (
                    outcome.device_half,
                    outcome.edge_half,
                    outcome.autoencoder,
                    outcome.steps,
                )
            } else {
                let (device_half, tuned_ae) = fine_tune(
                    &pruned,
                    split,
                    evaluation.codec,
                    autoencoder.as_ref(),
                    &self.train,
                    &search.norm,
                    &search.config.finetune,
                    &search.backend,
                    progress,
                )?;
                let (_, edge_half) = pruned.split(split)?;
                (device_half, edge_half, tuned_ae, Vec::new())
            };
        let codec: SharedCodec = match (&tuned_ae, evaluation.codec) {
            (Some(ae), _) => Arc::new(ae.clone()),
            (None, id) => crate::input_codecs::codec_for_input(id, &search.norm)?,
        };
        let test_accuracy = evaluate_with(
            &device_half,
            &search.data.test,
            &search.norm,
            EVAL_BATCH_SIZE,
            &search.backend,
            |device_half, images| {
                let feature = device_half.forward(images)?;
                let received = codec
                    .roundtrip(feature)
                    .map_err(|e| coinfer_split::SplitError::Readback(e.to_string()))?;
                edge_half.logits(received)
            },
        )?;
        let mut plan = SplitPlan {
            model: search.model.spec().name.clone(),
            backbone_digest: search.model.digest(),
            split,
            pruned_blocks,
            prune_ratios: evaluation.prune_ratios.clone(),
            kept_channels: evaluation.kept.clone(),
            codec: evaluation.codec,
            payload_bits: evaluation.payload_bits,
            search_accuracy: evaluation.accuracy,
            test_accuracy: Some(test_accuracy),
            predicted: evaluation.latency,
            reward,
            profiles: search.names.clone(),
            normalization: search.norm.clone(),
            artifacts: None,
            recovery: self.evaluator.recovery(),
            fine_tuning: steps,
        };
        if let Some(out) = out {
            std::fs::create_dir_all(out).map_err(AutomlError::io(out))?;
            device_half.save(out.join("device.cfnet"))?;
            edge_half.save(out.join("edge.cfnet"))?;
            let codec_file = match &tuned_ae {
                Some(ae) => {
                    ae.save(&out.join("codec.bpk"))?;
                    Some("codec.bpk".to_string())
                }
                None => None,
            };
            plan.artifacts = Some(PlanArtifacts {
                device: "device.cfnet".into(),
                edge: "edge.cfnet".into(),
                codec: codec_file,
                device_digest: device_half.digest(),
                edge_digest: edge_half.digest(),
            });
            plan.save(out.join("plan.json"))?;
        }
        self.phases.finetune_s += start.elapsed().as_secs_f64();
        Ok(plan)
    }

    /// Test accuracy of any evaluated decision without fine-tuning (for baselines).
    pub fn test_accuracy(&mut self, decision: &Decision) -> Result<f32, AutomlError> {
        let search = self.search;
        let pruned = self.evaluator.pruned_network(decision)?;
        let split = self.evaluator.space().candidates[decision.candidate].split;
        let codec = self
            .evaluator
            .bank()
            .codec(decision.candidate, decision.codec)
            .ok_or_else(|| AutomlError::InvalidDecision("no such codec".into()))?
            .codec();
        let (device_half, edge_half) = pruned.split(split)?;
        Ok(evaluate_with(
            &device_half,
            &search.data.test,
            &search.norm,
            EVAL_BATCH_SIZE,
            &search.backend,
            |d, images| {
                let received = codec
                    .roundtrip(d.forward(images)?)
                    .map_err(|e| coinfer_split::SplitError::Readback(e.to_string()))?;
                edge_half.logits(received)
            },
        )?)
    }
}
