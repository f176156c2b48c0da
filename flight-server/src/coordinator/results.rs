//! Results waiting for their `DoGet`, with a time-to-live and a size cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ihdsi_engine::QueryOutcome;

/// Finished results by handle.
#[derive(Debug)]
pub struct ResultCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, QueryOutcome)>>,
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

    /// Keep `outcome` under its query id, evicting expired and oldest entries.
    pub fn insert(&self, outcome: QueryOutcome) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (t, _)| now.duration_since(*t) < self.ttl);
        while map.len() >= self.capacity {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(outcome.query_id.clone(), (now, outcome));
    }

    /// The result for `handle`, if it has not expired.
    pub fn get(&self, handle: &str) -> Option<QueryOutcome> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(handle)
            .filter(|(t, _)| t.elapsed() < self.ttl)
            .map(|(_, o)| o.clone())
    }
}
