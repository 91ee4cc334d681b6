use super::*;
use crate::gaussian::{self, Estimator, GaussianSpec, sigma_power_moment};
use crate::special::{digamma_half_integer_exact, trigamma_half_integer_exact};
use rug::Float;

fn spec(dim: u64, schedule: &str, m: u64, cov: Option<Vec<f64>>, n: u64) -> MvnSpec {
    MvnSpec::new(dim, Schedule::parse(Some(m), schedule).unwrap(), cov, n).unwrap()
}

/// Two enclosures of the same exact value must intersect.
fn overlap(a: &Ball, b: &Ball) -> bool {
    let gap = Float::with_val(a.prec().max(b.prec()) + 64, a.mid() - b.mid()).abs();
    let rad = Float::with_val(128, a.rad() + b.rad());
    gap <= rad
}

#[test]
fn one_dimension_reproduces_the_gaussian_module() {
    for (schedule, m) in [("constant", 7u64), ("power:1.5", 5), ("list:3,9,2,40", 3)] {
        let sigma = 1.5f64; // sigma^2 is exact in f64, so both specs hold the same Sigma
        let mvn = spec(1, schedule, m, Some(vec![sigma * sigma]), 9);
        let one = GaussianSpec::new(
            Schedule::parse(Some(m), schedule).unwrap(),
            Estimator::Unbiased,
            sigma,
            9,
        )
        .unwrap();
        let prec = 256;
        let t = theory_at_precision(&mvn, prec);
        let g = gaussian::theory_at_precision(&one, prec);
        for (r, s) in t.rows.iter().zip(&g.rows) {
            let pairs = [
                (&r.mean_sq_error, &s.mean_sq_error),
                (&r.expected_trace, &s.expected_variance),
                (&r.expected_log_det, &s.expected_log_variance),
                (&r.var_log_det, &s.var_log_variance),
                (&r.w2_sq_lower_bound, &s.w2_sq_lower_bound),
            ];
            for (a, b) in pairs {
                assert!(overlap(a, b), "{schedule} n={}", r.n);
                assert_eq!(a.to_decimal(40), b.to_decimal(40), "{schedule} n={}", r.n);
            }
            // In one dimension tr(Sigma^2) = (tr Sigma)^2 = sigma^4: the r = 2 moment by lnGamma.
            let m4 = sigma_power_moment(&one, 2.0, r.n, prec).unwrap();
            assert!(overlap(&r.expected_trace_of_square, &m4), "n={}", r.n);
            assert!(overlap(&r.expected_square_of_trace, &m4), "n={}", r.n);
        }
    }
}

#[test]
fn log_det_matches_the_half_integer_forms() {
    // An independent route: psi and psi' at half-integers from their finite sums.
    let (d, n) = (4usize, 6u64);
    let s = spec(
        d as u64,
        "list:5,6,9,30",
        5,
        Some(vec![2.0, 0.5, 3.0, 1.25]),
        n,
    );
    let prec = 200;
    let t = theory_at_precision(&s, prec);
    let mut e = Ball::exact(prec, Rational::from(2 * 5 * 15) / 40).ln(); // det = 3.75
    let mut v = Ball::exact(prec, 0);
    for (i, &m) in s.sample_sizes().iter().enumerate() {
        let k = m - 1;
        for j in 0..d as u64 {
            e = e
                .add(&digamma_half_integer_exact(prec, k - j))
                .add(&Ball::exact(prec, Rational::from((2, k))).ln());
            v = v.add(&trigamma_half_integer_exact(prec, k - j));
        }
        assert!(overlap(&t.rows[i + 1].expected_log_det, &e), "n={}", i + 1);
        assert!(overlap(&t.rows[i + 1].var_log_det, &v), "n={}", i + 1);
    }
}

#[test]
fn mean_error_is_the_exact_rational() {
    let cov = vec![2.0, 0.5, 3.0];
    let s = spec(3, "list:4,7,100,5", 4, Some(cov), 8);
    let t = theory_at_precision(&s, 128);
    let mut sum = Rational::new();
    for (i, &m) in s.sample_sizes().iter().enumerate() {
        sum += Rational::from((1, m));
        let exact = Rational::from(11) / 2 * &sum;
        assert!(t.rows[i + 1].mean_sq_error.contains_rational(&exact));
    }
    assert!(t.rows[0].mean_sq_error.contains_rational(&Rational::new()));
}

#[test]
fn wishart_second_moments_match_exact_rationals() {
    // One step from Sigma: E tr(S^2) and E (tr S)^2 for S = W/k, W ~ Wishart(Sigma, k), written
    // out entrywise: E[S_ab^2] = (Sigma_aa Sigma_bb + Sigma_ab^2)/k + Sigma_ab^2, and
    // Cov(S_aa, S_bb) = 2 Sigma_ab^2 / k, here with a diagonal Sigma.
    let cov = [2.0f64, 0.5, 3.0];
    let m = 6u64;
    let k = Rational::from(m - 1);
    let s = spec(3, "constant", m, Some(cov.to_vec()), 1);
    let t = theory_at_precision(&s, 128);
    let sig: Vec<Rational> = cov
        .iter()
        .map(|&c| Rational::from_f64(c).unwrap())
        .collect();
    let mut tr_sq = Rational::new();
    let mut sq_tr = Rational::new();
    for a in 0..3 {
        for b in 0..3 {
            let cross = Rational::from(&sig[a] * &sig[b]);
            let same = if a == b {
                sig[a].clone()
            } else {
                Rational::new()
            };
            let same_sq = Rational::from(&same * &same);
            tr_sq += Rational::from(&cross + &same_sq) / &k + &same_sq;
            sq_tr += if a == b {
                Rational::from(&same_sq * 2u32) / &k + &cross
            } else {
                cross
            };
        }
    }
    assert!(t.rows[1].expected_trace_of_square.contains_rational(&tr_sq));
    assert!(t.rows[1].expected_square_of_trace.contains_rational(&sq_tr));
    let frob = tr_sq - Rational::from(53) / 4; // tr(Sigma^2) = 4 + 1/4 + 9
    assert!(t.rows[1].frobenius_sq_error.contains_rational(&frob));
}

#[test]
fn lyapunov_exponents_are_ordered_negative_and_sum_to_the_drift() {
    for (d, m) in [(1u64, 2u64), (3, 10), (5, 6), (10, 200)] {
        let s = spec(d, "constant", m, None, 3);
        let t = theory_at_precision(&s, 128);
        let lyap = t.lyapunov_exponents.as_ref().unwrap();
        assert_eq!(lyap.len(), d as usize);
        assert!(lyap.iter().all(|l| l.upper() < 0));
        assert!(lyap.windows(2).all(|w| w[1].upper() < w[0].lower()));
        let sum = Ball::sum(128, lyap);
        assert!(overlap(&sum, t.log_det_drift.as_ref().unwrap()));
        // The top exponent psi(k/2) + ln(2/k) lies in (-2/k, -1/k) (proofs/gaussian.md).
        let k = (m - 1) as f64;
        let top = lyap[0].to_f64();
        assert!(-2.0 / k < top && top < -1.0 / k, "d={d} M={m}: {top}");
        // The drift per generation is E[ln det Sigma_1] - ln det Sigma.
        assert!(overlap(&t.rows[1].expected_log_det, &sum));
    }
    let growing = spec(2, "linear", 3, None, 4);
    assert!(
        theory_at_precision(&growing, 64)
            .lyapunov_exponents
            .is_none()
    );
}

#[test]
fn collapse_of_the_determinant_follows_the_sum_of_inverse_sizes() {
    assert!(theory_at_precision(&spec(2, "constant", 5, None, 2), 64).det_collapses_almost_surely);
    assert!(theory_at_precision(&spec(2, "linear", 5, None, 2), 64).det_collapses_almost_surely);
    assert!(
        !theory_at_precision(&spec(2, "power:1.5", 5, None, 2), 64).det_collapses_almost_surely
    );
    assert!(
        !theory_at_precision(&spec(2, "geometric:1.1", 5, None, 2), 64).det_collapses_almost_surely
    );
}

#[test]
fn mean_error_limit_exists_iff_the_sum_converges() {
    let cov = Some(vec![2.0, 0.5]);
    let t = theory_at_precision(&spec(2, "power:2", 10, cov.clone(), 300), 128);
    let limit = t.mean_sq_error_limit.as_ref().unwrap();
    // tr(Sigma) zeta(2) / 10 up to the ceiling of the sizes: above every partial sum, and
    // within the tail sum_{i >= 300} 1/(10 (i+1)^2) < 1/3000 of the last, times tr = 2.5.
    let last = t.rows[300].mean_sq_error.to_f64();
    assert!(limit.lower() > t.rows[300].mean_sq_error.upper());
    assert!(limit.to_f64() - last < 2.5 / 3000.0);
    let zeta2 = std::f64::consts::PI.powi(2) / 6.0;
    assert!((limit.to_f64() - 2.5 * zeta2 / 10.0).abs() < 1e-2);
    for schedule in ["constant", "linear", "power:1"] {
        let t = theory_at_precision(&spec(2, schedule, 10, cov.clone(), 3), 128);
        assert!(t.mean_sq_error_limit.is_none(), "{schedule}");
    }
}

#[test]
fn requested_digits_are_certified() {
    let s = spec(10, "constant", 50, None, 2000);
    for digits in [15u32, 60] {
        let t = theory(&s, digits).unwrap();
        assert!(t.min_certified_digits() >= digits, "{digits}");
    }
    assert!(theory(&s, 0).is_err());
    assert!(theory(&s, crate::MAX_DIGITS + 1).is_err());
}

#[test]
fn bad_specs_are_refused() {
    let constant = |m| Schedule::parse(Some(m), "constant").unwrap();
    assert!(MvnSpec::new(0, constant(5), None, 3).is_err());
    assert!(MvnSpec::new(MAX_DIM + 1, constant(5000), None, 3).is_err());
    assert!(MvnSpec::new(4, constant(4), None, 3).is_err()); // M = d
    assert!(MvnSpec::new(4, constant(5), None, 3).is_ok());
    assert!(MvnSpec::new(2, constant(5), Some(vec![1.0]), 3).is_err());
    assert!(MvnSpec::new(2, constant(5), Some(vec![1.0, f64::NAN]), 3).is_err());
    assert!(MvnSpec::new(2, constant(5), Some(vec![1.0, -1.0]), 3).is_err());
    assert!(MvnSpec::new(2, constant(5), Some(vec![1.0, 0.0]), 3).is_err());
    assert!(MvnSpec::new(2, constant(5), None, 0).is_err());
    // A list that falls to the dimension later is refused too.
    let list = Schedule::parse(None, "list:10,3").unwrap();
    assert!(MvnSpec::new(3, list, None, 3).is_err());
}

#[test]
fn strategy_theory_is_the_projected_one_dimensional_theory() {
    use crate::strategy::{Strategy, strategy_theory as scalar_theory};
    let close = |a: &Ball, b: &Ball, tol: f64| {
        let (x, y) = (a.to_f64(), b.to_f64());
        assert!((x - y).abs() <= tol * x.abs().max(1e-300), "{x} vs {y}");
    };
    for strategy in ["accumulate", "accumulate-subsample", "mix:0.3", "keep:0.2"] {
        let strategy = Strategy::parse(strategy).unwrap();
        // d = 1 with sigma^2 = 1 is the one-dimensional theory itself.
        let one = spec(1, "constant", 8, None, 12)
            .with_strategy(strategy)
            .unwrap();
        let scalar_spec = GaussianSpec::new(Schedule::constant(8), Estimator::Unbiased, 1.0, 12)
            .unwrap()
            .with_strategy(strategy)
            .unwrap();
        let scalar = scalar_theory(&scalar_spec, 25).unwrap();
        let t = strategy_theory(&one, 25).unwrap();
        for (a, b) in t.rows.iter().zip(&scalar.rows) {
            close(&a.mean_sq_error, &b.mean_sq_error, 1e-24);
            close(&a.expected_trace, &b.expected_variance, 1e-24);
        }
        // tr Sigma scaling, in d = 3 with an unequal diagonal (trace 3.5).
        let three = spec(3, "constant", 8, Some(vec![2.0, 0.5, 1.0]), 12)
            .with_strategy(strategy)
            .unwrap();
        let t3 = strategy_theory(&three, 25).unwrap();
        for (a, b) in t3.rows.iter().zip(&t.rows) {
            close(&a.mean_sq_error, &b.mean_sq_error.mul_f64(3.5), 1e-24);
            close(&a.expected_trace, &b.expected_trace.mul_f64(3.5), 1e-24);
        }
        assert!(theory(&three, 10).is_err(), "theory is replace's only");
    }
    // Replace: the first two columns of the Bartlett theory.
    let replace = spec(3, "linear", 6, Some(vec![2.0, 0.5, 1.0]), 10);
    let bartlett = theory(&replace, 25).unwrap();
    let projected = strategy_theory(&replace, 25).unwrap();
    for (a, b) in projected.rows.iter().zip(&bartlett.rows) {
        close(&a.mean_sq_error, &b.mean_sq_error, 1e-24);
        close(&a.expected_trace, &b.expected_trace, 1e-24);
    }
}
