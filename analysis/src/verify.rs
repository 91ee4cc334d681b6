//! Computer-assisted proofs for finite instances: the claims of `proofs/markov.md` checked in
//! exact rational arithmetic for every chain up to a size, and the Gamma-ratio recursions of
//! `proofs/gaussian.md` checked as exact rational identities on the enclosures the theory
//! uses. Each check states its claim, runs over every instance of the chosen scale, and keeps
//! the first few counterexamples (none is expected: a failure is a bug or a false claim).

use crate::Ball;
use crate::gaussian::{Estimator, GaussianSpec, sigma_power_moment};
use crate::markov::full::{FullChain, state_count};
use crate::markov::{TwoTypeChain, loss_probabilities};
use crate::schedule::Schedule;
use crate::special::{digamma, exact_arg, trigamma};
use rug::ops::Pow;
use rug::{Integer, Rational};
use std::time::Instant;

/// One claim checked over a family of instances.
#[derive(Debug, Clone)]
pub struct Check {
    /// Where the claim is derived (`proofs/<file>.md`, section).
    pub claim: &'static str,
    pub statement: &'static str,
    /// The instances, in words (e.g. "M = 1..=30").
    pub range: String,
    pub instances: u64,
    /// The first counterexamples (at most `MAX_REPORTED`).
    pub failures: Vec<String>,
    pub seconds: f64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

const MAX_REPORTED: usize = 5;

/// The sizes verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyScale {
    /// Two-type chains for M = 1..=this.
    pub two_type_max_m: u32,
    /// Full chains: (K, largest M) pairs, every M from 1.
    pub full: Vec<(u32, u32)>,
    /// Full chains up to this many states also compare E[T] with the symmetric chain's (an
    /// exact rational linear solve per chain).
    pub full_times_max_states: u64,
    /// Gaussian identities for k = M - 1 = 1..=this.
    pub gaussian_max_k: u64,
    /// Working precision of the Gaussian enclosures, in bits.
    pub gaussian_prec: u32,
}

impl VerifyScale {
    /// The full size: K = 2 up to M = 30, K = 3 up to M = 30 (496 states), K = 4 up to
    /// M = 12 (455 states).
    pub fn full() -> VerifyScale {
        VerifyScale {
            two_type_max_m: 30,
            full: vec![(3, 30), (4, 12)],
            full_times_max_states: 120,
            gaussian_max_k: 1000,
            gaussian_prec: 256,
        }
    }

    /// A size for the test suite (about a second).
    pub fn quick() -> VerifyScale {
        VerifyScale {
            two_type_max_m: 12,
            full: vec![(3, 8), (4, 5)],
            full_times_max_states: 60,
            gaussian_max_k: 60,
            gaussian_prec: 128,
        }
    }
}

/// Runs `check` on every instance and records the outcome: `check` returns an error string
/// describing a counterexample.
fn run_check<I: std::fmt::Debug>(
    claim: &'static str,
    statement: &'static str,
    range: String,
    instances: impl IntoIterator<Item = I>,
    mut check: impl FnMut(&I) -> Result<(), String>,
) -> Check {
    let start = Instant::now();
    let mut count = 0;
    let mut failures = Vec::new();
    for instance in instances {
        count += 1;
        if let Err(why) = check(&instance)
            && failures.len() < MAX_REPORTED
        {
            failures.push(format!("{instance:?}: {why}"));
        }
    }
    Check {
        claim,
        statement,
        range,
        instances: count,
        failures,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn q(num: impl Into<Integer>, den: impl Into<Integer>) -> Rational {
    Rational::from((num.into(), den.into()))
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

/// The Markov claims, in exact rationals.
pub fn verify_markov(scale: &VerifyScale) -> Vec<Check> {
    let max_m = scale.two_type_max_m;
    let chains: Vec<TwoTypeChain<Rational>> = (1..=max_m)
        .map(|m| TwoTypeChain::exact(m).expect("M <= MAX_EXACT_SAMPLES"))
        .collect();
    let range = format!("K = 2, M = 1..={max_m}");
    let mut checks = Vec::new();
    let states = |c: &TwoTypeChain<Rational>| 0..=c.samples();

    checks.push(run_check(
        "markov.md §2",
        "every row of the two-type chain sums to exactly 1; counts 0 and M absorb",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(m, c)| {
            for j in states(c) {
                let sum: Rational = states(c).map(|l| c.transition(j, l)).sum();
                ensure(sum == 1, || format!("row {j} sums to {sum}"))?;
            }
            ensure(
                *c.transition(0, 0) == 1 && *c.transition(*m, *m) == 1,
                || "an end is not absorbing".into(),
            )
        },
    ));
    checks.push(run_check(
        "markov.md §4",
        "the count is a martingale: sum_l P(j, l) l = j",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(_, c)| {
            for j in states(c) {
                let mean: Rational = states(c)
                    .map(|l| Rational::from(c.transition(j, l) * l))
                    .sum();
                ensure(mean == j, || format!("from {j}: mean {mean}"))?;
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §4",
        "fixation probability from count k is exactly k/M (B = N R)",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(m, c)| {
            let fixation = c.fixation_probabilities();
            for (k, b) in fixation.iter().enumerate() {
                ensure(*b == q(k as u32, *m), || format!("from {k}: {b}"))?;
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §5",
        "(I - Q) N = I exactly for the fundamental matrix N",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(m, c)| {
            let n = c.fundamental_matrix();
            let t = (*m as usize).saturating_sub(1);
            for i in 0..t {
                for k in 0..t {
                    let entry: Rational = n
                        .iter()
                        .enumerate()
                        .map(|(j, n_j)| {
                            let q_ij = c.transition(i as u32 + 1, j as u32 + 1);
                            let i_minus_q = Rational::from(u32::from(i == j)) - q_ij;
                            i_minus_q * &n_j[k]
                        })
                        .sum();
                    ensure(entry == u32::from(i == k), || {
                        format!("entry ({i}, {k}) = {entry}")
                    })?;
                }
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §5",
        "E[T] and E[T^2] solve the first-step equations t = 1 + Q t, s = 1 + Q (2t + s)",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(m, c)| {
            let times = c.absorption_times();
            let (t, s) = (&times.mean, &times.second_moment);
            ensure(t[0] == 0 && t[*m as usize] == 0, || "ends not at 0".into())?;
            for j in 1..*m {
                let (mut next_t, mut next_s) = (Rational::from(1), Rational::from(1));
                for l in 1..*m {
                    let p = c.transition(j, l);
                    next_t += Rational::from(p * &t[l as usize]);
                    next_s += p * (Rational::from(&t[l as usize] * 2u32) + &s[l as usize]);
                }
                ensure(next_t == t[j as usize] && next_s == s[j as usize], || {
                    format!("from {j}: t = {}, s = {}", t[j as usize], s[j as usize])
                })?;
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §7",
        "heterozygosity recursion: sum_l P(j, l) l (M - l) = (1 - 1/M) j (M - j)",
        range.clone(),
        chains.iter().map(|c| (c.samples(), c)),
        |(m, c)| {
            for j in states(c) {
                let next: Rational = states(c)
                    .map(|l| Rational::from(c.transition(j, l) * (l * (m - l))))
                    .sum();
                let expected = q((m - 1) * j * (m - j), *m);
                ensure(next == expected, || {
                    format!("from {j}: {next} != {expected}")
                })?;
            }
            Ok(())
        },
    ));
    let probabilities = [q(1, 2), q(1, 3), q(2, 7), q(5, 11), q(1, 97)];
    checks.push(run_check(
        "markov.md §3",
        "a category of initial probability q is lost in one generation with probability (1 - q)^M",
        format!("{range}, q in {{1/2, 1/3, 2/7, 5/11, 1/97}}"),
        chains.iter().flat_map(|c| {
            probabilities
                .iter()
                .map(move |p| (c.samples(), p.clone(), c))
        }),
        |(m, p, c)| {
            let lost = &loss_probabilities(c, p, 1)[1];
            let expected = (Rational::from(1) - p).pow(*m);
            ensure(*lost == expected, || format!("{lost} != {expected}"))
        },
    ));
    checks.extend(verify_full_chains(scale));
    checks
}

/// Claims about the full chain on compositions, and its lumpings.
fn verify_full_chains(scale: &VerifyScale) -> Vec<Check> {
    let range = scale
        .full
        .iter()
        .map(|(k, m)| format!("K = {k}, M = 1..={m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let cases: Vec<(u32, u32)> = scale
        .full
        .iter()
        .flat_map(|&(k, max_m)| (1..=max_m).map(move |m| (m, k)))
        .collect();
    let zero = Rational::new();
    let chains: Vec<((u32, u32), FullChain<Rational>)> = cases
        .iter()
        .map(|&(m, k)| {
            let chain = FullChain::new(m, k, &zero).expect("within MAX_FULL_STATES");
            ((m, k), chain)
        })
        .collect();
    let mut checks = Vec::new();
    checks.push(run_check(
        "markov.md §1",
        "every row of the full chain sums to exactly 1; point masses absorb",
        range.clone(),
        chains.iter().map(|(mk, c)| (*mk, c)),
        |((_, _), c)| {
            for (i, state) in c.states().iter().enumerate() {
                let sum: Rational = (0..c.states().len()).map(|j| c.transition(i, j)).sum();
                ensure(sum == 1, || format!("row {state:?} sums to {sum}"))?;
                if FullChain::<Rational>::is_absorbing(state) {
                    ensure(*c.transition(i, i) == 1, || format!("{state:?} moves"))?;
                }
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §2",
        "each category's count in the full chain moves by the two-type chain (exact lumping)",
        range.clone(),
        chains.iter().map(|(mk, c)| (*mk, c)),
        |((m, k), c)| {
            let two = TwoTypeChain::exact(*m).expect("M <= MAX_EXACT_SAMPLES");
            for (i, state) in c.states().iter().enumerate() {
                for category in 0..*k as usize {
                    let mut marginal = vec![Rational::new(); *m as usize + 1];
                    for (j, next) in c.states().iter().enumerate() {
                        marginal[next[category] as usize] += c.transition(i, j);
                    }
                    for (l, p) in marginal.iter().enumerate() {
                        let expected = two.transition(state[category], l as u32);
                        ensure(p == expected, || {
                            format!("{state:?}, category {category}, count {l}")
                        })?;
                    }
                }
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §7",
        "heterozygosity recursion in the full chain: E[M^2 - sum c'^2 | c] = (1 - 1/M)(M^2 - sum c^2)",
        range.clone(),
        chains.iter().map(|(mk, c)| (*mk, c)),
        |((m, _), c)| {
            let homozygous = |s: &[u32]| s.iter().map(|&x| u64::from(x * x)).sum::<u64>();
            let mm = u64::from(m * m);
            for (i, state) in c.states().iter().enumerate() {
                let next: Rational = c
                    .states()
                    .iter()
                    .enumerate()
                    .map(|(j, s)| Rational::from(c.transition(i, j) * (mm - homozygous(s))))
                    .sum();
                let expected = q(u64::from(m - 1) * (mm - homozygous(state)), *m);
                ensure(next == expected, || format!("{state:?}: {next} != {expected}"))?;
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "markov.md §10",
        "the chain lumped by symmetry onto partitions sums the full chain's rows exactly",
        range.clone(),
        chains.iter().map(|(mk, c)| (*mk, c)),
        |((m, k), c)| {
            let lumped =
                FullChain::symmetric(*m, *k, &Rational::new()).map_err(|e| e.to_string())?;
            let index_of = |s: &[u32]| {
                let mut sorted = s.to_vec();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                lumped.states().iter().position(|p| *p == sorted)
            };
            for (a, partition) in lumped.states().iter().enumerate() {
                let i = c
                    .states()
                    .iter()
                    .position(|s| s == partition)
                    .ok_or_else(|| format!("{partition:?} is not a composition"))?;
                let mut sums = vec![Rational::new(); lumped.states().len()];
                for (j, next) in c.states().iter().enumerate() {
                    let b = index_of(next).ok_or_else(|| format!("{next:?} has no partition"))?;
                    sums[b] += c.transition(i, j);
                }
                for (b, sum) in sums.iter().enumerate() {
                    ensure(sum == lumped.transition(a, b), || {
                        format!("{partition:?} -> {:?}", lumped.states()[b])
                    })?;
                }
            }
            Ok(())
        },
    ));
    let small: Vec<&((u32, u32), FullChain<Rational>)> = chains
        .iter()
        .filter(|((m, k), _)| state_count(*m, *k).is_some_and(|s| s <= scale.full_times_max_states))
        .collect();
    checks.push(run_check(
        "markov.md §5, §10",
        "E[T] and E[T^2] of the symmetric chain equal the full chain's (exact linear solves)",
        format!(
            "the cases above with at most {} compositions",
            scale.full_times_max_states
        ),
        small.iter().map(|(mk, c)| (*mk, c)),
        |((m, k), c)| {
            let lumped =
                FullChain::symmetric(*m, *k, &Rational::new()).map_err(|e| e.to_string())?;
            let (t_full, s_full) = c.absorption_times();
            let (t_sym, s_sym) = lumped.absorption_times();
            for (a, partition) in lumped.states().iter().enumerate() {
                let i = c
                    .states()
                    .iter()
                    .position(|s| s == partition)
                    .expect("a composition");
                ensure(t_full[i] == t_sym[a] && s_full[i] == s_sym[a], || {
                    format!("{partition:?}: {} != {}", t_full[i], t_sym[a])
                })?;
            }
            Ok(())
        },
    ));
    checks
}

/// The Gamma-ratio recursions, checked on the enclosures `gaussian` computes: each identity
/// has an exact rational side, which the enclosure must contain (decided exactly).
pub fn verify_gaussian(scale: &VerifyScale) -> Vec<Check> {
    let prec = scale.gaussian_prec;
    let max_k = scale.gaussian_max_k;
    let range = format!("k = M - 1 = 1..={max_k}, both estimators, {prec} bits");
    let cases: Vec<(u64, Estimator)> = (1..=max_k)
        .flat_map(|k| [(k, Estimator::Unbiased), (k, Estimator::Mle)])
        .collect();
    let moment = |k: u64, estimator: Estimator, r: f64| -> Result<Ball, String> {
        let spec = GaussianSpec::new(Schedule::constant(k + 1), estimator, 1.0, 1)
            .map_err(|e| e.to_string())?;
        sigma_power_moment(&spec, r, 1, prec).map_err(|e| e.to_string())
    };
    let mut checks = Vec::new();
    checks.push(run_check(
        "gaussian.md §0 (Fact A)",
        "E[sigma_1^(2r)] = prod_{j<r} (k + 2j) / D^r for r = 1, 2, 3 (m_{r+1} = (k + 2r) m_r)",
        range.clone(),
        cases.iter().copied(),
        |&(k, estimator)| {
            let d = estimator.divisor(k + 1);
            let mut exact = Rational::from(1);
            for r in 1..=3u32 {
                exact *= q(k + 2 * u64::from(r - 1), d);
                let ball = moment(k, estimator, f64::from(r))?;
                ensure(ball.contains_rational(&exact), || {
                    format!("r = {r}: {} does not contain {exact}", ball.to_decimal(20))
                })?;
            }
            Ok(())
        },
    ));
    checks.push(run_check(
        "gaussian.md §0 (Fact A)",
        "half-integer moments: E[sigma_1^3] = ((k + 1)/D) E[sigma_1], and \
         (E[sigma] at k) (E[sigma] at k + 1) squared times D_k D_(k+1) is k^2",
        range.clone(),
        cases.iter().copied(),
        |&(k, estimator)| {
            let d = estimator.divisor(k + 1);
            let half = moment(k, estimator, 0.5)?;
            let three_halves = moment(k, estimator, 1.5)?;
            let ratio = three_halves.div(&half);
            ensure(ratio.contains_rational(&q(k + 1, d)), || {
                format!("E[s^3]/E[s] = {}", ratio.to_decimal(20))
            })?;
            let d_next = estimator.divisor(k + 2);
            let next = moment(k + 1, estimator, 0.5)?;
            let product = half
                .mul(&next)
                .square()
                .mul(&Ball::exact(prec, Integer::from(d) * d_next));
            ensure(product.contains_rational(&Rational::from(k * k)), || {
                format!("product = {}", product.to_decimal(20))
            })
        },
    ));
    checks.push(run_check(
        "gaussian.md §3",
        "digamma and trigamma recurrences at x = k/2: psi(x + 1) - psi(x) = 1/x and \
         psi'(x) - psi'(x + 1) = 1/x^2",
        format!("k = 1..={max_k}, {prec} bits"),
        1..=max_k,
        |&k| {
            let (x, x1) = (exact_arg(k, 0.0), exact_arg(k, 1.0));
            let psi = digamma(prec, &x1).sub(&digamma(prec, &x));
            ensure(psi.contains_rational(&q(2, k)), || {
                format!("psi step {}", psi.to_decimal(20))
            })?;
            let tri = trigamma(prec, &x).sub(&trigamma(prec, &x1));
            ensure(tri.contains_rational(&q(4, k * k)), || {
                format!("trigamma step {}", tri.to_decimal(20))
            })
        },
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick scale passes every check, each over the instances it names.
    #[test]
    fn quick_verification_passes() {
        let scale = VerifyScale::quick();
        let checks: Vec<Check> = verify_markov(&scale)
            .into_iter()
            .chain(verify_gaussian(&scale))
            .collect();
        assert_eq!(checks.len(), 15);
        for c in &checks {
            assert!(c.passed(), "{}: {:?}", c.statement, c.failures);
            assert!(c.instances > 0, "{}", c.statement);
        }
    }

    /// A check can fail: a wrong exact side (fixation k/(M+1)) is caught on every M >= 2 and
    /// its counterexamples are reported (at most MAX_REPORTED).
    #[test]
    fn a_false_claim_fails() {
        let check = run_check(
            "test",
            "fixation is k/(M+1) (false)",
            String::new(),
            1..=6u32,
            |&m| {
                let c = TwoTypeChain::exact(m).unwrap();
                let b = c.fixation_probabilities();
                ensure(b[1] == q(1, m + 1), || format!("{}", b[1]))
            },
        );
        assert!(!check.passed());
        assert_eq!(check.instances, 6);
        assert_eq!(check.failures.len(), MAX_REPORTED);
    }
}
