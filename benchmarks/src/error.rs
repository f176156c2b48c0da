//! What can stop a benchmark run. Every variant names the configuration or
//! the file involved, so a failed run says where to look.

use std::path::PathBuf;

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The synthetic cohort could not be generated or read.
    #[error("cohort in {path}: {message}")]
    Cohort { path: PathBuf, message: String },
    /// A site or coordinator process did not come up.
    #[error("cannot start {what}: {message} (its log: {log})")]
    Start {
        what: String,
        message: String,
        log: PathBuf,
    },
    /// A query failed in one configuration; the run stops, as a missing
    /// number would silently bias a median.
    #[error("query '{query}' failed on {config}: {message}")]
    Query {
        query: String,
        config: &'static str,
        message: String,
    },
    /// The DuckDB runner could not be set up or broke its protocol.
    #[error("DuckDB: {0}")]
    DuckDb(String),
    /// A report file could not be written.
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    /// Invalid command-line input.
    #[error("{0}")]
    Usage(String),
}

/// Results of this crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
