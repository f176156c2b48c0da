//! Execution: sites run admitted subplans over their own Parquet files and
//! threshold them; the coordinator fans out over Arrow Flight, merges the
//! partials, thresholds again and runs the rest of the query.
//!
//! * [`site`]: a site's DataFusion session over object_store, and its threshold.
//! * [`error`]: the coordinator's error, [`EngineError`]; a site fails with
//!   its own, [`SiteError`], and [`protocol::SiteFailure`] is what passes
//!   between the two.
//! * [`bounded`]: the memory, row and cancellation bounds every DataFusion
//!   run for a query is held to, at a site and at the coordinator.
//! * [`cache`]: the byte-bounded map of held results and paid-for releases.
//! * [`protocol`]: the ticket a coordinator sends, and the metadata a site returns.
//! * [`fanout`]: parallel Flight `DoGet` to the sites.
//! * [`plausibility`]: what the coordinator checks of each site's partials.
//! * [`merge`]: per-group merge of partials.
//! * [`disclosure`]: what may leave a site and the federation, under which rule.
//! * [`progress`]: per-site state and elapsed time of a running query.
//! * [`coordinator`]: the whole query path.
//! * [`audit`]: the hash-chained audit trail of coordinator and sites.
//! * [`differencing`]: the advisory differencing detector.
//! * [`dp`]: exact discrete noise samplers and the zCDP budget ledger.
//! * [`tasks`]: the two kinds of task the engine starts.
//! * [`query`]: who runs a query (analyst, id, permit, progress).

pub mod audit;
pub mod bounded;
pub mod cache;
pub mod coordinator;
pub mod disclosure;
pub mod dp;
pub mod error;
pub mod fanout;
pub mod merge;
pub mod progress;
#[cfg(test)]
mod properties;
pub mod protocol;
pub mod query;
pub mod site;
pub mod tasks;
#[cfg(test)]
mod testing;

pub use coordinator::{Coordinator, QueryContext, QueryOutcome};
pub use error::{EngineError, Result};
pub use progress::{Progress, SiteProgress, SiteState};
pub use site::{SiteAnswer, SiteEngine, SiteError};
