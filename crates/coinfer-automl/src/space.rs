//! The search space: split candidates, the prunable layers before each, and the codec family
//! of each split; plus the mapping from continuous actions in `[0, 1]` to decisions.

use coinfer_codec::{CodecFamily, CodecId};
use coinfer_sparsity::{PrunableLayer, kept_channels, prunable_layers};
use coinfer_split::NetSpec;
use serde::{Deserialize, Serialize};

use crate::AutomlError;

/// One split point the search may choose, with what it implies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitCandidate {
    /// Blocks `[0, split)` run on the device (`0` = edge only: the raw input is sent).
    pub split: usize,
    /// `[C, H, W]` of the feature sent over the link.
    pub feature_shape: [usize; 3],
    /// The prunable layers among the device blocks, in block order.
    pub prunable: Vec<PrunableLayer>,
    /// The codecs available at this split, sorted by payload size (smallest first).
    pub family: CodecFamily,
}

/// A point of the search space: what one episode decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Index into [`SearchSpace::candidates`].
    pub candidate: usize,
    /// Fraction of filters removed from each of the candidate's prunable layers.
    pub prune_ratios: Vec<f32>,
    /// Index into the candidate's codec family.
    pub codec: usize,
}

/// All split candidates of a backbone with their codec families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The candidates, by increasing split point.
    pub candidates: Vec<SplitCandidate>,
    /// Largest fraction of filters a layer may lose (`p_max` of design §1).
    pub max_prune: f32,
    /// The part `[0, prune_dead_zone]` of a prune action's range that keeps every filter; the
    /// rest maps linearly onto `(0, max_prune]` (0: the whole range is linear, AMC's mapping).
    #[serde(default)]
    pub prune_dead_zone: f32,
}

impl SearchSpace {
    /// The split points worth searching in `spec`: `0` (edge only) and every block boundary
    /// whose activation is still image-shaped (before the flatten). `families(split, shape)`
    /// supplies the codecs of each.
    pub fn new(
        spec: &NetSpec,
        max_prune: f32,
        mut families: impl FnMut(usize, [usize; 3]) -> Result<CodecFamily, AutomlError>,
    ) -> Result<SearchSpace, AutomlError> {
        if !(0.0..1.0).contains(&max_prune) {
            return Err(AutomlError::InvalidConfig {
                field: "max_prune",
                reason: format!("must be in [0, 1), got {max_prune}"),
            });
        }
        let shapes = spec.shapes()?;
        let layers = prunable_layers(spec)?;
        let mut candidates = Vec::new();
        for (split, &shape) in shapes.iter().enumerate().take(spec.blocks.len()) {
            if shape.flat {
                break;
            }
            let mut family = families(split, shape.dims())?;
            if family.is_empty() {
                return Err(AutomlError::InvalidConfig {
                    field: "codecs",
                    reason: format!("split {split} has an empty codec family"),
                });
            }
            family.sort();
            candidates.push(SplitCandidate {
                split,
                feature_shape: shape.dims(),
                prunable: layers
                    .iter()
                    .copied()
                    // A layer whose consumer runs on the edge would change the transmitted
                    // feature's channels (and break the codecs trained for it).
                    .filter(|l| l.block < split && l.consumer < split)
                    .collect(),
                family,
            });
        }
        Ok(SearchSpace {
            candidates,
            max_prune,
            prune_dead_zone: 0.0,
        })
    }

    /// The space with `dead_zone` as its [`prune_dead_zone`](Self::prune_dead_zone).
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] (`prune_dead_zone`) outside `[0, 1)`.
    pub fn with_prune_dead_zone(mut self, dead_zone: f32) -> Result<SearchSpace, AutomlError> {
        if !(0.0..1.0).contains(&dead_zone) {
            return Err(AutomlError::InvalidConfig {
                field: "prune_dead_zone",
                reason: format!("must be in [0, 1), got {dead_zone}"),
            });
        }
        self.prune_dead_zone = dead_zone;
        Ok(self)
    }

    /// Candidate index for a split action: `[0, 1]` cut into equal bins, one per candidate.
    pub fn candidate_for(&self, action: f32) -> usize {
        bin(action, self.candidates.len())
    }

    /// Pruning ratio for a prune action: 0 up to the dead zone, then linear up to `max_prune`
    /// (`action · max_prune` without a dead zone).
    pub fn ratio_for(&self, action: f32) -> f32 {
        let a = action.clamp(0.0, 1.0);
        let d = self.prune_dead_zone;
        if a <= d {
            0.0
        } else {
            (a - d) / (1.0 - d) * self.max_prune
        }
    }

    /// The prune action that gives `ratio` (the dead zone's upper end for 0): the inverse of
    /// [`ratio_for`](Self::ratio_for).
    pub fn action_for_ratio(&self, ratio: f32) -> f32 {
        if self.max_prune <= 0.0 || ratio <= 0.0 {
            return self.prune_dead_zone;
        }
        let d = self.prune_dead_zone;
        (d + ratio / self.max_prune * (1.0 - d)).clamp(0.0, 1.0)
    }

    /// Codec index for a codec action at `candidate`: equal bins over the family (smallest
    /// payload first).
    pub fn codec_for(&self, candidate: usize, action: f32) -> usize {
        bin(action, self.candidates[candidate].family.len())
    }

    /// The action at the centre of bin `index` of `bins` (the inverse of the bin mapping).
    pub fn bin_centre(index: usize, bins: usize) -> f32 {
        (index as f32 + 0.5) / bins.max(1) as f32
    }

    /// Checks a decision against the space.
    pub fn check(&self, decision: &Decision) -> Result<(), AutomlError> {
        let candidate = self.candidates.get(decision.candidate).ok_or_else(|| {
            AutomlError::InvalidDecision(format!(
                "candidate {} of {}",
                decision.candidate,
                self.candidates.len()
            ))
        })?;
        if decision.prune_ratios.len() != candidate.prunable.len() {
            return Err(AutomlError::InvalidDecision(format!(
                "split {} has {} prunable layers but {} ratios were given",
                candidate.split,
                candidate.prunable.len(),
                decision.prune_ratios.len()
            )));
        }
        if let Some(bad) = decision
            .prune_ratios
            .iter()
            .find(|r| !(0.0..=self.max_prune).contains(*r))
        {
            return Err(AutomlError::InvalidDecision(format!(
                "pruning ratio {bad} outside [0, {}]",
                self.max_prune
            )));
        }
        if decision.codec >= candidate.family.len() {
            return Err(AutomlError::InvalidDecision(format!(
                "codec {} of {} at split {}",
                decision.codec,
                candidate.family.len(),
                candidate.split
            )));
        }
        Ok(())
    }

    /// The channels each prunable layer keeps under `decision` (the cache key of a plan:
    /// ratios that round to the same channels build the same network).
    pub fn kept(&self, decision: &Decision) -> Vec<usize> {
        self.candidates[decision.candidate]
            .prunable
            .iter()
            .zip(&decision.prune_ratios)
            .map(|(layer, &ratio)| kept_channels(layer.channels, ratio))
            .collect()
    }

    /// The codec a decision uses.
    pub fn codec_id(&self, decision: &Decision) -> CodecId {
        self.candidates[decision.candidate].family.entries[decision.codec].id
    }

    /// Number of plans on a grid of `ratio_levels` pruning ratios per layer (the size of an
    /// exhaustive search over that grid).
    pub fn grid_size(&self, ratio_levels: usize) -> u64 {
        self.candidates
            .iter()
            .map(|c| (ratio_levels as u64).pow(c.prunable.len() as u32) * c.family.len() as u64)
            .sum()
    }
}

fn bin(action: f32, bins: usize) -> usize {
    let a = if action.is_finite() {
        action.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((a * bins as f32) as usize).min(bins.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coinfer_split::zoo;

    fn space() -> SearchSpace {
        SearchSpace::new(&zoo::resnet_mini(10), 0.8, |_, shape| {
            Ok(CodecFamily::with_codecs(
                shape,
                [
                    CodecId::Float32,
                    CodecId::quant(8, false),
                    CodecId::quant(2, false),
                ],
            ))
        })
        .unwrap()
    }

    #[test]
    fn candidates_stop_before_the_flatten_and_include_edge_only() {
        let space = space();
        let splits: Vec<usize> = space.candidates.iter().map(|c| c.split).collect();
        assert_eq!(splits, [0, 1, 2, 3, 4, 5]);
        assert_eq!(space.candidates[0].feature_shape, [1, 28, 28]);
        assert!(space.candidates[0].prunable.is_empty());
        // Every prunable layer before the split is offered, in block order.
        // The stem's output is the feature at split 1, so it is only prunable from split 2 on.
        assert!(space.candidates[1].prunable.is_empty());
        assert_eq!(space.candidates[2].prunable.len(), 2);
        for c in &space.candidates {
            assert!(c.prunable.iter().all(|l| l.block < c.split));
            assert!(c.prunable.windows(2).all(|w| w[0].block < w[1].block));
        }
        // The codecs are sorted by payload size.
        let bits: Vec<u64> = space.candidates[2]
            .family
            .entries
            .iter()
            .map(|e| e.bits_per_sample)
            .collect();
        assert!(bits.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn actions_map_onto_every_bin_and_clamp() {
        let space = space();
        let n = space.candidates.len();
        assert_eq!(space.candidate_for(0.0), 0);
        assert_eq!(space.candidate_for(1.0), n - 1);
        assert_eq!(space.candidate_for(-3.0), 0);
        assert_eq!(space.candidate_for(f32::NAN), 0);
        for i in 0..n {
            assert_eq!(space.candidate_for(SearchSpace::bin_centre(i, n)), i);
        }
        assert!((space.ratio_for(0.5) - 0.4).abs() < 1e-6);
        assert_eq!(space.ratio_for(2.0), 0.8);
        assert_eq!(space.codec_for(1, 0.99), 2);
    }

    #[test]
    fn the_dead_zone_keeps_every_filter_then_maps_linearly() {
        let space = space().with_prune_dead_zone(0.5).unwrap();
        assert_eq!(space.ratio_for(0.0), 0.0);
        assert_eq!(space.ratio_for(0.5), 0.0);
        assert!((space.ratio_for(0.75) - 0.4).abs() < 1e-6);
        assert!((space.ratio_for(1.0) - 0.8).abs() < 1e-6);
        for action in [0.6f32, 0.8, 1.0] {
            let back = space.action_for_ratio(space.ratio_for(action));
            assert!((back - action).abs() < 1e-6, "{action} → {back}");
        }
        assert_eq!(space.action_for_ratio(0.0), 0.5);
        for bad in [1.0, -0.1, f32::NAN] {
            let err = space.clone().with_prune_dead_zone(bad).unwrap_err();
            assert!(err.to_string().contains("prune_dead_zone"), "{err}");
        }
    }

    #[test]
    fn decisions_outside_the_space_are_rejected() {
        let space = space();
        let ok = Decision {
            candidate: 3,
            prune_ratios: vec![0.1; space.candidates[3].prunable.len()],
            codec: 1,
        };
        space.check(&ok).unwrap();
        let mut bad = ok.clone();
        bad.candidate = 99;
        assert!(space.check(&bad).is_err());
        let mut bad = ok.clone();
        bad.prune_ratios.push(0.0);
        assert!(space.check(&bad).is_err());
        let mut bad = ok.clone();
        bad.prune_ratios[0] = 0.95;
        assert!(space.check(&bad).is_err());
        let mut bad = ok;
        bad.codec = 3;
        assert!(space.check(&bad).is_err());
    }

    #[test]
    fn max_prune_must_leave_filters() {
        for bad in [1.0, -0.1, f32::NAN] {
            let err = SearchSpace::new(&zoo::resnet_mini(10), bad, |_, s| {
                Ok(CodecFamily::with_codecs(s, [CodecId::Float32]))
            })
            .unwrap_err();
            assert!(err.to_string().contains("max_prune"), "{err}");
        }
    }
}
