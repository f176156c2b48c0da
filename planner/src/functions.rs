//! The scalar functions accepted below the release boundary.
//!
//! Below the boundary, expressions run over patient rows at each site. The
//! planner accepts only functions on this list, so that a function added to
//! DataFusion later (or registered by someone) never reaches patient data
//! without a decision: an allow-list fails closed. The list covers what
//! cohort definitions use: dates and times, arithmetic, text clean-up and
//! matching, and NULL handling. Anything else is refused with its name.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::error::{PlanError, Result};

const ALLOWED: &[&str] = &[
    // dates and times
    "date_part",
    "datepart",
    "date_trunc",
    "datetrunc",
    "date_bin",
    "to_date",
    "to_timestamp",
    "to_timestamp_seconds",
    "to_timestamp_millis",
    "to_timestamp_micros",
    "to_timestamp_nanos",
    "to_char",
    "date_format",
    "make_date",
    "current_date",
    "today",
    "to_unixtime",
    "from_unixtime",
    // arithmetic
    "abs",
    "ceil",
    "floor",
    "round",
    "trunc",
    "sqrt",
    "cbrt",
    "power",
    "pow",
    "exp",
    "ln",
    "log",
    "log2",
    "log10",
    "signum",
    "greatest",
    "least",
    "isnan",
    "iszero",
    "nanvl",
    "pi",
    // text
    "lower",
    "upper",
    "btrim",
    "trim",
    "ltrim",
    "rtrim",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "left",
    "right",
    "lpad",
    "rpad",
    "concat",
    "concat_ws",
    "replace",
    "split_part",
    "starts_with",
    "ends_with",
    "strpos",
    "instr",
    "position",
    "initcap",
    "contains",
    "regexp_like",
    "regexp_replace",
    "regexp_count",
    // NULL handling and struct access the SQL planner itself produces
    "coalesce",
    "nullif",
    "nvl",
    "nvl2",
    "ifnull",
    "get_field",
];

/// Refuse scalar functions that are not on the allow-list in `node`'s own
/// expressions.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    for e in node.expressions() {
        check_expr(&e)?;
    }
    Ok(())
}

/// Refuse scalar functions that are not on the allow-list in `expr`.
pub fn check_expr(expr: &Expr) -> Result<()> {
    let mut refused = None;
    expr.apply(|e| {
        if let Expr::ScalarFunction(f) = e {
            let name = f.func.name().to_ascii_lowercase();
            if !ALLOWED.contains(&name.as_str()) {
                refused = Some(name);
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        None => Ok(()),
        Some(name) => Err(PlanError::unsupported(
            format!("the function {name} over patient data"),
            "It is not on the allow-list of functions that may run over patients' rows (dates, arithmetic, text clean-up and matching, NULL handling); compute it on the released aggregates instead",
        )),
    }
}
