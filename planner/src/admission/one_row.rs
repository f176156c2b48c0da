//! Whether a curve's cohort has one row per patient, read from the plan.
//!
//! A curve counts each patient once: a patient with two rows would be at
//! risk twice. Checking it on the data (rows against distinct patients)
//! would answer a question about single patients ("does anyone in this
//! cohort have two rows?"), so it is checked on the query instead, where
//! it can be proved: the cohort is the `person` table, or grouped by the
//! patient (and otherwise only by columns of `person`), or joins of such
//! cohorts on the patient, under filters, projections and aliases. The
//! same check runs at every site on the SQL it receives.

use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, JoinType, LogicalPlan, Operator};

use crate::analysis::exprs::strip_alias;
use crate::analysis::lineage::{expr_is_unit, join_source, lineage, pass_through};
use crate::error::Result;

/// The table with one row per patient.
const PERSON: &str = "person";

/// Whether `plan` provably returns at most one row per patient.
pub fn one_row_per_patient(plan: &LogicalPlan) -> Result<bool> {
    if let Some(input) = pass_through(plan) {
        return one_row_per_patient(input);
    }
    match plan {
        LogicalPlan::Projection(p) => one_row_per_patient(&p.input),
        LogicalPlan::TableScan(scan) => Ok(scan.table_name.table() == PERSON),
        LogicalPlan::Aggregate(agg) => {
            let units = lineage(&agg.input)?;
            let unit = |k: &Expr| expr_is_unit(k, &agg.input, &units);
            let of_person = |k: &Expr| match strip_alias(k) {
                Expr::Column(c) => agg
                    .input
                    .schema()
                    .index_of_column(c)
                    .is_ok_and(|i| from_person(&agg.input, i)),
                _ => false,
            };
            let keys_ok = agg.group_expr.iter().any(unit)
                && agg.group_expr.iter().all(|k| unit(k) || of_person(k));
            Ok(keys_ok || (agg.group_expr.iter().any(unit) && one_row_per_patient(&agg.input)?))
        }
        LogicalPlan::Join(j) if matches!(j.join_type, JoinType::Inner | JoinType::Left) => {
            let (left, right) = (lineage(&j.left)?, lineage(&j.right)?);
            let same = |a: &Expr, b: &Expr| {
                expr_is_unit(a, &j.left, &left) && expr_is_unit(b, &j.right, &right)
            };
            // As planned from SQL the condition is the join's filter; after
            // optimisation, its `on` pairs.
            let from_filter = j.filter.as_ref().is_some_and(|f| {
                split_conjunction(f).into_iter().any(|c| match c {
                    Expr::BinaryExpr(BinaryExpr {
                        left: a,
                        op: Operator::Eq,
                        right: b,
                    }) => same(a, b) || same(b, a),
                    _ => false,
                })
            });
            let on_patient = from_filter || j.on.iter().any(|(l, r)| same(l, r));
            Ok(on_patient && one_row_per_patient(&j.left)? && one_row_per_patient(&j.right)?)
        }
        _ => Ok(false),
    }
}

/// Whether output column `index` of `plan` is a column of the `person`
/// table, passed through unchanged: its lineage is followed, never its
/// name (a table aliased `person` is not the person table).
fn from_person(plan: &LogicalPlan, index: usize) -> bool {
    if let Some(input) = pass_through(plan) {
        return from_person(input, index);
    }
    match plan {
        LogicalPlan::TableScan(scan) => scan.table_name.table() == PERSON,
        LogicalPlan::Projection(p) => match p.expr.get(index).map(strip_alias) {
            Some(Expr::Column(c)) => p
                .input
                .schema()
                .index_of_column(c)
                .is_ok_and(|i| from_person(&p.input, i)),
            // A constant, such as the `site` a site's view adds.
            Some(Expr::Literal(..)) => true,
            _ => false,
        },
        LogicalPlan::Join(j) => join_source(j, index).is_some_and(|(side, i)| from_person(side, i)),
        _ => false,
    }
}
