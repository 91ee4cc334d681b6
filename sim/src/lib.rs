//! `collapse-sim`: reproducible Monte Carlo ensembles of model collapse.
//!
//! A run is a pure function of (spec, seed): chain `c` draws from its own stream, seeded by the
//! counter-based Philox4x32-10 block of (seed, c), so results are bit-identical for any number
//! of threads; reductions over chains happen in chain order.

pub mod binomial;
pub mod gamma;
pub mod gaussian;
pub mod kernels;
pub mod markov;
pub mod normal;
pub mod progress;
pub mod rng;
pub mod stats;
pub mod vmath;

pub use gaussian::{GaussianRun, GenerationStats, Method, simulate};
pub use rng::ChainRng;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error(transparent)]
    Spec(#[from] collapse_analysis::SpecError),
}
