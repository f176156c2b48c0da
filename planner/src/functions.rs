//! The scalar functions accepted below the release boundary.
//!
//! Below the boundary, expressions run over patient rows at each site. The
//! planner accepts only functions on this list, so that a function added to
//! DataFusion later (or registered by someone) never reaches patient data
//! without a decision: an allow-list fails closed. The list covers what
//! cohort definitions use: dates and times, arithmetic, text clean-up and
//! matching, and NULL handling. Anything else is refused with its name.
//!
//! Expressions below the boundary must also be *total*: one that fails for
//! some rows only (a division by zero, `CAST('x' AS INT)`, parsing a date
//! out of text) turns the query's success or failure into an answer about
//! whether a patient with those values exists (A15, the error-message
//! oracle). Divisions need a non-zero constant or `NULLIF(divisor, 0)`;
//! casts that can fail (from text, float to integer, to a narrower
//! integer) must be `TRY_CAST`; functions that parse text are not listed.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator};

use crate::error::{PlanError, Result};

const ALLOWED: &[&str] = &[
    // dates and times
    "date_part",
    "datepart",
    "date_trunc",
    "datetrunc",
    "date_bin",
    "to_char",
    "date_format",
    "current_date",
    "today",
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

/// Refuse scalar functions that are not on the allow-list, and partial
/// operations, in `node`'s own expressions.
pub fn check_node(node: &LogicalPlan) -> Result<()> {
    let inputs = node.inputs();
    for e in node.expressions() {
        check_expr(&e)?;
        for input in &inputs {
            check_casts(&e, input.schema())?;
        }
    }
    Ok(())
}

/// Refuse scalar functions that are not on the allow-list, and divisions
/// that can fail, in `expr`.
pub fn check_expr(expr: &Expr) -> Result<()> {
    let mut refused = None;
    expr.apply(|e| {
        match e {
            Expr::ScalarFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                if !ALLOWED.contains(&name.as_str()) {
                    refused = Some(function_refused(&name));
                }
            }
            Expr::BinaryExpr(b)
                if matches!(b.op, Operator::Divide | Operator::Modulo)
                    && !safe_divisor(&b.right) =>
            {
                refused = Some(PlanError::unsupported(
                    "a division by an expression over patient data",
                    "A division by zero would fail for some patients only, and the failure would tell that they exist. Divide by NULLIF(divisor, 0) or by a non-zero constant",
                ));
            }
            _ => {}
        }
        Ok(if refused.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    refused.map_or(Ok(()), Err)
}

/// Refuse casts that can fail on some values, typed against `schema`.
pub fn check_casts(expr: &Expr, schema: &DFSchema) -> Result<()> {
    let mut refused = None;
    expr.apply(|e| {
        // A cast of a constant (`DATE '2016-01-01'`) fails for everyone or
        // for no one: it tells nothing about patients.
        if let Expr::Cast(c) = e
            && !c.expr.column_refs().is_empty()
            && let Ok(from) = c.expr.get_type(schema)
            && !total_cast(&from, c.field.data_type())
        {
            refused = Some(PlanError::unsupported(
                format!("CAST from {from} to {} over patient data", c.field.data_type()),
                "It fails for some values only, and the failure would tell that they exist. Use TRY_CAST, which gives NULL instead",
            ));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    refused.map_or(Ok(()), Err)
}

fn function_refused(name: &str) -> PlanError {
    PlanError::unsupported(
        format!("the function {name} over patient data"),
        "It is not on the allow-list of functions that may run over patients' rows (dates, arithmetic, text clean-up and matching, NULL handling); compute it on the released aggregates instead",
    )
}

/// A non-zero constant, or `NULLIF(x, 0)`, possibly cast.
fn safe_divisor(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => !v.is_null() && !is_zero(v),
        Expr::Cast(c) => safe_divisor(&c.expr),
        Expr::TryCast(c) => safe_divisor(&c.expr),
        Expr::ScalarFunction(f) if f.func.name().eq_ignore_ascii_case("nullif") => f
            .args
            .get(1)
            .is_some_and(|z| matches!(z, Expr::Literal(v, _) if is_zero(v))),
        _ => false,
    }
}

fn is_zero(v: &ScalarValue) -> bool {
    ScalarValue::new_zero(&v.data_type()).is_ok_and(|zero| &zero == v)
}

/// Whether every value of `from` converts to `to` without error (also
/// used by site backends to turn a `TRY_CAST` that cannot fail into `CAST`).
pub fn total_cast(from: &DataType, to: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    if from == to || text(to) || from.is_null() {
        return true;
    }
    if text(from) {
        return false;
    }
    if to.is_integer() {
        if from.is_floating() || matches!(from, DataType::Decimal128(..) | DataType::Decimal256(..))
        {
            return false;
        }
        if from.is_integer() {
            return to.primitive_width() >= from.primitive_width()
                && (from.is_signed_integer() == to.is_signed_integer()
                    || to.is_signed_integer() && to.primitive_width() > from.primitive_width());
        }
    }
    true
}
