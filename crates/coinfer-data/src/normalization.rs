//! Per-channel normalisation `(x - mean) / std` of pixels scaled to `[0, 1]`.

use serde::{Deserialize, Serialize};

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};

/// Per-channel mean and standard deviation of pixels on the `[0, 1]` scale (`u8 / 255`).
///
/// A batch pixel of channel `c` becomes `(p / 255 - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel (must be positive).
    pub std: Vec<f32>,
}

impl Normalization {
    /// Computes the mean and (population) standard deviation of every channel over all
    /// pixels of `dataset`.
    ///
    /// A channel without variance (or an empty dataset) gets `std = 1`, so normalising never
    /// divides by zero; an empty dataset gets `mean = 0`.
    pub fn fit(dataset: &ImageDataset) -> Normalization {
        let [channels, h, w] = dataset.image_shape();
        let plane = h * w;
        // An exact histogram per channel: summing 256 bins in f64 loses nothing even for
        // tens of millions of pixels.
        let mut histograms = vec![[0u64; 256]; channels];
        for image in dataset.pixels().chunks_exact(channels * plane) {
            for (hist, plane_pixels) in histograms.iter_mut().zip(image.chunks_exact(plane)) {
                for &p in plane_pixels {
                    hist[p as usize] += 1;
                }
            }
        }
        let (mean, std) = histograms.iter().map(moments).unzip();
        Normalization { mean, std }
    }

    /// Fashion-MNIST statistics (training set): mean 0.2860, std 0.3530.
    pub fn fashion_mnist() -> Normalization {
        Normalization {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// CIFAR-10 statistics (training set, RGB): mean (0.4914, 0.4822, 0.4465),
    /// std (0.2470, 0.2435, 0.2616).
    pub fn cifar10() -> Normalization {
        Normalization {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Number of channels it describes.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Checks that it fits images of `channels` channels and that every std is positive.
    pub(crate) fn check(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(DataError::invalid(
                "normalization",
                format!(
                    "{} means and {} stds for images of {channels} channels",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        let finite = self.mean.iter().all(|m| m.is_finite());
        if !finite || !self.std.iter().all(|&s| s.is_finite() && s > 0.0) {
            return Err(DataError::invalid(
                "normalization",
                format!(
                    "means {:?} must be finite and stds {:?} finite and positive",
                    self.mean, self.std
                ),
            ));
        }
        Ok(())
    }

    /// For every channel, the normalised value of each of the 256 pixel values.
    pub(crate) fn lookup_tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&mean, &std)| std::array::from_fn(|p| (p as f32 / 255.0 - mean) / std))
            .collect()
    }
}

/// Mean and population std, on the `[0, 1]` scale, of a histogram of `u8` values.
fn moments(hist: &[u64; 256]) -> (f32, f32) {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let value = |p: usize| p as f64 / 255.0;
    let mean = hist
        .iter()
        .enumerate()
        .map(|(p, &c)| c as f64 * value(p))
        .sum::<f64>()
        / n;
    let var = hist
        .iter()
        .enumerate()
        .map(|(p, &c)| c as f64 * (value(p) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    (mean as f32, if std > 0.0 { std as f32 } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_matches_hand_computed_moments() {
        // Channel 0 holds 0 and 255 (mean 0.5, std 0.5); channel 1 is constant 51 (0.2).
        let pixels = vec![0, 255, 51, 51];
        let ds = ImageDataset::new(pixels, vec![0], [2, 1, 2], 1).unwrap();
        let norm = Normalization::fit(&ds);
        assert!((norm.mean[0] - 0.5).abs() < 1e-6 && (norm.std[0] - 0.5).abs() < 1e-6);
        assert!((norm.mean[1] - 0.2).abs() < 1e-6);
        assert_eq!(norm.std[1], 1.0);
    }

    #[test]
    fn check_rejects_mismatch_and_zero_std() {
        assert!(Normalization::fashion_mnist().check(1).is_ok());
        assert!(Normalization::fashion_mnist().check(3).is_err());
        let zero = Normalization {
            mean: vec![0.0],
            std: vec![0.0],
        };
        assert!(zero.check(1).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let norm = Normalization::cifar10();
        let json = serde_json::to_string(&norm).unwrap();
        assert_eq!(serde_json::from_str::<Normalization>(&json).unwrap(), norm);
    }
}
