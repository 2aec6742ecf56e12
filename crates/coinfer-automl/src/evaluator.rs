//! Scoring a [`Decision`]: prune the device blocks, split, run device half → codec → edge half
//! on a fixed validation subset, predict the latency; every result cached by plan.

use std::collections::{BTreeMap, HashMap, HashSet};

use burn::prelude::*;
use coinfer_codec::{AutoencoderCodec, CodecId, FeatureCodec, SharedCodec, latent_channels};
use coinfer_data::{ImageDataset, Normalization};
use coinfer_profile::{Breakdown, CodecCompute, LatencyModel, PlanCost};
use coinfer_sparsity::{PruneRatios, prune, prune_spec};
use coinfer_split::{InferenceNetwork, NetSpec, Network};
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::space::{Decision, SearchSpace};

/// A fixed, pre-batched validation subset (normalised tensors, built once).
pub struct ValidationSet {
    batches: Vec<(Tensor<4>, Tensor<1, Int>)>,
    len: usize,
}

impl ValidationSet {
    /// Batches `data` (all of it) with `norm` on `device`, `batch_size` images per tensor.
    pub fn new(
        data: &ImageDataset,
        norm: &Normalization,
        batch_size: usize,
        device: &Device,
    ) -> Result<ValidationSet, AutomlError> {
        if data.is_empty() || batch_size == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "validation",
                reason: "the validation subset and its batch size must be non-empty".into(),
            });
        }
        let indices: Vec<usize> = (0..data.len()).collect();
        let batches = indices
            .chunks(batch_size)
            .map(|chunk| data.batch(chunk, norm, device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ValidationSet {
            batches,
            len: data.len(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The codecs of every split candidate, aligned with the candidates' families, with the
/// arithmetic cost of their encoder and decoder.
pub struct CodecBank {
    codecs: Vec<Vec<BankEntry>>,
}

struct BankEntry {
    codec: BankCodec,
    encode: CodecCompute,
    decode: CodecCompute,
}

/// A codec in the bank: a fixed one, or a trained autoencoder (kept by type, because the
/// chosen plan fine-tunes and exports its weights).
pub enum BankCodec {
    /// A codec without weights (float32, quantizers).
    Fixed(SharedCodec),
    /// A trained autoencoder.
    Learned(Box<AutoencoderCodec>),
}

impl BankCodec {
    /// The codec.
    pub fn codec(&self) -> &dyn FeatureCodec {
        match self {
            BankCodec::Fixed(codec) => codec.as_ref(),
            BankCodec::Learned(ae) => ae.as_ref(),
        }
    }

    /// The autoencoder, for a learned codec.
    pub fn autoencoder(&self) -> Option<&AutoencoderCodec> {
        match self {
            BankCodec::Fixed(_) => None,
            BankCodec::Learned(ae) => Some(ae.as_ref()),
        }
    }
}

impl CodecBank {
    /// An empty bank; add one list per candidate, in candidate order.
    pub fn new() -> CodecBank {
        CodecBank { codecs: Vec::new() }
    }

    /// Adds the codecs of the next candidate (same order as its family's entries).
    /// `kernel` is the autoencoders' convolution size (for their cost).
    pub fn push_candidate(
        &mut self,
        feature_shape: [usize; 3],
        codecs: Vec<BankCodec>,
        kernel: usize,
    ) {
        let entries = codecs
            .into_iter()
            .map(|codec| {
                let (encode, decode) = codec_compute(codec.codec().id(), feature_shape, kernel);
                BankEntry {
                    codec,
                    encode,
                    decode,
                }
            })
            .collect();
        self.codecs.push(entries);
    }

    /// The codec `index` of candidate `candidate`.
    pub fn codec(&self, candidate: usize, index: usize) -> Option<&BankCodec> {
        self.codecs.get(candidate)?.get(index).map(|e| &e.codec)
    }

    fn entry(&self, candidate: usize, index: usize) -> Result<&BankEntry, AutomlError> {
        self.codecs
            .get(candidate)
            .and_then(|c| c.get(index))
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!(
                    "no codec {index} for candidate {candidate} in the codec bank"
                ))
            })
    }

    fn check_matches(&self, space: &SearchSpace) -> Result<(), AutomlError> {
        if self.codecs.len() != space.candidates.len() {
            return Err(AutomlError::InvalidConfig {
                field: "codecs",
                reason: format!(
                    "the codec bank has {} candidates, the search space {}",
                    self.codecs.len(),
                    space.candidates.len()
                ),
            });
        }
        for (candidate, (codecs, cand)) in self.codecs.iter().zip(&space.candidates).enumerate() {
            let bank_ids: Vec<CodecId> = codecs.iter().map(|e| e.codec.codec().id()).collect();
            let family_ids: Vec<CodecId> = cand.family.entries.iter().map(|e| e.id).collect();
            if bank_ids != family_ids {
                return Err(AutomlError::InvalidConfig {
                    field: "codecs",
                    reason: format!(
                        "candidate {candidate} (split {}): bank {bank_ids:?} differs from family {family_ids:?}",
                        cand.split
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Default for CodecBank {
    fn default() -> Self {
        CodecBank::new()
    }
}

/// Floating-point work of a codec's encoder and decoder for one `[C, H, W]` sample.
///
/// Quantizers: a range scan, subtract, scale, round and clamp per element on the device (6
/// FLOPs) and a multiply-add per element on the edge (2). Autoencoders: their convolutions
/// (`2 · k² · C · C'` per pixel) plus the activation and quantization of the latent.
pub fn codec_compute(
    id: CodecId,
    shape: [usize; 3],
    kernel: usize,
) -> (CodecCompute, CodecCompute) {
    let [c, h, w] = shape.map(|d| d as u64);
    let pixels = h * w;
    let elements = c * pixels;
    let (encode, decode) = match id {
        CodecId::Float32 => (0, 0),
        CodecId::Quant { .. } => (6 * elements, 2 * elements),
        CodecId::Autoencoder { ratio, .. } => {
            let latent = latent_channels(c as usize, usize::from(ratio)) as u64;
            let k2 = (kernel * kernel) as u64;
            let conv = 2 * k2 * c * latent * pixels;
            (
                conv + 8 * latent * pixels,
                conv + 3 * latent * pixels + c * pixels,
            )
        }
    };
    (
        CodecCompute { flops: encode },
        CodecCompute { flops: decode },
    )
}

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
    /// Predicted latency.
    pub latency: Breakdown,
    /// FLOPs run on the device (pruned blocks before the split).
    pub device_flops: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey {
    candidate: usize,
    kept: Vec<usize>,
    codec: usize,
}

/// Scores decisions of a [`SearchSpace`] on a trained backbone, caching by plan.
pub struct PlanEvaluator {
    backbone: Network,
    space: SearchSpace,
    bank: CodecBank,
    latency: LatencyModel,
    validation: ValidationSet,
    cache: HashMap<PlanKey, Evaluation>,
    order: Vec<PlanKey>,
    lookups: usize,
    session: HashSet<PlanKey>,
}

impl PlanEvaluator {
    /// Checks that the bank fits the space and the latency model is valid.
    pub fn new(
        backbone: Network,
        space: SearchSpace,
        bank: CodecBank,
        latency: LatencyModel,
        validation: ValidationSet,
    ) -> Result<PlanEvaluator, AutomlError> {
        bank.check_matches(&space)?;
        latency.validate()?;
        Ok(PlanEvaluator {
            backbone: backbone.valid(),
            space,
            bank,
            latency,
            validation,
            cache: HashMap::new(),
            order: Vec::new(),
            lookups: 0,
            session: HashSet::new(),
        })
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// The latency model.
    pub fn latency_model(&self) -> &LatencyModel {
        &self.latency
    }

    /// The (unpruned, trained) backbone.
    pub fn backbone(&self) -> &Network {
        &self.backbone
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
        Ok(prune(&self.backbone, &ratios)?.valid())
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
        let (latency, payload_bits, device_flops) = self.predict(decision)?;
        let accuracy = self.accuracy(decision)?;
        let evaluation = Evaluation {
            split: self.space.candidates[decision.candidate].split,
            prune_ratios: decision.prune_ratios.clone(),
            kept: key.kept.clone(),
            codec: self.space.codec_id(decision),
            payload_bits,
            accuracy,
            latency,
            device_flops,
        };
        self.cache.insert(key.clone(), evaluation.clone());
        self.order.push(key);
        Ok(evaluation)
    }

    /// Validation accuracy of the unpruned backbone run whole, in float32.
    pub fn backbone_accuracy(&self) -> Result<f32, AutomlError> {
        self.accuracy_of(|images| Ok(self.backbone.logits(images)?))
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
            latency,
            device_flops: coinfer_profile::NetCost::of(spec)?.totals().flops,
        })
    }

    fn accuracy_of(
        &self,
        mut logits_of: impl FnMut(Tensor<4>) -> Result<Tensor<2>, AutomlError>,
    ) -> Result<f32, AutomlError> {
        let mut correct = 0i64;
        for (images, labels) in &self.validation.batches {
            let predicted = logits_of(images.clone())?.argmax(1).flatten::<1>(0, 1);
            correct += predicted
                .equal(labels.clone())
                .int()
                .sum()
                .into_scalar::<i64>();
        }
        Ok(correct as f32 / self.validation.len() as f32)
    }

    /// Validation accuracy of a decision: device half → encode → decode → edge half.
    pub fn accuracy(&self, decision: &Decision) -> Result<f32, AutomlError> {
        let network = self.pruned_network(decision)?;
        let split = self.space.candidates[decision.candidate].split;
        let codec = self.bank.entry(decision.candidate, decision.codec)?;
        let (device_half, edge_half) = network.split(split)?;
        // Folded once per decision, then run on every validation batch.
        let device_half = InferenceNetwork::from_network(&device_half)?;
        let edge_half = InferenceNetwork::from_network(&edge_half)?;
        self.accuracy_of(|images| {
            let feature = device_half.forward(images)?;
            let received = codec.codec.codec().roundtrip(feature)?;
            Ok(edge_half.logits(received)?)
        })
    }
}
