//! What one analyst query answers: the result, and beside it what the
//! operator's log and the result's metadata read (withheld groups and
//! cells, the sites, the bytes and the time spent, the dp receipt).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::QueryTimings;
use crate::disclosure::budget::DpReceipt;

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
    /// Cells withheld under the rules, per release and column.
    pub withheld_cells: Vec<WithheldCells>,
}

/// How many cells of one column of one release were withheld.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WithheldCells {
    pub release: usize,
    pub column: String,
    pub cells: u64,
}
