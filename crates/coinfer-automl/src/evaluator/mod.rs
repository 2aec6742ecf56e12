//! Scoring a [`Decision`]: prune the device blocks, split, run device half → codec → edge half
//! on a fixed validation subset, predict the latency; every result cached by plan.
//!
//! One file per role: the plan cache and scoring here, the codec bank (`bank.rs`), the paired
//! comparison with the backbone (`paired.rs`), the batched validation images
//! (`validation.rs`).

mod bank;
mod paired;
mod validation;

pub use bank::{BankCodec, CodecBank, codec_compute};
pub use paired::{ConfidenceBasis, DecisionConfidence, PairedDrop, validation_power};
pub use validation::ValidationSet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use coinfer_codec::CodecId;
use coinfer_profile::{Breakdown, LatencyModel, PlanCost};
use coinfer_sparsity::{
    Calibration, PruneRatios, PruneRecovery, prune, prune_spec, prune_with_recovery,
};
use coinfer_split::{NetSpec, Network, inference::InferenceNetwork};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::space::{Decision, SearchSpace};

/// The score of one plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Split point.
    pub split: usize,
    /// Pruning ratios of the split's prunable layers.
    pub prune_ratios: Vec<f32>,
    /// Filters kept by each of those layers.
    pub kept: Vec<usize>,
    /// The codec.
    pub codec: CodecId,
    /// Payload bits per sample.
    pub payload_bits: u64,
    /// Top-1 accuracy on the validation subset (no fine-tuning).
    pub accuracy: f32,
    /// Paired comparison with the backbone on the same validation images.
    #[serde(default)]
    pub paired: PairedDrop,
    /// Predicted latency.
    pub latency: Breakdown,
    /// FLOPs run on the device (pruned blocks before the split).
    pub device_flops: u64,
}

/// A pruned network of the space: its candidate (split) and kept widths.
type NetworkKey = (usize, Vec<usize>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey {
    candidate: usize,
    kept: Vec<usize>,
    codec: usize,
}

/// Most scalars of device-half features [`PreparedHalves`] keeps for the validation set
/// (32 Mi floats, 128 MiB: `resnet-mini`'s largest cut on 1,000 images is 6.3 Mi); larger
/// features are recomputed per codec instead.
const MAX_CACHED_FEATURES: usize = 1 << 25;

/// A pruned (and repaired) network's halves at one split, folded, with the device half's
/// output on every validation batch: everything a plan's accuracy needs except its codec.
/// Plans that differ only in their codec (every baseline enumerates all codecs of one pruned
/// network in a row) share it, so pruning, least-squares recovery, folding and the device
/// half run once for them.
struct PreparedHalves {
    /// The candidate and kept widths it was built for.
    key: NetworkKey,
    device_half: InferenceNetwork,
    edge_half: InferenceNetwork,
    /// The device half's output per validation batch, unless too large to keep.
    features: Option<Vec<Tensor<4>>>,
}

/// Scores decisions of a [`SearchSpace`] on a trained backbone, caching by plan.
pub struct PlanEvaluator {
    backbone: Network,
    space: SearchSpace,
    bank: CodecBank,
    latency: LatencyModel,
    validation: ValidationSet,
    backbone_correct: Vec<bool>,
    recovery: PruneRecovery,
    calibration: Option<Calibration>,
    cache: HashMap<PlanKey, Evaluation>,
    order: Vec<PlanKey>,
    lookups: usize,
    session: HashSet<PlanKey>,
    /// The last decision's halves (see [`PreparedHalves`]).
    prepared: Mutex<Option<Arc<PreparedHalves>>>,
}

impl PlanEvaluator {
    /// Checks that the bank fits the space (the latency model is checked when it is made).
    pub fn new(
        backbone: Network,
        space: SearchSpace,
        bank: CodecBank,
        latency: LatencyModel,
        validation: ValidationSet,
    ) -> Result<PlanEvaluator, AutomlError> {
        bank.check_matches(&space)?;
        let backbone = backbone.valid();
        let backbone_correct = correctness(&validation, |images| Ok(backbone.logits(images)?))?;
        Ok(PlanEvaluator {
            backbone,
            space,
            bank,
            latency,
            validation,
            backbone_correct,
            recovery: PruneRecovery::None,
            calibration: None,
            cache: HashMap::new(),
            order: Vec::new(),
            lookups: 0,
            session: HashSet::new(),
            prepared: Mutex::new(None),
        })
    }

    /// Repairs every pruned plan with `recovery` fitted on `calibration` (made from training
    /// images for this evaluator's backbone) before it is scored. Without it, plans are scored
    /// as pruned ([`PruneRecovery::None`]).
    pub fn with_recovery(mut self, recovery: PruneRecovery, calibration: Calibration) -> Self {
        self.recovery = recovery;
        self.calibration = Some(calibration);
        self
    }

    /// How pruned plans are repaired before they are scored.
    pub fn recovery(&self) -> PruneRecovery {
        match self.calibration {
            Some(_) => self.recovery,
            None => PruneRecovery::None,
        }
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// The latency model.
    pub fn latency_model(&self) -> &LatencyModel {
        &self.latency
    }

    /// Replaces the latency model (another device, link or edge) and re-predicts the latency
    /// of every cached plan. Accuracies do not depend on the profiles, so the cache stays:
    /// a sweep over profiles runs each plan on the validation set once.
    pub fn set_latency_model(&mut self, latency: LatencyModel) -> Result<(), AutomlError> {
        self.latency = latency;
        let keys: Vec<PlanKey> = self.order.clone();
        for key in keys {
            let decision = Decision {
                candidate: key.candidate,
                prune_ratios: self.cache[&key].prune_ratios.clone(),
                codec: key.codec,
            };
            let (latency, _, _) = self.predict(&decision)?;
            if let Some(entry) = self.cache.get_mut(&key) {
                entry.latency = latency;
            }
        }
        Ok(())
    }

    /// The (unpruned, trained) backbone.
    pub fn backbone(&self) -> &Network {
        &self.backbone
    }

    /// Number of validation images every plan is scored on.
    pub fn validation_images(&self) -> usize {
        self.validation.len()
    }

    /// The codec bank.
    pub fn bank(&self) -> &CodecBank {
        &self.bank
    }

    /// Number of distinct plans evaluated (cache misses): the search's real cost.
    pub fn evaluations(&self) -> usize {
        self.order.len()
    }

    /// Number of evaluation requests, cache hits included.
    pub fn lookups(&self) -> usize {
        self.lookups
    }

    /// Every distinct plan evaluated so far, in evaluation order.
    pub fn evaluated(&self) -> Vec<&Evaluation> {
        self.order.iter().map(|k| &self.cache[k]).collect()
    }

    fn key_of(&self, decision: &Decision) -> PlanKey {
        PlanKey {
            candidate: decision.candidate,
            kept: self.space.kept(decision),
            codec: decision.codec,
        }
    }

    /// The decision behind an evaluation of this space (its split, ratios and codec).
    pub fn decision_of(&self, evaluation: &Evaluation) -> Result<Decision, AutomlError> {
        let candidate = self
            .space
            .candidates
            .iter()
            .position(|c| c.split == evaluation.split)
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!(
                    "split {} is not a candidate",
                    evaluation.split
                ))
            })?;
        let codec = self.space.candidates[candidate]
            .family
            .entries
            .iter()
            .position(|e| e.id == evaluation.codec)
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!(
                    "codec {} is not offered at split {}",
                    evaluation.codec, evaluation.split
                ))
            })?;
        let decision = Decision {
            candidate,
            prune_ratios: evaluation.prune_ratios.clone(),
            codec,
        };
        self.space.check(&decision)?;
        Ok(decision)
    }

    /// Puts evaluations made earlier (e.g. before an interrupted search) back into the
    /// cache, so that they are not run again.
    pub fn restore(
        &mut self,
        evaluations: impl IntoIterator<Item = Evaluation>,
    ) -> Result<(), AutomlError> {
        for evaluation in evaluations {
            let decision = self.decision_of(&evaluation)?;
            let key = self.key_of(&decision);
            if !self.cache.contains_key(&key) {
                self.order.push(key.clone());
                self.cache.insert(key, evaluation);
            }
        }
        Ok(())
    }

    /// Counts `decision` as evaluated in the current session (for plans restored from a
    /// checkpoint).
    pub fn charge(&mut self, decision: &Decision) -> Result<(), AutomlError> {
        self.space.check(decision)?;
        let key = self.key_of(decision);
        self.session.insert(key);
        Ok(())
    }

    /// Starts counting the distinct plans one search method asks for. The cache is shared
    /// between methods (a plan is never run twice), but each method is charged for every
    /// distinct plan it evaluates, as if it had run alone.
    pub fn begin_session(&mut self) {
        self.session.clear();
    }

    /// Distinct plans evaluated since [`begin_session`](Self::begin_session).
    pub fn session_evaluations(&self) -> usize {
        self.session.len()
    }

    fn ratios_by_block(&self, decision: &Decision) -> PruneRatios {
        let candidate = &self.space.candidates[decision.candidate];
        let map: BTreeMap<usize, f32> = candidate
            .prunable
            .iter()
            .zip(&decision.prune_ratios)
            .filter(|(_, r)| **r > 0.0)
            .map(|(layer, &r)| (layer.block, r))
            .collect();
        PruneRatios::ByBlock(map)
    }

    /// The pruned whole network a decision runs (device blocks pruned, edge blocks intact).
    pub fn pruned_network(&self, decision: &Decision) -> Result<Network, AutomlError> {
        self.space.check(decision)?;
        let ratios = self.ratios_by_block(decision);
        if matches!(&ratios, PruneRatios::ByBlock(m) if m.is_empty()) {
            return Ok(self.backbone.clone());
        }
        Ok(match &self.calibration {
            Some(calibration) => {
                prune_with_recovery(&self.backbone, &ratios, self.recovery, calibration)?.valid()
            }
            None => prune(&self.backbone, &ratios)?.valid(),
        })
    }

    /// The pruned spec of a decision (cheap: no weights).
    pub fn pruned_spec(&self, decision: &Decision) -> Result<NetSpec, AutomlError> {
        self.space.check(decision)?;
        Ok(prune_spec(
            self.backbone.spec(),
            &self.ratios_by_block(decision),
        )?)
    }

    /// Predicted latency of a decision, without running anything.
    pub fn predict(&self, decision: &Decision) -> Result<(Breakdown, u64, u64), AutomlError> {
        let spec = self.pruned_spec(decision)?;
        let candidate = &self.space.candidates[decision.candidate];
        let entry = self.bank.entry(decision.candidate, decision.codec)?;
        let payload_bits = candidate.family.entries[decision.codec].bits_per_sample;
        let (encode_s, decode_s) = self.latency.codec_times(&entry.encode, &entry.decode);
        let latency = self.latency.predict(&PlanCost {
            network: &spec,
            split: candidate.split,
            payload_bits,
            encode_s,
            decode_s,
        })?;
        let device_flops = coinfer_profile::NetCost::of(&spec)?
            .device_part(candidate.split)?
            .flops;
        Ok((latency, payload_bits, device_flops))
    }

    /// Scores a decision (from the cache when the same plan was scored before).
    pub fn evaluate(&mut self, decision: &Decision) -> Result<Evaluation, AutomlError> {
        self.space.check(decision)?;
        self.lookups += 1;
        let key = self.key_of(decision);
        self.session.insert(key.clone());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.clone());
        }
        let halves = self.prepared_halves(decision)?;
        let evaluation = self.score(decision, &key, &halves)?;
        self.cache.insert(key.clone(), evaluation.clone());
        self.order.push(key);
        Ok(evaluation)
    }

    /// Scores `decisions` (as [`evaluate`](Self::evaluate) one after the other, with the same
    /// results, cache order and counts), running the plans not cached yet in parallel over
    /// the current rayon pool: plans that share a pruned network (they differ in their codec
    /// only) share its halves and device-half features.
    pub fn evaluate_all(&mut self, decisions: &[Decision]) -> Result<Vec<Evaluation>, AutomlError> {
        let mut keys = Vec::with_capacity(decisions.len());
        for decision in decisions {
            self.space.check(decision)?;
            keys.push(self.key_of(decision));
        }
        // The plans to run, grouped by pruned network in first-seen order.
        let mut groups: Vec<(NetworkKey, Vec<(&Decision, &PlanKey)>)> = Vec::new();
        let mut queued = HashSet::new();
        for (decision, key) in decisions.iter().zip(&keys) {
            if self.cache.contains_key(key) || !queued.insert(key) {
                continue;
            }
            let network = (key.candidate, key.kept.clone());
            match groups.iter_mut().find(|(k, _)| *k == network) {
                Some((_, group)) => group.push((decision, key)),
                None => groups.push((network, vec![(decision, key)])),
            }
        }
        let this = &*self;
        let scored = groups
            .par_iter()
            .map(|(_, group)| {
                let halves = this.build_halves(group[0].0)?;
                group
                    .par_iter()
                    .map(|&(decision, key)| this.score(decision, key, &halves))
                    .collect::<Result<Vec<_>, AutomlError>>()
            })
            .collect::<Result<Vec<_>, AutomlError>>()?;
        let mut fresh: HashMap<&PlanKey, Evaluation> = groups
            .iter()
            .flat_map(|(_, group)| group.iter().map(|&(_, key)| key))
            .zip(scored.into_iter().flatten())
            .collect();
        let mut evaluations = Vec::with_capacity(decisions.len());
        for key in &keys {
            self.lookups += 1;
            self.session.insert(key.clone());
            if let Some(evaluation) = fresh.remove(key) {
                self.cache.insert(key.clone(), evaluation);
                self.order.push(key.clone());
            }
            evaluations.push(self.cache[key].clone());
        }
        Ok(evaluations)
    }

    /// Runs a plan not in the cache on its prepared halves.
    fn score(
        &self,
        decision: &Decision,
        key: &PlanKey,
        halves: &PreparedHalves,
    ) -> Result<Evaluation, AutomlError> {
        let (latency, payload_bits, device_flops) = self.predict(decision)?;
        let correct = self.correctness_on(decision, halves)?;
        Ok(Evaluation {
            split: self.space.candidates[decision.candidate].split,
            prune_ratios: decision.prune_ratios.clone(),
            kept: key.kept.clone(),
            codec: self.space.codec_id(decision),
            payload_bits,
            accuracy: fraction_true(&correct),
            paired: PairedDrop::between(&self.backbone_correct, &correct),
            latency,
            device_flops,
        })
    }

    /// Validation accuracy of the unpruned backbone run whole, in float32.
    pub fn backbone_accuracy(&self) -> Result<f32, AutomlError> {
        Ok(fraction_true(&self.backbone_correct))
    }

    /// The device-only plan: the whole unpruned backbone on the device, nothing sent.
    pub fn device_only(&self) -> Result<Evaluation, AutomlError> {
        let spec = self.backbone.spec();
        let blocks = spec.blocks.len();
        let latency = self.latency.predict(&PlanCost {
            network: spec,
            split: blocks,
            payload_bits: 0,
            encode_s: 0.0,
            decode_s: 0.0,
        })?;
        Ok(Evaluation {
            split: blocks,
            prune_ratios: Vec::new(),
            kept: Vec::new(),
            codec: CodecId::Float32,
            payload_bits: 0,
            accuracy: self.backbone_accuracy()?,
            paired: PairedDrop::between(&self.backbone_correct, &self.backbone_correct),
            latency,
            device_flops: coinfer_profile::NetCost::of(spec)?.totals().flops,
        })
    }

    /// Validation accuracy and paired comparison with the backbone of any model, run as
    /// `logits_of` on the validation images (e.g. a fine-tuned plan).
    pub fn score_model(
        &self,
        logits_of: impl FnMut(Tensor<4>) -> Result<Tensor<2>, AutomlError>,
    ) -> Result<(f32, PairedDrop), AutomlError> {
        let correct = correctness(&self.validation, logits_of)?;
        Ok((
            fraction_true(&correct),
            PairedDrop::between(&self.backbone_correct, &correct),
        ))
    }

    /// Validation accuracy of a decision: device half → encode → decode → edge half.
    pub fn accuracy(&self, decision: &Decision) -> Result<f32, AutomlError> {
        Ok(fraction_true(&self.correctness(decision)?))
    }

    /// Per validation image, whether a decision classifies it right.
    fn correctness(&self, decision: &Decision) -> Result<Vec<bool>, AutomlError> {
        let halves = self.prepared_halves(decision)?;
        self.correctness_on(decision, &halves)
    }

    /// [`correctness`](Self::correctness) on the decision's prepared halves.
    fn correctness_on(
        &self,
        decision: &Decision,
        halves: &PreparedHalves,
    ) -> Result<Vec<bool>, AutomlError> {
        let codec = self.bank.entry(decision.candidate, decision.codec)?;
        // The validation batches in parallel (each batch's result does not depend on the
        // thread that runs it), concatenated in order.
        let per_batch = self
            .validation
            .batches
            .par_iter()
            .enumerate()
            .map(|(index, (images, labels))| {
                let feature = match &halves.features {
                    Some(features) => features[index].clone(),
                    None => halves.device_half.forward(images.clone())?,
                };
                let received = codec.codec.codec().roundtrip(feature)?;
                let logits = halves.edge_half.logits(received)?;
                hits(logits, labels)
            })
            .collect::<Result<Vec<_>, AutomlError>>()?;
        Ok(per_batch.concat())
    }

    /// The decision's folded halves and device-half features: the last decision's when it
    /// has the same candidate and kept widths (only its codec differs), else built anew.
    fn prepared_halves(&self, decision: &Decision) -> Result<Arc<PreparedHalves>, AutomlError> {
        let key = (decision.candidate, self.space.kept(decision));
        let mut last = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(halves) = last.as_ref().filter(|h| h.key == key) {
            return Ok(Arc::clone(halves));
        }
        let halves = Arc::new(self.build_halves(decision)?);
        *last = Some(Arc::clone(&halves));
        Ok(halves)
    }

    /// Prunes (and repairs), splits and folds a decision's network and runs its device half
    /// on the validation images.
    fn build_halves(&self, decision: &Decision) -> Result<PreparedHalves, AutomlError> {
        let key = (decision.candidate, self.space.kept(decision));
        let network = self.pruned_network(decision)?;
        let split = self.space.candidates[decision.candidate].split;
        let cut = network.spec().shapes()?[split].elements();
        let (device_half, edge_half) = network.split(split)?;
        // Folded once per pruned network, then run on every validation batch.
        let device_half = InferenceNetwork::from_network(&device_half)?;
        let edge_half = InferenceNetwork::from_network(&edge_half)?;
        let features = if cut * self.validation.len() <= MAX_CACHED_FEATURES {
            let features = self
                .validation
                .batches
                .par_iter()
                .map(|(images, _)| device_half.forward(images.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            Some(features)
        } else {
            None
        };
        Ok(PreparedHalves {
            key,
            device_half,
            edge_half,
            features,
        })
    }
}

/// Per image of a batch, whether `logits` predict its label.
fn hits(logits: Tensor<2>, labels: &Tensor<1, Int>) -> Result<Vec<bool>, AutomlError> {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    let hits = predicted
        .equal(labels.clone())
        .int()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| AutomlError::InvalidDecision(format!("reading predictions: {e:?}")))?;
    Ok(hits.into_iter().map(|h| h != 0).collect())
}

/// Per image of `validation`, whether `logits_of` classifies it right.
fn correctness(
    validation: &ValidationSet,
    mut logits_of: impl FnMut(Tensor<4>) -> Result<Tensor<2>, AutomlError>,
) -> Result<Vec<bool>, AutomlError> {
    let mut correct = Vec::with_capacity(validation.len());
    for (images, labels) in &validation.batches {
        correct.extend(hits(logits_of(images.clone())?, labels)?);
    }
    Ok(correct)
}

fn fraction_true(flags: &[bool]) -> f32 {
    if flags.is_empty() {
        return 0.0;
    }
    flags.iter().filter(|&&f| f).count() as f32 / flags.len() as f32
}
