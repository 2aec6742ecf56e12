//! The rate–accuracy view of a run, as split-computing benchmarks draw it (SC2, Matsubara et
//! al., TMLR 2023): payload bits per sample against validation accuracy for every codec at
//! every split point, unpruned, with the Pareto front marked and each codec's family named —
//! image files (PNG, JPEG, WebP) as their own family. Plans the search fine-tuned before its
//! final choice (re-ranking) appear a second time with their fine-tuned accuracy.

use std::fmt::Write;

use coinfer_codec::CodecId;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::PlanEvaluator;
use crate::report::Reranked;
use crate::space::{Decision, SplitCandidate};

/// One codec at one split point on the rate–accuracy plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatePoint {
    /// Split point (0: the raw input).
    pub split: usize,
    /// The codec.
    pub codec: CodecId,
    /// Its family ([`codec_family`]).
    pub family: String,
    /// Payload bits per sample (measured for content-dependent codecs).
    pub bits_per_sample: u64,
    /// Validation accuracy with the codec in the loop.
    pub accuracy: f32,
    /// Whether the accuracy is after the three-step fine-tune (a re-ranked plan).
    pub fine_tuned: bool,
    /// Whether no other point of the same kind (fine-tuned or not) has both fewer bits and
    /// at least the accuracy, or the same bits and more accuracy.
    pub pareto: bool,
}

/// The family a codec is drawn with: `float32`, `quantizer`, `quantizer+rANS`,
/// `autoencoder`, `spatial autoencoder`, `image`.
pub fn codec_family(id: CodecId) -> &'static str {
    match id {
        CodecId::Float32 => "float32",
        CodecId::Quant { entropy: false, .. } => "quantizer",
        CodecId::Quant { entropy: true, .. } => "quantizer+rANS",
        CodecId::Autoencoder { stride: 1, .. } => "autoencoder",
        CodecId::Autoencoder { .. } => "spatial autoencoder",
        CodecId::Image { .. } => "image",
    }
}

/// Every codec of every split point of `candidates`, unpruned, split by split.
pub(crate) fn unpruned_decisions(candidates: &[SplitCandidate]) -> Vec<Decision> {
    candidates
        .iter()
        .enumerate()
        .flat_map(|(index, candidate)| {
            (0..candidate.family.entries.len()).map(move |codec| Decision {
                candidate: index,
                prune_ratios: vec![0.0; candidate.prunable.len()],
                codec,
            })
        })
        .collect()
}

/// Every codec of every split point of `evaluator`'s space, unpruned, scored (from the cache
/// when already evaluated), plus the fine-tuned accuracy of each `reranked` plan; the Pareto
/// front marked among the search-time points and among the fine-tuned ones.
///
/// # Errors
/// Evaluation errors.
pub fn rate_accuracy(
    evaluator: &mut PlanEvaluator,
    reranked: &[Reranked],
) -> Result<Vec<RatePoint>, AutomlError> {
    let candidates = evaluator.space().candidates.clone();
    let decisions = unpruned_decisions(&candidates);
    let evaluations = evaluator.evaluate_all(&decisions)?;
    let mut points: Vec<RatePoint> = decisions
        .iter()
        .zip(evaluations)
        .map(|(decision, e)| {
            let candidate = &candidates[decision.candidate];
            let entry = &candidate.family.entries[decision.codec];
            RatePoint {
                split: candidate.split,
                codec: entry.id,
                family: codec_family(entry.id).into(),
                bits_per_sample: entry.bits_per_sample,
                accuracy: e.accuracy,
                fine_tuned: false,
                pareto: false,
            }
        })
        .collect();
    for r in reranked {
        let bits = candidates
            .iter()
            .find(|c| c.split == r.split)
            .and_then(|c| c.family.get(r.codec))
            .map(|e| e.bits_per_sample);
        if let Some(bits_per_sample) = bits {
            points.push(RatePoint {
                split: r.split,
                codec: r.codec,
                family: codec_family(r.codec).into(),
                bits_per_sample,
                accuracy: r.accuracy_after,
                fine_tuned: true,
                pareto: false,
            });
        }
    }
    mark_pareto(&mut points);
    Ok(points)
}

/// Marks the points no other point of the same kind (fine-tuned or not) dominates: fewer or
/// equal bits with more accuracy, or fewer bits with equal accuracy.
pub fn mark_pareto(points: &mut [RatePoint]) {
    let snapshot: Vec<(bool, u64, f32)> = points
        .iter()
        .map(|p| (p.fine_tuned, p.bits_per_sample, p.accuracy))
        .collect();
    for p in points.iter_mut() {
        p.pareto = !snapshot.iter().any(|&(tuned, bits, accuracy)| {
            tuned == p.fine_tuned
                && ((bits <= p.bits_per_sample && accuracy > p.accuracy)
                    || (bits < p.bits_per_sample && accuracy >= p.accuracy))
        });
    }
}

/// The points as a Markdown table, by bits per sample, Pareto points in bold.
pub fn rate_markdown(points: &[RatePoint]) -> String {
    let mut sorted: Vec<&RatePoint> = points.iter().collect();
    sorted.sort_by(|a, b| {
        (a.fine_tuned, a.bits_per_sample)
            .cmp(&(b.fine_tuned, b.bits_per_sample))
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Rate–accuracy (every codec at every split point, unpruned)\n\n\
         Payload bits per sample against validation accuracy; **bold**: on the Pareto front \
         (no point of the same kind has fewer bits and at least the accuracy). Image files \
         (PNG, JPEG, WebP) are the family `image`. Rows marked fine-tuned are plans re-ranked \
         after the three-step fine-tune.\n\n\
         | split | codec | family | bits / sample | bytes | accuracy | fine-tuned |\n\
         |---:|---|---|---:|---:|---:|---|"
    );
    for p in sorted {
        let bold = |s: String| if p.pareto { format!("**{s}**") } else { s };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            p.split,
            bold(p.codec.to_string()),
            p.family,
            p.bits_per_sample,
            p.bits_per_sample as f64 / 8.0,
            bold(format!("{:.2}%", 100.0 * p.accuracy)),
            if p.fine_tuned { "yes" } else { "" }
        );
    }
    md
}

/// The points as JSON lines (one object per point).
pub fn rate_json_lines(points: &[RatePoint]) -> String {
    points
        .iter()
        .filter_map(|p| serde_json::to_string(p).ok())
        .map(|line| line + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coinfer_codec::ImageFormat;

    fn point(bits: u64, accuracy: f32, fine_tuned: bool) -> RatePoint {
        RatePoint {
            split: 0,
            codec: CodecId::image(ImageFormat::Webp, 50),
            family: "image".into(),
            bits_per_sample: bits,
            accuracy,
            fine_tuned,
            pareto: false,
        }
    }

    #[test]
    fn the_front_keeps_undominated_points_per_kind() {
        let mut points = vec![
            point(100, 0.80, false),
            point(200, 0.90, false),
            point(300, 0.85, false),
            point(200, 0.88, false),
            point(100, 0.70, false),
            // A fine-tuned point is compared with fine-tuned points only.
            point(500, 0.50, true),
        ];
        mark_pareto(&mut points);
        let front: Vec<bool> = points.iter().map(|p| p.pareto).collect();
        assert_eq!(front, [true, true, false, false, false, true]);
        let md = rate_markdown(&points);
        assert!(
            md.contains("| **webp-q50** | image | 100 | 12.5 | **80.00%** |"),
            "{md}"
        );
        assert_eq!(rate_json_lines(&points).lines().count(), 6);
    }

    #[test]
    fn families_name_image_codecs_apart() {
        assert_eq!(codec_family(CodecId::image(ImageFormat::Png, 0)), "image");
        assert_eq!(codec_family(CodecId::quant(4, false)), "quantizer");
        assert_eq!(
            codec_family(CodecId::Quant {
                bits: 4,
                per_channel: false,
                entropy: true
            }),
            "quantizer+rANS"
        );
        assert_eq!(codec_family(CodecId::autoencoder(4, 2)), "autoencoder");
    }
}
