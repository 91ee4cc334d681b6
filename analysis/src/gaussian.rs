//! The 1-D Gaussian recursion: generation i+1 is N(sample mean, sample variance) of M_i draws
//! from generation i. Exact moments per generation (derivations: `proofs/gaussian.md`).
//!
//! With k_i = M_i - 1, D_i = k_i (unbiased) or M_i (MLE) and X_i = chi^2_{k_i} / D_i:
//! sigma_{i+1}^2 = sigma_i^2 X_i and mu_{i+1} = mu_i + sigma_i Z / sqrt(M_i) (Cochran), so
//! E[sigma_n^{2r}] = sigma^{2r} prod_i E[X_i^r] with E[X^r] = (2/D)^r Gamma(k/2 + r) / Gamma(k/2).

use crate::ball::Ball;
use crate::schedule::Schedule;
use crate::special::{digamma, exact_arg, ln_gamma, trigamma};
use crate::{SpecError, bits_for_digits};
use rug::Float;
use rug::ops::Pow;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    /// Divide by M - 1 (the paper's choice): E[sigma_n^2] = sigma^2 for all n.
    Unbiased,
    /// Divide by M: E[sigma_n^2] = sigma^2 prod (1 - 1/M_i).
    Mle,
}

impl Estimator {
    pub fn parse(text: &str) -> Result<Estimator, SpecError> {
        match text {
            "unbiased" => Ok(Estimator::Unbiased),
            "mle" => Ok(Estimator::Mle),
            other => Err(SpecError::invalid(
                "estimator",
                format!("'{other}' (expected unbiased or mle)"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Unbiased => "unbiased",
            Estimator::Mle => "mle",
        }
    }
    /// The divisor D for a sample of size m.
    pub fn divisor(self, m: u64) -> u64 {
        match self {
            Estimator::Unbiased => m - 1,
            Estimator::Mle => m,
        }
    }
}

/// The process parameters shared by theory and simulation. mu is 0 without loss of
/// generality: every reported quantity is relative to the true mean.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianSpec {
    pub schedule: Schedule,
    pub estimator: Estimator,
    pub sigma: f64,
    pub generations: u64,
}

/// Largest number of generations accepted (theory rows hold ~2 KB of balls each).
pub const MAX_GENERATIONS: u64 = 1_000_000;

impl GaussianSpec {
    pub fn new(
        schedule: Schedule,
        estimator: Estimator,
        sigma: f64,
        generations: u64,
    ) -> Result<GaussianSpec, SpecError> {
        if !sigma.is_finite() || sigma <= 0.0 {
            return Err(SpecError::invalid(
                "sigma",
                format!("must be finite and > 0, got {sigma}"),
            ));
        }
        if generations == 0 || generations > MAX_GENERATIONS {
            return Err(SpecError::invalid(
                "generations",
                format!("must be in 1..={MAX_GENERATIONS}, got {generations}"),
            ));
        }
        schedule.sizes(generations)?;
        Ok(GaussianSpec {
            schedule,
            estimator,
            sigma,
            generations,
        })
    }

    /// M_0 .. M_{N-1} (validated by `new`).
    pub fn sample_sizes(&self) -> Vec<u64> {
        self.schedule
            .sizes(self.generations)
            .expect("validated in GaussianSpec::new")
    }
}

/// Relative variance Var[Y]/E[Y]^2 of per-chain values, and of their squares (the "tail"):
/// a mean over R chains has relative standard error sqrt(rv / R).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feasibility {
    pub variance: f64,
    pub variance_tail: f64,
    pub sigma: f64,
    pub sigma_tail: f64,
    pub mean_sq_error: f64,
    pub w2_sq: f64,
}

impl Feasibility {
    /// Chains needed for relative standard error `eps` given relative variance `rv`.
    pub fn chains_needed(rv: f64, eps: f64) -> f64 {
        rv / (eps * eps)
    }
    /// The toolkit's rule: predicted relative s.e. <= 0.1 and the squares' relative variance
    /// <= R/10 (so that the empirical standard error is itself reliable).
    pub fn is_feasible(rv: f64, tail_rv: f64, chains: u64) -> bool {
        let r = chains as f64;
        rv.is_finite() && tail_rv.is_finite() && rv <= 0.01 * r && tail_rv <= 0.1 * r
    }
    pub fn variance_ok(&self, chains: u64) -> bool {
        Self::is_feasible(self.variance, self.variance_tail, chains)
    }
    pub fn sigma_ok(&self, chains: u64) -> bool {
        Self::is_feasible(self.sigma, self.sigma_tail, chains)
    }
    pub fn mean_sq_error_ok(&self, chains: u64) -> bool {
        Self::is_feasible(self.mean_sq_error, self.variance_tail, chains)
    }
    pub fn w2_sq_ok(&self, chains: u64) -> bool {
        Self::is_feasible(self.w2_sq, self.variance_tail, chains)
    }
}

/// Exact moments at generation n.
#[derive(Debug, Clone)]
pub struct GenerationMoments {
    pub n: u64,
    pub expected_variance: Ball,
    pub expected_sigma: Ball,
    pub expected_log_variance: Ball,
    pub var_log_variance: Ball,
    pub mean_sq_error: Ball,
    pub expected_w2_sq: Ball,
    pub w2_sq_lower_bound: Ball,
    pub var_w2_sq: Ball,
    pub feasibility: Feasibility,
}

impl GenerationMoments {
    /// The reported quantities with their names (the CLI's JSON keys).
    pub fn named(&self) -> [(&'static str, &Ball); 8] {
        [
            ("expected_variance", &self.expected_variance),
            ("expected_sigma", &self.expected_sigma),
            ("expected_log_variance", &self.expected_log_variance),
            ("var_log_variance", &self.var_log_variance),
            ("mean_sq_error", &self.mean_sq_error),
            ("expected_w2_sq", &self.expected_w2_sq),
            ("w2_sq_lower_bound", &self.w2_sq_lower_bound),
            ("var_w2_sq", &self.var_w2_sq),
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
pub struct GaussianTheory {
    pub spec: GaussianSpec,
    /// Working precision in bits of the final pass.
    pub precision_bits: u32,
    pub rows: Vec<GenerationMoments>,
}

impl GaussianTheory {
    pub fn min_certified_digits(&self) -> u32 {
        self.rows
            .iter()
            .map(GenerationMoments::min_certified_digits)
            .min()
            .unwrap_or(0)
    }
}

/// Per-step factors of one sample size (cached: schedules repeat sizes).
#[derive(Clone)]
struct StepFactors {
    /// E[X], E[X^2], E[X^4] (exact rationals), E[X^(1/2)], E[X^(3/2)].
    ex1: Ball,
    ex2: Ball,
    ex4: Ball,
    ex_half: Ball,
    ex_three_halves: Ball,
    /// psi(k/2) + ln(2/D): the drift of ln sigma^2.
    drift: Ball,
    /// psi'(k/2): the variance of the step of ln sigma^2.
    trigamma: Ball,
}

fn step_factors(prec: u32, m: u64, estimator: Estimator) -> StepFactors {
    let k = m - 1;
    let d = estimator.divisor(m);
    let ratio = |num: rug::Integer, pow: u32| {
        Ball::exact(
            prec,
            rug::Rational::from((num, rug::Integer::from(d).pow(pow))),
        )
    };
    use rug::Integer as I;
    let ex1 = ratio(I::from(k), 1);
    let ex2 = ratio(I::from(k) * (k + 2), 2);
    let ex4 = ratio(I::from(k) * (k + 2) * (k + 4) * (k + 6), 4);
    let ln_two_c = Ball::exact(prec, rug::Rational::from((2, d))).ln();
    let half_k = exact_arg(k, 0.0);
    let lg_k = ln_gamma(prec, &half_k);
    let ex_half = ln_two_c
        .mul_f64(0.5)
        .add(&ln_gamma(prec, &exact_arg(k, 0.5)))
        .sub(&lg_k)
        .exp();
    let ex_three_halves = ex_half.mul(&Ball::exact(prec, rug::Rational::from((k + 1, d))));
    StepFactors {
        ex1,
        ex2,
        ex4,
        ex_half,
        ex_three_halves,
        drift: digamma(prec, &half_k).add(&ln_two_c),
        trigamma: trigamma(prec, &half_k),
    }
}

fn rel_var(second: &Ball, first: &Ball) -> f64 {
    let f = first.to_f64();
    if f == 0.0 {
        return 0.0;
    }
    // Computed in the balls' precision: second / first^2 - 1 may cancel.
    second
        .div(&first.square())
        .sub(&Ball::exact(first.prec(), 1))
        .to_f64()
        .max(0.0)
}

/// All generations n = 0..=N at working precision `prec` bits.
pub fn theory_at_precision(spec: &GaussianSpec, prec: u32) -> GaussianTheory {
    let p = prec;
    let sizes = spec.sample_sizes();
    let sigma = Ball::from_f64(p, spec.sigma);
    let sigma2 = sigma.square();
    let zero = Ball::exact(p, 0);
    let mut cache: HashMap<u64, StepFactors> = HashMap::new();

    // Moments of sigma_n: s[r] = E[sigma_n^r] for r = 1, 2, 3, 4, 8.
    let mut s1 = sigma.clone();
    let mut s2 = sigma2.clone();
    let mut s3 = sigma2.mul(&sigma);
    let mut s4 = sigma2.square();
    let mut s8 = s4.square();
    // E[V], E[V^2], E[V sigma^2], E[V sigma] with V_n = sum_{i<n} sigma_i^2 / M_i.
    let (mut ev, mut ev2, mut ev_s2, mut ev_s1) =
        (zero.clone(), zero.clone(), zero.clone(), zero.clone());
    let mut elog = sigma2.ln();
    let mut varlog = zero.clone();
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    let two_sigma = sigma.mul_f64(2.0);
    for n in 0..=spec.generations {
        let expected_w2 = ev.add(&s2).sub(&two_sigma.mul(&s1)).add(&sigma2);
        // E[(sigma_n - sigma)^4]
        let eb2 = s4
            .sub(&sigma.mul(&s3).mul_f64(4.0))
            .add(&sigma2.mul(&s2).mul_f64(6.0))
            .sub(&sigma2.mul(&sigma).mul(&s1).mul_f64(4.0))
            .add(&sigma2.square());
        let eab = ev_s2.sub(&two_sigma.mul(&ev_s1)).add(&sigma2.mul(&ev));
        let var_w2 = ev2
            .mul_f64(3.0)
            .add(&eab.mul_f64(2.0))
            .add(&eb2)
            .sub(&expected_w2.square());
        let feasibility = Feasibility {
            variance: rel_var(&s4, &s2),
            variance_tail: rel_var(&s8, &s4),
            sigma: rel_var(&s2, &s1),
            sigma_tail: rel_var(&s4, &s2),
            mean_sq_error: if n == 0 {
                0.0
            } else {
                rel_var(&ev2.mul_f64(3.0), &ev)
            },
            w2_sq: if n == 0 {
                0.0
            } else {
                var_w2.div(&expected_w2.square()).to_f64().max(0.0)
            },
        };
        rows.push(GenerationMoments {
            n,
            expected_variance: s2.clone(),
            expected_sigma: s1.clone(),
            expected_log_variance: elog.clone(),
            var_log_variance: varlog.clone(),
            mean_sq_error: ev.clone(),
            expected_w2_sq: expected_w2,
            w2_sq_lower_bound: ev.clone(),
            var_w2_sq: var_w2,
            feasibility,
        });
        if n == spec.generations {
            break;
        }
        let m = sizes[n as usize];
        let f = cache
            .entry(m)
            .or_insert_with(|| step_factors(p, m, spec.estimator))
            .clone();
        let inv_m = Ball::exact(p, rug::Rational::from((1, m)));
        ev2 = ev2
            .add(&ev_s2.mul(&inv_m).mul_f64(2.0))
            .add(&s4.mul(&inv_m.square()));
        ev_s2 = f.ex1.mul(&ev_s2.add(&s4.mul(&inv_m)));
        ev_s1 = f.ex_half.mul(&ev_s1.add(&s3.mul(&inv_m)));
        ev = ev.add(&s2.mul(&inv_m));
        s1 = s1.mul(&f.ex_half);
        s2 = s2.mul(&f.ex1);
        s3 = s3.mul(&f.ex_three_halves);
        s4 = s4.mul(&f.ex2);
        s8 = s8.mul(&f.ex4);
        elog = elog.add(&f.drift);
        varlog = varlog.add(&f.trigamma);
    }
    GaussianTheory {
        spec: spec.clone(),
        precision_bits: p,
        rows,
    }
}

/// Largest working precision the automatic refinement may reach.
pub const MAX_PRECISION_BITS: u32 = 1 << 16;

/// All generations with at least `digits` certified significant digits in every reported value
/// where the precision cap allows it (check `min_certified_digits`).
pub fn theory(spec: &GaussianSpec, digits: u32) -> Result<GaussianTheory, SpecError> {
    if digits == 0 || digits > crate::MAX_DIGITS {
        return Err(SpecError::invalid(
            "digits",
            format!("must be in 1..={}, got {digits}", crate::MAX_DIGITS),
        ));
    }
    let log_n = 64 - spec.generations.leading_zeros();
    let mut prec = bits_for_digits(digits, 40 + 2 * log_n);
    loop {
        let t = theory_at_precision(spec, prec);
        if t.min_certified_digits() >= digits || prec >= MAX_PRECISION_BITS {
            return Ok(t);
        }
        prec = (prec * 2).min(MAX_PRECISION_BITS);
    }
}

/// E[sigma_n^{2r}] = sigma^{2r} prod_{i<n} (2/D_i)^r Gamma(k_i/2 + r) / Gamma(k_i/2), for real
/// r > -k_min/2 (the moment is infinite otherwise).
pub fn sigma_power_moment(
    spec: &GaussianSpec,
    r: f64,
    n: u64,
    prec: u32,
) -> Result<Ball, SpecError> {
    if !r.is_finite() {
        return Err(SpecError::invalid("moment order", "must be finite"));
    }
    if n > spec.generations {
        return Err(SpecError::invalid(
            "generation",
            format!("{n} > N = {}", spec.generations),
        ));
    }
    let sizes = spec.sample_sizes();
    let sizes = &sizes[..n as usize];
    if let Some(k_min) = sizes.iter().map(|m| m - 1).min()
        && r <= -(k_min as f64) / 2.0
    {
        return Err(SpecError::invalid(
            "moment order",
            format!(
                "E[sigma^(2r)] is infinite for r = {r} <= -(M-1)/2 = {}",
                -(k_min as f64) / 2.0
            ),
        ));
    }
    let rb = Ball::from_f64(prec, r);
    let mut log_sum = Ball::from_f64(prec, spec.sigma).square().ln().mul(&rb);
    let mut cache: HashMap<u64, Ball> = HashMap::new();
    for &m in sizes {
        let term = cache.entry(m).or_insert_with(|| {
            let k = m - 1;
            let d = spec.estimator.divisor(m);
            Ball::exact(prec, rug::Rational::from((2, d)))
                .ln()
                .mul(&rb)
                .add(&ln_gamma(prec, &exact_arg(k, r)))
                .sub(&ln_gamma(prec, &exact_arg(k, 0.0)))
        });
        log_sum = log_sum.add(term);
    }
    Ok(log_sum.exp())
}

/// The behaviour of E[W2^2] as n -> infinity.
#[derive(Debug, Clone)]
pub struct W2Limit {
    /// sum 1/M_i < infinity (unbiased) — always true for the MLE, whose E[W2^2] <= 2 sigma^2.
    pub bounded: bool,
    /// Enclosure of lim E[W2^2] when bounded (terms summed exactly, tails bounded rigorously).
    pub limit: Option<Ball>,
    /// Enclosure of sum_i 1/M_i when it converges.
    pub sum_inverse_sizes: Option<Ball>,
    pub terms_summed: u64,
}

/// lim_{n->inf} E[W2^2]. Unbiased: sigma^2 (S + 2 - 2 prod e_i) with S = sum 1/M_i and
/// e_i = E[sigma_{i+1}/sigma_i]; MLE: 2 sigma^2 (1 - prod e_i). The first `terms` factors are
/// exact; the tails use -ln e_i in [1/(4k) - 1/(5k^3), 1/(4k) + 4/(25k^3)] (+ ln(1+1/k)/2 for the
/// MLE, in [1/(2k) - 1/(4k^2), 1/(2k)]) and 1/k_i in (1/y_i, 1/y_i + 2/y_i^2] (proofs/gaussian.md).
pub fn w2_limit(
    schedule: &Schedule,
    estimator: Estimator,
    sigma: f64,
    terms: u64,
    prec: u32,
) -> Result<W2Limit, SpecError> {
    let summable = schedule.is_summable();
    if estimator == Estimator::Unbiased && !summable {
        return Ok(W2Limit {
            bounded: false,
            limit: None,
            sum_inverse_sizes: None,
            terms_summed: 0,
        });
    }
    let sigma2 = Ball::from_f64(prec, sigma).square();
    if !summable {
        // MLE with sum 1/M_i = infinity: prod e_i = 0 and E[W2^2] -> 2 sigma^2 exactly.
        return Ok(W2Limit {
            bounded: true,
            limit: Some(sigma2.mul_f64(2.0)),
            sum_inverse_sizes: None,
            terms_summed: 0,
        });
    }
    // Sum exactly while sizes stay representable; the tail bounds cover the rest.
    let sizes: Vec<u64> = (0..terms).map_while(|i| schedule.size(i).ok()).collect();
    let terms = sizes.len() as u64;
    let mut s_part = Ball::exact(prec, 0);
    let mut log_prod = Ball::exact(prec, 0);
    for &m in &sizes {
        s_part = s_part.add(&Ball::exact(prec, rug::Rational::from((1, m))));
        let k = m - 1;
        let d = estimator.divisor(m);
        let log_e = Ball::exact(prec, rug::Rational::from((2, d)))
            .ln()
            .mul_f64(0.5)
            .add(&ln_gamma(prec, &exact_arg(k, 0.5)))
            .sub(&ln_gamma(prec, &exact_arg(k, 0.0)));
        log_prod = log_prod.add(&log_e);
    }
    let t1 = schedule
        .tail_of_inverse_powers(prec, terms, 1)
        .expect("summable");
    let t2 = schedule
        .tail_of_inverse_powers(prec, terms, 2)
        .expect("summable");
    let t3 = schedule
        .tail_of_inverse_powers(prec, terms, 3)
        .expect("summable");
    // Tail of S: sum 1/M_i in [t1 - t2, t1] since 1/ceil(y) >= 1/(y+1) >= 1/y - 1/y^2.
    let s_lo = s_part.add(&t1).sub(&t2).lower();
    let s_hi = s_part.add(&t1).upper();
    // Tail of -ln prod e_i: sum 1/k in [t1, t1 + 2 t2], sum 1/k^3 <= 8 t3, sum 1/k^2 <= 4 t2.
    let sum_k_lo = t1.clone();
    let sum_k_hi = t1.add(&t2.mul_f64(2.0));
    let (mut neg_lo, mut neg_hi) = (
        sum_k_lo.mul_f64(0.25).sub(&t3.mul_f64(8.0 / 5.0)),
        sum_k_hi.mul_f64(0.25).add(&t3.mul_f64(8.0 * 4.0 / 25.0)),
    );
    if estimator == Estimator::Mle {
        neg_lo = neg_lo.add(&sum_k_lo.mul_f64(0.5)).sub(&t2.mul_f64(1.0));
        neg_hi = neg_hi.add(&sum_k_hi.mul_f64(0.5));
    }
    let prod_hi = log_prod.sub(&neg_lo).exp().upper();
    let prod_lo = log_prod.sub(&neg_hi).exp().lower();
    let (lo, hi) = match estimator {
        Estimator::Unbiased => {
            let two = Ball::exact(prec, 2);
            let lo = Ball::with_radius(s_lo.clone(), Float::new(64))
                .add(&two)
                .sub(&Ball::with_radius(prod_hi, Float::new(64)).mul_f64(2.0))
                .mul(&sigma2)
                .lower();
            let hi = Ball::with_radius(s_hi.clone(), Float::new(64))
                .add(&two)
                .sub(&Ball::with_radius(prod_lo, Float::new(64)).mul_f64(2.0))
                .mul(&sigma2)
                .upper();
            (lo, hi)
        }
        Estimator::Mle => {
            let one = Ball::exact(prec, 1);
            let lo = one
                .sub(&Ball::with_radius(prod_hi, Float::new(64)))
                .mul(&sigma2)
                .mul_f64(2.0)
                .lower();
            let hi = one
                .sub(&Ball::with_radius(prod_lo, Float::new(64)))
                .mul(&sigma2)
                .mul_f64(2.0)
                .upper();
            (lo, hi)
        }
    };
    Ok(W2Limit {
        bounded: true,
        limit: Some(Ball::hull(prec, &lo, &hi)),
        sum_inverse_sizes: Some(Ball::hull(prec, &s_lo, &s_hi)),
        terms_summed: terms,
    })
}

#[cfg(test)]
mod tests;
