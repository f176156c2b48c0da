//! Results waiting for their `DoGet`, with a time-to-live and a size cap.
//!
//! A result belongs to the analyst who ran the query: a handle presented by
//! anyone else is treated as unknown, so a leaked or logged ticket does not
//! hand one analyst's released output to another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use ihdsi_engine::QueryOutcome;
use prost::Message;
use tonic::Status;

/// Finished results by handle.
#[derive(Debug)]
pub struct ResultCache {
    ttl: Duration,
    capacity: usize,
    /// Handle → (when, owner, outcome, fetched yet).
    entries: Mutex<HashMap<String, (Instant, String, QueryOutcome, bool)>>,
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
        map.retain(|_, (t, _, _, _)| now.duration_since(*t) < self.ttl);
        while map.len() >= self.capacity {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (t, _, _, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            outcome.query_id.clone(),
            (now, analyst.to_string(), outcome, false),
        );
    }

    /// Drop `analyst`'s result for `handle`; whether there was one.
    pub fn remove(&self, analyst: &str, handle: &str) -> bool {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let owned = map
            .get(handle)
            .is_some_and(|(t, owner, _, _)| t.elapsed() < self.ttl && owner == analyst);
        if owned {
            map.remove(handle);
        }
        owned
    }

    /// `CancelFlightInfo`: release the results `body` (a
    /// `CancelFlightInfoRequest`) announces. `Cancelled` when this analyst
    /// held one, else `NotCancellable` (expired, fetched by someone else's
    /// handle, or never there).
    pub fn cancel(&self, analyst: &str, body: &[u8]) -> Result<Vec<u8>, Status> {
        let request = CancelFlightInfoRequest::decode(body).map_err(|e| {
            Status::invalid_argument(format!("malformed CancelFlightInfoRequest: {e}"))
        })?;
        let info = request.info.ok_or_else(|| {
            Status::invalid_argument("CancelFlightInfoRequest without a FlightInfo")
        })?;
        let mut released = false;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let handle = Any::decode(ticket.ticket.clone())
                .ok()
                .and_then(|any| any.unpack::<TicketStatementQuery>().ok().flatten())
                .and_then(|t| String::from_utf8(t.statement_handle.to_vec()).ok());
            if let Some(handle) = handle {
                released |= self.remove(analyst, &handle);
            }
        }
        let status = if released {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        };
        Ok(CancelFlightInfoResult::new(status).encode_to_vec())
    }

    /// `analyst`'s result for `handle`, if it has not expired, and whether
    /// this is its first fetch.
    pub fn get(&self, analyst: &str, handle: &str) -> Option<(QueryOutcome, bool)> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (_, _, outcome, fetched) = map
            .get_mut(handle)
            .filter(|(t, owner, _, _)| t.elapsed() < self.ttl && owner == analyst)?;
        let first = !std::mem::replace(fetched, true);
        Some((outcome.clone(), first))
    }
}
