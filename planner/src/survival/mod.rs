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
pub mod finish;
pub mod functions;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::math::expr_fn::ceil;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator,
    Projection, lit,
};

use crate::error::{PlanError, Result};
use crate::exprs::strip_alias;
use crate::rules::Rule;

pub use finish::Statistic;
pub use functions::register;

/// The widest bin an analyst may declare, in days (ten years).
pub const MAX_WIDTH_DAYS: i64 = 3_650;

/// A release whose last group key is a time bin: the disclosure layer
/// coarsens its bins rather than withholding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeAxis {
    /// The partial counting the events of each bin.
    pub events: usize,
    /// The partial counting the competing events, for cumulative
    /// incidence.
    pub competing: Option<usize>,
    /// The partial counting the rows of each bin.
    pub rows: usize,
}

/// A statistic call, checked: its arguments as expressions, its grid and
/// horizon as numbers.
struct Call {
    statistic: Statistic,
    time: Expr,
    event: Expr,
    width: i64,
    horizon: f64,
    group: Option<Expr>,
    stratum: Option<Expr>,
}

fn statistic_of(e: &Expr) -> Option<(Statistic, &AggregateFunction)> {
    match strip_alias(e) {
        Expr::AggregateFunction(f) => functions::statistic(f.func.name()).map(|s| (s, f)),
        _ => None,
    }
}

/// Whether `agg` asks for a survival statistic.
pub fn has_curves(agg: &Aggregate) -> bool {
    agg.aggr_expr.iter().any(|e| statistic_of(e).is_some())
}

fn refuse(what: &str, why: &str) -> PlanError {
    PlanError::unsupported(Rule::SurvivalCurves, what, why)
}

/// A literal number of days within the federation's limits.
fn days(e: &Expr, what: &str) -> Result<i64> {
    match strip_alias(e) {
        Expr::Literal(v, _) => integer(v),
        _ => None,
    }
    .filter(|w| (1..=MAX_WIDTH_DAYS).contains(w))
    .ok_or_else(|| {
        refuse(
            &format!("a {what} that is not a literal number of days from 1 to 3650"),
            "Declare the grid as a literal width in days, such as 7 (weeks) or 30 (months), and a horizon the same way",
        )
    })
}

/// The one statistic of `agg`, checked: the aggregate's only one, plain,
/// with a numeric time, literal width (and horizon) within the limits,
/// over a cohort of one row per patient.
fn the_call(agg: &Aggregate) -> Result<Call> {
    let [only] = agg.aggr_expr.as_slice() else {
        return Err(refuse(
            "a survival statistic beside other aggregates",
            "Ask for one statistic per query, grouped by its strata; compute other aggregates in a query of their own",
        ));
    };
    let (statistic, f) =
        statistic_of(only).ok_or_else(|| PlanError::Internal("not a statistic".into()))?;
    let name = functions::name(statistic);
    if f.params.distinct || f.params.filter.is_some() || !f.params.order_by.is_empty() {
        return Err(refuse(
            &format!("{name} with DISTINCT, FILTER or ORDER BY"),
            "Restrict the cohort in its WHERE clause instead",
        ));
    }
    let args = f.params.args.as_slice();
    let (time, event, width) = match args {
        [time, event, width, ..] => (time, event, days(width, "bin width")?),
        _ => return Err(refuse(&format!("{name} without its arguments"), USAGE)),
    };
    let (mut horizon, mut group, mut stratum) = (0.0, None, None);
    match (statistic, &args[3..]) {
        (Statistic::Curve | Statistic::Incidence, []) => {}
        (Statistic::Summary, [h]) => horizon = days(h, "horizon")? as f64,
        (Statistic::LogRank, [g]) => group = Some(g.clone()),
        (Statistic::LogRank, [g, s]) => (group, stratum) = (Some(g.clone()), Some(s.clone())),
        _ => return Err(refuse(&format!("{name} with other arguments"), USAGE)),
    }
    let numeric = time
        .get_type(agg.input.schema())
        .map(|t| t.is_numeric())
        .unwrap_or(false);
    if !numeric {
        return Err(refuse(
            "a follow-up time that is not a number",
            "Give the time as a number of days, such as end_date - start_date",
        ));
    }
    if !cohort::one_row_per_patient(&agg.input)? {
        return Err(refuse(
            "a statistic over a cohort that may have several rows per patient",
            "Write the cohort with one row per patient: the person table, or a subquery grouped by person_id (other keys from person only), joined on person_id",
        ));
    }
    Ok(Call {
        statistic,
        time: time.clone(),
        event: event.clone(),
        width,
        horizon,
        group,
        stratum,
    })
}

const USAGE: &str = "Write kaplan_meier(time, event, width_days), survival_summary(time, event, width_days, horizon_days), logrank_test(time, event, width_days, arm [, stratum]) or cumulative_incidence(time, cause, width_days)";

fn integer(v: &ScalarValue) -> Option<i64> {
    match v.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(x)) if v.data_type().is_integer() => x,
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

/// The counts each bin releases: events (and competing events), rows.
fn counts(call: &Call) -> Vec<Expr> {
    match call.statistic {
        Statistic::Incidence => {
            let cause = Expr::Cast(Cast::new(Box::new(call.event.clone()), DataType::Int64));
            vec![
                count_rows(Some(cause.clone().eq(lit(1i64)))),
                count_rows(Some(cause.gt(lit(1i64)))),
                count_rows(None),
            ]
        }
        _ => {
            let event = Expr::Cast(Cast::new(Box::new(call.event.clone()), DataType::Boolean));
            vec![count_rows(Some(event)), count_rows(None)]
        }
    }
}

/// `agg`'s statistic as a release on a time axis, finished above the
/// boundary under `agg`'s column names. `release` turns the binned
/// aggregate into its released rows, as for any boundary.
pub fn expand(
    agg: &Aggregate,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let call = the_call(agg)?;
    let mut keys: Vec<Expr> = Vec::with_capacity(agg.group_expr.len() + 3);
    for k in &agg.group_expr {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let strata = keys.len();
    if strata + 1 != agg.schema.fields().len() {
        return Err(PlanError::Internal(
            "the strata of a statistic do not match the aggregate's columns".into(),
        ));
    }
    let extra: Vec<Expr> = [call.group.clone(), call.stratum.clone()]
        .into_iter()
        .flatten()
        .collect();
    let extras = extra.len();
    keys.extend(extra);
    keys.push(bin_of(call.time.clone(), call.width).alias(BIN));
    // Patients without a follow-up time fall in a NULL bin, which the
    // disclosure layer leaves out (a filter here would be simpler SQL, but
    // DataFusion 55 then mis-plans the bin's nullability).
    let binned = Aggregate::try_new(Arc::clone(&agg.input), keys, counts(&call))
        .map_err(PlanError::from_datafusion)?;
    let released = release(&binned)?;
    let column = |i: usize| Expr::Column(Column::from(binned.schema.qualified_field(i)));
    let text = |e: Expr| Expr::Cast(Cast::new(Box::new(e), DataType::Utf8));
    let bin = strata + extras;
    let group = if call.group.is_some() {
        text(column(strata))
    } else {
        lit("")
    };
    let stratum = if call.stratum.is_some() {
        text(column(strata + 1))
    } else {
        lit("")
    };
    let (events, competing, rows) = match call.statistic {
        Statistic::Incidence => (column(bin + 1), column(bin + 2), column(bin + 3)),
        _ => (column(bin + 1), lit(0i64), column(bin + 2)),
    };
    let finish = functions::finish(
        call.statistic,
        vec![
            group,
            stratum,
            column(bin),
            events,
            competing,
            rows,
            lit(call.horizon),
        ],
    );
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
    // As planned: the counts; as a site parses it: then the distinct
    // patients (`ihdsi_patients`).
    let mut aggregates = agg.aggr_expr.as_slice();
    if let [rest @ .., patients] = aggregates
        && is_distinct_count(patients)
    {
        aggregates = rest;
    }
    let axis = match aggregates {
        [events, rows] if counts(events, true) && counts(rows, false) => TimeAxis {
            events: 0,
            competing: None,
            rows: 1,
        },
        [events, competing, rows]
            if counts(events, true) && counts(competing, true) && counts(rows, false) =>
        {
            TimeAxis {
                events: 0,
                competing: Some(1),
                rows: 2,
            }
        }
        _ => return None,
    };
    is_bin(strip_alias(last)).then_some(axis)
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
    let width =
        |e: &Expr| matches!(e, Expr::Literal(ScalarValue::Float64(Some(w)), _) if *w >= 1.0);
    let divided = match f.args.as_slice() {
        [
            Expr::BinaryExpr(BinaryExpr {
                op: Operator::Divide,
                right: divisor,
                ..
            }),
        ] => divisor.as_ref() == right.as_ref() && width(divisor),
        _ => false,
    };
    f.func.name() == "ceil" && divided
}

#[cfg(test)]
mod tests;
