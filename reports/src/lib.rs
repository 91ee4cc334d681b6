//! Theory beside simulation: long-form comparison tables (polars), figures (plotters) and the
//! report (`index.html`, `index.md`) that a reviewer regenerates with `collapse report` or
//! `cargo bench`.

pub mod figure;
pub mod gaussian;
pub mod gmm;
pub mod lm;
pub mod markov;
pub mod mvn;
pub mod report;
pub mod schedules;
pub mod section;
pub mod simulation;
pub mod strategies;
pub mod table;
pub mod vae;

pub use report::{Scale, run_report};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("table error: {0}")]
    Table(#[from] polars::prelude::PolarsError),
    #[error("figure error: {0}")]
    Figure(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Spec(#[from] collapse_analysis::SpecError),
    #[error(transparent)]
    Sim(#[from] collapse_sim::SimError),
}
