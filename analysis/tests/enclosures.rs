//! Enclosures are valid and tight: over generated parameter points every ball at p bits
//! contains the value computed at much higher precision (or the exact rational), its width
//! shrinks as the precision grows, low-precision values agree with statrs' f64 evaluations,
//! and adversarial inputs give a valid enclosure or a clear error.

use collapse_analysis::gaussian::{GaussianSpec, sigma_power_moment, theory_at_precision};
use collapse_analysis::markov::{TwoTypeChain, loss_probabilities};
use collapse_analysis::special::{digamma, digamma_half_integer_exact, exact_arg};
use collapse_analysis::{Ball, Estimator, Schedule};
use proptest::prelude::*;
use rug::{Float, Rational};

/// A radius at 2p bits is at most this fraction of the radius at p bits (2^-(p/2): the
/// rounding errors shrink by about 2^-p).
fn shrank(wide: &Ball, narrow: &Ball, p: u32) -> bool {
    wide.rad().is_zero() || *narrow.rad() <= Float::with_val(64, wide.rad() >> (p / 2))
}

fn estimator(unbiased: bool) -> Estimator {
    if unbiased {
        Estimator::Unbiased
    } else {
        Estimator::Mle
    }
}

const SCHEDULES: [&str; 4] = ["constant", "linear", "power:1.5", "geometric:1.2"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Gaussian theory: 200 points (M, schedule, estimator, sigma, N) x (N + 1) rows x 8
    /// quantities, each ball at 96 bits containing the 512-bit midpoint, and the 192-bit ball
    /// narrower than the 96-bit one by at least 2^-48.
    #[test]
    fn gaussian_balls_contain_high_precision_values(
        m in 2u64..300,
        schedule in 0usize..4,
        unbiased in any::<bool>(),
        log_sigma in -6.0f64..6.0,
        n in 1u64..30,
    ) {
        let sigma = 10f64.powf(log_sigma);
        let schedule = Schedule::parse(Some(m), SCHEDULES[schedule]).unwrap();
        let spec = GaussianSpec::new(schedule, estimator(unbiased), sigma, n).unwrap();
        let (p, q, high) = (96, 192, 512);
        let (low, mid, reference) = (
            theory_at_precision(&spec, p),
            theory_at_precision(&spec, q),
            theory_at_precision(&spec, high),
        );
        for ((a, b), c) in low.rows.iter().zip(&mid.rows).zip(&reference.rows) {
            for (((name, x), (_, y)), (_, z)) in
                a.named().iter().zip(b.named().iter()).zip(c.named().iter())
            {
                prop_assert!(x.contains(z.mid()), "{} n = {}: {:?} vs {}", name, a.n, x, z.mid());
                prop_assert!(y.contains(z.mid()), "{} n = {}: {:?} vs {}", name, a.n, y, z.mid());
                prop_assert!(shrank(x, y, p), "{} n = {}: {} then {}", name, a.n, x.rad(), y.rad());
            }
        }
    }

    /// Markov two-type chain: loss probabilities and absorption moments as balls at 96 bits
    /// contain the exact rationals (decided exactly), and shrink at 192 bits.
    #[test]
    fn markov_balls_contain_the_exact_rationals(
        m in 2u32..26,
        numerator in 1u32..1000,
        n in 1u32..25,
    ) {
        let q = Rational::from((numerator, 1001));
        let exact = TwoTypeChain::exact(m).unwrap();
        let lost = loss_probabilities(&exact, &q, n);
        let times = exact.absorption_times();
        for p in [96, 192] {
            let chain = TwoTypeChain::enclosed(m, p).unwrap();
            let balls = loss_probabilities(&chain, &Ball::exact(p, q.clone()), n);
            for (b, e) in balls.iter().zip(&lost) {
                prop_assert!(b.contains_rational(e), "M = {}, q = {}: {:?} vs {}", m, q, b, e);
            }
            let enclosed = chain.absorption_times();
            for (b, e) in enclosed.mean.iter().zip(&times.mean)
                .chain(enclosed.second_moment.iter().zip(&times.second_moment))
            {
                prop_assert!(b.contains_rational(e), "M = {}: {:?} vs {}", m, b, e);
            }
        }
        let (wide, narrow) = (
            loss_probabilities(&TwoTypeChain::enclosed(m, 96).unwrap(), &Ball::exact(96, q.clone()), n),
            loss_probabilities(&TwoTypeChain::enclosed(m, 192).unwrap(), &Ball::exact(192, q.clone()), n),
        );
        for (a, b) in wide.iter().zip(&narrow) {
            prop_assert!(shrank(a, b, 96), "M = {}: {} then {}", m, a.rad(), b.rad());
        }
    }
}

/// At 53 bits the one-step factors agree with f64 evaluations through statrs, where those are
/// accurate: E[sigma_1] = sigma sqrt(2/D) Gamma(M/2)/Gamma(k/2) and
/// E[ln sigma_1^2] = ln sigma^2 + psi(k/2) + ln(2/D), for M = 2..=400 and both estimators.
#[test]
fn low_precision_agrees_with_statrs() {
    use statrs::function::gamma::{digamma as f64_digamma, ln_gamma as f64_ln_gamma};
    for m in 2u64..=400 {
        for est in [Estimator::Unbiased, Estimator::Mle] {
            let spec = GaussianSpec::new(Schedule::constant(m), est, 1.0, 1).unwrap();
            let t = theory_at_precision(&spec, 53);
            let row = &t.rows[1];
            let (k, d) = ((m - 1) as f64, est.divisor(m) as f64);
            let sigma =
                (2.0 / d).sqrt() * (f64_ln_gamma(m as f64 / 2.0) - f64_ln_gamma(k / 2.0)).exp();
            let log_var = f64_digamma(k / 2.0) + (2.0 / d).ln();
            let found = |name: &str| {
                row.named()
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, b)| b.to_f64())
                    .unwrap()
            };
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            assert!(rel(found("expected_sigma"), sigma) < 1e-12, "M = {m}");
            assert!(
                rel(found("expected_log_variance"), log_var) < 1e-11,
                "M = {m}"
            );
        }
    }
}

/// Adversarial inputs: a valid enclosure or a clear error, never a wrong digit.
#[test]
fn adversarial_inputs_give_valid_enclosures_or_errors() {
    let prec = 128;
    // Ten million generations are refused with a clear error; a million, the cap, encloses
    // E[sigma_n] = c^n exactly as the power of the one-step ball (an independent route).
    let constant = |m, n| GaussianSpec::new(Schedule::constant(m), Estimator::Unbiased, 1.0, n);
    let err = constant(2, 10_000_000).unwrap_err().to_string();
    assert!(err.contains("generations"), "{err}");
    let spec = constant(2, 1_000_000).unwrap();
    let far = sigma_power_moment(&spec, 0.5, 1_000_000, prec).unwrap();
    let one = sigma_power_moment(&spec, 0.5, 1, prec).unwrap();
    let power = one.pow_u64(1_000_000);
    assert!(
        far.contains(power.mid()) || power.contains(far.mid()),
        "{far:?} vs {power:?}"
    );
    assert!(far.certified_digits() >= 20, "{far:?}");
    // M = 2 (k = 1): E[sigma^(2r)] exists iff r > -1/2; just inside, a positive certified
    // ball; at the limit, an error naming it.
    let spec = constant(2, 1).unwrap();
    let near = sigma_power_moment(&spec, -0.49, 1, prec).unwrap();
    assert!(
        near.is_positive() && near.certified_digits() >= 25,
        "{near:?}"
    );
    let at = sigma_power_moment(&spec, -0.5, 1, prec)
        .unwrap_err()
        .to_string();
    assert!(at.contains("infinite"), "{at}");
    // M = 2: E[ln sigma_1^2] = psi(1/2) + ln 2, against the exact half-integer form.
    let t = theory_at_precision(&spec, prec);
    let log_var = t.rows[1]
        .named()
        .iter()
        .find(|(n, _)| *n == "expected_log_variance")
        .map(|(_, b)| (*b).clone())
        .unwrap();
    let exact = digamma_half_integer_exact(512, 1).add(&Ball::exact(512, 2).ln());
    assert!(log_var.contains(exact.mid()), "{log_var:?} vs {exact:?}");
    assert!(digamma(prec, &exact_arg(1, 0.0)).contains(digamma_half_integer_exact(512, 1).mid()));
    // Tiny and huge sigma: E[sigma_n^2] = sigma^2 exactly under the unbiased estimator.
    for sigma in [1e-300, 1e-30, 1e30, 1e300] {
        let spec =
            GaussianSpec::new(Schedule::constant(5), Estimator::Unbiased, sigma, 40).unwrap();
        let t = theory_at_precision(&spec, prec);
        let exact = Rational::from_f64(sigma).unwrap().square();
        for row in &t.rows {
            let variance = row.named()[0].1;
            assert_eq!(row.named()[0].0, "expected_variance");
            assert!(
                variance.contains_rational(&exact),
                "sigma = {sigma}, n = {}",
                row.n
            );
            assert!(
                variance.certified_digits() >= 30,
                "sigma = {sigma}: {variance:?}"
            );
        }
    }
    // Bad sigma is refused.
    for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(GaussianSpec::new(Schedule::constant(5), Estimator::Unbiased, sigma, 3).is_err());
    }
}
