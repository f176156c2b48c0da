//! Which expressions PostgreSQL evaluates without failing for any row.
//!
//! The planner's totality rules (`ihdsi_planner::admission::functions`)
//! keep every accepted expression from failing *in DataFusion*, so that a
//! query's success never tells whether a patient with some value exists
//! (attack A15, the error oracle). PostgreSQL fails in places DataFusion
//! does not:
//!
//! * floating-point `+ - * /` raise "value out of range" on overflow and
//!   underflow, and "division by zero" (DataFusion gives ±Inf, 0 or NaN);
//! * integer `+ - *` and unary minus raise "integer out of range"
//!   (DataFusion wraps);
//! * `ln`, `log` of zero or a negative, `exp` and `power` out of range, a
//!   negative base to a fractional power;
//! * a `LIKE` pattern that ends in its escape character, once a row's text
//!   reaches it; regular expressions that Rust's engine accepts and
//!   PostgreSQL's does not;
//! * `sum` of a `bigint`, which PostgreSQL adds as `numeric` and the site
//!   casts back to `bigint`;
//! * casts that narrow (`double` to `real` overflows).
//!
//! So a site does not hand PostgreSQL an expression unless this module
//! shows it total there. [`runs_in_postgres`] decides whether the whole
//! subplan may run in the database; [`node_runs_in_postgres`] decides
//! which scans, filters and projections may, when the rest runs in
//! DataFusion over the rows they return (`super::fetch`). The list is an
//! allow-list and fails closed: an expression it does not know runs in
//! DataFusion, under the rules the planner already checked.
//!
//! Literals count too: a CASE can choose `1e200` for the victim's row
//! alone, and PostgreSQL (which the loader gives `numeric` columns for
//! doubles) computes its variance exactly and then fails to cast it back
//! to `double`. So floating-point literals must lie within 1e-100 and
//! 1e100 in magnitude, integer literals summed must fit 32 bits, and
//! window frames take no offsets.
//!
//! What remains: PostgreSQL's aggregates fail when their results pass
//! 1.8e308 or fall below 2.2e-308 (squares: 1.3e154 and 1.5e-154). No
//! arithmetic and no literal that could take a value there runs in the
//! database, so only data that already holds such magnitudes reaches it.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, Like, ScalarFunction, WindowFunction};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
use ihdsi_planner::admission::functions::{self, total_cast};
use ihdsi_planner::analysis::exprs;

use crate::site::error::Result;

/// `date_part` fields PostgreSQL computes for every date and timestamp.
const DATE_PART_FIELDS: &[&str] = &[
    "year", "quarter", "month", "week", "day", "dow", "doy", "isodow", "isoyear",
];

/// `date_trunc` units PostgreSQL knows.
const DATE_TRUNC_UNITS: &[&str] = &[
    "second", "minute", "hour", "day", "week", "month", "quarter", "year",
];

/// Aggregates PostgreSQL has under the same name that cannot fail for
/// values DataFusion accepts (`sum` is judged by its argument's type).
const TOTAL_AGGREGATES: &[&str] = &[
    "count",
    "min",
    "max",
    "avg",
    "var_pop",
    "var_samp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
];

/// Whether every expression of `plan` and of its subqueries is total in
/// PostgreSQL, judged after DataFusion's type coercion (so that the casts
/// it would add are judged too).
pub fn runs_in_postgres(plan: &LogicalPlan) -> Result<bool> {
    let coerced = TypeCoercion::new().analyze(plan.clone(), &ConfigOptions::default())?;
    let mut total = true;
    coerced.apply_with_subqueries(|node| {
        total = node_runs_in_postgres(node);
        Ok(if total {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    Ok(total)
}

/// Whether the expressions of `node` itself (not its inputs) are total in
/// PostgreSQL. `node` must be type-coerced.
pub fn node_runs_in_postgres(node: &LogicalPlan) -> bool {
    let schema = exprs::input_schema(node);
    node.expressions().iter().all(|e| expr_total(e, &schema))
}

/// Whether `e` and every expression inside it is total in PostgreSQL.
pub fn expr_total(e: &Expr, schema: &DFSchema) -> bool {
    !e.exists(|x| Ok(!local_total(x, schema))).unwrap_or(true)
}

/// Whether `e`'s own operation (its operands judged separately) is total.
fn local_total(e: &Expr, schema: &DFSchema) -> bool {
    let ty = |x: &Expr| x.get_type(schema).ok();
    match e {
        Expr::Literal(v, _) => literal_in_range(v),
        Expr::Alias(_)
        | Expr::Column(_)
        | Expr::Not(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsNotUnknown(_)
        | Expr::Between(_)
        | Expr::Case(_)
        | Expr::InList(_)
        | Expr::Exists(_)
        | Expr::InSubquery(_) => true,
        Expr::BinaryExpr(b) => binary_total(b, schema),
        Expr::Like(like) => like_total(like),
        Expr::Negative(x) => ty(x).is_some_and(|t| t.is_floating()),
        // A literal's cast is a typed constant, read while parsing: it
        // fails for every row or none.
        Expr::Cast(c) if matches!(c.expr.as_ref(), Expr::Literal(..)) => true,
        Expr::Cast(c) => ty(&c.expr).is_some_and(|from| cast_total(&from, c.field.data_type())),
        // Exactly those the site rewrites into a CAST or a CASE that cannot
        // fail (`super::backend::without_try_casts`).
        Expr::TryCast(c) => ty(&c.expr).is_some_and(|from| {
            let to = c.field.data_type();
            total_cast(&from, to) && cast_total(&from, to)
                || from.is_integer()
                    && matches!(to, DataType::Int8 | DataType::Int16 | DataType::Int32)
        }),
        Expr::ScalarFunction(f) => function_total(f, schema),
        Expr::AggregateFunction(a) => aggregate_total(a, schema),
        Expr::WindowFunction(w) => window_total(w, schema),
        _ => false,
    }
}

fn binary_total(b: &BinaryExpr, schema: &DFSchema) -> bool {
    use Operator as O;
    let ty = |x: &Expr| x.get_type(schema).ok();
    let dated = |x: &Expr| ty(x).is_some_and(|t| exprs::is_date_or_timestamp(&t));
    match b.op {
        O::Eq
        | O::NotEq
        | O::Lt
        | O::LtEq
        | O::Gt
        | O::GtEq
        | O::IsDistinctFrom
        | O::IsNotDistinctFrom
        | O::And
        | O::Or
        | O::StringConcat => true,
        // Date shifts and differences: the planner bounds the shift to a
        // century, far inside PostgreSQL's range (year 294276).
        O::Plus | O::Minus => dated(&b.left) || dated(&b.right),
        // An integer divided by a constant that is neither zero nor -1.
        // (No function on the left: `date_part` is an integer to
        // DataFusion and a double to PostgreSQL, which would divide it
        // as one.)
        O::Divide | O::Modulo => {
            ty(&b.left).is_some_and(|t| t.is_integer())
                && !b
                    .left
                    .exists(|x| Ok(matches!(x, Expr::ScalarFunction(_))))
                    .unwrap_or(true)
                && literal_i64(&b.right).is_some_and(|d| d != 0 && d != -1)
        }
        _ => false,
    }
}

/// Literals PostgreSQL reads and computes with as DataFusion does: any
/// but floating-point numbers of magnitude above 1e100 or below 1e-100
/// (the unparser writes them out as `numeric`, whose aggregates PostgreSQL
/// then fails to cast back to `double` past 1.8e308, or below 2.2e-308).
fn literal_in_range(v: &ScalarValue) -> bool {
    if !v.data_type().is_floating() || v.is_null() {
        return true;
    }
    match v.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(x))) => x == 0.0 || (1e-100..=1e100).contains(&x.abs()),
        _ => false,
    }
}

/// An integer literal, under any casts the coercion added (a float cast
/// to an integer is not one: PostgreSQL rounds where DataFusion truncates).
fn literal_i64(e: &Expr) -> Option<i64> {
    exprs::literal(e)
        .filter(|v| v.data_type().is_integer())
        .and_then(|_| exprs::literal_i64(e))
}

/// Whether a constant converts to an integer of at most 32 bits (or is
/// NULL): PostgreSQL sums those as `bigint` without overflow.
fn fits_i32(v: &ScalarValue) -> bool {
    v.is_null()
        || matches!(v.cast_to(&DataType::Int64), Ok(ScalarValue::Int64(Some(x))) if i32::try_from(x).is_ok())
}

/// A literal pattern with no escape character at all: PostgreSQL fails on
/// a pattern that ends in one, but only once a row's text matches up to it.
fn like_total(like: &Like) -> bool {
    like.escape_char.is_none()
        && exprs::literal_text(&like.pattern).is_some_and(|p| !p.contains('\\'))
}

/// Casts PostgreSQL makes for every value: to text, integer widening (and
/// into decimals wide enough), integers to `double`, `real` to `double`,
/// dates to timestamps and back.
fn cast_total(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    let text = |t: &DataType| matches!(t, T::Utf8 | T::Utf8View | T::LargeUtf8);
    if from == to || text(to) || from.is_null() {
        return true;
    }
    match (from, to) {
        (f, T::Float64) => f.is_integer() || *f == T::Float32,
        (f, t) if f.is_integer() && (t.is_integer() || matches!(t, T::Decimal128(..))) => {
            total_cast(f, t)
        }
        (T::Date32, T::Timestamp(..))
        | (T::Timestamp(..), T::Date32)
        | (T::Timestamp(..), T::Timestamp(..)) => true,
        _ => false,
    }
}

/// A text constant, lower-cased (a field or unit name).
fn literal_name(e: &Expr) -> Option<String> {
    exprs::literal_text(e).map(str::to_ascii_lowercase)
}

fn function_total(f: &ScalarFunction, schema: &DFSchema) -> bool {
    let name = f.func.name().to_ascii_lowercase();
    let arg_type = |i: usize| f.args.get(i).and_then(|x| x.get_type(schema).ok());
    match name.as_str() {
        "date_part" => {
            f.args
                .first()
                .and_then(literal_name)
                .is_some_and(|u| DATE_PART_FIELDS.contains(&u.as_str()))
                && arg_type(1).is_some_and(|t| exprs::is_date_or_timestamp(&t))
        }
        // Of a timestamp only: PostgreSQL truncates a `date` as a
        // `timestamptz`, in the session's time zone.
        "date_trunc" => {
            f.args
                .first()
                .and_then(literal_name)
                .is_some_and(|u| DATE_TRUNC_UNITS.contains(&u.as_str()))
                && f.args.get(1).is_some_and(|x| {
                    let inner = match x {
                        Expr::Cast(c) => c.expr.as_ref(),
                        other => other,
                    };
                    inner
                        .get_type(schema)
                        .is_ok_and(|t| matches!(t, DataType::Timestamp(..)))
                })
        }
        "floor" | "ceil" | "round" | "trunc" | "abs" => {
            f.args.len() == 1 && arg_type(0).is_some_and(|t| t.is_floating())
        }
        // the rest as the one allow-list marks them
        other => functions::total_in_postgres(other),
    }
}

/// Whether PostgreSQL can add up `e` without the `bigint` it reads back
/// overflowing: doubles, and integers of at most 32 bits (a column of
/// them, a literal that fits, or a CASE of such), which PostgreSQL sums
/// as `bigint` itself. A `bigint` column sums as `numeric` and the cast
/// back fails past 2^63; such sums run in DataFusion.
fn summable(e: &Expr, schema: &DFSchema) -> bool {
    let small = |t: &DataType| matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32);
    match e {
        Expr::Literal(v, _) => v.data_type().is_floating() || fits_i32(v),
        Expr::Cast(c) if c.field.data_type().is_integer() => match c.expr.as_ref() {
            Expr::Literal(v, _) => fits_i32(v),
            inner => summable(inner, schema),
        },
        Expr::Alias(a) => summable(&a.expr, schema),
        Expr::Case(c) => {
            c.when_then_expr
                .iter()
                .all(|(_, then)| summable(then, schema))
                && c.else_expr.as_deref().is_none_or(|x| summable(x, schema))
        }
        other => other
            .get_type(schema)
            .is_ok_and(|t| t.is_floating() || small(&t)),
    }
}

fn aggregate_total(a: &AggregateFunction, schema: &DFSchema) -> bool {
    let name = a.func.name().to_ascii_lowercase();
    if name == "sum" {
        return a.params.args.first().is_some_and(|x| summable(x, schema));
    }
    TOTAL_AGGREGATES.contains(&name.as_str())
}

/// ROWS frames, and RANGE or GROUPS frames bounded only by UNBOUNDED or
/// CURRENT ROW: an offset (`RANGE INTERVAL '5000 years' PRECEDING`) is
/// added to each row's value in PostgreSQL, which can overflow.
fn frame_total(w: &WindowFunction) -> bool {
    use datafusion::logical_expr::{WindowFrameBound as B, WindowFrameUnits};
    let frame = &w.params.window_frame;
    let no_offset = |b: &B| match b {
        B::CurrentRow => true,
        B::Preceding(v) | B::Following(v) => v.is_null(),
    };
    frame.units == WindowFrameUnits::Rows
        || no_offset(&frame.start_bound) && no_offset(&frame.end_bound)
}

fn window_total(w: &WindowFunction, schema: &DFSchema) -> bool {
    if !frame_total(w) {
        return false;
    }
    let name = w.fun.name().to_ascii_lowercase();
    match name.as_str() {
        "row_number" | "rank" | "dense_rank" => true,
        "sum" => w.params.args.first().is_some_and(|x| summable(x, schema)),
        other => TOTAL_AGGREGATES.contains(&other),
    }
}

#[cfg(test)]
mod tests;
