//! The coordinator: plan, fan out, merge, threshold, and run the rest of the
//! query over the released groups. This file holds the entry
//! ([`Coordinator::execute_with_params`]); each step is its own module:
//! [`routing`] (which sites serve a release, their clients and TLS),
//! [`release`] (running one release at its sites), [`finish`] (DataFusion
//! over the released tables, and the result's schema), [`explain`],
//! [`audit`] (the query's record) and [`mode`] (what differs between
//! threshold and dp mode, decided once at start-up).
//!
//! ```text
//! SQL ─► plan_query ─► for each release, in parallel:
//!                         fan_out(site SQL) ─► sites ─► partials
//!                         merge + federation threshold ─► released table
//!      ─► coordinator_plan(released tables) ─► DataFusion ─► result
//! ```

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::audit::AuditLog;
use crate::disclosure::Mechanism;
use crate::error::{EngineError, Result};
use crate::fanout::SiteClient;
use finish::log_answered;
use ihdsi_catalog::{CoordinatorResources, FederationConfig, PrivacyPolicy, QueryLimits};
use ihdsi_planner::{
    FederatedPlan, PlanError, check_limits, parameter_types, plan_query_with_params, plan_within,
    register_virtual_schema,
};

mod audit;
mod explain;
mod finish;
mod outcome;
mod release;
mod routing;
mod slots;
mod timings;

pub use crate::disclosure::budget::DpReceipt;
pub use crate::protocol::metadata;

pub use crate::query::QueryContext;
pub use outcome::{QueryOutcome, WithheldCells};
pub use timings::QueryTimings;

/// A running coordinator.
#[derive(Clone)]
pub struct Coordinator {
    ctx: SessionContext,
    sites: Vec<SiteClient>,
    policy: PrivacyPolicy,
    audit: Option<Arc<AuditLog>>,
    /// Threshold or dp: every rule and everything that differs between
    /// the modes.
    mechanism: Arc<Mechanism>,
    /// How big an analyst's statement may be before it is planned.
    limits: QueryLimits,
    /// How much of the coordinator one query may take.
    resources: CoordinatorResources,
    /// Queries running now, in all and per analyst.
    slots: slots::Slots,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("sites", &self.sites)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Coordinator {
    /// Build from `federation.toml`.
    pub async fn new(config: &FederationConfig) -> Result<Self> {
        let ctx = SessionContext::new_with_config(
            SessionConfig::new()
                .with_information_schema(false)
                .with_default_catalog_and_schema(
                    ihdsi_catalog::schema::CATALOG_NAME,
                    ihdsi_catalog::schema::SCHEMA_NAME,
                ),
        );
        register_virtual_schema(&ctx)?;
        if let Some(vocab) = &config.coordinator.vocabulary {
            crate::site::tables::register_vocabulary(&ctx, vocab).await?;
        }
        let sites = routing::site_clients(config)?;
        let audit = match &config.audit {
            Some(a) => Some(Arc::new(AuditLog::open(&a.path, "coordinator")?)),
            None => None,
        };
        Ok(Self {
            mechanism: Arc::new(Mechanism::open(
                &config.privacy,
                config.resources.result_cache_bytes(),
            )?),
            ctx,
            sites,
            policy: config.privacy.clone(),
            audit,
            limits: config.limits,
            resources: config.resources,
            slots: slots::Slots::new(&config.resources),
        })
    }

    /// How much of the coordinator one query, and one analyst, may take.
    pub fn resources(&self) -> &CoordinatorResources {
        &self.resources
    }

    /// The federation's privacy policy.
    pub fn policy(&self) -> &PrivacyPolicy {
        &self.policy
    }

    /// Whether analysts may follow a running query's per-site progress
    /// (not in dp mode: it would time each site's work on the data).
    pub fn shows_progress(&self) -> bool {
        self.mechanism.shows_progress()
    }

    /// The session holding the virtual schema (for catalog browsing).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plan without running.
    pub async fn plan(&self, sql: &str) -> Result<FederatedPlan> {
        self.plan_bounded(sql, None).await
    }

    /// Plan `sql` within the statement limits: measured on its tokens
    /// first, then planned on a thread whose stack is sized for them, and
    /// given up after `max_planning_ms` (`ihdsi_planner::plan_within`).
    async fn plan_bounded(
        &self,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<FederatedPlan> {
        self.within_limits(sql, move |state, sql, policy| async move {
            plan_query_with_params(&state, &sql, params, &policy).await
        })
        .await
    }

    /// Run `planning` over this coordinator's session, SQL and policy
    /// within the statement limits (see [`Coordinator::plan_bounded`]).
    async fn within_limits<T, F, Fut>(&self, sql: &str, planning: F) -> Result<T>
    where
        F: FnOnce(SessionState, String, PrivacyPolicy) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, PlanError>> + Send + 'static,
        T: Send + 'static,
    {
        check_limits(sql, &self.limits)?;
        let work = planning(self.ctx.state(), sql.to_string(), self.policy.clone());
        Ok(plan_within(&self.limits, work).await?)
    }

    /// A prepared statement for `analyst`: its positional parameters with
    /// the types DataFusion infers for them, and the schema of its result
    /// (planned with NULLs of those types), within the same limits and
    /// query slots as a query.
    pub async fn prepare(
        &self,
        sql: &str,
        analyst: &str,
    ) -> Result<(Vec<(String, DataType)>, Schema)> {
        let _slot = self.slots.enter(analyst)?;
        self.within_limits(sql, |state, sql, policy| async move {
            let params = parameter_types(&state, &sql).await?;
            let nulls = params
                .iter()
                .map(|(_, t)| ScalarValue::try_from(t).unwrap_or(ScalarValue::Null))
                .collect::<Vec<_>>();
            let values = (!params.is_empty()).then_some(nulls);
            let plan = plan_query_with_params(&state, &sql, values, &policy).await?;
            Ok((params, plan.result_schema()?))
        })
        .await
    }

    /// Run one analyst query end to end.
    pub async fn execute(&self, sql: &str, analyst: &str, query_id: &str) -> Result<QueryOutcome> {
        self.execute_with_params(sql, None, &QueryContext::new(analyst, query_id))
            .await
    }

    /// Run one analyst query with values for its positional parameters,
    /// recording per-site progress in `cx.progress`. With an audit trail,
    /// the query is on record (durably) before it is planned, its plan or
    /// refusal before any site is contacted, and its outcome before the
    /// answer is returned: an attempt that fails at any point is on the
    /// trail with how it ended.
    ///
    /// In dp mode an admitted query's answer, or its failure, leaves
    /// exactly `privacy.dp.response_ms` after the query arrived (A16): a
    /// query still running then is cancelled (every site request with it)
    /// and fails with [`EngineError::Deadline`], whatever the data. Queries
    /// refused while planning, from their text and the policy alone, are
    /// answered at once.
    pub async fn execute_with_params(
        &self,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
        cx: &QueryContext,
    ) -> Result<QueryOutcome> {
        let deadline = self.mechanism.deadline();
        let started = Instant::now();
        self.audit_received(cx, sql).await?;
        let admitted = async {
            let slot = self.slots.enter(&cx.analyst)?;
            Ok::<_, EngineError>((slot, self.plan_bounded(sql, params).await?))
        };
        let (_slot, plan) = match admitted.await {
            Ok(admitted) => admitted,
            Err(e) => {
                self.audit_query(cx, sql, Vec::new(), Err(&e)).await?;
                return Err(e);
            }
        };
        tracing::info!(
            query_id = cx.query_id,
            analyst = cx.analyst,
            releases = plan.releases.len(),
            explain = plan.explain,
            "query planned"
        );
        let subplans = match self.subplans(&plan) {
            Ok(s) => s,
            Err(e) => {
                self.audit_query(cx, sql, Vec::new(), Err(&e)).await?;
                return Err(e);
            }
        };
        let planning = started.elapsed();
        let audit_started = Instant::now();
        self.audit_query(cx, sql, subplans, Ok(())).await?;
        let mut audit = audit_started.elapsed();
        let outcome = if plan.explain {
            self.explain(&plan, cx)
        } else {
            self.run_until(&plan, cx, deadline).await
        };
        // A release that failed outside its own fan-out (its merge, a
        // plausibility check) drops the others' fan-outs before they can
        // say so: no line of the query's progress stays `running`.
        cx.progress.cancel_running();
        let audit_started = Instant::now();
        self.audit_result(cx, &outcome).await?;
        audit += audit_started.elapsed();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
        }
        let mut outcome = outcome?;
        outcome.timings.planning = planning;
        outcome.timings.audit = audit;
        log_answered(cx, &outcome);
        Ok(outcome)
    }

    /// Run `plan`, giving up at `deadline` if there is one.
    async fn run_until(
        &self,
        plan: &FederatedPlan,
        cx: &QueryContext,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<QueryOutcome> {
        let Some(deadline) = deadline else {
            return self.run_plan(plan, cx).await;
        };
        match tokio::time::timeout_at(deadline, self.run_plan(plan, cx)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(
                    query_id = cx.query_id,
                    code = "query.deadline",
                    "dp query cancelled at its response deadline"
                );
                Err(EngineError::Deadline {
                    query_id: cx.query_id.clone(),
                    ms: self.policy.dp.response_ms,
                })
            }
        }
    }
}
