//! Admission below the release boundary: does every operator keep its
//! meaning when each site runs it over its own patients only?
//!
//! Patients are site-local, so anything that works *within* one patient
//! (filters, joins on `person_id`, `GROUP BY person_id`, windows partitioned by
//! `person_id`, `person_id IN (SELECT person_id ...)`) gives the same rows at
//! a site as it would over the pooled data. Anything that mixes patients (a
//! cross-patient aggregate in a filter, a LIMIT, a window over everyone, a
//! join of two patient tables on something else) would silently change the
//! answer, so it is refused here, with the reason.
//!
//! The coordinator runs this check before fanning out, and every site runs it
//! again on the subplan it receives: a site never trusts the coordinator.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan, Operator};

use crate::analysis::carried::carried_column;
use crate::analysis::lineage::{Lineage, expr_is_unit, lineage, reads_patient_data};
use crate::analysis::scope::Scope;
use crate::error::{PlanError, Result};
use crate::rules::Rule;
use ihdsi_catalog::schema::PRIVACY_UNIT;

pub mod amplification;
pub mod dates;
pub mod free_text;
pub mod functions;
pub mod identifier;
pub mod magnitude;
pub mod one_row;
pub mod policy;
pub mod ranges;
pub mod subplan;
pub mod values;

pub use subplan::{SiteAdmission, admit_subplan};

/// Run `check` on every node of `plan`, subqueries included, and stop at
/// the first refusal.
pub(crate) fn every_node(
    plan: &LogicalPlan,
    mut check: impl FnMut(&LogicalPlan) -> Result<()>,
) -> Result<()> {
    let mut outcome = Ok(());
    plan.apply_with_subqueries(|node| {
        outcome = check(node);
        Ok(if outcome.is_ok() {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    outcome
}

/// Check the input of a release boundary (subqueries included).
pub fn check_site_local(plan: &LogicalPlan) -> Result<()> {
    every_node(plan, check_node)
}

/// Everything a release boundary must satisfy, at the coordinator and at
/// every site: a site-local input, no grouping sets, and no grouping by the
/// patient identifier. Returns the lineage of the boundary's input.
pub fn check_boundary(agg: &datafusion::logical_expr::Aggregate) -> Result<Lineage> {
    check_site_local(&agg.input)?;
    identifier::check_aggregate(agg)?;
    free_text::check_exprs(agg.group_expr.iter().chain(&agg.aggr_expr), &agg.input)?;
    dates::check_boundary(agg)?;
    values::check_aggregate(agg)?;
    let boundary = LogicalPlan::Aggregate(agg.clone());
    functions::check_plan(&boundary)?;
    magnitude::check_node(&boundary)?;
    let input_lineage = lineage(&agg.input)?;
    if agg
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        // The coordinator sends one plain subplan per grouping set
        // (`crate::split::grouping_sets`); a subplan with grouping sets is forged.
        return Err(PlanError::unsupported(
            Rule::ReleasePerGroupingSet,
            "GROUPING SETS, ROLLUP and CUBE in a site subplan",
            "The coordinator sends one subplan per grouping set",
        ));
    }
    // The lineage drops the identifier on the nullable side of an outer
    // join; what a key carries does not.
    let carries_unit = |g: &Expr| match crate::analysis::exprs::strip_alias(g) {
        Expr::Column(c) => carried_column(c, Scope::One(&agg.input)).contains(PRIVACY_UNIT),
        _ => false,
    };
    if let Some(g) = agg
        .group_expr
        .iter()
        .find(|g| expr_is_unit(g, &agg.input, &input_lineage) || carries_unit(g))
    {
        return Err(PlanError::RowLevel {
            detail: format!(
                "Grouping the released result by the patient identifier ({g}) releases one row per patient."
            ),
        });
    }
    Ok(input_lineage)
}

fn cross_patient(what: &str) -> PlanError {
    PlanError::unsupported(
        Rule::PerPatientBelowTheAggregation,
        format!("{what} below the aggregation"),
        "Each site would compute it over its own patients only, which changes the answer. Compute it per patient (PARTITION BY / GROUP BY person_id), or run it as a separate aggregate query",
    )
}

fn check_node(node: &LogicalPlan) -> Result<()> {
    if !reads_patient_data(node) {
        return Ok(());
    }
    check_subquery_exprs(node)?;
    identifier::check_node(node)?;
    free_text::check_node(node)?;
    dates::check_node(node)?;
    magnitude::check_node(node)?;
    match node {
        LogicalPlan::Aggregate(a) => {
            if a.group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Err(PlanError::unsupported(
                    Rule::ReleasePerGroupingSet,
                    "GROUPING SETS, ROLLUP and CUBE below the aggregation",
                    "A per-patient subquery groups by person_id alone; put the ROLLUP, CUBE or GROUPING SETS on the outer aggregate",
                ));
            }
            let l = lineage(&a.input)?;
            if !a.group_expr.iter().any(|e| expr_is_unit(e, &a.input, &l)) {
                return Err(cross_patient(
                    "an aggregate that is not grouped by person_id",
                ));
            }
        }
        LogicalPlan::Window(w) => {
            let l = lineage(&w.input)?;
            for e in &w.window_expr {
                let per_patient = window_partitions(e)
                    .is_some_and(|parts| parts.iter().any(|p| expr_is_unit(p, &w.input, &l)));
                if !per_patient {
                    return Err(cross_patient(
                        "a window function not partitioned by person_id",
                    ));
                }
            }
        }
        LogicalPlan::Limit(_) => return Err(cross_patient("LIMIT")),
        LogicalPlan::Join(j) => check_join(j)?,
        LogicalPlan::Distinct(Distinct::All(input)) => {
            if lineage(node)?.unit_index().is_none() && reads_patient_data(input) {
                return Err(cross_patient("SELECT DISTINCT without person_id"));
            }
        }
        LogicalPlan::Distinct(Distinct::On(d)) => {
            let l = lineage(&d.input)?;
            if !d.on_expr.iter().any(|e| expr_is_unit(e, &d.input, &l)) {
                return Err(cross_patient("DISTINCT ON without person_id"));
            }
        }
        LogicalPlan::TableScan(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Repartition(_) => {}
        other => {
            return Err(PlanError::unsupported(
                Rule::HonouredAsWritten,
                format!("the operator {} over patient data", other.display()),
                "It is not on the federated planner's allow-list",
            ));
        }
    }
    Ok(())
}

fn window_partitions(e: &Expr) -> Option<&Vec<Expr>> {
    match e {
        Expr::Alias(a) => window_partitions(&a.expr),
        Expr::WindowFunction(w) => Some(&w.params.partition_by),
        _ => None,
    }
}

fn check_join(j: &datafusion::logical_expr::Join) -> Result<()> {
    let (l, r) = (lineage(&j.left)?, lineage(&j.right)?);
    if !(l.patient && r.patient) {
        return Ok(());
    }
    if j.join_type == JoinType::Full {
        return Err(PlanError::unsupported(
            Rule::SamePatientJoins,
            "FULL OUTER JOIN of patient tables",
            "Use inner or left joins on person_id",
        ));
    }
    let pair = |a: &Expr, b: &Expr| {
        (expr_is_unit(a, &j.left, &l) && expr_is_unit(b, &j.right, &r))
            || (expr_is_unit(b, &j.left, &l) && expr_is_unit(a, &j.right, &r))
    };
    // The unoptimised plan keeps `ON a.person_id = b.person_id` in the join
    // filter; the optimiser moves it to `on` later. Accept either.
    let in_filter = j.filter.as_ref().is_some_and(|f| {
        split_conjunction(f).into_iter().any(|c| match c {
            Expr::BinaryExpr(b) if b.op == Operator::Eq => pair(&b.left, &b.right),
            _ => false,
        })
    });
    let on_unit = in_filter || j.on.iter().any(|(a, b)| pair(a, b));
    if on_unit {
        Ok(())
    } else {
        Err(PlanError::unsupported(
            Rule::SamePatientJoins,
            "a join between patient tables that is not on person_id",
            "Joins of patient data must match rows of the same patient (ON a.person_id = b.person_id); anything else pairs patients across each other, and across sites. INTERSECT and EXCEPT are such joins: they combine sets of person_id only (SELECT person_id … INTERSECT SELECT person_id …)",
        ))
    }
}

/// Whether `subquery` compares a patient's own `person_id` with the outer
/// row's (`inner.person_id = outer.person_id`, in one of its filters): then
/// `EXISTS` asks about the same patient, which each site can answer for
/// its own patients, as a semi join on the privacy unit.
fn correlated_on_unit(
    subquery: &LogicalPlan,
    outer: &LogicalPlan,
    outer_lineage: &Lineage,
) -> bool {
    let mut found = false;
    let _ = subquery.apply(|node| {
        if let LogicalPlan::Filter(f) = node {
            let inner_lineage = lineage(&f.input).ok();
            found |= split_conjunction(&f.predicate).into_iter().any(|c| {
                let Expr::BinaryExpr(b) = c else { return false };
                let pair = |inner: &Expr, outer_side: &Expr| match outer_side {
                    Expr::OuterReferenceColumn(_, column) => {
                        inner_lineage
                            .as_ref()
                            .is_some_and(|l| expr_is_unit(inner, &f.input, l))
                            && expr_is_unit(&Expr::Column(column.clone()), outer, outer_lineage)
                    }
                    _ => false,
                };
                b.op == Operator::Eq && (pair(&b.left, &b.right) || pair(&b.right, &b.left))
            });
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Subqueries inside expressions: only `person_id IN (SELECT person_id ...)`
/// and `EXISTS` correlated on `person_id` are site-local when the subquery
/// reads patient data.
fn check_subquery_exprs(node: &LogicalPlan) -> Result<()> {
    let inputs = node.inputs();
    let Some(input) = inputs.first() else {
        return Ok(());
    };
    let input_lineage: Option<Lineage> = lineage(input).ok();
    for expr in node.expressions() {
        let mut err = None;
        expr.apply(|e| {
            let problem = match e {
                Expr::ScalarSubquery(sq) if reads_patient_data(&sq.subquery) => Some(cross_patient("a scalar subquery over patient data")),
                Expr::Exists(ex) if reads_patient_data(&ex.subquery.subquery) => {
                    let correlated = input_lineage
                        .as_ref()
                        .is_some_and(|l| correlated_on_unit(&ex.subquery.subquery, input, l));
                    (!correlated).then(|| PlanError::unsupported(
                        Rule::CorrelatedExists,
                        "EXISTS over patient data that is not correlated on person_id",
                        "Each site would answer it for its own patients only; correlate it with the outer patient (EXISTS (SELECT 1 FROM death d WHERE d.person_id = p.person_id)), or write person_id IN (SELECT person_id FROM ...)",
                    ))
                }
                Expr::InSubquery(ins) if reads_patient_data(&ins.subquery.subquery) => {
                    let sub = lineage(&ins.subquery.subquery).ok();
                    let left_unit = input_lineage.as_ref().is_some_and(|l| expr_is_unit(&ins.expr, input, l));
                    let right_unit = sub.is_some_and(|s| s.unit.first().copied().unwrap_or(false));
                    (!(left_unit && right_unit)).then(|| cross_patient("an IN (subquery) over patient data that does not compare person_id with person_id"))
                }
                _ => None,
            };
            err = problem;
            Ok(if err.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if let Some(e) = err {
            return Err(e);
        }
    }
    Ok(())
}
