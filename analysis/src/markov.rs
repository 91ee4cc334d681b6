//! The categorical resampling chain (neutral haploid Wright–Fisher with M genes), exactly.
//! Derivations: `proofs/markov.md`.
//!
//! Generation 0 is p = (p_1..p_K); generation n+1 is counts / M with counts ~ Multinomial(M,
//! p^(n)). One category against the rest is itself a Markov chain on its count j = 0..M (the
//! two-type chain, `TwoTypeChain`): P(j -> l) = C(M, l) (j/M)^l (1 - j/M)^(M-l).
//!
//! Two arithmetics, one code: exact rationals (`rug::Rational`, every result a proof for its
//! instance) and enclosures (`Ball`, MPFR midpoints with rigorous radii) where the rationals
//! would grow too large or the inputs are irrational.

use crate::{Ball, SpecError};
use rug::{Float, Integer, Rational};

/// Largest M for which the exact two-type chain is built: its absorption-time solve is an
/// (M-1)-square rational elimination whose entries grow like M^2 log M bits.
pub const MAX_EXACT_SAMPLES: u32 = 64;
/// Largest M for the enclosed chain: (M+1)^2 balls and an O(M^3) float solve.
pub const MAX_ENCLOSED_SAMPLES: u32 = 1000;

/// The arithmetic of the chain: exact (`Rational`) or enclosed (`Ball`). Constructors take
/// `self` as the context (a ball's precision).
pub trait ChainNumber: Clone + std::fmt::Debug {
    /// num / den, in the arithmetic of `self`.
    fn ratio(&self, num: &Integer, den: &Integer) -> Self;
    fn plus(&self, other: &Self) -> Self;
    fn minus(&self, other: &Self) -> Self;
    fn times(&self, other: &Self) -> Self;
    /// Known to be exactly zero.
    fn is_exact_zero(&self) -> bool;
    /// The value (a ball's midpoint) as the nearest f64.
    fn approx(&self) -> f64;

    fn int(&self, n: u64) -> Self {
        self.ratio(&Integer::from(n), &Integer::from(1))
    }
}

impl ChainNumber for Rational {
    fn ratio(&self, num: &Integer, den: &Integer) -> Self {
        Rational::from((num, den))
    }
    fn plus(&self, other: &Self) -> Self {
        Rational::from(self + other)
    }
    fn minus(&self, other: &Self) -> Self {
        Rational::from(self - other)
    }
    fn times(&self, other: &Self) -> Self {
        Rational::from(self * other)
    }
    fn is_exact_zero(&self) -> bool {
        *self == 0
    }
    fn approx(&self) -> f64 {
        self.to_f64()
    }
}

impl ChainNumber for Ball {
    fn ratio(&self, num: &Integer, den: &Integer) -> Self {
        Ball::exact(self.prec(), Rational::from((num, den)))
    }
    fn plus(&self, other: &Self) -> Self {
        self.add(other)
    }
    fn minus(&self, other: &Self) -> Self {
        self.sub(other)
    }
    fn times(&self, other: &Self) -> Self {
        self.mul(other)
    }
    fn is_exact_zero(&self) -> bool {
        self.mid().is_zero() && self.rad().is_zero()
    }
    fn approx(&self) -> f64 {
        self.to_f64()
    }
}

/// C(M, l) x^l (1 - x)^(M - l) for l = 0..=M: the law of the next count when the current
/// frequency is x (x in [0, 1]).
pub fn binomial_pmf<N: ChainNumber>(m: u32, x: &N) -> Vec<N> {
    binomial_pmf_with(&binomial_coefficients(m, x), x)
}

/// C(M, l), l = 0..=M, in the arithmetic of `like`.
fn binomial_coefficients<N: ChainNumber>(m: u32, like: &N) -> Vec<N> {
    let mut c = Integer::from(1);
    let mut out = Vec::with_capacity(m as usize + 1);
    for l in 0..=m {
        out.push(like.ratio(&c, &Integer::from(1)));
        // C(M, l+1) = C(M, l) (M - l) / (l + 1), exact in integers.
        c *= m - l;
        c /= l + 1;
    }
    out
}

fn binomial_pmf_with<N: ChainNumber>(coefficients: &[N], x: &N) -> Vec<N> {
    let m = coefficients.len() - 1;
    let one = x.int(1);
    let y = one.minus(x);
    let (mut x_pow, mut y_pow) = (vec![one.clone()], vec![one]);
    for l in 1..=m {
        x_pow.push(x_pow[l - 1].times(x));
        y_pow.push(y_pow[l - 1].times(&y));
    }
    coefficients
        .iter()
        .enumerate()
        .map(|(l, c)| c.times(&x_pow[l]).times(&y_pow[m - l]))
        .collect()
}

/// The two-type chain: the count of one category (0..=M) among M genes.
#[derive(Debug, Clone)]
pub struct TwoTypeChain<N> {
    m: u32,
    /// `rows[j][l]` = P(count l next | count j now).
    rows: Vec<Vec<N>>,
}

/// Expected absorption times (and second moments) from every count.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsorptionTimes<N> {
    /// E[T | count j at generation 0], j = 0..=M (0 at the absorbing ends).
    pub mean: Vec<N>,
    /// E[T^2 | count j at generation 0].
    pub second_moment: Vec<N>,
}

impl<N: ChainNumber> TwoTypeChain<N> {
    fn build(m: u32, zero: &N) -> TwoTypeChain<N> {
        let coefficients = binomial_coefficients(m, zero);
        let rows = (0..=m)
            .map(|j| {
                binomial_pmf_with(
                    &coefficients,
                    &zero.ratio(&Integer::from(j), &Integer::from(m)),
                )
            })
            .collect();
        TwoTypeChain { m, rows }
    }

    pub fn samples(&self) -> u32 {
        self.m
    }

    /// P(count l next | count j now).
    pub fn transition(&self, j: u32, l: u32) -> &N {
        &self.rows[j as usize][l as usize]
    }

    /// The law of the next count given the law `dist` (length M+1) of the current one.
    pub fn step(&self, dist: &[N]) -> Vec<N> {
        assert_eq!(dist.len(), self.rows.len(), "one probability per count");
        let mut next: Vec<N> = self.rows[0].iter().map(|x| x.int(0)).collect();
        for (pj, row) in dist.iter().zip(&self.rows) {
            if pj.is_exact_zero() {
                continue;
            }
            for (n, t) in next.iter_mut().zip(row) {
                *n = n.plus(&pj.times(t));
            }
        }
        next
    }
}

impl TwoTypeChain<Rational> {
    /// The exact chain for `m` in 1..=MAX_EXACT_SAMPLES.
    pub fn exact(m: u32) -> Result<TwoTypeChain<Rational>, SpecError> {
        if m == 0 || m > MAX_EXACT_SAMPLES {
            return Err(SpecError::invalid(
                "samples",
                format!("the exact two-type chain needs M in 1..={MAX_EXACT_SAMPLES}, got {m}"),
            ));
        }
        Ok(TwoTypeChain::build(m, &Rational::new()))
    }

    /// The fundamental matrix N = (I - Q)^(-1) over the transient counts 1..M-1 (row and
    /// column i stand for count i + 1); N[i][k] is the expected number of visits to count k+1
    /// starting from count i+1.
    pub fn fundamental_matrix(&self) -> Vec<Vec<Rational>> {
        invert(self.i_minus_q())
    }

    /// Absorption (fixation) probabilities of the category from every count: B = N R, where R
    /// is the transient-to-{0, M} block. Returns P(absorbed at M | count j), j = 0..=M.
    pub fn fixation_probabilities(&self) -> Vec<Rational> {
        let n = self.fundamental_matrix();
        let m = self.m as usize;
        let mut out = vec![Rational::new(); m + 1];
        out[m] = Rational::from(1);
        for (i, row) in n.iter().enumerate() {
            out[i + 1] = row
                .iter()
                .enumerate()
                .map(|(k, nik)| Rational::from(nik * &self.rows[k + 1][m]))
                .sum();
        }
        out
    }
}

impl<N: ChainNumber> TwoTypeChain<N> {
    /// I - Q over the transient counts 1..M-1.
    fn i_minus_q(&self) -> Vec<Vec<N>> {
        let t = (self.m as usize).saturating_sub(1);
        (0..t)
            .map(|i| {
                (0..t)
                    .map(|k| {
                        let q = &self.rows[i + 1][k + 1];
                        q.int(u64::from(i == k)).minus(q)
                    })
                    .collect()
            })
            .collect()
    }
}

impl TwoTypeChain<Ball> {
    /// The chain in balls at `prec` bits, for `m` in 1..=MAX_ENCLOSED_SAMPLES.
    pub fn enclosed(m: u32, prec: u32) -> Result<TwoTypeChain<Ball>, SpecError> {
        if m == 0 || m > MAX_ENCLOSED_SAMPLES {
            return Err(SpecError::invalid(
                "samples",
                format!("the two-type chain needs M in 1..={MAX_ENCLOSED_SAMPLES}, got {m}"),
            ));
        }
        Ok(TwoTypeChain::build(m, &Ball::exact(prec, 0)))
    }
}

/// E[T] and E[T^2] over the transient states of an absorbing chain, from its transient block
/// Q (T counts the steps until absorption; `proofs/markov.md` §5).
pub trait Absorbing: ChainNumber {
    /// (t, s) with t = N 1 and s = (2N - I) t, N = (I - Q)^(-1).
    fn transient_moments(q: &[Vec<Self>]) -> (Vec<Self>, Vec<Self>);
}

/// I - Q of a transient block.
fn identity_minus<N: ChainNumber>(q: &[Vec<N>]) -> Vec<Vec<N>> {
    q.iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(k, x)| x.int(u64::from(i == k)).minus(x))
                .collect()
        })
        .collect()
}

impl Absorbing for Rational {
    /// Exactly, through the fundamental matrix.
    fn transient_moments(q: &[Vec<Rational>]) -> (Vec<Rational>, Vec<Rational>) {
        let n = invert(identity_minus(q));
        let t: Vec<Rational> = n.iter().map(|row| row.iter().sum()).collect();
        let s = n
            .iter()
            .zip(&t)
            .map(|(row, ti)| {
                let nt: Rational = row.iter().zip(&t).map(|(a, b)| Rational::from(a * b)).sum();
                Rational::from(2) * nt - ti
            })
            .collect();
        (t, s)
    }
}

impl Absorbing for Ball {
    /// The systems (I - Q) t = 1 and (I - Q) s = 1 + 2 Q t are solved in floats, then bounded
    /// a posteriori. N = (I - Q)^(-1) is entrywise >= 0 with N 1 = t, so a residual r gives
    /// |t - t~| <= N |r| <= max|r| t, hence |t - t~| <= rho t~ / (1 - rho), rho = max|r|.
    fn transient_moments(q: &[Vec<Ball>]) -> (Vec<Ball>, Vec<Ball>) {
        let size = q.len();
        if size == 0 {
            return (Vec::new(), Vec::new());
        }
        let prec = q[0][0].prec();
        let work = prec + 32;
        let a = identity_minus(q);
        let mids: Vec<Vec<Float>> = a
            .iter()
            .map(|row| row.iter().map(|b| Float::with_val(work, b.mid())).collect())
            .collect();
        let solver = Solver::new(mids);
        let ones: Vec<Ball> = vec![Ball::exact(prec, 1); size];
        let t_approx = solver.solve(&ones.iter().map(|b| b.mid().clone()).collect::<Vec<_>>());
        let rho_t = residual_bound(&a, &ones, &t_approx);
        let t: Vec<Ball> = t_approx
            .iter()
            .map(|x| with_relative_error(x, &rho_t))
            .collect();
        // b = 1 + 2 Q t, with t enclosed.
        let b: Vec<Ball> = q
            .iter()
            .map(|row| {
                let qt = Ball::sum(
                    prec,
                    &row.iter()
                        .zip(&t)
                        .map(|(x, tk)| x.mul(tk))
                        .collect::<Vec<_>>(),
                );
                Ball::exact(prec, 1).add(&qt.mul_f64(2.0))
            })
            .collect();
        let s_approx = solver.solve(&b.iter().map(|x| x.mid().clone()).collect::<Vec<_>>());
        let rho_s = residual_bound(&a, &b, &s_approx);
        // |s - s~| <= rho_s t <= rho_s (upper end of t's ball).
        let s = s_approx
            .iter()
            .zip(&t)
            .map(|(x, ti)| {
                let err = Float::with_val_round(64, &rho_s * ti.upper(), rug::float::Round::Up).0;
                Ball::with_radius(x.clone(), Float::new(64))
                    .rounded_to(prec)
                    .widen(&err)
            })
            .collect();
        (t, s)
    }
}

impl<N: Absorbing> TwoTypeChain<N> {
    /// E[T] and E[T^2] from every count, T the number of generations until the count is 0 or
    /// M: exact for rationals, enclosed for balls.
    pub fn absorption_times(&self) -> AbsorptionTimes<N> {
        let m = self.m as usize;
        let zero = self.rows[0][0].int(0);
        let q: Vec<Vec<N>> = (1..m).map(|i| self.rows[i][1..m].to_vec()).collect();
        let (t, s) = N::transient_moments(&q);
        let pad = |v: Vec<N>| {
            let mut out = vec![zero.clone()];
            out.extend(v);
            if m > 0 {
                out.push(zero.clone());
            }
            out
        };
        AbsorptionTimes {
            mean: pad(t),
            second_moment: pad(s),
        }
    }
}

/// The ball x~ +- rho x~ / (1 - rho) (x~ >= 0; rho < 1 checked).
fn with_relative_error(x: &Float, rho: &Float) -> Ball {
    use rug::float::Round;
    assert!(
        *rho < 0.5,
        "the float solve lost all accuracy (residual {rho})"
    );
    let one_minus = Float::with_val_round(64, 1 - rho.clone(), Round::Down).0;
    let factor = Float::with_val_round(64, rho / &one_minus, Round::Up).0;
    let err = Float::with_val_round(64, x.clone().abs() * &factor, Round::Up).0;
    Ball::with_radius(x.clone(), Float::new(64))
        .rounded_to(x.prec() - 32)
        .widen(&err)
}

/// An upper bound on max_i |rhs_i - sum_k a_ik x_k| over every point of the balls (x exact).
fn residual_bound(a: &[Vec<Ball>], rhs: &[Ball], x: &[Float]) -> Float {
    use rug::float::Round;
    let prec = rhs[0].prec();
    let xs: Vec<Ball> = x
        .iter()
        .map(|v| Ball::with_radius(v.clone(), Float::new(64)))
        .collect();
    let mut worst = Float::new(64);
    for (row, r) in a.iter().zip(rhs) {
        let ax = Ball::sum(
            prec,
            &row.iter()
                .zip(&xs)
                .map(|(aik, xk)| aik.mul(xk))
                .collect::<Vec<_>>(),
        );
        let res = r.sub(&ax);
        let bound = Float::with_val_round(64, res.mid().clone().abs() + res.rad(), Round::Up).0;
        if bound > worst {
            worst = bound;
        }
    }
    worst
}

/// Solutions of A x = b at A's precision: LU factors in f64 (nalgebra), then iterative
/// refinement with residuals b - A x taken at full precision (MPFR's correctly rounded dot
/// product). Each round gains about -log10(cond(A) 2^-53) digits, so a well-conditioned system
/// costs O(n^3) double operations and O(n^2) multiprecision ones per round instead of O(n^3)
/// multiprecision ones. Where the rounds stall (cond(A) near 2^53), the multiprecision LU. The
/// result is only an approximation either way: callers bound its error a posteriori.
struct Solver {
    a: Vec<Vec<Float>>,
    doubles: nalgebra::LU<f64, nalgebra::Dyn, nalgebra::Dyn>,
    fallback: std::sync::OnceLock<Lu>,
}

impl Solver {
    fn new(a: Vec<Vec<Float>>) -> Solver {
        let n = a.len();
        let doubles = nalgebra::DMatrix::from_fn(n, n, |i, k| a[i][k].to_f64()).lu();
        Solver {
            a,
            doubles,
            fallback: std::sync::OnceLock::new(),
        }
    }

    fn solve(&self, b: &[Float]) -> Vec<Float> {
        self.refined(b).unwrap_or_else(|| {
            self.fallback
                .get_or_init(|| Lu::factor(self.a.clone()))
                .solve(b)
        })
    }

    fn refined(&self, b: &[Float]) -> Option<Vec<Float>> {
        let n = b.len();
        let prec = self.a.first().map_or(64, |r| r[0].prec());
        let mut x: Vec<Float> = vec![Float::new(prec); n];
        let mut residual: Vec<Float> = b.iter().map(|v| Float::with_val(prec, v)).collect();
        let mut last_step = f64::INFINITY;
        // Each round must shrink the correction at least 2^10-fold.
        for _ in 0..prec / 10 + 4 {
            // The residual scaled by a power of two (exact) so that doubles neither underflow
            // nor overflow however small it gets.
            let Some(shift) = residual.iter().filter_map(Float::get_exp).max() else {
                return Some(x); // a zero residual
            };
            let r = nalgebra::DVector::from_iterator(
                n,
                residual
                    .iter()
                    .map(|v| Float::with_val(prec, v >> shift).to_f64()),
            );
            let step = self.doubles.solve(&r)?;
            if step.iter().any(|v| !v.is_finite()) {
                return None;
            }
            for (xi, di) in x.iter_mut().zip(step.iter()) {
                *xi += Float::with_val(53, *di) << shift;
            }
            // Sizes relative to 2^shift.
            let size = step.amax();
            let scale = x
                .iter()
                .map(|v| Float::with_val(53, v >> shift).to_f64().abs())
                .fold(0.0, f64::max);
            // Done at 2^-(prec - 32) relative: the residuals carry rounding errors of about
            // cond(A) 2^-prec, and callers work 32 bits above the precision they need.
            if size <= scale * (32.0 - f64::from(prec)).exp2() || size == 0.0 {
                return Some(x);
            }
            let size = size * f64::from(shift).exp2();
            if size > last_step * (-10f64).exp2() {
                return None;
            }
            last_step = size;
            for ((ri, bi), row) in residual.iter_mut().zip(b).zip(&self.a) {
                let ax = Float::with_val(prec, Float::dot(row.iter().zip(&x)));
                *ri = Float::with_val(prec, bi - &ax);
            }
        }
        None
    }
}

/// LU factors with partial pivoting of a square float matrix.
struct Lu {
    lu: Vec<Vec<Float>>,
    perm: Vec<usize>,
}

impl Lu {
    fn factor(mut a: Vec<Vec<Float>>) -> Lu {
        let n = a.len();
        let mut perm: Vec<usize> = (0..n).collect();
        for col in 0..n {
            let pivot = (col..n)
                .max_by(|&x, &y| {
                    a[x][col]
                        .as_abs()
                        .partial_cmp(&*a[y][col].as_abs())
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .expect("non-empty");
            a.swap(col, pivot);
            perm.swap(col, pivot);
            let (top, bottom) = a.split_at_mut(col + 1);
            let pivot_row = &top[col];
            for row in bottom {
                let f = Float::with_val(row[col].prec(), &row[col] / &pivot_row[col]);
                for k in col + 1..n {
                    row[k] -= &f * &pivot_row[k];
                }
                row[col] = f;
            }
        }
        Lu { lu: a, perm }
    }

    fn solve(&self, b: &[Float]) -> Vec<Float> {
        let n = self.lu.len();
        let mut x: Vec<Float> = self.perm.iter().map(|&p| b[p].clone()).collect();
        let prec = self.lu.first().map_or(64, |r| r[0].prec());
        for v in &mut x {
            v.set_prec(prec);
        }
        for i in 0..n {
            for k in 0..i {
                let (done, rest) = x.split_at_mut(i);
                rest[0] -= &self.lu[i][k] * &done[k];
            }
        }
        for i in (0..n).rev() {
            for k in i + 1..n {
                let (head, tail) = x.split_at_mut(k);
                head[i] -= &self.lu[i][k] * &tail[0];
            }
            x[i] /= &self.lu[i][i];
        }
        x
    }
}

/// The inverse of a non-singular square rational matrix (Gauss–Jordan, exact).
fn invert(mut a: Vec<Vec<Rational>>) -> Vec<Vec<Rational>> {
    let n = a.len();
    let mut inv: Vec<Vec<Rational>> = (0..n)
        .map(|i| (0..n).map(|k| Rational::from(u32::from(i == k))).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .find(|&r| a[r][col] != 0)
            .expect("I - Q is non-singular for an absorbing chain");
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = Rational::from(a[col][col].recip_ref());
        for x in a[col].iter_mut().chain(inv[col].iter_mut()) {
            *x *= &scale;
        }
        for r in 0..n {
            if r == col || a[r][col] == 0 {
                continue;
            }
            let factor = a[r][col].clone();
            for k in 0..n {
                let (da, di) = (
                    Rational::from(&factor * &a[col][k]),
                    Rational::from(&factor * &inv[col][k]),
                );
                a[r][k] -= da;
                inv[r][k] -= di;
            }
        }
    }
    inv
}

/// The law of a category's count at generation n = 1, 2, ..., N when its initial probability
/// is `q` (generation 1 is Binomial(M, q)); element n-1 of the result is that law.
pub fn count_laws<N: ChainNumber>(chain: &TwoTypeChain<N>, q: &N, generations: u32) -> Vec<Vec<N>> {
    let mut laws: Vec<Vec<N>> = Vec::with_capacity(generations as usize);
    if generations == 0 {
        return laws;
    }
    laws.push(binomial_pmf(chain.samples(), q));
    for _ in 1..generations {
        let next = chain.step(laws.last().expect("non-empty"));
        laws.push(next);
    }
    laws
}

/// P(a category of initial probability q is lost by generation n), n = 0..=N: 0 at n = 0
/// (for q > 0), then the mass at count 0 of its count law.
pub fn loss_probabilities<N: ChainNumber>(
    chain: &TwoTypeChain<N>,
    q: &N,
    generations: u32,
) -> Vec<N> {
    let mut out = vec![q.int(u64::from(q.is_exact_zero()))];
    out.extend(
        count_laws(chain, q, generations)
            .into_iter()
            .map(|law| law[0].clone()),
    );
    out
}

/// E[T] and E[T^2] for a category starting at probability q (not necessarily a multiple of
/// 1/M), from the chain's absorption times: the first generation draws the count from
/// Binomial(M, q), so T = 1 + T_J.
pub fn absorption_moments_from<N: ChainNumber>(
    chain_m: u32,
    times: &AbsorptionTimes<N>,
    q: &N,
) -> (N, N) {
    let law = binomial_pmf(chain_m, q);
    let (mut mean, mut second) = (q.int(1), q.int(1));
    for ((pj, t), s) in law.iter().zip(&times.mean).zip(&times.second_moment) {
        // E[(1 + T_J)^2] = 1 + 2 E[T_J] + E[T_J^2]
        let pt = pj.times(t);
        mean = mean.plus(&pt);
        second = second.plus(&pt.plus(&pt)).plus(&pj.times(s));
    }
    (mean, second)
}

/// E[1 - sum_i p_i^2] at generation n: (1 - 1/M)^n (1 - sum q_i^2).
pub fn expected_heterozygosity<N: ChainNumber>(m: u32, initial: &[N], n: u32) -> N {
    let mut curve = heterozygosity_curve(m, initial, n);
    curve.pop().expect("n + 1 values")
}

/// E[H_n] for n = 0..=n_max, each from the one before (linear in n_max, where evaluating each
/// n from scratch would be quadratic): the same operations in the same order as
/// `expected_heterozygosity`, so the same values.
pub fn heterozygosity_curve<N: ChainNumber>(m: u32, initial: &[N], n_max: u32) -> Vec<N> {
    let one = initial[0].int(1);
    let h0 = initial
        .iter()
        .fold(one.clone(), |h, q| h.minus(&q.times(q)));
    let factor = one.ratio(&Integer::from(m - 1), &Integer::from(m));
    let mut curve = Vec::with_capacity(n_max as usize + 1);
    curve.push(h0);
    for n in 1..=n_max as usize {
        let next = curve[n - 1].times(&factor);
        curve.push(next);
    }
    curve
}

/// Littler's (1975) diffusion approximation to the mean absorption time with K categories,
/// E[T] ~ -2M sum_i (1 - q_i) ln(1 - q_i) (Kimura's -2M [p ln p + (1-p) ln(1-p)] for K = 2).
pub fn diffusion_absorption_time(m: u32, initial: &[f64]) -> f64 {
    -2.0 * f64::from(m)
        * initial
            .iter()
            .filter(|&&q| q < 1.0)
            .map(|&q| (1.0 - q) * (1.0 - q).ln())
            .sum::<f64>()
}

/// [`diffusion_absorption_time`] as an enclosure of its formula: each term (1 - q) ln(1 - q) in
/// ball arithmetic. A category with q = 1 exactly contributes the limit 0; one whose ball
/// reaches 1 contributes [-1/e, 0], the range of x ln x on [0, 1].
pub fn diffusion_absorption_time_enclosure(prec: u32, m: u32, initial: &[Ball]) -> Ball {
    let one = Ball::exact(prec, 1);
    let terms: Vec<Ball> = initial
        .iter()
        .map(|q| {
            let rest = one.sub(q);
            if rest.is_positive() {
                rest.mul(&rest.ln())
            } else if rest.rad().is_zero() {
                Ball::exact(prec, 0) // q = 1 exactly: x ln x -> 0
            } else {
                // 0 <= 1 - q: x ln x lies in [-1/e, 0] for x in [0, 1].
                let half_e = Ball::exact(prec, 1).exp().mul_f64(2.0).recip();
                half_e.neg().widen(half_e.mid())
            }
        })
        .collect();
    Ball::sum(prec, &terms).mul(&Ball::exact(prec, -2 * i64::from(m)))
}

#[cfg(test)]
mod tests;

pub mod full;
pub mod theory;
