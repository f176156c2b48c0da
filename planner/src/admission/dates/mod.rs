//! High-resolution columns: dates, timestamps and the day of birth (attack
//! A29 of the privacy anchors, the timestamp half).
//!
//! An exact date or time singles a patient out as surely as a name:
//! `WHERE birth_datetime = '1931-04-02 10:32'` or `GROUP BY
//! condition_start_date` release one cell per moment. Cohort definitions
//! still need dates: index dates per patient, windows between two of a
//! patient's events, calendar years. So, as pg_diffix does for untrusted
//! analysts, a date may be used below the release boundary
//!
//! * through a **generalisation**: `date_part`/`EXTRACT` of year, quarter
//!   or month (or coarser), or `date_trunc` to a month or coarser, whose
//!   argument is a date of the data *unchanged* (not shifted by an
//!   interval, not computed from a number, not mixed with a literal);
//! * **relative to another date** of the data: comparisons and differences
//!   of two dates that come from *different* date columns or different
//!   rows, with no literal date on either side, so that `d =
//!   greatest(d, DATE '…')` (the same column on both sides) or
//!   `coalesce(d, DATE '…') < e` (a literal inside) is not relative;
//! * against a **literal in an ordering comparison** whose value is the
//!   first of a month at midnight, the other side an unchanged date (a
//!   shifted one, `d + INTERVAL '13 days' >= '2015-02-01'`, moves the
//!   boundary off the month);
//! * passed through, kept temporal (`min(condition_start_date)` per
//!   patient, `index_date + INTERVAL '30 days'`), where the rules above
//!   apply wherever it is used next: every column is followed through the
//!   plan to the scan it reads ([`provenance`]).
//!
//! Refused: equality or `IN` with a literal date, grouping the released
//! result by a raw, shifted or finely truncated date, turning a date into a
//! number or text other than by a generalisation, and the weekday and ISO
//! year, which with a month narrow a date to a few days. `day_of_birth` has
//! no generalisation and is refused in any computation.

mod provenance;
#[cfg(test)]
mod tests;

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator,
};

use crate::analysis::exprs::strip_alias;
use crate::error::{PlanError, Result};
use provenance::{Prov, Scope, generalisation, temporal};

// Fields every date and timestamp type supports (decade, century and
// millennium are parsed but refused by date_part at run time).
const FIELDS: &[&str] = &["year", "years", "quarter", "month", "months"];
// date_trunc knows no coarser unit than the year: an unknown one fails at
// run time, for every row that reaches it.
const UNITS: &[&str] = &["month", "quarter", "year"];
const HINT: &str = "an exact date or time can single a patient out. Use date_part('year' | 'quarter' | 'month', d) or date_trunc('month' | 'quarter' | 'year', d) of a date column, compare it with another date of the data, or with a first of a month";

fn refused(what: String) -> PlanError {
    PlanError::policy(
        crate::rules::Rule::GeneralisedDates,
        format!("{what}: {HINT}"),
    )
}

fn name_of(e: &Expr) -> String {
    let cols: Vec<String> = e.column_refs().iter().map(|c| c.name.clone()).collect();
    if cols.is_empty() {
        e.to_string()
    } else {
        cols.join(", ")
    }
}

fn comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// The value of a constant date expression, when it is a literal or a cast
/// of one, as a timestamp in nanoseconds.
fn literal_nanos(e: &Expr) -> Option<i64> {
    let v = match e {
        Expr::Literal(v, _) => v.clone(),
        Expr::Cast(c) => return literal_nanos(&c.expr),
        Expr::TryCast(c) => return literal_nanos(&c.expr),
        _ => return None,
    };
    let ts = v
        .cast_to(&datafusion::arrow::datatypes::DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ))
        .ok()?;
    match ts {
        ScalarValue::TimestampNanosecond(Some(n), _) => Some(n),
        _ => None,
    }
}

/// Whether `e` is a NULL literal (or a cast of one).
fn null_literal(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => v.is_null(),
        Expr::Cast(c) => null_literal(&c.expr),
        Expr::TryCast(c) => null_literal(&c.expr),
        _ => false,
    }
}

/// Whether a literal is the first of a month at midnight.
fn month_aligned(e: &Expr) -> bool {
    use chrono::{Datelike, Timelike};
    literal_nanos(e)
        .map(chrono::DateTime::from_timestamp_nanos)
        .is_some_and(|t| t.day() == 1 && t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0)
}

/// Whether a side of a comparison is a constant: no column at all, or a
/// date that is not data.
fn constant_side(e: &Expr, p: &Prov) -> bool {
    e.column_refs().is_empty() || *p == Prov::Constant
}

/// Whether a provenance carries a date of the data that a comparison or a
/// key would expose.
fn dated(p: &Prov) -> bool {
    matches!(p, Prov::Bare(_) | Prov::Shifted(_) | Prov::Mixed { .. })
}

/// Check a comparison of `l` and `r` by `op`.
fn check_comparison(l: &Expr, op: Operator, r: &Expr, scope: Scope<'_>) -> Result<()> {
    let (pl, pr) = (provenance::expr(l, scope), provenance::expr(r, scope));
    if !dated(&pl) && !dated(&pr) {
        return check_days(l, r, (&pl, &pr));
    }
    let (date, p, other, po) = if dated(&pl) {
        (l, &pl, r, &pr)
    } else {
        (r, &pr, l, &pl)
    };
    if constant_side(other, po) {
        // A comparison with NULL selects nobody (or, distinct from NULL,
        // tests for a missing date): it singles no one out. It is also
        // how a prepared statement is planned before its values are bound.
        if null_literal(other) {
            return Ok(());
        }
        let ordering = matches!(
            op,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        );
        return match p {
            Prov::Bare(_) if ordering && month_aligned(other) => Ok(()),
            Prov::Bare(_) => Err(refused(format!(
                "comparing {} with a literal by {op}",
                name_of(date)
            ))),
            _ => Err(refused(format!(
                "comparing a shifted or computed {} with a literal",
                name_of(date)
            ))),
        };
    }
    // Both sides hold data: relative only between different dates, with no
    // literal date on either side.
    let (sl, sr) = (pl.sources(), pr.sources());
    if pl.constant() || pr.constant() {
        return Err(refused(format!(
            "comparing {} with an expression that mixes a literal date into the data",
            name_of(date)
        )));
    }
    if sl.is_empty() || sr.is_empty() {
        return Err(refused(format!(
            "comparing {} with a value that is not a date of the data",
            name_of(date)
        )));
    }
    if !sl.is_disjoint(&sr) {
        return Err(refused(format!(
            "comparing {} with itself through an expression",
            name_of(date)
        )));
    }
    Ok(())
}

/// A difference of dates is compared with literals or with another
/// difference of dates only: compared with other data (`a - b =
/// year_of_birth * 365`) it is a number that can reach an exact day.
fn check_days(l: &Expr, r: &Expr, p: (&Prov, &Prov)) -> Result<()> {
    let (days, other, po) = match p {
        (Prov::Interval, po) => (l, r, po),
        (po, Prov::Interval) => (r, l, po),
        _ => return Ok(()),
    };
    if matches!(po, Prov::Interval | Prov::Gridded) || other.column_refs().is_empty() {
        return Ok(());
    }
    Err(refused(format!(
        "comparing {}, a difference of dates in days, with a value computed from other data: compare it with literals, or with another difference of dates",
        name_of(days)
    )))
}

/// An interval `a - b` between two dates: relative only between different
/// dates of the data, with no literal date in either.
fn check_interval(a: &Expr, b: &Expr, scope: Scope<'_>) -> Result<()> {
    let (pa, pb) = (provenance::expr(a, scope), provenance::expr(b, scope));
    let (sa, sb) = (pa.sources(), pb.sources());
    if pa.constant() || pb.constant() || sa.is_empty() || sb.is_empty() {
        return Err(refused(format!(
            "turning {} into a number: an interval to a literal date",
            name_of(&Expr::BinaryExpr(BinaryExpr::new(
                Box::new(a.clone()),
                Operator::Minus,
                Box::new(b.clone())
            )))
        )));
    }
    if !sa.is_disjoint(&sb) {
        return Err(refused(format!(
            "the interval between {} and itself",
            name_of(a)
        )));
    }
    Ok(())
}

fn is_temporal(e: &Expr, scope: Scope<'_>) -> bool {
    e.get_type(scope.schema().as_ref())
        .is_ok_and(|t| temporal(&t))
}

/// Check every use of a high-resolution value in `e`, an expression over
/// `scope`.
fn check_expr(e: &Expr, scope: Scope<'_>) -> Result<()> {
    // `day_of_birth` may pass through a projection under any name: the
    // rules that keep it out of keys and filters follow what a column
    // carries, not its name (`crate::analysis::carried`).
    let root = strip_alias(e);
    let mut outcome = Ok(());
    let _ = e.apply(|x| {
        outcome = check_one(x, std::ptr::eq(x, root), scope);
        Ok(if outcome.is_ok() {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    outcome
}

fn check_one(x: &Expr, is_root: bool, scope: Scope<'_>) -> Result<()> {
    if let Some(arg) = generalisation(x) {
        return match provenance::expr(arg, scope) {
            Prov::Bare(_) | Prov::Generalised | Prov::Interval | Prov::Gridded | Prov::NotDate => {
                Ok(())
            }
            _ => Err(refused(format!(
                "generalising {}, which is shifted, computed or mixed with a literal",
                name_of(arg)
            ))),
        };
    }
    match x {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if comparison(*op) => {
            return check_comparison(left, *op, right, scope);
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Minus,
            right,
        }) if is_temporal(left, scope) && is_temporal(right, scope) => {
            return check_interval(left, right, scope);
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            check_comparison(expr, Operator::GtEq, low, scope)?;
            return check_comparison(expr, Operator::LtEq, high, scope);
        }
        Expr::InList(l) => {
            let p = provenance::expr(&l.expr, scope);
            return match dated(&p) {
                true if l.list.iter().any(|v| v.column_refs().is_empty()) => Err(refused(format!(
                    "testing {} IN a list of literals",
                    name_of(&l.expr)
                ))),
                true => l
                    .list
                    .iter()
                    .try_for_each(|v| check_comparison(&l.expr, Operator::Eq, v, scope)),
                false => Ok(()),
            };
        }
        Expr::IsNull(_) | Expr::IsNotNull(_) | Expr::AggregateFunction(_) => return Ok(()),
        Expr::Column(c) if day_of_birth(c, scope) && !is_root => {
            return Err(refused(format!("computing with {}", c.name)));
        }
        _ => {}
    }
    if is_temporal(x, scope) {
        return Ok(());
    }
    // A value that is not a date, computed directly from one: only the
    // rules above may do that.
    let mut outcome = Ok(());
    let _ = x.apply_children(|child| {
        if is_temporal(child, scope) && dated(&provenance::expr(child, scope)) {
            outcome = Err(refused(format!(
                "turning {} into a number or text",
                name_of(child)
            )));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    outcome
}

/// Whether column `c` may carry the day of birth, under any name.
fn day_of_birth(c: &datafusion::common::Column, scope: Scope<'_>) -> bool {
    crate::analysis::carried::carried_column(c, scope).contains("day_of_birth")
}

/// Check one node below the release boundary.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    match node {
        LogicalPlan::Filter(f) => check_expr(&f.predicate, Scope::One(&f.input)),
        LogicalPlan::Join(j) => {
            let scope = Scope::Join(j);
            for (l, r) in &j.on {
                check_comparison(l, Operator::Eq, r, scope)?;
                check_expr(l, scope)?;
                check_expr(r, scope)?;
            }
            j.filter.as_ref().map_or(Ok(()), |f| check_expr(f, scope))
        }
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .try_for_each(|e| check_expr(e, Scope::One(&p.input))),
        LogicalPlan::Aggregate(a) => a
            .group_expr
            .iter()
            .chain(&a.aggr_expr)
            .try_for_each(|e| check_expr(e, Scope::One(&a.input))),
        _ => Ok(()),
    }
}

/// The release boundary: its expressions as any node's, and its keys with
/// every date generalised.
pub fn check_boundary(agg: &Aggregate) -> Result<()> {
    let scope = Scope::One(&agg.input);
    let gridded = agg
        .group_expr
        .iter()
        .filter(|k| provenance::expr(k, scope) == Prov::Gridded)
        .count();
    if gridded > 1 {
        return Err(refused(
            "grouping the released result by two grids of differences of dates: shifted grids together are finer than either ((a - b) / 30 and (a - b + 15) / 30 tell 15 days apart). Group by one".to_string(),
        ));
    }
    for key in &agg.group_expr {
        let p = provenance::expr(key, scope);
        if p == Prov::Interval {
            return Err(refused(format!(
                "grouping the released result by {}, a difference of dates in days: against a date that is (nearly) the same for every patient, such as an extraction or observation-period end date, it is an exact date. Group it by whole months or coarser, (a - b) / 30",
                name_of(key)
            )));
        }
        if dated(&p) || key.column_refs().iter().any(|c| day_of_birth(c, scope)) {
            return Err(refused(format!(
                "grouping the released result by {}",
                name_of(key)
            )));
        }
    }
    agg.group_expr
        .iter()
        .chain(&agg.aggr_expr)
        .try_for_each(|e| check_expr(e, scope))
}
