//! Site SQL: a site subplan unparsed into the one statement a site
//! receives, reads back and admits.
//!
//! Before unparsing, what admission accepted on a declared column bound is
//! made total at every site ([`total_at_every_site`]), and semi and anti
//! joins are written as the filters they are.
//!
//! DataFusion's unparser writes a semi or anti join (how `INTERSECT`,
//! `EXCEPT`, `IN` and `EXISTS` are planned) as a correlated `EXISTS` whose
//! outer reference names a table the derived table around it hides, and
//! whose inner derived table has no alias: SQL no engine reads back. So
//! before unparsing, each such join on one key becomes the filter it is,
//! `key [NOT] IN (SELECT other_key FROM …)`, which unparses cleanly and
//! which a site plans back into the same semi or anti join. The admission
//! rules have already required the key to be `person_id` on both sides
//! (a join of patient data on anything else is refused), and `person_id`
//! is never NULL, so `NOT IN` means what the anti join means.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{InSubquery, TryCast};
use datafusion::logical_expr::{
    BinaryExpr, Distinct, Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder, Operator,
    Subquery, lit, when,
};
use datafusion::sql::unparser::{Unparser, dialect::DefaultDialect};

use crate::admission::functions::total_cast;
use crate::admission::ranges::{Range, divisor_proven, range_of};
use crate::analysis::exprs::{literal, strip_alias};
use crate::error::{PlanError, Result};

/// Unparse a site subplan into its canonical SQL text.
pub fn to_site_sql(plan: &LogicalPlan) -> Result<String> {
    let plan = semi_joins_as_filters(plan.clone())?;
    let plan = total_at_every_site(plan)?;
    let stmt = Unparser::new(&DefaultDialect {})
        .with_pretty(true)
        .plan_to_sql(&plan)
        .map_err(|e| {
            PlanError::unsupported(
                crate::rules::Rule::ReadableSubplans,
                "a subplan the SQL unparser cannot express",
                e.to_string(),
            )
        })?;
    Ok(stmt.to_string())
}

/// `plan` with what admission accepted on a declared column bound made
/// total whatever a site's data holds (`crate::admission::ranges`): a cast
/// that is not total for every value of its type becomes `TRY_CAST`, and
/// an integer divisor proven non-zero by its declared range is guarded by
/// it (`CASE WHEN y BETWEEN lo AND hi THEN y END`). Within the declared
/// ranges nothing changes; outside them the value is NULL, not an error.
fn total_at_every_site(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let mut schema = DFSchema::empty();
        for input in node.inputs() {
            schema.merge(input.schema());
        }
        node.map_expressions(|e| {
            e.transform_up(|x| {
                if x.column_refs().is_empty() {
                    return Ok(Transformed::no(x));
                }
                Ok(match x {
                    Expr::Cast(c) => {
                        let from = c.expr.get_type(&schema).unwrap_or(DataType::Null);
                        if total_cast(&from, c.field.data_type()) {
                            Transformed::no(Expr::Cast(c))
                        } else {
                            Transformed::yes(Expr::TryCast(TryCast::new(
                                c.expr,
                                c.field.data_type().clone(),
                            )))
                        }
                    }
                    Expr::BinaryExpr(b)
                        if matches!(b.op, Operator::Divide | Operator::Modulo)
                            && literal(&b.right).is_none()
                            && divisor_proven(&b, &schema) =>
                    {
                        match range_of(&b.right, &schema) {
                            Some(r) => Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                                b.left,
                                b.op,
                                Box::new(guarded(*b.right, r)),
                            ))),
                            None => Transformed::no(Expr::BinaryExpr(b)),
                        }
                    }
                    other => Transformed::no(other),
                })
            })
        })
    });
    rewritten
        .map(|t| t.data)
        .map_err(|e| PlanError::Internal(format!("making the site plan total: {e}")))
}

/// `y` where it lies within `r`, NULL elsewhere.
fn guarded(y: Expr, r: Range) -> Expr {
    let within = y.clone().between(lit(r.lo), lit(r.hi));
    when(within, y)
        .end()
        .unwrap_or_else(|_| lit(ScalarValue::Null))
}

/// `plan` (and its subqueries) with every semi or anti join on one key,
/// without a further condition, written as a filter with an `IN` subquery.
fn semi_joins_as_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Join(join) = &node else {
            return Ok(Transformed::no(node));
        };
        let negated = match join.join_type {
            JoinType::LeftSemi => false,
            JoinType::LeftAnti => true,
            _ => return Ok(Transformed::no(node)),
        };
        let ([(Expr::Column(outer), inner)], None) = (join.on.as_slice(), &join.filter) else {
            return Ok(Transformed::no(node));
        };
        // The right side as the subquery of its key alone (it often is
        // that already: a second projection would be a second derived
        // table, without an alias, in the SQL).
        let right = join.right.as_ref();
        let alone = matches!(inner, Expr::Column(c) if right.schema().columns() == [c.clone()]);
        let keys = if alone {
            Arc::clone(&join.right)
        } else {
            Arc::new(
                LogicalPlanBuilder::from(right.clone())
                    .project([inner.clone()])?
                    .build()?,
            )
        };
        let membership = move |column: Column| {
            Expr::InSubquery(InSubquery::new(
                Box::new(Expr::Column(column)),
                Subquery {
                    subquery: Arc::clone(&keys),
                    outer_ref_columns: vec![],
                    spans: Default::default(),
                },
                negated,
            ))
        };
        let filtered = filter_below(join.left.as_ref().clone(), outer.clone(), &membership)?;
        Ok(Transformed::yes(filtered))
    });
    rewritten
        .map(|t| t.data)
        .map_err(|e| PlanError::Internal(format!("writing a semi join as a filter: {e}")))
}

/// `plan` filtered by `condition(key)`, the filter placed as deep as the
/// key passes through unchanged (`DISTINCT`, projections that keep or
/// rename the column): a filter on top of either would be unparsed into a
/// derived table whose columns the condition cannot name. A semi or anti
/// join only drops rows, so it commutes with both.
fn filter_below(
    plan: LogicalPlan,
    key: Column,
    condition: &dyn Fn(Column) -> Expr,
) -> datafusion::error::Result<LogicalPlan> {
    match plan {
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let inner = filter_below(input.as_ref().clone(), key, condition)?;
            Ok(LogicalPlan::Distinct(Distinct::All(Arc::new(inner))))
        }
        LogicalPlan::Projection(p) => {
            let source = p.schema.columns().iter().zip(&p.expr).find_map(|(out, e)| {
                (*out == key).then(|| match strip_alias(e) {
                    Expr::Column(c) => Some(c.clone()),
                    _ => None,
                })?
            });
            match source {
                Some(column) => {
                    let inner = filter_below(p.input.as_ref().clone(), column, condition)?;
                    LogicalPlanBuilder::from(inner).project(p.expr)?.build()
                }
                None => LogicalPlanBuilder::from(LogicalPlan::Projection(p))
                    .filter(condition(key))?
                    .build(),
            }
        }
        other => LogicalPlanBuilder::from(other)
            .filter(condition(key))?
            .build(),
    }
}
