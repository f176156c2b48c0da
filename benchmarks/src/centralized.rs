//! The centralized configuration: one DataFusion session over the union of
//! every site's files. It is the pooled database an analyst has in mind,
//! built from our own stack (the same table registration as the sites and
//! as the correctness oracle), so the difference to the federated figure is
//! the price of federation alone. No thresholds apply here.

use datafusion::prelude::SessionContext;
use ihdsi_engine::site::{SiteData, register_tables};
use ihdsi_flight_server::demo::site_folders;

use crate::cohort::Cohort;
use crate::error::{BenchError, Result};

/// One session over the whole cohort.
#[derive(Clone)]
pub struct Centralized {
    ctx: SessionContext,
}

impl std::fmt::Debug for Centralized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Centralized").finish_non_exhaustive()
    }
}

impl Centralized {
    /// Register the union of `cohort`'s site files.
    pub async fn open(cohort: &Cohort) -> Result<Self> {
        let fail = |e: &dyn std::fmt::Display| BenchError::Cohort {
            path: cohort.dir.clone(),
            message: e.to_string(),
        };
        let sites: Vec<SiteData> = site_folders(&cohort.dir)
            .map_err(|e| fail(&e))?
            .into_iter()
            .map(|(id, p)| SiteData {
                id,
                location: p.display().to_string(),
            })
            .collect();
        let ctx = SessionContext::new();
        let vocabulary = cohort.dir.join("concept.parquet").display().to_string();
        register_tables(&ctx, &sites, Some(&vocabulary))
            .await
            .map_err(|e| fail(&e))?;
        Ok(Self { ctx })
    }

    /// Plan, run and collect `sql`; returns the number of rows.
    pub async fn run(&self, name: &str, sql: &str) -> Result<usize> {
        let fail = |e: datafusion::error::DataFusionError| BenchError::Query {
            query: name.to_string(),
            config: "centralized",
            message: e.to_string(),
        };
        let batches = self
            .ctx
            .sql(sql)
            .await
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }
}
