//! Ensembles of the d-dimensional Gaussian recursion (theory: `collapse_analysis::mvn`,
//! derivation: `proofs/mvn.md`). Generation 0 is N(0, Sigma), Sigma = diag(`cov_diag`);
//! generation i+1 is N(sample mean, unbiased sample covariance) of M_i draws from generation i.
//!
//! **State.** Each chain keeps mu_n - mu and the Cholesky factor L_n of Sigma_n (lower
//! triangular, positive diagonal), stored as 2^e L~ with an integer exponent e: L~ is packed by
//! rows (entry (i, j), j <= i, at i (i + 1) / 2 + j) and rescaled by an exact power of two
//! whenever its largest entry leaves [2^-64, 2^65), so that Sigma_n ~ 1e-300 after thousands of
//! generations neither underflows nor loses digits (the scaling is exact: it changes no bit of
//! 2^e L~). ln det Sigma_n = 2 sum_j ln L_jj needs no factorisation; each chain carries it
//! separately, as a sum of per-generation logarithms (2 sum_j ln T_jj - d ln k_i below), because
//! the directions of Sigma_n shrink at different rates (the Lyapunov exponents of
//! `collapse_analysis::mvn`): after enough generations the smallest entries of L~ fall far
//! below rounding relative to the largest and are flushed to 0 (below 2^-250: `FLUSH_BELOW`),
//! while ln det stays exact (as `crate::gaussian` carries ln sigma_n^2). Quantities that need the
//! small directions themselves (ln lambda_min, the condition number) are limited by rounding
//! once cond(Sigma_n) exceeds about 1e16 (singular values of the factor have absolute accuracy
//! ~ eps ||L_n||), and become -inf / inf once a diagonal entry is flushed.
//!
//! **Both methods update the factor as L_{i+1} = L_i T / sqrt(k_i)**, k_i = M_i - 1, with a
//! lower-triangular T (so L_{i+1} is again lower triangular with positive diagonal: the Cholesky
//! factor itself, no re-factorisation) and the mean as mu_{i+1} = mu_i + L_i v:
//! - `exact`: M_i standard normal vectors z_1..z_M (the draws are x_k = mu_i + L_i z_k), their
//!   sample mean zbar and scatter matrix Q = sum (z_k - zbar)(z_k - zbar)^T (Welford's centred
//!   one-pass update: accurate, O(M d^2), no M x d buffer), T = chol(Q) and v = zbar. This is
//!   exactly the user's fit of the x_k: their sample mean is mu_i + L_i zbar and their unbiased
//!   covariance L_i (Q / k_i) L_i^T, whose Cholesky factor is L_i chol(Q) / sqrt(k_i) (a product of
//!   lower-triangular factors with positive diagonals; the test `exact_step_is_the_literal_fit`
//!   checks it against the literal computation). Fitting in generation i's own frame keeps full
//!   accuracy when L_i is tiny beside mu_i, as `crate::gaussian` does in one dimension.
//! - `sufficient`: v = z / sqrt(M_i), z ~ N(0, I_d), and T = C the Bartlett factor of
//!   Wishart_d(I, k_i): C_jj = sqrt(chi^2_{k_i - j}) (j = 0..d-1), C_jl ~ N(0, 1) for l < j, all
//!   independent. O(d^3) per generation whatever M_i.
//!
//! Draw order per chain and generation (a change is a change of stream: see the
//! value-stability test): `exact` draws z_1, ..., z_M, each as d normals in coordinate order;
//! `sufficient` draws z (d normals), then row j = 0..d-1 of C: C_j0, ..., C_j(j-1) (normals),
//! then chi^2_{k - j}. Normals are `crate::normal`'s ziggurat, chi-squares `crate::kernels`'
//! Marsaglia–Tsang sampler.
//!
//! Reproducibility as in `crate::gaussian`: chain c draws from `ChainRng::for_chain(seed,
//! stream::MVN, c)`, chains run in fixed blocks of `CHUNK` and block statistics are merged in
//! block order, so results are bit-identical for any thread count, and for any split of the
//! chains into pieces (`simulate_piece`, merged by `crate::shard`). The hot loops (the exact
//! method's rank-four scatter updates, the triangular products) are plain loops with a fixed
//! order of operations, compiled a second time for AVX2 (same IEEE operations, same bits, no FMA
//! contraction); dot products keep four partial sums in a fixed order.

use crate::SimError;
use crate::kernels::ChiSquareConstants;
use crate::normal::StandardNormal;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
use crate::shard::{self, Assemble, ChainRange, Layout, PieceSink, Words};
use crate::stats::{Accumulator, Moments, QuantileTracker, Summary};
use collapse_analysis::{MvnSpec, Strategy};
use nalgebra::{DMatrix, DVector, SVD, SymmetricEigen};
use rayon::prelude::*;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MvnMethod {
    /// Draw all M_i vectors and fit mean and covariance, as a user would: O(M d^2).
    Exact,
    /// Draw the fit from its exact law: mean ~ N, covariance by the Bartlett decomposition of
    /// a Wishart: O(d^3).
    Sufficient,
}

impl MvnMethod {
    pub fn parse(text: &str) -> Result<MvnMethod, SimError> {
        match text {
            "exact" => Ok(MvnMethod::Exact),
            "sufficient" => Ok(MvnMethod::Sufficient),
            other => Err(SimError::Invalid {
                what: "method",
                why: format!("'{other}' (expected exact or sufficient)"),
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            MvnMethod::Exact => "exact",
            MvnMethod::Sufficient => "sufficient",
        }
    }
}

/// Largest ensemble accepted.
pub const MAX_CHAINS: u64 = 10_000_000;
/// Largest chain state accepted, in doubles (chains x (d + d (d + 1) / 2)): 2 GiB.
pub const MAX_STATE_DOUBLES: u64 = 1 << 28;

#[derive(Debug, Clone, PartialEq)]
pub struct MvnConfig {
    pub chains: u64,
    pub seed: u64,
    pub method: MvnMethod,
    /// Worker threads (None: rayon's default). Results do not depend on it.
    pub threads: Option<usize>,
    /// Show a progress bar on a terminal for runs longer than a second.
    pub progress: bool,
}

impl MvnConfig {
    pub fn new(chains: u64, seed: u64, method: MvnMethod) -> MvnConfig {
        MvnConfig {
            chains,
            seed,
            method,
            threads: None,
            progress: false,
        }
    }
}

/// Statistics over chains at generation n. Field names follow the theory's
/// (`collapse_analysis::mvn::MvnMoments`) without the `expected_` prefix; [`Self::named`] lists
/// every quantity under its theory key.
#[derive(Debug, Clone, PartialEq)]
pub struct MvnGenerationStats {
    pub n: u64,
    /// ||mu_n - mu||^2 (theory: `mean_sq_error`).
    pub mean_sq_error: Summary,
    /// tr Sigma_n (theory: `expected_trace`).
    pub trace: Summary,
    /// ln det Sigma_n: `mean` (theory: `expected_log_det`) and the across-chain `variance`
    /// (theory: `var_log_det`), each with its standard error.
    pub log_det: Moments,
    /// tr(Sigma_n^2) (theory: `expected_trace_of_square`).
    pub trace_of_square: Summary,
    /// (tr Sigma_n)^2 (theory: `expected_square_of_trace`).
    pub square_of_trace: Summary,
    /// ||Sigma_n - Sigma||_F^2 (theory: `frobenius_sq_error`).
    pub frobenius_sq_error: Summary,
    /// W2^2(N(mu_n, Sigma_n), N(mu, Sigma)), exact (theory: bounded below by
    /// `w2_sq_lower_bound`).
    pub w2_sq: Summary,
    /// Exact sample quartiles (25%, 50%, 75%; type 7) of W2^2 over chains.
    pub w2_sq_quartiles: [f64; 3],
    /// ln of the largest eigenvalue of Sigma_n.
    pub log_lambda_max: Summary,
    /// ln of the smallest eigenvalue of Sigma_n (limited by rounding once cond(Sigma_n) exceeds
    /// ~1e16, -inf once the factor's small entries underflow: see the module notes).
    pub log_lambda_min: Summary,
    /// ln lambda_max / lambda_min (the same limits).
    pub log_condition: Summary,
}

impl MvnGenerationStats {
    /// Every per-generation mean (with its standard error) under the name of its theory
    /// counterpart (`MvnMoments::named()`'s keys; `expected_w2_sq` and the eigenvalue rows have
    /// no exact theory). `var_log_det` is the across-chain variance of ln det Sigma_n.
    pub fn named(&self) -> [(&'static str, Summary); 11] {
        let variance = Summary {
            mean: self.log_det.variance,
            stderr: self.log_det.variance_stderr,
        };
        let log_det = Summary {
            mean: self.log_det.mean,
            stderr: self.log_det.stderr,
        };
        [
            ("mean_sq_error", self.mean_sq_error),
            ("expected_trace", self.trace),
            ("expected_log_det", log_det),
            ("var_log_det", variance),
            ("expected_trace_of_square", self.trace_of_square),
            ("expected_square_of_trace", self.square_of_trace),
            ("frobenius_sq_error", self.frobenius_sq_error),
            ("expected_w2_sq", self.w2_sq),
            ("expected_log_lambda_max", self.log_lambda_max),
            ("expected_log_lambda_min", self.log_lambda_min),
            ("expected_log_condition", self.log_condition),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct MvnRun {
    pub spec: MvnSpec,
    pub config: MvnConfig,
    /// Generations 0..=N.
    pub rows: Vec<MvnGenerationStats>,
    pub seconds: f64,
    final_means: Vec<f64>,
    final_factors: Vec<f64>,
    final_exponents: Vec<i32>,
    final_log_dets: Vec<f64>,
}

impl MvnRun {
    /// The state of chain `c` after the last generation (panics unless c < chains).
    pub fn final_chain(&self, c: usize) -> ChainState {
        let d = self.spec.dim;
        let t = packed_len(d);
        ChainState {
            mean: self.final_means[c * d..(c + 1) * d].to_vec(),
            factor: self.final_factors[c * t..(c + 1) * t].to_vec(),
            exponent: self.final_exponents[c],
            log_det: self.final_log_dets[c],
        }
    }
}

/// One chain's state: mu_n - mu, the Cholesky factor L_n = 2^`exponent` L~ of Sigma_n, and
/// ln det Sigma_n (carried in log form; see the module notes).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainState {
    pub mean: Vec<f64>,
    /// L~, packed lower triangle by rows: entry (i, j), j <= i, at i (i + 1) / 2 + j.
    pub factor: Vec<f64>,
    pub exponent: i32,
    pub log_det: f64,
}

impl ChainState {
    /// Generation 0: mu_0 = mu (offset 0), L_0 = diag(sqrt(cov_diag)) (of dimension
    /// `cov_diag.len()`).
    pub fn truth(spec: &MvnSpec) -> ChainState {
        let d = spec.cov_diag.len();
        let mut factor = vec![0.0; packed_len(d)];
        for (j, v) in spec.cov_diag.iter().enumerate() {
            factor[diag_index(j)] = v.sqrt();
        }
        ChainState {
            mean: vec![0.0; d],
            factor,
            exponent: 0,
            log_det: spec.cov_diag.iter().map(|&v| ln_positive(v)).sum(),
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// L_n as a dense matrix.
    pub fn cholesky(&self) -> DMatrix<f64> {
        let scale = |x: f64| ldexp(x, self.exponent);
        DMatrix::from_fn(self.dim(), self.dim(), |i, j| {
            if j <= i {
                scale(self.factor[packed_index(i, j)])
            } else {
                0.0
            }
        })
    }

    /// Sigma_n = L_n L_n^T (symmetric by construction: entry (i, j) and (j, i) are the same sum).
    pub fn covariance(&self) -> DMatrix<f64> {
        let d = self.dim();
        let mut sigma = vec![0.0; packed_len(d)];
        form_covariance(&self.factor, d, &mut sigma);
        let s =
            |i: usize, j: usize| ldexp(sigma[packed_index(i.max(j), i.min(j))], 2 * self.exponent);
        DMatrix::from_fn(d, d, s)
    }
}

/// One chain's state in place (in a `ChainState` or in the ensemble's flat arrays).
struct Slot<'a> {
    mean: &'a mut [f64],
    factor: &'a mut [f64],
    exponent: &'a mut i32,
    log_det: &'a mut f64,
}

/// The per-chain quantities of one generation (each statistic of a row is their mean over
/// chains; the fields are named as in [`MvnGenerationStats`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainStatistics {
    pub mean_sq_error: f64,
    pub trace: f64,
    pub log_det: f64,
    pub trace_of_square: f64,
    pub square_of_trace: f64,
    pub frobenius_sq_error: f64,
    pub w2_sq: f64,
    pub log_lambda_max: f64,
    pub log_lambda_min: f64,
    pub log_condition: f64,
}

impl ChainStatistics {
    fn to_array(self) -> [f64; QUANTITIES] {
        [
            self.mean_sq_error,
            self.trace,
            self.log_det,
            self.trace_of_square,
            self.square_of_trace,
            self.frobenius_sq_error,
            self.w2_sq,
            self.log_lambda_max,
            self.log_lambda_min,
            self.log_condition,
        ]
    }
}

const QUANTITIES: usize = 10;
/// Index of W2^2 in `ChainStatistics::to_array`.
const W2: usize = 6;

/// The truth N(0, diag(D)) as the statistics need it.
#[derive(Debug, Clone)]
struct Truth {
    diag: Vec<f64>,
    /// sqrt(D_j): the rows of D^{1/2} L.
    sqrt_diag: Vec<f64>,
    trace: f64,
    /// Some(c) when D = c I: then the singular values of D^{1/2} L are sqrt(c) times L's.
    isotropic: Option<f64>,
}

impl Truth {
    fn new(diag: &[f64]) -> Truth {
        Truth {
            diag: diag.to_vec(),
            sqrt_diag: diag.iter().map(|v| v.sqrt()).collect(),
            trace: diag.iter().sum(),
            isotropic: diag.iter().all(|&v| v == diag[0]).then(|| diag[0]),
        }
    }
}

/// One chain's generation step and statistics, with their scratch space (no allocation per
/// step; the statistics' SVDs allocate nalgebra matrices).
#[derive(Clone)]
pub struct Stepper {
    d: usize,
    truth: Truth,
    normal: StandardNormal,
    /// chi^2_{k - j} constants, j = 0..d-1, for `chi_for` = k.
    chi: Vec<ChiSquareConstants>,
    chi_for: u64,
    /// The mean's increment v (before L), length d.
    v: Vec<f64>,
    /// Four draws, each minus the running mean before it (exact), length 4 d.
    deltas: Vec<f64>,
    /// T: the scatter matrix, then its Cholesky factor (exact), or the Bartlett factor; packed.
    tri: Vec<f64>,
    /// One row of the product L T, length d.
    row: Vec<f64>,
    /// Sigma~ = L~ L~^T, packed (statistics).
    sigma: Vec<f64>,
}

impl Stepper {
    /// A stepper for chains of `spec` (checked again: its fields are public).
    pub fn new(spec: &MvnSpec) -> Result<Stepper, SimError> {
        let spec = revalidate(spec)?;
        Ok(Stepper::of_valid(&spec))
    }

    fn of_valid(spec: &MvnSpec) -> Stepper {
        let d = spec.dim;
        Stepper {
            d,
            truth: Truth::new(&spec.cov_diag),
            normal: StandardNormal::new(),
            chi: Vec::with_capacity(d),
            chi_for: 0,
            v: vec![0.0; d],
            deltas: vec![0.0; 4 * d],
            tri: vec![0.0; packed_len(d)],
            row: vec![0.0; d],
            sigma: vec![0.0; packed_len(d)],
        }
    }

    /// Advances `state` by one generation of `m` samples (m > d) drawn from `rng`.
    pub fn advance(
        &mut self,
        method: MvnMethod,
        m: u64,
        rng: &mut ChainRng,
        state: &mut ChainState,
    ) -> Result<(), SimError> {
        let d = self.d;
        if m <= d as u64 {
            return Err(SimError::Invalid {
                what: "samples",
                why: format!("must exceed the dimension {d}, got {m}"),
            });
        }
        if state.mean.len() != d || state.factor.len() != packed_len(d) {
            return Err(SimError::Invalid {
                what: "state",
                why: format!("dimension does not match the stepper's {d}"),
            });
        }
        let slot = Slot {
            mean: &mut state.mean,
            factor: &mut state.factor,
            exponent: &mut state.exponent,
            log_det: &mut state.log_det,
        };
        self.advance_slot(method, m, rng, slot);
        Ok(())
    }

    /// The per-chain quantities of `state` against the stepper's truth.
    pub fn statistics(&mut self, state: &ChainState) -> Result<ChainStatistics, SimError> {
        if state.mean.len() != self.d || state.factor.len() != packed_len(self.d) {
            return Err(SimError::Invalid {
                what: "state",
                why: format!("dimension does not match the stepper's {}", self.d),
            });
        }
        Ok(self.statistics_of(&state.mean, &state.factor, state.exponent, state.log_det))
    }

    fn prepare_chi(&mut self, k: u64) {
        if self.chi_for != k {
            self.chi.clear();
            self.chi
                .extend((0..self.d as u64).map(|j| ChiSquareConstants::new((k - j) as f64)));
            self.chi_for = k;
        }
    }

    fn advance_slot(&mut self, method: MvnMethod, m: u64, rng: &mut ChainRng, slot: Slot<'_>) {
        let Slot {
            mean,
            factor,
            exponent,
            log_det,
        } = slot;
        let k = m - 1;
        let v_scale = match method {
            MvnMethod::Exact => {
                self.draw_exact(rng, m);
                1.0
            }
            MvnMethod::Sufficient => {
                self.draw_sufficient(rng, k);
                1.0 / (m as f64).sqrt()
            }
        };
        let slot = Slot {
            mean,
            factor,
            exponent,
            log_det,
        };
        Stepper::apply_step(slot, &self.v, v_scale, &self.tri, &mut self.row, k as f64);
    }

    /// One step in the current model's frame: mu += L_i (scale v), L_{i+1} = L_i T / sqrt(divisor)
    /// and ln det Sigma_{i+1} = ln det Sigma_i + 2 sum_j ln T_jj - d ln divisor (replace: T the
    /// fit's factor, divisor M_i - 1; accumulate: `strategies`).
    fn apply_step(slot: Slot<'_>, v: &[f64], scale: f64, t: &[f64], row: &mut [f64], divisor: f64) {
        let Slot {
            mean,
            factor,
            exponent,
            log_det,
        } = slot;
        let d = mean.len();
        for (i, mu) in mean.iter_mut().enumerate() {
            let l_row = &factor[packed_index(i, 0)..=diag_index(i)];
            *mu += ldexp(dot(l_row, &v[..=i]) * scale, *exponent);
        }
        triangular_product(factor, t, row, d, 1.0 / divisor.sqrt());
        renormalise(factor, exponent);
        let ln_t: f64 = (0..d).map(|j| ln_positive(t[diag_index(j)])).sum();
        *log_det += 2.0 * ln_t - d as f64 * crate::vmath::ln(divisor);
    }

    /// Welford's centred one-pass mean and scatter of m standard normal vectors into `v` and
    /// `tri`, then `tri` = chol(scatter). Draw c (1-based) adds ((c - 1) / c) delta delta^T,
    /// delta = z_c - mean_{c-1} (zero for the first draw); four draws at a time are applied in one
    /// pass over the scatter, each entry summing their terms in draw order (the same bits as four
    /// rank-one updates, a quarter of the memory traffic).
    fn draw_exact(&mut self, rng: &mut ChainRng, m: u64) {
        self.scatter_exact(rng, m);
        cholesky_in_place(&mut self.tri, self.d);
    }

    /// Welford's mean and scatter (not factored) of m standard normal vectors into `v` and
    /// `tri` (see `draw_exact`).
    fn scatter_exact(&mut self, rng: &mut ChainRng, m: u64) {
        let d = self.d;
        self.v.fill(0.0);
        self.tri.fill(0.0);
        let mut count = 0u64;
        while count < m {
            let group = (m - count).min(4) as usize;
            let mut weights = [0.0; 4];
            for (g, weight) in weights.iter_mut().enumerate().take(group) {
                count += 1;
                let c = count as f64;
                let delta = &mut self.deltas[g * d..(g + 1) * d];
                for (delta, mean) in delta.iter_mut().zip(&self.v) {
                    *delta = self.normal.sample(rng) - *mean;
                }
                for (mean, delta) in self.v.iter_mut().zip(delta.iter()) {
                    *mean += *delta / c;
                }
                *weight = (c - 1.0) / c;
            }
            if group == 4 {
                rank_four_update(&mut self.tri, &self.deltas, d, weights);
            } else {
                for (g, &w) in weights.iter().enumerate().take(group) {
                    rank_one_update(&mut self.tri, &self.deltas[g * d..(g + 1) * d], d, w);
                }
            }
        }
    }

    /// z into `v`, the Bartlett factor of Wishart_d(I, k) into `tri`.
    fn draw_sufficient(&mut self, rng: &mut ChainRng, k: u64) {
        self.prepare_chi(k);
        for z in self.v.iter_mut() {
            *z = self.normal.sample(rng);
        }
        for j in 0..self.d {
            let start = packed_index(j, 0);
            for c in &mut self.tri[start..start + j] {
                *c = self.normal.sample(rng);
            }
            self.tri[start + j] = self.chi[j].sample(rng).sqrt();
        }
    }

    fn statistics_of(
        &mut self,
        mean: &[f64],
        factor: &[f64],
        e: i32,
        log_det: f64,
    ) -> ChainStatistics {
        let d = self.d;
        let truth = &self.truth;
        let mean_sq_error = dot(mean, mean);
        let trace = ldexp(dot(factor, factor), 2 * e);
        form_covariance(factor, d, &mut self.sigma);
        let (mut diag_sq, mut off_sq) = (0.0, 0.0);
        let (mut diag_err, mut off_err) = (0.0, 0.0);
        for i in 0..d {
            for j in 0..=i {
                let s = self.sigma[packed_index(i, j)];
                let physical = ldexp(s, 2 * e);
                if i == j {
                    diag_sq += s * s;
                    let r = physical - truth.diag[i];
                    diag_err += r * r;
                } else {
                    off_sq += s * s;
                    off_err += physical * physical;
                }
            }
        }
        let trace_of_square = ldexp(diag_sq + 2.0 * off_sq, 4 * e);
        let frobenius_sq_error = diag_err + 2.0 * off_err;
        // The eigenvalues of Sigma_n are the squared singular values of L_n; the square roots of
        // the eigenvalues of Sigma^{1/2} Sigma_n Sigma^{1/2} = (D^{1/2} L_n)(D^{1/2} L_n)^T are
        // the singular values of D^{1/2} L_n. Singular values of the factor are >= 0 and keep
        // absolute accuracy eps ||L||, where forming Sigma_n first would square the condition
        // number (and need clamping of rounding negatives; see `w2_sq` for the general case).
        let l = DMatrix::from_fn(d, d, |i, j| {
            if j <= i {
                factor[packed_index(i, j)]
            } else {
                0.0
            }
        });
        let (sv, nuclear) = match truth.isotropic {
            Some(c) => {
                let sv = singular_values(l);
                let sum: f64 = sv.iter().sum();
                (sv, c.sqrt() * sum)
            }
            None => {
                let scaled = DMatrix::from_fn(d, d, |i, j| truth.sqrt_diag[i] * l[(i, j)]);
                let sum = singular_values(scaled).iter().sum();
                (singular_values(l), sum)
            }
        };
        let (s_max, s_min) = sv
            .iter()
            .fold((f64::NEG_INFINITY, f64::INFINITY), |(hi, lo), &s| {
                (hi.max(s), lo.min(s))
            });
        let e_ln2 = f64::from(e) * std::f64::consts::LN_2;
        let (ln_max, ln_min) = (ln_positive(s_max), ln_positive(s_min));
        // The Bures term tr(Sigma_n) + tr(Sigma) - 2 tr((Sigma^{1/2} Sigma_n Sigma^{1/2})^{1/2})
        // is >= 0 in exact arithmetic: clamp a rounding negative (|.| ~ eps tr Sigma) to 0.
        let bures = (trace + truth.trace - 2.0 * ldexp(nuclear, e)).max(0.0);
        ChainStatistics {
            mean_sq_error,
            trace,
            log_det,
            trace_of_square,
            square_of_trace: trace * trace,
            frobenius_sq_error,
            w2_sq: mean_sq_error + bures,
            log_lambda_max: 2.0 * (ln_max + e_ln2),
            log_lambda_min: 2.0 * (ln_min + e_ln2),
            log_condition: 2.0 * (ln_max - ln_min),
        }
    }
}

/// W2^2 between N(`mean_a`, `cov_a`) and N(`mean_b`, `cov_b`), exactly (Gelbrich's formula, an
/// identity for Gaussians): ||m_a - m_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}),
/// with symmetric square roots from nalgebra's `SymmetricEigen`. Covariances must be symmetric
/// positive semi-definite (only their symmetric part is used). Eigenvalues of a PSD matrix that
/// rounding makes slightly negative (|lambda| ~ eps ||S||) are clamped to 0 before the square
/// root, and so is a negative Bures term.
pub fn w2_sq(
    mean_a: &DVector<f64>,
    cov_a: &DMatrix<f64>,
    mean_b: &DVector<f64>,
    cov_b: &DMatrix<f64>,
) -> Result<f64, SimError> {
    let d = mean_a.len();
    let invalid = |why: String| SimError::Invalid {
        what: "gaussian",
        why,
    };
    if d == 0 || mean_b.len() != d || cov_a.shape() != (d, d) || cov_b.shape() != (d, d) {
        return Err(invalid(format!(
            "means and covariances must share one dimension >= 1, got {d}, {}, {:?}, {:?}",
            mean_b.len(),
            cov_a.shape(),
            cov_b.shape()
        )));
    }
    let all = mean_a.iter().chain(mean_b.iter());
    if !all
        .chain(cov_a.iter())
        .chain(cov_b.iter())
        .all(|x| x.is_finite())
    {
        return Err(invalid("every entry must be finite".into()));
    }
    let symmetric = |s: &DMatrix<f64>| (s + s.transpose()) * 0.5;
    let root_a =
        psd_sqrt(symmetric(cov_a)).ok_or_else(|| invalid("no eigen-convergence".into()))?;
    let inner = symmetric(&(&root_a * symmetric(cov_b) * &root_a));
    let eig = SymmetricEigen::try_new(inner, f64::EPSILON, EIGEN_ITERATIONS * d)
        .ok_or_else(|| invalid("no eigen-convergence".into()))?;
    let cross: f64 = eig.eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let bures = (cov_a.trace() + cov_b.trace() - 2.0 * cross).max(0.0);
    Ok((mean_a - mean_b).norm_squared() + bures)
}

/// Iterations allowed per dimension to nalgebra's eigen and SVD solvers (they take a few).
const EIGEN_ITERATIONS: usize = 1000;

/// The symmetric square root of a symmetric PSD matrix (negative rounding eigenvalues -> 0).
fn psd_sqrt(s: DMatrix<f64>) -> Option<DMatrix<f64>> {
    let d = s.nrows();
    let eig = SymmetricEigen::try_new(s, f64::EPSILON, EIGEN_ITERATIONS * d)?;
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    let v = &eig.eigenvectors;
    Some(v * DMatrix::from_diagonal(&roots) * v.transpose())
}

/// Singular values (unordered; NaN if the solver does not converge, which it does in a few
/// iterations on finite input).
fn singular_values(m: DMatrix<f64>) -> DVector<f64> {
    let d = m.nrows();
    SVD::try_new_unordered(m, false, false, f64::EPSILON, EIGEN_ITERATIONS * d)
        .map_or_else(|| DVector::from_element(d, f64::NAN), |s| s.singular_values)
}

/// Number of entries of a packed d x d lower triangle.
#[inline]
fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

#[inline]
fn packed_index(i: usize, j: usize) -> usize {
    debug_assert!(j <= i);
    i * (i + 1) / 2 + j
}

#[inline]
fn diag_index(i: usize) -> usize {
    packed_index(i, i)
}

/// ln of a positive double (`crate::vmath::ln` for normal numbers, so that the bits do not
/// depend on the C library; the standard ln for subnormals, 0 (-> -inf) and the rest).
#[inline]
fn ln_positive(x: f64) -> f64 {
    if x.is_normal() && x > 0.0 {
        crate::vmath::ln(x)
    } else {
        x.ln()
    }
}

/// 2^e for e in -1022..=1023, exactly.
#[inline]
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// x 2^e (exact unless the result is subnormal, 0 or infinite).
fn ldexp(x: f64, e: i32) -> f64 {
    if e > 2200 {
        return x * f64::INFINITY;
    }
    if e < -2200 {
        return x * 0.0;
    }
    let (mut x, mut e) = (x, e);
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e)
}

/// Exponents of the largest entry of L~ beyond which it is rescaled by a power of two.
const RENORMALISE_BEYOND: i32 = 64;
/// Entries of L~ below 2^-250 (relative to a largest entry in [2^-64, 2^65)) are set to 0: they
/// are below rounding (eps = 2^-52) by far more than any product formed from them could recover,
/// carry directions of Sigma_n at least ~1e-112 times smaller than its largest, which nothing
/// reported resolves (ln det is carried separately), and products of up to four of them (the
/// statistics' tr Sigma^2) stay normal doubles: subnormal and underflowing operands take a slow
/// path that costs every later product orders of magnitude.
const FLUSH_BELOW: f64 = f64::from_bits(((1023 - 250) as u64) << 52);

/// Rescales `factor` by an exact power of two when its largest entry leaves [2^-64, 2^65),
/// moving the power into `exponent`, and flushes entries below `FLUSH_BELOW` to 0.
fn renormalise(factor: &mut [f64], exponent: &mut i32) {
    let largest = factor.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    if !largest.is_normal() {
        return;
    }
    let k = ((largest.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let s = if k.abs() > RENORMALISE_BEYOND {
        *exponent += k;
        pow2(-k)
    } else {
        1.0
    };
    for x in factor.iter_mut() {
        let y = *x * s;
        *x = if y.abs() < FLUSH_BELOW { 0.0 } else { y };
    }
}

/// sum a_i b_i in a fixed order: four interleaved partial sums (values i mod 4), combined as
/// (s0 + s1) + (s2 + s3): independent sums pipeline, and the order never depends on the CPU.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 4];
    let (qa, qb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (qa.remainder(), qb.remainder());
    for (x, y) in qa.zip(qb) {
        for lane in 0..4 {
            s[lane] += x[lane] * y[lane];
        }
    }
    for (lane, (x, y)) in ta.iter().zip(tb).enumerate() {
        s[lane] += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// The packed lower triangle of L L^T: entry (i, j) = dot(row i, row j) over columns <= j.
fn form_covariance(factor: &[f64], d: usize, out: &mut [f64]) {
    for i in 0..d {
        for j in 0..=i {
            out[packed_index(i, j)] = dot(
                &factor[packed_index(i, 0)..packed_index(i, 0) + j + 1],
                &factor[packed_index(j, 0)..=diag_index(j)],
            );
        }
    }
}

/// `tri` += w a a^T on the packed lower triangle. Each row is an axpy, vectorised across
/// columns without changing any rounding.
fn rank_one_update(tri: &mut [f64], a: &[f64], d: usize, w: f64) {
    let a = &a[..d];
    for i in 0..d {
        let ai = a[i] * w;
        let row = &mut tri[packed_index(i, 0)..=diag_index(i)];
        for (r, &aj) in row.iter_mut().zip(&a[..=i]) {
            *r += ai * aj;
        }
    }
}

/// Four rank-one updates `tri` += w_g a_g a_g^T (a = a_0 .. a_3, each of length d) in one pass,
/// each entry adding its four terms in order g = 0..3: the exact method's hot loop (M d^2 / 2
/// multiply-adds per generation), compiled a second time for AVX2 (same operations, same bits).
fn rank_four_update(tri: &mut [f64], a: &[f64], d: usize, w: [f64; 4]) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn with_avx2(tri: &mut [f64], a: &[f64], d: usize, w: [f64; 4]) {
        rank_four_body(tri, a, d, w)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::avx2::available() {
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe { with_avx2(tri, a, d, w) };
    }
    rank_four_body(tri, a, d, w)
}

#[inline(always)]
fn rank_four_body(tri: &mut [f64], a: &[f64], d: usize, w: [f64; 4]) {
    let (a0, a1, a2, a3) = (&a[..d], &a[d..2 * d], &a[2 * d..3 * d], &a[3 * d..4 * d]);
    for i in 0..d {
        let c = [a0[i] * w[0], a1[i] * w[1], a2[i] * w[2], a3[i] * w[3]];
        let row = &mut tri[packed_index(i, 0)..=diag_index(i)];
        let columns = row
            .iter_mut()
            .zip(&a0[..=i])
            .zip(&a1[..=i])
            .zip(&a2[..=i])
            .zip(&a3[..=i]);
        for ((((r, &x0), &x1), &x2), &x3) in columns {
            *r = (((*r + c[0] * x0) + c[1] * x1) + c[2] * x2) + c[3] * x3;
        }
    }
}

/// In-place Cholesky factorisation (Cholesky–Banachiewicz, row by row) of a packed symmetric
/// positive definite matrix. A pivot <= 0 (probability 0 for a scatter of M > d normal vectors;
/// it could only come from rounding) is replaced by the smallest positive normal double, as
/// `crate::kernels::update_chain` does for a zero sum of squares.
fn cholesky_in_place(a: &mut [f64], d: usize) {
    for i in 0..d {
        let oi = packed_index(i, 0);
        for j in 0..=i {
            let oj = packed_index(j, 0);
            let s = a[oi + j] - dot(&a[oi..oi + j], &a[oj..oj + j]);
            a[oi + j] = if i == j {
                s.max(f64::MIN_POSITIVE).sqrt()
            } else {
                s / a[oj + j]
            };
        }
    }
}

/// `factor` <- `factor` `t` `scale` for packed lower-triangular factors (d^3 / 6 multiply-adds).
/// Row i of the product is sum_{l <= i} L_il (row l of T), accumulated in ascending l.
fn triangular_product(factor: &mut [f64], t: &[f64], row: &mut [f64], d: usize, scale: f64) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn with_avx2(factor: &mut [f64], t: &[f64], row: &mut [f64], d: usize, scale: f64) {
        triangular_product_body(factor, t, row, d, scale)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::avx2::available() {
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe { with_avx2(factor, t, row, d, scale) };
    }
    triangular_product_body(factor, t, row, d, scale)
}

#[inline(always)]
fn triangular_product_body(factor: &mut [f64], t: &[f64], row: &mut [f64], d: usize, scale: f64) {
    let t_row = |l: usize| &t[packed_index(l, 0)..=diag_index(l)];
    for i in 0..d {
        let acc = &mut row[..=i];
        acc.fill(0.0);
        let li = &mut factor[packed_index(i, 0)..=diag_index(i)];
        // Four rows of T per pass over the accumulator: column j <= l0 takes all four terms in
        // ascending l, columns l0 + 1 .. l0 + 3 the terms whose rows reach them (the same sums
        // in the same order as one row at a time).
        let mut l0 = 0;
        while l0 + 4 <= i + 1 {
            let a = [li[l0], li[l0 + 1], li[l0 + 2], li[l0 + 3]];
            let (t0, t1, t2, t3) = (t_row(l0), t_row(l0 + 1), t_row(l0 + 2), t_row(l0 + 3));
            let columns = acc[..=l0]
                .iter_mut()
                .zip(t0)
                .zip(&t1[..=l0])
                .zip(&t2[..=l0])
                .zip(&t3[..=l0]);
            for ((((r, &x0), &x1), &x2), &x3) in columns {
                *r = (((*r + a[0] * x0) + a[1] * x1) + a[2] * x2) + a[3] * x3;
            }
            let j = l0 + 1;
            acc[j] = ((acc[j] + a[1] * t1[j]) + a[2] * t2[j]) + a[3] * t3[j];
            acc[j + 1] = (acc[j + 1] + a[2] * t2[j + 1]) + a[3] * t3[j + 1];
            acc[j + 2] += a[3] * t3[j + 2];
            l0 += 4;
        }
        for (l, &a) in li.iter().enumerate().skip(l0) {
            for (r, &x) in acc[..=l].iter_mut().zip(t_row(l)) {
                *r += a * x;
            }
        }
        for (out, &r) in li.iter_mut().zip(acc.iter()) {
            *out = r * scale;
        }
    }
}

/// Chains per parallel block (fixed: block boundaries never depend on the thread count).
const CHUNK: usize = 64;
const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

/// Runs `config.chains` chains of `spec` for N generations. Errors (never panics) on an invalid
/// spec (its fields are public, so it is checked again), 0 or too many chains, 0 threads, or a
/// state larger than [`MAX_STATE_DOUBLES`].
pub fn simulate(spec: &MvnSpec, config: &MvnConfig) -> Result<MvnRun, SimError> {
    let start = Instant::now();
    let mut run = shard::run_whole(
        config.chains,
        Assembler::new(spec, config),
        |owned, sink| simulate_piece(spec, config, owned, sink),
    )?;
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

/// How the ensemble reduces (`crate::shard`): blocks of `CHUNK` chains, each block's
/// accumulators of the `QUANTITIES` per-chain quantities, and per chain W2^2 (for the exact
/// quartiles, which no block summary determines).
pub const LAYOUT: Layout = Layout {
    block: CHUNK as u64,
    block_words: QUANTITIES * Accumulator::WORDS,
    chain_values: 1,
};

/// Runs the chains of `owned` (and the rest of the blocks they touch) into `sink`; returns per
/// owned chain its final state as words (`push_end`). Merged pieces give the bits of
/// `simulate`.
pub fn simulate_piece(
    spec: &MvnSpec,
    config: &MvnConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let spec = revalidate(spec)?;
    strategies::check(&spec, config)?;
    // The state, and for keep the kept points' mean and scatter.
    let keeps = matches!(spec.strategy, Strategy::Keep(_)) as u64;
    let per_chain = (1 + keeps) * (spec.dim + packed_len(spec.dim)) as u64;
    if config.chains.saturating_mul(per_chain) > MAX_STATE_DOUBLES {
        return Err(SimError::Invalid {
            what: "chains",
            why: format!(
                "{} chains of dimension {} need {} doubles of state, more than {MAX_STATE_DOUBLES}",
                config.chains,
                spec.dim,
                config.chains.saturating_mul(per_chain)
            ),
        });
    }
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    crate::check_piece(owned, config.chains)?;
    pool.install(|| match spec.strategy {
        Strategy::AccumulateSubsample => strategies::run_subsample(&spec, config, owned, sink),
        _ => run(&spec, config, owned, sink),
    })
}

/// Builds an `MvnRun` from the partials of every chain (`crate::shard`).
pub struct Assembler {
    spec: MvnSpec,
    config: MvnConfig,
    rows: Vec<MvnGenerationStats>,
    w2_quartiles: QuantileTracker<3>,
}

impl Assembler {
    /// An assembler for the run of `spec` under `config` (rows follow as generations arrive).
    pub fn new(spec: &MvnSpec, config: &MvnConfig) -> Assembler {
        Assembler {
            spec: spec.clone(),
            config: config.clone(),
            rows: Vec::with_capacity(spec.generations as usize + 1),
            w2_quartiles: QuantileTracker::new(QUARTILES),
        }
    }
}

impl Assemble for Assembler {
    type Run = MvnRun;

    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]) {
        let mut words = Words::new(blocks);
        let mut stats = Vec::with_capacity(blocks.len() / LAYOUT.block_words);
        while words.remaining() > 0 {
            stats.push(BlockStats::from_words(&mut words));
        }
        let quartiles = self.w2_quartiles.quantiles(values[0]);
        self.rows.push(generation_row(n, &stats, quartiles));
    }

    fn finish(self, ends: &[&[u64]]) -> MvnRun {
        let d = self.spec.dim;
        let t = packed_len(d);
        let chains = self.config.chains as usize;
        let (mut means, mut factors) = (
            Vec::with_capacity(chains * d),
            Vec::with_capacity(chains * t),
        );
        let (mut exponents, mut log_dets) =
            (Vec::with_capacity(chains), Vec::with_capacity(chains));
        for w in ends.iter().flat_map(|e| e.chunks_exact(end_len(d))) {
            let f = |x: &[u64]| x.iter().map(|&b| f64::from_bits(b)).collect::<Vec<_>>();
            means.extend(f(&w[..d]));
            factors.extend(f(&w[d..d + t]));
            // The exponent travels sign-extended (`push_end`).
            exponents.push(w[d + t] as i64 as i32);
            log_dets.push(f64::from_bits(w[d + t + 1]));
        }
        MvnRun {
            spec: self.spec,
            config: self.config,
            rows: self.rows,
            seconds: 0.0,
            final_means: means,
            final_factors: factors,
            final_exponents: exponents,
            final_log_dets: log_dets,
        }
    }
}

/// Words of one chain's end state: mean (d), factor (packed), exponent and ln det.
fn end_len(d: usize) -> usize {
    d + packed_len(d) + 2
}

/// Appends one chain's end state as words (`end_len`; the exponent sign-extended to 64 bits).
fn push_end(out: &mut Vec<u64>, mean: &[f64], factor: &[f64], exponent: i32, log_det: f64) {
    shard::push_f64s(out, mean);
    shard::push_f64s(out, factor);
    out.push(i64::from(exponent) as u64);
    out.push(log_det.to_bits());
}

/// Hands generation n of a span to the sink: its blocks as words, and the owned chains' W2^2
/// (`offset` is where the owned chains begin in the span).
fn emit(
    sink: &mut dyn PieceSink,
    n: u64,
    blocks: &[BlockStats],
    w2s: &[f64],
    (offset, len): (usize, usize),
) {
    let mut words = Vec::with_capacity(blocks.len() * LAYOUT.block_words);
    for b in blocks {
        b.push_words(&mut words);
    }
    sink.generation(n, &words, &[&w2s[offset..offset + len]]);
}

/// `spec` checked again (its fields are public).
fn revalidate(spec: &MvnSpec) -> Result<MvnSpec, SimError> {
    Ok(MvnSpec::new(
        spec.dim as u64,
        spec.schedule.clone(),
        Some(spec.cov_diag.clone()),
        spec.generations,
    )?
    .with_strategy(spec.strategy)?)
}

/// Moments of the per-chain quantities over a block.
#[derive(Clone, Copy, Default)]
struct BlockStats {
    acc: [Accumulator; QUANTITIES],
}

impl BlockStats {
    fn push_words(&self, out: &mut Vec<u64>) {
        for a in &self.acc {
            a.push_words(out);
        }
    }

    fn from_words(words: &mut Words<'_>) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|_| Accumulator::from_words(words)),
        }
    }

    fn merge(&self, other: &BlockStats) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|i| self.acc[i].merge(&other.acc[i])),
        }
    }
}

/// Generation n's row from its blocks' statistics, merged in block order (the same bits for
/// any thread count).
fn generation_row(n: u64, blocks: &[BlockStats], w2_sq_quartiles: [f64; 3]) -> MvnGenerationStats {
    let total = blocks
        .iter()
        .fold(BlockStats::default(), |acc, b| acc.merge(b));
    let m = |q: usize| total.acc[q].moments();
    let s = |q: usize| {
        let x = m(q);
        Summary {
            mean: x.mean,
            stderr: x.stderr,
        }
    };
    MvnGenerationStats {
        n,
        mean_sq_error: s(0),
        trace: s(1),
        log_det: m(2),
        trace_of_square: s(3),
        square_of_trace: s(4),
        frobenius_sq_error: s(5),
        w2_sq: s(W2),
        w2_sq_quartiles,
        log_lambda_max: s(7),
        log_lambda_min: s(8),
        log_condition: s(9),
    }
}

/// The generation-major run of every strategy but `accumulate-subsample`: the chains of
/// `owned`'s span advance one generation at a time, block by block.
fn run(
    spec: &MvnSpec,
    config: &MvnConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let d = spec.dim;
    let t = packed_len(d);
    let span = LAYOUT.span(owned, config.chains);
    let (offset, owned_len) = ((owned.start - span.start) as usize, owned.len() as usize);
    let r = span.len() as usize;
    let truth = ChainState::truth(spec);
    let mut rngs: Vec<ChainRng> = (span.start..span.end)
        .into_par_iter()
        .map(|c| ChainRng::for_chain(config.seed, stream::MVN, c))
        .collect();
    let mut means = vec![0.0; r * d];
    let mut factors = truth.factor.repeat(r);
    let mut exponents = vec![0i32; r];
    let mut log_dets = vec![truth.log_det; r];
    let mut w2s = vec![0.0; r];
    let sizes = spec.sample_sizes();
    let method = config.method;
    let plans = strategies::plans(spec);
    // Indexed by the chain's place in the span (its rngs are the span's).
    let kept = strategies::draw_kept(spec, method, &mut rngs);
    let mut progress = Progress::new(spec.generations, config.progress);
    for n in 0..=spec.generations {
        if n > 0 && sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let m = (n > 0).then(|| sizes[(n - 1) as usize]);
        let blocks: Vec<BlockStats> = rngs
            .par_chunks_mut(CHUNK)
            .zip(means.par_chunks_mut(CHUNK * d))
            .zip(factors.par_chunks_mut(CHUNK * t))
            .zip(exponents.par_chunks_mut(CHUNK))
            .zip(log_dets.par_chunks_mut(CHUNK))
            .zip(w2s.par_chunks_mut(CHUNK))
            .enumerate()
            .map_init(
                || (Stepper::of_valid(spec), strategies::Scratch::new(d)),
                |(stepper, scratch),
                 (block, (((((rng, mean), factor), exponent), log_det), w2))| {
                    let mut values = [[0.0; CHUNK]; QUANTITIES];
                    for c in 0..rng.len() {
                        let (mu, l) = (
                            &mut mean[c * d..(c + 1) * d],
                            &mut factor[c * t..(c + 1) * t],
                        );
                        if let Some(m) = m {
                            let slot = Slot {
                                mean: mu,
                                factor: l,
                                exponent: &mut exponent[c],
                                log_det: &mut log_det[c],
                            };
                            match &plans[(n - 1) as usize] {
                                strategies::Plan::Replace => {
                                    stepper.advance_slot(method, m, &mut rng[c], slot)
                                }
                                plan => {
                                    let kept = strategies::kept_of(&kept, d, block * CHUNK + c);
                                    let step = strategies::Step { plan, method, kept };
                                    step.advance(stepper, scratch, &mut rng[c], slot);
                                }
                            }
                        }
                        let s = stepper
                            .statistics_of(mu, l, exponent[c], log_det[c])
                            .to_array();
                        for (q, v) in values.iter_mut().zip(s) {
                            q[c] = v;
                        }
                        w2[c] = s[W2];
                    }
                    let len = rng.len();
                    BlockStats {
                        acc: std::array::from_fn(|q| Accumulator::from_slice(&values[q][..len])),
                    }
                },
            )
            .collect();
        emit(sink, n, &blocks, &w2s, (offset, owned_len));
        progress.set(n);
    }
    progress.finish();
    let mut ends = Vec::with_capacity(owned_len * end_len(d));
    for c in offset..offset + owned_len {
        push_end(
            &mut ends,
            &means[c * d..(c + 1) * d],
            &factors[c * t..(c + 1) * t],
            exponents[c],
            log_dets[c],
        );
    }
    Ok(ends)
}

mod strategies;
pub use strategies::{MAX_SUBSAMPLE_POOL, MAX_SUBSAMPLE_TRACE, max_subsample_chains};

#[cfg(test)]
mod tests;
