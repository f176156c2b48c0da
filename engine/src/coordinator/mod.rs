//! The coordinator: plan, fan out, merge, threshold, and run the rest of the
//! query over the released groups.
//!
//! ```text
//! SQL ─► plan_query ─► for each release, in parallel:
//!                         fan_out(site SQL) ─► sites ─► partials
//!                         merge + federation threshold ─► released table
//!      ─► coordinator_plan(released tables) ─► DataFusion ─► result
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::audit::{AuditLog, SubplanSql};
use crate::disclosure::Disclosure;
use crate::disclosure::differencing::DifferencingDetector;
use crate::disclosure::plausibility::check_site_answer;
use crate::dp::OsUniform;
use crate::error::{EngineError, Result};
use crate::fanout::{SiteClient, fan_out};
use crate::progress::Progress;
use crate::protocol::SubplanRequest;
use ihdsi_catalog::{FederationConfig, PrivacyPolicy};
use ihdsi_planner::{
    FederatedPlan, Release, explain::explain_rows, plan_query, plan_query_with_params,
    register_virtual_schema,
};

mod audit;
mod privacy;
mod timings;

use privacy::DpGate;
pub use privacy::DpReceipt;

pub use timings::QueryTimings;
use timings::micros;

/// Schema-metadata keys of a federated result.
pub mod metadata {
    /// Groups withheld by the federation's threshold after merging.
    pub const SUPPRESSED: &str = "ihdsi.suppressed_groups";
    /// Site-level partial groups withheld by the sites' own thresholds.
    pub const SITE_SUPPRESSED: &str = "ihdsi.site_suppressed_groups";
    /// The coordinator's query id.
    pub const QUERY_ID: &str = "ihdsi.query_id";
    /// Comma-separated ids of the sites that answered.
    pub const SITES: &str = "ihdsi.sites";
    /// Base to which released counts are rounded (1 = exact).
    pub const COUNTS_ROUNDED_TO: &str = "ihdsi.counts_rounded_to";
    /// `threshold` or `dp`.
    pub const PRIVACY_MODE: &str = "ihdsi.privacy_mode";
    /// dp: ρ charged for this query (0 when every release was cached).
    pub const RHO_CHARGED: &str = "ihdsi.dp.rho_charged";
    /// dp: ρ left on the principal's budget after this query.
    pub const RHO_REMAINING: &str = "ihdsi.dp.rho_remaining";
    /// dp: the principal's total budget.
    pub const RHO_TOTAL: &str = "ihdsi.dp.rho_total";
    /// dp: releases answered from the cache, free.
    pub const CACHED: &str = "ihdsi.dp.cached_releases";
    /// dp: JSON, per release: each aggregate's noise standard deviation and
    /// the noisy threshold of group selection.
    pub const NOISE: &str = "ihdsi.dp.noise";
}

/// Who runs a query, under which id and permit, and where its progress is
/// recorded.
#[derive(Debug, Clone)]
pub struct QueryContext {
    /// The authenticated analyst; sent to every site and logged there.
    pub analyst: String,
    pub query_id: String,
    pub progress: Progress,
    /// The signed data permit attached to every subplan.
    pub permit: Option<String>,
}

impl QueryContext {
    /// A context with a fresh progress record.
    pub fn new(analyst: &str, query_id: &str) -> Self {
        Self {
            analyst: analyst.to_string(),
            query_id: query_id.to_string(),
            progress: Progress::default(),
            permit: None,
        }
    }

    /// The same context under a data permit.
    pub fn with_permit(mut self, permit: Option<String>) -> Self {
        self.permit = permit;
        self
    }
}

/// The answer to one analyst query.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub query_id: String,
    /// Result schema (all fields nullable) with the metadata above.
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub suppressed_groups: u64,
    pub site_suppressed_groups: u64,
    pub sites: Vec<String>,
    /// Bytes of Flight messages received from sites (not shown to analysts).
    pub bytes_from_sites: u64,
    /// Where the time went (logged, not shown to analysts).
    pub timings: QueryTimings,
    /// dp mode: what the query cost and how it was noised.
    pub dp: Option<DpReceipt>,
}

/// A running coordinator.
#[derive(Clone)]
pub struct Coordinator {
    ctx: SessionContext,
    sites: Vec<SiteClient>,
    policy: PrivacyPolicy,
    audit: Option<Arc<AuditLog>>,
    differencing: Arc<DifferencingDetector>,
    dp: Option<Arc<DpGate>>,
    /// The federation's release rules.
    disclosure: Arc<Disclosure>,
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
        let timeout = Duration::from_secs(config.coordinator.site_timeout_secs.max(1));
        let tls = config.tls.as_ref().map(client_tls).transpose()?;
        let sites = config
            .sites
            .iter()
            .map(|s| SiteClient::new(s.clone(), timeout, tls.clone()))
            .collect::<Result<Vec<_>>>()?;
        let audit = match &config.audit {
            Some(a) => Some(Arc::new(AuditLog::open(&a.path, "coordinator")?)),
            None => None,
        };
        let dp = match config.privacy.mode {
            ihdsi_catalog::PrivacyMode::Dp => Some(Arc::new(DpGate::open(&config.privacy)?)),
            ihdsi_catalog::PrivacyMode::Threshold => None,
        };
        Ok(Self {
            dp,
            disclosure: Arc::new(Disclosure::new(&config.privacy)),
            ctx,
            sites,
            policy: config.privacy.clone(),
            audit,
            differencing: Arc::new(DifferencingDetector::new(config.privacy.min_group_size)),
        })
    }

    /// The federation's privacy policy.
    pub fn policy(&self) -> &PrivacyPolicy {
        &self.policy
    }

    /// The session holding the virtual schema (for catalog browsing).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plan without running.
    pub async fn plan(&self, sql: &str) -> Result<FederatedPlan> {
        Ok(plan_query(&self.ctx.state(), sql, &self.policy).await?)
    }

    fn sites_for(&self, release: &Release) -> Result<Vec<&SiteClient>> {
        let chosen: Vec<&SiteClient> = self
            .sites
            .iter()
            .filter(|s| release.tables.iter().all(|t| s.entry.hosts(t)))
            .collect();
        if chosen.is_empty() {
            return Err(EngineError::NoSiteHosts(
                release
                    .tables
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Ok(chosen)
    }

    /// Run one analyst query end to end.
    pub async fn execute(&self, sql: &str, analyst: &str, query_id: &str) -> Result<QueryOutcome> {
        self.execute_with_params(sql, None, &QueryContext::new(analyst, query_id))
            .await
    }

    /// Run one analyst query with values for its positional parameters,
    /// recording per-site progress in `cx.progress`. With an audit trail,
    /// the query is on record (durably) before any site is contacted, and
    /// so is its outcome before the answer is returned.
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
        params: Option<Vec<datafusion::common::ScalarValue>>,
        cx: &QueryContext,
    ) -> Result<QueryOutcome> {
        let deadline = match (&self.dp, self.policy.dp.response_ms) {
            (Some(_), ms) if ms > 0 => {
                Some(tokio::time::Instant::now() + Duration::from_millis(ms))
            }
            _ => None,
        };
        let started = Instant::now();
        let plan = match plan_query_with_params(&self.ctx.state(), sql, params, &self.policy).await
        {
            Ok(plan) => plan,
            Err(e) => {
                let e = EngineError::from(e);
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

    async fn run_plan(&self, plan: &FederatedPlan, cx: &QueryContext) -> Result<QueryOutcome> {
        type Run<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<ReleaseRun>> + Send + 'a>>;
        let (released, dp) = match &self.dp {
            Some(gate) => {
                let (runs, receipt) = self.run_private(gate, plan, cx).await?;
                (runs, Some(receipt))
            }
            None => {
                let runs: Vec<Run<'_>> = plan
                    .releases
                    .iter()
                    .map(|r| Box::pin(self.run_release(r, cx)) as Run<'_>)
                    .collect();
                (futures::future::try_join_all(runs).await?, None)
            }
        };
        let mut outcome = QueryOutcome {
            dp,
            query_id: cx.query_id.clone(),
            schema: Arc::new(Schema::empty()),
            batches: Vec::new(),
            suppressed_groups: 0,
            site_suppressed_groups: 0,
            sites: Vec::new(),
            bytes_from_sites: 0,
            timings: QueryTimings::default(),
        };
        let mut tables: Vec<Arc<dyn TableProvider>> = Vec::new();
        for r in released {
            let t = &mut outcome.timings;
            t.sites = t.sites.max(r.fan_out);
            t.slowest_site = t.slowest_site.max(r.slowest_site);
            t.merge += r.merge;
            outcome.suppressed_groups += r.suppressed;
            outcome.site_suppressed_groups += r.site_suppressed;
            outcome.bytes_from_sites += r.bytes;
            for s in r.sites {
                if !outcome.sites.contains(&s) {
                    outcome.sites.push(s);
                }
            }
            tables.push(Arc::new(MemTable::try_new(
                r.batch.schema(),
                vec![vec![r.batch]],
            )?));
        }
        outcome.sites.sort();
        let finish_started = Instant::now();
        let logical = plan.coordinator_plan(&tables)?;
        let batches = self
            .ctx
            .execute_logical_plan(logical)
            .await?
            .collect()
            .await?;
        let (schema, batches) = self.finish_schema(plan, batches, &outcome)?;
        outcome.schema = schema;
        outcome.batches = batches;
        outcome.timings.finish = finish_started.elapsed();
        Ok(outcome)
    }

    /// Each release's subplan SQL and the sites it goes to.
    fn subplans(&self, plan: &FederatedPlan) -> Result<Vec<SubplanSql>> {
        plan.releases
            .iter()
            .map(|r| {
                Ok(SubplanSql {
                    release: r.index,
                    sites: self
                        .sites_for(r)?
                        .iter()
                        .map(|s| s.entry.id.clone())
                        .collect(),
                    sql: r.site_sql.clone(),
                })
            })
            .collect()
    }

    async fn run_release(&self, release: &Release, cx: &QueryContext) -> Result<ReleaseRun> {
        let sites = self.sites_for(release)?;
        let req = SubplanRequest {
            query_id: cx.query_id.clone(),
            analyst: cx.analyst.clone(),
            release: release.index,
            sql: release.site_sql.clone(),
            permit: cx.permit.clone(),
            bounding: self.policy.effective_bounding(),
            dominance: !release.dominance.is_empty(),
        };
        let sent = Instant::now();
        let answers = fan_out(&sites, &req, &cx.progress).await?;
        let fan_out = sent.elapsed();
        let merge_started = Instant::now();
        let slowest_site = answers.iter().map(|a| a.site_elapsed).max();
        let site_suppressed = answers.iter().map(|a| a.suppressed).sum();
        let bytes = answers.iter().map(|a| a.bytes).sum();
        for a in &answers {
            let declared = sites
                .iter()
                .find(|s| s.entry.id == a.site)
                .and_then(|s| s.entry.patients);
            check_site_answer(release, &a.site, declared, &a.batches)?;
        }
        let released = self
            .disclosure
            .release(release, &answers, &mut OsUniform::default())?;
        let merge_time = merge_started.elapsed();
        if self.dp.is_none() {
            self.flag_differencing(cx, release, released.groups).await?;
        }
        let sites = answers.into_iter().map(|a| a.site).collect();
        Ok(ReleaseRun {
            batch: released.batch,
            suppressed: released.suppressed,
            site_suppressed,
            bytes,
            sites,
            fan_out,
            slowest_site: slowest_site.unwrap_or_default(),
            merge: merge_time,
        })
    }

    /// The announced schema: the plan's fields, all nullable, plus metadata.
    /// FlightInfo and DoGet both use this one schema.
    fn finish_schema(
        &self,
        plan: &FederatedPlan,
        batches: Vec<RecordBatch>,
        o: &QueryOutcome,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let fields = plan.result_schema()?.fields().clone();
        let mut metadata = vec![
            (metadata::QUERY_ID.to_string(), o.query_id.clone()),
            (metadata::SITES.to_string(), o.sites.join(",")),
            (
                metadata::PRIVACY_MODE.to_string(),
                self.policy.mode.as_str().to_string(),
            ),
        ];
        match &o.dp {
            // How many groups were withheld is not released in dp mode, nor
            // by default in threshold mode: the count itself tells that a
            // small group exists (A17).
            Some(receipt) => metadata.extend(privacy::metadata(receipt)),
            None => {
                metadata.push((
                    metadata::COUNTS_ROUNDED_TO.to_string(),
                    self.policy.round_counts_to.to_string(),
                ));
                if self.policy.report_suppressed {
                    metadata.extend([
                        (
                            metadata::SUPPRESSED.to_string(),
                            o.suppressed_groups.to_string(),
                        ),
                        (
                            metadata::SITE_SUPPRESSED.to_string(),
                            o.site_suppressed_groups.to_string(),
                        ),
                    ]);
                }
            }
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata.into_iter().collect()));
        let batches = batches
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())
                    .map_err(EngineError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((schema, batches))
    }

    fn explain(&self, plan: &FederatedPlan, cx: &QueryContext) -> Result<QueryOutcome> {
        let mut rows = explain_rows(
            plan,
            u64::try_from(self.policy.required_patients()).unwrap_or(u64::MAX),
            "set by each site",
        )?;
        if let Some(gate) = &self.dp {
            rows.extend(self.dry_run(gate, plan, cx)?);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, true),
            Field::new("plan", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.as_str()),
                )),
            ],
        )?;
        Ok(QueryOutcome {
            dp: None,
            query_id: cx.query_id.clone(),
            schema,
            batches: vec![batch],
            suppressed_groups: 0,
            site_suppressed_groups: 0,
            sites: vec![],
            bytes_from_sites: 0,
            timings: QueryTimings::default(),
        })
    }
}

#[derive(Debug)]
struct ReleaseRun {
    batch: RecordBatch,
    suppressed: u64,
    site_suppressed: u64,
    bytes: u64,
    sites: Vec<String>,
    fan_out: Duration,
    slowest_site: Duration,
    merge: Duration,
}

impl ReleaseRun {
    /// A release answered from the dp cache: no site was contacted.
    fn cached(c: privacy::CachedRelease) -> Self {
        Self {
            batch: c.batch,
            suppressed: 0,
            site_suppressed: 0,
            bytes: 0,
            sites: c.sites,
            fan_out: Duration::ZERO,
            slowest_site: Duration::ZERO,
            merge: Duration::ZERO,
        }
    }
}

/// One structured line per answered query: what the analyst got, and where
/// the time went (the coordinator's operator reads these; `ihdsi-bench`
/// parses them).
fn log_answered(cx: &QueryContext, o: &QueryOutcome) {
    let t = &o.timings;
    tracing::info!(
        query_id = cx.query_id,
        analyst = cx.analyst,
        suppressed = o.suppressed_groups,
        sites = o.sites.len(),
        bytes_from_sites = o.bytes_from_sites,
        planning_us = micros(t.planning),
        audit_us = micros(t.audit),
        sites_us = micros(t.sites),
        slowest_site_us = micros(t.slowest_site),
        transfer_us = micros(t.transfer()),
        merge_us = micros(t.merge),
        finish_us = micros(t.finish),
        "query answered"
    );
}

/// The coordinator's side of mutual TLS: pin the federation CA (never the
/// system roots) and present the coordinator's client certificate.
fn client_tls(tls: &ihdsi_catalog::security::CoordinatorTls) -> Result<ClientTlsConfig> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| EngineError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?)))
}
