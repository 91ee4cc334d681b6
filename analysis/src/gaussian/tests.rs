use super::*;
use rug::Float;
use rug::Rational;
use statrs::function::gamma::ln_gamma as ln_gamma_f64;

fn spec(schedule: &str, m: Option<u64>, est: Estimator, sigma: f64, n: u64) -> GaussianSpec {
    GaussianSpec::new(Schedule::parse(m, schedule).unwrap(), est, sigma, n).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn sigma_moments_two_routes() {
    for est in [Estimator::Unbiased, Estimator::Mle] {
        let s = spec("power:1.5", Some(7), est, 1.7, 12);
        let t = theory_at_precision(&s, 200);
        for n in [0u64, 1, 5, 12] {
            // Route 1: cumulative products of step factors; route 2: one sum of lnGamma terms.
            let direct = sigma_power_moment(&s, 0.5, n, 300).unwrap();
            assert!(
                t.rows[n as usize].expected_sigma.contains(direct.mid()),
                "n={n}"
            );
            // Route 3: f64 with statrs' lnGamma.
            let f64_route = s.sample_sizes()[..n as usize]
                .iter()
                .map(|&m| {
                    let k = (m - 1) as f64;
                    let d = est.divisor(m) as f64;
                    0.5 * (2.0 / d).ln() + ln_gamma_f64(k / 2.0 + 0.5) - ln_gamma_f64(k / 2.0)
                })
                .sum::<f64>();
            assert!(close(
                t.rows[n as usize].expected_sigma.to_f64(),
                1.7 * f64_route.exp(),
                1e-12
            ));
        }
        // E[sigma_n^4] from the recursion equals the r = 2 moment.
        let m4 = sigma_power_moment(&s, 2.0, 12, 300).unwrap();
        let var_sigma2 = m4.to_f64() - t.rows[12].expected_variance.to_f64().powi(2);
        assert!(var_sigma2 > 0.0);
    }
    // Infinite moments are refused.
    let s = spec("constant", Some(5), Estimator::Unbiased, 1.0, 3);
    assert!(sigma_power_moment(&s, -2.0, 3, 64).is_err());
    assert!(sigma_power_moment(&s, -1.9, 3, 64).is_ok());
}

#[test]
fn first_generation_matches_chi_square() {
    for (m, est) in [
        (10u64, Estimator::Unbiased),
        (10, Estimator::Mle),
        (2, Estimator::Unbiased),
        (1001, Estimator::Mle),
    ] {
        let sigma = 2.5;
        let s = spec("constant", Some(m), est, sigma, 1);
        let t = theory_at_precision(&s, 256);
        let row = &t.rows[1];
        let k = m - 1;
        let d = est.divisor(m);
        let s2 = Rational::from((25, 4));
        // E[sigma_1^2] = sigma^2 k / D, E[(mu_1 - mu)^2] = sigma^2 / M (exact rationals).
        let ev = Float::with_val(512, &s2 * Rational::from((k, d)));
        assert!(row.expected_variance.contains(&ev));
        let mse = Float::with_val(512, &s2 / Rational::from(m));
        assert!(row.mean_sq_error.contains(&mse));
        assert!(row.w2_sq_lower_bound.contains(&mse));
        // Var[ln sigma_1^2] = psi'(k/2): the exact half-integer form.
        let tri = crate::special::trigamma_half_integer_exact(400, k);
        assert!(row.var_log_variance.contains(tri.mid()));
        // E[W2^2] = E A + E sigma^2 - 2 sigma E sigma + sigma^2 with E sigma from statrs.
        let e_sigma = sigma
            * ((2.0 / d as f64).sqrt()
                * (ln_gamma_f64(m as f64 / 2.0) - ln_gamma_f64(k as f64 / 2.0)).exp());
        let w2 = sigma * sigma / m as f64 + sigma * sigma * k as f64 / d as f64
            - 2.0 * sigma * e_sigma
            + sigma * sigma;
        assert!(
            close(row.expected_w2_sq.to_f64(), w2, 1e-9),
            "{} vs {w2}",
            row.expected_w2_sq.to_f64()
        );
    }
}

#[test]
fn unbiased_variance_is_martingale() {
    let s = spec("power:1.3", Some(3), Estimator::Unbiased, 0.7, 40);
    let t = theory_at_precision(&s, 128);
    let exact = Float::with_val(256, 0.7f64) * Float::with_val(256, 0.7f64);
    for row in &t.rows {
        assert!(row.expected_variance.contains(&exact), "n={}", row.n);
    }
    // And the error of the mean is sigma^2 sum 1/M_i exactly.
    let mut sum = Rational::new();
    for (i, &m) in s.sample_sizes().iter().enumerate() {
        sum += Rational::from((1, m));
        let v = Float::with_val(512, &sum) * &exact;
        assert!(t.rows[i + 1].mean_sq_error.contains(&v));
    }
}

#[test]
fn mle_variance_decays_geometrically() {
    let m = 20u64;
    let s = spec("constant", Some(m), Estimator::Mle, 1.0, 300);
    let t = theory_at_precision(&s, 128);
    for n in [1u64, 30, 300] {
        let q = Rational::from((m - 1, m));
        let exact = Float::with_val(
            2000,
            Rational::from(q.numer().clone().pow(n as u32))
                / Rational::from(q.denom().clone().pow(n as u32)),
        );
        assert!(
            t.rows[n as usize].expected_variance.contains(&exact),
            "n={n}"
        );
        // MSE of the mean telescopes to sigma^2 (1 - (1-1/M)^n).
        let mse = Float::with_val(2000, 1u32) - &exact;
        assert!(t.rows[n as usize].mean_sq_error.contains(&mse));
    }
    // MLE E[W2^2] -> 2 sigma^2 (and the limit function says so).
    let lim = w2_limit(&s.schedule, Estimator::Mle, 1.0, 0, 128).unwrap();
    assert!(lim.bounded);
    assert!(lim.limit.unwrap().contains(&Float::with_val(64, 2u32)));
    assert!(t.rows[300].expected_w2_sq.to_f64() < 2.0);
}

#[test]
fn log_moments_match_half_integer_forms() {
    let s = spec("list:2,3,10,11,100", None, Estimator::Unbiased, 3.0, 9);
    let t = theory_at_precision(&s, 160);
    let mut elog = Ball::from_f64(400, 9.0).ln();
    let mut var = Ball::exact(400, 0);
    for (i, &m) in s.sample_sizes().iter().enumerate() {
        let k = m - 1;
        let ln_two_c = Ball::exact(400, Rational::from((2, k))).ln();
        elog = elog
            .add(&crate::special::digamma_half_integer_exact(400, k))
            .add(&ln_two_c);
        var = var.add(&crate::special::trigamma_half_integer_exact(400, k));
        assert!(
            t.rows[i + 1].expected_log_variance.contains(elog.mid()),
            "n={}",
            i + 1
        );
        assert!(
            t.rows[i + 1].var_log_variance.contains(var.mid()),
            "n={}",
            i + 1
        );
    }
    // The drift is negative: sigma_n -> 0 almost surely.
    assert!(t.rows[9].expected_log_variance.to_f64() < 9f64.ln());
}

/// Var[W2^2] from the double sums of proofs/gaussian.md (E[A^2], E[AB], E[B^2]), evaluated with
/// plain 256-bit MPFR floats: a different formula from the recursion in `theory_at_precision`.
fn var_w2_double_sum(sizes: &[u64], est: Estimator, sigma: f64) -> f64 {
    const P: u32 = 256;
    let n = sizes.len();
    let fl = |x: f64| Float::with_val(P, x);
    let ln_m = |r: f64, m: u64| {
        let k = (m - 1) as f64;
        let d = est.divisor(m) as f64;
        let lg = |x: f64| Float::with_val(P, fl(x).ln_gamma_ref());
        fl(r) * (Float::with_val(P, 2u32) / d).ln() + lg(k / 2.0 + r) - lg(k / 2.0)
    };
    let ln_sigma = Float::with_val(P, fl(sigma).ln_ref());
    // E[sigma_i^{2a} sigma_j^{2b}] for i <= j.
    let joint = |i: usize, a: f64, j: usize, b: f64| {
        let mut l = Float::with_val(P, &ln_sigma * (2.0 * (a + b)));
        for &m in &sizes[..i] {
            l += ln_m(a + b, m);
        }
        for &m in &sizes[i..j] {
            l += ln_m(b, m);
        }
        l.exp()
    };
    let mut ea2 = fl(0.0);
    for i in 0..n {
        for j in 0..n {
            let (lo, hi) = (i.min(j), i.max(j));
            ea2 += joint(lo, 1.0, hi, 1.0) * 3u32 / Float::with_val(P, sizes[i] * sizes[j]);
        }
    }
    let s = fl(sigma);
    let mut eab = fl(0.0);
    for (i, &m) in sizes.iter().enumerate() {
        let term = joint(i, 1.0, n, 1.0) - Float::with_val(P, &s * 2u32) * joint(i, 1.0, n, 0.5)
            + Float::with_val(P, &s * &s) * joint(i, 1.0, i, 0.0);
        eab += term / m;
    }
    let e = |r: f64| joint(n, r, n, 0.0);
    let s2 = Float::with_val(P, &s * &s);
    let eb2 = e(2.0) - Float::with_val(P, &s * 4u32) * e(1.5)
        + Float::with_val(P, &s2 * 6u32) * e(1.0)
        - Float::with_val(P, &s2 * &s) * 4u32 * e(0.5)
        + Float::with_val(P, &s2 * &s2);
    let mut ea = fl(0.0);
    for (i, &m) in sizes.iter().enumerate() {
        ea += joint(i, 1.0, i, 0.0) / m;
    }
    let ew2 = ea + e(1.0) - Float::with_val(P, &s * 2u32) * e(0.5) + &s2;
    (ea2 + eab * 2u32 + eb2 - Float::with_val(P, &ew2 * &ew2)).to_f64()
}

#[test]
fn var_w2_matches_double_sum() {
    for (sched, m, est, sigma, n) in [
        ("constant", 100u64, Estimator::Unbiased, 1.0, 20u64),
        ("constant", 50, Estimator::Mle, 1.0, 20),
        ("power:1.5", 20, Estimator::Unbiased, 1.3, 15),
        ("constant", 1000, Estimator::Unbiased, 0.5, 10),
    ] {
        let s = spec(sched, Some(m), est, sigma, n);
        let t = theory_at_precision(&s, 200);
        let direct = var_w2_double_sum(&s.sample_sizes(), est, sigma);
        let exact = t.rows[n as usize].var_w2_sq.to_f64();
        assert!(
            close(exact, direct, 1e-25),
            "{sched} M={m}: {exact} vs {direct}"
        );
    }
}

#[test]
fn large_sample_limit() {
    // M -> infinity: E[W2^2] ~ (3/2) sigma^2 n / M, Var[W2^2] ~ (5/2) sigma^4 (n/M)^2,
    // E[sigma_n] -> sigma.
    let m = 1_000_000_000u64;
    let s = spec("constant", Some(m), Estimator::Unbiased, 2.0, 7);
    let t = theory_at_precision(&s, 256);
    let first = 1.5 * 4.0 * 7.0 / m as f64;
    assert!(close(t.rows[7].expected_w2_sq.to_f64(), first, 1e-6));
    let var_first = 2.5 * 16.0 * (7.0 / m as f64).powi(2);
    assert!(close(t.rows[7].var_w2_sq.to_f64(), var_first, 1e-5));
    assert!(close(t.rows[7].expected_sigma.to_f64(), 2.0, 1e-8));
}

#[test]
fn feasibility_formula() {
    let s = spec("constant", Some(10), Estimator::Unbiased, 1.0, 200);
    let t = theory_at_precision(&s, 128);
    let rv = t.rows[200].feasibility.variance;
    let formula = (11.0f64 / 9.0).powi(200) - 1.0;
    assert!(close(rv, formula, 1e-10), "{rv} vs {formula}");
    assert!(rv > 1e17);
    assert!(!t.rows[200].feasibility.variance_ok(10_000_000));
    // log-moment at n = 200 has small variance relative to nothing heavy: always estimable.
    assert!(t.rows[1].feasibility.variance_ok(1000));
    assert!(close(
        Feasibility::chains_needed(1.72, 0.01),
        17_200.0,
        1e-12
    ));
    // MLE relative variance of sigma^2 is the same product (c_i cancels).
    let s = spec("constant", Some(10), Estimator::Mle, 1.0, 30);
    let t = theory_at_precision(&s, 128);
    assert!(close(
        t.rows[30].feasibility.variance,
        (11.0f64 / 9.0).powi(30) - 1.0,
        1e-10
    ));
}

#[test]
fn radius_covers_high_precision_value() {
    for est in [Estimator::Unbiased, Estimator::Mle] {
        let s = spec("linear", Some(4), est, 1.9, 60);
        let low = theory_at_precision(&s, 64);
        let high = theory_at_precision(&s, 512);
        for (a, b) in low.rows.iter().zip(&high.rows) {
            for ((name, x), (_, y)) in a.named().iter().zip(b.named().iter()) {
                assert!(
                    x.contains(y.mid()),
                    "{name} n={}: {:?} vs {:?}",
                    a.n,
                    x,
                    y.mid()
                );
            }
        }
    }
    // The automatic precision reaches the requested digits.
    let s = spec("constant", Some(100), Estimator::Unbiased, 1.0, 2000);
    let t = theory(&s, 30).unwrap();
    assert!(t.min_certified_digits() >= 30);
    assert!(theory(&s, 0).is_err());
}

#[test]
fn limit_enclosure_contains_long_partial_sums() {
    for (sched, est) in [
        ("power:2", Estimator::Unbiased),
        ("geometric:1.5", Estimator::Unbiased),
        ("power:1.5", Estimator::Mle),
    ] {
        let schedule = Schedule::parse(Some(10), sched).unwrap();
        let lim = w2_limit(&schedule, est, 1.0, 2000, 160).unwrap();
        assert!(lim.bounded);
        let limit = lim.limit.unwrap();
        assert!(limit.certified_digits() >= 5, "{sched}: {limit:?}");
        // E[W2^2_n] increases towards the limit from below.
        let n = if sched.starts_with("geometric") {
            70
        } else {
            3000
        };
        let s = GaussianSpec::new(schedule.clone(), est, 1.0, n).unwrap();
        let t = theory_at_precision(&s, 128);
        let partial = t.rows[n as usize].expected_w2_sq.to_f64();
        assert!(partial <= limit.upper().to_f64() + 1e-15, "{sched}");
        assert!(
            limit.to_f64() - partial < 0.02 * limit.to_f64(),
            "{sched}: {partial} vs {}",
            limit.to_f64()
        );
    }
    // Divergent schedules are reported unbounded for the unbiased estimator.
    for sched in ["constant", "linear", "power:1"] {
        let s = Schedule::parse(Some(10), sched).unwrap();
        assert!(
            !w2_limit(&s, Estimator::Unbiased, 1.0, 100, 64)
                .unwrap()
                .bounded
        );
    }
    // zeta(2)/M for power:2 (THEORY-NOTES: 0.016449 at M0 = 100).
    let s = Schedule::parse(Some(100), "power:2").unwrap();
    let lim = w2_limit(&s, Estimator::Unbiased, 1.0, 1000, 128).unwrap();
    let pi = std::f64::consts::PI;
    // ceil has no effect for integer exponents, so the sum is exactly zeta(2)/100.
    assert!((lim.sum_inverse_sizes.unwrap().to_f64() - pi * pi / 600.0).abs() < 1e-9);
}

/// Two enclosures of the same value intersect: |mid_a - mid_b| <= rad_a + rad_b, decided in
/// exact rationals.
fn overlap(a: &Ball, b: &Ball) -> bool {
    let mid = |x: &Ball| x.mid().to_rational().expect("finite");
    let rad = |x: &Ball| x.rad().to_rational().expect("finite");
    (mid(a) - mid(b)).abs() <= rad(a) + rad(b)
}

/// `certified_at_generation` (one generation, O(log n) work per distinct size) against row n of
/// `theory` (the generation-by-generation recursion): the balls intersect and both certify the
/// digits; each quantity alone agrees too. Constant M = 2, 10, 100 and 10^6 (lnGamma/digamma
/// route: above the exact-form limits), power:1.5 and a list with a repeated size, both
/// estimators.
#[test]
fn certified_at_generation_matches_theory_rows() {
    let digits = 30;
    for est in [Estimator::Unbiased, Estimator::Mle] {
        for (schedule, m, sigma) in [
            ("constant", Some(2), 1.0),
            ("constant", Some(10), 1.5),
            ("constant", Some(100), 1.0),
            ("constant", Some(1_000_000), 0.75),
            ("power:1.5", Some(3), 1.25),
            ("list:5,9,9,5,40", None, 2.0),
        ] {
            let s = spec(schedule, m, est, sigma, 50);
            let t = theory(&s, digits).unwrap();
            for n in [0u64, 1, 7, 50] {
                let c = certified_at_generation(&s, n, digits).unwrap();
                assert_eq!(c.n, n);
                let row = &t.rows[n as usize];
                let label = format!("{schedule} M={m:?} {est:?} n={n}");
                for (q, ours) in c.named() {
                    let theirs = row
                        .named()
                        .iter()
                        .find(|(name, _)| *name == q.name())
                        .map(|(_, b)| (*b).clone())
                        .unwrap();
                    assert!(
                        overlap(ours, &theirs),
                        "{label} {q:?}: {ours:?} vs {theirs:?}"
                    );
                    assert!(ours.certified_digits() >= digits, "{label} {q:?}: {ours:?}");
                    assert!(theirs.certified_digits() >= digits, "{label} {q:?}");
                    let alone = certified_quantity_at_generation(&s, n, q, digits).unwrap();
                    assert!(overlap(&alone, &theirs), "{label} {q:?} alone");
                    assert!(alone.certified_digits() >= digits, "{label} {q:?} alone");
                }
            }
        }
    }
}

/// The benchmark case: M = 100, n = 10^4, unbiased, 1000 digits. E[sigma_n] against
/// `sigma_power_moment` (a sum of 10^4 lnGamma differences), E[W2^2] against
/// n/M + 2 - 2 E[sigma_n] (the unbiased closed form with sigma = 1) and E[ln sigma_n^2] against
/// n (psi(99/2) + ln(2/99)) through MPFR's digamma.
#[test]
fn thousand_digits_at_ten_thousand_generations() {
    let n = 10_000u64;
    let s = spec("constant", Some(100), Estimator::Unbiased, 1.0, n);
    let c = certified_at_generation(&s, n, 1000).unwrap();
    assert!(
        c.min_certified_digits() >= 1000,
        "{}",
        c.min_certified_digits()
    );
    let prec = c.precision_bits + 64;
    let sigma_n = sigma_power_moment(&s, 0.5, n, prec).unwrap();
    assert!(overlap(&c.expected_sigma, &sigma_n));
    let w2 = Ball::exact(prec, Rational::from((n, 100)))
        .add(&Ball::exact(prec, 2))
        .sub(&sigma_n.mul_f64(2.0));
    assert!(overlap(&c.expected_w2_sq, &w2));
    let drift = crate::special::digamma(prec, &exact_arg(99, 0.0))
        .add(&Ball::exact(prec, Rational::from((2, 99))).ln());
    assert!(overlap(
        &c.expected_log_variance,
        &drift.mul(&Ball::exact(prec, n))
    ));
    // Leading digits (python-flint's arb at 40 digits, as `benches/peers/certify_peers.py`).
    for (ball, leading) in [
        (&c.expected_sigma, "1.079329633555678756629040"),
        (&c.expected_log_variance, "-101.3501884827283484661672"),
        (&c.expected_w2_sq, "101.9999999999784134073288"),
    ] {
        assert!(
            ball.to_decimal(40).starts_with(leading),
            "{}",
            ball.to_decimal(40)
        );
    }
}

/// The exact half-integer forms of E[X^(1/2)] and of the drift agree with the MPFR lnGamma
/// and digamma routes of `step_factors`, for small and large, odd and even k.
#[test]
fn half_integer_step_factors_match_mpfr() {
    for prec in [64u32, 300, 3000] {
        for m in [2u64, 3, 4, 5, 10, 100, 101, 1000, 4097] {
            for est in [Estimator::Unbiased, Estimator::Mle] {
                let (k, d) = (m - 1, est.divisor(m));
                let ln_two_c = ln_two_over_divisor(prec, d);
                let exact = sqrt_mean_half_integer(prec, k, d);
                let mpfr = sqrt_mean_by_ln_gamma(prec, k, &ln_two_c);
                assert!(overlap(&exact, &mpfr), "m={m} prec={prec} {est:?}");
                assert!(exact.certified_digits() + 2 >= mpfr.certified_digits());
                let exact = crate::special::digamma_half_integer_exact(prec, k).add(&ln_two_c);
                let mpfr = drift_by_digamma(prec, k, &ln_two_c);
                assert!(overlap(&exact, &mpfr), "drift m={m} prec={prec} {est:?}");
            }
        }
    }
}

/// (q^L, sum_{j<L} q^j) by doubling equals the direct sum (exactly for q = 1 and q = 1/2
/// within the precision), for L = 0..40 and a large L.
#[test]
fn power_and_geometric_sum_matches_direct() {
    let prec = 200;
    for q in [
        Rational::from(1),
        Rational::from((1, 2)),
        Rational::from((99, 100)),
        Rational::from((7, 3)),
    ] {
        let qb = Ball::exact(prec, q.clone());
        for len in (0u64..=40).chain([1000]) {
            let (p, g) = power_and_geometric_sum(&qb, len);
            let mut power = Rational::from(1);
            let mut sum = Rational::new();
            for _ in 0..len {
                sum += &power;
                power *= &q;
            }
            assert!(p.contains_rational(&power), "q={q} L={len}");
            assert!(g.contains_rational(&sum), "q={q} L={len}");
            if q == 1 {
                assert!(g.rad().is_zero() && *g.mid() == len, "exact for q = 1");
            }
        }
    }
}

#[test]
fn size_runs_group_equal_sizes() {
    let runs = |schedule: &str, m: Option<u64>, n: u64| {
        size_runs(&Schedule::parse(m, schedule).unwrap(), n)
    };
    assert_eq!(runs("constant", Some(100), 10_000), vec![(100, 10_000)]);
    assert_eq!(runs("constant", Some(100), 0), vec![]);
    assert_eq!(runs("list:5,7,7,3", None, 6), vec![(5, 1), (7, 2), (3, 3)]);
    assert_eq!(runs("list:5,7,7,3", None, 2), vec![(5, 1), (7, 1)]);
    assert_eq!(runs("list:5,5", None, 9), vec![(5, 9)]);
    // Other schedules: the run-length encoding of their sizes.
    for (schedule, m) in [("power:0.5", 2u64), ("linear", 3), ("geometric:1", 4)] {
        let sched = Schedule::parse(Some(m), schedule).unwrap();
        let expanded: Vec<u64> = runs(schedule, Some(m), 30)
            .iter()
            .flat_map(|&(size, count)| std::iter::repeat_n(size, count as usize))
            .collect();
        assert_eq!(expanded, sched.sizes(30).unwrap(), "{schedule}");
    }
    assert_eq!(runs("geometric:1", Some(4), 30), vec![(4, 30)]);
}

#[test]
fn certified_at_generation_refuses_bad_input() {
    let s = spec("constant", Some(10), Estimator::Unbiased, 1.0, 5);
    assert!(certified_at_generation(&s, 6, 10).is_err());
    assert!(certified_at_generation(&s, 5, 0).is_err());
    assert!(certified_at_generation(&s, 5, crate::MAX_DIGITS + 1).is_err());
    assert!(
        certified_quantity_at_generation(&s, 6, GenerationQuantity::ExpectedSigma, 10).is_err()
    );
    // n = 0: the truth itself, exactly.
    let c = certified_at_generation(&s, 0, 10).unwrap();
    assert!(c.expected_w2_sq.rad().is_zero() && c.expected_w2_sq.mid().is_zero());
    assert_eq!(c.expected_sigma.to_f64(), 1.0);
}
