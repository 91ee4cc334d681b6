//! Midpoint-radius numbers over MPFR: `mid` is a `rug::Float` at the working precision and
//! `rad` a rigorous upper bound on |exact - mid|, rounded upwards at every step.
//!
//! Why this is valid: every MPFR operation used on midpoints (+, -, *, /, exp, ln, sqrt,
//! ln_gamma, digamma, zeta) is correctly rounded to nearest, so its rounding error is at most
//! half an ulp, which is at most |result| * 2^-prec. Each operation below adds that term to
//! the propagated radius; the propagation rules are the first-order-exact bounds stated on
//! each method (derived in `proofs/gaussian.md`, section "numerical error accounting").

use rug::float::Round;
use rug::ops::{AddAssignRound, MulAssignRound};
use rug::{Float, Rational};
use std::cmp::Ordering;

/// Precision of radii: plenty for an error bound, cheap to compute with.
const RAD_PREC: u32 = 64;

#[derive(Debug, Clone)]
pub struct Ball {
    mid: Float,
    rad: Float,
}

/// `value` evaluated into a radius-precision float, rounded up.
macro_rules! rad_up {
    ($e:expr) => {
        Float::with_val_round(RAD_PREC, $e, Round::Up).0
    };
}

/// `value` rounded to nearest at `prec` bits, and whether rounding changed it.
fn nearest<T>(prec: u32, value: T) -> (Float, bool)
where
    Float: rug::ops::AssignRound<T, Round = Round, Ordering = Ordering>,
{
    let (f, ord) = Float::with_val_round(prec, value, Round::Nearest);
    (f, ord != Ordering::Equal)
}

/// |x| rounded up to radius precision.
fn abs_up(x: &Float) -> Float {
    rad_up!(x.abs_ref())
}

impl Ball {
    /// An exact value (an integer, a rational or an f64 fits exactly at precision >= 64).
    pub fn exact(prec: u32, value: impl Into<Rational>) -> Ball {
        let q: Rational = value.into();
        let (mid, ord) = Float::with_val_round(prec, &q, Round::Nearest);
        let mut ball = Ball {
            mid,
            rad: Float::new(RAD_PREC),
        };
        if ord != Ordering::Equal {
            ball.add_rounding();
        }
        ball
    }

    /// An exact f64 (NaN and infinities are rejected by the callers' validation).
    pub fn from_f64(prec: u32, value: f64) -> Ball {
        Ball {
            mid: Float::with_val(prec.max(64), value),
            rad: Float::new(RAD_PREC),
        }
        .with_prec(prec)
    }

    /// A value known only to lie in mid +- rad.
    pub fn with_radius(mid: Float, rad: Float) -> Ball {
        Ball {
            mid,
            rad: rad_up!(rad.abs()),
        }
    }

    fn with_prec(mut self, prec: u32) -> Ball {
        if self.mid.prec() != prec {
            let ord = self.mid.set_prec_round(prec, Round::Nearest);
            if ord != Ordering::Equal {
                self.add_rounding();
            }
        }
        self
    }

    /// Adds the rounding error of the midpoint: |mid| * 2^-prec.
    fn add_rounding(&mut self) {
        let prec = self.mid.prec() as i32;
        let err = rad_up!(self.mid.abs_ref()) >> prec;
        self.rad.add_assign_round(&err, Round::Up);
    }

    fn from_parts(inexact: bool, mid: Float, rad: Float) -> Ball {
        let mut ball = Ball { mid, rad };
        if inexact {
            ball.add_rounding();
        }
        ball
    }

    pub fn prec(&self) -> u32 {
        self.mid.prec()
    }
    pub fn mid(&self) -> &Float {
        &self.mid
    }
    pub fn rad(&self) -> &Float {
        &self.rad
    }
    pub fn to_f64(&self) -> f64 {
        self.mid.to_f64()
    }
    pub fn lower(&self) -> Float {
        Float::with_val_round(self.prec(), &self.mid - &self.rad, Round::Down).0
    }
    pub fn upper(&self) -> Float {
        Float::with_val_round(self.prec(), &self.mid + &self.rad, Round::Up).0
    }
    /// True when every point of the ball is > 0.
    pub fn is_positive(&self) -> bool {
        self.lower() > 0
    }
    /// True when the ball contains `x`.
    pub fn contains(&self, x: &Float) -> bool {
        let d = Float::with_val_round(
            RAD_PREC.max(x.prec()).max(self.prec()) + 8,
            x - &self.mid,
            Round::Nearest,
        )
        .0;
        d.abs() <= self.rad
    }

    /// True when the ball contains the rational `q`, decided exactly (midpoint and radius are
    /// dyadic rationals).
    pub fn contains_rational(&self, q: &Rational) -> bool {
        let mid = self.mid.to_rational().expect("finite midpoint");
        let rad = self.rad.to_rational().expect("finite radius");
        Rational::from(q - &mid).abs() <= rad
    }

    /// Number of significant decimal digits that the radius certifies: the largest d with
    /// rad <= 0.5 * 10^-(d-1) * |mid| roughly; exact zero (rad 0, mid 0) is fully certified.
    pub fn certified_digits(&self) -> u32 {
        if self.rad.is_zero() {
            return u32::MAX;
        }
        if self.mid.is_zero() {
            return 0;
        }
        let rel = Float::with_val(RAD_PREC, &self.rad / abs_up(&self.mid));
        let digits = -rel.log10().to_f64();
        if digits.is_finite() && digits > 1.0 {
            (digits.floor() as u32).saturating_sub(1)
        } else {
            0
        }
    }

    pub fn add(&self, other: &Ball) -> Ball {
        let (mid, inexact) = nearest(self.prec(), &self.mid + &other.mid);
        Ball::from_parts(inexact, mid, rad_up!(&self.rad + &other.rad))
    }
    pub fn sub(&self, other: &Ball) -> Ball {
        let (mid, inexact) = nearest(self.prec(), &self.mid - &other.mid);
        Ball::from_parts(inexact, mid, rad_up!(&self.rad + &other.rad))
    }
    pub fn neg(&self) -> Ball {
        Ball {
            mid: Float::with_val(self.prec(), -&self.mid),
            rad: self.rad.clone(),
        }
    }
    /// |ab - AB| <= |a| rB + |b| rA + rA rB.
    pub fn mul(&self, other: &Ball) -> Ball {
        let (mid, inexact) = nearest(self.prec(), &self.mid * &other.mid);
        let mut rad = rad_up!(abs_up(&self.mid) * &other.rad);
        rad.add_assign_round(rad_up!(abs_up(&other.mid) * &self.rad), Round::Up);
        rad.add_assign_round(rad_up!(&self.rad * &other.rad), Round::Up);
        Ball::from_parts(inexact, mid, rad)
    }
    /// |a/b - A/B| <= (|a| rB + |b| rA) / (|b| (|b| - rB)), requires |b| > rB.
    pub fn div(&self, other: &Ball) -> Ball {
        let b_abs = other.mid.clone().abs();
        let denom_gap = Float::with_val_round(RAD_PREC, &b_abs - &other.rad, Round::Down).0;
        assert!(denom_gap > 0, "division by a ball that contains zero");
        let (mid, inexact) = nearest(self.prec(), &self.mid / &other.mid);
        let mut num = rad_up!(abs_up(&self.mid) * &other.rad);
        num.add_assign_round(rad_up!(&b_abs * &self.rad), Round::Up);
        let den = Float::with_val_round(RAD_PREC, &b_abs * &denom_gap, Round::Down).0;
        Ball::from_parts(inexact, mid, rad_up!(&num / &den))
    }
    pub fn mul_f64(&self, k: f64) -> Ball {
        self.mul(&Ball::from_f64(self.prec(), k))
    }
    pub fn square(&self) -> Ball {
        self.mul(self)
    }
    /// exp(a + d) - exp(a) is at most exp(a) (exp(r) - 1) in absolute value.
    pub fn exp(&self) -> Ball {
        let (mid, inexact) = nearest(self.prec(), self.mid.exp_ref());
        let growth = Float::with_val_round(RAD_PREC, self.rad.exp_m1_ref(), Round::Up).0;
        // exp(a) <= |mid| (1 + 2^-prec) <= 2 |mid|.
        let mut rad = rad_up!(abs_up(&mid) * &growth);
        rad.mul_assign_round(2, Round::Up);
        Ball::from_parts(inexact, mid, rad)
    }
    /// |ln(a + d) - ln(a)| <= r / (a - r), requires a - r > 0.
    pub fn ln(&self) -> Ball {
        let gap = Float::with_val_round(RAD_PREC, &self.mid - &self.rad, Round::Down).0;
        assert!(gap > 0, "logarithm of a ball that is not positive");
        let (mid, inexact) = nearest(self.prec(), self.mid.ln_ref());
        Ball::from_parts(inexact, mid, rad_up!(&self.rad / &gap))
    }
    /// |sqrt(a + d) - sqrt(a)| <= r / sqrt(a), requires a - r >= 0.
    pub fn sqrt(&self) -> Ball {
        let gap = Float::with_val_round(RAD_PREC, &self.mid - &self.rad, Round::Down).0;
        assert!(gap >= 0, "square root of a ball that is not non-negative");
        let (mid, inexact) = nearest(self.prec(), self.mid.sqrt_ref());
        if self.rad.is_zero() {
            return Ball::from_parts(inexact, mid, Float::new(RAD_PREC));
        }
        let root = Float::with_val_round(RAD_PREC, self.mid.sqrt_ref(), Round::Down).0;
        Ball::from_parts(inexact, mid, rad_up!(&self.rad / &root))
    }
    /// A correctly rounded (to nearest) evaluation of an exact expression, e.g.
    /// `x.ln_gamma_ref()` for an exact x: its error is at most half an ulp.
    pub fn correctly_rounded<T>(prec: u32, value: T) -> Ball
    where
        Float: rug::ops::AssignRound<T, Round = Round, Ordering = Ordering>,
    {
        let (mid, inexact) = nearest(prec, value);
        Ball::from_parts(inexact, mid, Float::new(RAD_PREC))
    }
    /// self^e for a small exponent (repeated multiplication).
    pub fn pow_u(&self, e: u32) -> Ball {
        self.pow_u64(u64::from(e))
    }
    /// self^e by binary powering (each product adds its rounding to the radius).
    pub fn pow_u64(&self, mut e: u64) -> Ball {
        let mut result = Ball::exact(self.prec(), 1);
        let mut base = self.clone();
        while e > 0 {
            if e & 1 == 1 {
                result = result.mul(&base);
            }
            e >>= 1;
            if e > 0 {
                base = base.square();
            }
        }
        result
    }
    /// 1 / self.
    pub fn recip(&self) -> Ball {
        Ball::exact(self.prec(), 1).div(self)
    }
    /// The same value at another precision (rounding the midpoint if needed).
    pub fn rounded_to(&self, prec: u32) -> Ball {
        self.clone().with_prec(prec)
    }
    /// Sum of balls in the given order.
    pub fn sum<'a>(prec: u32, terms: impl IntoIterator<Item = &'a Ball>) -> Ball {
        terms
            .into_iter()
            .fold(Ball::exact(prec, 0), |acc, t| acc.add(t))
    }
    /// Widens the radius by `extra` (a bound on an omitted term).
    pub fn widen(&self, extra: &Float) -> Ball {
        let mut b = self.clone();
        b.rad.add_assign_round(rad_up!(extra.abs_ref()), Round::Up);
        b
    }
    /// The smallest ball (at this precision) containing both endpoints.
    pub fn hull(prec: u32, lo: &Float, hi: &Float) -> Ball {
        let (mid, _) = nearest(prec, Float::with_val(prec + 64, lo + hi) / 2u32);
        let a = rad_up!(Float::with_val_round(prec + 64, hi - &mid, Round::Up).0);
        let b = rad_up!(Float::with_val_round(prec + 64, &mid - lo, Round::Up).0);
        Ball {
            rad: if a > b { a } else { b },
            mid,
        }
    }

    /// The midpoint as a decimal string with `digits` significant digits: plain notation for
    /// moderate exponents, scientific otherwise.
    pub fn to_decimal(&self, digits: u32) -> String {
        format_decimal(&self.mid, digits)
    }

    /// The enclosure as decimals [lo, hi] with `digits` significant digits each, lo rounded
    /// down and hi up: the exact value lies between them.
    pub fn to_decimal_bounds(&self, digits: u32) -> (String, String) {
        (
            format_decimal_round(&self.lower(), digits, Round::Down),
            format_decimal_round(&self.upper(), digits, Round::Up),
        )
    }
}

/// Formats `x` with `digits` significant decimal digits (round to nearest).
pub fn format_decimal(x: &Float, digits: u32) -> String {
    format_decimal_round(x, digits, Round::Nearest)
}

/// Formats `x` with `digits` significant decimal digits, rounded in the direction `round`
/// (MPFR's conversion rounds correctly in every direction, so `Round::Down` never exceeds `x`
/// and `Round::Up` is never below it).
pub fn format_decimal_round(x: &Float, digits: u32, round: Round) -> String {
    if x.is_zero() {
        return "0".to_string();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let (neg, mantissa, exp) = x.to_sign_string_exp_round(10, Some(digits.max(1) as usize), round);
    // value = 0.mantissa * 10^exp
    let exp = exp.unwrap_or(0);
    let sign = if neg { "-" } else { "" };
    let mantissa = mantissa.trim_end_matches('0');
    let mantissa = if mantissa.is_empty() { "0" } else { mantissa };
    let point = exp; // digits before the decimal point
    if (-5..=21).contains(&point) {
        if point <= 0 {
            format!("{sign}0.{}{}", "0".repeat((-point) as usize), mantissa)
        } else if point as usize >= mantissa.len() {
            format!(
                "{sign}{}{}",
                mantissa,
                "0".repeat(point as usize - mantissa.len())
            )
        } else {
            let (a, b) = mantissa.split_at(point as usize);
            format!("{sign}{a}.{b}")
        }
    } else {
        let (a, b) = mantissa.split_at(1);
        let frac = if b.is_empty() {
            String::new()
        } else {
            format!(".{b}")
        };
        format!("{sign}{a}{frac}e{}", point - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formatting() {
        let f = |v: f64, d| format_decimal(&Float::with_val(64, v), d);
        assert_eq!(f(1.0, 5), "1");
        assert_eq!(f(0.125, 5), "0.125");
        assert_eq!(f(-1234.5, 3), "-1230");
        assert_eq!(f(1.5e-9, 3), "1.5e-9");
        assert_eq!(f(2.0e30, 2), "2e30");
        assert_eq!(f(0.0, 3), "0");
        assert_eq!(
            "0.333".parse::<f64>().unwrap(),
            f(1.0 / 3.0, 3).parse::<f64>().unwrap()
        );
    }

    #[test]
    fn radius_covers_ln_exp_chain() {
        // exp(ln(x)) at 64 bits must contain x exactly, and agree with a 256-bit route.
        let x = Ball::exact(64, Rational::from((7, 3)));
        let y = x.ln().exp();
        let reference = Float::with_val(512, Rational::from((7, 3)));
        assert!(y.contains(&reference));
        assert!(y.certified_digits() >= 15);
    }

    /// Decimal bounds bracket the exact value: ln 3 and -ln 3 at 10 digits (both directions of
    /// rounding), 1/7 at 5 digits, and an exact 0.25 whose bounds are itself.
    #[test]
    fn decimal_bounds_bracket_the_value() {
        // Decimals parsed at 2000 bits: their rounding is far below the gaps compared here.
        let parse = |text: &str| Float::with_val(2000, Float::parse(text).unwrap());
        for (ball, exact) in [
            (Ball::exact(200, 3).ln(), Float::with_val(2000, 3u32).ln()),
            (
                Ball::exact(200, 3).ln().neg(),
                -Float::with_val(2000, 3u32).ln(),
            ),
            (
                Ball::exact(200, Rational::from((1, 7))),
                Float::with_val(2000, Rational::from((1, 7))),
            ),
        ] {
            for digits in [5, 10] {
                let (lo, hi) = ball.to_decimal_bounds(digits);
                let (lo, hi) = (parse(&lo), parse(&hi));
                assert!(
                    lo < exact && exact < hi,
                    "{lo} < {exact} < {hi} at {digits} digits"
                );
                // Tight: the gap is at most two units in the last of `digits` places.
                let gap = Float::with_val(64, &hi - &lo) / Float::with_val(64, exact.abs_ref());
                assert!(gap.to_f64() < 2.0 * 10f64.powi(1 - digits as i32), "{gap}");
            }
        }
        let quarter = Ball::exact(100, Rational::from((1, 4)));
        assert_eq!(
            quarter.to_decimal_bounds(8),
            ("0.25".to_string(), "0.25".to_string())
        );
    }

    #[test]
    fn division_and_sqrt_cover_reference() {
        let p = 80;
        let a = Ball::exact(p, 2).sqrt();
        let b = Ball::exact(p, 3).ln();
        let q = a.div(&b).mul(&a).sub(&Ball::exact(p, 1));
        let r = Float::with_val(600, 2u32) / Float::with_val(600, 3u32).ln()
            - Float::with_val(600, 1u32);
        assert!(q.contains(&r), "{q:?} vs {r}");
    }
}
