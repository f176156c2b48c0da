//! Sites whose subplans run on an Apache Ballista cluster.
//!
//! A site that outgrows one machine (a national cancer centre with its
//! genomic data) keeps its Parquet files where its cluster's executors can
//! read them and runs its subplans there. The site's own process still
//! does everything that protects its patients: it plans the canonical
//! subplan over its own views (the `site` column, opted-out persons
//! removed), checks the permit, admits, bounds, adds the dominance
//! summaries, applies its threshold and audits. Only then does
//! [`BallistaBackend`] hand the admitted logical plan to the scheduler,
//! which serialises it (datafusion-proto: Parquet listing tables, filters,
//! aggregates) and runs it as stages on its executors. Nothing is
//! re-planned from SQL on the way, so the plan that runs is the plan that
//! was admitted, with one rewrite by the site: its opt-out list becomes a
//! `person_id NOT IN (…)` filter of literals
//! ([`super::tables::opt_out_as_filters`]).
//!
//! What crosses from the cluster back to the site's process is the plan's
//! output: per-group partial aggregates with their patient counts. The
//! executors' shuffle files between stages hold intermediate state (for
//! `count(DISTINCT person_id)`, the person ids of a group), so a site's
//! Ballista work directories are patient data and must be protected as
//! the Parquet files are; [`cluster::StandaloneCluster`] (demo, tests)
//! removes its work directory when it stops.

pub mod cluster;

use std::sync::Arc;

use ::ballista::prelude::SessionContextExt;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::backend::SiteBackend;
use super::tables::opt_out_as_filters;
use super::{SiteData, SiteEngine, SiteGuards, site_session_config};
use crate::bounded::ExecutionBudget;
use crate::site::error::{Result, SiteError};
use ihdsi_catalog::PrivacyPolicy;

/// A site whose Parquet files at `data` are read by the Ballista cluster
/// whose scheduler is at `scheduler` (`df://host:port`): the same permit
/// check, admission, bounding, threshold and audit as every site.
pub async fn open_site(
    data: SiteData,
    scheduler: &str,
    vocabulary: Option<&str>,
    policy: PrivacyPolicy,
    guards: SiteGuards,
) -> Result<SiteEngine> {
    let backend = BallistaBackend::connect(scheduler).await?;
    let site = SiteEngine::open_guarded(data, vocabulary, policy, guards).await?;
    Ok(site.with_backend(Arc::new(backend)))
}

/// Session settings every job of a site runs with, where Ballista 55's
/// defaults give wrong answers on the differential suite:
///
/// * its adaptive planner (on by default) returned no rows, in some runs
///   and not others, for a subplan with two semi joins over filtered
///   inputs (`… WHERE person_id IN (SELECT …) AND person_id IN (SELECT …)`
///   with an opt-out list): 2 of 8 runs right with it, 8 of 8 without. A
///   site must not answer differently from run to run, so jobs use the
///   static distributed planner;
/// * which then plans sort-merge joins (Ballista prefers them, for their
///   spilling), and DataFusion 55's sort-merge join with a join filter
///   panics on an index out of bounds (two queries of the suite). Hash
///   joins, as the site's own DataFusion runs them.
const SETTINGS: &[&str] = &[
    "SET ballista.planner.adaptive.enabled = false",
    "SET datafusion.optimizer.prefer_hash_join = true",
];

/// Runs admitted subplans on a Ballista cluster.
pub struct BallistaBackend {
    /// A client session whose query planner submits jobs to the scheduler.
    cluster: SessionContext,
}

impl std::fmt::Debug for BallistaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BallistaBackend").finish_non_exhaustive()
    }
}

impl BallistaBackend {
    /// A client of the scheduler at `scheduler` (`df://host:port`), with
    /// the site's session settings (they travel with every job). The
    /// scheduler is reached when a plan runs; [`Self::check`] reaches it
    /// now.
    pub async fn connect(scheduler: &str) -> Result<Self> {
        let state = SessionStateBuilder::new()
            .with_config(site_session_config())
            .with_default_features()
            .build();
        let cluster = SessionContext::remote_with_state(scheduler, state)
            .await
            .map_err(|e| SiteError::Data(format!("Ballista scheduler {scheduler}: {e}")))?;
        for setting in SETTINGS {
            cluster.sql(setting).await.map_err(|e| {
                SiteError::Data(format!("Ballista session setting `{setting}`: {e}"))
            })?;
        }
        let backend = Self { cluster };
        backend.check(scheduler).await?;
        Ok(backend)
    }

    /// Run a plan with no data on the cluster, so a site with an
    /// unreachable scheduler or no executor fails when it starts, not at
    /// an analyst's first query.
    async fn check(&self, scheduler: &str) -> Result<()> {
        let probe = self
            .cluster
            .sql("SELECT 1 AS ready")
            .await
            .map_err(|e| SiteError::Data(format!("Ballista scheduler {scheduler}: {e}")))?;
        probe.collect().await.map_err(|e| {
            SiteError::Data(format!(
                "Ballista scheduler {scheduler} did not run a probe job: {}",
                first_line(&e.to_string())
            ))
        })?;
        Ok(())
    }
}

/// The first line of a cluster error: job failures can append task
/// details (plans, with the site's opt-out list in them) below it.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

impl SiteBackend for BallistaBackend {
    fn name(&self) -> &'static str {
        "ballista"
    }

    /// The cluster's executors bound memory by their own settings
    /// (`ballista-executor --memory-pool-size`); the budget is not theirs
    /// to take from a site.
    fn collect(
        &self,
        plan: LogicalPlan,
        _budget: ExecutionBudget,
    ) -> BoxFuture<'_, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            // The opt-out list as a filter of literals: an in-memory
            // table cannot be serialised to the cluster.
            let plan = opt_out_as_filters(plan)?;
            let run = async {
                self.cluster
                    .execute_logical_plan(plan)
                    .await?
                    .collect()
                    .await
            };
            run.await.map_err(|e| {
                SiteError::Execution(format!("Ballista: {}", first_line(&e.to_string())))
            })
        })
    }
}
