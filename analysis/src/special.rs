//! Special functions as balls: lnGamma and digamma from MPFR (correctly rounded), trigamma
//! built here (MPFR has none), and the exact finite forms at integer and half-integer
//! arguments used as an independent route in tests.

use crate::ball::Ball;
use rug::float::{Constant, Round};
use rug::{Float, Integer, Rational};
use std::sync::Mutex;

/// Precision able to hold k/2 + r exactly for any integer k < 2^64 and any f64 r.
const EXACT_ARG_PREC: u32 = 2300;

/// The exact argument `half_k / 2 + r` as a Float (no rounding: see EXACT_ARG_PREC).
pub fn exact_arg(k: u64, r: f64) -> Float {
    let mut x = Float::with_val(EXACT_ARG_PREC, k);
    x /= 2u32;
    x += r;
    x
}

/// ln Gamma(x) for an exact x > 0, correctly rounded to `prec` bits.
pub fn ln_gamma(prec: u32, x: &Float) -> Ball {
    Ball::correctly_rounded(prec, x.ln_gamma_ref())
}

/// digamma(x) for an exact x > 0, correctly rounded to `prec` bits.
pub fn digamma(prec: u32, x: &Float) -> Ball {
    Ball::correctly_rounded(prec, x.digamma_ref())
}

/// Riemann zeta(s) for an exact s > 1, correctly rounded.
pub fn zeta(prec: u32, s: &Float) -> Ball {
    Ball::correctly_rounded(prec, s.zeta_ref())
}

static BERNOULLI: Mutex<Vec<Rational>> = Mutex::new(Vec::new());

/// Bernoulli number B_n (B_1 = -1/2), exact, from the recurrence
/// sum_{j=0}^{m} C(m+1, j) B_j = 0.
pub fn bernoulli(n: usize) -> Rational {
    let mut table = BERNOULLI.lock().unwrap_or_else(|e| e.into_inner());
    if table.is_empty() {
        table.push(Rational::from(1));
    }
    while table.len() <= n {
        let m = table.len();
        let mut acc = Rational::new();
        let mut binom = Integer::from(1); // C(m+1, 0)
        for (j, b) in table.iter().enumerate() {
            acc += Rational::from(&binom * b.numer()) / b.denom();
            binom *= (m + 1 - j) as u64;
            binom /= (j + 1) as u64;
        }
        table.push(-acc / Rational::from(m as u64 + 1));
    }
    table[n].clone()
}

/// Trigamma psi'(x) for an exact x > 0, with a rigorous radius.
///
/// Recurrence psi'(x) = psi'(x+1) + 1/x^2 up to y >= max(x, prec), then the asymptotic series
/// psi'(y) = 1/y + 1/(2y^2) + sum_{k=1}^{K} B_{2k}/y^{2k+1}, whose remainder for real y > 0 is
/// bounded by the first omitted term (DLMF 5.15.8 with the enveloping property of 5.11).
pub fn trigamma(prec: u32, x: &Float) -> Ball {
    assert!(*x > 0, "trigamma needs a positive argument");
    let wp = prec + 32;
    let threshold = f64::from(prec.max(32));
    let mut shift_sum = Ball::exact(wp, 0);
    let mut y = Float::with_val(EXACT_ARG_PREC, x);
    while y < threshold {
        let term = Ball::correctly_rounded(wp, &y * &y).recip();
        shift_sum = shift_sum.add(&term);
        y += 1u32;
    }
    let yb = Ball::correctly_rounded(wp, &y);
    let inv = yb.recip();
    let inv2 = inv.square();
    let mut total = inv.add(&inv2.mul_f64(0.5));
    let eps = Float::with_val(64, Float::i_exp(1, -(wp as i32)));
    let mut power = inv.mul(&inv2); // 1/y^3
    let mut k = 1usize;
    loop {
        let b = Ball::exact(wp, bernoulli(2 * k));
        let term = b.mul(&power);
        let next_power = power.mul(&inv2);
        let next = Ball::exact(wp, bernoulli(2 * k + 2)).mul(&next_power);
        total = total.add(&term);
        let bound = Float::with_val_round(64, next.mid().abs_ref(), Round::Up).0
            + Float::with_val_round(64, next.rad(), Round::Up).0;
        let scale = Float::with_val(64, total.mid().abs_ref());
        if bound <= Float::with_val(64, &scale * &eps) || k > 400 {
            total = total.widen(&bound);
            break;
        }
        power = next_power;
        k += 1;
    }
    shift_sum.add(&total).rounded_to(prec)
}

/// psi'(m/2) for an integer m >= 1 from the exact finite forms:
/// psi'(j) = pi^2/6 - sum_{i<j} 1/i^2, psi'(j + 1/2) = pi^2/2 - 4 sum_{i=1}^{j} 1/(2i-1)^2.
pub fn trigamma_half_integer_exact(prec: u32, m: u64) -> Ball {
    let pi = Ball::correctly_rounded(prec, Constant::Pi);
    let pi2 = pi.square();
    let mut sum = Rational::new();
    if m.is_multiple_of(2) {
        for i in 1..m / 2 {
            sum += Rational::from((1, Integer::from(i) * i));
        }
        pi2.div(&Ball::exact(prec, 6)).sub(&Ball::exact(prec, sum))
    } else {
        for i in 1..=m / 2 {
            let odd = Integer::from(2 * i - 1);
            sum += Rational::from((4, Integer::from(&odd * &odd)));
        }
        pi2.div(&Ball::exact(prec, 2)).sub(&Ball::exact(prec, sum))
    }
}

/// psi(m/2) for an integer m >= 1 from the exact finite forms:
/// psi(j) = -gamma + H_{j-1}, psi(j + 1/2) = -gamma - 2 ln 2 + sum_{i=1}^{j} 2/(2i-1).
pub fn digamma_half_integer_exact(prec: u32, m: u64) -> Ball {
    let euler = Ball::correctly_rounded(prec, Constant::Euler);
    let mut sum = Rational::new();
    if m.is_multiple_of(2) {
        for i in 1..m / 2 {
            sum += Rational::from((1, i));
        }
        Ball::exact(prec, sum).sub(&euler)
    } else {
        for i in 1..=m / 2 {
            sum += Rational::from((2, 2 * i - 1));
        }
        let ln2 = Ball::correctly_rounded(prec, Constant::Log2);
        Ball::exact(prec, sum).sub(&euler).sub(&ln2.mul_f64(2.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bernoulli_numbers() {
        assert_eq!(bernoulli(1), Rational::from((-1, 2)));
        assert_eq!(bernoulli(2), Rational::from((1, 6)));
        assert_eq!(bernoulli(4), Rational::from((-1, 30)));
        assert_eq!(bernoulli(12), Rational::from((-691, 2730)));
        assert_eq!(bernoulli(7), Rational::new());
    }

    #[test]
    fn trigamma_matches_exact_sums() {
        for prec in [64u32, 200] {
            for m in [1u64, 2, 3, 9, 10, 99, 100, 401] {
                let fast = trigamma(prec, &exact_arg(m, 0.0));
                let exact = trigamma_half_integer_exact(prec + 64, m);
                assert!(fast.contains(exact.mid()), "m={m} prec={prec}");
                assert!(fast.certified_digits() as f64 >= f64::from(prec) * 0.30 - 3.0);
            }
        }
    }

    #[test]
    fn trigamma_asymptotic_error_bound_holds() {
        // Large arguments use the series alone (no shift): compare with a much higher precision.
        for m in [2001u64, 20_000, 1_000_001] {
            let lo = trigamma(64, &exact_arg(m, 0.0));
            let hi = trigamma(400, &exact_arg(m, 0.0));
            assert!(lo.contains(hi.mid()), "m={m}");
            assert!(hi.rad() < lo.rad());
        }
        // psi'(1) = pi^2/6
        let one = Float::with_val(64, 1u32);
        let pi = Float::with_val(300, Constant::Pi);
        assert!(trigamma(128, &one).contains(&(Float::with_val(300, &pi * &pi) / 6u32)));
    }

    #[test]
    fn digamma_matches_exact_sums() {
        for m in [1u64, 2, 5, 40, 77] {
            let mpfr = digamma(128, &exact_arg(m, 0.0));
            let exact = digamma_half_integer_exact(192, m);
            assert!(mpfr.contains(exact.mid()), "m={m}");
        }
    }
}
