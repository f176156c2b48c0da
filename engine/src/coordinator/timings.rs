//! Where a federated query's time goes.
//!
//! Federation has a price over one pooled database: planning the split,
//! the round trip to the slowest site, and merging partials. The
//! coordinator measures each part of every query and logs it with the
//! query's id, so an operator (and `ihdsi-bench`) can see which part to
//! make cheaper. Only times and the total bytes received are recorded,
//! never per-site sizes.

use std::time::Duration;

/// The parts of one query's time at the coordinator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryTimings {
    /// Parsing, planning, splitting at the release boundary, admission and
    /// unparsing the subplans.
    pub planning: Duration,
    /// Writing the query and result records to the audit trail (fsync).
    pub audit: Duration,
    /// First subplan sent to last partial received (the slowest release).
    pub sites: Duration,
    /// The longest time a site reported spending on its subplan.
    pub slowest_site: Duration,
    /// Plausibility checks, merging partials and the federation threshold,
    /// summed over releases.
    pub merge: Duration,
    /// The coordinator's part of the plan over the released groups.
    pub finish: Duration,
}

impl QueryTimings {
    /// Round trip beyond the slowest site's own work: connection, TLS,
    /// encoding, transfer and decoding of partials.
    pub fn transfer(&self) -> Duration {
        self.sites.saturating_sub(self.slowest_site)
    }
}

/// Microseconds, for structured log fields.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
