//! A release: one boundary aggregate, split into the subplan every site runs
//! and the merge the coordinator applies to what the sites return.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::logical_expr::LogicalPlan;

use crate::aggregates::{Merge, PartialKind};

/// Name of the hidden distinct-patient count a site returns last.
pub const PATIENTS_COLUMN: &str = "ihdsi_patients";

/// Name of the i-th group key column of a site's answer.
pub fn key_column(i: usize) -> String {
    format!("k{i}")
}

/// Name of the j-th partial aggregate column of a site's answer.
pub fn partial_column(j: usize) -> String {
    format!("p{j}")
}

/// Names of the three hidden columns a site sends for the SUM partial
/// `p{j}` under the dominance rule: its two largest patient contributions
/// (absolute values) and the total of all of them, per group.
pub fn dominance_columns(j: usize) -> [String; 3] {
    [
        format!("ihdsi_d{j}_top1"),
        format!("ihdsi_d{j}_top2"),
        format!("ihdsi_d{j}_total"),
    ]
}

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
    /// Number of partial columns (`p0..`), followed by [`PATIENTS_COLUMN`].
    pub partial_count: usize,
    /// What each partial column `p*` measures (for bounding and noise).
    pub partials: Vec<PartialKind>,
    /// The SUM partials (`p*` indices) checked by the p% dominance rule;
    /// empty when the rule is off. Sites then send
    /// [`dominance_columns`] for each after [`PATIENTS_COLUMN`].
    pub dominance: Vec<usize>,
    /// How each analyst aggregate is merged, in the boundary's order.
    pub merges: Vec<Merge>,
    /// The boundary aggregate's output schema, as the rest of the query sees it.
    pub schema: DFSchemaRef,
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

    /// The data types of the site answer's columns, as planned (with the
    /// dominance columns, if any).
    pub fn site_types(&self) -> Vec<DataType> {
        let mut types: Vec<DataType> = self
            .site_plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        types.extend(std::iter::repeat_n(
            DataType::Float64,
            3 * self.dominance.len(),
        ));
        types
    }

    /// Number of columns of the site answer before the dominance columns:
    /// keys, partials and the patient count.
    pub fn base_width(&self) -> usize {
        self.key_count + self.partial_count + 1
    }
}
