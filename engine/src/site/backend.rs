//! Where a site's admitted subplan runs.
//!
//! Everything that protects a site's patients happens before and after a
//! backend runs anything: the permit check, admission of the canonical
//! subplan, contribution bounding, the dominance summaries, the site's own
//! threshold and its audit trail ([`super::SiteEngine::run`]). A backend
//! only executes a logical plan that has passed all of that and returns
//! its batches, so every backend is held to the same rules by construction.
//!
//! [`DataFusionBackend`] runs the plan in process over the site's Parquet
//! files (with opted-out persons already excluded by the table providers
//! the plan was made over). A backend for data that lives elsewhere (a
//! relational OMOP CDM, a cluster) receives the same plan and must run it
//! where the data is, returning only the plan's output.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::bounded::ExecutionBudget;
use crate::site::error::{Result, SiteError};

/// Executes a site's admitted, bounded subplans.
pub trait SiteBackend: Send + Sync + std::fmt::Debug {
    /// The backend's name in `site.toml` (`backend = "…"`), for logs.
    fn name(&self) -> &'static str;

    /// Run `plan` within `budget` and collect its output. The batches
    /// have the plan's output schema; the caller concatenates them. A
    /// backend whose work runs in the site's process holds it to the
    /// budget ([`crate::bounded`]); one that runs elsewhere is bounded by
    /// that system's own settings, and is stopped when the future is
    /// dropped.
    fn collect(
        &self,
        plan: LogicalPlan,
        budget: ExecutionBudget,
    ) -> BoxFuture<'_, Result<Vec<RecordBatch>>>;
}

/// DataFusion in the site's own process, over the session the plan was
/// made in.
#[derive(Clone)]
pub struct DataFusionBackend {
    ctx: SessionContext,
}

impl DataFusionBackend {
    /// Run plans in `ctx`, the session holding the site's tables.
    pub fn new(ctx: SessionContext) -> Self {
        Self { ctx }
    }
}

impl std::fmt::Debug for DataFusionBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionBackend").finish_non_exhaustive()
    }
}

impl SiteBackend for DataFusionBackend {
    fn name(&self) -> &'static str {
        "datafusion"
    }

    fn collect(
        &self,
        plan: LogicalPlan,
        budget: ExecutionBudget,
    ) -> BoxFuture<'_, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            crate::bounded::collect::<SiteError>(&self.ctx.state(), plan, budget).await
        })
    }
}
