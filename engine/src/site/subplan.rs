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

use super::SiteAnswer;
use super::guards::decision;
use crate::audit::Decision;
use crate::error::Result;
use crate::protocol::SubplanRequest;

/// Counts a subplan as running while it lives.
pub(super) struct Working<'a>(&'a AtomicUsize);

impl<'a> Working<'a> {
    pub(super) fn start(running: &'a AtomicUsize) -> Self {
        running.fetch_add(1, Ordering::SeqCst);
        Self(running)
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
