//! The engine's tasks, of two kinds; `clippy.toml` bans raw `tokio::spawn`
//! everywhere else, so that no task outlives what it works for by
//! accident.
//!
//! * [`SpawnedTask`] (DataFusion's): aborted when its handle is dropped,
//!   for work nobody needs once its owner has gone (an in-process Ballista
//!   executor, a password check).
//! * [`run_to_end`] and [`blocking_to_end`]: work that must finish even
//!   when its caller stops waiting: a subplan whose end goes on the site's
//!   audit trail whatever happens to the coordinator's request, an audit
//!   record being written, or a database connection's driver, which ends
//!   by itself when its client is dropped.

use std::future::Future;

pub use datafusion::common::runtime::SpawnedTask;
use tokio::task::JoinHandle;

/// Start `work` on its own task and let it run to its end, whether or not
/// the returned handle is awaited or dropped; see the module for when that
/// is right.
#[allow(clippy::disallowed_methods)] // the one place a detached task starts
pub fn run_to_end<F>(work: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(work)
}

/// Run blocking `work` on Tokio's blocking pool to its end, whether or not
/// the returned handle is awaited or dropped (an aborted
/// `SpawnedTask::spawn_blocking` that has not started never runs).
#[allow(clippy::disallowed_methods)] // the one place detached blocking work starts
pub fn blocking_to_end<F, R>(work: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(work)
}
