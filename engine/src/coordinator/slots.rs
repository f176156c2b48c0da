//! How many queries run at once: in all, and per analyst
//! (`[resources] max_concurrent_queries`, `max_queries_per_analyst`).
//!
//! Past either bound a query is refused at once with a clear reason
//! rather than queued: a queue would hold the analyst's connection for an
//! unknown time, and a script that floods the coordinator learns to back
//! off from the refusal. One analyst can then never hold every slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{EngineError, Result};
use ihdsi_catalog::CoordinatorResources;

#[derive(Debug, Default)]
struct Running {
    all: usize,
    by_analyst: HashMap<String, usize>,
}

/// The coordinator's query slots.
#[derive(Debug, Clone)]
pub(super) struct Slots {
    max_all: usize,
    max_each: usize,
    running: Arc<Mutex<Running>>,
}

/// One query's slot, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    running: Arc<Mutex<Running>>,
    analyst: String,
}

impl Slots {
    pub(super) fn new(resources: &CoordinatorResources) -> Self {
        Self {
            max_all: resources.max_concurrent_queries,
            max_each: resources.max_queries_per_analyst,
            running: Arc::default(),
        }
    }

    /// A slot for one of `analyst`'s queries, or the bound it would pass.
    pub(super) fn enter(&self, analyst: &str) -> Result<Slot> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mine = running.by_analyst.get(analyst).copied().unwrap_or(0);
        if mine >= self.max_each {
            return Err(EngineError::Busy {
                limit: "max_queries_per_analyst",
                max: self.max_each,
            });
        }
        if running.all >= self.max_all {
            return Err(EngineError::Busy {
                limit: "max_concurrent_queries",
                max: self.max_all,
            });
        }
        running.all += 1;
        *running.by_analyst.entry(analyst.to_string()).or_default() += 1;
        Ok(Slot {
            running: Arc::clone(&self.running),
            analyst: analyst.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.all = running.all.saturating_sub(1);
        if let Some(n) = running.by_analyst.get_mut(&self.analyst) {
            *n -= 1;
            if *n == 0 {
                running.by_analyst.remove(&self.analyst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_refuses_by_name_and_a_slot_comes_back_when_dropped() {
        let slots = Slots::new(&CoordinatorResources {
            max_concurrent_queries: 3,
            max_queries_per_analyst: 2,
            ..CoordinatorResources::default()
        });
        let a1 = slots.enter("alice").expect("first");
        let _a2 = slots.enter("alice").expect("second");
        let err = slots.enter("alice").expect_err("third").to_string();
        assert!(err.contains("max_queries_per_analyst = 2"), "{err}");
        let _b1 = slots.enter("bob").expect("bob's first");
        let err = slots.enter("carol").expect_err("full").to_string();
        assert!(err.contains("max_concurrent_queries = 3"), "{err}");
        drop(a1);
        slots.enter("carol").expect("a slot came back");
    }
}
