//! Value ranges of expressions over patient data, derived from the
//! catalog's declared column bounds (`ihdsi_catalog::bounds`) and the
//! columns' types, through arithmetic, `floor`/`ceil`/`round`/`trunc`/
//! `abs`, `CASE`, `coalesce`, casts and `date_part`.
//!
//! A cast or an integer division that can fail for some values only is an
//! error oracle (A15), so admission refuses it, unless its argument's range
//! proves it cannot fail: `CAST(floor(year_of_birth / 10.0) * 10 AS INT)`
//! lies within [1900, 2030] and fits any integer type;
//! `days_supply / month_of_birth` divides by [1, 12], never by 0 or −1.
//!
//! A declared bound is the catalog's claim about the data, not a fact a
//! site's files must obey. So what admission accepts on a declared bound is
//! made total at the sites whatever their data: such a cast is sent as
//! `TRY_CAST` and such a divisor as `CASE WHEN y BETWEEN lo AND hi THEN y
//! END` (`crate::split::unparse`). For data within its declared range the answer
//! is the same; a value outside it gives NULL, never an error.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

use crate::analysis::exprs::strip_alias;

pub mod plan;

/// A closed interval of values; every value of the expression lies in it
/// (or is NULL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

impl Range {
    pub(crate) fn new(lo: f64, hi: f64) -> Option<Self> {
        (lo.is_finite() && hi.is_finite() && lo <= hi).then_some(Self { lo, hi })
    }

    pub(crate) fn union(self, other: Self) -> Self {
        Self {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }

    /// Whether 0 (and, `signed`, −1) lie outside.
    fn excludes_zero(self, signed: bool) -> bool {
        let outside = |v: f64| v < self.lo || v > self.hi;
        outside(0.0) && (!signed || outside(-1.0))
    }

    /// Whether every value fits integer type `t` (a float is truncated
    /// toward zero, so up to one unit beyond the bounds still fits).
    pub fn fits(self, t: &DataType) -> bool {
        // Bounds are computed in f64, rounded to nearest: near 2^63 a
        // step is 2048, so a relative margin keeps the test outward.
        type_range(t).is_some_and(|r| {
            let margin = r.lo.abs().max(r.hi.abs()) * 1e-12;
            self.lo > r.lo + margin - 1.0 && self.hi < r.hi - margin + 1.0
        })
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Huge bounds (a float column's) in exponent form, not 300 digits.
        let number = |v: f64| {
            if v.abs() >= 1e15 {
                format!("{v:e}")
            } else {
                v.to_string()
            }
        };
        write!(f, "[{}, {}]", number(self.lo), number(self.hi))
    }
}

/// The values an integer type holds.
pub(crate) fn type_range(t: &DataType) -> Option<Range> {
    use DataType as T;
    let (lo, hi) = match t {
        T::Int8 => (i8::MIN as f64, i8::MAX as f64),
        T::Int16 => (i16::MIN as f64, i16::MAX as f64),
        T::Int32 => (i32::MIN as f64, i32::MAX as f64),
        T::Int64 => (i64::MIN as f64, i64::MAX as f64),
        T::UInt8 => (0.0, u8::MAX as f64),
        T::UInt16 => (0.0, u16::MAX as f64),
        T::UInt32 => (0.0, u32::MAX as f64),
        T::UInt64 => (0.0, u64::MAX as f64),
        T::Boolean => (0.0, 1.0),
        _ => return None,
    };
    Some(Range { lo, hi })
}

/// How an expression's columns get their ranges: by the name the column
/// has where it is used ([`range_of`], enough where the sites make the
/// result total whatever the data), or by following it down the plan to
/// what it reads ([`plan::range_in`]).
pub(crate) struct Columns<'a> {
    pub schema: &'a DFSchema,
    pub column: &'a dyn Fn(&Expr, &datafusion::common::Column) -> Option<Range>,
}

/// The range of `e`'s values, where it can be derived, with column ranges
/// from the declared bounds of the column's name.
pub fn range_of(e: &Expr, schema: &DFSchema) -> Option<Range> {
    let by_name = |e: &Expr, c: &datafusion::common::Column| {
        ihdsi_catalog::bounds::for_column(&c.name)
            .and_then(|b| Range::new(b.lo, b.hi))
            .or_else(|| type_range(&e.get_type(schema).ok()?))
    };
    range_with(
        e,
        &Columns {
            schema,
            column: &by_name,
        },
    )
}

/// The range of `e`'s values, with column ranges from `cols`.
pub(crate) fn range_with(e: &Expr, cols: &Columns<'_>) -> Option<Range> {
    match strip_alias(e) {
        Expr::Column(c) => (cols.column)(e, c),
        Expr::Literal(v, _) => literal(v),
        Expr::Cast(c) => cast(range_with(&c.expr, cols)?, c.field.data_type()),
        Expr::TryCast(c) => cast(range_with(&c.expr, cols)?, c.field.data_type()),
        Expr::Negative(x) => range_with(x, cols).and_then(|r| Range::new(-r.hi, -r.lo)),
        Expr::BinaryExpr(b) => binary(b, cols),
        Expr::Case(case) => {
            let branches = case
                .when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref());
            branches
                .map(|x| range_with(x, cols))
                .reduce(|a, b| Some(a?.union(b?)))
                .flatten()
        }
        Expr::ScalarFunction(f) => function(f.func.name(), &f.args, cols),
        _ => None,
    }
}

/// A cast keeps the range, except to a narrow float: beyond its largest
/// value the result is infinite, so there is no finite range.
fn cast(r: Range, to: &DataType) -> Option<Range> {
    let limit = match to {
        DataType::Float16 => 65_504.0,
        DataType::Float32 => f64::from(f32::MAX),
        _ => return Some(r),
    };
    (r.lo >= -limit && r.hi <= limit).then_some(r)
}

fn literal(v: &ScalarValue) -> Option<Range> {
    if v.is_null() {
        return None;
    }
    let x = match v.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(x)) => x,
        _ => return None,
    };
    Range::new(x, x)
}

fn binary(b: &BinaryExpr, cols: &Columns<'_>) -> Option<Range> {
    let (l, r) = (range_with(&b.left, cols)?, range_with(&b.right, cols)?);
    let corners = |f: fn(f64, f64) -> f64| {
        let v = [f(l.lo, r.lo), f(l.lo, r.hi), f(l.hi, r.lo), f(l.hi, r.hi)];
        Range::new(
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    match b.op {
        Operator::Plus => Range::new(l.lo + r.lo, l.hi + r.hi),
        Operator::Minus => Range::new(l.lo - r.hi, l.hi - r.lo),
        Operator::Multiply => corners(|a, b| a * b),
        // A divisor that cannot be 0 keeps the quotient within the
        // corners (an integer quotient truncates toward zero, inside them).
        Operator::Divide if r.excludes_zero(false) && (r.lo > 0.0 || r.hi < 0.0) => {
            corners(|a, b| a / b)
        }
        Operator::Modulo if r.excludes_zero(false) => {
            let m = r.lo.abs().max(r.hi.abs());
            Range::new(
                if l.lo < 0.0 { -m } else { 0.0 },
                if l.hi > 0.0 { m } else { 0.0 },
            )
        }
        _ => None,
    }
}

fn function(name: &str, args: &[Expr], cols: &Columns<'_>) -> Option<Range> {
    let arg = |i: usize| args.get(i).and_then(|a| range_with(a, cols));
    match name.to_ascii_lowercase().as_str() {
        "floor" => arg(0).and_then(|r| Range::new(r.lo.floor(), r.hi.floor())),
        "ceil" => arg(0).and_then(|r| Range::new(r.lo.ceil(), r.hi.ceil())),
        "trunc" | "round" => to_digits(arg(0)?, args.get(1)),
        "abs" => arg(0).and_then(|r| {
            let m = r.lo.abs().max(r.hi.abs());
            Range::new(
                if r.lo <= 0.0 && r.hi >= 0.0 {
                    0.0
                } else {
                    r.lo.abs().min(r.hi.abs())
                },
                m,
            )
        }),
        "coalesce" => args
            .iter()
            .map(|a| range_with(a, cols))
            .reduce(|a, b| Some(a?.union(b?)))
            .flatten(),
        "date_part" | "datepart" | "extract" => date_part(args, cols),
        _ => None,
    }
}

/// `round(x, d)` or `trunc(x, d)`: within a unit of `x` (or of the
/// power of ten it rounds to), when `d` is a literal the computation
/// (`x · 10^d`) cannot overflow; no range otherwise.
fn to_digits(r: Range, digits: Option<&Expr>) -> Option<Range> {
    let d = match digits {
        None => 0,
        Some(e) => crate::analysis::exprs::literal_i64(e).filter(|d| d.abs() <= 15)?,
    };
    let m = r.lo.abs().max(r.hi.abs());
    let unit = 10f64.powi(i32::try_from(d).ok()?.min(0).abs());
    if m * 10f64.powi(i32::try_from(d.max(0)).ok()?) >= 1e300 {
        return None;
    }
    Range::new((r.lo - unit).floor(), (r.hi + unit).ceil())
}

/// `date_part(unit, d)` of a date or timestamp (of an interval it is a
/// total count, with no calendar range): the unit's own range; a year
/// within the date's range where it has one, else what a 32-bit day
/// count can hold.
fn date_part(args: &[Expr], cols: &Columns<'_>) -> Option<Range> {
    let unit = match args.first().map(strip_alias) {
        Some(Expr::Literal(ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)), _)) => {
            u.to_ascii_lowercase()
        }
        _ => return None,
    };
    let arg = args.get(1)?;
    let t = arg.get_type(cols.schema).ok()?;
    if !matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    ) {
        return None;
    }
    let (lo, hi) = match unit.as_str() {
        "year" | "isoyear" => match (t, range_with(arg, cols)) {
            // A Date32 range is in days since 1970.
            (DataType::Date32, Some(days)) => (
                (1970.0 + days.lo / 365.25).floor() - 1.0,
                (1970.0 + days.hi / 365.25).ceil() + 1.0,
            ),
            _ => (-5_877_642.0, 5_881_581.0),
        },
        "quarter" => (1.0, 4.0),
        "month" => (1.0, 12.0),
        "week" => (1.0, 53.0),
        "day" => (1.0, 31.0),
        "dow" => (0.0, 6.0),
        "doy" => (1.0, 366.0),
        "hour" => (0.0, 23.0),
        "minute" => (0.0, 59.0),
        _ => return None,
    };
    Range::new(lo, hi)
}

/// Whether integer division or modulo `b` cannot fail because the range of
/// its divisor excludes 0 (and −1 for a signed dividend).
pub fn divisor_proven(b: &BinaryExpr, schema: &DFSchema) -> bool {
    let signed = b.left.get_type(schema).is_ok_and(|t| t.is_signed_integer());
    range_of(&b.right, schema).is_some_and(|r| r.excludes_zero(signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn first_expr(sql: &str) -> (Expr, DFSchema) {
        let ctx = SessionContext::new();
        crate::register_virtual_schema(&ctx).expect("schema");
        let plan = ctx.state().create_logical_plan(sql).await.expect("plan");
        let datafusion::logical_expr::LogicalPlan::Projection(p) = plan else {
            panic!("a projection");
        };
        (p.expr[0].clone(), p.input.schema().as_ref().clone())
    }

    #[tokio::test]
    async fn ranges_follow_arithmetic_floor_case_and_date_part() {
        let cases = [
            (
                "SELECT floor(year_of_birth / 10.0) * 10 FROM person",
                Some((1900.0, 2030.0)),
            ),
            (
                "SELECT year_of_birth - 1900 FROM person",
                Some((0.0, 130.0)),
            ),
            (
                "SELECT CASE WHEN gender_concept_id = 8507 THEN month_of_birth ELSE 0 END FROM person",
                Some((0.0, 12.0)),
            ),
            (
                "SELECT date_part('month', birth_datetime) * 2 FROM person",
                Some((2.0, 24.0)),
            ),
            (
                "SELECT abs(year_of_birth - 2000) FROM person",
                Some((0.0, 100.0)),
            ),
            (
                "SELECT value_as_number * value_as_number FROM measurement",
                Some((0.0, 1_000_000.0)),
            ),
            ("SELECT person_source_value FROM person", None),
            (
                "SELECT year_of_birth / (month_of_birth - 6) FROM person",
                None,
            ),
        ];
        for (sql, want) in cases {
            let (e, schema) = first_expr(sql).await;
            let got = range_of(&e, &schema).map(|r| (r.lo, r.hi));
            assert_eq!(got, want, "{sql}");
        }
    }
}
