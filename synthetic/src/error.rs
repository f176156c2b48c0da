//! Why a cohort could not be generated.
//!
//! The generator writes files only, so its failures are bad options, a
//! filesystem that refuses a write, or Arrow/Parquet refusing a batch.

use std::path::PathBuf;

use ihdsi_catalog::CatalogError;

/// Result alias for this crate.
pub type Result<T, E = SyntheticError> = std::result::Result<T, E>;

/// Everything that can go wrong while generating a cohort.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// The options ask for something the generator cannot do.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A site id the registry would not accept.
    #[error(transparent)]
    SiteId(#[from] CatalogError),
    /// A table name that is not part of the virtual schema.
    #[error("unknown table '{0}'")]
    UnknownTable(String),
    /// Filesystem failure while writing generated data.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Arrow or Parquet failure while writing generated data.
    #[error("cannot encode {table}: {message}")]
    Encode { table: String, message: String },
}
