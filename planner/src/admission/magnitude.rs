//! Arithmetic that cannot fail, overflow or lose a value, whatever the
//! patients' values are (A26).
//!
//! A number a site computes that can overflow is an oracle on the values
//! that make it overflow: `var_pop(k * 2e154)` over per-patient counts
//! failed only when one patient had a second row, and bisection on the
//! factor read a lab value in 63 queries. Integer arithmetic wraps in
//! DataFusion and fails in PostgreSQL; a float sum becomes infinite, and
//! a sum of squares sooner. So admission bounds every number a site
//! computes before it runs, from the ranges of [`super::ranges::plan`]:
//!
//! * **integer arithmetic** (`+`, `−`, `×`, negation, `abs`) over patient
//!   data must stay within its type for every value in range;
//! * **sums and averages**: what they can add up to at a site,
//!   [`total_in`], times [`MAX_SITES`] for the merge, within 2⁶² for an
//!   integer argument and 10³⁰⁰ for a float one;
//! * **variances and standard deviations** add squares (their dominance
//!   summaries, squared deviations): the largest value times the total,
//!   times four, times [`MAX_SITES`], within 10³⁰⁰;
//! * **no DECIMAL arithmetic** over patient data and no DECIMAL sums:
//!   arrow computes them in checked 128-bit integers, which fail past 38
//!   digits for some values only (cast to DOUBLE instead);
//! * **no cast to `FLOAT`/`REAL` inside a sum**: a 24-bit float rounds each
//!   value by an amount that depends on its size, so its sum and its
//!   largest contributions disagree in a way that tells the values apart.
//!
//! Each bound is the analysis's claim about every possible database that
//! keeps the declared column bounds and [`MAX_ROWS`]; no run of the query
//! is needed, and no refusal depends on the data.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};

use super::ranges::plan::{MAX_ROWS, magnitude, range_in, total_in};
use crate::analysis::exprs::{call, sql_text};
use crate::analysis::scope::Scope;
use crate::error::{PlanError, Result};
use crate::rules::Rule;

/// The most sites whose partial sums the coordinator adds up.
pub const MAX_SITES: f64 = 256.0;

/// The largest sum of an integer argument (2⁶², half of `i64`'s range).
const INTEGER_LIMIT: f64 = 4_611_686_018_427_387_904.0;

/// The largest sum of a float argument: far from `f64::MAX` (1.8e308).
const FLOAT_LIMIT: f64 = 1e300;

fn refused(what: String) -> PlanError {
    PlanError::policy(
        Rule::DeclaredQuantities,
        format!(
            "{what}. Every number a site computes must stay finite and exact for every value the columns may hold (their declared ranges, at most {MAX_ROWS:e} rows per site): scale values inside their declared ranges, aggregate columns with declared bounds, or compute large numbers on the released aggregates instead"
        ),
    )
}

/// Check every expression of `node`, which reads patient data.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    let Some(scope) = Scope::of_node(node) else {
        return Ok(());
    };
    for e in node.expressions() {
        check_integers(&e, scope)?;
    }
    match node {
        LogicalPlan::Aggregate(a) => a.aggr_expr.iter().try_for_each(|e| check_sum(e, scope)),
        LogicalPlan::Window(w) => w.window_expr.iter().try_for_each(|e| check_sum(e, scope)),
        _ => Ok(()),
    }
}

/// Integer arithmetic within its type for every value in range.
fn check_integers(e: &Expr, scope: Scope<'_>) -> Result<()> {
    let schema = scope.schema();
    let mut outcome = Ok(());
    e.apply(|x| {
        let arithmetic = match x {
            Expr::BinaryExpr(BinaryExpr { op, .. }) => {
                matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
            }
            Expr::Negative(_) => true,
            Expr::ScalarFunction(f) => f.func.name().eq_ignore_ascii_case("abs"),
            _ => false,
        };
        if !arithmetic || x.column_refs().is_empty() {
            return Ok(TreeNodeRecursion::Continue);
        }
        let Ok(t) = x.get_type(schema.as_ref()) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        if matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
            outcome = Err(refused(format!(
                "the DECIMAL arithmetic {} fails when its result passes 38 digits, for some values only",
                sql_text(x)
            )));
            return Ok(TreeNodeRecursion::Stop);
        }
        if t.is_integer() && !range_in(x, scope).is_some_and(|r| r.fits(&t)) {
            outcome = Err(refused(format!(
                "the integer arithmetic {} could overflow {} for some values",
                sql_text(x),
                crate::analysis::exprs::sql_type(&t)
            )));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(PlanError::from_datafusion)?;
    outcome
}

/// Whether the aggregate adds values, or squares of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adds {
    Values,
    Squares,
}

fn adds(name: &str) -> Option<Adds> {
    match name {
        "sum" | "avg" | "mean" => Some(Adds::Values),
        "var" | "var_samp" | "var_pop" | "stddev" | "stddev_samp" | "stddev_pop" => {
            Some(Adds::Squares)
        }
        _ => None,
    }
}

/// A sum, average or variance whose every internal number is finite.
fn check_sum(e: &Expr, scope: Scope<'_>) -> Result<()> {
    let Some((name, args)) = call(e) else {
        return Ok(());
    };
    let (Some(kind), Some(arg)) = (adds(&name), args.first()) else {
        return Ok(());
    };
    let shown = || format!("{name}({})", sql_text(arg));
    if narrow_float(arg) {
        return Err(refused(format!(
            "{} casts values to a 24-bit FLOAT, which rounds each by an amount that depends on its size",
            shown()
        )));
    }
    let arg_type = arg.get_type(scope.schema().as_ref()).ok();
    if matches!(
        arg_type,
        Some(DataType::Decimal128(..) | DataType::Decimal256(..))
    ) {
        return Err(refused(format!(
            "{} adds up DECIMAL values, whose sums fail or wrap past 38 digits; cast them to DOUBLE",
            shown()
        )));
    }
    let bounds = range_in(arg, scope).zip(total_in(arg, scope));
    let Some((range, total)) = bounds else {
        return Err(refused(format!(
            "the values {} adds up have no bounded range",
            shown()
        )));
    };
    let integer = arg_type.is_some_and(|t| t.is_integer());
    let (reach, limit) = match kind {
        Adds::Values if integer => (total * MAX_SITES, INTEGER_LIMIT),
        Adds::Values => (total * MAX_SITES, FLOAT_LIMIT),
        Adds::Squares => (4.0 * magnitude(range) * total * MAX_SITES, FLOAT_LIMIT),
    };
    if reach.is_finite() && reach <= limit {
        return Ok(());
    }
    let reach = if reach.is_finite() {
        format!("{reach:.2e}")
    } else {
        "beyond any finite number".into()
    };
    Err(refused(format!(
        "{} could reach {reach} in its running sums (the limit is {limit:e})",
        shown()
    )))
}

/// Whether `e` casts anything to a float narrower than 64 bits.
fn narrow_float(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(match x {
            Expr::Cast(c) => matches!(c.field.data_type(), DataType::Float32 | DataType::Float16),
            Expr::TryCast(c) => {
                matches!(c.field.data_type(), DataType::Float32 | DataType::Float16)
            }
            _ => false,
        })
    })
    .unwrap_or(true)
}
