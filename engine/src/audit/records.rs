//! The audit records. Their fields are the whole of what the trail can
//! hold: identities, SQL text, decisions, codes and group *counts*. None can
//! carry a result value or a per-site partial.

use serde::Serialize;

/// What the engine decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Arrived; nothing is decided yet (written before planning).
    Received,
    /// Planned and admitted; subplans are about to be sent.
    Admitted,
    /// Refused before any data was read.
    Refused,
    /// Answered.
    Answered,
    /// Failed after admission (a site refused or was unavailable, ...).
    Failed,
    /// A site's subplan dropped because the coordinator stopped waiting.
    Cancelled,
    /// A site's subplan stopped at the site's own time limit.
    TimedOut,
}

impl Decision {
    /// The word the trail and the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Admitted => "admitted",
            Self::Refused => "refused",
            Self::Answered => "answered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

/// One release's subplan as sent to its sites.
#[derive(Debug, Clone, Serialize)]
pub struct SubplanSql {
    pub release: usize,
    pub sites: Vec<String>,
    pub sql: String,
}

/// The coordinator's record of a statement as it arrived, written before
/// anything parses it: an attempt that crashes the planner or is refused
/// by a limit is on the trail all the same.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedRecord {
    pub query_id: String,
    pub analyst: String,
    pub permit: Option<String>,
    pub purpose: Option<String>,
    /// The statement, cut at the coordinator's `max_statement_bytes` (a
    /// longer one is refused unplanned; `sql_bytes` and `sql_sha256` still
    /// identify it whole).
    pub sql: String,
    pub sql_bytes: usize,
    pub sql_sha256: String,
    pub decision: Decision,
}

/// The coordinator's record of an analyst query, written before fan-out
/// (or on refusal).
#[derive(Debug, Clone, Serialize)]
pub struct QueryRecord {
    pub query_id: String,
    pub analyst: String,
    pub permit: Option<String>,
    pub purpose: Option<String>,
    pub sql: String,
    pub subplans: Vec<SubplanSql>,
    pub decision: Decision,
    pub code: Option<String>,
    /// The refusal's message (fixed wording built from the query text).
    pub reason: Option<String>,
}

/// The coordinator's record of how an admitted query ended.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRecord {
    pub query_id: String,
    pub analyst: String,
    pub permit: Option<String>,
    pub decision: Decision,
    pub code: Option<String>,
    /// Rows released to the analyst.
    pub released_rows: Option<u64>,
    /// Groups withheld by the federation's threshold.
    pub suppressed_groups: Option<u64>,
}

/// A site's record of one subplan.
#[derive(Debug, Clone, Serialize)]
pub struct SubplanRecord {
    pub query_id: String,
    pub analyst: String,
    pub permit: Option<String>,
    pub purpose: Option<String>,
    pub release: usize,
    pub sql: String,
    pub decision: Decision,
    pub code: Option<String>,
    /// The refusal's message; execution failures record their code only,
    /// since a DataFusion error can quote a data value.
    pub reason: Option<String>,
    pub released_groups: Option<u64>,
    pub suppressed_groups: Option<u64>,
    /// Milliseconds from the request's arrival to its end.
    pub elapsed_ms: u64,
}

/// A site's record of a request refused before it named a subplan: a
/// client certificate that is not a trusted coordinator's, a malformed
/// ticket.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalRecord {
    pub code: String,
    pub reason: String,
}

/// The coordinator's advisory: two releases of one analyst, same shape,
/// whose groups differ by fewer than `threshold` patients.
#[derive(Debug, Clone, Serialize)]
pub struct AdvisoryRecord {
    pub code: String,
    pub analyst: String,
    pub query_id: String,
    pub earlier_query_id: String,
    pub threshold: u64,
}
