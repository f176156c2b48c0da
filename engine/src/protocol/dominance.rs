//! The dominance summary a site sends for each cell the p% rule judges:
//! the two largest patient contributions, their total, and the most rows
//! one patient has in the cell (four `Float64` columns after the cell
//! counts). Sites build it, the coordinator checks it is plausible and
//! merges it; the rule itself is the disclosure layer's
//! (`crate::disclosure::dominance`).

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};

use crate::error::{EngineError, Result};
use ihdsi_planner::Release;
use ihdsi_planner::release::DOMINANCE_WIDTH;

/// The two largest contributions to one cell, the total of all, and (for
/// a spread) the most rows one patient has in it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dominance {
    pub top1: f64,
    pub top2: f64,
    pub total: f64,
    pub rows: f64,
}

impl Dominance {
    /// Account for one patient's contribution.
    pub fn add(&mut self, contribution: f64) {
        let a = contribution.abs();
        self.total += a;
        if a > self.top1 {
            self.top2 = self.top1;
            self.top1 = a;
        } else if a > self.top2 {
            self.top2 = a;
        }
    }

    /// Combine the summaries of disjoint sets of patients (two sites).
    pub fn merge(&mut self, other: Dominance) {
        let total = self.total + other.total;
        self.add(other.top1);
        self.add(other.top2);
        self.total = total;
        self.rows = self.rows.max(other.rows);
    }

    /// Whether a summary can come from real contributions.
    pub fn plausible(&self) -> bool {
        let finite = [self.top1, self.top2, self.total, self.rows]
            .iter()
            .all(|v| v.is_finite());
        // Totals are sums of floats: allow rounding in the last places.
        let slack = 1e-9 * self.total.max(1.0);
        finite
            && self.top2 >= 0.0
            && self.rows >= 0.0
            && self.top1 >= self.top2
            && self.total + slack >= self.top1 + self.top2
    }
}

/// The summary columns of one dominance entry in a site's answer, typed
/// once per batch.
#[derive(Debug)]
pub(crate) struct SummaryColumns<'a>([&'a Float64Array; DOMINANCE_WIDTH]);

impl<'a> SummaryColumns<'a> {
    /// The columns of dominance entry `n` of `release` in `batch`.
    pub(crate) fn of(release: &Release, batch: &'a RecordBatch, n: usize) -> Result<Self> {
        let first = release.dominance_start() + DOMINANCE_WIDTH * n;
        let column = |c: usize| -> Result<&'a Float64Array> {
            batch
                .column(c)
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| EngineError::Internal("dominance column is not Float64".into()))
        };
        Ok(Self([
            column(first)?,
            column(first + 1)?,
            column(first + 2)?,
            column(first + 3)?,
        ]))
    }

    /// The summary in `row`; a NULL reads as NaN, which is implausible.
    pub(crate) fn get(&self, row: usize) -> Dominance {
        let value = |c: &Float64Array| {
            if c.is_null(row) {
                f64::NAN
            } else {
                c.value(row)
            }
        };
        Dominance {
            top1: value(self.0[0]),
            top2: value(self.0[1]),
            total: value(self.0[2]),
            rows: value(self.0[3]),
        }
    }
}
