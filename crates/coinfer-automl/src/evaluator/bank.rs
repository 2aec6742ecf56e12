//! [`CodecBank`]: the codecs of every split candidate and what their encoder and decoder cost.

use coinfer_codec::{AutoencoderCodec, CodecId, FeatureCodec, SharedCodec};
use coinfer_profile::CodecCompute;

use crate::AutomlError;
use crate::space::SearchSpace;

/// The codecs of every split candidate, aligned with the candidates' families, with the
/// arithmetic cost of their encoder and decoder.
pub struct CodecBank {
    codecs: Vec<Vec<BankEntry>>,
}

pub(super) struct BankEntry {
    pub(super) codec: BankCodec,
    pub(super) encode: CodecCompute,
    pub(super) decode: CodecCompute,
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
    pub fn push_candidate(&mut self, feature_shape: [usize; 3], codecs: Vec<BankCodec>) {
        let entries = codecs
            .into_iter()
            .map(|codec| {
                let (encode, decode) = codec_compute(codec.codec().id(), feature_shape);
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

    pub(super) fn entry(&self, candidate: usize, index: usize) -> Result<&BankEntry, AutomlError> {
        self.codecs
            .get(candidate)
            .and_then(|c| c.get(index))
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!(
                    "no codec {index} for candidate {candidate} in the codec bank"
                ))
            })
    }

    pub(super) fn check_matches(&self, space: &SearchSpace) -> Result<(), AutomlError> {
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

/// A codec's encode and decode work for one `[C, H, W]` sample ([`CodecId::compute_cost`])
/// in the latency model's terms.
pub fn codec_compute(id: CodecId, shape: [usize; 3]) -> (CodecCompute, CodecCompute) {
    let cost = id.compute_cost(shape);
    (
        CodecCompute {
            flops: cost.encode_flops,
        },
        CodecCompute {
            flops: cost.decode_flops,
        },
    )
}
