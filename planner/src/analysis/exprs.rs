//! Small expression and type helpers that every rule of the planner needs
//! the same way: looking through aliases, recognising a zero literal,
//! telling a date or timestamp from other types, and the schema a node's
//! expressions are typed over.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan};

/// The schema `node`'s own expressions are typed over: its input's, both
/// inputs' for a join, its own for a scan.
pub fn input_schema(node: &LogicalPlan) -> DFSchema {
    let inputs = node.inputs();
    match inputs.as_slice() {
        [] => node.schema().as_ref().clone(),
        [one] => one.schema().as_ref().clone(),
        [l, r, ..] => l
            .schema()
            .join(r.schema())
            .unwrap_or_else(|_| node.schema().as_ref().clone()),
    }
}

/// The lower-case name and the arguments of an aggregate or window call.
pub fn call(e: &Expr) -> Option<(String, &[Expr])> {
    match strip_alias(e) {
        Expr::AggregateFunction(f) => Some((f.func.name().to_ascii_lowercase(), &f.params.args)),
        Expr::WindowFunction(w) => Some((w.fun.name().to_ascii_lowercase(), &w.params.args)),
        _ => None,
    }
}

/// A literal under any casts and aliases: a constant.
pub fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        Expr::Alias(a) => literal(&a.expr),
        _ => None,
    }
}

/// A constant as an `i64`, when it converts to one (floats truncate).
pub fn literal_i64(e: &Expr) -> Option<i64> {
    match literal(e)?.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(Some(v)) => Some(v),
        _ => None,
    }
}

/// A constant as an `f64`, when it converts to one.
pub fn literal_f64(e: &Expr) -> Option<f64> {
    match literal(e)?.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(v)) => Some(v),
        _ => None,
    }
}

/// A text constant.
pub fn literal_text(e: &Expr) -> Option<&str> {
    match literal(e)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.as_str()),
        _ => None,
    }
}

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

/// `e` as SQL, for a message to the analyst: `value_as_number * 100.0`,
/// not DataFusion's `measurement.value_as_number * Float64(100)`.
pub fn sql_text(e: &Expr) -> String {
    datafusion::sql::unparser::expr_to_sql(strip_alias(e))
        .map(|sql| sql.to_string())
        .unwrap_or_else(|_| e.to_string())
}

/// A type by its SQL name, for a message to the analyst (`DOUBLE`, not
/// Arrow's `Float64`).
pub fn sql_type(t: &DataType) -> String {
    use DataType as T;
    let name = match t {
        T::Null => "NULL",
        T::Boolean => "BOOLEAN",
        T::Int8 => "TINYINT",
        T::Int16 => "SMALLINT",
        T::Int32 => "INTEGER",
        T::Int64 => "BIGINT",
        T::UInt8 => "TINYINT UNSIGNED",
        T::UInt16 => "SMALLINT UNSIGNED",
        T::UInt32 => "INTEGER UNSIGNED",
        T::UInt64 => "BIGINT UNSIGNED",
        T::Float16 | T::Float32 => "REAL",
        T::Float64 => "DOUBLE",
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "VARCHAR",
        T::Date32 | T::Date64 => "DATE",
        T::Timestamp(..) => "TIMESTAMP",
        T::Time32(_) | T::Time64(_) => "TIME",
        T::Interval(_) => "INTERVAL",
        T::Decimal128(p, s) | T::Decimal256(p, s) => return format!("DECIMAL({p}, {s})"),
        other => return other.to_string(),
    };
    name.to_string()
}

/// The output name and source column of a plain (possibly aliased) column.
pub fn column_of(e: &Expr) -> Option<(&str, &datafusion::common::Column)> {
    match e {
        Expr::Alias(a) => match a.expr.as_ref() {
            Expr::Column(c) => Some((a.name.as_str(), c)),
            _ => None,
        },
        Expr::Column(c) => Some((c.name.as_str(), c)),
        _ => None,
    }
}
