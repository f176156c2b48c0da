//! A site: checks the data permit, admits a subplan, runs it on its
//! backend (DataFusion over its own Parquet files, opted-out persons
//! already removed), and releases only the groups and cells that pass its
//! own threshold (`crate::disclosure::site`). Every subplan, run or refused, goes on the site's own audit
//! trail.
//!
//! Everything here fails with the site's own [`SiteError`] ([`error`]), not
//! the coordinator's `EngineError`: what the coordinator hears of a site's
//! failure is decided in one place, `crate::protocol::SiteFailure::of`.

pub mod backend;
#[cfg(feature = "ballista")]
pub mod ballista;
mod dominance;
pub mod error;
mod guards;
#[cfg(feature = "postgres")]
pub mod postgres;
mod subplan;
pub mod tables;

use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::bounded::ExecutionBudget;
use crate::disclosure::{self, site::AnswerShape};
use crate::protocol::SubplanRequest;
use backend::{DataFusionBackend, SiteBackend};
use error::Result;
pub use error::SiteError;
pub use guards::SiteGuards;
use ihdsi_catalog::registry::SiteBackendKind;
use ihdsi_catalog::{Bounding, PrivacyPolicy, SiteConfig, schema};
use ihdsi_planner::partials::bounding::bound_contributions;
use ihdsi_planner::partials::cells;
use ihdsi_planner::{PlanError, SiteAdmission, admit_subplan, check_limits, plan_within};
pub use tables::{SiteData, register_tables, register_tables_excluding};

/// Session settings every site uses.
///
/// `skip_partial_aggregation_probe_ratio_threshold = 1.0`: DataFusion may
/// otherwise switch its partial aggregation to emitting one state row per
/// input row when groups are nearly unique. The site's final aggregation
/// would still merge them, but we never want a per-row state to exist.
pub fn site_session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_default_catalog_and_schema(schema::CATALOG_NAME, schema::SCHEMA_NAME);
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = 1.0;
    config
}

/// What a site releases for one subplan.
#[derive(Debug, Clone)]
pub struct SiteAnswer {
    /// Partial aggregates of the groups that passed the site's threshold.
    pub batch: RecordBatch,
    /// Groups dropped under the site's `min_group_size`.
    pub suppressed: u64,
}

/// One site's engine.
#[derive(Clone)]
pub struct SiteEngine {
    id: String,
    /// The session subplans are planned and admitted in.
    ctx: SessionContext,
    /// Where admitted subplans run.
    backend: Arc<dyn SiteBackend>,
    policy: PrivacyPolicy,
    tables: Vec<String>,
    guards: SiteGuards,
    /// Subplans being worked on now, shared by every clone.
    subplans: Arc<subplan::Subplans>,
}

/// A subplan as this site read, admitted and bounded it.
struct Admitted {
    /// The subplan as received (for the dominance contributions).
    plan: LogicalPlan,
    admission: SiteAdmission,
    bounding: Option<Bounding>,
    layout: ihdsi_planner::release::cells::CellLayout,
    /// What runs: with each cell's patient count, contributions bounded.
    run: LogicalPlan,
}

impl std::fmt::Debug for SiteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteEngine")
            .field("id", &self.id)
            .field("backend", &self.backend.name())
            .field("policy", &self.policy)
            .field("tables", &self.tables)
            .field("guards", &self.guards)
            .finish()
    }
}

impl SiteEngine {
    /// Open the site's data as configured in `site.toml`.
    pub async fn open(config: &SiteConfig) -> Result<Self> {
        let guards = SiteGuards::from_config(config)?;
        let policy = config.privacy.clone();
        let data = SiteData {
            id: config.site.id.clone(),
            location: config.site.data.clone(),
        };
        let vocabulary = config.site.vocabulary.as_deref();
        match (config.site.backend, &config.site.url) {
            #[cfg(feature = "postgres")]
            (SiteBackendKind::Postgres, Some(url)) => {
                postgres::open_site(&config.site.id, url, policy, guards).await
            }
            #[cfg(feature = "ballista")]
            (SiteBackendKind::Ballista, Some(scheduler)) => {
                ballista::open_site(data, scheduler, vocabulary, policy, guards).await
            }
            (SiteBackendKind::Postgres | SiteBackendKind::Ballista, None) => Err(SiteError::Data(
                format!("site {}: site.url is required", config.site.id),
            )),
            (SiteBackendKind::Datafusion, _) => {
                Self::open_guarded(data, vocabulary, policy, guards).await
            }
            #[cfg(not(all(feature = "postgres", feature = "ballista")))]
            (kind, Some(_)) => Err(SiteError::Data(format!(
                "site {}: backend '{}' is not built into this binary (cargo feature '{}' of ihdsi-engine)",
                config.site.id,
                kind.name(),
                kind.name()
            ))),
        }
    }

    /// The same site, running its admitted subplans on `backend`.
    #[cfg(any(feature = "postgres", feature = "ballista"))]
    pub(crate) fn with_backend(self, backend: Arc<dyn SiteBackend>) -> Self {
        Self { backend, ..self }
    }

    /// How many subplans this site (and every clone of it) is working on.
    pub fn subplans_running(&self) -> usize {
        self.subplans.running()
    }

    /// Open a site from its parts, with no permit check, audit or opt-out
    /// (tests and development).
    pub async fn open_with(
        data: SiteData,
        vocabulary: Option<&str>,
        policy: PrivacyPolicy,
    ) -> Result<Self> {
        Self::open_guarded(data, vocabulary, policy, SiteGuards::default()).await
    }

    /// Open a site from its parts and its guards.
    pub async fn open_guarded(
        data: SiteData,
        vocabulary: Option<&str>,
        policy: PrivacyPolicy,
        guards: SiteGuards,
    ) -> Result<Self> {
        let ctx = SessionContext::new_with_config(site_session_config());
        let tables = register_tables_excluding(
            &ctx,
            std::slice::from_ref(&data),
            vocabulary,
            &guards.opt_out,
        )
        .await?;
        if tables.is_empty() {
            return Err(SiteError::Data(format!(
                "no <table>.parquet files found under {}",
                data.location
            )));
        }
        let subplans = Arc::new(subplan::Subplans::new(&guards.resources));
        Ok(Self {
            id: data.id,
            backend: Arc::new(DataFusionBackend::new(ctx.clone())),
            ctx,
            policy,
            tables,
            guards,
            subplans,
        })
    }

    /// The site id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The patient tables this site hosts.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    fn state(&self) -> SessionState {
        self.ctx.state()
    }

    /// Put a request refused before it named a subplan (untrusted client
    /// certificate, malformed ticket) on the site's audit trail.
    pub async fn record_refusal(&self, code: &str, reason: &str) -> Result<()> {
        self.guards.record_refusal(code, reason).await
    }

    /// Check the permit, admit, run and threshold one subplan, on a task of
    /// its own, and put it on the audit trail whatever the outcome: see
    /// [`subplan`] for its five possible ends. Dropping the returned future
    /// cancels the subplan (the coordinator stopped waiting for it); its
    /// work stops at its next batch, and its end is still logged and
    /// audited. An answer whose audit record cannot be written is not
    /// released.
    pub async fn run(self: &Arc<Self>, req: SubplanRequest) -> Result<SiteAnswer> {
        let started = std::time::Instant::now();
        let (engine, sent) = (Arc::clone(self), req.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = crate::tasks::run_to_end(async move { engine.run_to_end(&sent, stopped).await });
        let joined = task.await;
        drop(stop);
        match joined {
            Ok(answer) => answer,
            // A panic ended the task before it could say how the subplan
            // ended: say it here.
            Err(e) => {
                let failed = Err(SiteError::Internal(format!("subplan task: {e}")));
                self.end(&req, failed, started).await
            }
        }
    }

    async fn run_to_end(
        self: &Arc<Self>,
        req: &SubplanRequest,
        stopped: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<SiteAnswer> {
        let started = std::time::Instant::now();
        let limit = self.guards.resources.subplan_timeout_secs;
        let work = async {
            let _working = self.subplans.start().await;
            self.run_unaudited(req).await
        };
        let answer = tokio::select! {
            answer = work => answer,
            _ = stopped => Err(SiteError::Cancelled),
            () = tokio::time::sleep(std::time::Duration::from_secs(limit)) => {
                Err(SiteError::TimedOut { secs: limit })
            }
        };
        let answer = self.end(req, answer, started).await;
        let SiteAnswer { batch, suppressed } = answer?;
        let metadata = disclosure::site::stream_metadata(suppressed, started.elapsed());
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
        Ok(SiteAnswer {
            batch: batch.with_schema(schema)?,
            suppressed,
        })
    }

    /// Put how `req` ended on the audit trail, then in the log. An answer
    /// whose record cannot be written is not released: it ends as that
    /// failure.
    async fn end(
        &self,
        req: &SubplanRequest,
        answer: Result<SiteAnswer>,
        started: std::time::Instant,
    ) -> Result<SiteAnswer> {
        let elapsed = started.elapsed();
        let answer = self.guards.record(req, &answer, elapsed).await.and(answer);
        subplan::log_end(&self.id, req, &answer, elapsed);
        answer
    }

    /// The contribution bounding this site applies to `req`: the tighter of
    /// what the coordinator asks and what its own policy requires.
    fn bounding_for(&self, req: &SubplanRequest) -> Option<Bounding> {
        match (req.bounding, self.policy.effective_bounding()) {
            (Some(asked), Some(own)) => Some(asked.tightest(own)),
            (asked, own) => asked.or(own),
        }
    }

    /// Read, check and bound `req` as this site's own plan: within the
    /// site's statement limits, on a planning thread sized for them
    /// (`ihdsi_planner::plan_within`).
    async fn admit(self: &Arc<Self>, req: &SubplanRequest) -> Result<Admitted> {
        // The site bounds what it plans itself: a subplan past its limits
        // could run its planning out of stack.
        check_limits(&req.sql, &self.guards.limits)?;
        let (engine, req) = (Arc::clone(self), req.clone());
        let planning = async move { engine.admit_now(&req).await };
        plan_within(&self.guards.limits, planning).await
    }

    async fn admit_now(&self, req: &SubplanRequest) -> Result<Admitted> {
        let plan = self
            .state()
            .create_logical_plan(&req.sql)
            .await
            .map_err(PlanError::from_datafusion)?;
        self.guards.check_permit(&self.id, req, &plan)?;
        let admission = admit_subplan(&plan, &self.policy)?;
        let bounding = self.bounding_for(req);
        // Every cell's own patient count goes next to the partials
        // (ihdsi_planner::partials::cells), computed on this site's own reading of
        // the SQL: the coordinator cannot ask for less.
        let layout = cells::layout(&plan)?;
        let with_cells = cells::with_cells(&plan, &layout, bounding)?;
        let run = match bounding {
            Some(b) => bound_contributions(&with_cells, b)?,
            None => with_cells,
        };
        Ok(Admitted {
            plan,
            admission,
            bounding,
            layout,
            run,
        })
    }

    async fn run_unaudited(self: &Arc<Self>, req: &SubplanRequest) -> Result<SiteAnswer> {
        let Admitted {
            plan,
            admission,
            bounding,
            layout,
            run,
        } = self.admit(req).await?;
        let schema: SchemaRef = Arc::new(run.schema().as_arrow().clone());
        let budget = ExecutionBudget::for_site(&self.guards.resources);
        let batches = self.backend.collect(run, budget).await?;
        let mut batch = concat_batches(&schema, &batches)?;
        let mut entries = Vec::new();
        if req.dominance {
            let backend = self.backend.as_ref();
            (batch, entries) = dominance::append_dominance(
                backend,
                budget,
                &plan,
                bounding,
                batch,
                admission.key_count,
            )
            .await?;
        }
        let shape = AnswerShape {
            key_count: admission.key_count,
            patients: admission.patients_index,
            cells: &layout,
            dominance: &entries,
        };
        let min = self.policy.min_group_size;
        let (batch, suppressed) = match admission.time_axis {
            Some(axis) => disclosure::survival::site::release(&batch, shape, axis, min)?,
            None => disclosure::site::release(&batch, shape, min)?,
        };
        Ok(SiteAnswer { batch, suppressed })
    }
}
