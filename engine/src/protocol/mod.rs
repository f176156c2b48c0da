//! What travels between the coordinator and a site over Arrow Flight.
//!
//! The coordinator calls `DoGet` with a ticket holding a [`SubplanRequest`]
//! as JSON: the canonical subplan SQL plus who is asking. The site answers
//! with the data permit the query runs under. The site answers
//! with an ordinary Arrow IPC stream of partial aggregates (`k*`, `p*`,
//! `ihdsi_patients`, then the dominance columns when asked), whose schema metadata carries the number of groups the
//! site suppressed under its own threshold (a count, never which ones) and
//! how long the site worked on it.
//! A failure is a gRPC status whose details hold a [`SiteFailure`]: the
//! kind, and a reason where the kind may carry one ([`failure`]).

pub mod dominance;
pub mod failure;
pub mod metadata;

use serde::{Deserialize, Serialize};

pub use failure::SiteFailure;

/// Schema-metadata key: groups a site dropped under its own threshold.
pub const SITE_SUPPRESSED_KEY: &str = "ihdsi.site_suppressed_groups";
/// Schema-metadata key: microseconds the site spent on the subplan (permit
/// check, planning, execution, threshold, audit record), so the coordinator
/// can tell a slow site from a slow network.
pub const SITE_ELAPSED_KEY: &str = "ihdsi.site_elapsed_us";

/// The ticket of a site `DoGet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubplanRequest {
    /// Coordinator-assigned id, logged on both sides.
    pub query_id: String,
    /// Identity of the analyst the query runs for.
    pub analyst: String,
    /// Which release of the query this subplan is.
    pub release: usize,
    /// Canonical subplan SQL over the virtual schema.
    pub sql: String,
    /// The analyst's signed data permit, verified by the site itself.
    #[serde(default)]
    pub permit: Option<String>,
    /// Contribution bounding the federation asks for. A site applies the
    /// tighter of this and its own `[privacy.bounding]`; it can never be
    /// asked to bound less than its own policy says.
    #[serde(default)]
    pub bounding: Option<ihdsi_catalog::Bounding>,
    /// Whether the federation applies the p% dominance rule to this
    /// release: the site then appends, per SUM partial, the two largest
    /// patient contributions and their total (never released).
    #[serde(default)]
    pub dominance: bool,
}

impl SubplanRequest {
    /// Encode as ticket bytes.
    pub fn to_ticket(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decode ticket bytes; the error names what is wrong, not the content.
    pub fn from_ticket(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("malformed subplan ticket: {e}"))
    }
}
