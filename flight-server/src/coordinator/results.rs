//! Results waiting for their `DoGet`, with a time-to-live and a size cap.
//!
//! A result belongs to the analyst who ran the query: a handle presented by
//! anyone else is treated as unknown, so a leaked or logged ticket does not
//! hand one analyst's released output to another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ihdsi_engine::QueryOutcome;

/// Finished results by handle.
#[derive(Debug)]
pub struct ResultCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, String, QueryOutcome)>>,
}

impl Default for ResultCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(600), 256)
    }
}

impl ResultCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Keep `analyst`'s `outcome` under its query id, evicting expired and
    /// oldest entries.
    pub fn insert(&self, analyst: &str, outcome: QueryOutcome) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (t, _, _)| now.duration_since(*t) < self.ttl);
        while map.len() >= self.capacity {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (t, _, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            outcome.query_id.clone(),
            (now, analyst.to_string(), outcome),
        );
    }

    /// `analyst`'s result for `handle`, if it has not expired.
    pub fn get(&self, analyst: &str, handle: &str) -> Option<QueryOutcome> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(handle)
            .filter(|(t, owner, _)| t.elapsed() < self.ttl && owner == analyst)
            .map(|(_, _, o)| o.clone())
    }
}
