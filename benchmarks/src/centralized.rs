//! The centralized configuration: one DataFusion session over the union of
//! every site's files. It is the pooled database an analyst has in mind,
//! built from our own stack (the same table registration as the sites and
//! as the correctness oracle), so the difference to the federated figure is
//! the price of federation alone. No thresholds apply here.
//!
//! [`Centralized::open_with_site_settings`] runs the same union with the
//! session settings every site uses, which separates the cost of those
//! settings (partial aggregation is never skipped, a privacy defence) from
//! the cost of federating.

use datafusion::prelude::SessionConfig;
use datafusion::prelude::SessionContext;
use ihdsi_cli::federation::site_folders;
use ihdsi_engine::site::{SiteData, register_tables, site_session_config};

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
    /// Register the union of `cohort`'s site files, DataFusion defaults.
    pub async fn open(cohort: &Cohort) -> Result<Self> {
        Self::open_with(cohort, SessionConfig::new()).await
    }

    /// The same union under the sites' session settings.
    pub async fn open_with_site_settings(cohort: &Cohort) -> Result<Self> {
        Self::open_with(cohort, site_session_config()).await
    }

    async fn open_with(cohort: &Cohort, config: SessionConfig) -> Result<Self> {
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
        let ctx = SessionContext::new_with_config(config);
        // The engine's statistics (`kaplan_meier`, `histogram`), computed
        // on the pooled rows.
        ihdsi_planner::binned::register(&ctx);
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
