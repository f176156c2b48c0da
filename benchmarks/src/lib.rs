//! `ihdsi-bench`: what federation costs, measured side by side in one run.
//!
//! A research network adopts a federated engine only if it costs little
//! over the pooled database every analyst has in mind (legally impossible
//! here, but the baseline). So every query runs, interleaved, in three
//! configurations over the same Parquet files:
//!
//! * **federated**: site processes and a coordinator process on loopback,
//!   secured as deployed (mutual TLS, permits, audit trails), queried
//!   through Flight SQL by the same client code analysts use;
//! * **centralized**: one DataFusion session over the union of the files,
//!   our own stack with no federation;
//! * **DuckDB** over the same files (its Python package, in a child
//!   process), the peer a user would pick instead.
//!
//! ```text
//! cohort (generated, cached) ─► workload ─► interleaved runs ─► medians,
//!   ratios, bytes from sites, time breakdown (coordinator log) ─► sweeps
//!   (persons, sites, analysts, trivial-query latency) ─► RESULTS.md + SVG
//! ```
//!
//! Speed is never asserted by tests: the numbers live in
//! `benchmarks/RESULTS.md`, with the machine and the commit they came from.

// A benchmark reports progress on stderr and its summary on stdout: that is
// its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod backends;
pub mod centralized;
pub mod cli;
pub mod cohort;
pub mod duckdb;
pub mod error;
pub mod federated;
pub mod plots;
pub mod report;
pub mod soak;
pub mod stats;
pub mod sweeps;
pub mod workload;

pub use error::{BenchError, Result};
