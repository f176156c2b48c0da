//! Site SQL: a site subplan unparsed into the one statement a site
//! receives, reads back and admits.
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

use datafusion::common::Column;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::expr::InSubquery;
use datafusion::logical_expr::{
    Distinct, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Subquery,
};
use datafusion::sql::unparser::{Unparser, dialect::DefaultDialect};

use crate::error::{PlanError, Result};
use crate::exprs::strip_alias;

/// Unparse a site subplan into its canonical SQL text.
pub fn to_site_sql(plan: &LogicalPlan) -> Result<String> {
    let plan = semi_joins_as_filters(plan.clone())?;
    let stmt = Unparser::new(&DefaultDialect {})
        .with_pretty(true)
        .plan_to_sql(&plan)
        .map_err(|e| {
            PlanError::unsupported("a subplan the SQL unparser cannot express", e.to_string())
        })?;
    Ok(stmt.to_string())
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
