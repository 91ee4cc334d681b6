//! The spec of a categorical resampling run and its theory, generation by generation.

use super::full::{FullChain, symmetric_size};
use super::{
    AbsorptionTimes, ChainNumber, MAX_ENCLOSED_SAMPLES, MAX_EXACT_SAMPLES, TwoTypeChain,
    absorption_moments_from, diffusion_absorption_time, diffusion_absorption_time_enclosure,
    heterozygosity_curve, loss_probabilities,
};
use crate::{Ball, SpecError};
use rug::ops::Pow;
use rug::{Integer, Rational};

/// Largest number of categories accepted.
pub const MAX_CATEGORIES: u32 = 1_000_000;
/// Largest number of generations of the theory.
pub const MAX_GENERATIONS: u32 = 100_000;
/// Largest K whose Zipf or geometric law is built in exact rationals (the normalising sum's
/// denominator grows with K); larger K uses enclosures.
pub const MAX_EXACT_CATEGORIES: u32 = 64;
/// Work budget of P(T <= n) through the full chain: states^2 x N.
pub const MAX_FULL_STEP_WORK: f64 = 5e7;
/// Largest N M for exact rational count laws (see `theory`).
pub const MAX_EXACT_WORK: u64 = 2_000;
/// Work budget of the per-category loss recursions: distinct probabilities x N x M^2.
pub const MAX_LOSS_WORK: f64 = 2e9;

/// The initial distribution p^(0).
#[derive(Debug, Clone, PartialEq)]
pub enum Initial {
    /// 1/K each.
    Uniform,
    /// p_i proportional to i^-S.
    Zipf(f64),
    /// p_i proportional to R^(i-1) (R kept exactly as written).
    Geometric(Rational),
    /// Explicit probabilities, kept as exact decimals (or fractions p/q) as written.
    Probs(Vec<Rational>),
}

impl Initial {
    pub fn parse(text: &str) -> Result<Initial, SpecError> {
        let bad = |why: String| SpecError::invalid("init", why);
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (text.trim(), None),
        };
        let number = |a: Option<&str>| -> Result<f64, SpecError> {
            let a = a.ok_or_else(|| bad(format!("'{name}' needs a parameter, e.g. {name}:1.1")))?;
            let v: f64 = a
                .parse()
                .map_err(|_| bad(format!("'{a}' is not a number in '{text}'")))?;
            if !v.is_finite() {
                return Err(bad(format!("the parameter of '{text}' must be finite")));
            }
            Ok(v)
        };
        match name {
            "uniform" if arg.is_some() => Err(bad("'uniform' takes no parameter".into())),
            "uniform" => Ok(Initial::Uniform),
            "zipf" => {
                let s = number(arg)?;
                if !(0.0..=100.0).contains(&s) {
                    return Err(bad(format!("zipf exponent must be in [0, 100], got {s}")));
                }
                Ok(Initial::Zipf(s))
            }
            "geometric" => {
                let r = number(arg)?;
                if !(r > 0.0 && r <= 1.0) {
                    return Err(bad(format!("geometric ratio must be in (0, 1], got {r}")));
                }
                let exact = arg
                    .and_then(parse_exact)
                    .ok_or_else(|| bad(format!("'{text}'")))?;
                Ok(Initial::Geometric(exact))
            }
            "probs" => {
                let a =
                    arg.ok_or_else(|| bad("'probs' needs values, e.g. probs:0.5,0.5".into()))?;
                let values = a
                    .split(',')
                    .map(|v| {
                        parse_exact(v.trim())
                            .ok_or_else(|| bad(format!("'{v}' is not a probability")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Initial::Probs(values))
            }
            other => Err(bad(format!(
                "'{other}' (expected uniform, zipf:S, geometric:R or probs:P1,P2,...)"
            ))),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Initial::Uniform => "uniform".into(),
            Initial::Zipf(s) => format!("zipf:{s}"),
            Initial::Geometric(r) => format!("geometric:{}", nearest_f64(r)),
            Initial::Probs(p) => format!(
                "probs:{}",
                p.iter()
                    .map(|x| nearest_f64(x).to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// The double nearest to `x` (`Rational::to_f64` truncates).
fn nearest_f64(x: &Rational) -> f64 {
    rug::Float::with_val(53, x).to_f64()
}

/// A decimal (with optional exponent) or a fraction p/q, exactly.
fn parse_exact(text: &str) -> Option<Rational> {
    if let Some((p, q)) = text.split_once('/') {
        let (p, q) = (
            p.trim().parse::<Integer>().ok()?,
            q.trim().parse::<Integer>().ok()?,
        );
        return (q != 0).then(|| Rational::from((p, q)));
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        || exponent.unsigned_abs() > 400
    {
        return None;
    }
    let digits: Integer = format!("{whole}{fraction}").parse().ok()?;
    let scale = exponent - fraction.len() as i32;
    let ten = Integer::from(10).pow(scale.unsigned_abs());
    let value = if scale >= 0 {
        Rational::from(digits * ten)
    } else {
        Rational::from((digits, ten))
    };
    Some(if negative { -value } else { value })
}

/// A validated spec: M genes, K categories, the initial distribution, N generations.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovSpec {
    pub samples: u32,
    pub categories: u32,
    pub initial: Initial,
    pub generations: u32,
}

/// Probabilities exactly (rational) or as enclosures.
#[derive(Debug, Clone)]
pub enum Probabilities {
    Exact(Vec<Rational>),
    Enclosed(Vec<Ball>),
}

impl Probabilities {
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Probabilities::Exact(p) => p.iter().map(nearest_f64).collect(),
            Probabilities::Enclosed(p) => p.iter().map(Ball::to_f64).collect(),
        }
    }
    pub fn balls(&self, prec: u32) -> Vec<Ball> {
        match self {
            Probabilities::Exact(p) => p.iter().map(|q| Ball::exact(prec, q.clone())).collect(),
            Probabilities::Enclosed(p) => p.clone(),
        }
    }
}

impl MarkovSpec {
    pub fn new(
        samples: u64,
        categories: u64,
        initial: Initial,
        generations: u64,
    ) -> Result<MarkovSpec, SpecError> {
        if samples == 0 || samples > u64::from(u32::MAX) {
            return Err(SpecError::invalid(
                "samples",
                format!("M must be in 1..={}, got {samples}", u32::MAX),
            ));
        }
        if categories == 0 || categories > u64::from(MAX_CATEGORIES) {
            return Err(SpecError::invalid(
                "categories",
                format!("K must be in 1..={MAX_CATEGORIES}, got {categories}"),
            ));
        }
        if generations == 0 || generations > u64::from(MAX_GENERATIONS) {
            return Err(SpecError::invalid(
                "generations",
                format!("N must be in 1..={MAX_GENERATIONS}, got {generations}"),
            ));
        }
        if let Initial::Probs(p) = &initial {
            if p.len() as u64 != categories {
                return Err(SpecError::invalid(
                    "init",
                    format!(
                        "--categories {categories} does not match the {} probabilities given",
                        p.len()
                    ),
                ));
            }
            if let Some(neg) = p.iter().find(|x| **x < 0) {
                return Err(SpecError::invalid(
                    "init",
                    format!("probabilities must be >= 0, got {}", neg.to_f64()),
                ));
            }
            let sum: Rational = p.iter().sum();
            if (sum.clone() - 1u32).abs() > Rational::from((1, 1_000_000_000_000u64)) {
                return Err(SpecError::invalid(
                    "init",
                    format!(
                        "probabilities must sum to 1 within 1e-12, got {}",
                        sum.to_f64()
                    ),
                ));
            }
        }
        Ok(MarkovSpec {
            samples: samples as u32,
            categories: categories as u32,
            initial,
            generations: generations as u32,
        })
    }

    /// The initial probabilities: exact where the law is rational (uniform, listed decimals
    /// renormalised exactly, geometric with a decimal ratio, Zipf with an integer exponent),
    /// else enclosures at `prec` bits.
    pub fn probabilities(&self, prec: u32) -> Probabilities {
        let k = self.categories;
        match &self.initial {
            Initial::Uniform => Probabilities::Exact(vec![Rational::from((1, k)); k as usize]),
            Initial::Probs(p) => {
                let sum: Rational = p.iter().sum();
                Probabilities::Exact(p.iter().map(|x| Rational::from(x / &sum)).collect())
            }
            Initial::Geometric(r) if k <= MAX_EXACT_CATEGORIES => {
                normalised_exact((0..k).map(|i| r.clone().pow(i)).collect())
            }
            Initial::Zipf(s) if s.fract() == 0.0 && k <= MAX_EXACT_CATEGORIES => normalised_exact(
                (1..=k)
                    .map(|i| Rational::from((1, Integer::from(i).pow(*s as u32))))
                    .collect(),
            ),
            Initial::Geometric(r) => {
                let ln_r = Ball::exact(prec, r.clone()).ln();
                normalised_enclosed(
                    (0..k)
                        .map(|i| ln_r.mul(&Ball::exact(prec, i)).exp())
                        .collect(),
                    prec,
                )
            }
            Initial::Zipf(s) => normalised_enclosed(
                (1..=k)
                    .map(|i| {
                        Ball::exact(prec, i)
                            .ln()
                            .mul(&Ball::from_f64(prec, -s))
                            .exp()
                    })
                    .collect(),
                prec,
            ),
        }
    }
}

fn normalised_enclosed(weights: Vec<Ball>, prec: u32) -> Probabilities {
    let total = Ball::sum(prec, &weights);
    Probabilities::Enclosed(weights.iter().map(|w| w.div(&total)).collect())
}

fn normalised_exact(weights: Vec<Rational>) -> Probabilities {
    let total: Rational = weights.iter().sum();
    Probabilities::Exact(weights.iter().map(|w| Rational::from(w / &total)).collect())
}

/// Theory at generation n.
#[derive(Debug, Clone)]
pub struct MarkovRow {
    pub n: u32,
    pub expected_heterozygosity: Ball,
    pub expected_surviving: Ball,
    /// P(T <= n), where computed exactly: at most two categories with positive probability
    /// (the two-type chain), or a symmetric full chain within `full::symmetric_size`'s limits.
    pub prob_absorbed: Option<Ball>,
}

#[derive(Debug, Clone)]
pub struct Absorption {
    /// E[T], where computed exactly (two-type chain or a small full chain).
    pub expected_time: Option<Ball>,
    pub expected_time_diffusion: f64,
    /// The same approximation as an enclosure of its formula (not of E[T]: the formula is an
    /// approximation, and its gap to the exact E[T] is reported where that is known).
    pub expected_time_diffusion_enclosure: Ball,
    pub var_time: Option<Ball>,
}

#[derive(Debug, Clone)]
pub struct MarkovTheory {
    pub spec: MarkovSpec,
    /// Per category: the probability that it survives at generation N, 1 - P(lost by N).
    pub final_survival: Vec<Ball>,
    /// Whether every value is an exact rational (printed rounded).
    pub exact: bool,
    pub rows: Vec<MarkovRow>,
    pub absorption: Absorption,
    /// Working precision of the enclosures, in bits.
    pub precision_bits: u32,
}

impl MarkovTheory {
    /// Every reported value: per row E[H_n], E[surviving], P(T <= n) where computed; E[T] and
    /// Var[T] where computed.
    pub fn values(&self) -> impl Iterator<Item = &Ball> {
        self.rows
            .iter()
            .flat_map(|r| {
                [&r.expected_heterozygosity, &r.expected_surviving]
                    .into_iter()
                    .chain(r.prob_absorbed.as_ref())
            })
            .chain(self.absorption.expected_time.as_ref())
            .chain(self.absorption.var_time.as_ref())
            .chain(std::iter::once(
                &self.absorption.expected_time_diffusion_enclosure,
            ))
    }

    /// The fewest certified significant digits among the reported values.
    pub fn min_certified_digits(&self) -> u32 {
        self.values()
            .map(Ball::certified_digits)
            .min()
            .unwrap_or(u32::MAX)
    }
}

/// The theory of `spec` with `digits` certified significant digits: exact rationals when the
/// initial probabilities are rational, M <= MAX_EXACT_SAMPLES and N M <= MAX_EXACT_WORK, else
/// enclosures. The working precision starts at `digits` plus 64 guard bits and doubles while
/// some value has fewer certified digits, up to `MAX_PRECISION_BITS` (then check
/// `min_certified_digits`).
pub fn theory(spec: &MarkovSpec, digits: u32) -> Result<MarkovTheory, SpecError> {
    crate::refine_until_certified(
        digits,
        64,
        |prec| theory_at_precision(spec, prec),
        MarkovTheory::min_certified_digits,
    )
}

/// The theory at a working precision of `prec` bits (exact rationals where feasible).
fn theory_at_precision(spec: &MarkovSpec, prec: u32) -> Result<MarkovTheory, SpecError> {
    let m = spec.samples;
    let probabilities = spec.probabilities(prec);
    // Distinct positive probabilities and how many categories share each.
    let positive = probabilities.to_f64().iter().filter(|&&q| q > 0.0).count();
    let work = distinct_count(&probabilities) as f64
        * f64::from(spec.generations.max(1))
        * f64::from(m + 1).powi(2);
    if work > MAX_LOSS_WORK {
        return Err(SpecError::invalid(
            "request",
            format!(
                "the exact survival curves need about {work:.1e} operations \
                 (distinct probabilities x N x M^2), above the limit {MAX_LOSS_WORK:.0e}"
            ),
        ));
    }
    // Rationals in the count laws grow by about M log2 M bits per generation: beyond
    // MAX_EXACT_WORK (= N M) they cost more than enclosures at any useful precision.
    let exact_feasible =
        m <= MAX_EXACT_SAMPLES && u64::from(m) * u64::from(spec.generations) <= MAX_EXACT_WORK;
    match (&probabilities, exact_feasible) {
        (Probabilities::Exact(p), true) => {
            let chain = TwoTypeChain::exact(m)?;
            Ok(assemble(spec, &chain, p, positive, prec, true, |c| {
                c.absorption_times()
            }))
        }
        _ => {
            if m > MAX_ENCLOSED_SAMPLES {
                return Err(SpecError::invalid(
                    "samples",
                    format!("the exact theory needs M <= {MAX_ENCLOSED_SAMPLES}, got {m}"),
                ));
            }
            let chain = TwoTypeChain::enclosed(m, prec)?;
            let p = probabilities.balls(prec);
            Ok(assemble(spec, &chain, &p, positive, prec, false, |c| {
                c.absorption_times()
            }))
        }
    }
}

fn distinct_count(p: &Probabilities) -> usize {
    let mut v = p.to_f64();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

/// Rows and absorption for probabilities `p` in the chain's arithmetic.
fn assemble<N: ChainNumber + ToBall>(
    spec: &MarkovSpec,
    chain: &TwoTypeChain<N>,
    p: &[N],
    positive: usize,
    prec: u32,
    exact: bool,
    times: impl Fn(&TwoTypeChain<N>) -> AbsorptionTimes<N>,
) -> MarkovTheory {
    let n_max = spec.generations;
    let m = spec.samples;
    // Loss curves, one per distinct probability (equal values share one computation).
    let mut curves: Vec<(f64, Vec<N>, usize)> = Vec::new();
    let mut curve_of = Vec::with_capacity(p.len());
    for q in p {
        let key = q.approx();
        match curves.iter().position(|(k, _, _)| *k == key) {
            Some(i) => {
                curves[i].2 += 1;
                curve_of.push(i);
            }
            None => {
                curve_of.push(curves.len());
                curves.push((key, loss_probabilities(chain, q, n_max), 1));
            }
        }
    }
    let final_survival = curve_of
        .iter()
        .map(|&i| {
            let lost = &curves[i].1[n_max as usize];
            lost.int(1).minus(lost).to_ball(prec)
        })
        .collect();
    let zero = p[0].int(0);
    let heterozygosity = heterozygosity_curve(m, p, n_max);
    let rows = (0..=n_max)
        .map(|n| {
            let surviving = curves.iter().fold(zero.clone(), |acc, (_, lost, count)| {
                let kept = lost[n as usize].int(1).minus(&lost[n as usize]);
                acc.plus(&kept.times(&zero.int(*count as u64)))
            });
            MarkovRow {
                n,
                expected_heterozygosity: heterozygosity[n as usize].to_ball(prec),
                expected_surviving: surviving.to_ball(prec),
                prob_absorbed: None,
            }
        })
        .collect::<Vec<_>>();
    let diffusion = diffusion_absorption_time(m, &p.iter().map(N::approx).collect::<Vec<_>>());
    let diffusion_enclosure = diffusion_absorption_time_enclosure(
        prec,
        m,
        &p.iter().map(|q| q.to_ball(prec)).collect::<Vec<_>>(),
    );
    let mut theory = MarkovTheory {
        spec: spec.clone(),
        final_survival,
        exact,
        rows,
        absorption: Absorption {
            expected_time: None,
            expected_time_diffusion: diffusion,
            expected_time_diffusion_enclosure: diffusion_enclosure,
            var_time: None,
        },
        precision_bits: prec,
    };
    if positive <= 2 {
        // One category against the rest is the whole chain: P(T <= n) is the mass of the
        // category's count at 0 or M.
        let q = p
            .iter()
            .find(|q| !q.is_exact_zero())
            .cloned()
            .unwrap_or_else(|| zero.clone());
        let one = zero.int(1);
        let starts_absorbed = positive <= 1;
        let laws = super::count_laws(chain, &q, n_max);
        for row in &mut theory.rows {
            let value = if starts_absorbed {
                one.clone()
            } else if row.n == 0 {
                zero.clone()
            } else {
                let law = &laws[row.n as usize - 1];
                law[0].plus(&law[m as usize])
            };
            row.prob_absorbed = Some(value.to_ball(prec));
        }
        let (mean, second) = if starts_absorbed {
            (zero.clone(), zero.clone())
        } else {
            absorption_moments_from(m, &times(chain), &q)
        };
        let var = second.minus(&mean.times(&mean));
        theory.absorption.expected_time = Some(mean.to_ball(prec));
        theory.absorption.var_time = Some(var.to_ball(prec));
    } else if let Some(size) = symmetric_size(m, positive as u32) {
        // More than two categories, a small state space: the full chain lumped by symmetry
        // onto partitions of M, in balls.
        let p_positive: Vec<Ball> = p
            .iter()
            .filter(|q| !q.is_exact_zero())
            .map(|q| q.to_ball(prec))
            .collect();
        let full =
            FullChain::symmetric(m, positive as u32, &Ball::exact(prec, 0)).expect("size checked");
        if (size * size) as f64 * f64::from(n_max) <= MAX_FULL_STEP_WORK {
            let mut law = full.first_law(&p_positive);
            for row in &mut theory.rows {
                if row.n == 0 {
                    row.prob_absorbed = Some(Ball::exact(prec, 0));
                    continue;
                }
                if row.n > 1 {
                    law = full.step(&law);
                }
                row.prob_absorbed = Some(full.absorbed_mass(&law));
            }
        }
        let (mean, second) = full.absorption_moments_from(&p_positive);
        let var = second.sub(&mean.mul(&mean));
        theory.absorption.expected_time = Some(mean);
        theory.absorption.var_time = Some(var);
    }
    theory
}

/// Conversion to a ball for printing (a rational rounded to nearest, with that rounding as
/// its radius).
pub trait ToBall {
    fn to_ball(&self, prec: u32) -> Ball;
}

impl ToBall for Rational {
    fn to_ball(&self, prec: u32) -> Ball {
        Ball::exact(prec, self.clone())
    }
}

impl ToBall for Ball {
    fn to_ball(&self, _: u32) -> Ball {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits_for_digits;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_exact("0.1"), Some(Rational::from((1, 10))));
        assert_eq!(parse_exact("1/3"), Some(Rational::from((1, 3))));
        assert_eq!(parse_exact("2.5e-1"), Some(Rational::from((1, 4))));
        assert_eq!(parse_exact("-0.5"), Some(Rational::from((-1, 2))));
        for bad in ["", ".", "abc", "1/0", "nan", "inf", "0x1", "1e99999"] {
            assert_eq!(parse_exact(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let probs = |t: &str| Initial::parse(t);
        assert!(probs("probs:0.5,0.6").is_ok());
        assert!(MarkovSpec::new(10, 2, probs("probs:0.5,0.6").unwrap(), 5).is_err());
        assert!(MarkovSpec::new(10, 3, probs("probs:0.5,0.5").unwrap(), 5).is_err());
        assert!(MarkovSpec::new(10, 2, probs("probs:-0.5,1.5").unwrap(), 5).is_err());
        assert!(probs("probs:nan,0.5").is_err());
        assert!(probs("zipf").is_err());
        assert!(probs("zipf:-1").is_err());
        assert!(probs("geometric:0").is_err());
        assert!(probs("uniform:2").is_err());
        assert!(probs("normal").is_err());
        assert!(MarkovSpec::new(0, 2, Initial::Uniform, 5).is_err());
        assert!(MarkovSpec::new(10, 0, Initial::Uniform, 5).is_err());
        assert!(MarkovSpec::new(10, 2, Initial::Uniform, 0).is_err());
    }

    #[test]
    fn exact_and_enclosed_theories_agree() {
        // The exact route and the ball route on one spec (uniform, K = 3, M = 12).
        let spec = MarkovSpec::new(12, 3, Initial::Uniform, 12).unwrap();
        let exact = theory(&spec, 30).unwrap();
        assert!(exact.exact);
        let prec = bits_for_digits(30, 64);
        let chain = TwoTypeChain::enclosed(12, prec).unwrap();
        let p = spec.probabilities(prec).balls(prec);
        let enclosed = assemble(&spec, &chain, &p, 3, prec, false, |c| c.absorption_times());
        for (a, b) in exact.rows.iter().zip(&enclosed.rows) {
            assert!(b.expected_surviving.contains(a.expected_surviving.mid()));
            assert!(
                b.expected_heterozygosity
                    .contains(a.expected_heterozygosity.mid())
            );
        }
        // Three categories, M = 12: the full chain has C(14, 2) = 91 states, so E[T] and
        // P(T <= n) come from it.
        assert!(exact.absorption.expected_time.is_some());
        assert!(exact.rows[12].prob_absorbed.is_some());
    }

    #[test]
    fn two_categories_give_absorption() {
        let spec = MarkovSpec::new(10, 2, Initial::Uniform, 40).unwrap();
        let t = theory(&spec, 20).unwrap();
        // From p = 1/2 with M = 10: E[T] = 1 + E[t_J], J ~ Bin(10, 1/2) = the count-5 value
        // averaged; it lies between 1 and 1 + max t, and P(T <= n) increases to 1.
        let mean = t.absorption.expected_time.as_ref().unwrap().to_f64();
        assert!(mean > 10.0 && mean < 14.0, "{mean}");
        let absorbed: Vec<f64> = t
            .rows
            .iter()
            .map(|r| r.prob_absorbed.as_ref().unwrap().to_f64())
            .collect();
        assert_eq!(absorbed[0], 0.0);
        assert!(absorbed.windows(2).all(|w| w[1] >= w[0]));
        assert!(absorbed[40] > 0.9);
        assert!(t.absorption.var_time.as_ref().unwrap().to_f64() > 0.0);
        // The diffusion overestimates.
        assert!(t.absorption.expected_time_diffusion > mean);
    }

    #[test]
    fn diffusion_approximation_is_enclosed() {
        // Uniform over K: -2M K (1 - 1/K) ln(1 - 1/K) = 2M (K - 1) ln(K / (K - 1)), by MPFR at
        // 512 bits; and at K = 2 Kimura's 2M ln 2.
        for (m, k) in [(30u64, 2u32), (200, 3), (1000, 7)] {
            let t = theory(
                &MarkovSpec::new(m, k.into(), Initial::Uniform, 3).unwrap(),
                30,
            )
            .unwrap();
            let b = &t.absorption.expected_time_diffusion_enclosure;
            assert!(b.certified_digits() >= 30);
            let k_f = rug::Float::with_val(512, k);
            let ratio = rug::Float::with_val(512, &k_f / (k_f.clone() - 1u32));
            let exact = rug::Float::with_val(512, ratio.ln()) * (2 * m * u64::from(k - 1));
            assert!(b.contains(&exact), "M={m} K={k}");
            assert!((b.to_f64() / t.absorption.expected_time_diffusion - 1.0).abs() < 1e-12);
        }
        // A category with q = 1 contributes nothing.
        let one = diffusion_absorption_time_enclosure(
            128,
            10,
            &[Ball::exact(128, 1), Ball::exact(128, 0)],
        );
        assert!(one.contains(&rug::Float::new(128)));
    }

    #[test]
    fn theory_matches_the_reference_table() {
        // Reference values (computed independently): K = 5, q = (.5, .25, .15, .07, .03), M = 30.
        let init = Initial::parse("probs:0.5,0.25,0.15,0.07,0.03").unwrap();
        let t = theory(&MarkovSpec::new(30, 5, init, 20).unwrap(), 25).unwrap();
        assert!(t.exact);
        let close = |b: &Ball, x: f64| (b.to_f64() - x).abs() < 1e-4;
        assert!(close(&t.rows[10].expected_heterozygosity, 0.46966));
        assert!(close(&t.rows[20].expected_heterozygosity, 0.33462));
        assert!(close(&t.rows[10].expected_surviving, 2.8099));
        assert!(close(&t.rows[20].expected_surviving, 2.1094));
        assert_eq!(t.rows[0].expected_surviving.to_f64(), 5.0);
        assert!((t.absorption.expected_time_diffusion - 47.85).abs() < 0.01);
    }

    #[test]
    fn integer_zipf_is_exact_and_real_zipf_is_enclosed() {
        let spec = |s: f64| MarkovSpec::new(10, 4, Initial::Zipf(s), 3).unwrap();
        assert!(matches!(
            spec(1.0).probabilities(128),
            Probabilities::Exact(_)
        ));
        match spec(1.1).probabilities(128) {
            Probabilities::Enclosed(p) => {
                let total: f64 = p.iter().map(Ball::to_f64).sum();
                assert!((total - 1.0).abs() < 1e-15);
                assert!(p[0].to_f64() > p[1].to_f64());
            }
            Probabilities::Exact(_) => panic!("zipf:1.1 is irrational"),
        }
    }
}
