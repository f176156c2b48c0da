//! The sites: mixed backends (PostgreSQL, Ballista, DataFusion), faults of
//! whole processes, mutual TLS and permits, and what a data steward relies on
//! (opt-out, audit).

mod chaos;
mod mixed;
mod postgres;
mod security;
mod stewardship;
