//! The lemmas of `proofs/gaussian.md` and `proofs/schedules.md` that the theory rests on,
//! checked on grids with rigorous enclosures: MPFR balls (`Ball`, correctly rounded lnGamma,
//! digamma and logarithms), exact rationals for every bound and every finite sum, and, for
//! Lemma 5, an f64 quadrature of the quantile coupling through statrs' normal quantiles.
//!
//! A strict inequality `a < b` between enclosures is asserted as `upper(a) < lower(b)`, so a
//! pass proves the inequality at every point of the grid.

use collapse_analysis::Ball;
use collapse_analysis::special::{
    bernoulli, digamma, exact_arg, ln_gamma, trigamma, trigamma_half_integer_exact,
};
use rug::float::Constant;
use rug::{Float, Integer, Rational};
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

/// Precision able to hold the sum of two doubles exactly (as `special::exact_arg`).
const EXACT: u32 = 2300;

/// `a < b` at every point of both balls.
fn below(a: &Ball, b: &Ball) -> bool {
    a.upper() < b.lower()
}

fn q(p: i64, r: u64) -> Rational {
    Rational::from((p, r))
}

/// An exact double as an MPFR float.
fn exact(x: f64) -> Float {
    Float::with_val(EXACT, x)
}

/// ln x for an exact x > 0.
fn ln(prec: u32, x: &Float) -> Ball {
    Ball::correctly_rounded(prec, x.ln_ref())
}

/// The arguments x > 0 of the digamma grid: every x = k/2 up to 200, and doubles from 1e-8 to
/// 1e12 that are not half-integers.
fn digamma_grid() -> Vec<Float> {
    let mut xs: Vec<Float> = (1..=400).map(|k| exact_arg(k, 0.0)).collect();
    for x in [
        1e-8, 1e-3, 0.01, 0.1, 0.3, 0.7, 1.3, 2.71, 7.9, 31.4, 1000.1, 1e5, 1e7, 1e10, 1e12,
    ] {
        xs.push(exact(x));
    }
    xs
}

/// proofs/gaussian.md, claim gaussian.3.2 (Lemma 3a): ln x - 1/x < psi(x) < ln x - 1/(2x),
/// with psi from MPFR's correctly rounded digamma at 256 bits, on `digamma_grid`. The upper
/// bound is asymptotically tight (x (ln x - psi(x)) -> 1/2, checked at x = 1e12), so an upper
/// bound ln x - c/x with c > 1/2 would fail.
#[test]
fn lemma_3a_digamma_between_log_bounds() {
    let prec = 256;
    for x in digamma_grid() {
        let psi = digamma(prec, &x);
        let ln_x = ln(prec, &x);
        let inv = Ball::correctly_rounded(prec, &x).recip();
        let lower = ln_x.sub(&inv);
        let upper = ln_x.sub(&inv.mul_f64(0.5));
        assert!(
            below(&lower, &psi),
            "x = {x:.6}: lower bound {lower:?}, psi {psi:?}"
        );
        assert!(
            below(&psi, &upper),
            "x = {x:.6}: psi {psi:?}, upper bound {upper:?}"
        );
        assert!(below(&psi, &ln_x), "x = {x:.6}: psi(x) < ln x");
    }
    // Tightness: psi(x) = ln x - 1/(2x) - 1/(12 x^2) + ..., so at x = 1e12 psi lies about
    // 1/(12 x^2) below the upper bound and 1/(2x) above the lower one.
    let x = exact(1e12);
    let psi = digamma(prec, &x);
    let gap = ln(prec, &x).sub(&psi).to_f64();
    assert!((gap * 1e12 - 0.5).abs() < 1e-11, "{gap:e}");
}

/// proofs/gaussian.md, claim gaussian.3.3: with x = k/2 and the drift d = psi(x) + ln(2/D),
/// -2/k < d < -1/k for the unbiased estimator (D = k), 0 < ln(M/k) <= 1/k and
/// -3/k < d < -1/k for the MLE (D = M), and v = psi'(x) <= 2/k + 4/k^2 <= 6/k <= 6 |d| for
/// both, for k = 1..2000 and k = 10^4, 10^6, 10^9 (digamma from MPFR, trigamma the toolkit's
/// enclosure that the theory uses).
#[test]
fn drift_and_variance_bounds_per_step() {
    let prec = 192;
    for k in (1u64..=2000).chain([10_000, 1_000_000, 1_000_000_000]) {
        let m = k + 1;
        let x = exact_arg(k, 0.0);
        let psi = digamma(prec, &x);
        let v = trigamma(prec, &x);
        let inv_k = Ball::exact(prec, q(1, k));
        let v_bound = inv_k.mul_f64(2.0).add(&inv_k.square().mul_f64(4.0));
        assert!(
            v.upper() <= v_bound.lower(),
            "k = {k}: v = {v:?} above 2/k + 4/k^2"
        );
        assert!(
            q(2, k) + q(4, k * k) <= q(6, k),
            "k = {k}: 2/k + 4/k^2 <= 6/k"
        );
        let ln_m_over_k = Ball::exact(prec, q(m as i64, k)).ln();
        assert!(ln_m_over_k.is_positive(), "k = {k}");
        assert!(
            ln_m_over_k.upper() <= inv_k.lower(),
            "k = {k}: ln(M/k) <= 1/k"
        );
        for (d_div, lower_factor) in [(k, 2.0), (m, 3.0)] {
            let d = psi.add(&Ball::exact(prec, q(2, d_div)).ln());
            let label = format!("k = {k}, D = {d_div}");
            assert!(below(&d, &inv_k.neg()), "{label}: d = {d:?} not below -1/k");
            assert!(
                below(&inv_k.mul_f64(-lower_factor), &d),
                "{label}: d = {d:?} not above -{lower_factor}/k"
            );
            assert!(
                v.upper() <= d.neg().mul_f64(6.0).lower(),
                "{label}: v = {v:?} above 6 |d| = 6 {d:?}"
            );
        }
    }
}

/// T_K(y) = 1/y + 1/(2y^2) + sum_{k=1}^K B_{2k}/y^{2k+1} and the first omitted term
/// B_{2K+2}/y^{2K+3}, exactly.
fn trigamma_series(y: &Rational, big_k: usize) -> (Rational, Rational) {
    let inv = Rational::from(y.recip_ref());
    let inv2 = Rational::from(inv.square_ref());
    let mut sum = &inv + Rational::from(&inv2 / 2u32);
    let mut power = Rational::from(&inv * &inv2); // 1/y^3
    for k in 1..=big_k {
        sum += bernoulli(2 * k) * &power;
        power *= &inv2;
    }
    (sum, bernoulli(2 * big_k + 2) * power)
}

/// proofs/gaussian.md, claim gaussian.3.6 (Lemma 3b): theta = (psi'(y) - T_K(y)) /
/// (B_{2K+2}/y^{2K+3}) lies in (0, 1), with psi'(y) at half-integers y = m/2 from the exact
/// finite sums (pi^2/6 or pi^2/2 minus a rational) at 2048 bits and T_K, B_{2K+2}/y^{2K+3} as
/// exact rationals; y from 1/2 to 500 and K from 0 to 34, including the divergent regime
/// K >> y. As y grows at fixed K, theta -> 1 (1 - theta = 1/(5 y^2) + O(y^-4) asserted at
/// y = 500, K = 0), so an error bound smaller than the first omitted term would fail here.
#[test]
fn lemma_3b_trigamma_series_envelope() {
    let prec = 2048;
    for m in [1u64, 2, 3, 4, 7, 10, 25, 64, 201, 1000] {
        let psi1 = trigamma_half_integer_exact(prec, m);
        let y = q(m as i64, 2);
        for big_k in [0usize, 1, 2, 3, 5, 8, 13, 21, 34] {
            let (partial, omitted) = trigamma_series(&y, big_k);
            let theta = psi1
                .sub(&Ball::exact(prec, partial))
                .mul(&Ball::exact(prec, Rational::from(omitted.recip_ref())));
            let label = format!("y = {}, K = {big_k}: theta = {}", y, theta.to_decimal(12));
            assert!(theta.lower() > 0, "{label}");
            assert!(theta.upper() < 1, "{label}");
            assert!(theta.certified_digits() >= 20, "{label}: {theta:?}");
            if m == 1000 && big_k == 0 {
                // 1 - theta = 1/(5 y^2) + O(y^-4): the next term B_4/y^5 over B_2/y^3.
                let scaled = (1.0 - theta.to_f64()) * 5.0 * 500.0 * 500.0;
                assert!((scaled - 1.0).abs() < 1e-3, "{label}: {scaled}");
            }
        }
    }
}

/// The squared quantile-coupling distance int_0^1 (F^{-1}(v) - G^{-1}(w(v)))^2 dv between
/// N(a, s^2) and N(b, t^2) with w(v) = v (comonotone) or 1 - v (antitone), by the change of
/// variables v = Phi(z) and the trapezoidal rule on z in [-8, 8] (mass outside 1.2e-15). The
/// quantiles are statrs' `inverse_cdf` at v = Phi(z) and 1 - v = Phi(-z), both from statrs'
/// `cdf`; a zero standard deviation is the point mass (constant quantile).
fn quantile_coupling_cost(a: f64, s: f64, b: f64, t: f64, antitone: bool) -> f64 {
    let std_normal = Normal::new(0.0, 1.0).unwrap();
    let quantile = |mean: f64, sd: f64, v: f64| {
        if sd == 0.0 {
            mean
        } else {
            Normal::new(mean, sd).unwrap().inverse_cdf(v)
        }
    };
    let h = 1.0 / 64.0;
    let steps = (16.0 / h) as i64;
    let mut total = 0.0;
    for i in 0..=steps {
        let z = -8.0 + i as f64 * h;
        let v = std_normal.cdf(z);
        let w = if antitone { std_normal.cdf(-z) } else { v };
        let diff = quantile(a, s, v) - quantile(b, t, w);
        let weight = if i == 0 || i == steps { 0.5 } else { 1.0 };
        total += weight * h * std_normal.pdf(z) * diff * diff;
    }
    total
}

/// proofs/gaussian.md, claim gaussian.5.1 (Lemma 5): W2^2(N(a, s^2), N(b, t^2)), computed as
/// the quantile-coupling integral (the optimal coupling on the line), equals
/// (a - b)^2 + (s - t)^2 to 1e-9 relative, including point masses and equal laws; the
/// antitone coupling costs (a - b)^2 + (s + t)^2, strictly more when s t > 0 (the
/// Cauchy-Schwarz step: the covariance is +st for one and -st for the other).
#[test]
fn lemma_5_w2_of_normals_is_the_quantile_coupling() {
    for (a, s, b, t) in [
        (0.0f64, 1.0f64, 0.0f64, 1.0f64),
        (0.0, 1.0, 0.0, 2.0),
        (1.5, 0.3, -2.0, 2.5),
        (-0.25, 3.0, 0.75, 0.5),
        (0.0, 0.0, 1.0, 1.0),
        (3.0, 2.0, 3.0, 0.0),
        (10.0, 1e-3, -7.0, 1e-3),
        (0.1, 0.9, 0.2, 1.1),
    ] {
        let closed = (a - b) * (a - b) + (s - t) * (s - t);
        let tol = 1e-9 * closed.max(1.0);
        let label = format!("N({a}, {s}^2) vs N({b}, {t}^2)");
        let w2 = quantile_coupling_cost(a, s, b, t, false);
        assert!((w2 - closed).abs() <= tol, "{label}: {w2} vs {closed}");
        let anti = quantile_coupling_cost(a, s, b, t, true);
        let anti_closed = (a - b) * (a - b) + (s + t) * (s + t);
        assert!(
            (anti - anti_closed).abs() <= tol,
            "{label}: antitone {anti}"
        );
        if s * t > 0.0 {
            assert!(anti - w2 > 3.9 * s * t - tol, "{label}: {anti} vs {w2}");
        }
    }
}

/// proofs/schedules.md, claim schedules.3.1 (Lemma 7): for x > 0 and 0 < s < 1,
/// (x/(x+s))^(1-s) < Gamma(x+s)/(x^s Gamma(x)) < 1, as
/// (1-s)(ln x - ln(x+s)) < lnGamma(x+s) - lnGamma(x) - s ln x < 0 with correctly rounded
/// lnGamma and ln at 320 bits of exact arguments, on a grid of x from 1e-6 to 1e9 and s from
/// 1e-3 to 0.999, and at x = k/2, s = 1/2 for k = 1..600 (the remark's sqrt(k/M) < e^unb < 1).
#[test]
fn lemma_7_gamma_ratio_bounds() {
    let prec = 320;
    let mut points: Vec<(Float, Float)> = Vec::new();
    for x in [
        1e-6, 1e-3, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 10.0, 55.5, 1e3, 1e6, 1e9,
    ] {
        for s in [1e-3, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999] {
            points.push((exact(x), exact(s)));
        }
    }
    for k in 1..=600 {
        points.push((exact_arg(k, 0.0), exact(0.5)));
    }
    for (x, s) in points {
        let x_plus_s = Float::with_val(EXACT, &x + &s);
        let s_ball = Ball::correctly_rounded(prec, &s);
        let ln_x = ln(prec, &x);
        let log_ratio = ln_gamma(prec, &x_plus_s)
            .sub(&ln_gamma(prec, &x))
            .sub(&s_ball.mul(&ln_x));
        let one_minus_s = Ball::correctly_rounded(prec, Float::with_val(EXACT, 1 - &s));
        let lower = one_minus_s.mul(&ln_x.sub(&ln(prec, &x_plus_s)));
        let label = format!("x = {x:.6e}, s = {s:.4}: ln ratio {log_ratio:?}");
        assert!(log_ratio.upper() < 0, "{label}");
        assert!(below(&lower, &log_ratio), "{label}, lower {lower:?}");
    }
}

/// proofs/schedules.md, claim schedules.3.2 (Lemma 7b): with e_k = sqrt(2/k) Gamma((k+1)/2) /
/// Gamma(k/2),
///
/// - 1/(4k) - 1/(5k^3) < -ln e_k < 1/(4k) + 4/(25k^3), with k^3 times the two margins at least
///   0.158 and 0.184 (the claim's mpmath figures), for every k = 1..40000;
/// - 1/(2k) - 1/(4k^2) <= (1/2) ln(1 + 1/k) <= 1/(2k) (the MLE term), for the same k;
/// - both at k = 10^5, 10^6, 10^9 and 2^48 through lnGamma at 512 bits.
///
/// -ln e_k = (1/2) ln(k/2) - L_k with L_k = ln(Gamma((k+1)/2)/Gamma(k/2)) from the exact
/// recurrence L_1 = -(1/2) ln pi, L_{k+1} = ln(k/2) - L_k (Gamma(x+1) = x Gamma(x)) in balls at
/// 320 bits, cross-checked against correctly rounded lnGamma at several k.
#[test]
fn lemma_7b_stirling_enclosure_of_e() {
    let prec = 320;
    let n = 40_000u64;
    let pi = Ball::correctly_rounded(prec, Constant::Pi);
    let mut l_k = pi.ln().mul_f64(-0.5); // L_1
    let (mut min_low, mut min_high) = (f64::INFINITY, f64::INFINITY);
    for k in 1..=n {
        let ln_half_k = Ball::exact(prec, q(k as i64, 2)).ln();
        let minus_ln_e = ln_half_k.mul_f64(0.5).sub(&l_k);
        if [1, 2, 3, 10, 101, 1000, n].contains(&k) {
            let by_ln_gamma = ln_gamma(prec, &exact_arg(k, 0.0))
                .sub(&ln_gamma(prec, &exact_arg(k, 1.0 / 2.0)))
                .add(&ln_half_k.mul_f64(0.5));
            let gap = minus_ln_e.sub(&by_ln_gamma);
            assert!(
                gap.contains(&Float::new(prec)),
                "k = {k}: recurrence vs lnGamma"
            );
        }
        let (low_margin, high_margin) = check_lemma_7b(prec, k, &minus_ln_e);
        min_low = min_low.min(low_margin);
        min_high = min_high.min(high_margin);
        l_k = ln_half_k.sub(&l_k); // L_{k+1}
    }
    assert!(min_low >= 0.158, "min k^3 (-ln e - lower) = {min_low}");
    assert!(min_high >= 0.184, "min k^3 (upper - -ln e) = {min_high}");
    // The lower margin tends to 1/5 - 1/24 = 0.15833... (-ln e = 1/(4k) - 1/(24k^3) + ...).
    assert!((min_low - 19.0 / 120.0).abs() < 1e-6, "{min_low}");
    for k in [100_000u64, 1_000_000, 1_000_000_000, 1 << 48] {
        let prec = 512;
        let minus_ln_e = ln_gamma(prec, &exact_arg(k, 0.0))
            .sub(&ln_gamma(prec, &exact_arg(k, 1.0 / 2.0)))
            .add(&Ball::exact(prec, q(k as i64, 2)).ln().mul_f64(0.5));
        let (low, high) = check_lemma_7b(prec, k, &minus_ln_e);
        assert!(low >= 0.158 && high >= 0.184, "k = {k}: {low}, {high}");
    }
}

/// Asserts Lemma 7b's two enclosures at k for the ball `minus_ln_e` of -ln e_k and returns the
/// margins k^3 (-ln e - lower) and k^3 (upper - -ln e), rounded down.
fn check_lemma_7b(prec: u32, k: u64, minus_ln_e: &Ball) -> (f64, f64) {
    use rug::float::Round;
    let k2 = Integer::from(k) * k;
    let k3 = Integer::from(&k2 * k);
    let quarter = q(1, 4 * k);
    let lower = Ball::exact(
        prec,
        &quarter - Rational::from((1, Integer::from(&k3 * 5u32))),
    );
    let upper = Ball::exact(
        prec,
        &quarter + Rational::from((4, Integer::from(&k3 * 25u32))),
    );
    assert!(
        below(&lower, minus_ln_e),
        "k = {k}: {minus_ln_e:?} below its lower bound"
    );
    assert!(
        below(minus_ln_e, &upper),
        "k = {k}: {minus_ln_e:?} above its upper bound"
    );
    let k3_ball = Ball::exact(prec, k3);
    let low = minus_ln_e
        .sub(&lower)
        .mul(&k3_ball)
        .lower()
        .to_f64_round(Round::Down);
    let high = upper
        .sub(minus_ln_e)
        .mul(&k3_ball)
        .lower()
        .to_f64_round(Round::Down);
    // The MLE term: (1/2) ln(1 + 1/k) in [1/(2k) - 1/(4k^2), 1/(2k)].
    let half_ln = Ball::exact(prec, q(k as i64 + 1, k)).ln().mul_f64(0.5);
    let half = Ball::exact(prec, q(1, 2 * k));
    let mle_lower = half.sub(&Ball::exact(prec, Rational::from((1, k2 * 4u32))));
    assert!(
        half_ln.lower() >= mle_lower.upper(),
        "k = {k}: MLE term {half_ln:?} too small"
    );
    assert!(
        half_ln.upper() <= half.lower(),
        "k = {k}: MLE term {half_ln:?} above 1/(2k)"
    );
    (low, high)
}
