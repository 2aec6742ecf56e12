//! [`Budget`]: how much of a training set one training run sees, in passes or in images.
//!
//! A budget in epochs grows with the data (8 epochs of 55,000 images are eleven times 8 epochs
//! of 5,000); a budget in images does not, so a step sized on a small set stays the same size
//! on a large one. Both run the same loop: shuffled passes over the set, cut after the budget's
//! number of batches. An image budget of `k × len + r` images is `k` whole passes and the first
//! `⌈r / batch⌉` batches of the next one, so `Images(e × len)` trains on exactly the batches of
//! `Epochs(e)`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DataError;

/// How much of a training set a training run sees.
///
/// Written `epochs:N` or `images:N` (its [`FromStr`] and [`Display`](fmt::Display) forms, and
/// its serde form; a bare number in a config file is a number of epochs, what these fields
/// held before budgets existed).
///
/// ```
/// use coinfer_data::Budget;
///
/// let budget: Budget = "images:12000".parse()?;
/// assert_eq!(budget, Budget::Images(12000));
/// // 5,000 images in batches of 64: a pass is 79 batches; 12,000 images are two passes and
/// // the first 32 batches (2,000 images) of the third.
/// assert_eq!(budget.steps(5000, 64), 2 * 79 + 32);
/// assert_eq!(budget.passes(5000), 3);
/// assert_eq!(Budget::Epochs(2).steps(5000, 64), Budget::Images(10000).steps(5000, 64));
/// # Ok::<(), coinfer_data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Whole passes over the training set.
    Epochs(usize),
    /// Images, whatever the size of the training set (rounded up to whole batches).
    Images(usize),
}

impl Budget {
    /// Whether the budget trains nothing (`epochs:0` or `images:0`).
    pub fn is_zero(&self) -> bool {
        matches!(self, Budget::Epochs(0) | Budget::Images(0))
    }

    /// Batches of `batch_size` the budget trains on a set of `len` images (0 when either is 0).
    pub fn steps(&self, len: usize, batch_size: usize) -> usize {
        if len == 0 || batch_size == 0 {
            return 0;
        }
        let per_pass = len.div_ceil(batch_size);
        match *self {
            Budget::Epochs(epochs) => epochs * per_pass,
            Budget::Images(images) => {
                (images / len) * per_pass + (images % len).div_ceil(batch_size)
            }
        }
    }

    /// Passes over a set of `len` images the budget starts (the last one may be cut short).
    pub fn passes(&self, len: usize) -> usize {
        match *self {
            _ if len == 0 => 0,
            Budget::Epochs(epochs) => epochs,
            Budget::Images(images) => images.div_ceil(len),
        }
    }

    /// Images the budget trains on a set of `len` images in batches of `batch_size` (the
    /// budget's images, or its epochs times `len`; at most `steps × batch_size`).
    pub fn images(&self, len: usize, batch_size: usize) -> usize {
        match *self {
            Budget::Epochs(epochs) => epochs * len,
            Budget::Images(images) if len > 0 => {
                images.min(self.steps(len, batch_size) * batch_size)
            }
            Budget::Images(_) => 0,
        }
    }

    /// The budget with its count multiplied by `factor` (rounded up), e.g. to share one
    /// budget out over several steps.
    pub fn scaled(&self, factor: f64) -> Budget {
        let scale = |n: usize| (n as f64 * factor).ceil().max(0.0) as usize;
        match *self {
            Budget::Epochs(n) => Budget::Epochs(scale(n)),
            Budget::Images(n) => Budget::Images(scale(n)),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Epochs(n) => write!(f, "epochs:{n}"),
            Budget::Images(n) => write!(f, "images:{n}"),
        }
    }
}

impl FromStr for Budget {
    type Err = DataError;

    /// `epochs:N` or `images:N` (`N` may use `_` or `,` as digit separators).
    fn from_str(text: &str) -> Result<Budget, DataError> {
        let bad = |reason: String| DataError::invalid("budget", reason);
        let (kind, count) = text.trim().split_once(':').ok_or_else(|| {
            bad(format!(
                "`{text}`: expected `epochs:N` or `images:N` (e.g. `epochs:8`, `images:40000`)"
            ))
        })?;
        let digits: String = count
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | ','))
            .collect();
        let n: usize = digits
            .parse()
            .map_err(|_| bad(format!("`{text}`: `{count}` is not a whole number")))?;
        match kind.trim() {
            "epochs" | "epoch" => Ok(Budget::Epochs(n)),
            "images" | "image" => Ok(Budget::Images(n)),
            other => Err(bad(format!(
                "`{text}`: unknown unit `{other}` (expected `epochs` or `images`)"
            ))),
        }
    }
}

impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Budget, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Budget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`epochs:N`, `images:N`, or a number of epochs")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Budget, E> {
                usize::try_from(n)
                    .map(Budget::Epochs)
                    .map_err(|_| E::custom(format!("{n} epochs is too many")))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Budget, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("a budget of {n} epochs is negative")))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Budget, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_budget_of_whole_passes_is_the_epoch_budget() {
        for (len, batch) in [(5000, 64), (4096, 64), (1, 1), (999, 250)] {
            for epochs in 0..4 {
                assert_eq!(
                    Budget::Epochs(epochs).steps(len, batch),
                    Budget::Images(epochs * len).steps(len, batch),
                    "{len} images, batch {batch}, {epochs} epochs"
                );
                assert_eq!(Budget::Images(epochs * len).passes(len), epochs);
            }
        }
    }

    #[test]
    fn a_partial_pass_is_rounded_up_to_whole_batches() {
        assert_eq!(Budget::Images(1).steps(5000, 64), 1);
        assert_eq!(Budget::Images(65).steps(5000, 64), 2);
        assert_eq!(Budget::Images(65).images(5000, 64), 65);
        assert_eq!(Budget::Images(5001).passes(5000), 2);
        assert_eq!(Budget::Images(10).steps(0, 64), 0);
        assert!(Budget::Images(0).is_zero() && Budget::Epochs(0).is_zero());
    }

    #[test]
    fn text_and_serde_forms_round_trip() {
        for budget in [Budget::Epochs(8), Budget::Images(40_000)] {
            assert_eq!(budget.to_string().parse::<Budget>().unwrap(), budget);
            let json = serde_json::to_string(&budget).unwrap();
            assert_eq!(serde_json::from_str::<Budget>(&json).unwrap(), budget);
        }
        assert_eq!(
            "images:55_000".parse::<Budget>().unwrap(),
            Budget::Images(55_000)
        );
        assert_eq!(
            serde_json::from_str::<Budget>("3").unwrap(),
            Budget::Epochs(3)
        );
        assert!(serde_json::from_str::<Budget>("-1").is_err());
        for bad in ["8", "steps:8", "images:", "images:x", "epochs:-1"] {
            let err = bad.parse::<Budget>().unwrap_err().to_string();
            assert!(err.contains("budget") && err.contains(bad), "{bad}: {err}");
        }
    }
}
