//! Errors of the services (configuration, sockets, TLS, permits, authentication).

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
    /// The `[auth]` configuration cannot be used.
    #[error("authentication setup: {0}")]
    AuthSetup(String),
    /// Certificates or keys cannot be made or loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A data permit cannot be issued, read or selected.
    #[error("data permit: {0}")]
    Permit(String),
}

/// Why a call was not authenticated. The message never contains the secret
/// that was presented; it names what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error(
        "no credentials: log in with HTTP Basic through the Flight SQL handshake, then send the bearer token it returns"
    )]
    Missing,
    /// A header that is neither `Basic` nor `Bearer`, or undecodable.
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("invalid user name or password")]
    BadPassword {
        /// The claimed user, for the server log only.
        user: String,
    },
    /// A bearer token that was never issued or configured, or has been forged.
    #[error("unknown bearer token; log in again through the handshake")]
    UnknownToken,
    /// A token issued by the handshake whose lifetime is over.
    #[error("bearer token expired; log in again through the handshake")]
    Expired {
        /// Whose token it was, for the server log only.
        analyst: String,
    },
}
