//! `[limits]`: how big a statement may be before anything plans it.
//!
//! Planning walks expression trees, and so does DataFusion. A statement
//! whose trees are deeper than a thread's stack kills the process that
//! plans it (a chain of 2,000 `AND`s did), so the size of what may be
//! planned is bounded first, from the statement's tokens alone. The same
//! limits hold at the coordinator and at every site, which checks the SQL
//! it receives before planning it too.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

/// Bounds on one statement, checked before it is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// Bytes of SQL text.
    pub max_statement_bytes: usize,
    /// Binary operators (`AND`, `OR`, `+`, `-`, `*`, `/`, `%`, `||`): each
    /// adds a level to a chain's tree.
    pub max_chain_terms: usize,
    /// Depth of nested parentheses (subqueries, calls, grouping).
    pub max_nesting: usize,
    /// `JOIN`s.
    pub max_joins: usize,
    /// `UNION`, `INTERSECT` and `EXCEPT` branches.
    pub max_set_operations: usize,
    /// Milliseconds planning may take (parsing, admission, the split into
    /// releases) before the statement is refused.
    pub max_planning_ms: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_statement_bytes: 256 * 1024,
            max_chain_terms: 256,
            max_nesting: 32,
            max_joins: 16,
            max_set_operations: 32,
            max_planning_ms: 10_000,
        }
    }
}

impl QueryLimits {
    /// A site's defaults: the subplan a site receives carries more terms
    /// than the analyst wrote (a patient count per cell, the partials of
    /// each aggregate), so each bound is four times the coordinator's.
    pub fn for_site() -> Self {
        let analyst = Self::default();
        Self {
            max_statement_bytes: 4 * analyst.max_statement_bytes,
            max_chain_terms: 4 * analyst.max_chain_terms,
            max_nesting: 2 * analyst.max_nesting,
            max_joins: 4 * analyst.max_joins,
            max_set_operations: 4 * analyst.max_set_operations,
            max_planning_ms: analyst.max_planning_ms,
        }
    }

    /// The stack a thread that plans statements within these limits
    /// needs: planning walks expression trees recursively (ours and
    /// DataFusion's), a few kilobytes a level in a debug build, and a
    /// chain of n terms is n levels deep. Generous, since the memory is
    /// reserved, not used, until a walk goes that deep.
    pub fn planning_stack_bytes(&self) -> usize {
        let levels = self
            .max_chain_terms
            .saturating_add(self.max_nesting.saturating_mul(8));
        (16usize << 20).saturating_add(levels.saturating_mul(48 << 10))
    }

    /// Every limit is at least 1.
    pub fn validate(&self) -> Result<()> {
        let all = [
            ("max_statement_bytes", self.max_statement_bytes),
            ("max_chain_terms", self.max_chain_terms),
            ("max_nesting", self.max_nesting),
            ("max_joins", self.max_joins),
            ("max_set_operations", self.max_set_operations),
            (
                "max_planning_ms",
                usize::try_from(self.max_planning_ms).unwrap_or(usize::MAX),
            ),
        ];
        match all.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(CatalogError::ConfigInvalid(format!(
                "[limits] {name} must be at least 1"
            ))),
            None => Ok(()),
        }
    }
}
