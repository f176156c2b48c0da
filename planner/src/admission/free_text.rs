//! Free-text and source-value columns (attack A29 of the privacy anchors).
//!
//! OMOP's `*_source_value` columns hold what the hospital's system wrote
//! (local codes, sometimes names or free text), and `value_as_string` any
//! text result. A filter such as `person_source_value LIKE '%Smith%'`
//! singles a patient out by something other than a clinical attribute, and
//! grouping on them releases one cell per local spelling. Like DataSHIELD's
//! `nfilter.string` and pg_diffix's `not_filterable`, such columns may pass
//! through a query untouched but are never filtered, grouped, joined,
//! aggregated or computed with.
//!
//! Columns are recognised by the values they carry, not by the name they
//! have where they are used ([`crate::analysis::carried`]): a rename, a
//! `UNION ALL` whose first branch names the column, a CTE or an outer join
//! does not hide one from the checks above it.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::analysis::carried::carried_column;
use crate::analysis::exprs::strip_alias;
use crate::analysis::scope::Scope;
use crate::error::{PlanError, Result};

/// Whether `name` is a free-text or source-value column.
pub fn is_free_text(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("_source_value")
        || matches!(
            n.as_str(),
            "value_as_string" | "stop_reason" | "sig" | "lot_number"
        )
}

/// The first free-text column whose values `e` uses, followed through
/// `scope` (`None` for a node without inputs: names only).
fn first_free_text(e: &Expr, scope: Option<Scope<'_>>) -> Option<String> {
    let mut found = None;
    let _ = e.apply(|x| {
        if let Expr::Column(c) = x {
            let carried = match scope {
                Some(scope) => carried_column(c, scope),
                None => [c.name.to_ascii_lowercase()].into(),
            };
            if let Some(name) = carried.into_iter().find(|n| is_free_text(n)) {
                found = Some(name);
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn refused(column: &str) -> PlanError {
    PlanError::policy(
        crate::rules::Rule::FreeText,
        format!(
            "{column} is a free-text or source-value column: it may not be filtered, grouped, joined, aggregated or computed with (it can single a patient out); use the concept id columns instead"
        ),
    )
}

/// Refuse any use of a free-text column in `exprs`, evaluated over `input`.
pub fn check_exprs<'a>(
    exprs: impl IntoIterator<Item = &'a Expr>,
    input: &LogicalPlan,
) -> Result<()> {
    for e in exprs {
        if let Some(c) = first_free_text(e, Some(Scope::One(input))) {
            return Err(refused(&c));
        }
    }
    Ok(())
}

/// Check one plan node: projections may pass a free-text column through,
/// under any name (what carries it is followed above); every other node
/// may not use one at all.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    let scope = Scope::of_node(node);
    match node {
        LogicalPlan::Projection(p) => {
            for e in &p.expr {
                let pass_through = matches!(strip_alias(e), Expr::Column(_));
                if !pass_through && let Some(c) = first_free_text(e, scope) {
                    return Err(refused(&c));
                }
            }
            Ok(())
        }
        LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_) => Ok(()),
        other => {
            for e in other.expressions() {
                if let Some(c) = first_free_text(&e, scope) {
                    return Err(refused(&c));
                }
            }
            Ok(())
        }
    }
}
