//! Bounded execution: every DataFusion plan a site or the coordinator runs
//! for a query runs within that query's budget.
//!
//! * **Memory.** Each query gets its own memory pool
//!   (`FairSpillPool`, over a copy of the session whose other runtime parts,
//!   object stores and caches, are shared). Aggregations and sorts spill
//!   past it; an operator that cannot spill fails with [`LimitReached`]
//!   naming the limit. One query can no longer take the memory every
//!   other query needs.
//! * **Rows.** Operators that can multiply rows are guarded
//!   ([`row_guard`]): past `max_intermediate_rows` the query stops.
//! * **Cancellation.** The same guard yields to the scheduler, so a query
//!   whose caller is gone stops at its next batch instead of running on.
//!
//! The module is shared by a site and the coordinator, so it depends on
//! neither's error type: [`collect`] fails with the caller's own, which
//! names a [`LimitReached`] as its resource limit
//! (`crate::site::SiteError::ResourceLimit`, `crate::EngineError::ResourceLimit`)
//! and keeps any other DataFusion error whole.

mod row_guard;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;

use row_guard::{RowBudget, RowsExceeded};

/// A query (at the coordinator) or a subplan (at a site) passed one of its
/// [`ExecutionBudget`]'s limits and was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached {
    /// The config key of the limit (`subplan_memory_mb`,
    /// `query_memory_mb`, `max_intermediate_rows`).
    pub limit: &'static str,
    /// Its value in the config (MiB for memory).
    pub max: u64,
}

/// What one query (at the coordinator) or one subplan (at a site) may use
/// while DataFusion runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionBudget {
    /// Bytes its memory pool holds.
    pub memory_bytes: usize,
    /// Rows its joins, unions and unnests may produce together.
    pub max_rows: u64,
    /// The config key of `memory_bytes`, in MiB, for the refusal.
    pub memory_key: &'static str,
}

impl ExecutionBudget {
    /// A site's budget for one subplan.
    pub fn for_site(resources: &ihdsi_catalog::SiteResources) -> Self {
        Self {
            memory_bytes: resources.subplan_memory_bytes(),
            max_rows: resources.max_intermediate_rows,
            memory_key: "subplan_memory_mb",
        }
    }

    /// The coordinator's budget for one query.
    pub fn for_coordinator(resources: &ihdsi_catalog::CoordinatorResources) -> Self {
        Self {
            memory_bytes: resources.query_memory_bytes(),
            max_rows: resources.max_intermediate_rows,
            memory_key: "query_memory_mb",
        }
    }

    /// The error `err` is under this budget: one of its limits by name,
    /// or DataFusion's own error unchanged.
    fn classify<E>(&self, err: DataFusionError) -> E
    where
        E: From<DataFusionError> + From<LimitReached>,
    {
        let limit = match err.find_root() {
            DataFusionError::ResourcesExhausted(_) => {
                Some((self.memory_key, (self.memory_bytes >> 20) as u64))
            }
            DataFusionError::External(e) => e
                .downcast_ref::<RowsExceeded>()
                .map(|r| ("max_intermediate_rows", r.max)),
            _ => None,
        };
        match limit {
            Some((limit, max)) => {
                tracing::warn!(limit, max, cause = %err, "query stopped at a resource limit");
                LimitReached { limit, max }.into()
            }
            None => err.into(),
        }
    }
}

/// Plan `plan` in a copy of `state` whose memory pool holds
/// `budget.memory_bytes`, guard the operators that can multiply rows, run
/// it and collect its output. Fails with the caller's error `E` (a site's
/// or the coordinator's): a [`LimitReached`] when a limit stopped it, else
/// DataFusion's error.
pub async fn collect<E>(
    state: &SessionState,
    plan: LogicalPlan,
    budget: ExecutionBudget,
) -> Result<Vec<RecordBatch>, E>
where
    E: From<DataFusionError> + From<LimitReached>,
{
    let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
        .with_memory_pool(Arc::new(FairSpillPool::new(budget.memory_bytes)))
        .build_arc()?;
    let state = SessionStateBuilder::new_from_existing(state.clone())
        .with_runtime_env(runtime)
        .build();
    let physical = match state.create_physical_plan(&plan).await {
        Ok(physical) => physical,
        Err(e) => return Err(budget.classify::<E>(e)),
    };
    let guarded = row_guard::guard(physical, &RowBudget::new(budget.max_rows))?;
    datafusion::physical_plan::collect(guarded, state.task_ctx())
        .await
        .map_err(|e| budget.classify::<E>(e))
}
