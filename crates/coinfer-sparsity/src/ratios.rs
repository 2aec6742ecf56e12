//! [`PruneRatios`]: how many filters to remove from each prunable layer, validated against a
//! spec once, at the edge of the library.

use std::collections::BTreeMap;

use coinfer_split::NetSpec;
use serde::{Deserialize, Serialize};

use crate::SparsityError;
use crate::layers::{Consumer, PrunableLayer, layer_at, prunable_layers};

/// Pruning ratios: the fraction `p ∈ [0, 1)` of filters **removed** from each prunable layer.
///
/// Serialises as `{"uniform": 0.5}`, `{"per_layer": [0.25, 0.5]}` or
/// `{"by_block": {"2": 0.5}}`. [`resolve`](Self::resolve) checks it against a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneRatios {
    /// The same ratio for every prunable layer.
    Uniform(f32),
    /// One ratio per layer, aligned with [`prunable_layers`] (what a per-layer search emits).
    PerLayer(Vec<f32>),
    /// Ratios by block index; prunable layers not named keep all their filters. Naming a
    /// block that cannot be pruned is an error.
    ByBlock(BTreeMap<usize, f32>),
}

impl Default for PruneRatios {
    /// No pruning.
    fn default() -> Self {
        PruneRatios::Uniform(0.0)
    }
}

/// A prunable layer with its validated ratio and the number of filters it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ResolvedLayer {
    pub layer: PrunableLayer,
    pub consumer: Consumer,
    pub kept: usize,
}

impl PruneRatios {
    /// The ratio of every prunable layer of `spec`, aligned with [`prunable_layers`].
    ///
    /// Fails with [`SparsityError::InvalidRatio`] for a ratio outside `[0, 1)` or NaN,
    /// [`SparsityError::WrongCount`] for a per-layer list of the wrong length,
    /// [`SparsityError::BlockOutOfRange`] / [`SparsityError::NotPrunable`] for a by-block ratio
    /// naming a block that does not exist or cannot be pruned.
    pub fn resolve(&self, spec: &NetSpec) -> Result<Vec<f32>, SparsityError> {
        let layers = prunable_layers(spec)?;
        let ratios = match self {
            PruneRatios::Uniform(p) => vec![*p; layers.len()],
            PruneRatios::PerLayer(ratios) => {
                if ratios.len() != layers.len() {
                    return Err(SparsityError::WrongCount {
                        what: "pruning ratios",
                        expected: layers.len(),
                        got: ratios.len(),
                    });
                }
                ratios.clone()
            }
            PruneRatios::ByBlock(by_block) => {
                let shapes = spec.shapes()?;
                for &block in by_block.keys() {
                    layer_at(spec, &shapes, block)?;
                }
                layers
                    .iter()
                    .map(|layer| by_block.get(&layer.block).copied().unwrap_or(0.0))
                    .collect()
            }
        };
        for (index, (layer, &ratio)) in layers.iter().zip(&ratios).enumerate() {
            if !(0.0..1.0).contains(&ratio) {
                return Err(SparsityError::InvalidRatio {
                    layer: index,
                    block: layer.block,
                    ratio,
                });
            }
        }
        Ok(ratios)
    }

    /// Every prunable layer with its consumer and kept filter count.
    pub(crate) fn resolve_layers(
        &self,
        spec: &NetSpec,
    ) -> Result<Vec<ResolvedLayer>, SparsityError> {
        let ratios = self.resolve(spec)?;
        let shapes = spec.shapes()?;
        prunable_layers(spec)?
            .into_iter()
            .zip(ratios)
            .map(|(layer, ratio)| {
                let (_, consumer) = layer_at(spec, &shapes, layer.block)?;
                Ok(ResolvedLayer {
                    layer,
                    consumer,
                    kept: kept_channels(layer.channels, ratio),
                })
            })
            .collect()
    }
}

/// Filters a layer of `channels` filters keeps at pruning ratio `ratio`:
/// `max(1, channels − ⌊ratio · channels + 10⁻⁴⌋)`.
///
/// The number removed is rounded down, so a small ratio on a narrow layer removes nothing;
/// the `10⁻⁴` tolerance makes ratios that are exact fractions in decimal but not in `f32`
/// (`0.7` of 10 filters) remove what they say. At least one filter always survives.
///
/// ```
/// use coinfer_sparsity::kept_channels;
///
/// assert_eq!(kept_channels(10, 0.7), 3);
/// assert_eq!(kept_channels(32, 0.5), 16);
/// assert_eq!(kept_channels(32, 0.01), 32);
/// assert_eq!(kept_channels(4, 0.99), 1);
/// ```
pub fn kept_channels(channels: usize, ratio: f32) -> usize {
    let removed = (f64::from(ratio.clamp(0.0, 1.0)) * channels as f64 + 1e-4).floor() as usize;
    channels.saturating_sub(removed).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_channels_rounds_removed_count_down_with_tolerance() {
        for channels in 1..=64usize {
            for tenths in 0..10u32 {
                let ratio = tenths as f32 / 10.0;
                let removed = (tenths as usize * channels) / 10;
                assert_eq!(
                    kept_channels(channels, ratio),
                    (channels - removed).max(1),
                    "{channels} channels at {ratio}"
                );
            }
        }
    }

    #[test]
    fn ratios_round_trip_through_json() {
        let ratios = [
            PruneRatios::Uniform(0.5),
            PruneRatios::PerLayer(vec![0.25, 0.5]),
            PruneRatios::ByBlock(BTreeMap::from([(2, 0.5), (4, 0.125)])),
        ];
        for r in ratios {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(
                serde_json::from_str::<PruneRatios>(&json).unwrap(),
                r,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&PruneRatios::Uniform(0.5)).unwrap(),
            r#"{"uniform":0.5}"#
        );
    }
}
