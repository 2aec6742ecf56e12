//! Exploration noise: a normal distribution truncated to `[0, 1]`, and its σ schedule.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};

/// Draws after which [`TruncatedNormal`] gives up resampling and draws uniformly instead.
///
/// With the mean inside `[0, 1]` a draw lands in the interval with probability above
/// `Φ(1/σ) - 1/2`, so this is only reached for σ in the hundreds, where the truncated normal
/// is indistinguishable from the uniform distribution anyway.
const MAX_RESAMPLES: usize = 1000;

/// Normal distribution `N(mean, σ²)` truncated to `[0, 1]`, sampled by rejection.
///
/// This is the exploration noise of AMC: the action is drawn around the actor's output and
/// always stays a valid action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruncatedNormal {
    mean: f32,
    sigma: f32,
}

impl TruncatedNormal {
    /// A truncated normal around `mean` (clamped into `[0, 1]`) with standard deviation `sigma`
    /// (`sigma <= 0` or non-finite means no noise). `None` when `mean` is NaN.
    pub fn new(mean: f32, sigma: f32) -> Option<Self> {
        if mean.is_nan() {
            return None;
        }
        let sigma = if sigma.is_finite() && sigma > 0.0 {
            sigma
        } else {
            0.0
        };
        Some(Self {
            mean: mean.clamp(0.0, 1.0),
            sigma,
        })
    }
}

impl Distribution<f32> for TruncatedNormal {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        if self.sigma == 0.0 {
            return self.mean;
        }
        let Ok(normal) = Normal::new(self.mean, self.sigma) else {
            return self.mean;
        };
        for _ in 0..MAX_RESAMPLES {
            let x: f32 = normal.sample(rng);
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        rng.random_range(0.0..=1.0)
    }
}

/// The exploration σ of episode `episode`: undefined (uniform actions) during warm-up, then
/// `σ0 · decay^(episode - warmup)`.
pub fn sigma_at(episode: usize, warmup: usize, sigma0: f32, decay: f32) -> Option<f32> {
    let after = episode.checked_sub(warmup)?;
    let exponent = i32::try_from(after).unwrap_or(i32::MAX);
    Some(sigma0 * decay.powi(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha8Rng;
    use rand::SeedableRng;

    #[test]
    fn samples_stay_in_unit_interval_for_any_mean_and_sigma() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for mean in [-2.0, 0.0, 0.01, 0.5, 0.99, 1.0, 3.0] {
            for sigma in [0.0, 1e-4, 0.1, 0.5, 2.0, 1e6] {
                let dist = TruncatedNormal::new(mean, sigma).unwrap();
                for _ in 0..200 {
                    let x = dist.sample(&mut rng);
                    assert!(
                        (0.0..=1.0).contains(&x),
                        "mean {mean} sigma {sigma} gave {x}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_sigma_stays_near_the_mean_and_large_sigma_spreads() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let narrow = TruncatedNormal::new(0.3, 0.01).unwrap();
        let xs: Vec<f32> = (0..500).map(|_| narrow.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.3).abs() < 0.005, "mean {mean}");
        assert!(xs.iter().all(|x| (x - 0.3).abs() < 0.06));

        let wide = TruncatedNormal::new(0.3, 0.5).unwrap();
        let xs: Vec<f32> = (0..500).map(|_| wide.sample(&mut rng)).collect();
        assert!(xs.iter().any(|&x| x > 0.8) && xs.iter().any(|&x| x < 0.1));
    }

    #[test]
    fn zero_sigma_returns_the_clamped_mean_and_nan_mean_is_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        assert_eq!(
            TruncatedNormal::new(0.7, 0.0).unwrap().sample(&mut rng),
            0.7
        );
        assert_eq!(
            TruncatedNormal::new(1.7, 0.0).unwrap().sample(&mut rng),
            1.0
        );
        assert!(TruncatedNormal::new(f32::NAN, 0.5).is_none());
    }

    #[test]
    fn sigma_is_undefined_in_warmup_then_decays_geometrically() {
        assert_eq!(sigma_at(0, 3, 0.5, 0.9), None);
        assert_eq!(sigma_at(2, 3, 0.5, 0.9), None);
        assert_eq!(sigma_at(3, 3, 0.5, 0.9), Some(0.5));
        let later = sigma_at(5, 3, 0.5, 0.9).unwrap();
        assert!((later - 0.5 * 0.81).abs() < 1e-6);
        let mut previous = f32::INFINITY;
        for episode in 3..40 {
            let sigma = sigma_at(episode, 3, 0.5, 0.95).unwrap();
            assert!(sigma < previous);
            previous = sigma;
        }
    }
}
