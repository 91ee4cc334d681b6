//! `collapse-analysis`: the exact theory of model collapse in arbitrary precision.
//!
//! Every quantity is computed with MPFR (through `rug`) at a working precision chosen from the
//! digits the caller asks for, and carried as a [`ball::Ball`]: a midpoint with a rigorous
//! radius, so each value states how many of its digits are correct. Derivations are in
//! `proofs/` (one Markdown file per process).

pub mod ball;
pub mod gaussian;
pub mod gmm;
pub mod markov;
pub mod mvn;
pub mod schedule;
pub mod special;
pub mod strategy;
pub mod truth;
pub mod verify;

pub use ball::Ball;
pub use gaussian::{Estimator, GaussianSpec, GaussianTheory, GenerationMoments};
pub use mvn::{MvnSpec, MvnTheory};
pub use schedule::Schedule;
pub use strategy::Strategy;

/// Invalid input to a theory computation or a spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

impl SpecError {
    pub fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        SpecError::Invalid {
            what,
            why: why.into(),
        }
    }
}

/// Working precision in bits for `digits` significant decimal digits plus `guard_bits`.
pub fn bits_for_digits(digits: u32, guard_bits: u32) -> u32 {
    ((f64::from(digits) * std::f64::consts::LOG2_10).ceil() as u32).saturating_add(guard_bits)
}

/// Largest number of decimal digits a caller may request (precision cap ~ 2^16 bits).
pub const MAX_DIGITS: u32 = 1_000;

/// Runs `at_precision` from the precision for `digits` digits (plus `guard_bits`), doubling it
/// until `certified` reports at least `digits` digits, the cap [`gaussian::MAX_PRECISION_BITS`]
/// is reached, or a doubling gains no digit (the caller then reports the shortfall).
pub(crate) fn refine_until_certified<T>(
    digits: u32,
    guard_bits: u32,
    mut at_precision: impl FnMut(u32) -> Result<T, SpecError>,
    certified: impl Fn(&T) -> u32,
) -> Result<T, SpecError> {
    if digits == 0 || digits > MAX_DIGITS {
        return Err(SpecError::invalid(
            "digits",
            format!("must be in 1..={MAX_DIGITS}, got {digits}"),
        ));
    }
    let cap = gaussian::MAX_PRECISION_BITS;
    let mut prec = bits_for_digits(digits, guard_bits).min(cap);
    let mut previous = None;
    loop {
        let t = at_precision(prec)?;
        let got = certified(&t);
        // A doubling that certifies no further digit (an exact zero computed inexactly, say)
        // will not be rescued by more doublings: stop and let the caller report the shortfall.
        if got >= digits || prec >= cap || previous.is_some_and(|p| got <= p) {
            return Ok(t);
        }
        previous = Some(got);
        prec = (prec * 2).min(cap);
    }
}
