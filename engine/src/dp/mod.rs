//! Building blocks of the differential-privacy mode: exact noise samplers
//! and the persistent zCDP budget ledger. The release itself (calibration,
//! group selection, noise) is a rule of the disclosure layer:
//! [`crate::disclosure::noise`].
//!
//! They are deliberately independent of DataFusion: noise is drawn and
//! budget is charged in plain Rust, after the merge, where no optimiser
//! can reorder, fold or duplicate them.

pub mod ledger;
pub mod sampler;

pub use ledger::{BudgetLedger, Charged, LedgerError, NANO, Rho};
pub use sampler::{OsUniform, SamplerError, Uniform, discrete_gaussian, discrete_laplace};
