//! The 1-D Gaussian recursion: generation i+1 is N(sample mean, sample variance) of M_i draws
//! from generation i. Exact moments per generation (derivations: `proofs/gaussian.md`).
//!
//! With k_i = M_i - 1, D_i = k_i (unbiased) or M_i (MLE) and X_i = chi^2_{k_i} / D_i:
//! sigma_{i+1}^2 = sigma_i^2 X_i and mu_{i+1} = mu_i + sigma_i Z / sqrt(M_i) (Cochran), so
//! E[sigma_n^{2r}] = sigma^{2r} prod_i E[X_i^r] with E[X^r] = (2/D)^r Gamma(k/2 + r) / Gamma(k/2).

use crate::ball::Ball;
use crate::schedule::{Schedule, ScheduleKind};
use crate::special::{digamma, exact_arg, ln_gamma, trigamma};
use crate::strategy::Strategy;
use crate::truth::Truth;
use crate::{SpecError, bits_for_digits};
use rug::Float;
use rug::ops::Pow;
use std::collections::{BTreeMap, HashMap};

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
    /// What each generation is fitted to (`replace` unless set by
    /// [`GaussianSpec::with_strategy`]). The theory of this module is replace's; every strategy's
    /// is `crate::strategy::strategy_theory` (proofs/strategies.md).
    pub strategy: Strategy,
    /// The true distribution D0 (`normal` unless set by [`GaussianSpec::with_truth`]): its
    /// shape enters only through the real data and W2 (`crate::truth`, proofs/truths.md,
    /// proofs/strategies.md §11).
    pub truth: Truth,
}

/// Largest number of generations accepted (theory rows hold ~2 KB of balls each).
pub const MAX_GENERATIONS: u64 = 1_000_000;

/// N in 1..=`MAX_GENERATIONS` (every process's spec checks it the same way).
pub(crate) fn check_generations(generations: u64) -> Result<(), SpecError> {
    if generations == 0 || generations > MAX_GENERATIONS {
        return Err(SpecError::invalid(
            "generations",
            format!("must be in 1..={MAX_GENERATIONS}, got {generations}"),
        ));
    }
    Ok(())
}

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
        check_generations(generations)?;
        schedule.sizes(generations)?;
        Ok(GaussianSpec {
            schedule,
            estimator,
            sigma,
            generations,
            strategy: Strategy::Replace,
            truth: Truth::Normal,
        })
    }

    /// The same spec with data strategy `strategy`, validated against the sizes (`keep:F` needs
    /// M_i >= round(F M_0) for every i; proofs/strategies.md §1).
    pub fn with_strategy(self, strategy: Strategy) -> Result<GaussianSpec, SpecError> {
        strategy.validate(&self.sample_sizes())?;
        Ok(GaussianSpec { strategy, ..self })
    }

    /// The same process from a truth D0 with mean 0 and variance sigma^2, under any strategy:
    /// every real point (D_0, fresh real draws, kept points) is a draw of D0
    /// (proofs/strategies.md §11). `Truth::parse` refuses truths without a finite variance.
    pub fn with_truth(self, truth: Truth) -> Result<GaussianSpec, SpecError> {
        Ok(GaussianSpec { truth, ..self })
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
    let ln_two_c = ln_two_over_divisor(prec, d);
    let half_k = exact_arg(k, 0.0);
    let ex_half = sqrt_mean_by_ln_gamma(prec, k, &ln_two_c);
    let ex_three_halves = ex_half.mul(&Ball::exact(prec, rug::Rational::from((k + 1, d))));
    StepFactors {
        ex1,
        ex2,
        ex4,
        ex_half,
        ex_three_halves,
        drift: drift_by_digamma(prec, k, &ln_two_c),
        trigamma: trigamma(prec, &half_k),
    }
}

/// ln(2/D) = ln(2c).
fn ln_two_over_divisor(prec: u32, d: u64) -> Ball {
    Ball::exact(prec, rug::Rational::from((2, d))).ln()
}

/// E[X^(1/2)] = exp(ln(2c)/2 + lnGamma(k/2 + 1/2) - lnGamma(k/2)) through MPFR's lnGamma.
fn sqrt_mean_by_ln_gamma(prec: u32, k: u64, ln_two_c: &Ball) -> Ball {
    let lg_k = ln_gamma(prec, &exact_arg(k, 0.0));
    ln_two_c
        .mul_f64(0.5)
        .add(&ln_gamma(prec, &exact_arg(k, 0.5)))
        .sub(&lg_k)
        .exp()
}

/// The drift psi(k/2) + ln(2c) through MPFR's digamma.
fn drift_by_digamma(prec: u32, k: u64, ln_two_c: &Ball) -> Ball {
    digamma(prec, &exact_arg(k, 0.0)).add(ln_two_c)
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
    let log_n = 64 - spec.generations.leading_zeros();
    crate::refine_until_certified(
        digits,
        40 + 2 * log_n,
        |prec| Ok(theory_at_precision(spec, prec)),
        GaussianTheory::min_certified_digits,
    )
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
/// MLE, in [1/(2k) - 1/(4k^2), 1/(2k)]) and 1/k_i in (1/y_i, 1/y_i + 2/y_i^2] (proofs/schedules.md,
/// Lemma 7b and Section 4).
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

/// The quantities that [`certified_quantity_at_generation`] certifies at one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GenerationQuantity {
    /// E[sigma_n] = sigma prod_i E[X_i^(1/2)].
    ExpectedSigma,
    /// E[ln sigma_n^2] = ln sigma^2 + sum_i (psi(k_i/2) + ln(2/D_i)).
    ExpectedLogVariance,
    /// E[W2^2] = E[V_n] + E[sigma_n^2] - 2 sigma E[sigma_n] + sigma^2.
    ExpectedW2Sq,
}

impl GenerationQuantity {
    pub const ALL: [GenerationQuantity; 3] = [
        GenerationQuantity::ExpectedSigma,
        GenerationQuantity::ExpectedLogVariance,
        GenerationQuantity::ExpectedW2Sq,
    ];
    /// The name used by `GenerationMoments::named` (the CLI's JSON keys).
    pub fn name(self) -> &'static str {
        match self {
            GenerationQuantity::ExpectedSigma => "expected_sigma",
            GenerationQuantity::ExpectedLogVariance => "expected_log_variance",
            GenerationQuantity::ExpectedW2Sq => "expected_w2_sq",
        }
    }
}

/// E[sigma_n], E[ln sigma_n^2] and E[W2^2] at one generation n, from
/// [`certified_at_generation`].
#[derive(Debug, Clone)]
pub struct GenerationCertificate {
    pub n: u64,
    /// Working precision in bits of the final pass.
    pub precision_bits: u32,
    pub expected_sigma: Ball,
    pub expected_log_variance: Ball,
    pub expected_w2_sq: Ball,
}

impl GenerationCertificate {
    pub fn named(&self) -> [(GenerationQuantity, &Ball); 3] {
        [
            (GenerationQuantity::ExpectedSigma, &self.expected_sigma),
            (
                GenerationQuantity::ExpectedLogVariance,
                &self.expected_log_variance,
            ),
            (GenerationQuantity::ExpectedW2Sq, &self.expected_w2_sq),
        ]
    }
    pub fn get(&self, quantity: GenerationQuantity) -> &Ball {
        match quantity {
            GenerationQuantity::ExpectedSigma => &self.expected_sigma,
            GenerationQuantity::ExpectedLogVariance => &self.expected_log_variance,
            GenerationQuantity::ExpectedW2Sq => &self.expected_w2_sq,
        }
    }
    /// The fewest certified digits among the three values.
    pub fn min_certified_digits(&self) -> u32 {
        self.named()
            .iter()
            .map(|(_, b)| b.certified_digits())
            .min()
            .unwrap_or(0)
    }
}

/// Runs (M, count) of equal consecutive sizes among M_0 .. M_{n-1}: one run for a constant
/// schedule, at most (list length) runs for a list, and one per distinct size otherwise.
fn size_runs(schedule: &Schedule, n: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut push = |m: u64, count: u64| match runs.last_mut() {
        Some((last, c)) if *last == m => *c += count,
        _ if count > 0 => runs.push((m, count)),
        _ => {}
    };
    match &schedule.kind {
        ScheduleKind::Constant => push(schedule.base, n),
        ScheduleKind::List(sizes) => {
            let listed = n.min(sizes.len() as u64);
            for &m in &sizes[..listed as usize] {
                push(m, 1);
            }
            push(*sizes.last().expect("non-empty list"), n - listed);
        }
        _ => {
            for i in 0..n {
                push(schedule.size(i).expect("validated in GaussianSpec::new"), 1);
            }
        }
    }
    runs
}

/// Largest k = M - 1 for which E[X^(1/2)] uses the exact half-integer form (a central
/// binomial coefficient and pi) in place of MPFR's lnGamma: below it the exact form is cheaper
/// (measured: about 6 us against 3 ms at k = 3200 and 3430 bits; the two cross near
/// k = 40 prec).
fn sqrt_mean_exact_limit(prec: u32) -> u64 {
    (40 * u64::from(prec)).max(4096)
}

/// Largest k for which the drift uses the exact half-integer form of psi(k/2) (a rational
/// sum of k/2 terms, gamma_E and ln 2) in place of MPFR's digamma (measured crossing: k near
/// prec at 240 bits, near 2 prec at 3430 bits).
fn digamma_exact_limit(prec: u32) -> u64 {
    u64::from(prec).max(64)
}

/// E[X^(1/2)] = sqrt(2/D) Gamma(M/2)/Gamma(k/2) from the half-integer forms
/// Gamma(j + 1/2)/Gamma(j) = j C(2j, j) sqrt(pi) / 4^j (k = 2j) and
/// Gamma(j + 1)/Gamma(j + 1/2) = 4^j / (C(2j, j) sqrt(pi)) (k = 2j + 1): its square is an exact
/// rational times pi^(+-1) (proofs/gaussian.md, Section 5b).
fn sqrt_mean_half_integer(prec: u32, k: u64, d: u64) -> Ball {
    use rug::{Integer, Rational};
    let j = k / 2;
    let central = Integer::from(Integer::binomial_u(
        u32::try_from(2 * j).expect("k below sqrt_mean_exact_limit"),
        j as u32,
    ));
    let central_sq = Integer::from(central.square_ref());
    let pi = Ball::correctly_rounded(prec, rug::float::Constant::Pi);
    let square = if k.is_multiple_of(2) {
        // (2/D) j^2 C^2 / 16^j * pi
        let num = central_sq * Integer::from(j) * j * 2u32;
        let den = Integer::from(d) << (4 * j) as u32;
        Ball::exact(prec, Rational::from((num, den))).mul(&pi)
    } else {
        // (2/D) 16^j / C^2 / pi
        let num = Integer::from(2u32) << (4 * j) as u32;
        let den = central_sq * d;
        Ball::exact(prec, Rational::from((num, den))).div(&pi)
    };
    square.sqrt()
}

/// The per-step factors of the first moments for sample size m (what
/// [`certified_at_generation`] needs): E[X] (exact), E[X^(1/2)] and the drift of ln sigma^2.
#[derive(Clone)]
struct FirstStepFactors {
    ex1: Option<Ball>,
    ex_half: Option<Ball>,
    drift: Option<Ball>,
}

fn first_step_factors(prec: u32, m: u64, estimator: Estimator, want: Want) -> FirstStepFactors {
    let k = m - 1;
    let d = estimator.divisor(m);
    let ex_half = want.sqrt_mean.then(|| {
        if k <= sqrt_mean_exact_limit(prec) {
            sqrt_mean_half_integer(prec, k, d)
        } else {
            sqrt_mean_by_ln_gamma(prec, k, &ln_two_over_divisor(prec, d))
        }
    });
    let drift = want.drift.then(|| {
        let ln_two_c = ln_two_over_divisor(prec, d);
        if k <= digamma_exact_limit(prec) {
            crate::special::digamma_half_integer_exact(prec, k).add(&ln_two_c)
        } else {
            drift_by_digamma(prec, k, &ln_two_c)
        }
    });
    FirstStepFactors {
        ex1: want
            .mean
            .then(|| Ball::exact(prec, rug::Rational::from((k, d)))),
        ex_half,
        drift,
    }
}

/// Which factors a pass needs.
#[derive(Debug, Clone, Copy)]
struct Want {
    mean: bool,
    sqrt_mean: bool,
    drift: bool,
}

impl Want {
    fn of(quantities: &[GenerationQuantity]) -> Want {
        let has = |q| quantities.contains(&q);
        let w2 = has(GenerationQuantity::ExpectedW2Sq);
        Want {
            mean: w2,
            sqrt_mean: w2 || has(GenerationQuantity::ExpectedSigma),
            drift: has(GenerationQuantity::ExpectedLogVariance),
        }
    }
}

/// (q^L, 1 + q + ... + q^(L-1)) by binary doubling: (P, G) -> (P^2, G (1 + P)) and
/// (P, G) -> (P q, 1 + q G). Every term is positive, so nothing cancels; O(log L) products
/// (none for q = 1).
fn power_and_geometric_sum(q: &Ball, len: u64) -> (Ball, Ball) {
    let prec = q.prec();
    let one = Ball::exact(prec, 1);
    if q.rad().is_zero() && *q.mid() == 1 {
        // The unbiased estimator's E[X] = 1: (1, L) exactly.
        return (one, Ball::exact(prec, len));
    }
    let (mut p, mut g) = (one.clone(), Ball::exact(prec, 0));
    for bit in (0..64 - len.leading_zeros()).rev() {
        g = g.mul(&one.add(&p));
        p = p.square();
        if (len >> bit) & 1 == 1 {
            g = one.add(&q.mul(&g));
            p = p.mul(q);
        }
    }
    (p, g)
}

/// The requested quantities at generation n and working precision `prec` bits, with
/// O(log n) ball operations per distinct sample size: E[sigma_n] = sigma prod_m e_m^(count_m),
/// E[ln sigma_n^2] = ln sigma^2 + sum_m count_m d_m, and E[W2^2] with
/// E[V_n] = sum_i E[sigma_i^2]/M_i summed run by run as a geometric series in E[X].
fn generation_at_precision(
    spec: &GaussianSpec,
    runs: &[(u64, u64)],
    n: u64,
    prec: u32,
    quantities: &[GenerationQuantity],
) -> [Option<Ball>; 3] {
    let want = Want::of(quantities);
    let mut cache: HashMap<u64, FirstStepFactors> = HashMap::new();
    let mut factors = |m: u64| {
        cache
            .entry(m)
            .or_insert_with(|| first_step_factors(prec, m, spec.estimator, want))
            .clone()
    };
    // Counts per distinct size: products and sums commute, so E[sigma_n] and the log moment
    // need one power (one product) per size however the runs interleave.
    // (A BTreeMap: a deterministic order, hence reproducible last bits.)
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for &(m, count) in runs {
        *counts.entry(m).or_insert(0) += count;
    }
    let sigma = Ball::from_f64(prec, spec.sigma);
    let sigma2 = sigma.square();
    let expected_sigma = want.sqrt_mean.then(|| {
        counts.iter().fold(sigma.clone(), |acc, (&m, &count)| {
            acc.mul(&factors(m).ex_half.expect("wanted").pow_u64(count))
        })
    });
    let expected_log = want.drift.then(|| {
        counts.iter().fold(sigma2.ln(), |acc, (&m, &count)| {
            acc.add(
                &factors(m)
                    .drift
                    .expect("wanted")
                    .mul(&Ball::exact(prec, count)),
            )
        })
    });
    let expected_w2 = want.mean.then(|| {
        if n == 0 {
            return Ball::exact(prec, 0);
        }
        // E[V_n] and E[sigma_n^2], run by run in schedule order.
        let mut ev = Ball::exact(prec, 0);
        let mut s2 = sigma2.clone();
        for &(m, count) in runs {
            let ex1 = factors(m).ex1.expect("wanted");
            let (power, geometric) = power_and_geometric_sum(&ex1, count);
            let inv_m = Ball::exact(prec, rug::Rational::from((1, m)));
            ev = ev.add(&s2.mul(&inv_m).mul(&geometric));
            s2 = s2.mul(&power);
        }
        let s1 = expected_sigma.as_ref().expect("wanted");
        ev.add(&s2).sub(&sigma.mul_f64(2.0).mul(s1)).add(&sigma2)
    });
    let keep = |q: GenerationQuantity, b: Option<Ball>| b.filter(|_| quantities.contains(&q));
    [
        keep(GenerationQuantity::ExpectedSigma, expected_sigma),
        keep(GenerationQuantity::ExpectedLogVariance, expected_log),
        keep(GenerationQuantity::ExpectedW2Sq, expected_w2),
    ]
}

/// Raises the precision until every requested quantity certifies `digits` (or the cap).
fn certify_at_generation(
    spec: &GaussianSpec,
    n: u64,
    digits: u32,
    quantities: &[GenerationQuantity],
) -> Result<(u32, [Option<Ball>; 3]), SpecError> {
    if digits == 0 || digits > crate::MAX_DIGITS {
        return Err(SpecError::invalid(
            "digits",
            format!("must be in 1..={}, got {digits}", crate::MAX_DIGITS),
        ));
    }
    if n > spec.generations {
        return Err(SpecError::invalid(
            "generation",
            format!("{n} > N = {}", spec.generations),
        ));
    }
    let runs = size_runs(&spec.schedule, n);
    let log_n = 64 - n.leading_zeros();
    let mut prec = bits_for_digits(digits, 40 + 2 * log_n);
    loop {
        let balls = generation_at_precision(spec, &runs, n, prec, quantities);
        let certified = balls
            .iter()
            .flatten()
            .all(|b| b.certified_digits() >= digits);
        if certified || prec >= MAX_PRECISION_BITS {
            return Ok((prec, balls));
        }
        prec = (prec * 2).min(MAX_PRECISION_BITS);
    }
}

/// E[sigma_n], E[ln sigma_n^2] and E[W2^2] at the one generation n <= N, each with at least
/// `digits` certified significant digits where the precision cap allows it (check
/// `min_certified_digits`). The same values as row n of [`theory`], at a cost of O(log n) ball
/// operations per distinct sample size among M_0 .. M_{n-1} (O(log n) for a constant schedule)
/// instead of O(n).
pub fn certified_at_generation(
    spec: &GaussianSpec,
    n: u64,
    digits: u32,
) -> Result<GenerationCertificate, SpecError> {
    let (prec, [sigma, log, w2]) =
        certify_at_generation(spec, n, digits, &GenerationQuantity::ALL)?;
    Ok(GenerationCertificate {
        n,
        precision_bits: prec,
        expected_sigma: sigma.expect("requested"),
        expected_log_variance: log.expect("requested"),
        expected_w2_sq: w2.expect("requested"),
    })
}

/// One of the quantities of [`certified_at_generation`] alone (only its factors are computed),
/// with at least `digits` certified digits where the precision cap allows it; its working
/// precision is the ball's `prec()`.
pub fn certified_quantity_at_generation(
    spec: &GaussianSpec,
    n: u64,
    quantity: GenerationQuantity,
    digits: u32,
) -> Result<Ball, SpecError> {
    let (_, balls) = certify_at_generation(spec, n, digits, &[quantity])?;
    Ok(balls
        .into_iter()
        .flatten()
        .next()
        .expect("the requested quantity"))
}

#[cfg(test)]
mod tests;
