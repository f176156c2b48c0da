//! Why a site did not answer a subplan, as a typed value that travels in
//! the gRPC status details of its `DoGet`, both ways.
//!
//! The site encodes its failure ([`SiteFailure::of`], [`SiteFailure::status`])
//! and the coordinator decodes it ([`SiteFailure::from_status`],
//! [`SiteFailure::into_error`]); neither side reads the other's message
//! text. A status without such details did not come from an ihdsi site
//! (a proxy, a dropped connection, a server that is not listening): the
//! coordinator reports it as the site being unavailable, with the
//! transport's cause.
//!
//! Redaction happens here, once: a failure while running can depend on
//! the data (a value that fails a cast, a row that reaches a division),
//! so its cause stays in the site's log and the kind [`SiteFailure::Runtime`]
//! names neither the site nor the cause. Refusals carry their reason,
//! which the site builds from the query text, its policy and the permit
//! only.
//!
//! The two sides' errors are two types: a site encodes its own
//! [`SiteError`], the coordinator decodes into its [`EngineError`], and
//! this module is the only place that knows both.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::site::error::SiteError;
use ihdsi_planner::PlanError;

/// The kinds of failure a site reports.
///
/// `#[non_exhaustive]`: a newer site may one day report a kind an older
/// coordinator does not know (it does not decode, and the site counts as
/// unavailable); code outside this crate that matches on a kind keeps a
/// wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SiteFailure {
    /// The site is up but cannot serve: its audit trail cannot be
    /// written, its data store or TLS material cannot be opened. Nothing
    /// ran over patient data.
    Unavailable {
        /// What the site cannot do.
        cause: String,
    },
    /// The site's privacy policy or admission rules refused the subplan.
    Policy {
        /// The rule, as the site words it.
        reason: String,
    },
    /// The site refused the analyst's data permit for this subplan.
    Permit {
        /// Which part of the permit does not allow it.
        reason: String,
    },
    /// The request is not one the site can read: a malformed ticket, SQL
    /// that does not parse or names what the site does not have.
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// The subplan failed while running. Whether it fails can depend on
    /// patient data, so neither the cause nor the site is told.
    Runtime,
    /// The site stopped the subplan at its own `subplan_timeout_secs`.
    TimedOut {
        /// The site's limit.
        secs: u64,
    },
    /// The site stopped the subplan at one of its `[resources]` bounds
    /// (memory, intermediate rows). Which bound is told, by name only: its
    /// value is the site's own and could tell the site apart, and the
    /// coordinator does not pass on which site, since whether a subplan
    /// passes a bound depends on the site's data.
    Resources {
        /// The config key of the bound.
        limit: String,
    },
}

/// The gRPC metadata key of the site's query reference in a runtime
/// failure (the site's log holds the cause under it).
const QUERY_ID_KEY: &str = "ihdsi-query-id";

impl SiteFailure {
    /// The failure a site reports for `err`. Exhaustive on purpose: a kind
    /// added to [`SiteError`] needs a decision here on what the coordinator
    /// may hear of it.
    pub fn of(err: &SiteError) -> Self {
        use SiteError as E;
        match err {
            E::Plan(PlanError::Syntax(r) | PlanError::Schema(r) | PlanError::NotAQuery(r)) => {
                Self::Invalid { reason: r.clone() }
            }
            E::Plan(PlanError::Internal(_)) => Self::Runtime,
            E::Plan(p) => Self::Policy {
                reason: p.to_string(),
            },
            E::Permit(p) => Self::Permit {
                reason: p.to_string(),
            },
            E::Audit(_) | E::Data(_) => Self::Unavailable {
                cause: err.to_string(),
            },
            E::TimedOut { secs } => Self::TimedOut { secs: *secs },
            E::ResourceLimit { limit, .. } => Self::Resources {
                limit: limit.clone(),
            },
            // Everything that happens while the subplan runs.
            E::Execution(_) | E::DataFusion { .. } | E::Internal(_) | E::Cancelled => Self::Runtime,
        }
    }

    /// The stable code of the kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "site.unavailable",
            Self::Policy { .. } => "site.refused",
            Self::Permit { .. } => "site.permit",
            Self::Invalid { .. } => "site.invalid",
            Self::Runtime => "site.runtime",
            Self::TimedOut { .. } => "site.timeout",
            Self::Resources { .. } => "resources.limit",
        }
    }

    /// The status a site answers with: a code for clients that read only
    /// codes, the failure itself in the details, and a message that says
    /// no more than the details do. `query_id` goes with a runtime failure
    /// so that the site's steward can find its cause in the log.
    pub fn status(&self, query_id: &str) -> tonic::Status {
        let (code, message) = match self {
            Self::Unavailable { cause } => (tonic::Code::Unavailable, cause.clone()),
            Self::Policy { reason } => (tonic::Code::PermissionDenied, reason.clone()),
            Self::Permit { reason } => (tonic::Code::PermissionDenied, reason.clone()),
            Self::Invalid { reason } => (tonic::Code::InvalidArgument, reason.clone()),
            Self::Runtime => (
                tonic::Code::Aborted,
                format!(
                    "the subplan failed while running; the cause is in the site's log under query id {query_id}"
                ),
            ),
            Self::TimedOut { secs } => (
                tonic::Code::DeadlineExceeded,
                format!("the subplan ran longer than this site's subplan_timeout_secs = {secs}"),
            ),
            Self::Resources { limit } => (
                tonic::Code::ResourceExhausted,
                format!("the subplan was stopped at this site's resource limit {limit}"),
            ),
        };
        let details = serde_json::to_vec(self).unwrap_or_default();
        let mut status = tonic::Status::with_details(code, message, details.into());
        if let Ok(id) = query_id.parse() {
            status.metadata_mut().insert(QUERY_ID_KEY, id);
        }
        status
    }

    /// The failure a site's status carries, if it is one.
    pub fn from_status(status: &tonic::Status) -> Option<Self> {
        serde_json::from_slice(status.details()).ok()
    }

    /// The coordinator's error for this failure at `site`.
    pub fn into_error(self, site: &str) -> EngineError {
        let site = site.to_string();
        match self {
            Self::Unavailable { cause } => EngineError::SiteUnavailable { site, cause },
            Self::Policy { reason } => EngineError::SiteRefused { site, reason },
            Self::Permit { reason } => EngineError::SitePermit { site, reason },
            Self::Invalid { reason } => EngineError::SiteInvalid { site, reason },
            Self::Runtime => EngineError::SiteRuntime,
            Self::TimedOut { secs } => EngineError::SiteTimedOut { site, secs },
            Self::Resources { limit } => EngineError::SiteResources { limit },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind survives the round trip through a status, and the
    /// coordinator's error names the site for every kind but the runtime
    /// failure.
    #[test]
    fn every_kind_travels_as_itself() {
        let kinds = [
            SiteFailure::Unavailable {
                cause: "the audit trail cannot be written".into(),
            },
            SiteFailure::Policy {
                reason: "MIN and MAX are disabled by the site's policy".into(),
            },
            SiteFailure::Permit {
                reason: "table measurement is outside data permit P-1".into(),
            },
            SiteFailure::Invalid {
                reason: "no table named x".into(),
            },
            SiteFailure::Runtime,
            SiteFailure::TimedOut { secs: 300 },
            SiteFailure::Resources {
                limit: "max_intermediate_rows".into(),
            },
        ];
        for kind in kinds {
            let status = kind.status("q-1");
            let back = SiteFailure::from_status(&status).expect("details");
            assert_eq!(back, kind);
            let told = !matches!(kind, SiteFailure::Runtime | SiteFailure::Resources { .. });
            let err = back.into_error("lu").to_string();
            assert_eq!(err.contains("'lu'"), told, "{err}");
        }
    }

    /// A status with no details (a transport failure, a server that is not
    /// a site) carries no failure: the coordinator reports the site as
    /// unavailable rather than guessing from the message.
    #[test]
    fn a_status_without_details_is_no_site_failure() {
        let status = tonic::Status::unknown("transport error");
        assert_eq!(SiteFailure::from_status(&status), None);
        let junk = tonic::Status::with_details(
            tonic::Code::Unknown,
            "x",
            b"{\"kind\":\"other\"}".to_vec().into(),
        );
        assert_eq!(SiteFailure::from_status(&junk), None);
    }

    /// A failure while running keeps its cause at the site: the status
    /// holds the query id and nothing of the error's text.
    #[test]
    fn a_runtime_failure_tells_nothing_of_its_cause() {
        let err = SiteError::Execution("Cast error: cannot cast 'x7' to Int32".into());
        let status = SiteFailure::of(&err).status("q-9");
        assert!(!status.message().contains("x7"), "{}", status.message());
        assert!(!String::from_utf8_lossy(status.details()).contains("x7"));
        assert!(status.message().contains("q-9"));
    }
}
