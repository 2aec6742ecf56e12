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

/// What the validation set says about one decision: the paired accuracy drop against the
/// backbone with its interval, the discordant images it rests on, and how much observed loss
/// the tolerance can accept at this confidence (all in accuracy points unless named images).
///
/// With `n` images and `d` of them discordant, the drop's standard error is about
/// `√(d/n)/√n`: at 1,000 images, a plan that disagrees with the backbone on 4 % of them has a
/// one-sided 90 % bound 0.81 point above its observed drop, so it passes a 1-point tolerance
/// only when it loses no more images than it gains. That is the price of deciding on 1,000
/// images, and [`accepts_net_loss`](Self::accepts_net_loss) states it for every decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionConfidence {
    /// What the comparison was made on.
    pub basis: ConfidenceBasis,
    /// Validation images compared.
    pub images: u32,
    /// Images the backbone gets right and the plan wrong.
    pub lost: u32,
    /// Images the plan gets right and the backbone wrong.
    pub gained: u32,
    /// The observed drop (backbone − plan), points.
    pub drop_points: f64,
    /// The confidence level of the interval and of the bound.
    pub confidence: f32,
    /// Two-sided interval of the drop at `confidence` (normal approximation), points.
    pub interval_points: [f64; 2],
    /// One-sided upper bound of the drop at `confidence`: what the tolerance is compared
    /// with, points.
    pub upper_bound_points: f64,
    /// The accepted drop (the reward's tolerance), points; `None` for rewards without one.
    pub tolerance_points: Option<f64>,
    /// Whether the bound is within the tolerance.
    pub within_tolerance: Option<bool>,
    /// The most images a plan with this many discordant images may lose net
    /// (`lost − gained`) and still pass the tolerance (negative: it must gain that many).
    pub accepts_net_loss: Option<i64>,
    /// The smallest loss the validation set can accept: the bound of a plan that loses one
    /// image and gains none. A tolerance below it accepts only plans that lose nothing.
    pub floor_points: f64,
}

/// What a [`DecisionConfidence`] was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceBasis {
    /// The plan as the search scored it (no fine-tuning).
    Search,
    /// The plan after the three-step fine-tune (re-ranking).
    FineTuned,
}

impl PairedDrop {
    /// The comparison's [`DecisionConfidence`] at `confidence` in (0, 1), against a
    /// `tolerance` (fraction of accuracy) when the reward has one.
    pub fn confidence(
        &self,
        basis: ConfidenceBasis,
        confidence: f32,
        tolerance: Option<f32>,
    ) -> DecisionConfidence {
        let z_two_sided = standard_normal_quantile(0.5 + f64::from(confidence) / 2.0);
        let (mean, se) = (self.mean(), self.std_error());
        let upper = self.upper_bound(confidence);
        let discordant = i64::from(self.lost) + i64::from(self.gained);
        let accepts_net_loss = tolerance.map(|tolerance| {
            // Same discordant images, `k` more lost than gained: the largest `k` that passes.
            (-discordant..=discordant)
                .rev()
                .step_by(2)
                .find(|k| {
                    let drop = PairedDrop {
                        lost: ((discordant + k) / 2) as u32,
                        gained: ((discordant - k) / 2) as u32,
                        images: self.images,
                    };
                    drop.upper_bound(confidence) <= f64::from(tolerance)
                })
                .unwrap_or(-discordant)
        });
        let floor = PairedDrop {
            lost: 1,
            gained: 0,
            images: self.images.max(1),
        };
        DecisionConfidence {
            basis,
            images: self.images,
            lost: self.lost,
            gained: self.gained,
            drop_points: 100.0 * mean,
            confidence,
            interval_points: [
                100.0 * (mean - z_two_sided * se),
                100.0 * (mean + z_two_sided * se),
            ],
            upper_bound_points: 100.0 * upper,
            tolerance_points: tolerance.map(|t| f64::from(100.0 * t)),
            within_tolerance: tolerance.map(|t| upper <= f64::from(t)),
            accepts_net_loss,
            floor_points: 100.0 * floor.upper_bound(confidence),
        }
    }
}

impl DecisionConfidence {
    /// One line for a report: `drop 0.40 pt (90 % interval −0.12…0.92; 26 discordant: 15
    /// lost, 11 gained; accepts ≤ 2 net lost images)`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "drop {:.2} pt ({:.0} % interval {:.2}…{:.2}; bound {:.2} pt; {} discordant of {}: {} lost, {} gained",
            self.drop_points,
            100.0 * self.confidence,
            self.interval_points[0],
            self.interval_points[1],
            self.upper_bound_points,
            self.lost + self.gained,
            self.images,
            self.lost,
            self.gained
        );
        if let (Some(tolerance), Some(k)) = (self.tolerance_points, self.accepts_net_loss) {
            text.push_str(&format!(
                "; a {tolerance:.1}-pt tolerance accepts at most {k} net lost images at this discordance"
            ));
        }
        text.push_str(&format!("; floor {:.2} pt)", self.floor_points));
        text
    }
}

/// What a validation set of `images` buys: for a plan that disagrees with the backbone on
/// `discordant_fraction` of them, the most images it may lose net and still pass `tolerance`
/// at `confidence` (the [`DecisionConfidence::accepts_net_loss`] of such a plan), and the
/// set's floor.
pub fn validation_power(
    images: u32,
    discordant_fraction: f64,
    confidence: f32,
    tolerance: f32,
) -> DecisionConfidence {
    let discordant = (f64::from(images) * discordant_fraction.clamp(0.0, 1.0)).round() as u32;
    // Centred on no net loss; the bound and the acceptance depend only on `discordant`.
    let drop = PairedDrop {
        lost: discordant.div_ceil(2),
        gained: discordant / 2,
        images,
    };
    drop.confidence(ConfidenceBasis::Search, confidence, Some(tolerance))
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
    fn a_thousand_images_accept_no_net_loss_at_four_percent_discordance() {
        // 40 discordant of 1,000 at 90 %: the bound is 0.81 point above the drop, so a
        // 1-point tolerance accepts a net loss of 0 (the parity of 40 allows only even nets).
        let power = validation_power(1000, 0.04, 0.9, 0.01);
        assert_eq!(power.accepts_net_loss, Some(0));
        // 10,000 images at the same discordance: se falls by √10; ≈ 74 net lost images pass.
        let big = validation_power(10_000, 0.04, 0.9, 0.01);
        let k = big.accepts_net_loss.unwrap();
        assert!((70..=78).contains(&k), "{k}");
        // The floor: one lost image of 1,000 at 90 % is bounded at 0.1 + 1.28 × 0.1 points.
        assert!(
            (power.floor_points - 0.228).abs() < 0.002,
            "{}",
            power.floor_points
        );
    }

    #[test]
    fn confidence_reports_the_interval_around_the_observed_drop() {
        let drop = PairedDrop {
            lost: 15,
            gained: 11,
            images: 1000,
        };
        let c = drop.confidence(ConfidenceBasis::FineTuned, 0.9, Some(0.01));
        assert!((c.drop_points - 0.4).abs() < 1e-9);
        let half = 100.0 * 1.644_853_626_9 * drop.std_error();
        assert!((c.interval_points[0] - (0.4 - half)).abs() < 1e-6);
        assert!((c.interval_points[1] - (0.4 + half)).abs() < 1e-6);
        assert_eq!(c.within_tolerance, Some(c.upper_bound_points <= 1.0));
        // Moving the plan's net loss past what it accepts flips the verdict.
        let k = c.accepts_net_loss.unwrap();
        let at = |k: i64| PairedDrop {
            lost: ((26 + k) / 2) as u32,
            gained: ((26 - k) / 2) as u32,
            images: 1000,
        };
        assert!(at(k).upper_bound(0.9) <= 0.01);
        assert!(at(k + 2).upper_bound(0.9) > 0.01);
        assert!(
            c.summary().contains("26 discordant of 1000"),
            "{}",
            c.summary()
        );
        // Without a tolerance there is no verdict.
        let free = drop.confidence(ConfidenceBasis::Search, 0.9, None);
        assert_eq!((free.within_tolerance, free.accepts_net_loss), (None, None));
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
