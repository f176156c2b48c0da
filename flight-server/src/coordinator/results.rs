//! Results waiting for their `DoGet`, each for a time-to-live, all of them
//! together within a bound on their bytes (`[resources] result_cache_mb`):
//! the oldest are evicted past it, results already fetched first, so
//! results nobody fetches cannot pile up ([`super::held`]). One sweeper
//! task per cache, aborted with it, takes expired results out.
//!
//! A result belongs to the analyst who ran the query: a handle presented by
//! anyone else is treated as unknown, so a leaked or logged ticket does not
//! hand one analyst's released output to another.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use ihdsi_engine::QueryOutcome;
use ihdsi_engine::tasks::SpawnedTask;
use prost::Message;
use tonic::Status;

use super::Drain;
use super::held::Held as Store;

/// One held result.
#[derive(Debug)]
struct Held {
    owner: String,
    outcome: QueryOutcome,
    fetched: bool,
}

/// Finished results by handle. Every result counts as unfetched on the
/// [`Drain`] from its insertion until its first fetch or its departure
/// (evicted, expired, cancelled), so a shutdown waits for exactly the
/// results an analyst can still fetch.
#[derive(Debug)]
pub struct ResultCache {
    entries: Mutex<Store<Held>>,
    drain: Arc<Drain>,
    /// Takes expired results out while nobody touches the cache; aborted
    /// with it.
    _sweeper: SpawnedTask<()>,
}

impl ResultCache {
    /// Results kept for `ttl`, at most `max_bytes` of them together, with
    /// the sweeper that takes them out when their time is up (it needs a
    /// Tokio runtime, and stops with the cache).
    pub fn start(ttl: Duration, max_bytes: usize, drain: Arc<Drain>) -> Arc<Self> {
        let every = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        Arc::new_cyclic(|cache| Self {
            entries: Mutex::new(Store::new(max_bytes, ttl)),
            drain,
            _sweeper: SpawnedTask::spawn(sweep(Weak::clone(cache), every)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store<Held>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take out the results whose time is up.
    fn expire(&self) {
        let gone = self.lock().expire(Instant::now());
        gone.iter().for_each(|h| self.gone(h));
    }

    /// `held` left the cache.
    fn gone(&self, held: &Held) {
        if !held.fetched {
            self.drain.fetched();
        }
    }

    /// Keep `analyst`'s `outcome` under its query id until its time is up,
    /// evicting the oldest results until it fits, or refuse a result
    /// larger than the whole cache.
    pub fn insert(&self, analyst: &str, outcome: QueryOutcome) -> Result<(), Status> {
        let bytes: usize = outcome
            .batches
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum();
        let handle = outcome.query_id.clone();
        let held = Held {
            owner: analyst.to_string(),
            outcome,
            fetched: false,
        };
        let inserted = self.lock().insert(handle, held, bytes, |h| h.fetched);
        match inserted {
            Ok(evicted) => {
                self.drain.held();
                evicted.iter().for_each(|h| self.gone(h));
            }
            Err(_) => {
                return Err(Status::resource_exhausted(format!(
                    "the result holds {} MiB, more than the coordinator keeps for its results (result_cache_mb, [resources]); aggregate to fewer groups",
                    bytes.div_ceil(1 << 20)
                )));
            }
        }
        Ok(())
    }

    /// Drop `analyst`'s result for `handle`; whether there was one.
    pub fn remove(&self, analyst: &str, handle: &str) -> bool {
        self.expire();
        let mut entries = self.lock();
        let owned = entries.get_mut(handle).is_some_and(|h| h.owner == analyst);
        if owned && let Some(held) = entries.remove(handle) {
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

    /// `analyst`'s result for `handle`, while it is held.
    pub fn get(&self, analyst: &str, handle: &str) -> Option<QueryOutcome> {
        let mut entries = self.lock();
        let held = entries.get_mut(handle).filter(|h| h.owner == analyst)?;
        if !std::mem::replace(&mut held.fetched, true) {
            self.drain.fetched();
        }
        Some(held.outcome.clone())
    }
}

/// Every `every`, take the expired results out of `cache`, until it is
/// gone.
async fn sweep(cache: Weak<ResultCache>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(cache) = cache.upgrade() else { return };
        cache.expire();
    }
}
