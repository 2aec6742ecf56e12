//! CMA-ES, the covariance matrix adaptation evolution strategy: a well-known black-box
//! optimiser the search races the agent against.
//!
//! Written from N. Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772,
//! 2016), the `(μ/μ_w, λ)`-CMA-ES with weighted recombination, cumulative step-size adaptation
//! and rank-one plus rank-μ covariance updates, the default parameters of its Table 1 (positive
//! weights only) and the `h_σ` stall of the rank-one path. The covariance matrix is
//! decomposed (cyclic Jacobi) every generation: the spaces it is meant for have a few dozen
//! dimensions at most.
//!
//! It minimises: ask for a population, score every point, tell the scores back.
//!
//! ```
//! use coinfer_agent::{CmaEs, CmaEsConfig};
//!
//! let config = CmaEsConfig { sigma0: 0.5, population: None, seed: 1 }.check()?;
//! let mut es = CmaEs::new(vec![1.0, -2.0, 0.5], &config)?;
//! for _ in 0..200 {
//!     let points = es.ask();
//!     let scores: Vec<f64> = points.iter().map(|x| x.iter().map(|v| v * v).sum()).collect();
//!     es.tell(&points, &scores)?;
//! }
//! assert!(es.mean().iter().all(|v| v.abs() < 1e-4));
//! # Ok::<(), coinfer_agent::AgentError>(())
//! ```

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// Settings of [`CmaEs`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CmaEsConfig {
    /// Initial step size `σ⁽⁰⁾` (a quarter to a half of the search interval's width is usual).
    pub sigma0: f64,
    /// Population size `λ`; `None` for the tutorial's default `4 + ⌊3 ln n⌋`.
    pub population: Option<usize>,
    /// Seed of the sampling.
    pub seed: u64,
}

/// A [`CmaEsConfig`] that passed [`CmaEsConfig::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckedCmaEsConfig(CmaEsConfig);

impl CmaEsConfig {
    /// Checks `sigma0` (finite, positive) and `population` (at least 2).
    ///
    /// # Errors
    /// [`AgentError::InvalidCmaEs`] naming the field.
    pub fn check(self) -> Result<CheckedCmaEsConfig, AgentError> {
        if !(self.sigma0.is_finite() && self.sigma0 > 0.0) {
            return Err(AgentError::InvalidCmaEs {
                field: "sigma0",
                reason: format!("must be finite and positive, got {}", self.sigma0),
            });
        }
        if let Some(lambda) = self.population
            && lambda < 2
        {
            return Err(AgentError::InvalidCmaEs {
                field: "population",
                reason: format!("must be at least 2, got {lambda}"),
            });
        }
        Ok(CheckedCmaEsConfig(self))
    }
}

/// The state of one CMA-ES run (see the [module docs](self)).
#[derive(Debug)]
pub struct CmaEs {
    n: usize,
    lambda: usize,
    weights: Vec<f64>,
    mueff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    damps: f64,
    chi_n: f64,
    mean: Vec<f64>,
    sigma: f64,
    pc: Vec<f64>,
    ps: Vec<f64>,
    /// Covariance matrix `C`, row major.
    c: Vec<f64>,
    /// Eigenvectors of `C` (columns), row major.
    b: Vec<f64>,
    /// Square roots of the eigenvalues of `C`.
    d: Vec<f64>,
    generation: usize,
    rng: StdRng,
}

impl CmaEs {
    /// A run starting at `mean` with the checked `config`.
    ///
    /// # Errors
    /// [`AgentError::InvalidCmaEs`] for an empty or non-finite start.
    pub fn new(mean: Vec<f64>, config: &CheckedCmaEsConfig) -> Result<CmaEs, AgentError> {
        let config = config.0;
        let n = mean.len();
        if n == 0 || mean.iter().any(|v| !v.is_finite()) {
            return Err(AgentError::InvalidCmaEs {
                field: "mean",
                reason: format!("the start must be a non-empty finite vector, got {mean:?}"),
            });
        }
        let nf = n as f64;
        let lambda = config
            .population
            .unwrap_or(4 + (3.0 * nf.ln()).floor() as usize);
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=mu)
            .map(|i| (lambda as f64 / 2.0 + 0.5).ln() - (i as f64).ln())
            .collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut identity = vec![0.0; n * n];
        for i in 0..n {
            identity[i * n + i] = 1.0;
        }
        Ok(CmaEs {
            n,
            lambda,
            weights,
            mueff,
            cc,
            cs,
            c1,
            cmu,
            damps,
            chi_n,
            mean,
            sigma: config.sigma0,
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            c: identity.clone(),
            b: identity,
            d: vec![1.0; n],
            generation: 0,
            rng: StdRng::seed_from_u64(config.seed),
        })
    }

    /// Population size `λ`.
    pub fn population(&self) -> usize {
        self.lambda
    }

    /// The current mean `m`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The current step size `σ`.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// Generations told so far.
    pub fn generation(&self) -> usize {
        self.generation
    }

    /// Samples a population: `x_k = m + σ B D z_k`, `z_k ~ N(0, I)`.
    pub fn ask(&mut self) -> Vec<Vec<f64>> {
        let n = self.n;
        (0..self.lambda)
            .map(|_| {
                let z: Vec<f64> = (0..n)
                    .map(|_| StandardNormal.sample(&mut self.rng))
                    .collect();
                (0..n)
                    .map(|i| {
                        let y: f64 = (0..n).map(|j| self.b[i * n + j] * self.d[j] * z[j]).sum();
                        self.mean[i] + self.sigma * y
                    })
                    .collect()
            })
            .collect()
    }

    /// Updates the distribution from `points` (as [`ask`](Self::ask) gave them) and their
    /// `scores` (lower is better).
    ///
    /// # Errors
    /// [`AgentError::InvalidCmaEs`] when the population or a score is malformed, or the
    /// distribution degenerates (non-finite step size or covariance).
    pub fn tell(&mut self, points: &[Vec<f64>], scores: &[f64]) -> Result<(), AgentError> {
        let n = self.n;
        if points.len() != self.lambda || scores.len() != self.lambda {
            return Err(AgentError::InvalidCmaEs {
                field: "population",
                reason: format!(
                    "told {} points and {} scores, expected {}",
                    points.len(),
                    scores.len(),
                    self.lambda
                ),
            });
        }
        if let Some(bad) = points.iter().find(|p| p.len() != n) {
            return Err(AgentError::InvalidCmaEs {
                field: "points",
                reason: format!("a point has {} coordinates, expected {n}", bad.len()),
            });
        }
        if let Some(bad) = scores.iter().find(|s| s.is_nan()) {
            return Err(AgentError::InvalidCmaEs {
                field: "scores",
                reason: format!("scores must not be NaN, got {bad}"),
            });
        }
        let mut order: Vec<usize> = (0..self.lambda).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let old = self.mean.clone();
        // y_i = (x_{i:λ} - m_old) / σ for the μ best.
        let ys: Vec<Vec<f64>> = order[..self.weights.len()]
            .iter()
            .map(|&k| {
                points[k]
                    .iter()
                    .zip(&old)
                    .map(|(x, m)| (x - m) / self.sigma)
                    .collect()
            })
            .collect();
        let yw: Vec<f64> = (0..n)
            .map(|i| self.weights.iter().zip(&ys).map(|(w, y)| w * y[i]).sum())
            .collect();
        for i in 0..n {
            self.mean[i] = old[i] + self.sigma * yw[i];
        }
        // C^{-1/2} y_w = B D^{-1} Bᵀ y_w.
        let bt_yw: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| self.b[i * n + j] * yw[i]).sum::<f64>() / self.d[j])
            .collect();
        let inv_sqrt_yw: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| self.b[i * n + j] * bt_yw[j]).sum())
            .collect();
        let ks = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        for (p, v) in self.ps.iter_mut().zip(&inv_sqrt_yw) {
            *p = (1.0 - self.cs) * *p + ks * v;
        }
        let ps_norm = self.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        let g = (self.generation + 1) as f64;
        let hsig = ps_norm / (1.0 - (1.0 - self.cs).powf(2.0 * g)).sqrt() / self.chi_n
            < 1.4 + 2.0 / (n as f64 + 1.0);
        let kc = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for (p, v) in self.pc.iter_mut().zip(&yw) {
            *p = (1.0 - self.cc) * *p + if hsig { kc * v } else { 0.0 };
        }
        let delta = if hsig {
            0.0
        } else {
            self.c1 * self.cc * (2.0 - self.cc)
        };
        let keep = 1.0 - self.c1 - self.cmu + delta;
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = self
                    .weights
                    .iter()
                    .zip(&ys)
                    .map(|(w, y)| w * y[i] * y[j])
                    .sum();
                self.c[i * n + j] = keep * self.c[i * n + j]
                    + self.c1 * self.pc[i] * self.pc[j]
                    + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0)).exp();
        if !self.sigma.is_finite() || self.c.iter().any(|v| !v.is_finite()) {
            return Err(AgentError::InvalidCmaEs {
                field: "sigma",
                reason: format!(
                    "the distribution degenerated after {} generations",
                    self.generation
                ),
            });
        }
        let (values, vectors) = symmetric_eigen(&self.c, n);
        self.d = values.iter().map(|v| v.max(1e-300).sqrt()).collect();
        self.b = vectors;
        self.generation += 1;
        Ok(())
    }
}

/// Eigenvalues and eigenvectors (columns, row major) of the symmetric `n × n` matrix `a`, by
/// cyclic Jacobi rotations.
fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    // Symmetrise against rounding.
    for i in 0..n {
        for j in i + 1..n {
            let m = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = m;
            a[j * n + i] = m;
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        f: impl Fn(&[f64]) -> f64,
        start: Vec<f64>,
        sigma0: f64,
        generations: usize,
        seed: u64,
    ) -> (Vec<f64>, f64) {
        let config = CmaEsConfig {
            sigma0,
            population: None,
            seed,
        }
        .check()
        .unwrap();
        let mut es = CmaEs::new(start, &config).unwrap();
        let mut best = (Vec::new(), f64::INFINITY);
        for _ in 0..generations {
            let points = es.ask();
            let scores: Vec<f64> = points.iter().map(|x| f(x)).collect();
            for (p, &s) in points.iter().zip(&scores) {
                if s < best.1 {
                    best = (p.clone(), s);
                }
            }
            es.tell(&points, &scores).unwrap();
        }
        best
    }

    #[test]
    fn sphere_in_five_dimensions_converges_to_the_origin() {
        let sphere = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
        for seed in 0..3 {
            let (x, f) = run(sphere, vec![3.0, -2.0, 1.0, 0.5, -4.0], 1.0, 300, seed);
            assert!(f < 1e-12, "seed {seed}: f = {f}");
            assert!(x.iter().all(|v| v.abs() < 1e-5), "{x:?}");
        }
    }

    #[test]
    fn rosenbrock_in_four_dimensions_reaches_the_valley_end() {
        let rosenbrock = |x: &[f64]| {
            x.windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum::<f64>()
        };
        let (x, f) = run(rosenbrock, vec![-1.0, 2.0, -1.0, 0.0], 0.5, 2000, 7);
        assert!(f < 1e-8, "f = {f}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-3), "{x:?}");
    }

    #[test]
    fn an_ill_conditioned_ellipsoid_is_learned_by_the_covariance() {
        // Condition number 1e6: without covariance adaptation the step size would stall.
        let ellipsoid = |x: &[f64]| {
            x.iter()
                .enumerate()
                .map(|(i, v)| 1e6f64.powf(i as f64 / 5.0) * v * v)
                .sum::<f64>()
        };
        let (_, f) = run(ellipsoid, vec![1.0; 6], 1.0, 800, 3);
        assert!(f < 1e-10, "f = {f}");
    }

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let n = 4;
        let a = [
            4.0, 1.0, 0.5, 0.0, 1.0, 3.0, 0.2, 0.1, 0.5, 0.2, 2.0, 0.3, 0.0, 0.1, 0.3, 1.0,
        ];
        let (values, v) = symmetric_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n)
                    .map(|k| v[i * n + k] * values[k] * v[j * n + k])
                    .sum();
                assert!((r - a[i * n + j]).abs() < 1e-10, "({i},{j}): {r}");
            }
        }
    }

    #[test]
    fn bad_settings_and_tells_are_refused_by_name() {
        let bad = CmaEsConfig {
            sigma0: 0.0,
            population: None,
            seed: 0,
        };
        assert!(bad.check().unwrap_err().to_string().contains("sigma0"));
        let bad = CmaEsConfig {
            sigma0: 1.0,
            population: Some(1),
            seed: 0,
        };
        assert!(bad.check().unwrap_err().to_string().contains("population"));
        let config = CmaEsConfig {
            sigma0: 1.0,
            population: None,
            seed: 0,
        }
        .check()
        .unwrap();
        assert!(CmaEs::new(Vec::new(), &config).is_err());
        let mut es = CmaEs::new(vec![0.0; 3], &config).unwrap();
        let points = es.ask();
        let err = es.tell(&points, &[1.0]).unwrap_err();
        assert!(err.to_string().contains("population"), "{err}");
        let nan = vec![f64::NAN; points.len()];
        assert!(
            es.tell(&points, &nan)
                .unwrap_err()
                .to_string()
                .contains("NaN")
        );
    }
}
