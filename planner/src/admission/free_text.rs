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
//! Columns are recognised by name. A projection that renames one is
//! refused too, so that a rename cannot hide it from the checks above it.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

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

fn first_free_text(e: &Expr) -> Option<String> {
    let mut found = None;
    let _ = e.apply(|x| {
        if let Expr::Column(c) = x
            && is_free_text(&c.name)
        {
            found = Some(c.name.clone());
            return Ok(TreeNodeRecursion::Stop);
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

/// Refuse any use of a free-text column in `exprs`.
pub fn check_exprs<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Result<()> {
    for e in exprs {
        if let Some(c) = first_free_text(e) {
            return Err(refused(&c));
        }
    }
    Ok(())
}

/// Check one plan node: projections may pass a free-text column through
/// under its own name; every other node may not use one at all.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    match node {
        LogicalPlan::Projection(p) => {
            for (e, field) in p.expr.iter().zip(p.schema.fields()) {
                let pass_through = match e {
                    Expr::Column(c) => c.name == *field.name(),
                    _ => false,
                };
                if !pass_through && let Some(c) = first_free_text(e) {
                    return Err(refused(&c));
                }
            }
            Ok(())
        }
        LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_) => Ok(()),
        other => check_exprs(other.expressions().iter()),
    }
}
