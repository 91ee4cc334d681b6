//! EM for Gaussian mixtures with full covariances (the estimator the paper refits every
//! generation: scikit-learn's `GaussianMixture(covariance_type="full", tol=1e-5,
//! max_iter=2000)`), deterministic for a given stream.
//!
//! - Initialisation: k-means++ seeding (D^2 sampling), then Lloyd's iterations until no label
//!   changes (at most `KMEANS_ITERATIONS`); the labels give one-hot responsibilities, and the
//!   first M-step gives the initial mixture (as scikit-learn's `init_params="kmeans"`).
//! - E-step: log w_k + ln N(x; mu_k, Sigma_k) through the Cholesky factor of Sigma_k, and
//!   responsibilities by log-sum-exp (no overflow or underflow for far points).
//! - M-step: N_k = sum_i r_ik + 10 eps, w_k = N_k / M, mu_k = sum_i r_ik x_i / N_k,
//!   Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + floor I (the covariance floor,
//!   scikit-learn's `reg_covar` = 1e-6).
//! - Convergence: EM stops when the mean log-likelihood per point (evaluated in the E-step, at
//!   the parameters before the M-step) changes by less than `tol`, or after `max_iterations`.

use super::Model;
use crate::rng::{ChainRng, below};

/// Lloyd iterations of the k-means initialisation at most (scikit-learn's `max_iter`).
pub const KMEANS_ITERATIONS: usize = 300;

/// The settings of one EM fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmConfig {
    /// Stop when the mean log-likelihood per point changes by less than this.
    pub tol: f64,
    pub max_iterations: usize,
    /// Added to every covariance's diagonal.
    pub covariance_floor: f64,
}

impl Default for EmConfig {
    /// The paper's: tol 1e-5, at most 2000 iterations, floor 1e-6.
    fn default() -> Self {
        EmConfig {
            tol: 1e-5,
            max_iterations: 2000,
            covariance_floor: 1e-6,
        }
    }
}

/// What one fit did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitReport {
    pub iterations: usize,
    pub converged: bool,
    /// The last E-step's mean log-likelihood per point.
    pub mean_loglik: f64,
}

/// Scratch space of EM (grown on demand; no allocation once warm).
#[derive(Default, Clone)]
pub struct Em {
    /// M x K responsibilities (row i, column k at i K + k).
    resp: Vec<f64>,
    /// K x d centres of k-means.
    centres: Vec<f64>,
    labels: Vec<usize>,
    /// D^2 weights of k-means++.
    dist: Vec<f64>,
    counts: Vec<usize>,
    /// d: a centred point, its whitened version.
    centred: Vec<f64>,
    white: Vec<f64>,
    /// Per E-step, the mean log-likelihood (for tests of monotonicity).
    pub trace: Vec<f64>,
    pub keep_trace: bool,
}

impl Em {
    pub fn new() -> Em {
        Em::default()
    }

    /// Fits `model` (its K and d fixed) to the M points `x` (rows of d) by EM from a k-means++
    /// start drawn from `rng`. Needs M >= K.
    pub fn fit(
        &mut self,
        x: &[f64],
        model: &mut Model,
        config: &EmConfig,
        rng: &mut ChainRng,
    ) -> FitReport {
        let (d, k) = (model.dim, model.components());
        let m = x.len() / d;
        assert!(m >= k && x.len() == m * d, "EM needs at least K points");
        self.resp.resize(m * k, 0.0);
        self.centred.resize(d, 0.0);
        self.white.resize(d, 0.0);
        self.trace.clear();
        self.kmeans(x, d, k, rng);
        self.resp.fill(0.0);
        for (i, &l) in self.labels.iter().enumerate() {
            self.resp[i * k + l] = 1.0;
        }
        self.m_step(x, model, config.covariance_floor);
        let mut lower = f64::NEG_INFINITY;
        let mut report = FitReport {
            iterations: 0,
            converged: false,
            mean_loglik: lower,
        };
        for iteration in 1..=config.max_iterations {
            let previous = lower;
            lower = self.e_step(x, model);
            if self.keep_trace {
                self.trace.push(lower);
            }
            self.m_step(x, model, config.covariance_floor);
            report = FitReport {
                iterations: iteration,
                converged: (lower - previous).abs() < config.tol,
                mean_loglik: lower,
            };
            if report.converged {
                break;
            }
        }
        report
    }

    /// k-means++ seeding, then Lloyd's iterations; labels in `self.labels`.
    fn kmeans(&mut self, x: &[f64], d: usize, k: usize, rng: &mut ChainRng) {
        let m = x.len() / d;
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let sq =
            |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum() };
        self.centres.clear();
        self.centres
            .extend_from_slice(row(below(rng, m as u64) as usize));
        self.dist.clear();
        self.dist
            .extend((0..m).map(|i| sq(row(i), &self.centres[..d])));
        for _ in 1..k {
            let total: f64 = self.dist.iter().sum();
            // D^2 sampling; all points on the centres (total 0) fall back to a uniform pick.
            let pick = if total > 0.0 {
                let target = rng.next_f64() * total;
                let mut acc = 0.0;
                let mut pick = m - 1;
                for (i, &w) in self.dist.iter().enumerate() {
                    acc += w;
                    if acc > target {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                below(rng, m as u64) as usize
            };
            let start = self.centres.len();
            self.centres.extend_from_slice(row(pick));
            for (i, w) in self.dist.iter_mut().enumerate() {
                *w = w.min(sq(row(i), &self.centres[start..start + d]));
            }
        }
        self.labels.clear();
        self.labels.resize(m, usize::MAX);
        self.counts.resize(k, 0);
        for _ in 0..KMEANS_ITERATIONS {
            let mut changed = false;
            for i in 0..m {
                let mut best = (f64::INFINITY, 0);
                for c in 0..k {
                    let dc = sq(row(i), &self.centres[c * d..(c + 1) * d]);
                    if dc < best.0 {
                        best = (dc, c);
                    }
                }
                changed |= self.labels[i] != best.1;
                self.labels[i] = best.1;
            }
            if !changed {
                break;
            }
            // New centres; an emptied cluster keeps its centre.
            self.counts.fill(0);
            let old = self.centres.clone();
            self.centres.fill(0.0);
            for (i, &l) in self.labels.iter().enumerate() {
                self.counts[l] += 1;
                for (c, v) in self.centres[l * d..(l + 1) * d].iter_mut().zip(row(i)) {
                    *c += v;
                }
            }
            for c in 0..k {
                let centre = &mut self.centres[c * d..(c + 1) * d];
                if self.counts[c] == 0 {
                    centre.copy_from_slice(&old[c * d..(c + 1) * d]);
                } else {
                    let n = self.counts[c] as f64;
                    centre.iter_mut().for_each(|v| *v /= n);
                }
            }
        }
    }

    /// Responsibilities of the current model; returns the mean log-likelihood per point.
    fn e_step(&mut self, x: &[f64], model: &Model) -> f64 {
        let (d, k) = (model.dim, model.components());
        let m = x.len() / d;
        let mut total = 0.0;
        for i in 0..m {
            let xi = &x[i * d..(i + 1) * d];
            let r = &mut self.resp[i * k..(i + 1) * k];
            let mut top = f64::NEG_INFINITY;
            for (c, rc) in r.iter_mut().enumerate() {
                *rc = model.log_weighted_density(c, xi, &mut self.white);
                top = top.max(*rc);
            }
            let mut sum = 0.0;
            for rc in r.iter_mut() {
                *rc = crate::vmath::exp(*rc - top);
                sum += *rc;
            }
            for rc in r.iter_mut() {
                *rc /= sum;
            }
            total += top + crate::vmath::ln(sum);
        }
        total / m as f64
    }

    /// The mixture maximising the expected complete log-likelihood under `self.resp`.
    fn m_step(&mut self, x: &[f64], model: &mut Model, floor: f64) {
        let (d, k) = (model.dim, model.components());
        let m = x.len() / d;
        let t = d * (d + 1) / 2;
        for c in 0..k {
            let nk: f64 = (0..m).map(|i| self.resp[i * k + c]).sum::<f64>() + 10.0 * f64::EPSILON;
            let mean = &mut model.means[c * d..(c + 1) * d];
            mean.fill(0.0);
            for i in 0..m {
                let r = self.resp[i * k + c];
                for (mu, v) in mean.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *mu += r * v;
                }
            }
            mean.iter_mut().for_each(|v| *v /= nk);
            let cov = &mut model.covs[c * t..(c + 1) * t];
            cov.fill(0.0);
            for i in 0..m {
                let r = self.resp[i * k + c];
                for (z, (v, mu)) in self
                    .centred
                    .iter_mut()
                    .zip(x[i * d..(i + 1) * d].iter().zip(mean.iter()))
                {
                    *z = v - mu;
                }
                let mut at = 0;
                for a in 0..d {
                    let ra = r * self.centred[a];
                    for b in 0..=a {
                        cov[at] += ra * self.centred[b];
                        at += 1;
                    }
                }
            }
            let mut at = 0;
            for a in 0..d {
                for b in 0..=a {
                    cov[at] /= nk;
                    if a == b {
                        cov[at] += floor;
                    }
                    at += 1;
                }
            }
            model.weights[c] = nk;
        }
        model.refactor();
    }
}
