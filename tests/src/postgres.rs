//! The private PostgreSQL server of a test (the demo's own,
//! [`ihdsi_cli::demo::postgres::PgServer`]), in a temporary
//! folder named after the test.

pub use ihdsi_cli::demo::postgres::PgServer;

/// Start a server for the test `name`; panics, naming the cause, when it
/// cannot (the server binaries missing, say).
pub async fn start(name: &str) -> PgServer {
    let dir = std::env::temp_dir().join(format!("ihdsi-pg-{name}-{}", std::process::id()));
    PgServer::start(&dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
