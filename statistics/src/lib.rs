//! The statistics a federation finishes at the coordinator, from counts
//! merged across sites.
//!
//! Survival analysis across sites needs no patient-level data: the
//! Kaplan–Meier estimator, its Greenwood variance and the log-rank test
//! are functions of the number of events, censorings and patients at risk
//! at each time of a grid. Each site counts its patients per bin of a
//! declared grid; the coordinator adds the counts, the disclosure layer
//! checks every bin, and this crate finishes the statistics from what was
//! released. Nothing here sees a site or a patient, only [`Bin`]s.
//!
//! The definitions follow the reference libraries the test suite checks
//! against, so that a federated curve equals the pooled one to rounding:
//! lifelines' `KaplanMeierFitter` (exponential Greenwood intervals,
//! `median_survival_times`, `restricted_mean_survival_time`) and
//! `multivariate_logrank_test`, and statsmodels' `survdiff` for the
//! stratified test and `CumIncidenceRight` for cumulative incidence.
//!
//! ```text
//!   merged per-bin counts (one stratum: time, events, censored)
//!       │  bins::Stratum::new         (sorted, checked; at risk derived)
//!       ├─► kaplan_meier::curve       S(t), Greenwood SE, log-log CI
//!       │     ├─ median               with its CI
//!       │     └─ restricted_mean      up to a horizon
//!       ├─► logrank::test             k strata, or k groups × strata
//!   per-cause counts
//!       └─► competing::cumulative_incidence   Aalen–Johansen, with its SE
//!   patients per bin of a value
//!       └─► histogram::{histogram, quantile}  open ends, the bin of a rank
//! ```

pub mod bins;
pub mod competing;
pub mod error;
pub mod histogram;
pub mod kaplan_meier;
pub mod logrank;

pub use bins::{Bin, Stratum};
pub use competing::{CompetingBin, IncidencePoint};
pub use error::{Result, StatisticsError};
pub use histogram::HistogramBin;
pub use kaplan_meier::{Curve, CurvePoint, Median};
pub use logrank::LogRank;
