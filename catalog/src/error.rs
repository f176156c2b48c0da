//! Errors raised while reading configuration.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Everything that can go wrong in the catalog crate.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is not valid TOML for its schema.
    #[error("invalid config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    ConfigInvalid(String),
    /// A table name that is not part of the virtual schema.
    #[error("unknown table '{0}'")]
    UnknownTable(String),
}
