//! The full chain on the count vectors (compositions of M into K parts), for small state
//! spaces: P(c -> c') = M! / (c'_1! ... c'_K!) prod_i (c_i / M)^(c'_i). Absorbing states are
//! the point masses. The chain commutes with permuting the categories, so it lumps exactly onto
//! the sorted count vectors (partitions of M into at most K parts), which carry every
//! symmetric quantity (absorption time, absorbed mass) on far fewer states. `proofs/markov.md`
//! §10.

use super::{Absorbing, ChainNumber};
use crate::SpecError;
use rug::Integer;
use rug::ops::Pow;

/// Largest state space built: (states)^2 transition entries and a (states)^3 solve.
pub const MAX_FULL_STATES: u64 = 2000;
/// Largest (states) x (compositions) built: each transition entry of the symmetric chain sums
/// over the rearrangements of its target.
pub const MAX_FULL_BUILD_WORK: f64 = 2e8;

/// The state count of the symmetric chain of M, K, or None where it exceeds either limit.
pub fn symmetric_size(m: u32, k: u32) -> Option<u64> {
    let states = partition_count(m, k).filter(|&s| s <= MAX_FULL_STATES)?;
    let members = state_count(m, k).unwrap_or(u64::MAX);
    (states as f64 * members as f64 <= MAX_FULL_BUILD_WORK).then_some(states)
}

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

/// The number of partitions of m into at most k parts (None on overflow):
/// p(n, j) = p(n, j - 1) + p(n - j, j).
pub fn partition_count(m: u32, k: u32) -> Option<u64> {
    let (m, k) = (m as usize, k.min(m.max(1)) as usize);
    // row[n] = p(n, j) for the current j, starting from j = 0 (only p(0, 0) = 1).
    let mut row = vec![0u64; m + 1];
    row[0] = 1;
    for j in 1..=k {
        for n in j..=m {
            row[n] = row[n].checked_add(row[n - j])?;
        }
    }
    Some(row[m])
}

/// Every partition of m into at most k parts, as k counts in descending order (zeros last).
fn partitions(m: u32, k: u32) -> Vec<Vec<u32>> {
    fn fill(rest: u32, largest: u32, slots: usize, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if slots == 0 {
            if rest == 0 {
                out.push(prefix.clone());
            }
            return;
        }
        // The parts left must hold `rest` with none above `largest`.
        let top = rest.min(largest);
        for part in (0..=top).rev() {
            if u64::from(part) * (slots as u64) < u64::from(rest) {
                break;
            }
            prefix.push(part);
            fill(rest - part, part, slots - 1, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    fill(m, m, k as usize, &mut Vec::new(), &mut out);
    out
}

/// The distinct rearrangements of `counts`.
fn arrangements(counts: &[u32]) -> Vec<Vec<u32>> {
    let mut current = counts.to_vec();
    current.sort_unstable();
    let mut out = vec![current.clone()];
    // Next permutation in lexicographic order, until the last.
    loop {
        let Some(i) = (1..current.len())
            .rev()
            .find(|&i| current[i - 1] < current[i])
        else {
            return out;
        };
        let j = (i..current.len())
            .rev()
            .find(|&j| current[j] > current[i - 1])
            .expect("current[i] qualifies");
        current.swap(i - 1, j);
        current[i..].reverse();
        out.push(current.clone());
    }
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
    /// Per state, the count vectors it stands for: itself on compositions, its distinct
    /// rearrangements on partitions.
    members: Vec<Vec<Vec<u32>>>,
    /// The multinomial coefficient M! / prod c'_i! of every state.
    coefficients: Vec<Integer>,
    rows: Vec<Vec<N>>,
}

impl<N: ChainNumber> FullChain<N> {
    /// The chain on the compositions of M into K parts, in the arithmetic of `zero`.
    pub fn new(m: u32, k: u32, zero: &N) -> Result<FullChain<N>, SpecError> {
        let size = state_count(m, k).filter(|&s| s <= MAX_FULL_STATES);
        let states = size.map(|_| compositions(m, k));
        Self::build(m, k, states, zero, |c| vec![c.to_vec()])
    }

    /// The chain lumped by symmetry onto the partitions of M into at most K parts (descending
    /// count vectors, zeros last): P(lambda -> mu) sums the full chain's P(lambda -> c') over
    /// the rearrangements c' of mu.
    pub fn symmetric(m: u32, k: u32, zero: &N) -> Result<FullChain<N>, SpecError> {
        let states = symmetric_size(m, k).map(|_| partitions(m, k));
        Self::build(m, k, states, zero, arrangements)
    }

    fn build(
        m: u32,
        k: u32,
        states: Option<Vec<Vec<u32>>>,
        zero: &N,
        members_of: impl Fn(&[u32]) -> Vec<Vec<u32>>,
    ) -> Result<FullChain<N>, SpecError> {
        let states = states.ok_or_else(|| {
            SpecError::invalid(
                "categories",
                format!(
                    "the full chain of M = {m}, K = {k} is too large (at most {MAX_FULL_STATES} \
                     states, and states x compositions at most {MAX_FULL_BUILD_WORK:e})"
                ),
            )
        })?;
        let members: Vec<Vec<Vec<u32>>> = states.iter().map(|s| members_of(s)).collect();
        let factorial = |n: u32| Integer::from(Integer::factorial(n));
        let coefficients: Vec<Integer> = states
            .iter()
            .map(|c| c.iter().fold(factorial(m), |acc, &ci| acc / factorial(ci)))
            .collect();
        let m_pow_m = Integer::from(m).pow(m);
        let rows = states
            .iter()
            .map(|from| {
                // from_i^e for every category and exponent (0^0 = 1).
                let powers: Vec<Vec<Integer>> = from
                    .iter()
                    .map(|&f| {
                        let mut column = vec![Integer::from(1)];
                        for e in 1..=m as usize {
                            let next = Integer::from(&column[e - 1] * f);
                            column.push(next);
                        }
                        column
                    })
                    .collect();
                states
                    .iter()
                    .zip(&members)
                    .zip(&coefficients)
                    .map(|((_, arranged), coef)| {
                        // coef * sum over the member vectors of prod from_i^to_i, over M^M.
                        let mut sum = Integer::new();
                        for to in arranged {
                            if from.iter().zip(to).any(|(&f, &t)| f == 0 && t > 0) {
                                continue;
                            }
                            let mut term = Integer::from(1);
                            for (column, &t) in powers.iter().zip(to) {
                                if t > 0 {
                                    term *= &column[t as usize];
                                }
                            }
                            sum += term;
                        }
                        zero.ratio(&Integer::from(&sum * coef), &m_pow_m)
                    })
                    .collect()
            })
            .collect();
        Ok(FullChain {
            m,
            states,
            members,
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

    /// The law of generation 1 from probabilities `p` (any reals): Multinomial(M, p), summed
    /// over each state's member vectors.
    pub fn first_law(&self, p: &[N]) -> Vec<N> {
        let one = p[0].int(1);
        self.members
            .iter()
            .zip(&self.coefficients)
            .map(|(arranged, coef)| {
                let sum = arranged.iter().fold(one.int(0), |sum, to| {
                    let term = to.iter().zip(p).fold(one.clone(), |acc, (&t, pi)| {
                        (0..t).fold(acc, |a, _| a.times(pi))
                    });
                    sum.plus(&term)
                });
                one.ratio(coef, &Integer::from(1)).times(&sum)
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

    /// P(state `to` next | state `from` now), by index into `states()`.
    pub fn transition(&self, from: usize, to: usize) -> &N {
        &self.rows[from][to]
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
    fn partitions_are_counted_and_cover_the_compositions() {
        for (m, k) in [(1, 1), (5, 1), (7, 3), (12, 4), (10, 12), (20, 5)] {
            let parts = partitions(m, k);
            assert_eq!(
                Some(parts.len() as u64),
                partition_count(m, k),
                "m = {m}, k = {k}"
            );
            // Descending, zeros last, summing to m.
            for p in &parts {
                assert!(p.windows(2).all(|w| w[0] >= w[1]) && p.iter().sum::<u32>() == m);
            }
            // Their rearrangements are exactly the compositions.
            let mut all: Vec<Vec<u32>> = parts.iter().flat_map(|p| arrangements(p)).collect();
            all.sort();
            assert_eq!(all, compositions(m, k), "m = {m}, k = {k}");
        }
        assert_eq!(partition_count(100, 3), Some(884));
        assert_eq!(partition_count(200, 200), Some(3_972_999_029_388));
    }

    #[test]
    fn the_symmetric_chain_is_an_exact_lumping() {
        // E[T], E[T^2] from a composition equal those from its sorted counts, and the absorbed
        // mass from an asymmetric p agrees at every n, exactly.
        for (m, k) in [(7, 3), (6, 4)] {
            let full = FullChain::new(m, k, &Rational::new()).unwrap();
            let lumped = FullChain::symmetric(m, k, &Rational::new()).unwrap();
            assert!(lumped.states().len() < full.states().len());
            for row in &lumped.rows {
                assert_eq!(row.iter().sum::<Rational>(), 1);
            }
            let (tf, sf) = full.absorption_times();
            let (tl, sl) = lumped.absorption_times();
            for (i, state) in full.states().iter().enumerate() {
                let mut sorted = state.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let j = lumped.states().iter().position(|s| s == &sorted).unwrap();
                assert_eq!((&tf[i], &sf[i]), (&tl[j], &sl[j]), "{state:?}");
            }
            let p: Vec<Rational> = (1..=k)
                .map(|i| Rational::from((2 * i, k * (k + 1))))
                .collect();
            let (mut law_full, mut law_lumped) = (full.first_law(&p), lumped.first_law(&p));
            for _ in 0..6 {
                assert_eq!(
                    full.absorbed_mass(&law_full),
                    lumped.absorbed_mass(&law_lumped)
                );
                law_full = full.step(&law_full);
                law_lumped = lumped.step(&law_lumped);
            }
            assert_eq!(
                full.absorption_moments_from(&p),
                lumped.absorption_moments_from(&p)
            );
        }
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
