//! Who runs a query: the analyst, the query's id, the data permit it runs
//! under and where its per-site progress is recorded. Every layer that
//! acts for a query (the coordinator, the disclosure mechanism, the audit
//! trail) reads it from here.

use crate::progress::Progress;

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
