//! Why a statistic cannot be finished from the counts it was given.
//!
//! These are faults of the input (a grid out of order, a bin with no
//! patients, too few groups), worded for the analyst; they never carry a
//! count, which could be one the disclosure layer withheld.

/// Result alias for this crate.
pub type Result<T, E = StatisticsError> = std::result::Result<T, E>;

/// Why a statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatisticsError {
    /// The bin times are not strictly increasing, or not finite.
    #[error("the time grid is not strictly increasing from its first bin")]
    UnorderedGrid,
    /// A statistic needs at least this many groups.
    #[error("{statistic} needs at least {needed} groups, got {got}")]
    TooFewGroups {
        statistic: &'static str,
        needed: usize,
        got: usize,
    },
    /// The confidence level is not strictly between 0 and 1.
    #[error("the confidence level must lie strictly between 0 and 1")]
    ConfidenceLevel,
    /// The covariance of the log-rank scores is singular: the groups do
    /// not overlap in time.
    #[error("the log-rank test is undefined: the groups share no time at risk")]
    Singular,
}
