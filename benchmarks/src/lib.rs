//! Benchmarks of the price of federation (issue 6 builds them here):
//! federated against centralized DataFusion and DuckDB on the same data,
//! bytes across borders, and scaling with patients, sites and analysts.
//!
//! The one measurement issue 2 needs, bytes received per grouped query at
//! 1k and 100k persons, is a test (`tests/tests/federation/bytes.rs`)
//! because it asserts a property, not a speed. Speeds are never asserted
//! by tests: they are measured here, as ratios against a baseline run in
//! the same process, because the machines are shared and noisy.
