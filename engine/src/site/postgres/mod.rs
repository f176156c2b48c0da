//! Sites whose OMOP CDM lives in PostgreSQL.
//!
//! Most OHDSI sites keep their CDM in a relational database and will not
//! export it. This module connects to such a database and loads a
//! generated site into it ([`load`]), so that the federation's tests and
//! demos can run a PostgreSQL-backed site on real data.

pub mod load;

use tokio_postgres::{Client, NoTls};

use crate::error::{EngineError, Result};

/// Connect to `url` (`postgres://user@host:port/db`). The connection task
/// runs until the client is dropped. Errors name the server's reason,
/// never the URL, which may hold a password.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| EngineError::Data(format!("cannot connect to PostgreSQL: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> EngineError {
    EngineError::Data(format!("PostgreSQL: {what}: {e}"))
}
