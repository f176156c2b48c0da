//! What a sum, an average or a variance may add up.
//!
//! Released sums are exact, so what they add up must be judged by the
//! disclosure rules part by part ([`crate::partials::cells`] cuts an argument into
//! its terms; [`crate::partials::dominance`] judges each). Two things escape any
//! judgement of the parts and are refused here, at the coordinator and at
//! every site:
//!
//! * **Codes are not quantities.** `sum(condition_concept_id)` adds up
//!   public code numbers; with codes far apart in size the total encodes how
//!   many rows have each code, the rare ones included. Value aggregates take
//!   the quantity columns the catalog declares a range for
//!   (`ihdsi_catalog::bounds`: `value_as_number`, `quantity`,
//!   `days_supply`, `year_of_birth`, ...) and dates (through
//!   `date_part`, or differences of two dates).
//! * **A value computed in a subquery cannot be taken apart.** The terms of
//!   `value + 1000 AS v`, or of a CASE in a subquery, are not visible where
//!   the cells are counted. A column a value aggregate reads must come to it
//!   unchanged from a table (through projections, filters, joins and
//!   unions of the same column), or be a per-patient `sum`, `avg`, `min`,
//!   `max` of such a column, or a per-patient `count`. The arithmetic
//!   belongs inside the aggregate itself, where every part is checked.

use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

use crate::analysis::exprs::{is_date_or_timestamp, strip_alias};
use crate::analysis::lineage::{join_source, pass_through};
use crate::analysis::terms::terms;
use crate::error::{PlanError, Result};
use ihdsi_catalog::{bounds, schema};

/// Whether `name` is an aggregate whose value is a sum of values.
fn sums_values(name: &str) -> bool {
    matches!(
        name,
        "sum"
            | "avg"
            | "mean"
            | "var"
            | "var_samp"
            | "var_pop"
            | "stddev"
            | "stddev_samp"
            | "stddev_pop"
    )
}

/// Check every value aggregate of a release boundary.
pub fn check_aggregate(agg: &Aggregate) -> Result<()> {
    for e in &agg.aggr_expr {
        let Expr::AggregateFunction(f) = strip_alias(e) else {
            continue;
        };
        let name = f.func.name().to_ascii_lowercase();
        if !sums_values(&name) {
            continue;
        }
        let Some(arg) = f.params.args.first() else {
            continue;
        };
        for term in terms(arg, agg.input.schema())? {
            for c in &term.values {
                let index = agg.input.schema().index_of_column(c).map_err(|_| {
                    PlanError::Internal(format!("column {c} not in the aggregate's input"))
                })?;
                if let Err(why) = quantity(&agg.input, index) {
                    return Err(PlanError::policy(
                        crate::rules::Rule::DeclaredQuantities,
                        format!(
                            "{name}({}) adds up {}, which is {why}. Sums, averages and variances take quantity columns with a declared range (value_as_number, quantity, days_supply, year_of_birth, ...) or dates, passed through unchanged or aggregated per patient; write any arithmetic or CASE inside the aggregate itself, where each part is checked",
                            crate::analysis::exprs::sql_text(arg),
                            c.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Follow output column `index` of `plan` to where its values come from:
/// `Ok(name)` of the quantity column it carries unchanged, or why not.
fn quantity(plan: &LogicalPlan, index: usize) -> std::result::Result<String, String> {
    if let Some(input) = pass_through(plan) {
        return quantity(input, index);
    }
    let field = plan
        .schema()
        .fields()
        .get(index)
        .ok_or_else(|| "not found".to_string())?;
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = field.name().clone();
            let table = scan.table_name.table();
            if !schema::is_patient_table(table) {
                return Err(format!("a column of the public table {table}"));
            }
            if bounds::for_column(&name).is_some() || is_date_or_timestamp(field.data_type()) {
                Ok(name)
            } else {
                Err(format!(
                    "a code or identifier column of {table}, not a quantity"
                ))
            }
        }
        LogicalPlan::Projection(p) => match p.expr.get(index).map(strip_alias) {
            Some(Expr::Column(c)) => follow(&p.input, c),
            Some(other) => Err(format!("computed in a subquery as {other}")),
            None => Err("not found".into()),
        },
        LogicalPlan::Window(w) => {
            if index < w.input.schema().fields().len() {
                quantity(&w.input, index)
            } else {
                Err("a window function's result".into())
            }
        }
        LogicalPlan::Join(j) => join_source(j, index).map_or_else(
            || Err("a join's match flag".into()),
            |(p, i)| quantity(p, i),
        ),
        LogicalPlan::Union(u) => {
            let names = u
                .inputs
                .iter()
                .map(|i| quantity(i, index))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            match names.split_first() {
                Some((first, rest)) if rest.iter().all(|n| n == first) => Ok(first.clone()),
                _ => Err("a union of different columns".into()),
            }
        }
        LogicalPlan::Aggregate(a) => per_patient(a, index),
        _ => Err("computed by an operator the rules cannot follow".into()),
    }
}

fn follow(
    input: &LogicalPlan,
    c: &datafusion::common::Column,
) -> std::result::Result<String, String> {
    let i = input
        .schema()
        .index_of_column(c)
        .map_err(|_| "not found".to_string())?;
    quantity(input, i)
}

/// An output of a sub-aggregate below the boundary (grouped per patient).
fn per_patient(a: &Aggregate, index: usize) -> std::result::Result<String, String> {
    let keys = a.group_expr.len();
    let e = if index < keys {
        a.group_expr.get(index)
    } else {
        a.aggr_expr.get(index - keys)
    };
    match e.map(strip_alias) {
        Some(Expr::Column(c)) => follow(&a.input, c),
        Some(Expr::AggregateFunction(f)) => {
            let name = f.func.name().to_ascii_lowercase();
            match (name.as_str(), f.params.args.first().map(strip_alias)) {
                ("count", _) => Ok("count".into()),
                ("sum" | "avg" | "min" | "max", Some(Expr::Column(c))) => follow(&a.input, c),
                _ => Err(format!(
                    "computed per patient as {} of an expression",
                    f.func.name()
                )),
            }
        }
        Some(other) => Err(format!("computed in a subquery as {other}")),
        None => Err("not found".into()),
    }
}
