//! Theory beside simulation: long-form comparison tables (polars) and figures (plotters).
pub mod figure;
pub mod table;
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
}
