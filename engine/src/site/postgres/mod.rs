//! Sites whose OMOP CDM lives in PostgreSQL.
//!
//! Most OHDSI sites keep their CDM in a relational database and will not
//! export it. [`open_site`] plans and admits subplans as any site does and
//! runs them inside the database ([`backend`]) when every expression is
//! total there ([`total`]), and otherwise in DataFusion over the rows the
//! database returns for its scans (`fetch`); [`load`] puts a generated
//! site into a database, for tests and demos.

pub mod backend;
mod fetch;
pub mod load;
mod sql;
pub mod total;

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use tokio_postgres::{Client, NoTls};

use super::{SiteEngine, SiteGuards, site_session_config, tables};
use crate::site::error::{Result, SiteError};
use ihdsi_catalog::PrivacyPolicy;

/// A site whose CDM tables are in the PostgreSQL database at `url`: the
/// same permit check, admission, bounding, threshold and audit as every
/// site, with subplans run by [`backend::PostgresBackend`].
pub async fn open_site(
    id: &str,
    url: &str,
    policy: PrivacyPolicy,
    guards: SiteGuards,
) -> Result<SiteEngine> {
    let backend = backend::PostgresBackend::new(url);
    let present = backend.tables().await?;
    let ctx = SessionContext::new_with_config(site_session_config());
    let tables = tables::register_relational_tables(&ctx, id, &present, &guards.opt_out)?;
    if tables.is_empty() {
        return Err(SiteError::Data(format!(
            "site {id}: the PostgreSQL database holds none of the CDM's patient tables (load them with `ihdsi load postgres`)"
        )));
    }
    let subplans = Arc::new(super::subplan::Subplans::new(&guards.resources));
    Ok(SiteEngine {
        id: id.to_string(),
        ctx,
        backend: Arc::new(backend),
        policy,
        tables,
        guards,
        subplans,
    })
}

/// Connect to `url` (`postgres://user@host:port/db`). The connection task
/// runs until the client is dropped. Errors name the server's reason,
/// never the URL, which may hold a password.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| SiteError::Data(format!("cannot connect to PostgreSQL: {e}")))?;
    crate::tasks::run_to_end(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    // Dates and timestamps travel as text: pin how PostgreSQL writes them,
    // whatever the server's defaults (a zone with second offsets before
    // 1937 would not parse, and would shift every key).
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'",
        )
        .await
        .map_err(|e| pg_error("setting the session's date format", e))?;
    Ok(client)
}

/// A failure inside the database, named by its SQLSTATE. The server's own
/// message is not passed on: it can quote a value it failed on.
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> SiteError {
    let code = e
        .code()
        .map(|c| format!("SQLSTATE {}", c.code()))
        .unwrap_or_else(|| e.to_string());
    SiteError::Execution(format!("PostgreSQL: {what}: {code}"))
}
