//! `collapse-analysis`: the exact theory of model collapse in arbitrary precision.
//!
//! Every quantity is computed with MPFR (through `rug`) at a working precision chosen from the
//! digits the caller asks for, and carried as a [`ball::Ball`]: a midpoint with a rigorous
//! radius, so each value states how many of its digits are correct. Derivations are in
//! `proofs/` (one Markdown file per process).

pub mod ball;
pub mod gaussian;
pub mod markov;
pub mod schedule;
pub mod special;
pub mod verify;

pub use ball::Ball;
pub use gaussian::{Estimator, GaussianSpec, GaussianTheory, GenerationMoments};
pub use schedule::Schedule;

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
