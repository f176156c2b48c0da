//! Whether answers are right: federated answers against the pooled oracle (the
//! differential suites and the fuzzer), the pinned SQL behaviour, what crosses
//! from sites, and the synthetic cohort itself.

mod bytes;
mod cohort;
mod differential;
mod fuzz;
mod pinned;
