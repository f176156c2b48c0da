//! Building blocks of the differential-privacy mode: exact noise samplers
//! and the persistent zCDP budget ledger.
//!
//! They are deliberately independent of DataFusion: noise is drawn and
//! budget is charged in plain Rust, after the merge, where no optimiser
//! can reorder, fold or duplicate them.

pub mod ledger;
pub mod noise;
pub mod sampler;

pub use ledger::{BudgetLedger, Charged, LedgerError, NANO, Rho};
pub use noise::{ColumnNoise, NoisePlan};
pub use sampler::{OsUniform, SamplerError, Uniform, discrete_gaussian, discrete_laplace};
