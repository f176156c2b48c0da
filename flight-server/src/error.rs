//! Errors of the `ihdsi` processes (configuration, sockets, client calls).

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// What can stop a command of the `ihdsi` binary.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Invalid configuration or data layout.
    #[error(transparent)]
    Catalog(#[from] ihdsi_catalog::CatalogError),
    /// Failure opening a site or coordinator.
    #[error(transparent)]
    Engine(#[from] ihdsi_engine::EngineError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("server error: {0}")]
    Serve(String),
    /// A client call to a coordinator failed.
    #[error("{0}")]
    Client(String),
    /// A data folder is missing or unusable.
    #[error("data folder {path}: {message}")]
    DataFolder { path: PathBuf, message: String },
}
