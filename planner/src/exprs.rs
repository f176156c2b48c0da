//! Small expression and type helpers that every rule of the planner needs
//! the same way: looking through aliases, recognising a zero literal, and
//! telling a date or timestamp from other types.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;

/// `e` without its outer aliases.
pub fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

/// Whether `v` is a non-NULL zero of its type.
pub fn is_zero(v: &ScalarValue) -> bool {
    !v.is_null() && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| &z == v)
}

/// Dates and timestamps (not times of day).
pub fn is_date_or_timestamp(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}
