//! One subplan's life at a site, and how its end is told.
//!
//! A subplan runs on a task of its own (`SiteEngine::run`) and ends in one
//! of five ways: **answered**; **refused** (permit, admission, limits);
//! **failed** while running (its cause stays in this log); **cancelled**,
//! because the coordinator stopped waiting (another site failed, the
//! analyst cancelled or hung up, a deadline passed); or **timed out** at
//! the site's own `subplan_timeout_secs`. Each end is one log line, and one
//! audit record (`SiteGuards::record`), with the time since the request
//! arrived, so a steward can account for every subplan that touched the
//! data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::SiteAnswer;
use super::guards::decision;
use crate::audit::Decision;
use crate::protocol::SubplanRequest;
use crate::site::error::Result;

/// The subplans a site works on: how many now, and how many may run at
/// once (`[resources] max_concurrent_subplans`; the rest wait their turn,
/// within their time limit). With `subplan_memory_mb` this bounds the
/// memory a site's DataFusion work can take in all.
#[derive(Debug)]
pub(crate) struct Subplans {
    running: AtomicUsize,
    turns: Semaphore,
}

impl Subplans {
    pub(crate) fn new(resources: &ihdsi_catalog::SiteResources) -> Self {
        Self {
            running: AtomicUsize::new(0),
            turns: Semaphore::new(resources.max_concurrent_subplans),
        }
    }

    /// How many subplans are running now.
    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Wait for a turn; the subplan counts as running until the guard
    /// drops.
    pub(super) async fn start(&self) -> Working<'_> {
        // The semaphore is never closed.
        let turn = self.turns.acquire().await.ok();
        self.running.fetch_add(1, Ordering::SeqCst);
        Working {
            running: &self.running,
            _turn: turn,
        }
    }
}

/// Counts a subplan as running, and holds its turn, while it lives.
pub(super) struct Working<'a> {
    running: &'a AtomicUsize,
    _turn: Option<SemaphorePermit<'a>>,
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The site log's line for how `req` ended. A failure's cause is the
/// site's own to read (it can quote a value), so it goes here and nowhere
/// else.
pub(super) fn log_end(
    site: &str,
    req: &SubplanRequest,
    answer: &Result<SiteAnswer>,
    elapsed: Duration,
) {
    let end = decision(answer);
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let (query_id, release) = (req.query_id.as_str(), req.release);
    match answer {
        Ok(a) => tracing::info!(
            site,
            query_id,
            release,
            end = end.as_str(),
            elapsed_ms,
            released_groups = a.batch.num_rows(),
            suppressed_groups = a.suppressed,
            "subplan ended"
        ),
        Err(e) if end == Decision::Cancelled => tracing::info!(
            site,
            query_id,
            release,
            end = end.as_str(),
            elapsed_ms,
            reason = %e,
            "subplan ended"
        ),
        Err(e) => tracing::warn!(
            site,
            query_id,
            release,
            end = end.as_str(),
            elapsed_ms,
            code = %e.code(),
            reason = %e,
            "subplan ended"
        ),
    }
}
