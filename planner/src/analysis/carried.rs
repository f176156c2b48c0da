//! Which patient-table columns an output column carries unchanged.
//!
//! A rule keyed on a column (the identifier, free text, the day of birth)
//! must hold wherever the column's values go, not wherever its name does:
//! `SELECT person_source_value AS s`, a `UNION ALL` whose first branch
//! names the column, a CTE, or the nullable side of a `LEFT JOIN` all
//! carry the same values under another name. [`carried`] follows an output
//! column down through projections of a bare column, filters, sorts,
//! subquery aliases, both sides of every join, every branch of a union,
//! group keys, and the aggregates and window functions that return one of
//! their input values (`min`, `max`, `first_value`, `lag`, ...), to the
//! table columns whose values it may hold. Computed values carry nothing:
//! the node that computes them is judged by the rules where it stands.

use std::collections::BTreeSet;

use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::analysis::exprs::{call, strip_alias};
use crate::analysis::lineage::{join_source, pass_through};
use crate::analysis::scope::Scope;

/// The lower-case names of the patient-table columns whose values output
/// column `index` of `plan` may hold unchanged.
pub fn carried(plan: &LogicalPlan, index: usize) -> BTreeSet<String> {
    if let Some(input) = pass_through(plan) {
        return carried(input, index);
    }
    let Some(field) = plan.schema().fields().get(index) else {
        return BTreeSet::new();
    };
    match plan {
        LogicalPlan::TableScan(scan)
            if ihdsi_catalog::schema::is_patient_table(scan.table_name.table()) =>
        {
            BTreeSet::from([field.name().to_ascii_lowercase()])
        }
        LogicalPlan::Projection(p) => p
            .expr
            .get(index)
            .map(|e| carried_by(e, Scope::One(&p.input)))
            .unwrap_or_default(),
        LogicalPlan::Aggregate(a) => {
            let keys = a.group_expr.len();
            let e = match index.checked_sub(keys) {
                None => a.group_expr.get(index),
                Some(k) => a.aggr_expr.get(k),
            };
            e.map(|e| carried_by(e, Scope::One(&a.input)))
                .unwrap_or_default()
        }
        LogicalPlan::Window(w) => match index.checked_sub(w.input.schema().fields().len()) {
            None => carried(&w.input, index),
            Some(k) => w
                .window_expr
                .get(k)
                .map(|e| carried_by(e, Scope::One(&w.input)))
                .unwrap_or_default(),
        },
        LogicalPlan::Join(j) => join_source(j, index)
            .map(|(p, i)| carried(p, i))
            .unwrap_or_default(),
        LogicalPlan::Union(u) => u.inputs.iter().flat_map(|i| carried(i, index)).collect(),
        _ => BTreeSet::new(),
    }
}

/// What column `c` carries in `scope` (its name too, so that a column the
/// plan cannot follow is still judged by its name).
pub fn carried_column(c: &Column, scope: Scope<'_>) -> BTreeSet<String> {
    let mut names = scope
        .resolve(c)
        .map(|(p, i)| carried(p, i))
        .unwrap_or_default();
    names.insert(c.name.to_ascii_lowercase());
    names
}

/// What expression `e` carries: a bare column's values, or those of an
/// aggregate or window function that returns one of its input values.
fn carried_by(e: &Expr, scope: Scope<'_>) -> BTreeSet<String> {
    if let Expr::Column(c) = strip_alias(e) {
        return carried_column(c, scope);
    }
    call(e)
        .filter(|(name, _)| returns_an_input(name))
        .and_then(|(_, args)| args.first())
        .map(|a| carried_by(a, scope))
        .unwrap_or_default()
}

fn returns_an_input(name: &str) -> bool {
    matches!(
        name,
        "min"
            | "max"
            | "first_value"
            | "last_value"
            | "nth_value"
            | "lag"
            | "lead"
            | "any_value"
            | "array_agg"
    )
}
