//! The cells of a release: which patient count every partial is judged on.
//!
//! A cell is one aggregate term of one group; its patients are counted by
//! the site next to the partials ([`crate::partials::cells`] builds the
//! counting expressions) and read by the disclosure layer through this
//! layout: a partial rests on the group's own patient count or on a cell
//! column `ihdsi_c{n}`.

use datafusion::logical_expr::Expr;
use ihdsi_catalog::bounds::ValueBounds;

/// How the patients of one cell are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSource {
    /// The aggregate's FILTER.
    pub filter: Option<Expr>,
    /// The value that must be present (not NULL), if any.
    pub value: Option<Expr>,
    /// Whether the value must also be non-zero.
    pub nonzero: bool,
    /// The declared range of `value` when it is a plain column, so that a
    /// site that clamps it tests the clamped value.
    pub bounds: Option<ValueBounds>,
}

/// Where a partial's cell count is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellRef {
    /// The group's own distinct-patient count (`ihdsi_patients`): the cell
    /// provably has every patient of the group.
    Group,
    /// Cell column `ihdsi_c{n}`.
    Column(usize),
}

/// The cells of one canonical subplan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CellLayout {
    /// Per partial column `p*`: the cells it rests on (one per term).
    pub per_partial: Vec<Vec<CellRef>>,
    /// What each cell column counts.
    pub sources: Vec<CellSource>,
}

impl CellLayout {
    /// Whether two layouts give the same columns for the same partials
    /// (the expressions may be spelt differently after a round trip
    /// through SQL).
    pub fn same_shape(&self, other: &CellLayout) -> bool {
        self.per_partial == other.per_partial
            && self.sources.len() == other.sources.len()
            && self
                .sources
                .iter()
                .zip(&other.sources)
                .all(|(a, b)| a.nonzero == b.nonzero)
    }
}
