//! Which releases are on an axis (time or value), read from the plan: the
//! planner when it builds a release, and every site from the SQL it
//! receives, decide the same way.
//!
//! A release is on an axis when its last key is a bin `ceil(CAST(x AS
//! DOUBLE) / w) * w`, it counts `count(1)` rows (and, with a FILTER, events
//! and competing events), and the bin is on a grid no finer than the
//! federation allows: `x` a difference of two dates (days) binned by at
//! least [`MIN_WIDTH_DAYS`], each date as stored, a patient's min or max of
//! one, or a coalesce of such (never a cast or computed date: a number cast
//! to a date carries any value, and a timestamp difference counts
//! nanoseconds); or a column with declared bounds (or a patient's min, max
//! or mean of one) binned by at least the catalog's width for it, never
//! finer than the column's step. Anything else is an ordinary release, thresholded as any
//! GROUP BY. A finer grid would make the end of a merged bin the exact
//! time or value of the patient who brought it to k.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Aggregate, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};

use crate::analysis::exprs::strip_alias;
use crate::analysis::lineage::{join_source, pass_through};
use crate::release::axis::{MIN_WIDTH_DAYS, TimeAxis};

/// Whether `agg` is a release on an axis; see the module.
pub fn time_axis(agg: &Aggregate) -> Option<TimeAxis> {
    let (x, width) = bin_parts(strip_alias(agg.group_expr.last()?))?;
    // `count(1)` (or `count(*)`): the rows, or with a FILTER the events.
    let counts = |e: &Expr, filtered: bool| match strip_alias(e) {
        Expr::AggregateFunction(f) => {
            f.func.name().eq_ignore_ascii_case("count")
                && !f.params.distinct
                && f.params.filter.is_some() == filtered
                && matches!(f.params.args.as_slice(), [Expr::Literal(v, _)] if !v.is_null())
        }
        _ => false,
    };
    // As planned: the counts; as a site parses it: then the distinct
    // patients (`ihdsi_patients`).
    let mut aggregates = agg.aggr_expr.as_slice();
    if let [rest @ .., patients] = aggregates
        && is_distinct_count(patients)
    {
        aggregates = rest;
    }
    let axis = match aggregates {
        [rows] if counts(rows, false) => TimeAxis {
            events: None,
            competing: None,
            rows: 0,
        },
        [events, rows] if counts(events, true) && counts(rows, false) => TimeAxis {
            events: Some(0),
            competing: None,
            rows: 1,
        },
        [events, competing, rows]
            if counts(events, true) && counts(competing, true) && counts(rows, false) =>
        {
            TimeAxis {
                events: Some(0),
                competing: Some(1),
                rows: 2,
            }
        }
        _ => return None,
    };
    allowed_grid(x, width, &agg.input).then_some(axis)
}

fn is_distinct_count(e: &Expr) -> bool {
    matches!(strip_alias(e), Expr::AggregateFunction(f)
        if f.func.name().eq_ignore_ascii_case("count") && f.params.distinct)
}

/// `x` and `w` of `ceil(CAST(x AS DOUBLE) / w) * w`.
fn bin_parts(e: &Expr) -> Option<(&Expr, f64)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Multiply,
        right,
    }) = e
    else {
        return None;
    };
    let Expr::ScalarFunction(f) = left.as_ref() else {
        return None;
    };
    let [
        Expr::BinaryExpr(BinaryExpr {
            left: numerator,
            op: Operator::Divide,
            right: divisor,
        }),
    ] = f.args.as_slice()
    else {
        return None;
    };
    let Expr::Literal(ScalarValue::Float64(Some(w)), _) = divisor.as_ref() else {
        return None;
    };
    let Expr::Cast(cast) = numerator.as_ref() else {
        return None;
    };
    (f.func.name() == "ceil"
        && divisor == right
        && *w > 0.0
        && *cast.field.data_type() == DataType::Float64)
        .then_some((cast.expr.as_ref(), *w))
}

/// Whether `w` is a grid the federation allows for `x` (over `input`).
fn allowed_grid(x: &Expr, w: f64, input: &LogicalPlan) -> bool {
    let (defined, over) = definition(x, input);
    if is_date_difference(defined, over) {
        return w >= MIN_WIDTH_DAYS as f64;
    }
    declared_column(defined, over)
        .and_then(|name| declared_width(&name))
        .is_some_and(|declared| w >= declared * (1.0 - 1e-9))
}

/// The catalog's bins for the declared column `x` reads (followed by its
/// lineage through `input`, never by its name).
pub fn catalog_width(x: &Expr, input: &LogicalPlan) -> Option<f64> {
    let (defined, over) = definition(x, input);
    declared_column(defined, over).and_then(|name| declared_width(&name))
}

/// The catalog's bins for the column `name`: a hundredth of its declared
/// range, rounded up to 1, 2 or 5 times a power of ten.
pub fn declared_width(name: &str) -> Option<f64> {
    let bounds = ihdsi_catalog::bounds::for_column(name)?;
    // Never finer than the column's own resolution (whole months, days).
    let raw = ((bounds.hi - bounds.lo) / 100.0).max(bounds.step);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|w| *w >= raw)
}

/// The expression that defines `e` and the plan it is over: a column is
/// followed through aliases, projections, joins and group keys to where
/// it is computed (or scanned).
fn definition<'a>(e: &'a Expr, over: &'a LogicalPlan) -> (&'a Expr, &'a LogicalPlan) {
    let e = strip_alias(e);
    let Expr::Column(c) = e else {
        return (e, over);
    };
    let Ok(index) = over.schema().index_of_column(c) else {
        return (e, over);
    };
    defined_at(over, index).unwrap_or((e, over))
}

/// The definition of output column `index` of `plan`, if it is computed
/// by an expression (`None` for a scanned column or an unknown operator).
fn defined_at(plan: &LogicalPlan, index: usize) -> Option<(&Expr, &LogicalPlan)> {
    if let Some(input) = pass_through(plan) {
        return defined_at(input, index);
    }
    match plan {
        LogicalPlan::Projection(p) => Some(definition(p.expr.get(index)?, &p.input)),
        LogicalPlan::Aggregate(a) => {
            let keys = a.group_expr.len();
            let e = if index < keys {
                a.group_expr.get(index)?
            } else {
                a.aggr_expr.get(index - keys)?
            };
            Some(definition(e, &a.input))
        }
        LogicalPlan::Join(j) => {
            let (side, i) = join_source(j, index)?;
            defined_at(side, i)
        }
        _ => None,
    }
}

/// `a - b` of two dates of the data: a whole number of days. Each side is
/// a date column as stored, a patient's min or max of one, or the
/// coalesce, greatest or least of such dates; never a computed or cast
/// date (a number cast to a date would carry any value, and a timestamp
/// difference counts nanoseconds).
fn is_date_difference(e: &Expr, over: &LogicalPlan) -> bool {
    let days = matches!(e.get_type(over.schema()), Ok(t) if t.is_integer());
    days && matches!(strip_alias(e), Expr::BinaryExpr(BinaryExpr { left, op: Operator::Minus, right })
        if data_date(left, over) && data_date(right, over))
}

fn data_date(e: &Expr, over: &LogicalPlan) -> bool {
    match strip_alias(e) {
        Expr::Column(c) => over
            .schema()
            .index_of_column(c)
            .is_ok_and(|i| stored_date(over, i)),
        Expr::AggregateFunction(f)
            if matches!(f.func.name(), "min" | "max")
                && f.params.filter.is_none()
                && f.params.args.len() == 1 =>
        {
            let (defined, input) = definition(&f.params.args[0], over);
            data_date(defined, input)
        }
        Expr::ScalarFunction(f) if matches!(f.func.name(), "coalesce" | "greatest" | "least") => {
            !f.args.is_empty() && f.args.iter().all(|a| data_date(a, over))
        }
        _ => false,
    }
}

/// Whether output column `index` of `plan` is a stored date column, or
/// defined as a [`data_date`].
fn stored_date(plan: &LogicalPlan, index: usize) -> bool {
    if let Some(input) = pass_through(plan) {
        return stored_date(input, index);
    }
    match plan {
        LogicalPlan::TableScan(scan) => matches!(
            scan.projected_schema.field(index).data_type(),
            DataType::Date32 | DataType::Date64
        ),
        LogicalPlan::Join(j) => join_source(j, index).is_some_and(|(side, i)| stored_date(side, i)),
        LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_) => {
            defined_at(plan, index).is_some_and(|(e, over)| data_date(e, over))
        }
        _ => false,
    }
}

/// The declared column `e` reads: the column itself, or a patient's min,
/// max or mean of it (whose values stay in its declared range).
fn declared_column(e: &Expr, over: &LogicalPlan) -> Option<String> {
    match strip_alias(e) {
        Expr::Column(c) => {
            let index = over.schema().index_of_column(c).ok()?;
            scanned_name(over, index)
        }
        Expr::AggregateFunction(f)
            if matches!(f.func.name(), "min" | "max" | "avg")
                && f.params.filter.is_none()
                && f.params.args.len() == 1 =>
        {
            let (defined, input) = definition(&f.params.args[0], over);
            declared_column(defined, input)
        }
        _ => None,
    }
}

/// The table column that output column `index` of `plan` passes through
/// unchanged, by its name in the table.
fn scanned_name(plan: &LogicalPlan, index: usize) -> Option<String> {
    if let Some(input) = pass_through(plan) {
        return scanned_name(input, index);
    }
    match plan {
        LogicalPlan::TableScan(scan) => Some(scan.projected_schema.field(index).name().clone()),
        LogicalPlan::Join(j) => join_source(j, index).and_then(|(side, i)| scanned_name(side, i)),
        LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_) => {
            let (e, over) = defined_at(plan, index)?;
            declared_column(e, over)
        }
        _ => None,
    }
}
