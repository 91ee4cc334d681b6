//! Data strategies for the 1-D Gaussian recursion: what model i+1 is fitted to (derivations:
//! `proofs/strategies.md`).
//!
//! Model 0 is the truth N(mu, sigma^2); model 1 is always fitted to D_0 = M_0 real draws. For
//! i >= 1, model i+1 is the sample mean and the spec's variance estimator (unbiased: SS/(n-1);
//! MLE: SS/n) of its training set T_i:
//!
//! - `replace`: M_i draws of model i (the paper);
//! - `accumulate`: D_0 ∪ S_1 ∪ … ∪ S_i, with S_j the M_j draws of model j (N_i = M_0 + … + M_i
//!   points);
//! - `accumulate-subsample`: M_i points drawn uniformly without replacement from that pool;
//! - `mix:F`: R_i = round(F M_i) fresh real draws and M_i - R_i draws of model i;
//! - `keep:F`: the first K = round(F M_0) points of D_0 (the same points every generation) and
//!   M_i - K draws of model i.
//!
//! With e_n = E[(mu_n - mu)^2] and v_n = E[sigma_n^2], every strategy but replace has a linear
//! recursion with exact rational coefficients (§2–§6 of the proof), computed here in exact
//! rationals (`rug::Rational`) for up to [`EXACT_GENERATIONS`] generations and in balls beyond.
//!
//! The truth may be any D0 of `crate::truth` (mean mu, variance sigma^2): the real points are
//! draws of D0, e_n and v_n are those of the normal truth (they involve only second moments of
//! the points), and the W2^2 lower bound to D0 gains sigma^2 (1 - rho^2) (§11 of the proof).

use crate::ball::Ball;
use crate::gaussian::{Estimator, GaussianSpec};
use crate::truth::Truth;
use crate::{SpecError, bits_for_digits};
use rug::{Integer, Rational};

/// What each generation's model is fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Strategy {
    /// M_i draws of model i (the paper).
    #[default]
    Replace,
    /// Every point drawn so far, the real ones included.
    Accumulate,
    /// M_i points drawn uniformly without replacement from everything drawn so far.
    AccumulateSubsample,
    /// round(F M_i) fresh real draws and the rest from model i.
    Mix(f64),
    /// The first round(F M_0) points of the real sample D_0 and the rest from model i.
    Keep(f64),
}

/// round(f m) for f in [0, 1]: the product in double precision, rounded half away from zero
/// (`f64::round`), never above m.
pub fn round_fraction(f: f64, m: u64) -> u64 {
    ((f * m as f64).round() as u64).min(m)
}

impl Strategy {
    /// Parses `replace`, `accumulate`, `accumulate-subsample`, `mix:F` or `keep:F` (F a finite
    /// number in [0, 1]).
    pub fn parse(text: &str) -> Result<Strategy, SpecError> {
        let bad = |why: String| SpecError::invalid("strategy", why);
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (text.trim(), None),
        };
        let fraction = |a: Option<&str>| -> Result<f64, SpecError> {
            let a = a.filter(|a| !a.is_empty()).ok_or_else(|| {
                bad(format!(
                    "'{text}' needs a fraction F in [0, 1], e.g. {name}:0.1"
                ))
            })?;
            let f: f64 = a.parse().map_err(|_| {
                bad(format!(
                    "'{a}' in '{text}' is not a number (expected a fraction F in [0, 1])"
                ))
            })?;
            if !f.is_finite() || !(0.0..=1.0).contains(&f) {
                return Err(bad(format!(
                    "F must be finite and in [0, 1], got {a} in '{text}'"
                )));
            }
            // -0 becomes 0.
            Ok(f + 0.0)
        };
        match name {
            "replace" | "accumulate" | "accumulate-subsample" if arg.is_some() => {
                Err(bad(format!("'{name}' takes no parameter")))
            }
            "replace" => Ok(Strategy::Replace),
            "accumulate" => Ok(Strategy::Accumulate),
            "accumulate-subsample" => Ok(Strategy::AccumulateSubsample),
            "mix" => Ok(Strategy::Mix(fraction(arg)?)),
            "keep" => Ok(Strategy::Keep(fraction(arg)?)),
            other => Err(bad(format!(
                "unknown strategy '{other}' (expected replace, accumulate, accumulate-subsample, mix:F or keep:F)"
            ))),
        }
    }

    /// The name without its parameter.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Replace => "replace",
            Strategy::Accumulate => "accumulate",
            Strategy::AccumulateSubsample => "accumulate-subsample",
            Strategy::Mix(_) => "mix",
            Strategy::Keep(_) => "keep",
        }
    }

    /// The label `parse` reads back, e.g. `mix:0.1`.
    pub fn label(&self) -> String {
        match self {
            Strategy::Mix(f) => format!("mix:{f}"),
            Strategy::Keep(f) => format!("keep:{f}"),
            other => other.name().to_string(),
        }
    }

    /// R_i = round(F M_i), the fresh real draws of a generation of size `m` (0 unless `mix`).
    pub fn fresh_real(&self, m: u64) -> u64 {
        match self {
            Strategy::Mix(f) => round_fraction(*f, m),
            _ => 0,
        }
    }

    /// K = round(F M_0), the points of D_0 kept in every training set (0 unless `keep`).
    pub fn kept(&self, m0: u64) -> u64 {
        match self {
            Strategy::Keep(f) => round_fraction(*f, m0),
            _ => 0,
        }
    }

    /// Checks the strategy against the sizes M_0 .. M_{N-1}: `keep` needs M_i >= K for every
    /// i, and every training set needs at least 2 points.
    pub fn validate(&self, sizes: &[u64]) -> Result<(), SpecError> {
        // The fraction again: the variants are public, so a strategy need not come from `parse`.
        if let Strategy::Mix(f) | Strategy::Keep(f) = *self
            && !(f.is_finite() && (0.0..=1.0).contains(&f))
        {
            return Err(SpecError::invalid(
                "strategy",
                format!(
                    "F must be finite and in [0, 1], got {f} in '{}'",
                    self.label()
                ),
            ));
        }
        let Some(&m0) = sizes.first() else {
            return Ok(());
        };
        let k = self.kept(m0);
        if let Some((i, &m)) = sizes.iter().enumerate().find(|&(_, &m)| m < k) {
            return Err(SpecError::invalid(
                "strategy",
                format!(
                    "{} keeps K = round(F M_0) = {k} points of D_0 in every training set, but M_{i} = {m} < {k}",
                    self.label()
                ),
            ));
        }
        // Training sets: M_i points (N_i >= M_i for accumulate).
        if let Some((i, &m)) = sizes.iter().enumerate().find(|&(_, &m)| m < 2) {
            return Err(SpecError::invalid(
                "strategy",
                format!(
                    "{}: the training set of generation {i} would have {m} < 2 points",
                    self.label()
                ),
            ));
        }
        Ok(())
    }
}

/// Largest number of generations computed in exact rationals (balls beyond: the rationals'
/// size grows with every generation).
pub const EXACT_GENERATIONS: u64 = 500;

/// E[(mu_n - mu)^2], E[sigma_n^2] and the lower bound E[(mu_n - mu)^2] + sigma^2 (1 - rho^2)
/// <= E[W2^2] to D0 at generation n (rho = 1 for the normal truth; the bound is 0 at n = 0, where
/// the model is D0 itself; [`w2_shape_floor`]).
#[derive(Debug, Clone)]
pub struct StrategyRow {
    pub n: u64,
    pub mean_sq_error: Ball,
    pub expected_variance: Ball,
    pub w2_sq_lower_bound: Ball,
}

impl StrategyRow {
    /// The reported quantities with their names (the CLI's JSON keys).
    pub fn named(&self) -> [(&'static str, &Ball); 3] {
        [
            ("mean_sq_error", &self.mean_sq_error),
            ("expected_variance", &self.expected_variance),
            ("w2_sq_lower_bound", &self.w2_sq_lower_bound),
        ]
    }
    pub fn min_certified_digits(&self) -> u32 {
        self.named()
            .iter()
            .map(|(_, b)| b.certified_digits())
            .min()
            .unwrap_or(0)
    }
}

/// The fixed point (e*, v*) of the recursion for a constant schedule (`mix` with R >= 1, `keep`
/// with K >= 1): the limits of E[(mu_n - mu)^2] and E[sigma_n^2] as n -> infinity.
#[derive(Debug, Clone)]
pub struct Stationary {
    pub mean_sq_error: Ball,
    pub expected_variance: Ball,
}

#[derive(Debug, Clone)]
pub struct StrategyTheory {
    pub spec: GaussianSpec,
    /// Working precision in bits of the final pass.
    pub precision_bits: u32,
    /// Whether the rows were computed in exact rationals (then each ball only rounds the
    /// exact value once).
    pub exact: bool,
    pub rows: Vec<StrategyRow>,
    pub stationary: Option<Stationary>,
    /// Whether E[W2^2] stays bounded as n -> infinity (None: not determined for this schedule;
    /// proofs/strategies.md §7).
    pub bounded: Option<bool>,
}

impl StrategyTheory {
    pub fn min_certified_digits(&self) -> u32 {
        let rows = self.rows.iter().map(StrategyRow::min_certified_digits);
        let stationary = self.stationary.iter().flat_map(|s| {
            [
                s.mean_sq_error.certified_digits(),
                s.expected_variance.certified_digits(),
            ]
        });
        rows.chain(stationary).min().unwrap_or(0)
    }
}

/// The arithmetic the recursions run in: exact rationals or balls. Every coefficient is an exact
/// rational, so the recursions need only sums and products.
pub(crate) trait Arith {
    type T: Clone;
    fn q(&self, q: Rational) -> Self::T;
    fn sigma2(&self, sigma: f64) -> Self::T;
    fn add(&self, a: &Self::T, b: &Self::T) -> Self::T;
    fn mul(&self, a: &Self::T, b: &Self::T) -> Self::T;
    /// sum_j x_j c_j, multiplied and added in the given order.
    fn lin(&self, terms: &[(&Self::T, Rational)]) -> Self::T {
        let mut iter = terms.iter();
        let (x, c) = iter.next().expect("at least one term");
        let mut acc = self.mul(x, &self.q(c.clone()));
        for (x, c) in iter {
            acc = self.add(&acc, &self.mul(x, &self.q(c.clone())));
        }
        acc
    }
}

/// Exact rationals.
pub(crate) struct Exact;

impl Arith for Exact {
    type T = Rational;
    fn q(&self, q: Rational) -> Rational {
        q
    }
    fn sigma2(&self, sigma: f64) -> Rational {
        Rational::from_f64(sigma).expect("finite sigma").square()
    }
    fn add(&self, a: &Rational, b: &Rational) -> Rational {
        Rational::from(a + b)
    }
    fn mul(&self, a: &Rational, b: &Rational) -> Rational {
        Rational::from(a * b)
    }
}

/// Balls at a working precision.
pub(crate) struct Balls(pub u32);

impl Arith for Balls {
    type T = Ball;
    fn q(&self, q: Rational) -> Ball {
        Ball::exact(self.0, q)
    }
    fn sigma2(&self, sigma: f64) -> Ball {
        Ball::from_f64(self.0, sigma).square()
    }
    fn add(&self, a: &Ball, b: &Ball) -> Ball {
        a.add(b)
    }
    fn mul(&self, a: &Ball, b: &Ball) -> Ball {
        a.mul(b)
    }
}

fn ratio(num: impl Into<Integer>, den: impl Into<Integer>) -> Rational {
    Rational::from((num.into(), den.into()))
}

/// The divisor D(n) of the variance estimator for a training set of n points.
fn divisor(estimator: Estimator, n: &Integer) -> Integer {
    match estimator {
        Estimator::Unbiased => Integer::from(n - 1u32),
        Estimator::Mle => n.clone(),
    }
}

/// (e_n, v_n) for n = 0..=N.
type Moments<T> = Vec<(T, T)>;

/// replace: e_{i+1} = e_i + v_i / M_i, v_{i+1} = v_i (M_i - 1) / D(M_i) (proofs/gaussian.md;
/// the same ball operations in the same order as `gaussian::theory_at_precision`).
pub(crate) fn replace_moments<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
) -> Moments<A::T> {
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    let (mut e, mut v) = (a.q(Rational::new()), s2);
    rows.push((e.clone(), v.clone()));
    for &m in sizes {
        let d = est.divisor(m);
        e = a.add(&e, &a.mul(&v, &a.q(ratio(1u32, m))));
        v = a.mul(&v, &a.q(ratio(m - 1, d)));
        rows.push((e.clone(), v.clone()));
    }
    rows
}

/// accumulate (proofs/strategies.md §3): with N_i = M_0 + … + M_i (N_{-1} = 0, D(N_{-1}) := 0),
/// e_{i+1} = e_i + M_i v_i / N_i^2 and
/// v_{i+1} = v_i (D(N_{i-1}) + M_i - 1 + N_{i-1}/N_i) / D(N_i).
pub(crate) fn accumulate_moments<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
) -> Moments<A::T> {
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    let (mut e, mut v) = (a.q(Rational::new()), s2);
    rows.push((e.clone(), v.clone()));
    let (mut n_prev, mut d_prev) = (Integer::new(), Integer::new());
    for &m in sizes {
        let n = Integer::from(&n_prev + m);
        let d = divisor(est, &n);
        let n_sq = Integer::from(n.square_ref());
        let e_next = a.lin(&[(&e, ratio(1u32, 1u32)), (&v, ratio(m, n_sq))]);
        let factor = (ratio(&d_prev + Integer::from(m - 1), 1u32)
            + ratio(n_prev.clone(), n.clone()))
            / ratio(d.clone(), 1u32);
        v = a.mul(&v, &a.q(factor));
        e = e_next;
        rows.push((e.clone(), v.clone()));
        n_prev = n;
        d_prev = d;
    }
    rows
}

/// The pool route (proofs/strategies.md §4): beta_i = E[(pool mean - mu)^2] and V_i = E[SS of
/// the pool] / (N_i - 1) for the pool D_0 ∪ S_1 ∪ … ∪ S_i of N_i points; model i+1 is fitted
/// to a uniform t_i-subset of the pool (t_i = M_i: accumulate-subsample; t_i = N_i:
/// accumulate):
///
/// e_{i+1} = beta_i + (1/t_i - 1/N_i) V_i,   v_{i+1} = V_i (t_i - 1) / D(t_i),
///
/// then S_{i+1} (m = M_{i+1} draws of model i+1) joins the pool (N' = N_i + m):
///
/// V_{i+1} = [(N_i - 1) V_i + (m - 1) v_{i+1} + (N_i m / N') ((1/t_i - 1/N_i) V_i + v_{i+1}/m)] / (N' - 1),
/// beta_{i+1} = [(N_i^2 + 2 N_i m) beta_i + m^2 e_{i+1} + m v_{i+1}] / N'^2.
pub(crate) fn pool_moments<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
    subsample: bool,
) -> Moments<A::T> {
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    rows.push((a.q(Rational::new()), s2.clone()));
    let Some(&m0) = sizes.first() else {
        return rows;
    };
    let mut n = Integer::from(m0);
    let mut beta = a.mul(&s2, &a.q(ratio(1u32, m0)));
    let mut pool_var = s2;
    for (i, &m) in sizes.iter().enumerate() {
        let t = if subsample {
            Integer::from(m)
        } else {
            n.clone()
        };
        let jitter = ratio(1u32, t.clone()) - ratio(1u32, n.clone());
        let e = a.lin(&[(&beta, ratio(1u32, 1u32)), (&pool_var, jitter.clone())]);
        let v = a.mul(
            &pool_var,
            &a.q(ratio(Integer::from(&t - 1u32), divisor(est, &t))),
        );
        rows.push((e.clone(), v.clone()));
        let Some(&next) = sizes.get(i + 1) else {
            break;
        };
        let n_new = Integer::from(&n + next);
        let n_new_m1 = Integer::from(&n_new - 1u32);
        let n_new_sq = Integer::from(n_new.square_ref());
        let cross = ratio(Integer::from(&n * next), n_new.clone()) / ratio(n_new_m1.clone(), 1u32);
        let var_coef = ratio(Integer::from(&n - 1u32), n_new_m1.clone()) + jitter * cross;
        let v_coef =
            (ratio(next - 1, 1u32) + ratio(n.clone(), n_new.clone())) / ratio(n_new_m1, 1u32);
        let new_var = a.lin(&[(&pool_var, var_coef), (&v, v_coef)]);
        let beta_coef = ratio(
            Integer::from(n.square_ref()) + Integer::from(&n * (2 * next)),
            n_new_sq.clone(),
        );
        beta = a.lin(&[
            (&beta, beta_coef),
            (&e, ratio(Integer::from(next) * next, n_new_sq.clone())),
            (&v, ratio(next, n_new_sq)),
        ]);
        pool_var = new_var;
        n = n_new;
    }
    rows
}

/// mix:F (proofs/strategies.md §5): with R = round(F M_i), S = M_i - R, M = M_i, D = D(M),
/// e_{i+1} = (S^2 e_i + R sigma^2 + S v_i) / M^2 and
/// v_{i+1} = [((R-1)M + S) sigma^2 + ((S-1)M + R) v_i + R S e_i] / (M D).
pub(crate) fn mix_moments<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
    f: f64,
) -> Moments<A::T> {
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    let (mut e, mut v) = (a.q(Rational::new()), s2.clone());
    rows.push((e.clone(), v.clone()));
    for &m in sizes {
        let r = round_fraction(f, m);
        let s = m - r;
        let (m_i, r_i, s_i) = (Integer::from(m), Integer::from(r), Integer::from(s));
        let m2 = Integer::from(m_i.square_ref());
        let md = &m_i * divisor(est, &m_i);
        let e_next = a.lin(&[
            (&e, ratio(Integer::from(s_i.square_ref()), m2.clone())),
            (&s2, ratio(r_i.clone(), m2.clone())),
            (&v, ratio(s_i.clone(), m2)),
        ]);
        // (R-1)M + S and (S-1)M + R are >= 0 (R = 0 gives S = M; S = 0 gives R = M).
        let real_coef = Integer::from(&r_i * &m_i) - &m_i + &s_i;
        let syn_coef = Integer::from(&s_i * &m_i) - &m_i + &r_i;
        v = a.lin(&[
            (&s2, ratio(real_coef, md.clone())),
            (&v, ratio(syn_coef, md.clone())),
            (&e, ratio(Integer::from(&r_i * &s_i), md)),
        ]);
        e = e_next;
        rows.push((e.clone(), v.clone()));
    }
    rows
}

/// keep:F (proofs/strategies.md §6) through w_i = E[(mu_i - xbar_K)^2] and
/// g_i = E[(xbar_K - mu)(mu_i - xbar_K)] (every coefficient >= 0 but g's: no cancellation):
/// with S = M_i - K, M = M_i, D = D(M),
/// w_{i+1} = (S^2 w_i + S v_i) / M^2,
/// v_{i+1} = [(K-1) M sigma^2 + ((S-1)M + K) v_i + K S w_i] / (M D),
/// g_{i+1} = (S/M) g_i, and e_i = sigma^2/K + 2 g_i + w_i; w_0 = sigma^2/K, g_0 = -sigma^2/K.
/// K = 0 is replace.
pub(crate) fn keep_moments<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
    f: f64,
) -> Moments<A::T> {
    let Some(&m0) = sizes.first() else {
        return vec![(a.q(Rational::new()), s2)];
    };
    let k = round_fraction(f, m0);
    if k == 0 {
        return replace_moments(a, sizes, est, s2);
    }
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    rows.push((a.q(Rational::new()), s2.clone()));
    let k_i = Integer::from(k);
    let kept_var = a.mul(&s2, &a.q(ratio(1u32, k)));
    let (mut w, mut v) = (kept_var.clone(), s2.clone());
    let mut g = a.mul(&s2, &a.q(ratio(-1i32, k)));
    for &m in sizes {
        let s = m - k;
        let (m_i, s_i) = (Integer::from(m), Integer::from(s));
        let m2 = Integer::from(m_i.square_ref());
        let md = &m_i * divisor(est, &m_i);
        let w_next = a.lin(&[
            (&w, ratio(Integer::from(s_i.square_ref()), m2.clone())),
            (&v, ratio(s_i.clone(), m2)),
        ]);
        let syn_coef = Integer::from(&s_i * &m_i) - &m_i + &k_i;
        v = a.lin(&[
            (&s2, ratio(Integer::from(&k_i - 1u32) * &m_i, md.clone())),
            (&v, ratio(syn_coef, md.clone())),
            (&w, ratio(Integer::from(&k_i * &s_i), md)),
        ]);
        w = w_next;
        g = a.mul(&g, &a.q(ratio(s, m)));
        let e = a.lin(&[
            (&kept_var, ratio(1u32, 1u32)),
            (&g, ratio(2u32, 1u32)),
            (&w, ratio(1u32, 1u32)),
        ]);
        rows.push((e, v.clone()));
    }
    rows
}

/// keep:F by the correlation c_i = E[(xbar_K - mu)(mu_i - mu)] (the second derivation of
/// proofs/strategies.md §6): e_{i+1} = (K sigma^2 + 2 K S c_i + S^2 e_i + S v_i) / M^2,
/// c_{i+1} = (sigma^2 + S c_i) / M,
/// v_{i+1} = [((K-1)M + S) sigma^2 + ((S-1)M + K) v_i + K S (e_i - 2 c_i)] / (M D).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn keep_moments_by_correlation<A: Arith>(
    a: &A,
    sizes: &[u64],
    est: Estimator,
    s2: A::T,
    f: f64,
) -> Moments<A::T> {
    let k = sizes.first().map_or(0, |&m0| round_fraction(f, m0));
    let mut rows = Vec::with_capacity(sizes.len() + 1);
    let zero = a.q(Rational::new());
    let (mut e, mut v, mut c) = (zero.clone(), s2.clone(), zero);
    rows.push((e.clone(), v.clone()));
    for &m in sizes {
        let s = m - k;
        let (m_i, s_i, k_i) = (Integer::from(m), Integer::from(s), Integer::from(k));
        let m2 = Integer::from(m_i.square_ref());
        let md = &m_i * divisor(est, &m_i);
        let ks = Integer::from(&k_i * &s_i);
        let e_next = a.lin(&[
            (&s2, ratio(k_i.clone(), m2.clone())),
            (&c, ratio(Integer::from(&ks * 2u32), m2.clone())),
            (&e, ratio(Integer::from(s_i.square_ref()), m2.clone())),
            (&v, ratio(s_i.clone(), m2)),
        ]);
        let c_next = if k == 0 {
            c.clone()
        } else {
            a.lin(&[(&s2, ratio(1u32, m)), (&c, ratio(s, m))])
        };
        let real_coef = Integer::from(&k_i * &m_i) - &m_i + &s_i;
        let syn_coef = Integer::from(&s_i * &m_i) - &m_i + &k_i;
        v = a.lin(&[
            (&s2, ratio(real_coef, md.clone())),
            (&v, ratio(syn_coef, md.clone())),
            (&e, ratio(ks.clone(), md.clone())),
            (&c, ratio(-(&ks * Integer::from(2u32)), md)),
        ]);
        e = e_next;
        c = c_next;
        rows.push((e.clone(), v.clone()));
    }
    rows
}

/// (e_n, v_n) for n = 0..=N of the spec's strategy, in the arithmetic `a`.
pub(crate) fn moments<A: Arith>(a: &A, spec: &GaussianSpec) -> Moments<A::T> {
    let sizes = spec.sample_sizes();
    let est = spec.estimator;
    let s2 = a.sigma2(spec.sigma);
    match spec.strategy {
        Strategy::Replace => replace_moments(a, &sizes, est, s2),
        Strategy::Accumulate => accumulate_moments(a, &sizes, est, s2),
        Strategy::AccumulateSubsample => pool_moments(a, &sizes, est, s2, true),
        Strategy::Mix(f) => mix_moments(a, &sizes, est, s2, f),
        Strategy::Keep(f) => keep_moments(a, &sizes, est, s2, f),
    }
}

/// The exact rational (e_n, v_n), n = 0..=N (every recursion but replace's is rational; so is
/// replace's second moment).
pub fn exact_moments(spec: &GaussianSpec) -> Vec<(Rational, Rational)> {
    moments(&Exact, spec)
}

/// The stationary values (e*, v*) in exact rationals for a constant schedule M (proofs §5, §6),
/// with D = D(M):
///
/// - mix, R = round(F M) >= 1, S = M - R:
///   v* = sigma^2 [((R-1)M + S)(M+S) + R S] / [((D-S+1)M - R)(M+S) - S^2],
///   e* = (R sigma^2 + S v*) / (R (M+S));
/// - keep, K = round(F M) >= 1, S = M - K:
///   v* = sigma^2 (K-1) M (M+S) / [((D-S+1)M - K)(M+S) - S^2],
///   e* = sigma^2/K + S v* / (K (M+S)).
///
/// None for other strategies, other schedules, R = 0 or K = 0.
pub fn stationary_exact(spec: &GaussianSpec) -> Option<(Rational, Rational)> {
    if !spec.schedule.is_constant() {
        return None;
    }
    let m = spec.schedule.base;
    let (anchor, keep) = match spec.strategy {
        Strategy::Mix(f) => (round_fraction(f, m), false),
        Strategy::Keep(f) => (round_fraction(f, m), true),
        _ => return None,
    };
    if anchor == 0 {
        return None;
    }
    let s2 = Exact.sigma2(spec.sigma);
    let (m_i, a_i) = (Integer::from(m), Integer::from(anchor));
    let s_i = Integer::from(&m_i - &a_i);
    let d = divisor(spec.estimator, &m_i);
    let m_plus_s = Integer::from(&m_i + &s_i);
    let s_sq = Integer::from(s_i.square_ref());
    // ((D - S + 1) M - A)(M + S) - S^2 > 0 (proofs/strategies.md §5).
    let den = (Integer::from(&d - &s_i) + 1u32) * &m_i - &a_i;
    let den = den * &m_plus_s - &s_sq;
    let num = if keep {
        Integer::from(&a_i - 1u32) * &m_i * &m_plus_s
    } else {
        (Integer::from(&a_i - 1u32) * &m_i + &s_i) * &m_plus_s + Integer::from(&a_i * &s_i)
    };
    let v = Rational::from((num, den)) * &s2;
    let e = if keep {
        Rational::from(&s2 / &a_i) + Rational::from(&v * &s_i) / (Integer::from(&a_i * &m_plus_s))
    } else {
        (Rational::from(&s2 * &a_i) + Rational::from(&v * &s_i)) / Integer::from(&a_i * &m_plus_s)
    };
    Some((e, v))
}

/// Whether E[W2^2] stays bounded as n -> infinity (proofs/strategies.md §7). With the MLE
/// always: E[(mu_n - mu)^2] + E[sigma_n^2] = sigma^2 for every strategy, so E[W2^2] <= 2 sigma^2.
/// With the unbiased estimator: replace iff sum 1/M_i < infinity; accumulate always
/// (E[(mu_n - mu)^2] <= 2 sigma^2 / M_0 and E[sigma_n^2] <= sigma^2); accumulate-subsample with
/// a constant schedule never (E[sigma_n^2] grows like n^(1/M)); mix with R >= 1 and keep with
/// K >= 1 for a constant schedule always (the recursion converges to its fixed point); R = 0 or
/// K = 0 is replace. None where not determined.
pub fn w2_bounded(spec: &GaussianSpec) -> Option<bool> {
    if spec.estimator == Estimator::Mle {
        return Some(true);
    }
    let replace = spec.schedule.is_summable();
    let constant = spec.schedule.is_constant();
    let m0 = spec.schedule.base;
    match spec.strategy {
        Strategy::Replace => Some(replace),
        Strategy::Accumulate => Some(true),
        Strategy::AccumulateSubsample => {
            (constant && spec.estimator == Estimator::Unbiased).then_some(false)
        }
        Strategy::Mix(f) if constant => Some(round_fraction(f, m0) >= 1 || replace),
        Strategy::Mix(0.0) => Some(replace),
        Strategy::Mix(_) => None,
        Strategy::Keep(f) if round_fraction(f, m0) == 0 => Some(replace),
        Strategy::Keep(_) => constant.then_some(true),
    }
}

/// sigma^2 (1 - rho_hi^2), with rho_hi = rho + its error bound (exact sum, at most 1), for a
/// non-normal truth; None for the normal truth. For every s >= 0,
/// s^2 + sigma^2 - 2 rho sigma s >= sigma^2 (1 - rho^2) >= this, so E[(mu_n - mu)^2] plus it is a
/// lower bound of E[W2^2] to D0 for n >= 1 however sigma_n is distributed (proofs/strategies.md
/// claim strategies.11.2); the upper end of rho keeps the bound certified.
pub fn w2_shape_floor(spec: &GaussianSpec) -> Option<Rational> {
    if spec.truth == Truth::Normal {
        return None;
    }
    let c = spec.truth.comonotone_correlation();
    let rho_hi = Rational::from_f64(c.rho).expect("finite rho")
        + Rational::from_f64(c.error_bound).expect("finite bound");
    let rho_hi = rho_hi.min(Rational::from(1));
    let one_minus = Rational::from(1) - Rational::from(rho_hi.square_ref());
    Some(one_minus * Exact.sigma2(spec.sigma))
}

/// The bound of generation n from E[(mu_n - mu)^2]: itself for the normal truth (and at n = 0),
/// plus the shape floor otherwise.
fn w2_bound(e: &Ball, n: u64, floor: Option<&Rational>) -> Ball {
    match floor {
        Some(f) if n > 0 => e.add(&Ball::exact(e.prec(), f.clone())),
        _ => e.clone(),
    }
}

fn rows_from(moments: Vec<(Ball, Ball)>, floor: Option<&Rational>) -> Vec<StrategyRow> {
    moments
        .into_iter()
        .enumerate()
        .map(|(n, (e, v))| StrategyRow {
            n: n as u64,
            w2_sq_lower_bound: w2_bound(&e, n as u64, floor),
            mean_sq_error: e,
            expected_variance: v,
        })
        .collect()
}

/// The strategy theory at working precision `prec` in balls (no exact rationals).
pub fn strategy_theory_at_precision(spec: &GaussianSpec, prec: u32) -> StrategyTheory {
    let a = Balls(prec);
    StrategyTheory {
        spec: spec.clone(),
        precision_bits: prec,
        exact: false,
        rows: rows_from(moments(&a, spec), w2_shape_floor(spec).as_ref()),
        stationary: stationary_exact(spec).map(|(e, v)| Stationary {
            mean_sq_error: a.q(e),
            expected_variance: a.q(v),
        }),
        bounded: w2_bounded(spec),
    }
}

/// E[(mu_n - mu)^2], E[sigma_n^2] and the lower bound of E[W2^2] to D0 ([`StrategyRow`]) for
/// n = 0..=N under the spec's strategy and truth, each with at least `digits` certified digits where the precision
/// cap allows (check `min_certified_digits`), with the stationary values and the boundedness of
/// E[W2^2]. `replace` takes these rows from `gaussian::theory` (the same balls); up to
/// [`EXACT_GENERATIONS`] generations the other strategies are computed in exact rationals and
/// rounded once. e_n and v_n do not depend on the truth's shape. Derivations:
/// proofs/strategies.md.
pub fn strategy_theory(spec: &GaussianSpec, digits: u32) -> Result<StrategyTheory, SpecError> {
    let floor = w2_shape_floor(spec);
    if spec.strategy == Strategy::Replace {
        let t = crate::gaussian::theory(spec, digits)?;
        let rows = t
            .rows
            .iter()
            .map(|r| StrategyRow {
                n: r.n,
                mean_sq_error: r.mean_sq_error.clone(),
                expected_variance: r.expected_variance.clone(),
                w2_sq_lower_bound: w2_bound(&r.w2_sq_lower_bound, r.n, floor.as_ref()),
            })
            .collect();
        return Ok(StrategyTheory {
            spec: spec.clone(),
            precision_bits: t.precision_bits,
            exact: false,
            rows,
            stationary: None,
            bounded: w2_bounded(spec),
        });
    }
    if spec.generations <= EXACT_GENERATIONS {
        if digits == 0 || digits > crate::MAX_DIGITS {
            return Err(SpecError::invalid(
                "digits",
                format!("must be in 1..={}, got {digits}", crate::MAX_DIGITS),
            ));
        }
        let prec = bits_for_digits(digits, 16);
        let a = Balls(prec);
        let rows = exact_moments(spec)
            .into_iter()
            .map(|(e, v)| (a.q(e), a.q(v)))
            .collect();
        return Ok(StrategyTheory {
            spec: spec.clone(),
            precision_bits: prec,
            exact: true,
            rows: rows_from(rows, floor.as_ref()),
            stationary: stationary_exact(spec).map(|(e, v)| Stationary {
                mean_sq_error: a.q(e),
                expected_variance: a.q(v),
            }),
            bounded: w2_bounded(spec),
        });
    }
    let log_n = 64 - spec.generations.leading_zeros();
    crate::refine_until_certified(
        digits,
        40 + 2 * log_n,
        |prec| Ok(strategy_theory_at_precision(spec, prec)),
        StrategyTheory::min_certified_digits,
    )
}

#[cfg(test)]
mod tests;
