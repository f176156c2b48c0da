//! A release: one boundary aggregate, split into the subplan every site runs
//! and the merge the coordinator applies to what the sites return.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::logical_expr::LogicalPlan;

pub mod aggregates;
pub mod axis;
pub mod cells;
pub mod columns;
pub mod dominance;

use crate::release::aggregates::{Merge, PartialKind};
use crate::release::cells::CellLayout;
use crate::release::dominance::DominanceEntry;

pub use crate::release::columns::{
    DOMINANCE_WIDTH, PATIENTS_COLUMN, cell_column, dominance_columns, key_column, partial_column,
};

/// One release boundary of a federated query.
#[derive(Debug, Clone)]
pub struct Release {
    /// Position among the query's releases (depth-first, left to right).
    pub index: usize,
    /// The canonical subplan, as a logical plan over the virtual schema.
    pub site_plan: LogicalPlan,
    /// The same subplan as canonical SQL: what is sent, logged and audited.
    pub site_sql: String,
    /// Patient tables the subplan reads; a site must host all of them.
    pub tables: BTreeSet<String>,
    /// Number of group-key columns (`k0..`).
    pub key_count: usize,
    /// Number of partial columns (`p0..`), followed by [`PATIENTS_COLUMN`]
    /// and the cell counts.
    pub partial_count: usize,
    /// The cell each partial rests on, and the cell count columns
    /// (`ihdsi_c*`) every site appends after [`PATIENTS_COLUMN`].
    pub cells: CellLayout,
    /// What each partial column `p*` measures (for bounding and noise).
    pub partials: Vec<PartialKind>,
    /// The cells judged by the p% dominance rule; empty when the rule is
    /// off. Sites then send [`dominance_columns`] for each after the cell
    /// counts.
    pub dominance: Vec<DominanceEntry>,
    /// How each analyst aggregate is merged, in the boundary's order.
    pub merges: Vec<Merge>,
    /// The boundary aggregate's output schema, as the rest of the query sees it.
    pub schema: DFSchemaRef,
    /// Set when the last key is a time bin: the disclosure layer then
    /// coarsens small bins instead of withholding them.
    pub time_axis: Option<crate::release::axis::TimeAxis>,
}

impl Release {
    /// The Arrow schema of the released (merged, thresholded) table that
    /// replaces the boundary at the coordinator: `c0..cN`, all nullable.
    pub fn released_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The data types of the site answer's columns, as planned: keys,
    /// partials, patients, cell counts and the dominance columns, if any.
    pub fn site_types(&self) -> Vec<DataType> {
        let mut types: Vec<DataType> = self
            .site_plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        types.extend(std::iter::repeat_n(
            DataType::Int64,
            self.cells.sources.len(),
        ));
        types.extend(std::iter::repeat_n(
            DataType::Float64,
            DOMINANCE_WIDTH * self.dominance.len(),
        ));
        types
    }

    /// Number of columns of the site answer before the cell counts: keys,
    /// partials and the patient count.
    pub fn base_width(&self) -> usize {
        self.key_count + self.partial_count + 1
    }

    /// Index of the first dominance column of the site answer.
    pub fn dominance_start(&self) -> usize {
        self.base_width() + self.cells.sources.len()
    }
}
