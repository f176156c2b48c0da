//! Row amplification below the release boundary (dp mode).
//!
//! In dp mode the answer leaves at a fixed time after the query arrives
//! (docs/privacy.md, A16), so the time a query takes may not depend on the
//! data, and a query that would need longer must not exist among the
//! admitted ones. What makes a site's work grow with one patient's rows,
//! beyond reading them, is a join that multiplies them:
//!
//! * a join of patient rows with the public vocabulary on anything but
//!   `concept.concept_id` (its unique key) pairs each patient row with many
//!   public rows: a victim-filtered cross join with `concept` took seven
//!   seconds against one;
//! * a join of two patient inputs on `person_id` where neither has at most
//!   one row per patient pairs every row of one with every row of the other
//!   (600 rows of one patient joined with themselves are 360,000).
//!
//! So in dp mode every join below the boundary matches each row with at
//! most one row of the other side: equality with `concept.concept_id`, or
//! a patient input that has one row per patient (`person`, a per-patient
//! aggregate grouped by `person_id` alone, `SELECT DISTINCT person_id`).
//! The bound, at most one partner per row, is part of every admitted plan;
//! `person_id IN (SELECT ...)` links cohorts without multiplying anything.

use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan, Operator};

use crate::analysis::exprs::strip_alias;
use crate::analysis::lineage::{expr_is_unit, lineage, reads_patient_data};
use crate::error::{PlanError, Result};
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};

/// The public table and column whose values are unique.
const UNIQUE_KEYS: &[(&str, &str)] = &[("concept", "concept_id")];

/// Refuse, in dp mode, joins below the boundary that can multiply rows.
pub fn check(input: &LogicalPlan, policy: &PrivacyPolicy) -> Result<()> {
    if policy.mode != PrivacyMode::Dp {
        return Ok(());
    }
    super::every_node(input, |node| match node {
        LogicalPlan::Join(j) => check_join(j),
        _ => Ok(()),
    })
}

fn refused(what: &str) -> PlanError {
    PlanError::policy(
        crate::rules::Rule::NoRowAmplification,
        format!(
            "in dp mode {what}: it can multiply one patient's rows, so that the query's running time depends on the data. Join the vocabulary on concept_id, join a patient table with one row per patient (person, a subquery grouped by person_id, SELECT DISTINCT person_id), or link cohorts with person_id IN (SELECT person_id ...)"
        ),
    )
}

fn check_join(j: &datafusion::logical_expr::Join) -> Result<()> {
    if matches!(
        j.join_type,
        JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::LeftMark
            | JoinType::RightMark
    ) {
        return Ok(());
    }
    let (l, r) = (reads_patient_data(&j.left), reads_patient_data(&j.right));
    match (l, r) {
        (false, false) => Ok(()),
        (true, true) => {
            if one_per_patient(&j.left) || one_per_patient(&j.right) {
                Ok(())
            } else {
                Err(refused(
                    "a join of two patient inputs that both can have several rows per patient",
                ))
            }
        }
        (true, false) | (false, true) => {
            let public = if l { &j.right } else { &j.left };
            let equalities = j.on.iter().map(|(a, b)| (a.clone(), b.clone())).chain(
                j.filter
                    .iter()
                    .flat_map(|f| {
                        split_conjunction(f)
                            .into_iter()
                            .cloned()
                            .collect::<Vec<_>>()
                    })
                    .filter_map(|c| match c {
                        Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                            Some((*b.left.clone(), *b.right.clone()))
                        }
                        _ => None,
                    }),
            );
            let keyed = equalities
                .into_iter()
                .any(|(a, b)| unique_key(public, &a) || unique_key(public, &b));
            if keyed {
                Ok(())
            } else {
                Err(refused(
                    "a join with the public vocabulary that is not on concept_id",
                ))
            }
        }
    }
}

/// Whether `e` is a column of `plan` whose values are unique in it.
fn unique_key(plan: &LogicalPlan, e: &Expr) -> bool {
    let Expr::Column(c) = strip_alias(e) else {
        return false;
    };
    plan.schema()
        .index_of_column(c)
        .is_ok_and(|i| unique_at(plan, i))
}

fn unique_at(plan: &LogicalPlan, index: usize) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = plan.schema().field(index).name();
            UNIQUE_KEYS.iter().any(|(t, c)| {
                scan.table_name.table().eq_ignore_ascii_case(t) && name.eq_ignore_ascii_case(c)
            })
        }
        LogicalPlan::Projection(p) => match p.expr.get(index).map(strip_alias) {
            Some(Expr::Column(c)) => p
                .input
                .schema()
                .index_of_column(c)
                .is_ok_and(|i| unique_at(&p.input, i)),
            _ => false,
        },
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => unique_at(plan.inputs()[0], index),
        _ => false,
    }
}

/// Whether `plan` has at most one row per patient.
pub fn one_per_patient(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => scan.table_name.table().eq_ignore_ascii_case("person"),
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::Window(_) => one_per_patient(plan.inputs()[0]),
        LogicalPlan::Aggregate(a) => {
            a.group_expr.len() == 1
                && lineage(&a.input).is_ok_and(|l| expr_is_unit(&a.group_expr[0], &a.input, &l))
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            plan.schema().fields().len() == 1
                && lineage(plan).is_ok_and(|l| l.unit.first().copied().unwrap_or(false))
                || one_per_patient(input)
        }
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => one_per_patient(&j.left),
            JoinType::RightSemi | JoinType::RightAnti => one_per_patient(&j.right),
            JoinType::Inner => one_per_patient(&j.left) && one_per_patient(&j.right),
            _ => false,
        },
        _ => false,
    }
}
