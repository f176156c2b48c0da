//! Where the patient identifier may appear.
//!
//! `person_id` is a pseudonymous key, not a statistic. Counting it, grouping
//! per patient, joining patients' rows and linking cohorts with
//! `person_id IN (SELECT person_id …)` are what federated cohort queries
//! need. Everything else singles patients out or encodes them:
//! `WHERE person_id = 12345` against `WHERE person_id <> 12345` is a
//! differencing pair on one patient, `GROUP BY person_id % 10` or
//! `sum(person_id)` turn identifiers into released numbers (attacks A06,
//! A09 and A10 of the privacy anchors). So a reference to the identifier is
//! accepted only in these positions, below the release boundary and in the
//! boundary itself, at the coordinator and again at every site:
//!
//! * passed through unchanged by a projection, sort or `DISTINCT ON`;
//! * as a grouping key of a per-patient sub-aggregate, or a window's
//!   `PARTITION BY`;
//! * as the argument of `count(person_id)` or `count(DISTINCT person_id)`;
//! * in `person_id = person_id` join conditions (a correlated `EXISTS`'s
//!   `inner.person_id = outer.person_id` among them), and on the left of
//!   `IN (SELECT person_id …)`.
//!
//! A column is the identifier if the lineage analysis says so, if it is
//! named `person_id`, or if it may carry `person_id`'s values under another
//! name ([`crate::analysis::carried`]: a rename above a `LEFT JOIN`, a
//! `UNION` branch, a CTE), which the lineage conservatively drops.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Distinct, Expr, LogicalPlan, Operator};

use crate::analysis::carried::carried_column;
use crate::analysis::lineage::{Lineage, UNIT_ALIAS, lineage};
use crate::analysis::scope::Scope;
use crate::error::{PlanError, Result};
use ihdsi_catalog::schema::PRIVACY_UNIT;

/// The columns of one schema that hold the identifier.
struct Identifiers<'a> {
    schema: &'a DFSchema,
    lineage: Lineage,
    scope: Scope<'a>,
}

impl Identifiers<'_> {
    fn is_identifier(&self, c: &Column) -> bool {
        c.name == PRIVACY_UNIT
            || c.name == UNIT_ALIAS
            || self
                .schema
                .index_of_column(c)
                .is_ok_and(|i| self.lineage.unit.get(i).copied().unwrap_or(false))
            || carried_column(c, self.scope).contains(PRIVACY_UNIT)
    }

    /// Whether `e` is a bare (possibly aliased) identifier column, or a
    /// correlated subquery's reference to the outer row's (`EXISTS (…
    /// WHERE d.person_id = p.person_id)`: whether it really is the outer
    /// patient is the subquery check's to say, with the outer lineage).
    fn is_bare(&self, e: &Expr) -> bool {
        match e {
            Expr::Alias(a) => self.is_bare(&a.expr),
            Expr::Column(c) => self.is_identifier(c),
            Expr::OuterReferenceColumn(_, c) => c.name == PRIVACY_UNIT,
            _ => false,
        }
    }

    /// Whether `e` references the identifier anywhere except in the allowed
    /// sub-expressions (`count(person_id)`, `person_id = person_id`,
    /// `person_id IN (subquery)`); subquery plans are checked on their own.
    fn misused_in(&self, e: &Expr) -> bool {
        let mut misused = false;
        let _ = e.apply(|x| {
            let next = match x {
                Expr::Column(c) if self.is_identifier(c) => {
                    misused = true;
                    TreeNodeRecursion::Stop
                }
                Expr::AggregateFunction(f) if self.is_count_of_identifier(f) => {
                    TreeNodeRecursion::Jump
                }
                Expr::BinaryExpr(b)
                    if b.op == Operator::Eq && self.is_bare(&b.left) && self.is_bare(&b.right) =>
                {
                    TreeNodeRecursion::Jump
                }
                Expr::InSubquery(s) if self.is_bare(&s.expr) => TreeNodeRecursion::Jump,
                _ => TreeNodeRecursion::Continue,
            };
            Ok(next)
        });
        misused
    }

    fn is_count_of_identifier(&self, f: &AggregateFunction) -> bool {
        f.func.name().eq_ignore_ascii_case("count")
            && f.params.filter.is_none()
            && f.params.args.len() == 1
            && self.is_bare(&f.params.args[0])
    }
}

fn refuse(position: &str) -> PlanError {
    PlanError::policy(
        crate::rules::Rule::PatientIdentifier,
        format!(
            "the patient identifier person_id is used in {position}. It may only be counted \
         (count(DISTINCT person_id)), grouped on per patient, or used to join and link \
         patients' rows (a.person_id = b.person_id, person_id IN (SELECT person_id ...)); \
         comparing it with values, computing with it or aggregating it otherwise singles patients out"
        ),
    )
}

fn of(plan: &LogicalPlan) -> Result<Identifiers<'_>> {
    Ok(Identifiers {
        schema: plan.schema(),
        lineage: lineage(plan)?,
        scope: Scope::One(plan),
    })
}

/// Check the identifier's uses in one plan node's own expressions.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    let none_misused = |ids: &Identifiers<'_>, exprs: &[Expr], position: &str| match exprs
        .iter()
        .any(|e| ids.misused_in(e))
    {
        true => Err(refuse(position)),
        false => Ok(()),
    };
    match node {
        LogicalPlan::Projection(p) => {
            let ids = of(&p.input)?;
            let computed: Vec<Expr> = p.expr.iter().filter(|e| !ids.is_bare(e)).cloned().collect();
            none_misused(&ids, &computed, "a computed column")
        }
        LogicalPlan::Filter(f) => none_misused(
            &of(&f.input)?,
            std::slice::from_ref(&f.predicate),
            "a filter",
        ),
        LogicalPlan::Sort(s) => {
            let ids = of(&s.input)?;
            let keys: Vec<Expr> = s
                .expr
                .iter()
                .map(|k| k.expr.clone())
                .filter(|e| !ids.is_bare(e))
                .collect();
            none_misused(&ids, &keys, "a sort key")
        }
        LogicalPlan::Aggregate(a) => check_aggregate(a),
        LogicalPlan::Window(w) => {
            let ids = of(&w.input)?;
            for e in &w.window_expr {
                check_window(&ids, e)?;
            }
            Ok(())
        }
        LogicalPlan::Join(j) => {
            let ids = Identifiers {
                schema: j.schema.as_ref(),
                lineage: lineage(node)?,
                scope: Scope::Join(j),
            };
            let on: Vec<Expr> =
                j.on.iter()
                    .filter(|(l, r)| !(ids.is_bare(l) && ids.is_bare(r)))
                    .flat_map(|(l, r)| [l.clone(), r.clone()])
                    .collect();
            none_misused(
                &ids,
                &on,
                "a join condition other than person_id = person_id",
            )?;
            none_misused(
                &ids,
                j.filter.as_slice(),
                "a join condition other than person_id = person_id",
            )
        }
        LogicalPlan::Distinct(Distinct::On(d)) => {
            let ids = of(&d.input)?;
            let exprs: Vec<Expr> = d
                .on_expr
                .iter()
                .chain(&d.select_expr)
                .filter(|e| !ids.is_bare(e))
                .cloned()
                .collect();
            none_misused(&ids, &exprs, "DISTINCT ON")
        }
        _ => Ok(()),
    }
}

/// Check an aggregate's grouping keys and aggregates (the release boundary
/// itself, or a per-patient sub-aggregate below it).
pub fn check_aggregate(a: &Aggregate) -> Result<()> {
    let ids = of(&a.input)?;
    let groups: Vec<&Expr> = a.group_expr.iter().filter(|e| !ids.is_bare(e)).collect();
    if groups.iter().any(|e| ids.misused_in(e)) {
        return Err(refuse("a grouping expression"));
    }
    if a.aggr_expr.iter().any(|e| ids.misused_in(e)) {
        return Err(refuse("an aggregate other than count"));
    }
    Ok(())
}

fn check_window(ids: &Identifiers<'_>, e: &Expr) -> Result<()> {
    match e {
        Expr::Alias(a) => check_window(ids, &a.expr),
        Expr::WindowFunction(w) => {
            let keys = w
                .params
                .partition_by
                .iter()
                .chain(w.params.order_by.iter().map(|s| &s.expr))
                .filter(|k| !ids.is_bare(k))
                .cloned();
            let rest: Vec<Expr> = w.params.args.iter().cloned().chain(keys).collect();
            if rest.iter().any(|x| ids.misused_in(x)) {
                return Err(refuse("a window function"));
            }
            Ok(())
        }
        other => match ids.misused_in(other) {
            true => Err(refuse("a window function")),
            false => Ok(()),
        },
    }
}
