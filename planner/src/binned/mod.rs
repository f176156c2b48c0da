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

pub mod finish;
pub mod functions;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::math::expr_fn::ceil;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Projection, lit,
};

use crate::analysis::axis::time_axis;
use crate::analysis::exprs::strip_alias;
use crate::error::{PlanError, Result};
use crate::release::axis::MIN_WIDTH_DAYS;
use crate::rules::Rule;

pub use finish::Statistic;
pub use functions::register;

/// The widest bin an analyst may declare, in days (ten years).
pub const MAX_WIDTH_DAYS: i64 = 3_650;

/// A statistic call, checked: its arguments as expressions, its grid and
/// horizon as numbers.
struct Call {
    statistic: Statistic,
    /// The follow-up time, or the value of a histogram or quantile.
    time: Expr,
    event: Expr,
    width: f64,
    /// The summary's horizon, or the quantile's probability.
    horizon: f64,
    group: Option<Expr>,
    stratum: Option<Expr>,
}

/// SQL's own quantiles, answered from a histogram.
const QUANTILES: [&str; 4] = [
    "median",
    "approx_median",
    "percentile_cont",
    "approx_percentile_cont",
];

fn statistic_of(e: &Expr) -> Option<(Statistic, &AggregateFunction)> {
    match strip_alias(e) {
        Expr::AggregateFunction(f) if QUANTILES.contains(&f.func.name()) => {
            Some((Statistic::Quantile, f))
        }
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
            "Declare the grid as a literal width in days, such as 30 (months) or 365 (years), and a horizon the same way",
        )
    })
}

/// The one statistic of `agg`, checked: the aggregate's only one, plain,
/// with a numeric time, literal width (and horizon) within the limits,
/// over a cohort of one row per patient.
fn the_calls(agg: &Aggregate) -> Result<Vec<Call>> {
    let calls = agg
        .aggr_expr
        .iter()
        .map(|e| match statistic_of(e) {
            Some(_) => the_call(agg, e),
            None => Err(beside_others()),
        })
        .collect::<Result<Vec<_>>>()?;
    // Several quantiles (or histograms) of one value on one grid read one
    // release; anything else is one statistic per query.
    let one_release = calls.windows(2).all(|w| {
        let value = |c: &Call| matches!(c.statistic, Statistic::Quantile | Statistic::Histogram);
        value(&w[0]) && value(&w[1]) && w[0].time == w[1].time && w[0].width == w[1].width
    });
    if !one_release {
        return Err(beside_others());
    }
    Ok(calls)
}

fn beside_others() -> PlanError {
    refuse(
        "a binned statistic beside other aggregates",
        "Ask for one statistic per query (or several quantiles of one value), grouped by its strata; compute other aggregates in a query of their own",
    )
}

/// The call `only` of `agg`, checked.
fn the_call(agg: &Aggregate, only: &Expr) -> Result<Call> {
    let (statistic, f) =
        statistic_of(only).ok_or_else(|| PlanError::Internal("not a statistic".into()))?;
    let name = f.func.name();
    // `percentile_cont(p) WITHIN GROUP (ORDER BY x)` orders by its value.
    let within_group = match (f.params.order_by.as_slice(), f.params.args.first()) {
        ([], _) => true,
        ([sort], Some(value)) => statistic == Statistic::Quantile && sort.expr == *value,
        _ => false,
    };
    if f.params.distinct || f.params.filter.is_some() || !within_group {
        return Err(refuse(
            &format!("{name} with DISTINCT, FILTER or ORDER BY"),
            "Restrict the cohort in its WHERE clause instead",
        ));
    }
    let (time, event, width, horizon, group, stratum) = match statistic {
        Statistic::Histogram | Statistic::Quantile => {
            let (value, p, width) = value_args(f, &agg.input)?;
            (value, lit(0i64), width, p, None, None)
        }
        _ => follow_up_args(statistic, &f.params.args)?,
    };
    let time = &time;
    check_event(statistic, &event, agg)?;
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
    if !crate::admission::one_row::one_row_per_patient(&agg.input)? {
        return Err(refuse(
            "a statistic over a cohort that may have several rows per patient",
            "Write the cohort with one row per patient: the person table, or a subquery grouped by person_id (other keys from person only), joined on person_id",
        ));
    }
    Ok(Call {
        statistic,
        time: time.clone(),
        event,
        width,
        horizon,
        group,
        stratum,
    })
}

/// A follow-up call's time, event, width (in days), horizon, arm and
/// stratum.
type FollowUp = (Expr, Expr, f64, f64, Option<Expr>, Option<Expr>);

fn follow_up_args(statistic: Statistic, args: &[Expr]) -> Result<FollowUp> {
    let name = functions::name(statistic);
    let (time, event, width) = match args {
        [time, event, width, ..] => {
            let width = days(width, "bin width")?;
            if width < MIN_WIDTH_DAYS {
                return Err(refuse(
                    "a time grid finer than 30 days",
                    "Bin follow-up by at least 30 days: a finer grid would show single patients' times",
                ));
            }
            (time.clone(), event.clone(), width as f64)
        }
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
    Ok((time, event, width, horizon, group, stratum))
}

/// A value call's value, probability and bin width: `histogram(x,
/// width)`, `quantile(x, p, width)`, or SQL's `median(x)`,
/// `percentile_cont(x, p)` (and `WITHIN GROUP (ORDER BY x)`) on the
/// catalog's bins for `x`.
fn value_args(f: &AggregateFunction, input: &LogicalPlan) -> Result<(Expr, f64, f64)> {
    let name = f.func.name();
    let args = f.params.args.as_slice();
    let descending = f.params.order_by.first().is_some_and(|s| !s.asc);
    let (value, p, width) = match (name, args) {
        ("histogram", [x, w]) => (x, 0.0, Some(w)),
        ("quantile", [x, p, w]) => (x, probability(p)?, Some(w)),
        ("median" | "approx_median", [x]) => (x, 0.5, None),
        ("percentile_cont" | "approx_percentile_cont", [x, p, ..]) => (x, probability(p)?, None),
        _ => return Err(refuse(&format!("{name} with these arguments"), VALUE_USAGE)),
    };
    let p = if descending { 1.0 - p } else { p };
    let width = match width {
        Some(w) => positive(w)?,
        None => crate::analysis::axis::catalog_width(value, input).ok_or_else(|| {
            refuse(
                &format!("{name} of a value without declared bins"),
                "Quantiles are read from a histogram: name a column the catalog declares (value_as_number, year_of_birth, ...) or give the bins yourself with quantile(x, p, bin_width)",
            )
        })?,
    };
    Ok((value.clone(), p, width))
}

const VALUE_USAGE: &str =
    "Write histogram(x, bin_width), quantile(x, p, bin_width), median(x) or percentile_cont(x, p)";

fn literal_f64(e: &Expr) -> Option<f64> {
    match strip_alias(e) {
        Expr::Literal(v, _) if v.data_type().is_numeric() => match v.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(x)) => x,
            _ => None,
        },
        _ => None,
    }
}

fn probability(e: &Expr) -> Result<f64> {
    literal_f64(e)
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| {
            refuse(
                "a probability that is not a literal from 0 to 1",
                VALUE_USAGE,
            )
        })
}

fn positive(e: &Expr) -> Result<f64> {
    literal_f64(e)
        .filter(|w| w.is_finite() && *w > 0.0)
        .ok_or_else(|| {
            refuse(
                "a bin width that is not a positive literal number",
                VALUE_USAGE,
            )
        })
}

/// An event must be a boolean or an integer, a cause an integer: a cast
/// of anything else could fail at a site on one patient's row.
fn check_event(statistic: Statistic, event: &Expr, agg: &Aggregate) -> Result<()> {
    let t = event.get_type(agg.input.schema()).ok();
    let fits = match statistic {
        Statistic::Histogram | Statistic::Quantile => true,
        Statistic::Incidence => t.as_ref().is_some_and(DataType::is_integer),
        _ => t
            .as_ref()
            .is_some_and(|t| t.is_integer() || *t == DataType::Boolean),
    };
    if fits {
        return Ok(());
    }
    Err(refuse(
        "an event that is not a boolean or an integer (or a cause that is not an integer)",
        "Write the event as a condition (d.death_date IS NOT NULL) or a 0/1 column, and a cause as 0, 1, 2",
    ))
}

const USAGE: &str = "Write kaplan_meier(time, event, width_days), survival_summary(time, event, width_days, horizon_days), logrank_test(time, event, width_days, arm [, stratum]) or cumulative_incidence(time, cause, width_days)";

fn integer(v: &ScalarValue) -> Option<i64> {
    match v.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(x)) if v.data_type().is_integer() => x,
        _ => None,
    }
}

/// The end of the bin `time` falls in: `ceil(time / width) · width`.
fn bin_of(time: Expr, width: f64) -> Expr {
    let w = lit(width);
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
        Statistic::Histogram | Statistic::Quantile => vec![count_rows(None)],
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

/// `agg`'s statistic as a release on an axis, finished above the boundary
/// under `agg`'s column names. `release` turns the binned aggregate into
/// its released rows, as for any boundary.
pub fn expand(
    agg: &Aggregate,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let calls = the_calls(agg)?;
    let (binned, strata) = binned(agg, &calls)?;
    let released = release(&binned)?;
    let (finished, positions) = finish_above(released, &binned, strata, &calls)?;
    named_as(finished, &positions, agg, &calls)
}

/// The release of bins: `agg`'s strata, the first call's arm and stratum,
/// the bin; the counts. Returns it and the number of strata.
fn binned(agg: &Aggregate, calls: &[Call]) -> Result<(Aggregate, usize)> {
    let call = calls
        .first()
        .ok_or_else(|| PlanError::Internal("no statistic".into()))?;
    let mut keys: Vec<Expr> = Vec::with_capacity(agg.group_expr.len() + 3);
    for k in &agg.group_expr {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let strata = keys.len();
    if strata + calls.len() != agg.schema.fields().len() {
        return Err(PlanError::Internal(
            "the strata of a statistic do not match the aggregate's columns".into(),
        ));
    }
    keys.extend(
        [call.group.clone(), call.stratum.clone()]
            .into_iter()
            .flatten(),
    );
    keys.push(bin_of(call.time.clone(), call.width).alias(BIN));
    // Patients without a follow-up time fall in a NULL bin, which the
    // disclosure layer leaves out (a filter here would be simpler SQL, but
    // DataFusion 55 then mis-plans the bin's nullability).
    let binned = Aggregate::try_new(Arc::clone(&agg.input), keys, counts(call))
        .map_err(PlanError::from_datafusion)?;
    if time_axis(&binned).is_none() {
        return Err(refuse(
            "a time or value the federation cannot bin",
            "A follow-up time must be a difference of two dates (such as death_date - diagnosed), binned by at least 30 days; a value must be a column with declared bounds (value_as_number, year_of_birth, ...) or a patient's min, max or avg of one, binned by at least its declared width",
        ));
    }
    Ok((binned, strata))
}

/// The finishing aggregate over the released bins: per stratum, each
/// call's `ihdsi_finish_*` of (arm, stratum, bin, events, competing
/// events, rows, its horizon or probability); and for each call, the
/// position of its finish among the aggregate's.
fn finish_above(
    released: LogicalPlan,
    binned: &Aggregate,
    strata: usize,
    calls: &[Call],
) -> Result<(LogicalPlan, Vec<usize>)> {
    let call = calls
        .first()
        .ok_or_else(|| PlanError::Internal("no statistic".into()))?;
    let column = |i: usize| Expr::Column(Column::from(binned.schema.qualified_field(i)));
    let text = |i: usize| Expr::Cast(Cast::new(Box::new(column(i)), DataType::Utf8));
    let group = if call.group.is_some() {
        text(strata)
    } else {
        lit("")
    };
    let stratum = if call.stratum.is_some() {
        text(strata + 1)
    } else {
        lit("")
    };
    let bin = strata + usize::from(call.group.is_some()) + usize::from(call.stratum.is_some());
    let (events, competing, rows) = match call.statistic {
        Statistic::Incidence => (column(bin + 1), column(bin + 2), column(bin + 3)),
        Statistic::Histogram | Statistic::Quantile => (lit(0i64), lit(0i64), column(bin + 1)),
        _ => (column(bin + 1), lit(0i64), column(bin + 2)),
    };
    // Two spellings of one quantile (`median(x)` and `quantile(x, 0.5, w)`
    // on the same grid) are one finish, computed once.
    let mut finishes: Vec<Expr> = Vec::with_capacity(calls.len());
    let positions = calls
        .iter()
        .map(|c| {
            let bins = [&group, &stratum, &column(bin), &events, &competing, &rows];
            let mut args: Vec<Expr> = bins.into_iter().cloned().collect();
            args.push(lit(c.horizon));
            let finish = functions::finish(c.statistic, args);
            finishes
                .iter()
                .position(|f| *f == finish)
                .unwrap_or_else(|| {
                    finishes.push(finish);
                    finishes.len() - 1
                })
        })
        .collect();
    let plan = LogicalPlanBuilder::from(released)
        .aggregate((0..strata).map(column), finishes)
        .and_then(LogicalPlanBuilder::build)
        .map_err(PlanError::from_datafusion)?;
    Ok((plan, positions))
}

/// The field metadata that tells a client a column is binned: its bin
/// width, and for a quantile that its value is exact to one bin.
pub const BIN_WIDTH: &str = "ihdsi.bin_width";
/// See [`BIN_WIDTH`].
pub const EXACT_TO: &str = "ihdsi.exact_to";

/// `finished` under `agg`'s column names and types (SQL's quantiles keep
/// their own type: the median of an integer column is an integer), each
/// statistic's column carrying its bin width; call `c` reads finish
/// `positions[c]`.
fn named_as(
    finished: LogicalPlan,
    positions: &[usize],
    agg: &Aggregate,
    calls: &[Call],
) -> Result<LogicalPlan> {
    let strata = agg.schema.fields().len() - calls.len();
    let named = agg
        .schema
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            let source = i
                .checked_sub(strata)
                .and_then(|c| positions.get(c))
                .map_or(i, |p| strata + p);
            let (fq, ff) = finished.schema().qualified_field(source);
            let e = Expr::Column(Column::new(fq.cloned(), ff.name()));
            let e = if ff.data_type() == f.data_type() {
                e
            } else {
                Expr::Cast(Cast::new(Box::new(e), f.data_type().clone()))
            };
            let binned = i
                .checked_sub(strata)
                .and_then(|c| calls.get(c))
                .map(|call| {
                    let mut m = std::collections::BTreeMap::new();
                    m.insert(BIN_WIDTH.to_string(), call.width.to_string());
                    if call.statistic == Statistic::Quantile {
                        m.insert(
                            EXACT_TO.to_string(),
                            "one bin: the end of the bin that holds the quantile".into(),
                        );
                    }
                    datafusion::common::metadata::FieldMetadata::from(m)
                });
            e.alias_qualified_with_metadata(q.cloned(), f.name(), binned)
        })
        .collect();
    Projection::try_new(named, Arc::new(finished))
        .map(LogicalPlan::Projection)
        .map_err(PlanError::from_datafusion)
}

/// The name of the bin key while the release is planned.
const BIN: &str = "ihdsi_time_bin";

#[cfg(test)]
mod tests;
