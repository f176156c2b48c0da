//! The plan an expression is evaluated over, and where its columns come from.
//!
//! Every rule that follows a value to its source (the date rules'
//! provenance, the ranges of arithmetic) starts from an expression and the
//! node's input: one plan, or the two sides of a join. [`Scope::resolve`]
//! finds the input and output position a column reference names there, so
//! that the rule can follow it down the plan instead of trusting its name.

use std::borrow::Cow;

use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Join, LogicalPlan};

/// The plan (or the two sides of a join) an expression is evaluated over.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    One(&'a LogicalPlan),
    Join(&'a Join),
}

impl<'a> Scope<'a> {
    /// The scope of `node`'s expressions: its input, or both sides of a
    /// join (`None` for a node without inputs).
    pub fn of_node(node: &'a LogicalPlan) -> Option<Self> {
        match node {
            LogicalPlan::Join(j) => Some(Scope::Join(j)),
            other => other.inputs().first().map(|i| Scope::One(i)),
        }
    }

    /// The schema the expressions are typed against.
    pub fn schema(&self) -> Cow<'a, DFSchema> {
        match self {
            Scope::One(p) => Cow::Borrowed(p.schema().as_ref()),
            Scope::Join(j) => Cow::Owned(
                j.left
                    .schema()
                    .join(j.right.schema())
                    .unwrap_or_else(|_| j.schema.as_ref().clone()),
            ),
        }
    }

    /// The input plan and output position that column `c` reads.
    pub fn resolve(&self, c: &Column) -> Option<(&'a LogicalPlan, usize)> {
        let within = |p: &'a LogicalPlan| p.schema().index_of_column(c).ok().map(|i| (p, i));
        match self {
            Scope::One(p) => within(p),
            Scope::Join(j) => within(&j.left).or_else(|| within(&j.right)),
        }
    }
}
