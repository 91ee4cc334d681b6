use super::*;
use statrs::distribution::Continuous;

const ALL: [Truth; 6] = [
    Truth::Normal,
    Truth::Laplace,
    Truth::Student(3.5),
    Truth::Student(30.0),
    Truth::Uniform,
    Truth::Mixture,
];

/// The CDF of each standardised truth, written independently of its quantile function.
fn cdf(truth: Truth, x: f64) -> f64 {
    match truth {
        Truth::Normal => standard_normal().cdf(x),
        Truth::Laplace => {
            let b = std::f64::consts::FRAC_1_SQRT_2;
            if x < 0.0 {
                0.5 * (x / b).exp()
            } else {
                1.0 - 0.5 * (-x / b).exp()
            }
        }
        Truth::Student(nu) => StudentsT::new(0.0, 1.0, nu)
            .unwrap()
            .cdf(x / ((nu - 2.0) / nu).sqrt()),
        Truth::Uniform => ((x + 3f64.sqrt()) / (2.0 * 3f64.sqrt())).clamp(0.0, 1.0),
        Truth::Mixture => {
            let n = |m: f64| Normal::new(m, MIXTURE_SPREAD).unwrap().cdf(x);
            0.5 * (n(-MIXTURE_OFFSET) + n(MIXTURE_OFFSET))
        }
    }
}

/// E[h(g(Z))] by the trapezoid rule in z on [-10, 10] (g = F^-1 o Phi).
fn expect_in_z(truth: Truth, h: impl Fn(f64, f64) -> f64) -> f64 {
    let step = 1.0 / 256.0;
    let n = (20.0 / step) as i64;
    (0..=n)
        .map(|i| {
            let z = -10.0 + i as f64 * step;
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            w * h(z, truth.at_normal_score(z)) * normal_density(z)
        })
        .sum::<f64>()
        * step
}

#[test]
fn quantiles_invert_the_cdfs_and_standardise() {
    for truth in ALL {
        for u in [
            1e-12,
            1e-6,
            0.01,
            0.2,
            0.4999,
            0.5,
            0.6,
            0.9,
            0.999,
            1.0 - 1e-9,
        ] {
            let x = truth.quantile(u);
            let back = cdf(truth, x);
            assert!(
                (back - u).abs() <= 1e-9 * u.min(1.0 - u).max(1e-3),
                "{truth:?}: F(F^-1({u})) = {back}"
            );
        }
        // Mean 0 and variance 1 (the heavy Student tail beyond |z| = 10 is below 1e-6).
        let mean = expect_in_z(truth, |_, x| x);
        let var = expect_in_z(truth, |_, x| x * x);
        assert!(mean.abs() < 1e-9, "{truth:?} mean {mean}");
        let tol = if matches!(truth, Truth::Student(_)) {
            2e-3
        } else {
            1e-8
        };
        assert!((var - 1.0).abs() < tol, "{truth:?} variance {var}");
    }
}

#[test]
fn comonotone_correlation_matches_independent_routes() {
    // Quadrature on truths with closed forms: normal (1) and uniform (sqrt(3/pi)).
    for (truth, exact) in [
        (Truth::Normal, 1.0),
        (Truth::Uniform, (3.0 / std::f64::consts::PI).sqrt()),
    ] {
        let q = truth.quadrature();
        assert!(
            (q.rho - exact).abs() <= q.error_bound,
            "{truth:?}: {} vs {exact} (bound {})",
            q.rho,
            q.error_bound
        );
        assert!(q.error_bound < 1e-9);
        assert!(truth.comonotone_correlation().closed_form);
    }
    // Stein's identity: E[Z g(Z)] = E[g'(Z)] = E[phi(Z) / f(g(Z))], a second quadrature that
    // needs the density instead of the quantile's product with z.
    let laplace_density = |x: f64| {
        let b = std::f64::consts::FRAC_1_SQRT_2;
        (-x.abs() / b).exp() / (2.0 * b)
    };
    let stein = expect_in_z(Truth::Laplace, |z, x| {
        normal_density(z) / laplace_density(x)
    });
    let q = Truth::Laplace.comonotone_correlation();
    assert!(!q.closed_form);
    assert!((q.rho - stein).abs() < 1e-6, "{} vs {stein}", q.rho);
    let t = Truth::Student(5.0);
    let student_density = |x: f64| {
        let scale = (3.0f64 / 5.0).sqrt();
        StudentsT::new(0.0, 1.0, 5.0).unwrap().pdf(x / scale) / scale
    };
    let stein = expect_in_z(t, |z, x| normal_density(z) / student_density(x));
    assert!((t.comonotone_correlation().rho - stein).abs() < 1e-5);
    // Every non-normal truth correlates imperfectly with the normal scores (rho < 1).
    for truth in ALL {
        let c = truth.comonotone_correlation();
        assert!(
            c.rho > 0.9 && c.rho <= 1.0 + c.error_bound,
            "{truth:?} {c:?}"
        );
        if truth != Truth::Normal {
            assert!(c.rho + c.error_bound < 1.0, "{truth:?} {c:?}");
        }
    }
}

#[test]
fn w2_formula_is_the_quantile_integral() {
    for truth in [
        Truth::Laplace,
        Truth::Uniform,
        Truth::Mixture,
        Truth::Normal,
    ] {
        let rho = truth.comonotone_correlation().rho;
        for (m, s, sigma) in [(0.0, 1.0, 1.0), (0.3, 0.5, 1.0), (-1.0, 2.0, 0.7)] {
            let direct = expect_in_z(truth, |z, x| {
                let d = m + s * z - sigma * x;
                d * d
            });
            let closed = w2_sq_to_truth(m, s, sigma, rho);
            assert!(
                (direct - closed).abs() < 1e-7 * (1.0 + closed),
                "{truth:?} m={m} s={s}: {direct} vs {closed}"
            );
        }
    }
    // The Gaussian truth: W2^2 = (m - 0)^2 + (s - sigma)^2 exactly.
    assert_eq!(w2_sq_to_truth(0.5, 1.25, 1.0, 1.0), 0.25 + 0.0625);
}

#[test]
fn bad_truths_are_refused() {
    for bad in [
        "student:2",
        "student:1.5",
        "student:-3",
        "student:nan",
        "student:inf",
        "student:abc",
        "student",
        "laplace:3",
        "cauchy",
        "",
    ] {
        assert!(Truth::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Truth::parse("student:5").unwrap(), Truth::Student(5.0));
    for truth in ALL {
        assert_eq!(Truth::parse(&truth.label()).unwrap(), truth);
    }
}
