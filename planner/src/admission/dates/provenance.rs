//! Where a date value comes from, through the whole plan.
//!
//! The date rules ([`super`]) must tell an unchanged date of the data from
//! one an attacker has shifted, clamped or mixed with a literal, and two
//! different dates from the same date spelt twice. An expression can hide
//! either behind a subquery (`SELECT d + INTERVAL '13 days' AS d2 ...`,
//! `SELECT birth_datetime AS a, birth_datetime AS b ...`), so every column
//! is followed down to the table scan it reads, and each scan of a patient
//! table is a source of its own (two scans of `condition_occurrence` are two
//! sources: the start dates of two different conditions).

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};

use crate::analysis::lineage::{join_source, pass_through};
pub(super) use crate::analysis::scope::Scope;

/// One scan's date column.
pub(super) type Source = (usize, String);

/// What a value says about dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Prov {
    /// Not a date, and not computed from one.
    NotDate,
    /// A date of the data, unchanged (one of these sources: a union can
    /// carry several).
    Bare(BTreeSet<Source>),
    /// Dates of the data moved by intervals.
    Shifted(BTreeSet<Source>),
    /// A generalisation (year, quarter, month or coarser) of a date.
    Generalised,
    /// A date that is not data: a literal, `current_date`, a date of the
    /// public vocabulary.
    Constant,
    /// An interval between dates, or a number of days computed from one:
    /// relative, but at day resolution (against an extraction date, an
    /// exact date).
    Interval,
    /// A number of days put on a grid of at least [`DAY_GRID`] days
    /// (`(a - b) / 30`). Two such grids combined, in one expression or as
    /// two keys of one release, are finer (`(a - b) / 30` and
    /// `(a - b + 15) / 30` tell 15 days apart).
    Gridded,
    /// Anything else computed from dates: `sources`, and whether a
    /// constant date went into it.
    Mixed {
        sources: BTreeSet<Source>,
        constant: bool,
    },
}

impl Prov {
    /// The data dates it is computed from.
    pub(super) fn sources(&self) -> BTreeSet<Source> {
        match self {
            Prov::Bare(s) | Prov::Shifted(s) | Prov::Mixed { sources: s, .. } => s.clone(),
            _ => BTreeSet::new(),
        }
    }

    /// Whether a constant date went into it.
    pub(super) fn constant(&self) -> bool {
        matches!(self, Prov::Constant | Prov::Mixed { constant: true, .. })
    }

    fn mix(parts: impl IntoIterator<Item = Prov>) -> Prov {
        let (mut sources, mut constant) = (BTreeSet::new(), false);
        for p in parts {
            constant |= p.constant();
            sources.extend(p.sources());
        }
        Prov::Mixed { sources, constant }
    }
}

pub(super) fn temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
    )
}

fn interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_) | DataType::Duration(_))
}

/// The provenance of output column `index` of `plan`.
pub(super) fn column(plan: &LogicalPlan, index: usize) -> Prov {
    if let Some(input) = pass_through(plan) {
        return column(input, index);
    }
    let Some(field) = plan.schema().fields().get(index) else {
        return Prov::NotDate;
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !temporal(field.data_type()) {
                Prov::NotDate
            } else if ihdsi_catalog::schema::is_patient_table(scan.table_name.table()) {
                let id = std::ptr::from_ref(scan) as usize;
                Prov::Bare(BTreeSet::from([(id, field.name().clone())]))
            } else {
                Prov::Constant
            }
        }
        LogicalPlan::Projection(p) => p
            .expr
            .get(index)
            .map_or(Prov::NotDate, |e| expr(e, Scope::One(&p.input))),
        LogicalPlan::Window(w) => {
            let width = w.input.schema().fields().len();
            match index.checked_sub(width) {
                None => column(&w.input, index),
                Some(k) => w
                    .window_expr
                    .get(k)
                    .map_or(Prov::NotDate, |e| expr(e, Scope::One(&w.input))),
            }
        }
        LogicalPlan::Join(j) => join_source(j, index).map_or(Prov::NotDate, |(p, i)| column(p, i)),
        LogicalPlan::Union(u) => {
            let parts: Vec<Prov> = u.inputs.iter().map(|i| column(i, index)).collect();
            if parts.iter().all(|p| matches!(p, Prov::Bare(_))) {
                Prov::Bare(parts.iter().flat_map(Prov::sources).collect())
            } else if parts.iter().all(|p| *p == Prov::NotDate) {
                Prov::NotDate
            } else {
                Prov::mix(parts)
            }
        }
        LogicalPlan::Aggregate(a) => {
            let keys = a.group_expr.len();
            let e = if index < keys {
                a.group_expr.get(index)
            } else {
                a.aggr_expr.get(index - keys)
            };
            e.map_or(Prov::NotDate, |e| expr(e, Scope::One(&a.input)))
        }
        _ if temporal(field.data_type()) => Prov::Mixed {
            sources: BTreeSet::new(),
            constant: true,
        },
        _ => Prov::NotDate,
    }
}

/// Whether `e` is a coarse generalisation call: date_part of a coarse
/// field, date_trunc to a coarse unit (its argument is checked apart).
pub(super) fn generalisation(e: &Expr) -> Option<&Expr> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    let allowed = match f.func.name().to_ascii_lowercase().as_str() {
        "date_part" | "datepart" => super::FIELDS,
        "date_trunc" | "datetrunc" => super::UNITS,
        _ => return None,
    };
    match f.args.as_slice() {
        [
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
                _,
            ),
            arg,
        ] if allowed.contains(&s.to_ascii_lowercase().as_str()) => Some(arg),
        _ => None,
    }
}

/// The provenance of expression `e` over `scope`.
pub(super) fn expr(e: &Expr, scope: Scope<'_>) -> Prov {
    let schema = scope.schema();
    let typed = |x: &Expr| x.get_type(schema.as_ref()).ok();
    match e {
        Expr::Alias(a) => expr(&a.expr, scope),
        Expr::Column(c) => scope
            .resolve(c)
            .map_or(Prov::NotDate, |(p, i)| column(p, i)),
        Expr::Literal(v, _) if temporal(&v.data_type()) => Prov::Constant,
        Expr::Cast(datafusion::logical_expr::Cast { expr: inner, field })
        | Expr::TryCast(datafusion::logical_expr::TryCast { expr: inner, field })
            if temporal(field.data_type()) =>
        {
            match expr(inner, scope) {
                // A date as a timestamp, or back: the same moment's date.
                p @ (Prov::Bare(_) | Prov::Shifted(_) | Prov::Generalised) => p,
                Prov::NotDate if inner.column_refs().is_empty() => Prov::Constant,
                other => Prov::mix([other, Prov::NotDate]),
            }
        }
        _ if generalisation(e).is_some() => {
            let arg = generalisation(e).map(|a| expr(a, scope));
            match arg {
                // A part of an interval (its days) is still at day resolution.
                Some(Prov::Interval) => Prov::Interval,
                _ => Prov::Generalised,
            }
        }
        Expr::AggregateFunction(f) => {
            let name = f.func.name().to_ascii_lowercase();
            match (name.as_str(), f.params.args.first()) {
                ("min" | "max" | "first_value" | "last_value", Some(a)) => expr(a, scope),
                _ => Prov::NotDate,
            }
        }
        Expr::WindowFunction(w) => match w.params.args.first() {
            Some(a) => match expr(a, scope) {
                p @ (Prov::Bare(_) | Prov::Shifted(_) | Prov::Generalised) => p,
                Prov::NotDate => Prov::NotDate,
                other => Prov::mix([other]),
            },
            None => Prov::NotDate,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Plus | Operator::Minus,
            right,
        }) => {
            let (l, r) = (expr(left, scope), expr(right, scope));
            let (lt, rt) = (typed(left), typed(right));
            let is_t = |t: &Option<DataType>| t.as_ref().is_some_and(temporal);
            let is_i = |t: &Option<DataType>| t.as_ref().is_some_and(interval);
            if is_t(&lt) && is_t(&rt) {
                // An interval between two dates; the rules check its ends.
                return Prov::Interval;
            }
            let (date, shift) = match (is_t(&lt), is_t(&rt)) {
                (true, false) if is_i(&rt) => (l, r),
                (false, true) if is_i(&lt) => (r, l),
                _ => return other(e, scope),
            };
            match date {
                Prov::Bare(s) | Prov::Shifted(s) if !shift.constant() => {
                    let mut s = s;
                    s.extend(shift.sources());
                    Prov::Shifted(s)
                }
                Prov::Constant if shift.sources().is_empty() => Prov::Constant,
                d => Prov::mix([d, shift]),
            }
        }
        _ => other(e, scope),
    }
}

/// Anything else: an interval, a plain number, or a date mixed from its
/// parts.
fn other(e: &Expr, scope: Scope<'_>) -> Prov {
    let schema = scope.schema();
    let t = e.get_type(schema.as_ref()).ok();
    if t.as_ref().is_some_and(interval) {
        return Prov::Interval;
    }
    let mut parts = Vec::new();
    let _ = e.apply_children(|c| {
        parts.push(expr(c, scope));
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    if is_volatile_date(e) {
        return Prov::Constant;
    }
    if !t.as_ref().is_some_and(temporal) {
        // A number of days keeps its resolution through arithmetic, until
        // it is divided into whole months or coarser; two grids combined
        // are finer than either.
        if parts.contains(&Prov::Interval) {
            return match months_or_coarser(e, t.as_ref()) {
                true => Prov::Gridded,
                false => Prov::Interval,
            };
        }
        return match parts.iter().filter(|p| **p == Prov::Gridded).count() {
            0 => Prov::NotDate,
            1 => Prov::Gridded,
            _ => Prov::Interval,
        };
    }
    Prov::mix(parts.into_iter().chain(
        // A literal date anywhere inside counts as a constant.
        std::iter::once(if has_temporal_literal(e) {
            Prov::Constant
        } else {
            Prov::NotDate
        }),
    ))
}

/// The shortest grid a difference of dates may be released on, in days.
pub(super) const DAY_GRID: f64 = 30.0;

/// Whether `e`, of type `t`, puts a number of days on a grid of at least
/// [`DAY_GRID`] days: an integer quotient by such a literal, or a float one
/// rounded or cast to an integer. A float quotient alone keeps the day in
/// its fraction (`(a - b) / 30.0` is 1.2333… for day 37).
fn months_or_coarser(e: &Expr, t: Option<&DataType>) -> bool {
    let quotient = |x: &Expr| match crate::analysis::exprs::strip_alias(x) {
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Divide,
            right,
            ..
        }) => crate::analysis::exprs::literal_f64(right).is_some_and(|d| d >= DAY_GRID),
        _ => false,
    };
    match e {
        Expr::BinaryExpr(_) => quotient(e) && t.is_some_and(DataType::is_integer),
        Expr::ScalarFunction(f) => {
            matches!(
                f.func.name().to_ascii_lowercase().as_str(),
                "floor" | "ceil" | "trunc" | "round"
            ) && matches!(f.args.as_slice(), [x] if quotient(x))
        }
        Expr::Cast(c) => c.field.data_type().is_integer() && quotient(&c.expr),
        Expr::TryCast(c) => c.field.data_type().is_integer() && quotient(&c.expr),
        _ => false,
    }
}

fn is_volatile_date(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if matches!(f.func.name().to_ascii_lowercase().as_str(), "current_date" | "today" | "now" | "current_timestamp"))
}

fn has_temporal_literal(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(matches!(x, Expr::Literal(v, _) if temporal(&v.data_type()))
            || is_volatile_date(x)
            || matches!(x, Expr::Cast(c) if temporal(c.field.data_type()) && c.expr.column_refs().is_empty()))
    })
    .unwrap_or(true)
}
