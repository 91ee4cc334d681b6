//! `collapse-sim`: reproducible Monte Carlo ensembles of model collapse.
//!
//! A run is a pure function of (spec, seed): chain `c` draws from its own stream, seeded by the
//! counter-based Philox4x32-10 block of (seed, c), so results are bit-identical for any number
//! of threads; reductions over chains happen in chain order.

pub mod binomial;
pub mod checkpoint;
pub mod data;
pub mod files;
pub mod gamma;
pub mod gaussian;
pub mod gmm;
pub mod kernels;
pub mod lm;
pub mod markov;
pub mod mvn;
pub mod nn;
pub mod normal;
pub mod progress;
pub mod rng;
pub mod shard;
pub mod stats;
pub mod vae;
pub mod vmath;

pub use gaussian::{GaussianRun, GenerationStats, Method, simulate};
pub use rng::ChainRng;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error(transparent)]
    Spec(#[from] collapse_analysis::SpecError),
    /// A stop was requested (a signal) and the run ended at a generation boundary.
    #[error("interrupted")]
    Interrupted,
}

/// A piece's owned chains must be a non-empty part of the ensemble.
pub(crate) fn check_piece(owned: shard::ChainRange, chains: u64) -> Result<(), SimError> {
    if owned.is_empty() || owned.end > chains {
        return Err(SimError::Invalid {
            what: "shard",
            why: format!("chains {owned} are not a non-empty part of 0..{chains}"),
        });
    }
    Ok(())
}

/// The worker pool of an ensemble of `chains` chains (1..=`max_chains`) on `threads` threads
/// (None: rayon's default), after checking both.
pub(crate) fn ensemble_pool(
    chains: u64,
    max_chains: u64,
    threads: Option<usize>,
) -> Result<rayon::ThreadPool, SimError> {
    if chains == 0 || chains > max_chains {
        return Err(SimError::Invalid {
            what: "chains",
            why: format!("must be in 1..={max_chains}, got {chains}"),
        });
    }
    if let Some(t) = threads
        && (t == 0 || t > 1024)
    {
        return Err(SimError::Invalid {
            what: "threads",
            why: format!("must be in 1..=1024, got {t}"),
        });
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| SimError::Invalid {
            what: "threads",
            why: e.to_string(),
        })
}
