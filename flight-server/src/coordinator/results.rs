//! Results waiting for their `DoGet`, with a time-to-live and a bound on
//! the bytes they hold (`[resources] result_cache_mb`): the oldest are
//! evicted past it, so results nobody fetches cannot pile up.
//!
//! A result belongs to the analyst who ran the query: a handle presented by
//! anyone else is treated as unknown, so a leaked or logged ticket does not
//! hand one analyst's released output to another.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use ihdsi_engine::QueryOutcome;
use lru::LruCache;
use prost::Message;
use tonic::Status;

use super::Drain;

/// One held result.
#[derive(Debug)]
struct Held {
    at: Instant,
    owner: String,
    outcome: QueryOutcome,
    bytes: usize,
    fetched: bool,
}

#[derive(Debug)]
struct Entries {
    /// Handle → result, least recently inserted or fetched first.
    lru: LruCache<String, Held>,
    bytes: usize,
}

impl Entries {
    fn pop_oldest(&mut self) -> Option<Held> {
        let (_, held) = self.lru.pop_lru()?;
        self.bytes -= held.bytes;
        Some(held)
    }
}

/// Finished results by handle. Every result counts as unfetched on the
/// [`Drain`] from its insertion until its first fetch or its departure
/// (evicted, expired, cancelled), so a shutdown waits for exactly the
/// results an analyst can still fetch.
#[derive(Debug)]
pub struct ResultCache {
    ttl: Duration,
    max_bytes: usize,
    entries: Mutex<Entries>,
    drain: Arc<Drain>,
}

impl ResultCache {
    /// Results kept for `ttl`, at most `max_bytes` of them together.
    pub fn new(ttl: Duration, max_bytes: usize, drain: Arc<Drain>) -> Self {
        Self {
            ttl,
            max_bytes,
            entries: Mutex::new(Entries {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            drain,
        }
    }

    /// `held` left the cache.
    fn gone(&self, held: &Held) {
        if !held.fetched {
            self.drain.fetched();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `analyst`'s `outcome` under its query id, evicting expired
    /// results and then the oldest until it fits, or refuse a result
    /// larger than the whole cache.
    pub fn insert(&self, analyst: &str, outcome: QueryOutcome) -> Result<(), Status> {
        let bytes: usize = outcome
            .batches
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum();
        if bytes > self.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "the result holds {} MiB, more than the coordinator keeps for one (result_cache_mb = {}, [resources]); aggregate to fewer groups",
                bytes.div_ceil(1 << 20),
                self.max_bytes >> 20
            )));
        }
        let mut entries = self.lock();
        let now = Instant::now();
        while let Some((_, held)) = entries.lru.peek_lru() {
            let expired = now.duration_since(held.at) >= self.ttl;
            if !expired && entries.bytes + bytes <= self.max_bytes {
                break;
            }
            if let Some(held) = entries.pop_oldest() {
                self.gone(&held);
            }
        }
        entries.bytes += bytes;
        self.drain.held();
        let held = Held {
            at: now,
            owner: analyst.to_string(),
            outcome,
            bytes,
            fetched: false,
        };
        entries.lru.put(held.outcome.query_id.clone(), held);
        Ok(())
    }

    /// Drop `analyst`'s result for `handle`; whether there was one.
    pub fn remove(&self, analyst: &str, handle: &str) -> bool {
        let mut entries = self.lock();
        let owned = entries
            .lru
            .peek(handle)
            .is_some_and(|h| h.at.elapsed() < self.ttl && h.owner == analyst);
        if owned && let Some(held) = entries.lru.pop(handle) {
            entries.bytes -= held.bytes;
            self.gone(&held);
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

    /// `analyst`'s result for `handle`, if it has not expired.
    pub fn get(&self, analyst: &str, handle: &str) -> Option<QueryOutcome> {
        let mut entries = self.lock();
        let held = entries
            .lru
            .get_mut(handle)
            .filter(|h| h.at.elapsed() < self.ttl && h.owner == analyst)?;
        if !std::mem::replace(&mut held.fetched, true) {
            self.drain.fetched();
        }
        Some(held.outcome.clone())
    }
}
