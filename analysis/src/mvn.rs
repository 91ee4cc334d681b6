//! The d-dimensional Gaussian recursion: generation i+1 is N(sample mean, unbiased sample
//! covariance) of M_i draws from generation i (M_i > d). Exact moments per generation through
//! the Bartlett decomposition (derivations: `proofs/mvn.md`).
//!
//! With k_i = M_i - 1 and Sigma_i = A_i A_i^T: Sigma_{i+1} = A_i (W_i / k_i) A_i^T with
//! W_i ~ Wishart_d(I, k_i) independent of the past, and mu_{i+1} = mu_i + A_i z / sqrt(M_i). So
//! - E||mu_n - mu||^2 = tr(Sigma) sum_{i<n} 1/M_i and E[Sigma_n] = Sigma;
//! - ln det Sigma_n = ln det Sigma + sum_i sum_{j<d} (ln chi^2_{k_i - j} - ln k_i), a sum of
//!   independent terms: E = ... + psi((k_i - j)/2) + ln(2/k_i), Var = ... psi'((k_i - j)/2);
//! - a_n = E tr(Sigma_n^2), b_n = E (tr Sigma_n)^2 follow a linear recursion (Wishart moments).

use crate::ball::Ball;
use crate::gaussian::{Estimator, GaussianSpec};
use crate::schedule::Schedule;
use crate::special::{digamma, exact_arg, trigamma};
use crate::strategy::{Strategy, StrategyTheory};
use crate::{SpecError, refine_until_certified};
use rug::Rational;
use std::collections::HashMap;

/// Largest dimension accepted (the simulation's work grows like d^3 per generation).
pub const MAX_DIM: u64 = 1024;

/// The process parameters shared by theory and simulation. mu is 0 without loss of generality;
/// Sigma is diagonal (every rotation of it has the same law of every reported quantity).
#[derive(Debug, Clone, PartialEq)]
pub struct MvnSpec {
    pub dim: usize,
    pub schedule: Schedule,
    /// The diagonal of Sigma (all finite and > 0).
    pub cov_diag: Vec<f64>,
    pub generations: u64,
    /// What each generation is fitted to (`replace` unless set by [`MvnSpec::with_strategy`]).
    /// The theory of this module is replace's; the other strategies' is [`strategy_theory`].
    pub strategy: Strategy,
}

impl MvnSpec {
    /// `cov_diag`: the diagonal of Sigma, or `None` for the identity.
    pub fn new(
        dim: u64,
        schedule: Schedule,
        cov_diag: Option<Vec<f64>>,
        generations: u64,
    ) -> Result<MvnSpec, SpecError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(SpecError::invalid(
                "dim",
                format!("must be in 1..={MAX_DIM}, got {dim}"),
            ));
        }
        let d = dim as usize;
        let cov_diag = cov_diag.unwrap_or_else(|| vec![1.0; d]);
        if cov_diag.len() != d {
            return Err(SpecError::invalid(
                "cov",
                format!(
                    "needs {d} diagonal entries (one per dimension), got {}",
                    cov_diag.len()
                ),
            ));
        }
        if let Some(bad) = cov_diag.iter().find(|v| !v.is_finite() || **v <= 0.0) {
            return Err(SpecError::invalid(
                "cov",
                format!("every variance must be finite and > 0, got {bad}"),
            ));
        }
        crate::gaussian::check_generations(generations)?;
        let sizes = schedule.sizes(generations)?;
        if let Some((i, m)) = sizes.iter().enumerate().find(|&(_, &m)| m <= dim) {
            return Err(SpecError::invalid(
                "samples",
                format!(
                    "every sample size must exceed the dimension {dim} (the sample covariance is singular otherwise), got M_{i} = {m}"
                ),
            ));
        }
        Ok(MvnSpec {
            dim: d,
            schedule,
            cov_diag,
            generations,
            strategy: Strategy::Replace,
        })
    }

    /// The same spec with data strategy `strategy`, validated against the sizes as in one
    /// dimension (every training set has M_i > d points, checked by `new`).
    pub fn with_strategy(self, strategy: Strategy) -> Result<MvnSpec, SpecError> {
        strategy.validate(&self.sample_sizes())?;
        Ok(MvnSpec { strategy, ..self })
    }

    /// tr Sigma, exactly.
    pub fn trace(&self, prec: u32) -> Ball {
        let exact = self.cov_diag.iter().fold(Rational::new(), |acc, &v| {
            acc + Rational::from_f64(v).expect("finite (validated)")
        });
        Ball::exact(prec, exact)
    }

    /// The one-dimensional process every projection a^T x of this one follows, at
    /// sigma^2 = 1 (proofs/strategies.md §9): the same schedule, generations and strategy with
    /// the unbiased estimator.
    pub fn projected(&self) -> GaussianSpec {
        GaussianSpec::new(
            self.schedule.clone(),
            Estimator::Unbiased,
            1.0,
            self.generations,
        )
        .and_then(|s| s.with_strategy(self.strategy))
        .expect("a valid mvn spec projects to a valid one-dimensional spec")
    }

    /// M_0 .. M_{N-1} (validated by `new`).
    pub fn sample_sizes(&self) -> Vec<u64> {
        self.schedule
            .sizes(self.generations)
            .expect("validated in MvnSpec::new")
    }

    /// A short label of Sigma: `identity` or the diagonal.
    pub fn cov_label(&self) -> String {
        if self.cov_diag.iter().all(|&v| v == 1.0) {
            "identity".into()
        } else {
            let entries: Vec<String> = self.cov_diag.iter().map(f64::to_string).collect();
            format!("diag:{}", entries.join(","))
        }
    }
}

/// Exact moments at generation n.
#[derive(Debug, Clone)]
pub struct MvnMoments {
    pub n: u64,
    /// E||mu_n - mu||^2 = tr(Sigma) sum_{i<n} 1/M_i.
    pub mean_sq_error: Ball,
    /// E[tr Sigma_n] = tr Sigma (E[Sigma_n] = Sigma).
    pub expected_trace: Ball,
    /// E[ln det Sigma_n].
    pub expected_log_det: Ball,
    /// Var[ln det Sigma_n].
    pub var_log_det: Ball,
    /// E[W2^2(N(mu_n, Sigma_n), N(mu, Sigma))] >= E||mu_n - mu||^2 (the Bures term is >= 0).
    pub w2_sq_lower_bound: Ball,
    /// a_n = E[tr(Sigma_n^2)].
    pub expected_trace_of_square: Ball,
    /// b_n = E[(tr Sigma_n)^2].
    pub expected_square_of_trace: Ball,
    /// E||Sigma_n - Sigma||_F^2 = a_n - tr(Sigma^2).
    pub frobenius_sq_error: Ball,
}

impl MvnMoments {
    /// The reported quantities with their names (the CLI's JSON keys).
    pub fn named(&self) -> [(&'static str, &Ball); 8] {
        [
            ("mean_sq_error", &self.mean_sq_error),
            ("expected_trace", &self.expected_trace),
            ("expected_log_det", &self.expected_log_det),
            ("var_log_det", &self.var_log_det),
            ("w2_sq_lower_bound", &self.w2_sq_lower_bound),
            ("expected_trace_of_square", &self.expected_trace_of_square),
            ("expected_square_of_trace", &self.expected_square_of_trace),
            ("frobenius_sq_error", &self.frobenius_sq_error),
        ]
    }
    /// The fewest certified digits among the reported quantities.
    pub fn min_certified_digits(&self) -> u32 {
        self.named()
            .iter()
            .map(|(_, b)| b.certified_digits())
            .min()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct MvnTheory {
    pub spec: MvnSpec,
    /// Working precision in bits of the final pass.
    pub precision_bits: u32,
    pub rows: Vec<MvnMoments>,
    /// For a constant schedule: the drift of ln det Sigma_n per generation,
    /// sum_{j<d} psi((k - j)/2) + d ln(2/k) < 0.
    pub log_det_drift: Option<Ball>,
    /// For a constant schedule: the Lyapunov exponents lim (1/n) ln lambda_j(Sigma_n) =
    /// psi((k - j)/2) + ln(2/k), j = 0..d-1 (largest first), all < 0.
    pub lyapunov_exponents: Option<Vec<Ball>>,
    /// det Sigma_n -> 0 almost surely: true exactly when sum_i 1/M_i diverges.
    pub det_collapses_almost_surely: bool,
    /// lim E||mu_n - mu||^2 = tr(Sigma) sum_i 1/M_i when the sum converges (an enclosure: the
    /// first terms exact, the tail bounded as in proofs/schedules.md; it may certify fewer
    /// digits than the rows and is not part of `min_certified_digits`).
    pub mean_sq_error_limit: Option<Ball>,
}

impl MvnTheory {
    pub fn min_certified_digits(&self) -> u32 {
        let rows = self.rows.iter().map(MvnMoments::min_certified_digits);
        let drift = self.log_det_drift.iter().map(Ball::certified_digits);
        let lyapunov = self
            .lyapunov_exponents
            .iter()
            .flatten()
            .map(Ball::certified_digits);
        rows.chain(drift).chain(lyapunov).min().unwrap_or(0)
    }
}

/// The per-step factors of one sample size M (k = M - 1).
#[derive(Clone)]
struct StepFactors {
    inv_m: Ball,
    inv_k: Ball,
    /// sum_{j<d} psi((k - j)/2) + d ln(2/k): the increment of E[ln det Sigma].
    drift: Ball,
    /// sum_{j<d} psi'((k - j)/2): the increment of Var[ln det Sigma].
    trigamma_sum: Ball,
}

/// psi((k - j)/2) + ln(2/k) for j = 0..d-1: the per-generation drift of the j-th log
/// eigenvalue direction (the Bartlett diagonal's chi-square degrees of freedom are k - j).
fn drift_terms(prec: u32, k: u64, d: usize) -> Vec<Ball> {
    let ln_two_over_k = Ball::exact(prec, Rational::from((2, k))).ln();
    (0..d as u64)
        .map(|j| digamma(prec, &exact_arg(k - j, 0.0)).add(&ln_two_over_k))
        .collect()
}

fn step_factors(prec: u32, m: u64, d: usize) -> StepFactors {
    let k = m - 1;
    let drift = Ball::sum(prec, &drift_terms(prec, k, d));
    let trig: Vec<Ball> = (0..d as u64)
        .map(|j| trigamma(prec, &exact_arg(k - j, 0.0)))
        .collect();
    StepFactors {
        inv_m: Ball::exact(prec, Rational::from((1, m))),
        inv_k: Ball::exact(prec, Rational::from((1, k))),
        drift,
        trigamma_sum: Ball::sum(prec, &trig),
    }
}

/// All generations n = 0..=N at working precision `prec` bits.
pub fn theory_at_precision(spec: &MvnSpec, prec: u32) -> MvnTheory {
    let p = prec;
    let d = spec.dim;
    let variances: Vec<Ball> = spec
        .cov_diag
        .iter()
        .map(|&v| Ball::from_f64(p, v))
        .collect();
    let trace = Ball::sum(p, &variances);
    let squares: Vec<Ball> = variances.iter().map(Ball::square).collect();
    let trace_of_square = Ball::sum(p, &squares);
    // ln of the exact product (not a sum of logs, which cannot certify a zero, e.g. 2 * 0.5).
    let det = spec.cov_diag.iter().fold(Rational::from(1), |acc, &v| {
        acc * Rational::from_f64(v).expect("finite (validated)")
    });
    let mut expected_log_det = Ball::exact(p, det).ln();
    let mut var_log_det = Ball::exact(p, 0);
    let mut mean_sq_error = Ball::exact(p, 0);
    // a = E tr(Sigma_n^2), b = E (tr Sigma_n)^2.
    let mut a = trace_of_square.clone();
    let mut b = trace.square();
    let sizes = spec.sample_sizes();
    let mut cache: HashMap<u64, StepFactors> = HashMap::new();
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    for n in 0..=spec.generations {
        rows.push(MvnMoments {
            n,
            mean_sq_error: mean_sq_error.clone(),
            expected_trace: trace.clone(),
            expected_log_det: expected_log_det.clone(),
            var_log_det: var_log_det.clone(),
            w2_sq_lower_bound: mean_sq_error.clone(),
            expected_trace_of_square: a.clone(),
            expected_square_of_trace: b.clone(),
            frobenius_sq_error: if n == 0 {
                Ball::exact(p, 0)
            } else {
                a.sub(&trace_of_square)
            },
        });
        if n == spec.generations {
            break;
        }
        let m = sizes[n as usize];
        let f = cache.entry(m).or_insert_with(|| step_factors(p, m, d));
        mean_sq_error = mean_sq_error.add(&trace.mul(&f.inv_m));
        expected_log_det = expected_log_det.add(&f.drift);
        var_log_det = var_log_det.add(&f.trigamma_sum);
        // E tr(W^2) = k(k+1) tr S^2 + k (tr S)^2, E (tr W)^2 = k^2 (tr S)^2 + 2k tr S^2 for
        // W ~ Wishart(S, k); Sigma_{n+1} = W / k.
        let next_a = a.add(&a.add(&b).mul(&f.inv_k));
        let next_b = b.add(&a.mul(&f.inv_k).mul_f64(2.0));
        a = next_a;
        b = next_b;
    }
    let (log_det_drift, lyapunov_exponents) = if spec.schedule.is_constant() {
        let f = cache.get(&sizes[0]).expect("at least one generation");
        (Some(f.drift.clone()), Some(drift_terms(p, sizes[0] - 1, d)))
    } else {
        (None, None)
    };
    MvnTheory {
        spec: spec.clone(),
        precision_bits: p,
        rows,
        log_det_drift,
        lyapunov_exponents,
        det_collapses_almost_surely: !spec.schedule.is_summable(),
        mean_sq_error_limit: crate::gaussian::w2_limit(
            &spec.schedule,
            crate::gaussian::Estimator::Unbiased,
            1.0,
            4096,
            p,
        )
        .ok()
        .and_then(|limit| limit.sum_inverse_sizes)
        .map(|sum| sum.mul(&trace)),
    }
}

/// All generations with at least `digits` certified significant digits in every reported value
/// where the precision cap allows it (check `min_certified_digits`). Replace only: the other
/// strategies' moments are [`strategy_theory`]'s.
pub fn theory(spec: &MvnSpec, digits: u32) -> Result<MvnTheory, SpecError> {
    if spec.strategy != Strategy::Replace {
        return Err(SpecError::invalid(
            "strategy",
            format!(
                "the Bartlett moments hold for replace only; {} has strategy_theory",
                spec.strategy.label()
            ),
        ));
    }
    let log_n = 64 - spec.generations.leading_zeros();
    refine_until_certified(
        digits,
        40 + 2 * log_n,
        |prec| Ok(theory_at_precision(spec, prec)),
        MvnTheory::min_certified_digits,
    )
}

/// E||mu_n - mu||^2, E[tr Sigma_n] and the lower bound E||mu_n - mu||^2 <= E[W2^2] at
/// generation n under a data strategy.
#[derive(Debug, Clone)]
pub struct MvnStrategyRow {
    pub n: u64,
    pub mean_sq_error: Ball,
    pub expected_trace: Ball,
    pub w2_sq_lower_bound: Ball,
}

impl MvnStrategyRow {
    /// The reported quantities with their names (the CLI's JSON keys).
    pub fn named(&self) -> [(&'static str, &Ball); 3] {
        [
            ("mean_sq_error", &self.mean_sq_error),
            ("expected_trace", &self.expected_trace),
            ("w2_sq_lower_bound", &self.w2_sq_lower_bound),
        ]
    }
}

/// The moments of the d-dimensional process under any strategy: every projection a^T x is the
/// one-dimensional process with sigma^2 = a^T Sigma a (proofs/strategies.md §9), so
/// E[Sigma_n] = v_n Sigma and E||mu_n - mu||^2 = e_n tr Sigma with (e_n, v_n) the
/// one-dimensional moments at sigma = 1 (`scalar`). Moments of ln det Sigma_n and of Sigma_n^2
/// have no known closed form under accumulate, accumulate-subsample, mix or keep.
#[derive(Debug, Clone)]
pub struct MvnStrategyTheory {
    pub spec: MvnSpec,
    /// The one-dimensional theory at sigma = 1 that the rows scale.
    pub scalar: StrategyTheory,
    pub rows: Vec<MvnStrategyRow>,
    /// The limits (E||mu - mu_0||^2, E[tr Sigma]) as n -> infinity for a constant schedule
    /// with an anchor (mix, keep).
    pub stationary: Option<(Ball, Ball)>,
}

impl MvnStrategyTheory {
    pub fn min_certified_digits(&self) -> u32 {
        let rows = self
            .rows
            .iter()
            .flat_map(|r| r.named().map(|(_, b)| b.certified_digits()));
        let stationary = self
            .stationary
            .iter()
            .flat_map(|(e, v)| [e.certified_digits(), v.certified_digits()]);
        rows.chain(stationary).min().unwrap_or(0)
    }
}

/// [`MvnStrategyTheory`] with at least `digits` certified digits where the precision cap allows
/// (any strategy, replace included: its rows then equal `theory`'s first two columns).
pub fn strategy_theory(spec: &MvnSpec, digits: u32) -> Result<MvnStrategyTheory, SpecError> {
    // Scaling by the exact tr Sigma costs at most one ulp of the working precision per value.
    let scalar = crate::strategy::strategy_theory(&spec.projected(), digits.saturating_add(1))?;
    let p = scalar.precision_bits + 8;
    let trace = spec.trace(p);
    let scaled = |b: &Ball| b.mul(&trace);
    let rows = scalar
        .rows
        .iter()
        .map(|r| MvnStrategyRow {
            n: r.n,
            mean_sq_error: scaled(&r.mean_sq_error),
            expected_trace: scaled(&r.expected_variance),
            w2_sq_lower_bound: scaled(&r.mean_sq_error),
        })
        .collect();
    let stationary = scalar
        .stationary
        .as_ref()
        .map(|s| (scaled(&s.mean_sq_error), scaled(&s.expected_variance)));
    Ok(MvnStrategyTheory {
        spec: spec.clone(),
        scalar,
        rows,
        stationary,
    })
}

#[cfg(test)]
mod tests;
