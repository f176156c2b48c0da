//! The axis of a release whose last group key is a bin (a survival curve's
//! time, a histogram's value): which partials count its rows, events and
//! competing events. [`crate::analysis::axis`] reads it from a plan; the
//! disclosure layer coarsens small bins of such a release instead of
//! withholding them.

/// The finest time grid: a month, as dates are generalised elsewhere
/// (A35).
pub const MIN_WIDTH_DAYS: i64 = 30;

/// A release whose last group key is a bin: the disclosure layer
/// coarsens its bins rather than withholding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeAxis {
    /// The partial counting the events of each bin (none on a value axis:
    /// a histogram counts patients only).
    pub events: Option<usize>,
    /// The partial counting the competing events, for cumulative
    /// incidence.
    pub competing: Option<usize>,
    /// The partial counting the rows of each bin.
    pub rows: usize,
}
