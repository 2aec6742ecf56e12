//! [`PairedDrop`]: a plan's accuracy drop against the backbone, measured on the same images,
//! with its confidence bound.

use serde::{Deserialize, Serialize};

/// A paired comparison of a plan with the backbone on the same validation images: the images
/// the backbone classifies right and the plan wrong (`lost`), the reverse (`gained`), out of
/// `images`. Images on which both agree carry no information about the difference, so this
/// is far less noisy than comparing two accuracies measured on different images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PairedDrop {
    /// Images the backbone gets right and the plan wrong.
    pub lost: u32,
    /// Images the plan gets right and the backbone wrong.
    pub gained: u32,
    /// Validation images compared (0: no comparison was made).
    pub images: u32,
}

impl PairedDrop {
    /// Compares per-image correctness of the backbone and a plan (same images, same order).
    pub fn between(backbone: &[bool], plan: &[bool]) -> PairedDrop {
        let mut drop = PairedDrop {
            images: backbone.len().min(plan.len()) as u32,
            ..PairedDrop::default()
        };
        for (&b, &p) in backbone.iter().zip(plan) {
            match (b, p) {
                (true, false) => drop.lost += 1,
                (false, true) => drop.gained += 1,
                _ => {}
            }
        }
        drop
    }

    /// The mean accuracy drop (backbone − plan), as a fraction; 0 without images.
    pub fn mean(&self) -> f64 {
        if self.images == 0 {
            return 0.0;
        }
        (f64::from(self.lost) - f64::from(self.gained)) / f64::from(self.images)
    }

    /// The standard error of [`mean`](Self::mean): the paired differences are −1, 0 or +1 per
    /// image, so their variance is `(lost + gained)/n − mean²`.
    pub fn std_error(&self) -> f64 {
        if self.images == 0 {
            return 0.0;
        }
        let n = f64::from(self.images);
        let second_moment = (f64::from(self.lost) + f64::from(self.gained)) / n;
        let variance = (second_moment - self.mean().powi(2)).max(0.0);
        (variance / n).sqrt()
    }

    /// The one-sided `confidence` upper bound of the drop (normal approximation).
    pub fn upper_bound(&self, confidence: f32) -> f64 {
        self.mean() + standard_normal_quantile(f64::from(confidence)) * self.std_error()
    }
}

/// The quantile function of the standard normal distribution (Acklam's rational
/// approximation, relative error below 1.2e-9), for `p` in (0, 1).
fn standard_normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_565_5),
            (0.95, 1.644_853_626_9),
            (0.99, 2.326_347_874),
        ] {
            assert!((standard_normal_quantile(p) - z).abs() < 1e-6, "{p}");
            assert!((standard_normal_quantile(1.0 - p) + z).abs() < 1e-6, "{p}");
        }
        assert!((standard_normal_quantile(0.001) + 3.090_232_306).abs() < 1e-6);
    }

    #[test]
    fn paired_drop_counts_disagreements_only() {
        let backbone = [true, true, false, false, true];
        let plan = [true, false, true, false, false];
        let drop = PairedDrop::between(&backbone, &plan);
        assert_eq!(
            drop,
            PairedDrop {
                lost: 2,
                gained: 1,
                images: 5
            }
        );
        assert!((drop.mean() - 0.2).abs() < 1e-12);
        // differences: 0, +1, −1, 0, +1 → variance 3/5 − 0.04 = 0.56; se = √(0.56/5).
        assert!((drop.std_error() - (0.56f64 / 5.0).sqrt()).abs() < 1e-12);
        let same = PairedDrop::between(&backbone, &backbone);
        assert_eq!((same.mean(), same.std_error()), (0.0, 0.0));
    }
}
