use super::*;

fn r(num: i64, den: i64) -> Rational {
    Rational::from((num, den))
}

#[test]
fn rows_sum_to_one_and_ends_absorb() {
    for m in 1..=12 {
        let chain = TwoTypeChain::exact(m).unwrap();
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
        let chain = TwoTypeChain::exact(m).unwrap();
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
        let b = TwoTypeChain::exact(m).unwrap().fixation_probabilities();
        for (j, bj) in b.iter().enumerate() {
            assert_eq!(*bj, Rational::from((j as u32, m)), "M = {m}, j = {j}");
        }
    }
}

#[test]
fn two_genes_absorb_geometrically() {
    // M = 2 from count 1: stay with probability 1/2, so T ~ Geometric(1/2): E[T] = 2,
    // E[T^2] = (2 - p)/p^2 = 6.
    let times = TwoTypeChain::exact(2).unwrap().absorption_times();
    assert_eq!(times.mean, vec![r(0, 1), r(2, 1), r(0, 1)]);
    assert_eq!(times.second_moment, vec![r(0, 1), r(6, 1), r(0, 1)]);
}

#[test]
fn absorption_time_satisfies_first_step_equations() {
    // t_j = 1 + sum_l P(j, l) t_l for transient j (an independent route to N 1), and
    // E[T^2]_j = 1 + sum_l P(j, l) (2 t_l + E[T^2]_l).
    for m in 2..=10u32 {
        let chain = TwoTypeChain::exact(m).unwrap();
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
        let t = TwoTypeChain::exact(m).unwrap().absorption_times();
        t.mean[(m / 2) as usize].to_f64()
    };
    assert!((exact(10) - 12.591).abs() < 1e-3, "{}", exact(10));
    let gap = |m: u32| 1.0 - exact(m) / diffusion_absorption_time(m, &[0.5, 0.5]);
    let (g10, g40) = (gap(10), gap(40));
    assert!(g10 > 0.0 && g40 > 0.0 && g40 < g10 / 2.0, "{g10} {g40}");
}

#[test]
fn loss_by_one_generation_is_one_minus_q_to_the_m() {
    let chain = TwoTypeChain::exact(12).unwrap();
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
    let chain = TwoTypeChain::exact(30).unwrap();
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
        let chain = TwoTypeChain::exact(m).unwrap();
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
    assert!(TwoTypeChain::exact(0).is_err());
    assert!(TwoTypeChain::exact(MAX_EXACT_SAMPLES + 1).is_err());
}

#[test]
fn enclosures_contain_the_exact_values() {
    // The ball route (float solve + a-posteriori bound) against the rational route.
    for m in [2u32, 3, 7, 20] {
        let exact = TwoTypeChain::exact(m).unwrap().absorption_times();
        let enclosed = TwoTypeChain::enclosed(m, 128).unwrap().absorption_times();
        for j in 0..=m as usize {
            for (e, b) in [
                (&exact.mean[j], &enclosed.mean[j]),
                (&exact.second_moment[j], &enclosed.second_moment[j]),
            ] {
                let x = Float::with_val(256, e);
                assert!(b.contains(&x), "M = {m}, j = {j}: {b:?} vs {e}");
                assert!(
                    b.certified_digits() >= 30 || *e == 0,
                    "M = {m}, j = {j}: {b:?}"
                );
            }
        }
        // Loss probabilities: balls around the rationals.
        let q = r(1, 3);
        let chain_q = TwoTypeChain::exact(m).unwrap();
        let chain_b = TwoTypeChain::enclosed(m, 128).unwrap();
        let lost_q = loss_probabilities(&chain_q, &q, 5);
        let lost_b = loss_probabilities(&chain_b, &Ball::exact(128, q.clone()), 5);
        for (e, b) in lost_q.iter().zip(&lost_b) {
            assert!(
                b.contains(&Float::with_val(256, e)),
                "M = {m}: {b:?} vs {e}"
            );
        }
    }
}

#[test]
fn enclosed_times_match_the_reference_table() {
    // THEORY-NOTES §2.7 (K = 2, exact fundamental matrix, an independent float computation):
    // M = 50, j = 25: 67.517; M = 200, j = 100: 275.00; M = 200, j = 1: 11.936.
    let t50 = TwoTypeChain::enclosed(50, 128).unwrap().absorption_times();
    assert!((t50.mean[25].to_f64() - 67.517).abs() < 1e-3);
    let t200 = TwoTypeChain::enclosed(200, 128).unwrap().absorption_times();
    assert!((t200.mean[100].to_f64() - 275.00).abs() < 1e-2);
    assert!((t200.mean[1].to_f64() - 11.936).abs() < 1e-3);
    assert!(t200.mean[100].certified_digits() >= 30);
}

/// The refined double-precision solve agrees with the multiprecision LU to the working
/// precision on a well-conditioned system, and an ill-conditioned one (Hilbert, n = 14,
/// cond ~ 1e19 > 2^53) falls back to the multiprecision LU and still solves it.
#[test]
fn refined_solves_match_the_multiprecision_lu() {
    let prec = 200;
    let exact = |num: i64, den: i64| Float::with_val(prec, num) / den;
    // A = I - Q for a random-walk block: diagonally dominant.
    let n = 40;
    let well: Vec<Vec<Float>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|k| {
                    if i == k {
                        exact(1, 1)
                    } else {
                        -exact(((i * 7 + k * 3) % 11) as i64, 11 * n as i64)
                    }
                })
                .collect()
        })
        .collect();
    let hilbert: Vec<Vec<Float>> = (0..14)
        .map(|i| (0..14).map(|k| exact(1, (i + k + 1) as i64)).collect())
        .collect();
    for (a, refined_expected) in [(well, true), (hilbert, false)] {
        let b: Vec<Float> = (0..a.len()).map(|i| exact(i as i64 + 1, 3)).collect();
        let solver = Solver::new(a.clone());
        assert_eq!(solver.refined(&b).is_some(), refined_expected);
        let x = solver.solve(&b);
        let reference = Lu::factor(a.clone()).solve(&b);
        for (xi, ri) in x.iter().zip(&reference) {
            let gap = Float::with_val(prec, xi - ri).abs();
            let scale = Float::with_val(prec, ri).abs();
            // Well-conditioned: 2^-(prec - 40) relative; Hilbert: the LU itself.
            assert!(
                gap <= scale * Float::with_val(prec, Float::u_exp(1, 40 - prec as i32)),
                "{xi} vs {ri}"
            );
        }
    }
}
