//! Non-Gaussian truths D0 for the 1-D recursion: generation 1 is a Gaussian fitted to M_0
//! draws of D0, and the recursion is Gaussian from then on (derivations: `proofs/truths.md`).
//!
//! Every truth has mean 0 and variance sigma^2 (the spec's sigma), so it differs from the
//! Gaussian truth only in shape. For a Gaussian N(m, s^2) and D0 with quantile function F^-1,
//! the quantile coupling gives
//!   W2^2(N(m, s^2), D0) = int_0^1 (m + s Phi^-1(u) - F^-1(u))^2 du = m^2 + s^2 + sigma^2 - 2 s sigma rho,
//! with rho = int_0^1 Phi^-1(u) F^-1(u) du / sigma = E[Z g(Z)] / sigma, g = F^-1 o Phi: the
//! correlation of the comonotone coupling (1 for the normal, sqrt(3/pi) for the uniform).

use crate::SpecError;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::erf::erfc;

/// A true distribution with mean 0 and variance 1 (scaled by sigma by the caller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Truth {
    Normal,
    /// Laplace with scale 1/sqrt(2).
    Laplace,
    /// Student-t with nu > 2 degrees of freedom, scaled by sqrt((nu - 2)/nu).
    Student(f64),
    /// Uniform on [-sqrt(3), sqrt(3)].
    Uniform,
    /// 0.5 N(-a, t^2) + 0.5 N(a, t^2) with a^2 = 0.8, t^2 = 0.2 (bimodal).
    Mixture,
}

/// Mixture component offset a and spread t (a^2 + t^2 = 1).
pub const MIXTURE_OFFSET: f64 = 0.894_427_190_999_916; // sqrt(0.8)
pub const MIXTURE_SPREAD: f64 = 0.447_213_595_499_958; // sqrt(0.2)

/// Half-width of the quadrature range in z and its step (see [`ComonotoneCorrelation`]).
const QUADRATURE_LIMIT: f64 = 10.0;
const QUADRATURE_STEP: f64 = 1.0 / 512.0;

impl Truth {
    pub fn parse(text: &str) -> Result<Truth, SpecError> {
        let bad = |why: String| SpecError::invalid("truth", why);
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (text.trim(), None),
        };
        match (name, arg) {
            ("normal", None) => Ok(Truth::Normal),
            ("laplace", None) => Ok(Truth::Laplace),
            ("uniform", None) => Ok(Truth::Uniform),
            ("mixture", None) => Ok(Truth::Mixture),
            ("student", Some(a)) => {
                let nu: f64 = a
                    .parse()
                    .map_err(|_| bad(format!("'{a}' is not a number in '{text}'")))?;
                if nu.is_nan() || nu <= 2.0 {
                    return Err(bad(format!(
                        "student:{a} has infinite or undefined variance (needs nu > 2)"
                    )));
                }
                if !nu.is_finite() {
                    return Err(bad("student:inf is the normal truth: use normal".into()));
                }
                Ok(Truth::Student(nu))
            }
            ("student", None) => Err(bad(
                "'student' needs its degrees of freedom, e.g. student:5".into(),
            )),
            ("normal" | "laplace" | "uniform" | "mixture", Some(_)) => {
                Err(bad(format!("'{name}' takes no parameter")))
            }
            _ => Err(bad(format!(
                "unknown truth '{text}' (expected normal, laplace, student:NU, uniform or mixture)"
            ))),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Truth::Normal => "normal".into(),
            Truth::Laplace => "laplace".into(),
            Truth::Student(nu) => format!("student:{nu}"),
            Truth::Uniform => "uniform".into(),
            Truth::Mixture => "mixture".into(),
        }
    }

    /// The quantile function F^-1(u) of the standardised truth, for 0 < u < 1. All truths are
    /// symmetric, so u > 1/2 is evaluated as -F^-1(1 - u) (accurate in the upper tail).
    pub fn quantile(&self, u: f64) -> f64 {
        if u > 0.5 {
            return -self.lower_quantile(1.0 - u);
        }
        self.lower_quantile(u)
    }

    /// g(z) = F^-1(Phi(z)): the truth's value at normal score z (so g(Z), Z ~ N(0, 1), is a
    /// draw of the truth), evaluated through the lower tail Phi(-|z|) on both sides.
    pub fn at_normal_score(&self, z: f64) -> f64 {
        let u = 0.5 * erfc(z.abs() / std::f64::consts::SQRT_2); // Phi(-|z|)
        let x = self.lower_quantile(u);
        if z > 0.0 { -x } else { x }
    }

    /// F^-1(u) for 0 < u <= 1/2.
    fn lower_quantile(&self, u: f64) -> f64 {
        match self {
            Truth::Normal => standard_normal().inverse_cdf(u),
            Truth::Laplace => std::f64::consts::FRAC_1_SQRT_2 * (2.0 * u).ln(),
            Truth::Student(nu) => {
                let t = StudentsT::new(0.0, 1.0, *nu).expect("nu > 2 (validated)");
                t.inverse_cdf(u) * ((nu - 2.0) / nu).sqrt()
            }
            Truth::Uniform => 3f64.sqrt() * (2.0 * u - 1.0),
            Truth::Mixture => mixture_lower_quantile(u),
        }
    }

    /// The comonotone correlation rho with its error bound.
    pub fn comonotone_correlation(&self) -> ComonotoneCorrelation {
        match self {
            Truth::Normal => ComonotoneCorrelation {
                rho: 1.0,
                error_bound: 0.0,
                closed_form: true,
            },
            Truth::Uniform => ComonotoneCorrelation {
                rho: (3.0 / std::f64::consts::PI).sqrt(),
                error_bound: f64::EPSILON,
                closed_form: true,
            },
            _ => self.quadrature(),
        }
    }

    /// rho = E[Z g(Z)] = 2 int_0^inf z g(z) phi(z) dz (g is odd) by the trapezoid rule on
    /// [0, L] with steps h and h/2. The bound is the truncation term (Cauchy-Schwarz with
    /// E[g(Z)^2] = 1: |2 int_L^inf z g phi| <= sqrt(2 int_L^inf z^2 phi) = sqrt(2 (L phi(L) +
    /// Phi(-L)))) plus |T_h - T_{h/2}| as the estimate of the discretisation error, doubled.
    fn quadrature(&self) -> ComonotoneCorrelation {
        let trapezoid = |h: f64| {
            let steps = (QUADRATURE_LIMIT / h).round() as usize;
            let mut sum = 0.0;
            for i in 1..=steps {
                let z = i as f64 * h;
                let weight = if i == steps { 0.5 } else { 1.0 };
                sum += weight * z * self.at_normal_score(z) * normal_density(z);
            }
            2.0 * h * sum
        };
        let coarse = trapezoid(2.0 * QUADRATURE_STEP);
        let fine = trapezoid(QUADRATURE_STEP);
        let l = QUADRATURE_LIMIT;
        let tail =
            (2.0 * (l * normal_density(l) + 0.5 * erfc(l / std::f64::consts::SQRT_2))).sqrt();
        ComonotoneCorrelation {
            rho: fine,
            error_bound: 2.0 * (fine - coarse).abs() + tail + 64.0 * f64::EPSILON,
            closed_form: false,
        }
    }
}

/// rho of [`Truth::comonotone_correlation`] and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComonotoneCorrelation {
    pub rho: f64,
    /// |rho - exact| <= error_bound (closed forms: rounding only).
    pub error_bound: f64,
    pub closed_form: bool,
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("valid")
}

fn normal_density(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// CDF of the mixture at x <= 0, from the lower tails of both components.
fn mixture_cdf(x: f64) -> f64 {
    let (a, t) = (MIXTURE_OFFSET, MIXTURE_SPREAD);
    let lower = |y: f64| 0.5 * erfc(-y / std::f64::consts::SQRT_2);
    0.5 * (lower((x + a) / t) + lower((x - a) / t))
}

/// The mixture's quantile for u <= 1/2 by bisection on its CDF (monotone; 200 halvings reach
/// the f64 resolution from any bracket).
fn mixture_lower_quantile(u: f64) -> f64 {
    if u == 0.5 {
        return 0.0;
    }
    let (mut lo, mut hi) = (-1.0, 0.0);
    while mixture_cdf(lo) > u {
        lo *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        if mixture_cdf(mid) > u {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// W2^2(N(m, s^2), sigma D0) = m^2 + s^2 + sigma^2 - 2 s sigma rho, written as
/// m^2 + (s - sigma)^2 + 2 s sigma (1 - rho) so that nothing cancels when rho = 1.
pub fn w2_sq_to_truth(m: f64, s: f64, sigma: f64, rho: f64) -> f64 {
    m * m + (s - sigma) * (s - sigma) + 2.0 * s * sigma * (1.0 - rho)
}

#[cfg(test)]
mod tests;
