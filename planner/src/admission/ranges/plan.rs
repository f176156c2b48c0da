//! Ranges that follow each column down the plan to what it reads, and
//! bounds on what a site's sums can add up to.
//!
//! [`super::range_of`] takes a column's range from its name, which is
//! enough where the sites make the result total whatever the data (a cast
//! sent as `TRY_CAST`). Proving that arithmetic cannot overflow needs more:
//! `SELECT person_id AS year_of_birth` is not a year, and a per-patient
//! `count(*) AS k` is at most the rows a site holds, not any 64-bit
//! integer. So here a column is followed through projections, filters,
//! joins, unions, windows and per-patient aggregates to the table column it
//! reads, whose declared bounds (`ihdsi_catalog::bounds`) or type give its
//! range; dates count in days within [`DATE_DAYS`].
//!
//! A sum needs a second bound: what its values can add up to at a site,
//! `Σ|x|` over the rows it reads ([`total_in`]). It is at most the largest
//! value times [`MAX_ROWS`], and tighter for what the plan shows: the
//! per-patient counts of a site add up to its rows, not to rows squared.

use datafusion::common::Column;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use super::{Columns, Range, literal, range_with, type_range};
use crate::analysis::exprs::{call, strip_alias};
use crate::analysis::lineage::{join_source, pass_through};
use crate::analysis::scope::Scope;

/// The most rows one site reads for one aggregate: every bound on sums
/// and variances assumes it (2³²; a site's row guard stops a query far
/// below it, `max_intermediate_rows`).
pub const MAX_ROWS: f64 = 4_294_967_296.0;

/// The dates the analysis assumes, in days since 1970-01-01: 1800-01-01
/// to 2300-12-31 (OMOP's own sentinel is 2099-12-31).
pub const DATE_DAYS: (f64, f64) = (-62_091.0, 120_940.0);

/// The range of `e` over `scope`, each column followed to what it reads.
pub fn range_in(e: &Expr, scope: Scope<'_>) -> Option<Range> {
    let schema = scope.schema();
    let column = |_: &Expr, c: &Column| scope.resolve(c).and_then(|(p, i)| column_range(p, i));
    range_with(
        e,
        &Columns {
            schema: &schema,
            column: &column,
        },
    )
}

/// The range of output column `index` of `plan`.
pub fn column_range(plan: &LogicalPlan, index: usize) -> Option<Range> {
    if let Some(input) = pass_through(plan) {
        return column_range(input, index);
    }
    let field = plan.schema().fields().get(index)?;
    match plan {
        LogicalPlan::TableScan(_) => ihdsi_catalog::bounds::for_column(field.name())
            .and_then(|b| Range::new(b.lo, b.hi))
            .or_else(|| match field.data_type() {
                datafusion::arrow::datatypes::DataType::Date32 => {
                    Range::new(DATE_DAYS.0, DATE_DAYS.1)
                }
                t => type_range(t),
            }),
        LogicalPlan::Projection(p) => range_in(p.expr.get(index)?, Scope::One(&p.input)),
        LogicalPlan::Aggregate(a) => {
            let keys = a.group_expr.len();
            match index.checked_sub(keys) {
                None => range_in(a.group_expr.get(index)?, Scope::One(&a.input)),
                Some(k) => aggregate_range(a.aggr_expr.get(k)?, Scope::One(&a.input)),
            }
        }
        LogicalPlan::Window(w) => match index.checked_sub(w.input.schema().fields().len()) {
            None => column_range(&w.input, index),
            Some(k) => aggregate_range(w.window_expr.get(k)?, Scope::One(&w.input)),
        },
        LogicalPlan::Join(j) => join_source(j, index).and_then(|(p, i)| column_range(p, i)),
        // A branch that holds only NULL there (a placeholder column of a
        // `UNION ALL`) adds no value.
        LogicalPlan::Union(u) => u
            .inputs
            .iter()
            .filter(|i| !only_null(i, index))
            .map(|i| column_range(i, index))
            .reduce(|a, b| Some(a?.union(b?)))
            .flatten(),
        _ => None,
    }
}

/// Whether output column `index` of `plan` is a NULL literal (cast or not).
fn only_null(plan: &LogicalPlan, index: usize) -> bool {
    if let Some(input) = pass_through(plan) {
        return only_null(input, index);
    }
    let LogicalPlan::Projection(p) = plan else {
        return false;
    };
    let mut e = p.expr.get(index).map(strip_alias);
    while let Some(Expr::Cast(c)) = e {
        e = Some(strip_alias(&c.expr));
    }
    matches!(e, Some(Expr::Literal(v, _)) if v.is_null())
}

/// The range of an aggregate's (or window function's) values.
fn aggregate_range(e: &Expr, scope: Scope<'_>) -> Option<Range> {
    let Some((name, args)) = call(e) else {
        return range_in(e, scope);
    };
    let arg = || range_in(args.first()?, scope);
    match name.as_str() {
        "count" | "row_number" | "rank" | "dense_rank" | "ntile" => Range::new(0.0, MAX_ROWS),
        "sum" => arg().and_then(|r| Range::new(r.lo.min(0.0) * MAX_ROWS, r.hi.max(0.0) * MAX_ROWS)),
        "avg" | "mean" | "min" | "max" | "median" | "first_value" | "last_value" => arg(),
        _ => None,
    }
}

/// The largest absolute value in `r`.
pub fn magnitude(r: Range) -> f64 {
    r.lo.abs().max(r.hi.abs())
}

/// A bound on `Σ|e|` over the rows a site reads (at most [`MAX_ROWS`]).
pub fn total_in(e: &Expr, scope: Scope<'_>) -> Option<f64> {
    let by_range = range_in(e, scope).map(|r| magnitude(r) * MAX_ROWS);
    let by_shape = shaped_total(e, scope);
    match (by_range, by_shape) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the shape of `e` tells of its total, where it tells more than its
/// range does.
fn shaped_total(e: &Expr, scope: Scope<'_>) -> Option<f64> {
    let total = |x: &Expr| total_in(x, scope);
    let size = |x: &Expr| range_in(x, scope).map(magnitude);
    match strip_alias(e) {
        Expr::Column(c) => scope.resolve(c).and_then(|(p, i)| column_total(p, i)),
        Expr::Literal(v, _) => literal(v).map(|r| magnitude(r) * MAX_ROWS),
        Expr::Cast(c) => total(&c.expr),
        Expr::TryCast(c) => total(&c.expr),
        Expr::Negative(x) => total(x),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Plus | Operator::Minus => Some(total(left)? + total(right)?),
            Operator::Multiply => {
                let a = size(left).zip(total(right)).map(|(m, t)| m * t);
                let b = size(right).zip(total(left)).map(|(m, t)| m * t);
                a.into_iter().chain(b).reduce(f64::min)
            }
            _ => None,
        },
        Expr::Case(case) => case
            .when_then_expr
            .iter()
            .map(|(_, then)| then.as_ref())
            .chain(case.else_expr.as_deref())
            .map(total)
            .sum(),
        _ => None,
    }
}

/// A bound on `Σ|x|` over output column `index` of `plan`.
fn column_total(plan: &LogicalPlan, index: usize) -> Option<f64> {
    if let Some(input) = pass_through(plan) {
        return column_total(input, index);
    }
    let by_range = || column_range(plan, index).map(|r| magnitude(r) * MAX_ROWS);
    let shaped = match plan {
        LogicalPlan::Projection(p) => total_in(p.expr.get(index)?, Scope::One(&p.input)),
        // Each group has a row of its own: a group's count, sum, average,
        // least or greatest value adds up to no more than its rows do.
        LogicalPlan::Aggregate(a) => index
            .checked_sub(a.group_expr.len())
            .and_then(|k| a.aggr_expr.get(k))
            .and_then(call)
            .and_then(|(name, args)| match name.as_str() {
                "count" => Some(MAX_ROWS),
                "sum" | "avg" | "mean" | "min" | "max" | "median" => {
                    total_in(args.first()?, Scope::One(&a.input))
                }
                _ => None,
            }),
        LogicalPlan::Window(w) if index < w.input.schema().fields().len() => {
            column_total(&w.input, index)
        }
        LogicalPlan::Union(u) => u.inputs.iter().map(|i| column_total(i, index)).sum(),
        _ => None,
    };
    match (shaped, by_range()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
