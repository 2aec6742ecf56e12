//! The codec family of one split point: the discrete choices the search picks from.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::CodecId;
use crate::error::CodecError;

/// One codec the search may choose, with its cost and (once evaluated) its accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodecEntry {
    /// The codec and its parameters.
    pub id: CodecId,
    /// Payload bits for one sample at this split point (see [`CodecId::bits_per_sample`]).
    pub bits_per_sample: u64,
    /// Accuracy of the full model with this codec in the loop, if measured.
    pub accuracy: Option<f32>,
}

impl CodecEntry {
    /// An entry with its analytic size for `feature_shape = [C, H, W]` and no accuracy yet.
    pub fn new(id: CodecId, feature_shape: [usize; 3]) -> Self {
        Self {
            id,
            bits_per_sample: id.bits_per_sample(feature_shape),
            accuracy: None,
        }
    }
}

/// The codecs available at one split point, sorted by `bits_per_sample` (ascending; equal
/// sizes keep insertion order). Plain data, saved as JSON next to the split plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodecFamily {
    /// Feature shape `[C, H, W]` at the split point.
    pub feature_shape: [usize; 3],
    /// The choices, cheapest first.
    pub entries: Vec<CodecEntry>,
}

impl CodecFamily {
    /// An empty family for `feature_shape = [C, H, W]`.
    pub fn new(feature_shape: [usize; 3]) -> Self {
        Self {
            feature_shape,
            entries: Vec::new(),
        }
    }

    /// A family of the given codecs (sizes computed, sorted).
    pub fn with_codecs(feature_shape: [usize; 3], ids: impl IntoIterator<Item = CodecId>) -> Self {
        let mut family = Self::new(feature_shape);
        for id in ids {
            family.push(CodecEntry::new(id, feature_shape));
        }
        family
    }

    /// The usual family: `Float32`, per-channel uniform quantization at 1..=8 bits, and one
    /// autoencoder per `(ratio, bits)` pair.
    pub fn standard(feature_shape: [usize; 3], autoencoders: &[(u16, u8)]) -> Self {
        let quant = (1..=8).map(|bits| CodecId::quant(bits, true));
        let learned = autoencoders
            .iter()
            .map(|&(ratio, bits)| CodecId::autoencoder(ratio, bits));
        Self::with_codecs(
            feature_shape,
            std::iter::once(CodecId::Float32)
                .chain(quant)
                .chain(learned),
        )
    }

    /// Adds an entry, keeping the order by size.
    pub fn push(&mut self, entry: CodecEntry) {
        let at = self
            .entries
            .partition_point(|e| e.bits_per_sample <= entry.bits_per_sample);
        self.entries.insert(at, entry);
    }

    /// Restores the order by size (after editing `entries` by hand).
    pub fn sort(&mut self) {
        self.entries.sort_by_key(|e| e.bits_per_sample);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `id`, if present.
    pub fn get(&self, id: CodecId) -> Option<&CodecEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Records the measured accuracy of `id`; returns whether it was present.
    pub fn set_accuracy(&mut self, id: CodecId, accuracy: f32) -> bool {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.accuracy = Some(accuracy);
                true
            }
            None => false,
        }
    }

    /// The family as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a family (and sorts it).
    ///
    /// # Errors
    /// [`CodecError::Json`].
    pub fn from_json(json: &str) -> Result<Self, CodecError> {
        let mut family: Self = serde_json::from_str(json).map_err(|source| CodecError::Json {
            context: "codec family".into(),
            source,
        })?;
        family.sort();
        Ok(family)
    }

    /// Writes the family as JSON.
    ///
    /// # Errors
    /// [`CodecError::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), CodecError> {
        std::fs::write(path, self.to_json()).map_err(|source| CodecError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a family written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`CodecError::Io`] or [`CodecError::Json`] naming the file.
    pub fn load(path: &Path) -> Result<Self, CodecError> {
        let text = std::fs::read_to_string(path).map_err(|source| CodecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            CodecError::Json { source, .. } => CodecError::Json {
                context: path.display().to_string(),
                source,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_family_is_sorted_and_round_trips_json() {
        let mut family = CodecFamily::standard([16, 14, 14], &[(4, 4), (16, 2)]);
        assert_eq!(family.len(), 1 + 8 + 2);
        assert!(
            family
                .entries
                .windows(2)
                .all(|w| w[0].bits_per_sample <= w[1].bits_per_sample)
        );
        assert_eq!(family.entries[0].id, CodecId::autoencoder(16, 2));
        assert_eq!(family.entries.last().unwrap().id, CodecId::Float32);
        assert!(family.set_accuracy(CodecId::quant(4, true), 0.91));
        assert!(!family.set_accuracy(CodecId::quant(4, false), 0.5));
        let back = CodecFamily::from_json(&family.to_json()).unwrap();
        assert_eq!(back, family);
        assert_eq!(
            back.get(CodecId::quant(4, true)).unwrap().accuracy,
            Some(0.91)
        );
    }

    #[test]
    fn from_json_sorts_and_reports_bad_json() {
        let json = r#"{"feature_shape":[4,2,2],"entries":[
            {"id":{"kind":"float32"},"bits_per_sample":900,"accuracy":null},
            {"id":{"kind":"quant","bits":2,"per_channel":false},"bits_per_sample":100,"accuracy":0.5}
        ]}"#;
        let family = CodecFamily::from_json(json).unwrap();
        assert_eq!(family.entries[0].bits_per_sample, 100);
        assert!(matches!(
            CodecFamily::from_json("{"),
            Err(CodecError::Json { .. })
        ));
    }
}
