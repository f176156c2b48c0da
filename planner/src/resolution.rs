//! High-resolution columns: dates, timestamps and the day of birth (attack
//! A29 of the privacy anchors, the timestamp half).
//!
//! An exact date or time singles a patient out as surely as a name:
//! `WHERE birth_datetime = '1931-04-02 10:32'` or `GROUP BY
//! condition_start_date` release one cell per moment. Cohort definitions
//! still need dates: index dates per patient, windows between two of a
//! patient's events, calendar years. So, as pg_diffix does for
//! untrusted analysts, a date may be used below the release boundary
//!
//! * through a **generalisation**: `date_part`/`EXTRACT` of year, quarter,
//!   month (or coarser, or the weekday), or `date_trunc` to a month or
//!   coarser;
//! * **relative to another date** of the data: comparisons and differences
//!   of two columns (`d.drug_exposure_start_date >= c.index_date`);
//! * against a **literal in an ordering comparison** whose value is the
//!   first of a month at midnight, so a range is at least a month wide;
//! * passed through, kept temporal (`min(condition_start_date)` per
//!   patient, `index_date + INTERVAL '30 days'`), where the rules above
//!   apply wherever it is used next.
//!
//! Refused: equality or `IN` with a literal date, grouping the released
//! result by a raw or finely truncated date, and turning a date into a
//! number or text (`to_char`, casts, `date_part('epoch', …)`) other than
//! by a generalisation. `day_of_birth` has no generalisation and is
//! refused in any computation.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ExprSchema, ScalarValue};
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator,
};

use crate::error::{PlanError, Result};

const FIELDS: &[&str] = &[
    "year",
    "years",
    "quarter",
    "month",
    "months",
    "decade",
    "century",
    "millennium",
    "isoyear",
    "dow",
    "isodow",
];
const UNITS: &[&str] = &[
    "month",
    "quarter",
    "year",
    "decade",
    "century",
    "millennium",
];
const HINT: &str = "an exact date or time can single a patient out. Use date_part('year' | 'quarter' | 'month', …) or date_trunc('month' | 'quarter' | 'year', …), compare it with another date of the data, or with a first of a month";

fn refused(what: String) -> PlanError {
    PlanError::Policy(format!("{what}: {HINT}"))
}

fn temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
    )
}

/// A column that is high-resolution by its name or its type in `schema`.
fn high_resolution(c: &datafusion::common::Column, schema: &DFSchema) -> bool {
    c.name.eq_ignore_ascii_case("day_of_birth")
        || schema
            .field_from_column(c)
            .is_ok_and(|f| temporal(f.data_type()))
}

/// A generalisation call: date_part of a coarse field, date_trunc to a
/// coarse unit.
fn generalised(e: &Expr) -> bool {
    let Expr::ScalarFunction(f) = e else {
        return false;
    };
    let name = f.func.name().to_ascii_lowercase();
    let allowed = match name.as_str() {
        "date_part" | "datepart" => FIELDS,
        "date_trunc" | "datetrunc" => UNITS,
        _ => return false,
    };
    matches!(f.args.first(), Some(Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _))
        if allowed.contains(&s.to_ascii_lowercase().as_str()))
}

/// The first high-resolution column of `e` that no generalisation covers.
fn exposed(e: &Expr, schema: &DFSchema) -> Option<String> {
    let mut found = None;
    let _ = e.apply(|x| {
        if generalised(x) || interval_between(x, schema) {
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Expr::Column(c) = x
            && high_resolution(c, schema)
        {
            found = Some(c.name.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
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

/// The interval between two dates of the data (`end - start`): relative,
/// so it says nothing about when either was.
fn interval_between(e: &Expr, schema: &DFSchema) -> bool {
    matches!(e, Expr::BinaryExpr(BinaryExpr { left, op: Operator::Minus, right })
        if is_temporal(left, schema)
            && is_temporal(right, schema)
            && has_column(left)
            && has_column(right))
}

fn has_column(e: &Expr) -> bool {
    !e.column_refs().is_empty()
}

fn is_temporal(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| temporal(&t))
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
        .cast_to(&DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ))
        .ok()?;
    match ts {
        ScalarValue::TimestampNanosecond(Some(n), _) => Some(n),
        _ => None,
    }
}

/// Whether a literal is the first of a month at midnight.
fn month_aligned(e: &Expr) -> bool {
    use chrono::{Datelike, Timelike};
    literal_nanos(e)
        .map(chrono::DateTime::from_timestamp_nanos)
        .is_some_and(|t| t.day() == 1 && t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0)
}

/// Check a comparison of `l` and `r` by `op`.
fn check_comparison(l: &Expr, op: Operator, r: &Expr, schema: &DFSchema) -> Result<()> {
    let (date, other) = match (exposed(l, schema), exposed(r, schema)) {
        (Some(c), _) => (c, r),
        (None, Some(c)) => (c, l),
        (None, None) => return Ok(()),
    };
    if has_column(other) {
        return Ok(()); // relative to another value of the data
    }
    let ordering = matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    );
    if ordering && month_aligned(other) {
        return Ok(());
    }
    Err(refused(format!("comparing {date} with a literal by {op}")))
}

/// Check every use of a high-resolution value in `e`, an expression over
/// `schema`: comparisons with literals, and every place where a date
/// becomes something else, which must be a generalisation, a NULL test, an
/// interval between two dates of the data, or an aggregate.
fn check_expr(e: &Expr, schema: &DFSchema) -> Result<()> {
    let root = strip_alias(e);
    let mut outcome = Ok(());
    let _ = e.apply(|x| {
        if generalised(x) {
            return Ok(TreeNodeRecursion::Jump);
        }
        outcome = check_one(x, std::ptr::eq(x, root), schema);
        Ok(if outcome.is_ok() {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    outcome
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn check_one(x: &Expr, is_root: bool, schema: &DFSchema) -> Result<()> {
    match x {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if comparison(*op) => {
            return check_comparison(left, *op, right, schema);
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            check_comparison(expr, Operator::GtEq, low, schema)?;
            return check_comparison(expr, Operator::LtEq, high, schema);
        }
        Expr::InList(l) => {
            return match exposed(&l.expr, schema) {
                Some(c) if l.list.iter().any(|v| !has_column(v)) => {
                    Err(refused(format!("testing {c} IN a list of literals")))
                }
                _ => Ok(()),
            };
        }
        x if interval_between(x, schema) => return Ok(()),
        Expr::IsNull(_) | Expr::IsNotNull(_) | Expr::AggregateFunction(_) => return Ok(()),
        Expr::Column(c) if c.name.eq_ignore_ascii_case("day_of_birth") && !is_root => {
            return Err(refused(format!("computing with {}", c.name)));
        }
        _ => {}
    }
    if is_temporal(x, schema) {
        return Ok(());
    }
    // A value that is not a date, computed directly from one.
    let mut outcome = Ok(());
    let _ = x.apply_children(|child| {
        if let Some(c) = exposed(child, schema).filter(|_| is_temporal(child, schema)) {
            outcome = Err(refused(format!("turning {c} into a number or text")));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    outcome
}

/// Check one node below the release boundary.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    match node {
        LogicalPlan::Filter(f) => check_expr(&f.predicate, f.input.schema()),
        LogicalPlan::Join(j) => {
            let schema = j
                .left
                .schema()
                .join(j.right.schema())
                .map_err(PlanError::from_datafusion)?;
            for (l, r) in &j.on {
                check_expr(l, &schema)?;
                check_expr(r, &schema)?;
            }
            j.filter.as_ref().map_or(Ok(()), |f| check_expr(f, &schema))
        }
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .try_for_each(|e| check_expr(e, p.input.schema())),
        LogicalPlan::Aggregate(a) => a
            .group_expr
            .iter()
            .chain(&a.aggr_expr)
            .try_for_each(|e| check_expr(e, a.input.schema())),
        _ => Ok(()),
    }
}

/// The release boundary: its expressions as any node's, and its keys with
/// every high-resolution column generalised.
pub fn check_boundary(agg: &Aggregate) -> Result<()> {
    for key in &agg.group_expr {
        if let Some(c) = exposed(key, agg.input.schema()) {
            return Err(refused(format!("grouping the released result by {c}")));
        }
    }
    agg.group_expr
        .iter()
        .chain(&agg.aggr_expr)
        .try_for_each(|e| check_expr(e, agg.input.schema()))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use ihdsi_catalog::PrivacyPolicy;

    use crate::{plan_query, register_virtual_schema};

    /// `None`: admitted; `Some(text)`: refused with `text` in the message.
    const CASES: &[(&str, Option<&str>)] = &[
        // Generalised, relative or month-aligned: admitted.
        (
            "SELECT date_part('year', birth_datetime) AS y, count(*) FROM person GROUP BY 1",
            None,
        ),
        (
            "SELECT extract(quarter FROM condition_start_date) AS q, count(*) FROM condition_occurrence GROUP BY 1",
            None,
        ),
        (
            "SELECT date_trunc('month', visit_start_date) AS m, count(*) FROM visit_occurrence GROUP BY 1",
            None,
        ),
        (
            "SELECT count(*) FROM condition_occurrence WHERE condition_start_date >= '2015-01-01' AND condition_start_date < '2015-04-01'",
            None,
        ),
        (
            "SELECT count(*) FROM death WHERE death_date IS NOT NULL",
            None,
        ),
        (
            "SELECT count(*) FROM observation_period WHERE observation_period_end_date - observation_period_start_date > INTERVAL '365 days'",
            None,
        ),
        (
            "SELECT count(DISTINCT d.person_id) FROM (SELECT person_id, min(condition_start_date) AS i FROM condition_occurrence GROUP BY person_id) c JOIN drug_exposure d ON d.person_id = c.person_id WHERE d.drug_exposure_start_date BETWEEN c.i AND c.i + INTERVAL '30 days'",
            None,
        ),
        (
            "SELECT year_of_birth, month_of_birth, count(*) FROM person GROUP BY 1, 2",
            None,
        ),
        // Exact dates and fine resolution: refused, naming the column only.
        (
            "SELECT count(*) FROM person WHERE birth_datetime = '1931-04-02 10:32:00'",
            Some("comparing birth_datetime with a literal by ="),
        ),
        (
            "SELECT count(*) FROM person WHERE birth_datetime <> '1931-04-02'",
            Some("comparing birth_datetime"),
        ),
        (
            "SELECT count(*) FROM condition_occurrence WHERE condition_start_date > '2015-03-14'",
            Some("comparing condition_start_date with a literal by >"),
        ),
        (
            "SELECT count(*) FROM death WHERE death_date IN ('2019-02-01')",
            Some("death_date IN a list of literals"),
        ),
        (
            "SELECT visit_start_date, count(*) FROM visit_occurrence GROUP BY 1",
            Some("grouping the released result by visit_start_date"),
        ),
        (
            "SELECT date_trunc('week', visit_start_date), count(*) FROM visit_occurrence GROUP BY 1",
            Some("grouping the released result by visit_start_date"),
        ),
        (
            "SELECT date_part('doy', visit_start_date) AS d, count(*) FROM visit_occurrence GROUP BY 1",
            Some("visit_start_date"),
        ),
        (
            "SELECT count(*) FROM person WHERE to_char(birth_datetime, '%Y-%m-%d') = 'x'",
            Some("birth_datetime"),
        ),
        (
            "SELECT day_of_birth, count(*) FROM person GROUP BY 1",
            Some("grouping the released result by day_of_birth"),
        ),
        (
            "SELECT count(*) FROM person WHERE day_of_birth = 2",
            Some("day_of_birth"),
        ),
    ];

    #[tokio::test]
    async fn dates_are_admitted_only_generalised_relative_or_month_aligned() {
        let ctx = SessionContext::new();
        register_virtual_schema(&ctx).expect("virtual schema");
        let mut failures = Vec::new();
        for (sql, expected) in CASES {
            let got = plan_query(&ctx.state(), sql, &PrivacyPolicy::default()).await;
            match (expected, got) {
                (None, Ok(_)) => {}
                (Some(text), Err(e)) if e.to_string().contains(text) => {
                    if e.to_string().contains("1931") || e.to_string().contains("2015") {
                        failures.push(format!("{sql}: the refusal quotes a literal: {e}"));
                    }
                }
                (expected, got) => {
                    failures.push(format!(
                        "{sql}: expected {expected:?}, got {:?}",
                        got.map(|_| "admitted")
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
