//! The one mapping from the coordinator's errors to gRPC statuses.
//!
//! One match decides the code and the log level of every kind of
//! [`EngineError`]. User mistakes are `InvalidArgument`, privacy refusals
//! `PermissionDenied`, unavailable sites `Unavailable`; internal errors are
//! logged in full and reported with a generic message. `EngineError` is
//! `#[non_exhaustive]` and lives in another crate, so the compiler no
//! longer forces an arm per kind: the match ends in a wildcard arm that
//! treats a kind added without its own arm as an internal error. Adding a
//! kind must add its arm here, above that one.
//!
//! A site's own errors never reach this mapping: a site answers with a
//! `ihdsi_engine::protocol::SiteFailure` (`crate::site_service`).

use crate::error::AuthError;
use ihdsi_engine::EngineError;
use ihdsi_planner::PlanError;
use tonic::Status;

/// Convert an engine error into the status the client sees.
pub fn to_status(err: &EngineError) -> Status {
    match err {
        EngineError::Plan(p) => plan_status(p),
        EngineError::SiteUnavailable { .. } | EngineError::NoSiteHosts(_) => {
            tracing::warn!(error = %err, "site unavailable");
            Status::unavailable(err.to_string())
        }
        EngineError::SiteTimedOut { .. } => {
            tracing::warn!(error = %err, "site timed out");
            Status::deadline_exceeded(err.to_string())
        }
        EngineError::Busy { .. } => {
            tracing::info!(error = %err, "query refused: too many running");
            Status::resource_exhausted(err.to_string())
        }
        EngineError::ResourceLimit { .. } | EngineError::SiteResources { .. } => {
            tracing::warn!(error = %err, "query stopped at a resource limit");
            Status::resource_exhausted(err.to_string())
        }
        EngineError::SiteRefused { .. } | EngineError::SitePermit { .. } => {
            tracing::warn!(error = %err, "site refused");
            Status::permission_denied(err.to_string())
        }
        EngineError::SiteInvalid { .. } => {
            tracing::error!(error = %err, "a site could not read its subplan");
            Status::failed_precondition(err.to_string())
        }
        EngineError::SiteRuntime => {
            tracing::warn!(code = err.code(), "a site failed while running a subplan");
            Status::aborted(err.to_string())
        }
        EngineError::SiteProtocol { .. }
        | EngineError::SiteImplausible { .. }
        | EngineError::Overflow
        | EngineError::Data(_) => {
            tracing::error!(error = %err, "federation fault");
            Status::failed_precondition(err.to_string())
        }
        EngineError::DataFusion { .. } => {
            tracing::warn!(error = %err, "execution failed");
            Status::invalid_argument(err.to_string())
        }
        EngineError::Permit(_) => {
            tracing::warn!(error = %err, "data permit refused");
            Status::permission_denied(err.to_string())
        }
        EngineError::Audit(_) => {
            tracing::error!(error = %err, "audit trail unwritable");
            Status::unavailable(err.to_string())
        }
        EngineError::Tls(_) => {
            tracing::error!(error = %err, "TLS setup");
            Status::unavailable(err.to_string())
        }
        EngineError::Budget(_) if err.is_budget_exhausted() => {
            tracing::info!(error = %err, "privacy budget exhausted");
            Status::resource_exhausted(err.to_string())
        }
        EngineError::Budget(_) => {
            tracing::error!(error = %err, "budget ledger unwritable");
            Status::unavailable(err.to_string())
        }
        EngineError::RuntimeFailure { .. } | EngineError::Deadline { .. } => {
            Status::aborted(err.to_string())
        }
        EngineError::Internal(_) => {
            tracing::error!(error = %err, "internal error");
            Status::internal("internal error; the event is logged on the server")
        }
        // `EngineError` is `#[non_exhaustive]`: this arm is only for a kind
        // added to the engine without an arm above. Adding a kind must add
        // its arm above; until then it is an internal error.
        _ => {
            tracing::error!(error = %err, code = %err.code(), "engine error with no status mapping");
            Status::internal("internal error; the event is logged on the server")
        }
    }
}

fn plan_status(err: &PlanError) -> Status {
    match err {
        PlanError::Syntax(_)
        | PlanError::Schema(_)
        | PlanError::Unsupported { .. }
        | PlanError::NotAQuery(_)
        | PlanError::NotCanonical(_)
        | PlanError::Limit { .. } => {
            tracing::info!(error = %err, "query rejected");
            Status::invalid_argument(err.to_string())
        }
        PlanError::PlanningTime { .. } => {
            tracing::warn!(error = %err, "query refused at the planning time limit");
            Status::resource_exhausted(err.to_string())
        }
        PlanError::RowLevel { .. } | PlanError::Policy { .. } => {
            tracing::info!(error = %err, "query refused by privacy rules");
            Status::permission_denied(err.to_string())
        }
        PlanError::Internal(_) => {
            tracing::error!(error = %err, "internal planner error");
            Status::internal("internal planner error; the event is logged on the server")
        }
    }
}

/// Convert a refused authentication into `Unauthenticated`, logging the
/// reason (never the secret) and the gRPC method that was called.
pub fn auth_status(err: &AuthError, method: &str) -> Status {
    match err {
        AuthError::Missing | AuthError::Malformed(_) | AuthError::UnknownToken => {
            tracing::warn!(method, reason = %err, "call refused: not authenticated");
        }
        AuthError::BadPassword { user } => {
            tracing::warn!(method, user = %user.escape_debug(), reason = %err, "call refused: not authenticated");
        }
        AuthError::Expired { analyst } => {
            tracing::info!(method, analyst, reason = %err, "call refused: not authenticated");
        }
    }
    Status::unauthenticated(err.to_string())
}
