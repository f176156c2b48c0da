//! Shutting the coordinator down without losing a query in flight.
//!
//! A Flight SQL query is two calls: `GetFlightInfo` runs it, `DoGet`
//! fetches the result. Stopping the server at the signal would let the
//! first finish and refuse the second on the closing connection, so the
//! analyst would lose the answer all the same. Instead, once draining:
//! new queries are refused (`Unavailable`, saying why), and the server is
//! stopped only when no query is running and every held result has been
//! fetched once, or when the grace period is over.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tonic::Status;

/// The coordinator's drain state, shared by its service and its shutdown.
#[derive(Debug, Default)]
pub struct Drain {
    stopping: AtomicBool,
    running: AtomicUsize,
    unfetched: AtomicUsize,
}

/// A query counted as running while this lives.
#[derive(Debug)]
pub struct Running<'a>(&'a Drain);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// Count a new query as running, or refuse it while draining.
    pub fn enter(&self) -> Result<Running<'_>, Status> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let running = Running(self);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the coordinator is shutting down and takes no new queries; retry when it is back",
            ));
        }
        Ok(running)
    }

    /// A result is held for its `DoGet`.
    pub fn held(&self) {
        self.unfetched.fetch_add(1, Ordering::SeqCst);
    }

    /// A held result was fetched for the first time.
    pub fn fetched(&self) {
        let _ = self
            .unfetched
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Refuse new queries from now on.
    pub fn begin(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Resolves when no query runs and every result was fetched, or after
    /// `grace`.
    pub async fn idle(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.running.load(Ordering::SeqCst) > 0 || self.unfetched.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    running = self.running.load(Ordering::SeqCst),
                    unfetched = self.unfetched.load(Ordering::SeqCst),
                    "grace period over with queries in flight"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn draining_refuses_new_queries_and_waits_for_the_fetch() {
        let drain = Drain::default();
        let running = drain.enter().expect("before draining");
        drain.begin();
        let refused = drain.enter().expect_err("while draining");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        drop(running);
        drain.held();
        let waited = tokio::time::Instant::now();
        drain.idle(Duration::from_millis(200)).await;
        assert!(
            waited.elapsed() >= Duration::from_millis(200),
            "an unfetched result holds the drain"
        );
        drain.fetched();
        let waited = tokio::time::Instant::now();
        drain.idle(Duration::from_secs(5)).await;
        assert!(waited.elapsed() < Duration::from_secs(1));
    }
}
