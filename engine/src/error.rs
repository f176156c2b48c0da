//! Execution errors at sites and at the coordinator.
//!
//! Messages name the cause and, where one is involved, the site. They never
//! carry result values or per-site numbers: a site's refusal is relayed with
//! its own (privacy-safe) reason only.

use crate::audit::AuditError;
use ihdsi_catalog::permit::PermitRefusal;
use ihdsi_planner::PlanError;

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Planning or admission refused the query.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A site could not be reached, or did not answer in time.
    #[error("site '{site}' is unavailable: {cause}")]
    SiteUnavailable { site: String, cause: String },
    /// A site did not answer within the coordinator's `site_timeout_secs`.
    #[error("site '{site}' did not answer within {secs} s")]
    SiteTimedOut { site: String, secs: u64 },
    /// A site's privacy policy refused the subplan; `reason` is the site's
    /// own wording of the rule.
    #[error("site '{site}' refused the subplan: {reason}")]
    SiteRefused { site: String, reason: String },
    /// A site refused the analyst's data permit for the subplan.
    #[error("site '{site}' refused the subplan under the analyst's data permit: {reason}")]
    SitePermit { site: String, reason: String },
    /// A site could not read the subplan it was sent (a malformed ticket,
    /// SQL it cannot plan): a coordinator and a site out of step.
    #[error("site '{site}' could not read the subplan: {reason}")]
    SiteInvalid { site: String, reason: String },
    /// A site's subplan failed while running. Which site, and why, are in
    /// that site's log only: whether a query fails at run time can depend
    /// on patient data, so naming the site would tell on its patients.
    #[error(
        "the query failed while running at a site (code site.runtime); the cause is in the site's own log, and which site is not told because a run-time failure can depend on patient data"
    )]
    SiteRuntime,
    /// A site stopped a subplan at its own `subplan_timeout_secs`.
    #[error(
        "the subplan ran longer than this site's limit subplan_timeout_secs = {secs} ([resources] in site.toml)"
    )]
    SubplanTimedOut { secs: u64 },
    /// The subplan was dropped before it ended: the coordinator stopped
    /// waiting (another site failed, the analyst cancelled or hung up, a
    /// deadline passed). Only a site's log and audit trail say so; nobody
    /// is left to tell.
    #[error("the subplan was cancelled: the coordinator stopped waiting for it")]
    Cancelled,
    /// A query (at the coordinator) or a subplan (at a site) passed one of
    /// the `[resources]` bounds and was stopped.
    #[error(
        "stopped at the resource limit {limit} = {max} ([resources] in the config): narrow the query (fewer or more selective joins, coarser groups)"
    )]
    ResourceLimit { limit: String, max: u64 },
    /// Too many queries are running: in all, or of this analyst.
    #[error(
        "refused: {limit} = {max} queries are already running ([resources] in federation.toml); retry when one has finished"
    )]
    Busy { limit: &'static str, max: usize },
    /// A site stopped its subplan at one of its `[resources]` bounds.
    /// Which site, and the bound's value there, are not told: whether a
    /// query passes a bound depends on that site's data.
    #[error(
        "the query was stopped at a site's resource limit {limit} ([resources] in its site.toml); narrow it (fewer or more selective joins, coarser groups). Which site is not told, because passing a limit depends on its patients' data"
    )]
    SiteResources { limit: String },
    /// A site answered with something that is not the agreed partial schema.
    #[error("site '{site}' sent an invalid answer: {detail}")]
    SiteProtocol { site: String, detail: String },
    /// Merged counts or sums overflow 64 bits: no real cohort does that, so
    /// the partials are implausible (or an attack on wrap-around).
    #[error("a merged count or sum overflows; the sites' partials are implausible")]
    Overflow,
    /// No site hosts every table the query reads.
    #[error("no site hosts all of the tables {0}")]
    NoSiteHosts(String),
    /// The site's data could not be opened (missing folder, bad URL).
    #[error("cannot open site data: {0}")]
    Data(String),
    /// A backend failed while executing an admitted plan.
    #[error("execution failed: {0}")]
    Execution(String),
    /// DataFusion (or Arrow underneath it) failed; the error is kept whole
    /// as the source, for logs that walk the chain.
    #[error("execution failed: {source}")]
    DataFusion {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    /// The data permit does not allow this subplan (checked by a site).
    #[error("data permit refused: {0}")]
    Permit(#[from] PermitRefusal),
    /// The audit trail cannot be written: nothing runs unaudited.
    #[error("the audit trail cannot be written, so nothing is run or released: {0}")]
    Audit(#[from] AuditError),
    /// TLS material (certificates, keys) cannot be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The privacy budget does not cover the query, or its ledger cannot
    /// be written (then nothing runs).
    #[error(transparent)]
    Budget(#[from] crate::dp::LedgerError),
    /// A dp query failed after it was admitted and charged. Its cause is in
    /// the coordinator's log only: in dp mode, whether and how a query
    /// fails must not depend on the data.
    #[error(
        "query {query_id} failed while running (code query.runtime); in dp mode run-time failures are not explained and the charge stands"
    )]
    RuntimeFailure { query_id: String },
    /// A dp query did not finish by its fixed response deadline
    /// (`privacy.dp.response_ms` after it arrived). It fails at the
    /// deadline whatever the data, and its charge stands.
    #[error(
        "query {query_id} did not finish within the federation's fixed response time of {ms} ms (code query.deadline); the charge stands"
    )]
    Deadline { query_id: String, ms: u64 },
    /// A bug: an invariant does not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A failure whose site is not told (it can depend on that site's
    /// patients' data): neither its message nor the query's progress may
    /// point at the site.
    pub fn names_no_site(&self) -> bool {
        matches!(
            self,
            EngineError::SiteRuntime | EngineError::SiteResources { .. }
        )
    }

    /// The privacy budget does not cover the query (as opposed to a
    /// ledger that cannot be written).
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(
            self,
            EngineError::Budget(crate::dp::LedgerError::Exhausted { .. })
        )
    }

    /// A site's answer that no real data can produce (the plausibility
    /// checks of `disclosure::plausibility`, and the merge's own).
    pub(crate) fn implausible(site: &str, rule: &str) -> Self {
        EngineError::SiteProtocol {
            site: site.into(),
            detail: format!("implausible partials: {rule}"),
        }
    }

    /// The stable code recorded in audit trails.
    pub fn code(&self) -> String {
        match self {
            EngineError::Plan(p) => p.code().to_string(),
            EngineError::Permit(p) => p.code().to_string(),
            EngineError::SiteUnavailable { .. } => "site.unavailable".into(),
            EngineError::SiteTimedOut { .. } | EngineError::SubplanTimedOut { .. } => {
                "site.timeout".into()
            }
            EngineError::Cancelled => "cancelled".into(),
            EngineError::Busy { .. } => "resources.busy".into(),
            EngineError::ResourceLimit { .. } | EngineError::SiteResources { .. } => {
                "resources.limit".into()
            }
            EngineError::SiteRefused { .. } => "site.refused".into(),
            EngineError::SitePermit { .. } => "site.permit".into(),
            EngineError::SiteInvalid { .. } => "site.invalid".into(),
            EngineError::SiteRuntime => "site.runtime".into(),
            EngineError::SiteProtocol { .. } => "site.protocol".into(),
            EngineError::Overflow => "merge.overflow".into(),
            EngineError::NoSiteHosts(_) => "plan.no_site".into(),
            EngineError::Data(_) => "site.data".into(),
            EngineError::Execution(_) | EngineError::DataFusion { .. } => "runtime".into(),
            EngineError::Audit(_) => "audit.unwritable".into(),
            EngineError::Tls(_) => "tls".into(),
            EngineError::Budget(crate::dp::LedgerError::Exhausted { .. }) => {
                "budget.exhausted".into()
            }
            EngineError::Budget(_) => "budget.ledger".into(),
            EngineError::RuntimeFailure { .. } => "query.runtime".into(),
            EngineError::Deadline { .. } => "query.deadline".into(),
            EngineError::Internal(_) => "internal".into(),
        }
    }
}

impl From<datafusion::error::DataFusionError> for EngineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::DataFusion {
            source: Box::new(e),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        datafusion::error::DataFusionError::from(e).into()
    }
}
