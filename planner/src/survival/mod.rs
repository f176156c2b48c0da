//! Kaplan–Meier curves as releases on a time axis.
//!
//! An analyst asks for a curve with the aggregate `kaplan_meier(time,
//! event, width_days)` over a cohort of one row per patient, grouped by
//! any strata:
//!
//! ```sql
//! SELECT arm, kaplan_meier(follow_up_days, died, 30) AS curve
//! FROM cohort GROUP BY arm
//! ```
//!
//! A curve needs no patient-level data: it is a function of how many
//! patients have the event and how many leave follow-up in each bin of a
//! grid. So the aggregate is rewritten, before the split, into a release
//! grouped by the strata and the bin (`ceil(time / width) · width`, the
//! bin's end) that counts events and rows per bin, and above the
//! boundary the coordinator finishes the curve from the released bins
//! ([`functions::CurveFromBins`], with `ihdsi_statistics`). Each bin is an
//! ordinary released group: its patients are those who leave follow-up in
//! it. The disclosure layer recognises the release by its shape
//! ([`time_axis`], which a site derives from the SQL it receives, as it
//! derives everything) and coarsens small bins into their neighbours
//! instead of withholding them, which would break the curve.
//!
//! Whether the cohort has one row per patient is checked on the query, not
//! on the data ([`cohort`]).

pub mod cohort;
pub mod functions;

use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::functions::math::expr_fn::ceil;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator,
    Projection, lit,
};
use datafusion::arrow::datatypes::DataType;

use crate::error::{PlanError, Result};
use crate::exprs::strip_alias;
use crate::rules::Rule;

pub use functions::{KAPLAN_MEIER, register};

/// The widest bin an analyst may declare, in days (ten years).
pub const MAX_WIDTH_DAYS: i64 = 3_650;

/// A release whose last group key is a time bin: the disclosure layer
/// coarsens its bins rather than withholding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeAxis {
    /// The partial counting the events of each bin.
    pub events: usize,
    /// The partial counting the rows of each bin.
    pub rows: usize,
}

/// A `kaplan_meier(time, event, width)` call: its time, event and width.
struct CurveCall {
    time: Expr,
    event: Expr,
    width: i64,
}

fn curve_call(e: &Expr) -> Option<&AggregateFunction> {
    match strip_alias(e) {
        Expr::AggregateFunction(f) if f.func.name() == KAPLAN_MEIER => Some(f),
        _ => None,
    }
}

/// Whether `agg` asks for a Kaplan–Meier curve.
pub fn has_curves(agg: &Aggregate) -> bool {
    agg.aggr_expr.iter().any(|e| curve_call(e).is_some())
}

fn refuse(what: &str, why: &str) -> PlanError {
    PlanError::unsupported(Rule::SurvivalCurves, what, why)
}

/// The one curve of `agg`, checked: the aggregate's only one, plain, with
/// a numeric time and a literal width in days within the federation's
/// limits.
fn the_curve(agg: &Aggregate) -> Result<CurveCall> {
    let [only] = agg.aggr_expr.as_slice() else {
        return Err(refuse(
            "kaplan_meier beside other aggregates",
            "Ask for one curve per query, grouped by its strata; compute other aggregates in a query of their own",
        ));
    };
    let f = curve_call(only).ok_or_else(|| PlanError::Internal("not a curve".into()))?;
    if f.params.distinct || f.params.filter.is_some() || !f.params.order_by.is_empty() {
        return Err(refuse(
            "kaplan_meier with DISTINCT, FILTER or ORDER BY",
            "Restrict the cohort in its WHERE clause instead",
        ));
    }
    let [time, event, width] = f.params.args.as_slice() else {
        return Err(refuse(
            "kaplan_meier without its three arguments",
            "Write kaplan_meier(time_in_days, event, bin_width_in_days)",
        ));
    };
    let width = match strip_alias(width) {
        Expr::Literal(v, _) => integer(v),
        _ => None,
    }
    .filter(|w| (1..=MAX_WIDTH_DAYS).contains(w))
    .ok_or_else(|| {
        refuse(
            "a bin width that is not a literal number of days from 1 to 3650",
            "Declare the grid as a literal width in days, such as 7 (weeks) or 30 (months)",
        )
    })?;
    let numeric = time
        .get_type(agg.input.schema())
        .map(|t| t.is_numeric())
        .unwrap_or(false);
    if !numeric {
        return Err(refuse(
            "a follow-up time that is not a number",
            "Give the time as a number of days, such as date_part('day', end_date - start_date)",
        ));
    }
    if !cohort::one_row_per_patient(&agg.input)? {
        return Err(refuse(
            "a curve over a cohort that may have several rows per patient",
            "Write the cohort with one row per patient: the person table, or a subquery grouped by person_id (other keys from person only), joined on person_id",
        ));
    }
    Ok(CurveCall {
        time: time.clone(),
        event: event.clone(),
        width,
    })
}

fn integer(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::UInt8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
        _ => None,
    }
}

/// The end of the bin `time` falls in: `ceil(time / width) · width`.
fn bin_of(time: Expr, width: i64) -> Expr {
    let w = lit(width as f64);
    let days = Expr::Cast(Cast::new(Box::new(time), DataType::Float64));
    ceil(days / w.clone()) * w
}

fn count_rows(filter: Option<Expr>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        count_udaf(),
        vec![lit(1i64)],
        false,
        filter.map(Box::new),
        vec![],
        None,
    ))
}

/// `agg`'s curve as a release on a time axis, finished above the boundary
/// under `agg`'s column names. `release` turns the binned aggregate into
/// its released rows, as for any boundary.
pub fn expand(
    agg: &Aggregate,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let curve = the_curve(agg)?;
    let mut keys: Vec<Expr> = Vec::with_capacity(agg.group_expr.len() + 1);
    for k in &agg.group_expr {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let strata = keys.len();
    if strata + 1 != agg.schema.fields().len() {
        return Err(PlanError::Internal(
            "the strata of a curve do not match the aggregate's columns".into(),
        ));
    }
    keys.push(bin_of(curve.time, curve.width).alias(BIN));
    let event = Expr::Cast(Cast::new(Box::new(curve.event), DataType::Boolean));
    // Patients without a follow-up time fall in a NULL bin, which the
    // disclosure layer leaves out of the curve (a filter here would be
    // simpler SQL, but DataFusion 55 then mis-plans the bin's nullability).
    let binned = Aggregate::try_new(
        Arc::clone(&agg.input),
        keys,
        vec![count_rows(Some(event)), count_rows(None)],
    )
    .map_err(PlanError::from_datafusion)?;
    let released = release(&binned)?;
    let column = |i: usize| Expr::Column(Column::from(binned.schema.qualified_field(i)));
    let finish = functions::curve_from_bins(vec![column(strata), column(strata + 1), column(strata + 2)]);
    let finished = LogicalPlanBuilder::from(released)
        .aggregate((0..strata).map(column), vec![finish])
        .and_then(LogicalPlanBuilder::build)
        .map_err(PlanError::from_datafusion)?;
    let named = finished
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .zip(agg.schema.iter())
        .map(|(e, (q, f))| e.alias_qualified(q.cloned(), f.name()))
        .collect();
    Projection::try_new(named, Arc::new(finished))
        .map(LogicalPlan::Projection)
        .map_err(PlanError::from_datafusion)
}

/// The name of the bin key while the release is planned.
const BIN: &str = "ihdsi_time_bin";

/// Whether `agg` is a release on a time axis, as [`expand`] builds it and
/// as a site parses it back from SQL: its last key is `ceil(CAST(t AS
/// DOUBLE) / w) * w` and it counts the events (with a FILTER) and the
/// rows of each bin, in that order (then, at a site, the patients).
pub fn time_axis(agg: &Aggregate) -> Option<TimeAxis> {
    let last = agg.group_expr.last()?;
    let counts = |e: &Expr, filtered: bool| match strip_alias(e) {
        Expr::AggregateFunction(f) => {
            f.func.name().eq_ignore_ascii_case("count")
                && !f.params.distinct
                && f.params.filter.is_some() == filtered
        }
        _ => false,
    };
    // As planned: the two counts; as a site parses it: then the distinct
    // patients (`ihdsi_patients`).
    let (events, rows) = match agg.aggr_expr.as_slice() {
        [events, rows] => (events, rows),
        [events, rows, patients] if is_distinct_count(patients) => (events, rows),
        _ => return None,
    };
    (is_bin(strip_alias(last)) && counts(events, true) && counts(rows, false))
        .then_some(TimeAxis { events: 0, rows: 1 })
}

fn is_distinct_count(e: &Expr) -> bool {
    matches!(strip_alias(e), Expr::AggregateFunction(f)
        if f.func.name().eq_ignore_ascii_case("count") && f.params.distinct)
}

fn is_bin(e: &Expr) -> bool {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Multiply,
        right,
    }) = e
    else {
        return false;
    };
    let Expr::ScalarFunction(f) = left.as_ref() else {
        return false;
    };
    let width = |e: &Expr| matches!(e, Expr::Literal(ScalarValue::Float64(Some(w)), _) if *w >= 1.0);
    let divided = match f.args.as_slice() {
        [Expr::BinaryExpr(BinaryExpr {
            op: Operator::Divide,
            right: divisor,
            ..
        })] => divisor.as_ref() == right.as_ref() && width(divisor),
        _ => false,
    };
    f.func.name() == "ceil" && divided
}

#[cfg(test)]
mod tests;
