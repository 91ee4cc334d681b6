//! The full chain on the count vectors (compositions of M into K parts), for small state
//! spaces: P(c -> c') = M! / (c'_1! ... c'_K!) prod_i (c_i / M)^(c'_i). Absorbing states are
//! the point masses. `proofs/markov.md` §10.

use super::{Absorbing, ChainNumber};
use crate::SpecError;
use rug::Integer;
use rug::ops::Pow;

/// Largest state space built: (states)^2 transition entries and a (states)^3 solve.
pub const MAX_FULL_STATES: u64 = 500;

/// C(M + K - 1, K - 1), the number of compositions of M into K parts (None on overflow).
pub fn state_count(m: u32, k: u32) -> Option<u64> {
    let mut c: u128 = 1;
    let (n, r) = (u128::from(m) + u128::from(k) - 1, u128::from(k) - 1);
    for i in 0..r {
        c = c.checked_mul(n - i)? / (i + 1);
        if c > u128::from(u64::MAX) {
            return None;
        }
    }
    u64::try_from(c).ok()
}

/// Every composition of m into k parts, in lexicographic order.
fn compositions(m: u32, k: u32) -> Vec<Vec<u32>> {
    fn fill(rest: u32, slots: usize, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if slots == 1 {
            prefix.push(rest);
            out.push(prefix.clone());
            prefix.pop();
            return;
        }
        for first in 0..=rest {
            prefix.push(first);
            fill(rest - first, slots - 1, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    fill(m, k as usize, &mut Vec::new(), &mut out);
    out
}

#[derive(Debug, Clone)]
pub struct FullChain<N> {
    m: u32,
    states: Vec<Vec<u32>>,
    /// The multinomial coefficient M! / prod c'_i! of every state.
    coefficients: Vec<Integer>,
    rows: Vec<Vec<N>>,
}

impl<N: ChainNumber> FullChain<N> {
    /// The chain for M genes and K categories, in the arithmetic of `zero`.
    pub fn new(m: u32, k: u32, zero: &N) -> Result<FullChain<N>, SpecError> {
        let size = state_count(m, k)
            .filter(|&s| s <= MAX_FULL_STATES)
            .ok_or_else(|| {
                SpecError::invalid(
                    "categories",
                    format!(
                        "the full chain of M = {m}, K = {k} has more than {MAX_FULL_STATES} states"
                    ),
                )
            })?;
        let states = compositions(m, k);
        debug_assert_eq!(states.len() as u64, size);
        let factorial = |n: u32| Integer::from(Integer::factorial(n));
        let coefficients: Vec<Integer> = states
            .iter()
            .map(|c| c.iter().fold(factorial(m), |acc, &ci| acc / factorial(ci)))
            .collect();
        let m_pow_m = Integer::from(m).pow(m);
        let rows = states
            .iter()
            .map(|from| {
                states
                    .iter()
                    .zip(&coefficients)
                    .map(|(to, coef)| {
                        // prod from_i^to_i (0^0 = 1), times the coefficient, over M^M.
                        let mut num = coef.clone();
                        for (&f, &t) in from.iter().zip(to) {
                            if t > 0 {
                                num *= Integer::from(f).pow(t);
                            }
                        }
                        zero.ratio(&num, &m_pow_m)
                    })
                    .collect()
            })
            .collect();
        Ok(FullChain {
            m,
            states,
            coefficients,
            rows,
        })
    }

    pub fn states(&self) -> &[Vec<u32>] {
        &self.states
    }

    /// Whether a state is a point mass.
    pub fn is_absorbing(state: &[u32]) -> bool {
        state.iter().filter(|&&c| c > 0).count() <= 1
    }

    /// The law of generation 1 from probabilities `p` (any reals): Multinomial(M, p).
    pub fn first_law(&self, p: &[N]) -> Vec<N> {
        let one = p[0].int(1);
        self.states
            .iter()
            .zip(&self.coefficients)
            .map(|(to, coef)| {
                to.iter()
                    .zip(p)
                    .fold(one.ratio(coef, &Integer::from(1)), |acc, (&t, pi)| {
                        (0..t).fold(acc, |a, _| a.times(pi))
                    })
            })
            .collect()
    }

    /// The law one generation later.
    pub fn step(&self, dist: &[N]) -> Vec<N> {
        let mut next: Vec<N> = dist.iter().map(|x| x.int(0)).collect();
        for (pj, row) in dist.iter().zip(&self.rows) {
            if pj.is_exact_zero() {
                continue;
            }
            for (n, t) in next.iter_mut().zip(row) {
                if !t.is_exact_zero() {
                    *n = n.plus(&pj.times(t));
                }
            }
        }
        next
    }

    /// Mass on the point masses.
    pub fn absorbed_mass(&self, dist: &[N]) -> N {
        self.states
            .iter()
            .zip(dist)
            .filter(|(s, _)| Self::is_absorbing(s))
            .fold(dist[0].int(0), |acc, (_, p)| acc.plus(p))
    }

    pub fn samples(&self) -> u32 {
        self.m
    }
}

impl<N: Absorbing> FullChain<N> {
    /// E[T] and E[T^2] from every state (0 at the point masses).
    pub fn absorption_times(&self) -> (Vec<N>, Vec<N>) {
        let transient: Vec<usize> = (0..self.states.len())
            .filter(|&i| !Self::is_absorbing(&self.states[i]))
            .collect();
        let q: Vec<Vec<N>> = transient
            .iter()
            .map(|&i| transient.iter().map(|&k| self.rows[i][k].clone()).collect())
            .collect();
        let (t, s) = N::transient_moments(&q);
        let zero = self.rows[0][0].int(0);
        let (mut mean, mut second) = (
            vec![zero.clone(); self.states.len()],
            vec![zero; self.states.len()],
        );
        for ((&i, ti), si) in transient.iter().zip(t).zip(s) {
            mean[i] = ti;
            second[i] = si;
        }
        (mean, second)
    }

    /// E[T] and E[T^2] from probabilities `p` at generation 0 (T = 1 + T_{X_1}, or 0 if `p`
    /// is a point mass).
    pub fn absorption_moments_from(&self, p: &[N]) -> (N, N) {
        let one = p[0].int(1);
        if p.iter().filter(|x| !x.is_exact_zero()).count() <= 1 {
            return (one.int(0), one.int(0));
        }
        let (t, s) = self.absorption_times();
        let law = self.first_law(p);
        let (mut mean, mut second) = (one.clone(), one);
        for ((pj, tj), sj) in law.iter().zip(&t).zip(&s) {
            let pt = pj.times(tj);
            mean = mean.plus(&pt);
            second = second.plus(&pt.plus(&pt)).plus(&pj.times(sj));
        }
        (mean, second)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TwoTypeChain;
    use super::*;
    use crate::Ball;
    use rug::Rational;

    #[test]
    fn counts_and_rows() {
        assert_eq!(state_count(12, 3), Some(91));
        assert_eq!(compositions(12, 3).len(), 91);
        assert_eq!(state_count(4, 1), Some(1));
        let chain = FullChain::new(5, 3, &Rational::new()).unwrap();
        for row in &chain.rows {
            assert_eq!(row.iter().sum::<Rational>(), 1);
        }
        assert!(FullChain::new(100, 10, &Rational::new()).is_err());
    }

    #[test]
    fn two_categories_reduce_to_the_two_type_chain() {
        // K = 2: the full chain is the two-type chain (state (j, M - j) is count j).
        let full = FullChain::new(9, 2, &Rational::new()).unwrap();
        let two = TwoTypeChain::exact(9).unwrap();
        let (t, s) = full.absorption_times();
        let times = two.absorption_times();
        for (i, state) in full.states().iter().enumerate() {
            let j = state[0] as usize;
            assert_eq!(t[i], times.mean[j]);
            assert_eq!(s[i], times.second_moment[j]);
        }
    }

    #[test]
    fn three_categories_match_the_reference_table() {
        // THEORY-NOTES §2.7: K = 3, M = 12, from (4, 4, 4): exact E[T] = 18.035 (the 91-state
        // chain), Littler's diffusion 19.462.
        let balls = FullChain::new(12, 3, &Ball::exact(128, 0)).unwrap();
        let (t, _) = balls.absorption_times();
        let i = balls.states().iter().position(|s| s == &[4, 4, 4]).unwrap();
        assert!((t[i].to_f64() - 18.035).abs() < 1e-3, "{}", t[i].to_f64());
        assert!(t[i].certified_digits() >= 30);
        // Balls contain the rationals (M = 6, K = 3: 28 states).
        let exact = FullChain::new(6, 3, &Rational::new()).unwrap();
        let enclosed = FullChain::new(6, 3, &Ball::exact(128, 0)).unwrap();
        let ((te, se), (tb, sb)) = (exact.absorption_times(), enclosed.absorption_times());
        for i in 0..te.len() {
            assert!(tb[i].contains(&rug::Float::with_val(256, &te[i])));
            assert!(sb[i].contains(&rug::Float::with_val(256, &se[i])));
        }
        // From p = (1/3, 1/3, 1/3) at generation 0 the first draw is multinomial.
        let third = Rational::from((1, 3));
        let (mean, second) = exact.absorption_moments_from(&[third.clone(), third.clone(), third]);
        assert!(mean > 5 && mean < 12, "{}", mean.to_f64());
        assert!(second > Rational::from(&mean * &mean));
    }

    #[test]
    fn lumped_chain_matches_the_full_chain() {
        // K = 3, M = 7: the full chain's probability that category 1 is lost by n (mass on
        // states with c_1 = 0) equals the two-type chain's, exactly, for every n.
        let full = FullChain::new(7, 3, &Rational::new()).unwrap();
        let two = TwoTypeChain::exact(7).unwrap();
        let p = [
            Rational::from((2, 7)),
            Rational::from((3, 7)),
            Rational::from((2, 7)),
        ];
        let lost = super::super::loss_probabilities(&two, &p[0], 6);
        let mut law = full.first_law(&p);
        for (n, lost_n) in lost.iter().enumerate().skip(1) {
            if n > 1 {
                law = full.step(&law);
            }
            let mass: Rational = full
                .states()
                .iter()
                .zip(&law)
                .filter(|(s, _)| s[0] == 0)
                .map(|(_, x)| x.clone())
                .sum();
            assert_eq!(&mass, lost_n, "n = {n}");
        }
    }

    #[test]
    fn absorbed_mass_grows_to_one() {
        let full = FullChain::new(6, 3, &Rational::new()).unwrap();
        let p = [
            Rational::from((1, 2)),
            Rational::from((1, 3)),
            Rational::from((1, 6)),
        ];
        let mut law = full.first_law(&p);
        assert_eq!(law.iter().sum::<Rational>(), 1);
        let mut last = full.absorbed_mass(&law);
        for _ in 0..20 {
            law = full.step(&law);
            let now = full.absorbed_mass(&law);
            assert!(now >= last);
            last = now;
        }
        assert!(last > Rational::from((9, 10)));
    }
}
