//! The p% dominance rule on SUM cells (threshold mode).
//!
//! A SUM cell is withheld when `X − x₁ − x₂ < p/100 · x₁`: without the two
//! largest patient contributions `x₁ ≥ x₂`, the rest of the total `X` is
//! too small to hide `x₁` from the second-largest contributor, who can
//! subtract their own share (ESSnet Handbook on SDC, which prefers this
//! rule to (n, k) dominance). Contributions are taken in absolute value, so
//! that negative values cannot cancel out a dominant one.
//!
//! Each site summarises its patients' contributions per group as a
//! [`Dominance`]; the coordinator merges the sites' summaries (the two
//! largest overall are among the sites' two largest) and applies the rule
//! to the merged cell. The summaries stay in the coordinator's memory: they
//! are never released, logged or cached.

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};

use crate::error::{EngineError, Result};
use ihdsi_planner::Release;

/// The two largest contributions to one SUM cell and the total of all.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dominance {
    pub top1: f64,
    pub top2: f64,
    pub total: f64,
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
    }

    /// Whether the cell fails the p% rule and must be withheld.
    pub fn dominated(&self, p: f64) -> bool {
        self.total - self.top1 - self.top2 < p / 100.0 * self.top1
    }

    /// Whether a summary can come from real contributions.
    pub fn plausible(&self) -> bool {
        let finite = self.top1.is_finite() && self.top2.is_finite() && self.total.is_finite();
        // Totals are sums of floats: allow rounding in the last places.
        let slack = 1e-9 * self.total.max(1.0);
        finite
            && self.top2 >= 0.0
            && self.top1 >= self.top2
            && self.total + slack >= self.top1 + self.top2
    }
}

/// The three summary columns of one SUM partial in a site's answer,
/// typed once per batch.
#[derive(Debug)]
pub(crate) struct SummaryColumns<'a>([&'a Float64Array; 3]);

impl<'a> SummaryColumns<'a> {
    /// The columns of dominance entry `n` of `release` in `batch`.
    pub(crate) fn of(release: &Release, batch: &'a RecordBatch, n: usize) -> Result<Self> {
        let first = release.base_width() + 3 * n;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Dominance {
        let mut d = Dominance::default();
        values.iter().for_each(|&v| d.add(v));
        d
    }

    #[test]
    fn the_rule_withholds_cells_two_patients_dominate() {
        // X − x1 − x2 = 19 < 10 % of 600.
        assert!(of(&[600.0, 1.0, 18.0, 1.0]).dominated(10.0));
        // Twenty similar contributions: the rest is 18 ≥ 0.1.
        assert!(!of(&[1.0; 20]).dominated(10.0));
        // Two patients alone always dominate; an all-zero cell does not.
        assert!(of(&[5.0, 5.0]).dominated(10.0));
        assert!(!of(&[0.0, 0.0, 0.0]).dominated(10.0));
        // Negative values count by magnitude.
        assert!(of(&[-600.0, 10.0, 10.0, 10.0]).dominated(10.0));
        // p = 25 is stricter than p = 10 on the same cell.
        let cell = of(&[100.0, 10.0, 5.0, 5.0, 5.0]);
        assert!(!cell.dominated(10.0) && cell.dominated(25.0));
    }

    #[test]
    fn merging_site_summaries_equals_summarising_the_union() {
        let (a, b) = ([7.0, 3.0, 9.0, 1.0], [8.0, 2.0, 10.0]);
        let mut merged = of(&a);
        merged.merge(of(&b));
        let union: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(merged, of(&union));
        assert!(merged.plausible());
        let lying = Dominance {
            top1: 1.0,
            top2: 5.0,
            total: 6.0,
        };
        assert!(!lying.plausible());
    }
}
