//! The categorical resampling chain (neutral haploid Wright–Fisher with M genes), exactly.
//! Derivations: `proofs/markov.md`.
//!
//! Generation 0 is p = (p_1..p_K); generation n+1 is counts / M with counts ~ Multinomial(M,
//! p^(n)). One category against the rest is itself a Markov chain on its count j = 0..M (the
//! two-type chain, `TwoTypeChain`): P(j -> l) = C(M, l) (j/M)^l (1 - j/M)^(M-l). This module
//! computes in exact rationals (`rug::Rational`): every result is a proof for its instance.

use crate::SpecError;
use rug::{Integer, Rational};

/// Largest M for which the exact two-type chain is built: (M+1)^2 rationals whose sizes grow
/// like M log M bits, and an (M-1)-square rational solve for the absorption times.
pub const MAX_EXACT_SAMPLES: u32 = 200;

/// C(M, l) (x)^l (1 - x)^(M - l) for l = 0..=M: the law of the next count when the current
/// frequency is x (x in [0, 1]).
pub fn binomial_pmf(m: u32, x: &Rational) -> Vec<Rational> {
    let y = Rational::from(1) - x;
    // Powers x^l and y^(M-l), built by repeated multiplication (exact).
    let mut x_pow = vec![Rational::from(1)];
    let mut y_pow = vec![Rational::from(1)];
    for l in 1..=m as usize {
        x_pow.push(Rational::from(&x_pow[l - 1] * x));
        y_pow.push(Rational::from(&y_pow[l - 1] * &y));
    }
    (0..=m)
        .map(|l| {
            let c = Integer::from(Integer::binomial_u(m, l));
            Rational::from(c) * &x_pow[l as usize] * &y_pow[(m - l) as usize]
        })
        .collect()
}

/// The two-type chain: the count of one category (0..=M) among M genes.
#[derive(Debug, Clone)]
pub struct TwoTypeChain {
    m: u32,
    /// `rows[j][l]` = P(count l next | count j now).
    rows: Vec<Vec<Rational>>,
}

/// Expected absorption times (and second moments) from every count.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsorptionTimes {
    /// E[T | count j at generation 0], j = 0..=M (0 at the absorbing ends).
    pub mean: Vec<Rational>,
    /// E[T^2 | count j at generation 0].
    pub second_moment: Vec<Rational>,
}

impl TwoTypeChain {
    /// The exact chain for `m` in 1..=MAX_EXACT_SAMPLES.
    pub fn new(m: u32) -> Result<TwoTypeChain, SpecError> {
        if m == 0 || m > MAX_EXACT_SAMPLES {
            return Err(SpecError::invalid(
                "samples",
                format!("the exact two-type chain needs M in 1..={MAX_EXACT_SAMPLES}, got {m}"),
            ));
        }
        let rows = (0..=m)
            .map(|j| binomial_pmf(m, &Rational::from((j, m))))
            .collect();
        Ok(TwoTypeChain { m, rows })
    }

    pub fn samples(&self) -> u32 {
        self.m
    }

    /// P(count l next | count j now).
    pub fn transition(&self, j: u32, l: u32) -> &Rational {
        &self.rows[j as usize][l as usize]
    }

    /// The law of the next count given the law `dist` (length M+1) of the current one.
    pub fn step(&self, dist: &[Rational]) -> Vec<Rational> {
        assert_eq!(dist.len(), self.rows.len(), "one probability per count");
        let mut next = vec![Rational::new(); self.rows.len()];
        for (pj, row) in dist.iter().zip(&self.rows) {
            if *pj == 0 {
                continue;
            }
            for (n, t) in next.iter_mut().zip(row) {
                *n += Rational::from(pj * t);
            }
        }
        next
    }

    /// The fundamental matrix N = (I - Q)^(-1) over the transient counts 1..M-1 (row and
    /// column i stand for count i + 1); N[i][k] is the expected number of visits to count k+1
    /// starting from count i+1.
    pub fn fundamental_matrix(&self) -> Vec<Vec<Rational>> {
        let t = (self.m as usize).saturating_sub(1);
        let i_minus_q: Vec<Vec<Rational>> = (0..t)
            .map(|i| {
                (0..t)
                    .map(|k| {
                        let q = &self.rows[i + 1][k + 1];
                        if i == k {
                            Rational::from(1) - q
                        } else {
                            Rational::from(-q)
                        }
                    })
                    .collect()
            })
            .collect();
        invert(i_minus_q)
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

    /// E[T] and E[T^2] from every count, T the number of generations until the count is 0 or
    /// M: t = N 1 and E[T^2] = (2N - I) t.
    pub fn absorption_times(&self) -> AbsorptionTimes {
        let n = self.fundamental_matrix();
        let m = self.m as usize;
        let t: Vec<Rational> = n.iter().map(|row| row.iter().sum()).collect();
        let mut mean = vec![Rational::new(); m + 1];
        let mut second_moment = vec![Rational::new(); m + 1];
        for (i, row) in n.iter().enumerate() {
            let nt: Rational = row.iter().zip(&t).map(|(a, b)| Rational::from(a * b)).sum();
            second_moment[i + 1] = Rational::from(2) * nt - &t[i];
            mean[i + 1] = t[i].clone();
        }
        AbsorptionTimes {
            mean,
            second_moment,
        }
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
pub fn count_laws(chain: &TwoTypeChain, q: &Rational, generations: u32) -> Vec<Vec<Rational>> {
    let mut laws = Vec::with_capacity(generations as usize);
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
pub fn loss_probabilities(chain: &TwoTypeChain, q: &Rational, generations: u32) -> Vec<Rational> {
    let mut out = vec![Rational::from(u32::from(*q == 0))];
    out.extend(
        count_laws(chain, q, generations)
            .into_iter()
            .map(|law| law[0].clone()),
    );
    out
}

/// E[T] and E[T^2] for a category starting at probability q (not necessarily a multiple of
/// 1/M): the first generation draws the count from Binomial(M, q), so T = 1 + T_J.
pub fn absorption_moments_from(chain: &TwoTypeChain, q: &Rational) -> (Rational, Rational) {
    if *q == 0 || *q == 1 {
        return (Rational::new(), Rational::new());
    }
    let times = chain.absorption_times();
    let law = binomial_pmf(chain.samples(), q);
    let (mut mean, mut second) = (Rational::from(1), Rational::from(1));
    for ((pj, t), s) in law.iter().zip(&times.mean).zip(&times.second_moment) {
        // E[(1 + T_J)^2] = 1 + 2 E[T_J] + E[T_J^2]
        mean += Rational::from(pj * t);
        second += Rational::from(pj * t) * 2u32 + Rational::from(pj * s);
    }
    (mean, second)
}

/// E[1 - sum_i p_i^2] at generation n: (1 - 1/M)^n (1 - sum q_i^2).
pub fn expected_heterozygosity(m: u32, initial: &[Rational], n: u32) -> Rational {
    let h0 = Rational::from(1)
        - initial
            .iter()
            .map(|q| Rational::from(q * q))
            .sum::<Rational>();
    let factor = Rational::from((m - 1, m));
    let mut power = Rational::from(1);
    for _ in 0..n {
        power *= &factor;
    }
    power * h0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i64, den: i64) -> Rational {
        Rational::from((num, den))
    }

    #[test]
    fn rows_sum_to_one_and_ends_absorb() {
        for m in 1..=12 {
            let chain = TwoTypeChain::new(m).unwrap();
            for j in 0..=m {
                let row_sum: Rational = (0..=m).map(|l| chain.transition(j, l).clone()).sum();
                assert_eq!(row_sum, 1, "M = {m}, j = {j}");
            }
            assert_eq!(*chain.transition(0, 0), 1);
            assert_eq!(*chain.transition(m, m), 1);
        }
    }

    #[test]
    fn fundamental_matrix_inverts_i_minus_q_exactly() {
        for m in 2..=12u32 {
            let chain = TwoTypeChain::new(m).unwrap();
            let n = chain.fundamental_matrix();
            let t = (m - 1) as usize;
            for i in 0..t {
                for k in 0..t {
                    // ((I - Q) N)[i][k]
                    let mut s = Rational::new();
                    for (l, nl) in n.iter().enumerate() {
                        let iq = if i == l {
                            Rational::from(1) - chain.transition(i as u32 + 1, l as u32 + 1)
                        } else {
                            Rational::from(-chain.transition(i as u32 + 1, l as u32 + 1))
                        };
                        s += iq * &nl[k];
                    }
                    assert_eq!(s, u32::from(i == k), "M = {m}, ({i}, {k})");
                }
            }
        }
    }

    #[test]
    fn fixation_probability_is_the_initial_frequency() {
        for m in 1..=12u32 {
            let b = TwoTypeChain::new(m).unwrap().fixation_probabilities();
            for (j, bj) in b.iter().enumerate() {
                assert_eq!(*bj, Rational::from((j as u32, m)), "M = {m}, j = {j}");
            }
        }
    }

    #[test]
    fn two_genes_absorb_geometrically() {
        // M = 2 from count 1: stay with probability 1/2, so T ~ Geometric(1/2): E[T] = 2,
        // E[T^2] = (2 - p)/p^2 = 6.
        let times = TwoTypeChain::new(2).unwrap().absorption_times();
        assert_eq!(times.mean, vec![r(0, 1), r(2, 1), r(0, 1)]);
        assert_eq!(times.second_moment, vec![r(0, 1), r(6, 1), r(0, 1)]);
    }

    #[test]
    fn absorption_time_satisfies_first_step_equations() {
        // t_j = 1 + sum_l P(j, l) t_l for transient j (an independent route to N 1), and
        // E[T^2]_j = 1 + sum_l P(j, l) (2 t_l + E[T^2]_l).
        for m in 2..=10u32 {
            let chain = TwoTypeChain::new(m).unwrap();
            let times = chain.absorption_times();
            for j in 1..m {
                let mut t = Rational::from(1);
                let mut s = Rational::from(1);
                for l in 0..=m {
                    let p = chain.transition(j, l);
                    t += Rational::from(p * &times.mean[l as usize]);
                    s += Rational::from(p * &times.mean[l as usize]) * 2u32
                        + Rational::from(p * &times.second_moment[l as usize]);
                }
                assert_eq!(t, times.mean[j as usize], "M = {m}, j = {j}");
                assert_eq!(s, times.second_moment[j as usize], "M = {m}, j = {j}");
            }
        }
    }

    #[test]
    fn exact_time_below_diffusion_and_converging() {
        // Known values (THEORY-NOTES, from an independent float solve): M = 10, j = 5: 12.591
        // exact vs 2M ln 2 = 13.863; the ratio tends to 1 as M grows.
        let exact = |m: u32| {
            let t = TwoTypeChain::new(m).unwrap().absorption_times();
            t.mean[(m / 2) as usize].to_f64()
        };
        assert!((exact(10) - 12.591).abs() < 1e-3, "{}", exact(10));
        let gap = |m: u32| 1.0 - exact(m) / diffusion_absorption_time(m, &[0.5, 0.5]);
        let (g10, g40) = (gap(10), gap(40));
        assert!(g10 > 0.0 && g40 > 0.0 && g40 < g10 / 2.0, "{g10} {g40}");
    }

    #[test]
    fn loss_by_one_generation_is_one_minus_q_to_the_m() {
        let chain = TwoTypeChain::new(12).unwrap();
        let q = r(1, 7);
        let loss = loss_probabilities(&chain, &q, 3);
        let mut expect = Rational::from(1);
        for _ in 0..12 {
            expect *= r(6, 7);
        }
        assert_eq!(loss[0], 0);
        assert_eq!(loss[1], expect);
        assert!(loss[2] > loss[1] && loss[3] > loss[2]);
    }

    #[test]
    fn loss_and_survival_match_the_reference_table() {
        // THEORY-NOTES §2.7 (a float computation, checked there by simulation): K = 5,
        // q = (.5, .25, .15, .07, .03), M = 30, n = 10.
        let chain = TwoTypeChain::new(30).unwrap();
        let qs = [r(50, 100), r(25, 100), r(15, 100), r(7, 100), r(3, 100)];
        let expect = [0.0317, 0.2195, 0.4181, 0.6741, 0.8466];
        let mut surviving = 0.0;
        for (q, e) in qs.iter().zip(expect) {
            let lost = loss_probabilities(&chain, q, 10)[10].to_f64();
            assert!((lost - e).abs() < 1e-4, "q = {q}: {lost} vs {e}");
            surviving += 1.0 - lost;
        }
        assert!((surviving - 2.8099).abs() < 1e-4, "{surviving}");
    }

    #[test]
    fn heterozygosity_recursion_holds_exactly_one_step() {
        // E[H'] = (1 - 1/M) H for a start at a count state: check against the chain, K = 2:
        // H = 1 - x^2 - (1-x)^2 = 2 x (1 - x).
        for m in 1..=12u32 {
            let chain = TwoTypeChain::new(m).unwrap();
            for j in 0..=m {
                let x = r(i64::from(j), i64::from(m));
                let next_h: Rational = (0..=m)
                    .map(|l| {
                        let y = r(i64::from(l), i64::from(m));
                        chain.transition(j, l) * (Rational::from(2) * &y * (Rational::from(1) - &y))
                    })
                    .sum();
                let expect = expected_heterozygosity(m, &[x.clone(), Rational::from(1) - &x], 1);
                assert_eq!(next_h, expect, "M = {m}, j = {j}");
            }
        }
    }

    #[test]
    fn too_large_or_empty_chains_are_refused() {
        assert!(TwoTypeChain::new(0).is_err());
        assert!(TwoTypeChain::new(MAX_EXACT_SAMPLES + 1).is_err());
    }
}
