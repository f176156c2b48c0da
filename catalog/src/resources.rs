//! `[resources]`: how much of a machine one query may take, at the
//! coordinator and at each site.
//!
//! The statement limits (`[limits]`, [`crate::QueryLimits`]) bound what may
//! be planned; these bound what may run. One analyst's query must not be
//! able to take a federation down for everyone: not by memory, not by a
//! join that multiplies rows without end, not by opening more queries than
//! the coordinator can hold, and not by leaving results behind. Each bound
//! has a default that serves the benchmark workload at a million persons,
//! and an operator sets tighter or looser ones in the config.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

/// `[resources]` of `federation.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorResources {
    /// Queries running at once, all analysts together; one more is refused
    /// (`ResourceExhausted`) rather than queued.
    pub max_concurrent_queries: usize,
    /// Queries one analyst (account or service token) may run at once.
    pub max_queries_per_analyst: usize,
    /// Memory one query's own DataFusion work at the coordinator may hold
    /// (what runs over the released tables), in MiB.
    pub query_memory_mb: usize,
    /// Rows the joins and unions of released tables at the coordinator
    /// may produce for one query.
    pub max_intermediate_rows: u64,
    /// Memory held by finished results waiting for their `DoGet` and by
    /// the dp mode's cache of paid-for releases, in MiB each; the oldest
    /// are evicted past it.
    pub result_cache_mb: usize,
}

impl Default for CoordinatorResources {
    fn default() -> Self {
        Self {
            max_concurrent_queries: 64,
            max_queries_per_analyst: 16,
            query_memory_mb: 512,
            max_intermediate_rows: 1_000_000_000,
            result_cache_mb: 256,
        }
    }
}

impl CoordinatorResources {
    /// Every bound is at least 1.
    pub fn validate(&self) -> Result<()> {
        at_least_one(&[
            ("max_concurrent_queries", self.max_concurrent_queries as u64),
            (
                "max_queries_per_analyst",
                self.max_queries_per_analyst as u64,
            ),
            ("query_memory_mb", self.query_memory_mb as u64),
            ("max_intermediate_rows", self.max_intermediate_rows),
            ("result_cache_mb", self.result_cache_mb as u64),
        ])
    }

    /// [`Self::query_memory_mb`] in bytes.
    pub fn query_memory_bytes(&self) -> usize {
        self.query_memory_mb.saturating_mul(1 << 20)
    }

    /// [`Self::result_cache_mb`] in bytes.
    pub fn result_cache_bytes(&self) -> usize {
        self.result_cache_mb.saturating_mul(1 << 20)
    }
}

/// `[resources]` of `site.toml`: the site's own bounds on each subplan it
/// runs, never taken from the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteResources {
    /// Memory one subplan's DataFusion work may hold, in MiB. Aggregations
    /// and sorts spill to disk past it; a join that cannot is stopped.
    pub subplan_memory_mb: usize,
    /// Rows that the joins, unions and unnests of one subplan may produce
    /// below the release boundary. A join that multiplies rows (a cross
    /// product, a self-join of a long table) is stopped when it passes
    /// this many.
    pub max_intermediate_rows: u64,
    /// Seconds from a subplan's arrival after which the site stops it,
    /// whatever the coordinator waits.
    pub subplan_timeout_secs: u64,
    /// Subplans running at once at this site; more wait their turn (within
    /// their time limit). Times `subplan_memory_mb`, it bounds the memory
    /// of the site's DataFusion work.
    pub max_concurrent_subplans: usize,
}

impl Default for SiteResources {
    fn default() -> Self {
        Self {
            subplan_memory_mb: 1024,
            max_intermediate_rows: 1_000_000_000,
            subplan_timeout_secs: 300,
            max_concurrent_subplans: 16,
        }
    }
}

impl SiteResources {
    /// Every bound is at least 1.
    pub fn validate(&self) -> Result<()> {
        at_least_one(&[
            ("subplan_memory_mb", self.subplan_memory_mb as u64),
            ("max_intermediate_rows", self.max_intermediate_rows),
            ("subplan_timeout_secs", self.subplan_timeout_secs),
            (
                "max_concurrent_subplans",
                self.max_concurrent_subplans as u64,
            ),
        ])
    }

    /// [`Self::subplan_memory_mb`] in bytes.
    pub fn subplan_memory_bytes(&self) -> usize {
        self.subplan_memory_mb.saturating_mul(1 << 20)
    }
}

fn at_least_one(bounds: &[(&str, u64)]) -> Result<()> {
    match bounds.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(CatalogError::ConfigInvalid(format!(
            "[resources] {name} must be at least 1"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_and_zero_is_refused_by_name() {
        CoordinatorResources::default()
            .validate()
            .expect("defaults");
        SiteResources::default().validate().expect("defaults");
        let zero = SiteResources {
            max_intermediate_rows: 0,
            ..SiteResources::default()
        };
        let err = zero.validate().expect_err("zero").to_string();
        assert!(err.contains("max_intermediate_rows"), "{err}");
    }

    #[test]
    fn a_partial_section_keeps_the_other_defaults() {
        let r: CoordinatorResources = toml::from_str("max_queries_per_analyst = 2").expect("toml");
        assert_eq!(r.max_queries_per_analyst, 2);
        assert_eq!(
            r.max_concurrent_queries,
            CoordinatorResources::default().max_concurrent_queries
        );
        assert!(toml::from_str::<SiteResources>("memory = 1").is_err());
    }
}
