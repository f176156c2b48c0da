//! The coordinator's errors: why a query could not be answered.
//!
//! A site has its own error type, [`crate::site::SiteError`]; what the
//! coordinator learns of a site's failure arrives as a
//! [`crate::protocol::SiteFailure`] and becomes one of the `Site*` kinds
//! here ([`crate::protocol::SiteFailure::into_error`]). The kinds only a
//! running subplan has (its own time limit, its cancellation, a backend's
//! failure) are not here: the coordinator never raises them.
//! `EngineError::from(SiteError)` is for the coordinator's own use of site
//! code (its vocabulary, at start-up).
//!
//! Messages name the cause and, where one is involved, the site. They never
//! carry result values or per-site numbers: a site's refusal is relayed with
//! its own (privacy-safe) reason only.
//!
//! `#[non_exhaustive]`: the crates that turn it into something else (the
//! gRPC statuses of `ihdsi-flight-server`) keep a last arm for kinds added
//! here; adding a kind must add its own arm there too.

use crate::audit::AuditError;
use crate::bounded::LimitReached;
use crate::site::error::SiteError;
use ihdsi_catalog::permit::PermitRefusal;
use ihdsi_planner::PlanError;

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Why a query could not be answered: the coordinator's error (a site's
/// is [`SiteError`]). The name is the crate's, kept for its users.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A query passed one of the coordinator's `[resources]` bounds and
    /// was stopped.
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
    /// A site's partials break a plausibility rule. Which site is logged
    /// for operators, never told to the analyst: a site's data outside its
    /// declared bounds can trip a rule, and naming the site would tell
    /// where such a value lives.
    #[error(
        "a site sent partials no real data can produce ({rule}); which site is in the coordinator's log"
    )]
    SiteImplausible { site: String, rule: String },
    /// Merged counts or sums overflow 64 bits: no real cohort does that, so
    /// the partials are implausible (or an attack on wrap-around).
    #[error("a merged count or sum overflows; the sites' partials are implausible")]
    Overflow,
    /// No site hosts every table the query reads.
    #[error("no site hosts all of the tables {0}")]
    NoSiteHosts(String),
    /// Data the coordinator opens with a site's code could not be opened
    /// (its vocabulary file, at start-up).
    #[error("cannot open site data: {0}")]
    Data(String),
    /// DataFusion (or Arrow underneath it) failed; the error is kept whole
    /// as the source, for logs that walk the chain.
    #[error("execution failed: {source}")]
    DataFusion {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    /// The coordinator refused the analyst's data permit (unreadable, or
    /// another analyst's) before charging the query to it.
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
        tracing::warn!(site, rule, "a site sent implausible partials");
        EngineError::SiteImplausible {
            site: site.into(),
            rule: rule.into(),
        }
    }

    /// The stable code recorded in audit trails.
    pub fn code(&self) -> String {
        match self {
            EngineError::Plan(p) => p.code().to_string(),
            EngineError::Permit(p) => p.code().to_string(),
            EngineError::SiteUnavailable { .. } => "site.unavailable".into(),
            EngineError::SiteTimedOut { .. } => "site.timeout".into(),
            EngineError::Busy { .. } => "resources.busy".into(),
            EngineError::ResourceLimit { .. } | EngineError::SiteResources { .. } => {
                "resources.limit".into()
            }
            EngineError::SiteRefused { .. } => "site.refused".into(),
            EngineError::SitePermit { .. } => "site.permit".into(),
            EngineError::SiteInvalid { .. } => "site.invalid".into(),
            EngineError::SiteRuntime => "site.runtime".into(),
            EngineError::SiteProtocol { .. } | EngineError::SiteImplausible { .. } => {
                "site.protocol".into()
            }
            EngineError::Overflow => "merge.overflow".into(),
            EngineError::NoSiteHosts(_) => "plan.no_site".into(),
            EngineError::Data(_) => "site.data".into(),
            EngineError::DataFusion { .. } => "runtime".into(),
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

impl From<LimitReached> for EngineError {
    fn from(l: LimitReached) -> Self {
        Self::ResourceLimit {
            limit: l.limit.to_string(),
            max: l.max,
        }
    }
}

/// A site's error, where the coordinator runs site code in its own
/// process (today only its vocabulary, at start-up). Each kind the
/// coordinator's error has keeps its kind and its message. The three only
/// a running subplan has are told as a site's run-time failures are, with
/// no site to name (in-process there is none): a backend's failure and a
/// cancellation are [`EngineError::SiteRuntime`], the site's time limit
/// [`EngineError::SiteResources`] under its key. Over Flight the same
/// failures arrive as a `SiteFailure` instead, which names the site where
/// a timeout is concerned (`protocol::failure`).
impl From<SiteError> for EngineError {
    fn from(e: SiteError) -> Self {
        match e {
            SiteError::Plan(p) => Self::Plan(p),
            SiteError::Permit(p) => Self::Permit(p),
            SiteError::ResourceLimit { limit, max } => Self::ResourceLimit { limit, max },
            SiteError::Data(cause) => Self::Data(cause),
            SiteError::DataFusion { source } => Self::DataFusion { source },
            SiteError::Audit(a) => Self::Audit(a),
            SiteError::Internal(bug) => Self::Internal(bug),
            SiteError::Execution(_) | SiteError::Cancelled => Self::SiteRuntime,
            SiteError::TimedOut { .. } => Self::SiteResources {
                limit: "subplan_timeout_secs".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the coordinator runs site code itself, a site's error keeps
    /// its message and code when the coordinator's error has its kind.
    #[test]
    fn a_site_error_keeps_its_words_at_the_coordinator() {
        let kept = [
            SiteError::Data("vocabulary file x does not exist".into()),
            SiteError::Internal("no vocabulary table".into()),
            SiteError::ResourceLimit {
                limit: "max_intermediate_rows".into(),
                max: 10,
            },
        ];
        for site in kept {
            let (text, code) = (site.to_string(), site.code());
            let coordinator = EngineError::from(site);
            assert_eq!(coordinator.to_string(), text);
            assert_eq!(coordinator.code(), code);
        }
        let ran = EngineError::from(SiteError::Execution("Cast error: 'x7'".into()));
        assert!(
            ran.names_no_site() && !ran.to_string().contains("x7"),
            "{ran}"
        );
    }
}
