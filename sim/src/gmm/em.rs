//! EM for Gaussian mixtures with full covariances (the estimator the paper refits every
//! generation: scikit-learn's `GaussianMixture(covariance_type="full", tol=1e-5,
//! max_iter=2000)`), deterministic for a given stream.
//!
//! - Initialisation: k-means++ seeding (D^2 sampling), then Lloyd's iterations until no label
//!   changes or the centres move by less than scikit-learn's tolerance (at most
//!   `KMEANS_ITERATIONS`); the labels give one-hot responsibilities, and the
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
/// Relative tolerance of the k-means centre shift (scikit-learn's `tol`).
pub const KMEANS_TOL: f64 = 1e-4;

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
    /// K x M responsibilities (component k, point i at k M + i).
    resp: Vec<f64>,
    /// The points coordinate-major: coordinate j of point i at j M + i.
    xt: Vec<f64>,
    /// Per block of points: K rows of log-densities, d rows of whitened coordinates.
    lp: Vec<f64>,
    white_block: Vec<f64>,
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
        self.xt.resize(m * d, 0.0);
        for (i, p) in x.chunks_exact(d).enumerate() {
            for (j, &v) in p.iter().enumerate() {
                self.xt[j * m + i] = v;
            }
        }
        self.lp.resize(k * BLOCK, 0.0);
        self.white_block.resize(d * BLOCK, 0.0);
        self.trace.clear();
        self.kmeans(x, d, k, rng);
        self.resp.fill(0.0);
        for (i, &l) in self.labels.iter().enumerate() {
            self.resp[l * m + i] = 1.0;
        }
        self.m_step(model, config.covariance_floor);
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
            self.m_step(model, config.covariance_floor);
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
        // scikit-learn's stopping rule: the squared centre shift at most 1e-4 times the mean
        // per-coordinate variance of the data.
        let mut variance = 0.0;
        for j in 0..d {
            let mean = (0..m).map(|i| x[i * d + j]).sum::<f64>() / m as f64;
            variance += (0..m).map(|i| (x[i * d + j] - mean).powi(2)).sum::<f64>() / m as f64;
        }
        let shift_tol = KMEANS_TOL * variance / d as f64;
        for _ in 0..KMEANS_ITERATIONS {
            if !self.assign(d, k) {
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
            if sq(&old, &self.centres) <= shift_tol {
                // Labels as of the final centres.
                self.assign(d, k);
                break;
            }
        }
    }

    /// Labels every point with its nearest centre (the first on ties; squared distances summed
    /// in coordinate order); returns whether a label changed. Centre by centre over the
    /// coordinate-major points, so the loops vectorise.
    fn assign(&mut self, d: usize, k: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn with_avx2(em: &mut Em, d: usize, k: usize) -> bool {
            em.assign_body(d, k)
        }
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked); the body has no fused operations.
            return unsafe { with_avx2(self, d, k) };
        }
        self.assign_body(d, k)
    }

    #[inline(always)]
    fn assign_body(&mut self, d: usize, k: usize) -> bool {
        let m = self.labels.len();
        let mut changed = false;
        let mut start = 0;
        while start < m {
            let n = BLOCK.min(m - start);
            let mut best = [f64::INFINITY; BLOCK];
            let mut label = [0usize; BLOCK];
            for c in 0..k {
                let centre = &self.centres[c * d..(c + 1) * d];
                let mut dist = [0.0; BLOCK];
                for (j, &cj) in centre.iter().enumerate() {
                    let xj = &self.xt[j * m + start..j * m + start + n];
                    for (s, &v) in dist.iter_mut().zip(xj) {
                        *s += (v - cj) * (v - cj);
                    }
                }
                for ((b, l), &s) in best.iter_mut().zip(label.iter_mut()).zip(&dist[..n]) {
                    if s < *b {
                        *b = s;
                        *l = c;
                    }
                }
            }
            for (old, &new) in self.labels[start..start + n].iter_mut().zip(&label) {
                changed |= *old != new;
                *old = new;
            }
            start += n;
        }
        changed
    }

    /// Responsibilities of the current model; returns the mean log-likelihood per point. The
    /// body is compiled a second time with AVX2/FMA enabled, so that `vmath`'s fused
    /// multiply-adds are single instructions there (the same correctly rounded results, so the
    /// same bits, as the portable build's).
    fn e_step(&mut self, x: &[f64], model: &Model) -> f64 {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn with_fma(em: &mut Em, x: &[f64], model: &Model) -> f64 {
            em.e_step_body(x, model)
        }
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            return unsafe { with_fma(self, x, model) };
        }
        self.e_step_body(x, model)
    }

    /// Blocks of `BLOCK` points, component by component: the loops run over points with the
    /// coordinates contiguous, so they vectorise; every point sees the same operations in the
    /// same order as `Model::log_weighted_density` (the same bits).
    #[inline(always)]
    fn e_step_body(&mut self, _x: &[f64], model: &Model) -> f64 {
        let (d, k) = (model.dim, model.components());
        let m = self.xt.len() / d;
        let t = d * (d + 1) / 2;
        let constant = d as f64 * super::LN_2PI;
        let mut total = 0.0;
        let mut start = 0;
        while start < m {
            let n = BLOCK.min(m - start);
            for c in 0..k {
                let l = &model.factors[c * t..(c + 1) * t];
                let mu = &model.means[c * d..(c + 1) * d];
                let mut q = [0.0; BLOCK];
                for j in 0..d {
                    let row = &l[j * (j + 1) / 2..j * (j + 1) / 2 + j + 1];
                    let xj = &self.xt[j * m + start..j * m + start + n];
                    let (done, rest) = self.white_block.split_at_mut(j * BLOCK);
                    let wj = &mut rest[..n];
                    for (w, &v) in wj.iter_mut().zip(xj) {
                        *w = v - mu[j];
                    }
                    for (lj, &a) in row[..j].iter().enumerate() {
                        let wl = &done[lj * BLOCK..lj * BLOCK + n];
                        for (w, &b) in wj.iter_mut().zip(wl) {
                            *w -= a * b;
                        }
                    }
                    let diag = row[j];
                    for (w, qi) in wj.iter_mut().zip(q.iter_mut()) {
                        *w /= diag;
                        *qi += *w * *w;
                    }
                }
                let base = model.log_weights[c];
                let half = constant + model.log_dets[c];
                for (out, &qi) in self.lp[c * BLOCK..c * BLOCK + n].iter_mut().zip(&q) {
                    *out = base - 0.5 * (half + qi);
                }
            }
            let mut top = [f64::NEG_INFINITY; BLOCK];
            for c in 0..k {
                for (t, &v) in top.iter_mut().zip(&self.lp[c * BLOCK..c * BLOCK + n]) {
                    *t = t.max(v);
                }
            }
            let mut sum = [0.0; BLOCK];
            for c in 0..k {
                let lp = &mut self.lp[c * BLOCK..c * BLOCK + n];
                for ((v, &t), s) in lp.iter_mut().zip(&top).zip(sum.iter_mut()) {
                    *v = crate::vmath::exp(*v - t);
                    *s += *v;
                }
            }
            for c in 0..k {
                let lp = &self.lp[c * BLOCK..c * BLOCK + n];
                let r = &mut self.resp[c * m + start..c * m + start + n];
                for ((r, &v), &s) in r.iter_mut().zip(lp).zip(&sum) {
                    *r = v / s;
                }
            }
            // The logarithms in their own loop (it vectorises), then the sum in point order.
            let mut log_sum = [0.0; BLOCK];
            for (l, &s) in log_sum.iter_mut().zip(&sum) {
                *l = crate::vmath::ln(s);
            }
            for (&t, &l) in top[..n].iter().zip(&log_sum) {
                total += t + l;
            }
            start += n;
        }
        total / m as f64
    }

    /// The mixture maximising the expected complete log-likelihood under `self.resp`: N_k and
    /// the means, then the scatter about the new means (centred: no cancellation when the
    /// components are narrow beside their means). Sums over points keep four partial sums in a
    /// fixed order (`sum4`), so they vectorise and never depend on the CPU.
    fn m_step(&mut self, model: &mut Model, floor: f64) {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn with_avx2(em: &mut Em, model: &mut Model, floor: f64) {
            em.m_step_body(model, floor)
        }
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked); the body has no fused operations.
            return unsafe { with_avx2(self, model, floor) };
        }
        self.m_step_body(model, floor)
    }

    #[inline(always)]
    fn m_step_body(&mut self, model: &mut Model, floor: f64) {
        let (d, k) = (model.dim, model.components());
        let m = self.xt.len() / d;
        let t = d * (d + 1) / 2;
        let mut centred = std::mem::take(&mut self.centred);
        centred.resize(d * m, 0.0);
        for c in 0..k {
            let r = &self.resp[c * m..(c + 1) * m];
            let nk = sum4!(|w| w, r) + 10.0 * f64::EPSILON;
            model.weights[c] = nk;
            for j in 0..d {
                let xj = &self.xt[j * m..(j + 1) * m];
                let mean = sum4!(|w, v| w * v, r, xj) / nk;
                model.means[c * d + j] = mean;
                for (z, &v) in centred[j * m..(j + 1) * m].iter_mut().zip(xj) {
                    *z = v - mean;
                }
            }
            let cov = &mut model.covs[c * t..(c + 1) * t];
            let mut at = 0;
            for a in 0..d {
                let za = &centred[a * m..(a + 1) * m];
                for b in 0..=a {
                    let zb = &centred[b * m..(b + 1) * m];
                    let s = sum4!(|w, p, q| w * p * q, r, za, zb);
                    cov[at] = s / nk + if a == b { floor } else { 0.0 };
                    at += 1;
                }
            }
        }
        self.centred = centred;
        model.refactor();
    }
}

/// Points per block of the E-step.
const BLOCK: usize = 64;

/// sum_i f(i) over aligned slices with four interleaved partial sums (value i into lane i mod 4),
/// combined as (s0 + s1) + (s2 + s3): a fixed order that vectorises.
macro_rules! sum4 {
    (|$($v:ident),+| $body:expr, $($slice:expr),+) => {{
        let mut s = [0.0f64; 4];
        let n = [$($slice.len()),+][0];
        $(let $v = &$slice[..n];)+
        let whole = n - n % 4;
        let mut i = 0;
        while i < whole {
            for lane in 0..4 {
                $(let $v = $v[i + lane];)+
                s[lane] += $body;
            }
            i += 4;
        }
        for lane in 0..n - whole {
            $(let $v = $v[whole + lane];)+
            s[lane] += $body;
        }
        (s[0] + s[1]) + (s[2] + s[3])
    }};
}
use sum4;
