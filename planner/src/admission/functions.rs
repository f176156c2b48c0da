//! The scalar functions and operators accepted below the release boundary,
//! and the arguments that make each one total.
//!
//! Below the boundary, expressions run over patient rows at each site. The
//! planner accepts only functions on this list, so that a function added to
//! DataFusion later (or registered by someone) never reaches patient data
//! without a decision: an allow-list fails closed.
//!
//! Every accepted call must also be **total**: unable to fail at run time
//! for any row. A call that fails for some values only (`1 / (year - 1950)`,
//! `CAST('x' AS INT)`, `sqrt` of a negative) turns the query's success into
//! an answer about whether a patient with those values exists (A15, the
//! error oracle). So does a call that fails for *every* row, such as
//! `split_part(s, ',', 0)`: DataFusion does not fold it into a planning
//! error, so it fails exactly when some row reaches it. Each function's
//! failure modes were read from the DataFusion 55 and arrow 59 sources; the
//! rules below are the argument domains that exclude all of them (see
//! [`check_call`]).
//!
//! The check runs on the plan *after* DataFusion's type coercion, so that
//! the casts the engine would insert on its own are checked too: comparing
//! a text column with a number casts the text (and fails on the first
//! non-numeric value), comparing a date with a timestamp casts the date to
//! nanoseconds (and fails after 2262).
//!
//! One failure remains that no argument excludes: `date_trunc` of a `DATE`
//! column computes in nanoseconds and fails for dates after 2262-04-11
//! (sentinels such as `9999-12-31`). Sites should load dates in range
//! (OMOP's own sentinel is `2099-12-31`); the failure is reported without
//! naming the site, and in dp mode answered like every other failure.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{Like, ScalarFunction};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;

use super::ranges;
use crate::analysis::exprs::{
    is_date_or_timestamp, literal, literal_f64, literal_i64, literal_text,
};
use crate::analysis::exprs::{is_zero, sql_type};
use crate::analysis::lineage::reads_patient_data;
use crate::error::{PlanError, Result};

/// Whether PostgreSQL, under the same name, evaluates a function without
/// failing for every argument of the types DataFusion gives it (a site
/// with a PostgreSQL backend runs only such calls in the database; the
/// rest run in DataFusion under the rules here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postgres {
    Total,
    MayFail,
}

/// The scalar functions accepted below the release boundary: the one
/// allow-list that admission and a PostgreSQL site's totality check
/// (`ihdsi_engine::site::postgres::total`) both read.
const ALLOWED: &[(&str, Postgres)] = &[
    // dates and times
    ("date_part", Postgres::MayFail),
    ("datepart", Postgres::MayFail),
    ("date_trunc", Postgres::MayFail),
    ("datetrunc", Postgres::MayFail),
    ("current_date", Postgres::MayFail),
    ("today", Postgres::MayFail),
    // arithmetic
    ("abs", Postgres::MayFail),
    ("ceil", Postgres::MayFail),
    ("floor", Postgres::MayFail),
    ("round", Postgres::MayFail),
    ("trunc", Postgres::MayFail),
    ("sqrt", Postgres::MayFail),
    ("cbrt", Postgres::MayFail),
    ("power", Postgres::MayFail),
    ("pow", Postgres::MayFail),
    ("exp", Postgres::MayFail),
    ("ln", Postgres::MayFail),
    ("log", Postgres::MayFail),
    ("log2", Postgres::MayFail),
    ("log10", Postgres::MayFail),
    ("signum", Postgres::MayFail),
    ("greatest", Postgres::Total),
    ("least", Postgres::Total),
    ("isnan", Postgres::MayFail),
    ("iszero", Postgres::MayFail),
    ("nanvl", Postgres::MayFail),
    ("pi", Postgres::Total),
    // text
    ("lower", Postgres::Total),
    ("upper", Postgres::Total),
    ("btrim", Postgres::Total),
    ("trim", Postgres::MayFail),
    ("ltrim", Postgres::Total),
    ("rtrim", Postgres::Total),
    ("length", Postgres::Total),
    ("char_length", Postgres::Total),
    ("character_length", Postgres::Total),
    ("octet_length", Postgres::Total),
    ("substr", Postgres::MayFail),
    ("substring", Postgres::MayFail),
    ("left", Postgres::MayFail),
    ("right", Postgres::MayFail),
    ("lpad", Postgres::MayFail),
    ("rpad", Postgres::MayFail),
    ("concat", Postgres::Total),
    ("concat_ws", Postgres::Total),
    ("replace", Postgres::MayFail),
    ("split_part", Postgres::MayFail),
    ("starts_with", Postgres::Total),
    ("ends_with", Postgres::MayFail),
    ("strpos", Postgres::MayFail),
    ("instr", Postgres::MayFail),
    ("position", Postgres::MayFail),
    ("initcap", Postgres::MayFail),
    ("contains", Postgres::MayFail),
    ("regexp_like", Postgres::MayFail),
    ("regexp_replace", Postgres::MayFail),
    ("regexp_count", Postgres::MayFail),
    // NULL handling and struct access the SQL planner itself produces
    ("coalesce", Postgres::Total),
    ("nullif", Postgres::Total),
    ("nvl", Postgres::MayFail),
    ("nvl2", Postgres::MayFail),
    ("ifnull", Postgres::MayFail),
    ("get_field", Postgres::MayFail),
];

/// Whether `name` is on the allow-list.
pub fn allowed(name: &str) -> bool {
    ALLOWED.iter().any(|(n, _)| *n == name)
}

/// Whether `name` is allowed and total in PostgreSQL under that name.
pub fn total_in_postgres(name: &str) -> bool {
    ALLOWED.contains(&(name, Postgres::Total))
}

/// The longest padding `lpad`/`rpad` may ask for: beyond it DataFusion
/// allocates per batch, and the allocation can fail with the row count.
pub const MAX_PAD: i64 = 16_384;

/// `date_part` fields every date and timestamp type supports.
const TEMPORAL_FIELDS: &[&str] = &[
    "year", "years", "y", "yr", "yrs", "quarter", "qtr", "month", "months", "mon", "mons", "week",
    "weeks", "w", "day", "days", "d", "hour", "hours", "h", "hr", "hrs", "minute", "minutes", "m",
    "min", "mins", "second", "seconds", "s", "sec", "secs", "doy", "dow", "isodow", "isoyear",
    "epoch",
];

/// `date_part` fields every interval and duration type supports.
const INTERVAL_FIELDS: &[&str] = &[
    "week", "weeks", "day", "days", "hour", "hours", "minute", "minutes", "second", "seconds",
    "epoch",
];

/// The units `date_trunc` knows (any other fails at run time).
const TRUNC_UNITS: &[&str] = &[
    "microsecond",
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
];

fn partial(what: impl Into<String>, why: impl Into<String>) -> PlanError {
    PlanError::Unsupported {
        what: what.into(),
        why: why.into(),
        rule: crate::rules::Rule::TotalFunctions,
    }
}

fn function_refused(name: &str) -> PlanError {
    partial(
        format!("the function {name} over patient data"),
        "It is not on the allow-list of functions that may run over patients' rows (dates, arithmetic, text clean-up and matching, NULL handling); compute it on the released aggregates instead",
    )
}

/// Check the boundary `plan` (an aggregation and everything below it):
/// every function on the allow-list, every call and operator total, every
/// cast (written or implied) unable to fail.
pub fn check_plan(plan: &LogicalPlan) -> Result<()> {
    let coerced = TypeCoercion::new()
        .analyze(plan.clone(), &ConfigOptions::default())
        .map_err(PlanError::from_datafusion)?;
    super::every_node(&coerced, |node| {
        if reads_patient_data(node) {
            check_node(node)
        } else {
            Ok(())
        }
    })
}

fn check_node(node: &LogicalPlan) -> Result<()> {
    let schema = crate::analysis::exprs::input_schema(node);
    node.expressions()
        .iter()
        .try_for_each(|e| check_expr(e, &schema))
}

/// Check one expression (after coercion) over `schema`.
pub fn check_expr(e: &Expr, schema: &DFSchema) -> Result<()> {
    let mut outcome = Ok(());
    e.apply(|x| {
        let step = match x {
            Expr::ScalarFunction(f) => check_call(f, schema).map(|exempt| {
                if exempt {
                    TreeNodeRecursion::Jump
                } else {
                    TreeNodeRecursion::Continue
                }
            }),
            other => check_operator(other, schema).map(|()| TreeNodeRecursion::Continue),
        };
        Ok(match step {
            Ok(next) => next,
            Err(err) => {
                outcome = Err(err);
                TreeNodeRecursion::Stop
            }
        })
    })?;
    outcome
}

fn type_of(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    e.get_type(schema).ok()
}

/// Check a call of an allowed function; `Ok(true)` when its arguments were
/// checked here (the traversal skips them).
pub fn check_call(f: &ScalarFunction, schema: &DFSchema) -> Result<bool> {
    let name = f.func.name().to_ascii_lowercase();
    if !allowed(name.as_str()) {
        return Err(function_refused(&name));
    }
    let a = &f.args;
    let failing = match name.as_str() {
        "date_part" | "datepart" => date_part_failing(a, schema).map(String::from),
        "date_trunc" | "datetrunc" => match date_trunc_failing(a, schema)? {
            None => return Ok(true),
            Some(why) => Some(why.to_string()),
        },
        "regexp_like" | "regexp_replace" | "regexp_count" => {
            check_regexp(&name, a)?;
            None
        }
        _ => arithmetic_failing(&name, a, schema).or_else(|| text_failing(&name, a, schema)),
    };
    match failing {
        None => Ok(false),
        Some(why) => Err(partial(
            format!("{name} over patient data with these arguments"),
            format!("It fails at run time {why}, and a failure would tell that such a row exists"),
        )),
    }
}

/// Why `date_part(field, x)` can fail: a field the argument's type lacks.
fn date_part_failing(a: &[Expr], schema: &DFSchema) -> Option<&'static str> {
    let field = a
        .first()
        .and_then(literal_text)
        .map(str::to_ascii_lowercase);
    let t = a.get(1).and_then(|x| type_of(x, schema));
    let ok = match (&field, &t) {
        (Some(f), Some(t)) if is_date_or_timestamp(t) => TEMPORAL_FIELDS.contains(&f.as_str()),
        (Some(f), Some(DataType::Interval(_) | DataType::Duration(_))) => {
            INTERVAL_FIELDS.contains(&f.as_str())
        }
        _ => false,
    };
    (!ok).then_some(
        "unless its field is a literal that the argument's type has, and its argument a date, timestamp or interval",
    )
}

/// Why `date_trunc(unit, x)` can fail; checks what `x` casts, as usual.
fn date_trunc_failing(a: &[Expr], schema: &DFSchema) -> Result<Option<&'static str>> {
    let unit = a
        .first()
        .and_then(literal_text)
        .map(str::to_ascii_lowercase);
    if !unit.is_some_and(|u| TRUNC_UNITS.contains(&u.as_str())) {
        return Ok(Some(
            "unless its unit is one of microsecond, millisecond, second, minute, hour, day, week, month, quarter, year",
        ));
    }
    // The argument's cast to nanoseconds is the documented residual
    // (module documentation); what it casts is checked as usual.
    if let Some(x) = a.get(1) {
        let inner = match x {
            Expr::Cast(c) if is_date_or_timestamp(&c.field.data_type().clone()) => c.expr.as_ref(),
            other => other,
        };
        if type_of(inner, schema).is_some_and(|t| text(&t)) {
            return Ok(Some("on text that is not a timestamp"));
        }
        check_expr(inner, schema)?;
    }
    Ok(None)
}

/// Why an arithmetic function can fail for some arguments.
fn arithmetic_failing(name: &str, a: &[Expr], schema: &DFSchema) -> Option<String> {
    let t = a.first().and_then(|x| type_of(x, schema));
    let why = match name {
        "abs" if t.as_ref().is_some_and(DataType::is_signed_integer) => {
            "for the smallest integer; use abs(CAST(x AS DOUBLE))"
        }
        "ceil" | "floor" | "round" | "trunc"
            if t.as_ref().is_some_and(|t| {
                matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
            }) =>
        {
            "on decimals at their precision limit; cast to DOUBLE first"
        }
        "round"
            if a.get(1).is_some_and(|dp| {
                !(t.as_ref().is_some_and(DataType::is_floating)
                    || literal_i64(dp).is_some_and(|d| d >= 0))
            }) =>
        {
            "when integers are rounded to a negative or computed number of places near their range"
        }
        "sqrt" => {
            let guarded = match a.first() {
                Some(Expr::ScalarFunction(g)) => g.func.name().eq_ignore_ascii_case("abs"),
                Some(x) => literal_f64(x).is_some_and(|v| v >= 0.0),
                None => false,
            };
            if guarded {
                return None;
            }
            "for negative values; use power(x, 0.5) (NaN for negatives) or sqrt(abs(x))"
        }
        "power" | "pow" => {
            let exponent_ok = a
                .get(1)
                .and_then(literal_f64)
                .is_some_and(|e| e >= 0.0 || e.is_nan());
            let base_ok = a.first().and_then(literal_f64).is_some_and(|b| b != 0.0);
            if exponent_ok || base_ok {
                return None;
            }
            "when zero is raised to a negative power; use a non-negative literal exponent"
        }
        _ => return None,
    };
    Some(why.to_string())
}

/// Why a text function can fail for some arguments.
fn text_failing(name: &str, a: &[Expr], schema: &DFSchema) -> Option<String> {
    match name {
        "substr" | "substring" => {
            let start_ok = a.get(1).is_some_and(|s| {
                literal_i64(s).is_some_and(|v| v != i64::MIN)
                    || matches!(s, Expr::Cast(c) if type_of(&c.expr, schema).is_some_and(|t| t.is_integer() && t.primitive_width().is_some_and(|w| w < 8)))
            });
            let count_ok = a
                .get(2)
                .is_none_or(|c| literal_i64(c).is_some_and(|v| v >= 0));
            (!(start_ok && count_ok))
                .then(|| "for a negative length; give the length as a non-negative literal".into())
        }
        "lpad" | "rpad" => {
            let length_ok = a.get(1).and_then(literal_i64).is_some_and(|n| n <= MAX_PAD);
            let fill_ok = a.get(2).is_none_or(|x| literal(x).is_some());
            (!(length_ok && fill_ok)).then(|| format!(
                "or exhausts memory for long or computed lengths; give the length as a literal of at most {MAX_PAD} and the fill as a literal"
            ))
        }
        "split_part" if a.get(2).and_then(literal_i64).is_none_or(|n| n == 0) => {
            Some("for position 0; give the position as a non-zero literal".into())
        }
        _ => None,
    }
}

fn check_regexp(name: &str, a: &[Expr]) -> Result<()> {
    let fail = |why: &str| {
        Err(partial(
            format!("{name} over patient data with these arguments"),
            format!("It fails at run time {why}, and a failure would tell that such a row exists"),
        ))
    };
    let compiles = a
        .get(1)
        .and_then(literal_text)
        .is_some_and(|p| regex::Regex::new(p).is_ok());
    if !compiles {
        return fail("unless its pattern is a literal regular expression that compiles");
    }
    let (flags, allowed) = match name {
        "regexp_replace" => (a.get(3), "gimsUuRx"),
        "regexp_count" => (a.get(3), "imsUuRx"),
        _ => (a.get(2), "imsUuRx"),
    };
    if let Some(f) = flags {
        let ok = literal_text(f)
            .is_some_and(|s| !s.is_empty() && s.chars().all(|c| allowed.contains(c)));
        if !ok {
            return fail(&format!(
                "unless its flags are a non-empty literal of {allowed}"
            ));
        }
    }
    if name == "regexp_count"
        && let Some(start) = a.get(2)
        && literal_i64(start).is_none_or(|s| s < 1)
    {
        return fail("for a start position below 1; give it as a literal of at least 1");
    }
    Ok(())
}

/// `NULLIF(x, 0)`, possibly cast.
fn nullif_zero(e: &Expr) -> bool {
    match e {
        Expr::Cast(c) => nullif_zero(&c.expr),
        Expr::TryCast(c) => nullif_zero(&c.expr),
        Expr::ScalarFunction(f) if f.func.name().eq_ignore_ascii_case("nullif") => {
            f.args.get(1).and_then(literal).is_some_and(is_zero)
        }
        _ => false,
    }
}

/// The longest interval a date may be shifted by below the boundary: a
/// century. Date and timestamp arithmetic is checked in arrow and fails past
/// the largest representable moment (year 262143 for dates, 2262 for
/// nanosecond timestamps), so an unbounded shift of a victim's date turns
/// its exact value into a failure bit.
pub const MAX_SHIFT_DAYS: i64 = 36_525;

/// Whether `v` is an interval or duration literal of at most
/// [`MAX_SHIFT_DAYS`] in each of its parts.
fn bounded_shift(v: &ScalarValue) -> bool {
    const DAY_NS: i64 = 86_400_000_000_000;
    let within = |days: i64| days.abs() <= MAX_SHIFT_DAYS;
    match v {
        ScalarValue::IntervalYearMonth(Some(m)) => within(i64::from(*m) * 31),
        ScalarValue::IntervalDayTime(Some(d)) => {
            within(i64::from(d.days)) && within(i64::from(d.milliseconds) / 86_400_000)
        }
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            within(i64::from(i.months) * 31)
                && within(i64::from(i.days))
                && within(i.nanoseconds / DAY_NS)
        }
        ScalarValue::DurationSecond(Some(x)) => within(x / 86_400),
        ScalarValue::DurationMillisecond(Some(x)) => within(x / 86_400_000),
        ScalarValue::DurationMicrosecond(Some(x)) => within(x / 86_400_000_000),
        ScalarValue::DurationNanosecond(Some(x)) => within(x / DAY_NS),
        _ => false,
    }
}

/// `d ± interval` over patient data: the interval a literal of at most a
/// century (see [`MAX_SHIFT_DAYS`]).
fn check_shift(b: &BinaryExpr, schema: &DFSchema) -> Result<()> {
    let is_shift = |x: &Expr| {
        type_of(x, schema)
            .is_some_and(|t| matches!(t, DataType::Interval(_) | DataType::Duration(_)))
    };
    let dated = |x: &Expr| type_of(x, schema).is_some_and(|t| is_date_or_timestamp(&t));
    let shift = match (dated(&b.left), dated(&b.right)) {
        (true, false) if is_shift(&b.right) => &b.right,
        (false, true) if is_shift(&b.left) => &b.left,
        _ => return Ok(()),
    };
    if literal(shift).is_some_and(bounded_shift) {
        return Ok(());
    }
    Err(partial(
        "shifting a date of patient data by an interval that is not a literal of at most a century",
        "Date arithmetic fails past the largest date the engine can hold, so a long or computed shift fails for some dates only, and the failure would tell which",
    ))
}

fn check_operator(e: &Expr, schema: &DFSchema) -> Result<()> {
    match e {
        Expr::BinaryExpr(b) if matches!(b.op, Operator::Plus | Operator::Minus) => {
            check_shift(b, schema)
        }
        Expr::BinaryExpr(b) if matches!(b.op, Operator::Divide | Operator::Modulo) => {
            check_division(b, schema)
        }
        Expr::BinaryExpr(b)
            if matches!(
                b.op,
                Operator::RegexMatch
                    | Operator::RegexIMatch
                    | Operator::RegexNotMatch
                    | Operator::RegexNotIMatch
            ) =>
        {
            match literal_text(&b.right) {
                Some(p) if regex::Regex::new(p).is_ok() => Ok(()),
                _ => Err(partial(
                    "a regular expression match over patient data whose pattern is not a literal that compiles",
                    "A pattern that fails to compile fails at run time for the rows that reach it",
                )),
            }
        }
        Expr::Like(Like { pattern, .. }) => match literal_text(pattern) {
            Some(p) if p.len() <= 1_000 => Ok(()),
            _ => Err(partial(
                "LIKE over patient data with a pattern that is not a literal of at most 1,000 characters",
                "A pattern from the data, or a huge one, can fail to compile at run time",
            )),
        },
        Expr::SimilarTo(_) => Err(partial(
            "SIMILAR TO over patient data",
            "DataFusion compiles its pattern only at run time, where an invalid one fails; use regexp_like or LIKE",
        )),
        Expr::Cast(c) if !c.expr.column_refs().is_empty() => {
            let from = type_of(&c.expr, schema).unwrap_or(DataType::Null);
            let to = c.field.data_type();
            if total_cast(&from, to) || range_proven_cast(&c.expr, &from, to, schema) {
                return Ok(());
            }
            let numeric_to_integer = from.is_numeric() && to.is_integer();
            let (from, to) = (sql_type(&from), sql_type(to));
            let range = ranges::range_of(&c.expr, schema)
                .filter(|_| numeric_to_integer)
                .map(|r| format!(" (its values range over {r}, which {to} does not hold)"))
                .unwrap_or_default();
            Err(partial(
                format!("CAST from {from} to {to} over patient data{range}"),
                format!(
                    "It fails for some values only (a cast the engine adds on its own counts too: comparing text with a number casts the text), and the failure would tell that they exist. Use TRY_CAST, which gives NULL instead, compare values of the same type, or bound the value within what {to} holds (a CASE, or columns with declared bounds: docs/privacy.md)"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A numeric cast to an integer type whose argument's range, from the
/// declared column bounds, fits the type ([`ranges`]); the sites receive
/// it as `TRY_CAST`, so data outside its declared range gives NULL.
fn range_proven_cast(e: &Expr, from: &DataType, to: &DataType, schema: &DFSchema) -> bool {
    from.is_numeric() && to.is_integer() && ranges::range_of(e, schema).is_some_and(|r| r.fits(to))
}

fn check_division(b: &BinaryExpr, schema: &DFSchema) -> Result<()> {
    let t = type_of(&b.left, schema).unwrap_or(DataType::Null);
    if t.is_floating() {
        return Ok(()); // IEEE: Inf or NaN, never an error
    }
    let divisor = literal(&b.right);
    let signed = t.is_signed_integer();
    let ok = match (b.op, divisor) {
        (Operator::Divide, Some(v)) => {
            !(v.is_null() || is_zero(v) || signed && literal_i64(&b.right) == Some(-1))
        }
        (Operator::Modulo, Some(v)) => !v.is_null() && !is_zero(v),
        // x / NULLIF(y, 0) fails only for the smallest integer over -1:
        // with a constant dividend that is not it, never.
        // Or a divisor whose declared range excludes 0 and -1 (made total
        // at the sites whatever their data: `crate::split::unparse`).
        (Operator::Divide, None) => {
            ranges::divisor_proven(b, schema)
                || nullif_zero(&b.right)
                    && b.left.column_refs().is_empty()
                    && literal_i64(&b.left)
                        .is_some_and(|v| v != i64::MIN && v > i64::from(i32::MIN))
        }
        (_, None) => nullif_zero(&b.right) || ranges::divisor_proven(b, schema),
        _ => false,
    };
    if ok && !matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        return Ok(());
    }
    Err(partial(
        "a division by an expression over patient data",
        "An integer division fails for a zero divisor, and for the smallest integer divided by -1, for some patients only, and the failure would tell that they exist. Divide by a non-zero constant other than -1, by a column whose declared range excludes both (docs/privacy.md), use NULLIF(divisor, 0) with a constant dividend, or divide doubles (CAST(x AS DOUBLE))",
    ))
}

fn text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether every value of `from` converts to `to` without error (also
/// used by site backends to turn a `TRY_CAST` that cannot fail into `CAST`).
pub fn total_cast(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    if from == to || text(to) || from.is_null() {
        return true;
    }
    match (from, to) {
        (f, _) if text(f) => false,
        (T::Binary | T::LargeBinary | T::BinaryView, _) => false,
        // An integer fits a decimal with as many integer digits as its
        // largest value has (the cast DataFusion adds to compare UInt64
        // with Int64 is to Decimal128(20, 0)).
        (f, T::Decimal128(p, s) | T::Decimal256(p, s)) if f.is_integer() => {
            let digits: i16 = match f {
                T::Int8 | T::UInt8 => 3,
                T::Int16 | T::UInt16 => 5,
                T::Int32 | T::UInt32 => 10,
                T::Int64 => 19,
                _ => 20,
            };
            i16::from(*p) - i16::from(*s) >= digits
        }
        (_, T::Decimal128(..) | T::Decimal256(..)) => false,
        (T::Decimal128(..) | T::Decimal256(..), t) => t.is_floating(),
        (f, t) if t.is_integer() => {
            f.is_integer()
                && t.primitive_width() >= f.primitive_width()
                && (f.is_signed_integer() == t.is_signed_integer()
                    || t.is_signed_integer() && t.primitive_width() > f.primitive_width())
        }
        // Dates in nanoseconds overflow after 2262; coarser units do not.
        (T::Date32 | T::Date64, T::Timestamp(unit, _)) => *unit != TimeUnit::Nanosecond,
        (T::Timestamp(from_unit, _), T::Timestamp(to_unit, _)) => {
            *to_unit != TimeUnit::Nanosecond || *from_unit == TimeUnit::Nanosecond
        }
        (T::Interval(_), T::Duration(_)) | (T::Duration(_), T::Interval(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests;
