//! Gaussian mixtures fitted by EM, generation after generation (derivation: `proofs/gmm.md`).
//!
//! The process has no closed-form law: what is exact here is the spec, the truth, the squared
//! L2 distance between two mixture densities (a finite sum of Gaussian overlaps), and the
//! moment-matching limit of the functional error (one Gaussian fitted to a mixture by maximum
//! likelihood tends to the mixture's mean and covariance). The simulation is `collapse_sim::gmm`.

use crate::SpecError;
use crate::schedule::Schedule;
use crate::strategy::Strategy;
use nalgebra::{DMatrix, DVector};

/// Largest dimension accepted (EM costs K d^2 per point and iteration).
pub const MAX_DIM: u64 = 64;
/// Largest number of components accepted.
pub const MAX_COMPONENTS: u64 = 64;
/// How far the weights of a mixture may sum from 1 (they are then normalised exactly).
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// A Gaussian mixture sum_k w_k N(mu_k, Sigma_k) in d dimensions, validated: weights finite,
/// > 0 and summing to 1; means finite; covariances symmetric positive definite.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    pub dim: usize,
    pub weights: Vec<f64>,
    /// K x d, component k at k d.
    pub means: Vec<f64>,
    /// K x d x d, row-major, component k at k d^2.
    pub covs: Vec<f64>,
}

impl Mixture {
    /// A mixture from its weights, means (one row of d per component) and covariances (one d x d
    /// matrix per component, rows of d). Weights within `WEIGHT_SUM_TOLERANCE` of summing to 1
    /// are normalised; symmetric means equal within 1e-12 relative.
    pub fn new(
        weights: Vec<f64>,
        means: Vec<Vec<f64>>,
        covs: Vec<Vec<Vec<f64>>>,
    ) -> Result<Mixture, SpecError> {
        let k = weights.len();
        if k == 0 || k as u64 > MAX_COMPONENTS {
            return Err(SpecError::invalid(
                "truth",
                format!("needs 1..={MAX_COMPONENTS} components, got {k}"),
            ));
        }
        if means.len() != k || covs.len() != k {
            return Err(SpecError::invalid(
                "truth",
                format!(
                    "{k} weights but {} means and {} covariances",
                    means.len(),
                    covs.len()
                ),
            ));
        }
        let d = means[0].len();
        if d == 0 || d as u64 > MAX_DIM {
            return Err(SpecError::invalid(
                "truth",
                format!("dimension must be in 1..={MAX_DIM}, got {d}"),
            ));
        }
        if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w <= 0.0) {
            return Err(SpecError::invalid(
                "truth",
                format!("every weight must be finite and > 0, got {w}"),
            ));
        }
        let total: f64 = weights.iter().sum();
        if (total - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            return Err(SpecError::invalid(
                "truth",
                format!("weights must sum to 1, got {total}"),
            ));
        }
        let mut flat_means = Vec::with_capacity(k * d);
        let mut flat_covs = Vec::with_capacity(k * d * d);
        for (j, (mean, cov)) in means.iter().zip(&covs).enumerate() {
            if mean.len() != d || mean.iter().any(|x| !x.is_finite()) {
                return Err(SpecError::invalid(
                    "truth",
                    format!("mean {j} must have {d} finite entries"),
                ));
            }
            flat_means.extend_from_slice(mean);
            if cov.len() != d || cov.iter().any(|row| row.len() != d) {
                return Err(SpecError::invalid(
                    "truth",
                    format!("covariance {j} must be {d} x {d}"),
                ));
            }
            let m = DMatrix::from_fn(d, d, |r, c| cov[r][c]);
            if m.iter().any(|x| !x.is_finite()) {
                return Err(SpecError::invalid(
                    "truth",
                    format!("covariance {j} has a non-finite entry"),
                ));
            }
            let scale = m.amax();
            if (&m - m.transpose()).amax() > 1e-12 * scale {
                return Err(SpecError::invalid(
                    "truth",
                    format!("covariance {j} is not symmetric"),
                ));
            }
            if m.clone().cholesky().is_none() {
                return Err(SpecError::invalid(
                    "truth",
                    format!("covariance {j} is not positive definite"),
                ));
            }
            flat_covs.extend(m.transpose().iter().copied());
        }
        let weights = weights.iter().map(|w| w / total).collect();
        Ok(Mixture {
            dim: d,
            weights,
            means: flat_means,
            covs: flat_covs,
        })
    }

    /// N(0, I_d): the paper's truth for d = 2 (one isotropic blob, fitted by two components).
    pub fn standard_normal(d: usize) -> Mixture {
        Mixture {
            dim: d,
            weights: vec![1.0],
            means: vec![0.0; d],
            covs: DMatrix::<f64>::identity(d, d).iter().copied().collect(),
        }
    }

    pub fn components(&self) -> usize {
        self.weights.len()
    }

    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }

    pub fn cov(&self, k: usize) -> DMatrix<f64> {
        let d = self.dim;
        DMatrix::from_row_slice(d, d, &self.covs[k * d * d..(k + 1) * d * d])
    }

    /// The density at x.
    pub fn density(&self, x: &[f64]) -> f64 {
        let x = DVector::from_column_slice(x);
        (0..self.components())
            .map(|k| {
                let mu = DVector::from_column_slice(self.mean(k));
                self.weights[k] * normal_density(&(&x - mu), &self.cov(k))
            })
            .sum()
    }

    /// The mixture's mean sum w_k mu_k and covariance sum w_k (Sigma_k + mu_k mu_k^T) - m m^T:
    /// the limit of the maximum-likelihood single Gaussian fitted to M draws as M -> infinity.
    pub fn moments(&self) -> (Vec<f64>, DMatrix<f64>) {
        let d = self.dim;
        let mut m = DVector::zeros(d);
        let mut second = DMatrix::zeros(d, d);
        for k in 0..self.components() {
            let mu = DVector::from_column_slice(self.mean(k));
            m += self.weights[k] * &mu;
            second += self.weights[k] * (self.cov(k) + &mu * mu.transpose());
        }
        let cov = second - &m * m.transpose();
        (m.iter().copied().collect(), (&cov + cov.transpose()) * 0.5)
    }

    /// The single Gaussian N(mean, cov) of the mixture's moments.
    pub fn moment_matched(&self) -> Mixture {
        let (mean, cov) = self.moments();
        Mixture {
            dim: self.dim,
            weights: vec![1.0],
            means: mean,
            covs: cov.transpose().iter().copied().collect(),
        }
    }
}

/// N(x; 0, S) for a positive definite S (0 if S is not).
fn normal_density(x: &DVector<f64>, s: &DMatrix<f64>) -> f64 {
    let d = x.len() as f64;
    match s.clone().cholesky() {
        Some(c) => {
            let z = c.l().solve_lower_triangular(x).expect("positive diagonal");
            let log_det: f64 = 2.0 * c.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
            (-0.5 * (d * (2.0 * std::f64::consts::PI).ln() + log_det + z.norm_squared())).exp()
        }
        None => 0.0,
    }
}

/// The integral of the product of two Gaussian densities: N(mu_a; mu_b, Sigma_a + Sigma_b).
pub fn gaussian_overlap(
    mu_a: &[f64],
    cov_a: &DMatrix<f64>,
    mu_b: &[f64],
    cov_b: &DMatrix<f64>,
) -> f64 {
    let delta = DVector::from_column_slice(mu_a) - DVector::from_column_slice(mu_b);
    normal_density(&delta, &(cov_a + cov_b))
}

/// The squared L2 distance between the densities of two mixtures, in closed form:
/// sum_ij a_i a_j O(i, j) + sum_ij b_i b_j O(i, j) - 2 sum_ij a_i b_j O(i, j), with O the
/// Gaussian overlaps (proofs/gmm.md, claim gmm.1.1). Rounding: the three sums are of
/// nonnegative terms, so the result is accurate to a few ulps of the largest of them.
pub fn l2_sq(a: &Mixture, b: &Mixture) -> f64 {
    assert_eq!(a.dim, b.dim, "mixtures of different dimensions");
    let cross = |p: &Mixture, q: &Mixture| -> f64 {
        let (pc, qc): (Vec<_>, Vec<_>) = (
            (0..p.components()).map(|k| p.cov(k)).collect(),
            (0..q.components()).map(|k| q.cov(k)).collect(),
        );
        let mut s = 0.0;
        for (i, ci) in pc.iter().enumerate() {
            for (j, cj) in qc.iter().enumerate() {
                s += p.weights[i] * q.weights[j] * gaussian_overlap(p.mean(i), ci, q.mean(j), cj);
            }
        }
        s
    };
    (cross(a, a) + cross(b, b) - 2.0 * cross(a, b)).max(0.0)
}

/// The parameters of the generational EM experiment, shared by simulation and report.
#[derive(Debug, Clone, PartialEq)]
pub struct GmmSpec {
    /// K: components of every fitted mixture.
    pub components: usize,
    pub dim: usize,
    pub schedule: Schedule,
    pub generations: u64,
    /// D_0, the truth generation 1 is fitted to.
    pub truth: Mixture,
    pub strategy: Strategy,
}

impl GmmSpec {
    /// Every training set needs M_i >= K (d + 1) points (a full covariance per component).
    pub fn new(
        components: u64,
        schedule: Schedule,
        generations: u64,
        truth: Mixture,
    ) -> Result<GmmSpec, SpecError> {
        if components == 0 || components > MAX_COMPONENTS {
            return Err(SpecError::invalid(
                "components",
                format!("must be in 1..={MAX_COMPONENTS}, got {components}"),
            ));
        }
        crate::gaussian::check_generations(generations)?;
        let d = truth.dim as u64;
        let need = components * (d + 1);
        let sizes = schedule.sizes(generations)?;
        if let Some((i, m)) = sizes.iter().enumerate().find(|&(_, &m)| m < need) {
            return Err(SpecError::invalid(
                "samples",
                format!(
                    "every sample size must be at least K (D + 1) = {need} (a full covariance per component), got M_{i} = {m}"
                ),
            ));
        }
        Ok(GmmSpec {
            components: components as usize,
            dim: truth.dim,
            schedule,
            generations,
            truth,
            strategy: Strategy::Replace,
        })
    }

    /// The paper's setting: K = 2 components fitted to N(0, I_2), M = 1000, N generations.
    pub fn paper(samples: u64, generations: u64) -> Result<GmmSpec, SpecError> {
        GmmSpec::new(
            2,
            Schedule::constant(samples),
            generations,
            Mixture::standard_normal(2),
        )
    }

    /// The same spec with data strategy `strategy` (validated against the sizes as in one
    /// dimension).
    pub fn with_strategy(self, strategy: Strategy) -> Result<GmmSpec, SpecError> {
        let sizes = self.sample_sizes();
        strategy.validate(&sizes)?;
        Ok(GmmSpec { strategy, ..self })
    }

    /// M_0 .. M_{N-1} (validated by `new`).
    pub fn sample_sizes(&self) -> Vec<u64> {
        self.schedule
            .sizes(self.generations)
            .expect("validated in GmmSpec::new")
    }
}

#[cfg(test)]
mod tests;
