//! Why an `ihdsi` command failed.
//!
//! The services' own failures ([`ServerError`]) pass through unchanged;
//! what is added here is what only a command meets: a client call to a
//! coordinator, a data folder, a cohort to generate, a permit file.

use std::path::PathBuf;

use ihdsi_flight_server::ServerError;

/// Result alias for this crate.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// What can stop a command of the `ihdsi` binary.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A site, coordinator or their configuration failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Invalid configuration or data layout.
    #[error(transparent)]
    Catalog(#[from] ihdsi_catalog::CatalogError),
    /// Failure opening a coordinator.
    #[error(transparent)]
    Engine(#[from] ihdsi_engine::EngineError),
    /// Failure opening or loading a site (its data, its backend, its
    /// audit trail).
    #[error(transparent)]
    Site(#[from] ihdsi_engine::SiteError),
    /// The synthetic cohort could not be generated.
    #[error(transparent)]
    Synthetic(#[from] ihdsi_synthetic::SyntheticError),
    /// A server task stopped with an error.
    #[error("server error: {0}")]
    Serve(String),
    /// A client call to a coordinator failed.
    #[error("{0}")]
    Client(String),
    /// A data permit cannot be issued, written or read.
    #[error("data permit: {0}")]
    Permit(String),
    /// A config file could not be written.
    #[error("cannot write {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A process of a federation did not come up.
    #[error("cannot start `ihdsi {what}`: {message} (log: {})", log.display())]
    Start {
        what: String,
        message: String,
        log: PathBuf,
    },
    /// A data folder is missing or unusable.
    #[error("data folder {path}: {message}")]
    DataFolder { path: PathBuf, message: String },
}
