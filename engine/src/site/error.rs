//! Why a site could not open, or did not answer a subplan.
//!
//! A site has its own error type, apart from the coordinator's
//! [`crate::EngineError`], because it fails in its own ways only: a subplan
//! refused (admission, statement limits, the data permit), stopped (its
//! time or resource limits, a coordinator that stopped waiting), a backend
//! or its data failing, its audit trail unwritable. It never fails with
//! another site's failure, the federation's privacy budget or the merge's
//! checks, so none of those can be matched here, or mistakenly passed on.
//!
//! What the coordinator hears of a site's failure is decided in one place,
//! [`crate::protocol::SiteFailure::of`], which keeps a run-time cause in
//! the site; the message here is the site's own (its log, its audit trail).
//! Messages and [`SiteError::code`]s are the ones these failures had when
//! the site and the coordinator shared one error type, so logs, audit
//! trails and tests read as before.
//!
//! `#[non_exhaustive]`: code outside this crate that matches on it (a site
//! front other than `ihdsi-flight-server`) keeps a wildcard arm, so a kind
//! added here is a decision for this crate's match in
//! [`crate::protocol::SiteFailure::of`], not a break elsewhere.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use ihdsi_catalog::permit::PermitRefusal;
use ihdsi_planner::PlanError;

use crate::audit::AuditError;
use crate::bounded::LimitReached;

/// Result alias for a site's work.
pub type Result<T, E = SiteError> = std::result::Result<T, E>;

/// Why a site could not open, or did not answer a subplan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The site's reading of the subplan, its statement limits or its
    /// admission refused it.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The data permit does not allow this subplan.
    #[error("data permit refused: {0}")]
    Permit(#[from] PermitRefusal),
    /// The site stopped the subplan at its own `subplan_timeout_secs`.
    #[error(
        "the subplan ran longer than this site's limit subplan_timeout_secs = {secs} ([resources] in site.toml)"
    )]
    TimedOut { secs: u64 },
    /// The subplan was dropped before it ended: the coordinator stopped
    /// waiting (another site failed, the analyst cancelled or hung up, a
    /// deadline passed). Only the site's log and audit trail say so; nobody
    /// is left to tell.
    #[error("the subplan was cancelled: the coordinator stopped waiting for it")]
    Cancelled,
    /// The subplan passed one of the site's `[resources]` bounds and was
    /// stopped.
    #[error(
        "stopped at the resource limit {limit} = {max} ([resources] in the config): narrow the query (fewer or more selective joins, coarser groups)"
    )]
    ResourceLimit { limit: String, max: u64 },
    /// The site's data, or the system holding it (a database, a cluster),
    /// could not be opened or reached.
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
        source: Box<DataFusionError>,
    },
    /// The site's audit trail cannot be written: nothing runs unaudited.
    #[error("the audit trail cannot be written, so nothing is run or released: {0}")]
    Audit(#[from] AuditError),
    /// A bug: an invariant does not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SiteError {
    /// The stable code recorded in the site's audit trail and log.
    pub fn code(&self) -> String {
        match self {
            SiteError::Plan(p) => p.code().to_string(),
            SiteError::Permit(p) => p.code().to_string(),
            SiteError::TimedOut { .. } => "site.timeout".into(),
            SiteError::Cancelled => "cancelled".into(),
            SiteError::ResourceLimit { .. } => "resources.limit".into(),
            SiteError::Data(_) => "site.data".into(),
            SiteError::Execution(_) | SiteError::DataFusion { .. } => "runtime".into(),
            SiteError::Audit(_) => "audit.unwritable".into(),
            SiteError::Internal(_) => "internal".into(),
        }
    }
}

impl From<DataFusionError> for SiteError {
    fn from(e: DataFusionError) -> Self {
        Self::DataFusion {
            source: Box::new(e),
        }
    }
}

impl From<ArrowError> for SiteError {
    fn from(e: ArrowError) -> Self {
        DataFusionError::from(e).into()
    }
}

impl From<LimitReached> for SiteError {
    fn from(l: LimitReached) -> Self {
        Self::ResourceLimit {
            limit: l.limit.to_string(),
            max: l.max,
        }
    }
}
