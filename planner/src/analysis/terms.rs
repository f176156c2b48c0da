//! The additive terms of an aggregate's argument.
//!
//! An argument is cut into the parts it adds up, so that no part can hide
//! under another: `sum(CASE WHEN common THEN 1000000 WHEN rare THEN 1 END)`
//! is two terms (the rare one rests on one patient), `sum(value + 1000)` is
//! the data term `value` and the constant term 1000, and `sum(a + b)` the
//! terms `a` and `b`. The decomposition follows SQL's NULL semantics: in
//! `a + b` the term `a` counts only where `b` is not NULL, and each branch
//! of a `CASE` only where that branch is taken. `coalesce`, `nullif`,
//! `nvl`, `nvl2`, `greatest` and `least` are read as the `CASE` they are;
//! a scalar function of several terms that are not exclusive branches is
//! refused, since it could hide one term in another.
//!
//! Admission reads the terms to judge what a sum adds up
//! ([`crate::admission::values`]); the site partials count the patients of
//! each term ([`crate::partials::cells`]) and judge each data term's
//! dominance ([`crate::partials::dominance`]).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{Case, Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator, lit};

use crate::analysis::exprs::{is_zero, sql_text, strip_alias};
use crate::error::{PlanError, Result};

/// Most terms one aggregate argument may have: beyond this, an argument is
/// an encoding of many cells in one number, and its cells a cost at every
/// site.
pub const MAX_TERMS: usize = 16;

/// One additive part of an aggregate's argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The part, as an expression over the aggregate's input: NULL on the
    /// rows where it adds nothing.
    pub expr: Expr,
    /// Whether its value (not its conditions) depends on the data.
    pub data: bool,
    /// Whether its value is zero wherever it is not NULL.
    pub zero: bool,
    /// The columns its value is computed from (conditions excluded).
    pub values: Vec<Column>,
}

/// The terms of an expression, and whether at most one of them is non-NULL
/// on any row (the branches of a `CASE`).
#[derive(Debug, Clone)]
struct Terms {
    terms: Vec<Term>,
    exclusive: bool,
}

fn refuse(what: impl Into<String>, why: impl Into<String>) -> PlanError {
    PlanError::Unsupported {
        what: what.into(),
        why: why.into(),
        rule: crate::rules::Rule::CellsRestOnPatients,
    }
}

fn null() -> Expr {
    lit(ScalarValue::Null)
}

fn single(e: &Expr) -> Terms {
    let (data, zero, values) = match e {
        Expr::Literal(v, _) => (false, v.is_null() || is_zero(v), Vec::new()),
        other => (
            true,
            false,
            other.column_refs().into_iter().cloned().collect(),
        ),
    };
    Terms {
        terms: vec![Term {
            expr: e.clone(),
            data,
            zero,
            values,
        }],
        exclusive: true,
    }
}

impl Terms {
    fn map(self, f: impl Fn(Expr) -> Expr) -> Terms {
        Terms {
            terms: self
                .terms
                .into_iter()
                .map(|t| Term {
                    expr: f(t.expr),
                    ..t
                })
                .collect(),
            exclusive: self.exclusive,
        }
    }

    /// Each term counts only where `other` is not NULL (a + b is NULL
    /// when b is).
    fn guarded(self, other: &Expr) -> Terms {
        if matches!(other, Expr::Literal(v, _) if !v.is_null()) {
            return self;
        }
        self.map(|t| {
            Expr::Case(Case::new(
                None,
                vec![(Box::new(other.clone().is_not_null()), Box::new(t))],
                None,
            ))
        })
    }
}

/// Whether an expression is a date.
type Dated<'a> = &'a dyn Fn(&Expr) -> bool;

/// The terms of `arg`, an aggregate's argument over `schema`.
pub fn terms(arg: &Expr, schema: &DFSchema) -> Result<Vec<Term>> {
    let dated = |e: &Expr| {
        e.get_type(schema)
            .is_ok_and(|t| matches!(t, DataType::Date32 | DataType::Date64))
    };
    let t = decompose(strip_alias(arg), &dated)?;
    Ok(t.terms)
}

/// A column, under aliases and casts.
fn plain(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => plain(&a.expr),
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => plain(expr),
        Expr::Column(_) => true,
        _ => false,
    }
}

fn bounded(t: Terms, whole: &Expr) -> Result<Terms> {
    if t.terms.len() > MAX_TERMS {
        return Err(refuse(
            format!(
                "an aggregate argument of more than {MAX_TERMS} parts ({})",
                sql_text(whole)
            ),
            "Each part of a sum or an average is a cell of its own that must rest on enough patients; split the query",
        ));
    }
    Ok(t)
}

fn decompose(e: &Expr, dated: Dated<'_>) -> Result<Terms> {
    let t = match e {
        Expr::Alias(a) => decompose(&a.expr, dated)?,
        Expr::Literal(..) | Expr::Column(_) => single(e),
        Expr::Negative(x) => decompose(x, dated)?.map(|t| Expr::Negative(Box::new(t))),
        Expr::Cast(c) if c.field.data_type().is_floating() => {
            let to = c.field.data_type().clone();
            decompose(&c.expr, dated)?.map(|t| Expr::Cast(Cast::new(Box::new(t), to.clone())))
        }
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. })
            if matches!(expr.as_ref(), Expr::Column(_) | Expr::Literal(..)) =>
        {
            single(e)
        }
        Expr::BinaryExpr(b) => binary(b, e, dated)?,
        Expr::Case(c) => case(c, dated)?,
        Expr::ScalarFunction(f) => function(f, dated)?,
        other => opaque(other)?,
    };
    bounded(t, e)
}

/// An expression outside the grammar of sums: refused. A sum's argument
/// is built from columns and literals with `+`, `-`, `*`, division by a
/// literal, casts to floating point, CASE and the functions that are CASE
/// (`coalesce`, `nullif`, `nvl2`, `greatest`, `least`); anything else
/// (a comparison cast to a number, a rounding, a cast that truncates) can
/// turn a condition on rows into a number the cells cannot see.
fn opaque(e: &Expr) -> Result<Terms> {
    Err(refuse(
        format!(
            "the expression {} inside a sum, average or variance",
            sql_text(e)
        ),
        "Sums, averages and variances take columns combined by +, -, *, division by a constant, CAST to DOUBLE, CASE and coalesce/nullif/greatest/least, so that every part is a cell the disclosure rules count; put conditions in CASE WHEN or FILTER (WHERE ...) and apply other functions to the released aggregate",
    ))
}

fn binary(b: &BinaryExpr, whole: &Expr, dated: Dated<'_>) -> Result<Terms> {
    let (l, r) = (b.left.as_ref(), b.right.as_ref());
    match b.op {
        // A difference of two date columns is a number of days, one value:
        // its dates are no quantities apart (a date cannot be negated).
        // Anything else that is a date (a CASE choosing between dates)
        // would hide its condition inside one term, out of the cells' sight.
        Operator::Minus if dated(l) && dated(r) => match (plain(l), plain(r)) {
            (true, true) => Ok(single(whole)),
            _ => opaque(whole),
        },
        Operator::Plus | Operator::Minus => {
            let left = decompose(l, dated)?.guarded(r);
            let mut right = decompose(r, dated)?.guarded(l);
            if b.op == Operator::Minus {
                right = right.map(|t| Expr::Negative(Box::new(t)));
            }
            let mut terms = left.terms;
            terms.extend(right.terms);
            Ok(Terms {
                terms,
                exclusive: false,
            })
        }
        Operator::Multiply => {
            let (a, c) = (decompose(l, dated)?, decompose(r, dated)?);
            let mut terms = Vec::with_capacity(a.terms.len() * c.terms.len());
            for x in &a.terms {
                for y in &c.terms {
                    terms.push(Term {
                        expr: x.expr.clone() * y.expr.clone(),
                        data: x.data || y.data,
                        zero: x.zero || y.zero,
                        values: [x.values.clone(), y.values.clone()].concat(),
                    });
                }
            }
            bounded(
                Terms {
                    terms,
                    exclusive: a.exclusive && c.exclusive,
                },
                whole,
            )
        }
        Operator::Divide => {
            if !matches!(strip_alias(r), Expr::Literal(..))
                && !matches!(strip_alias(r), Expr::Cast(Cast { expr, .. }) if matches!(expr.as_ref(), Expr::Literal(..)))
            {
                return opaque(whole);
            }
            let divisor: Vec<Column> = r.column_refs().into_iter().cloned().collect();
            let a = decompose(l, dated)?;
            Ok(Terms {
                terms: a
                    .terms
                    .into_iter()
                    .map(|t| Term {
                        expr: t.expr / r.clone(),
                        data: t.data || !divisor.is_empty(),
                        values: [t.values, divisor.clone()].concat(),
                        ..t
                    })
                    .collect(),
                exclusive: a.exclusive,
            })
        }
        _ => opaque(whole),
    }
}

/// A CASE as the union of its branches, each a term where it is taken.
fn case(c: &Case, dated: Dated<'_>) -> Result<Terms> {
    let branches = c.when_then_expr.len() + 1;
    let mut terms = Vec::new();
    let mut exclusive = true;
    for i in 0..branches {
        let result = match c.when_then_expr.get(i) {
            Some((_, then)) => then.as_ref().clone(),
            None => c.else_expr.as_deref().cloned().unwrap_or_else(null),
        };
        if matches!(result, Expr::Literal(ref v, _) if v.is_null()) {
            continue;
        }
        let branch = decompose(&result, dated)?;
        exclusive &= branch.exclusive;
        for t in branch.terms {
            let only = |x: Expr| -> Expr {
                let when_then = c
                    .when_then_expr
                    .iter()
                    .enumerate()
                    .map(|(j, (w, _))| {
                        let then = if j == i { x.clone() } else { null() };
                        (w.clone(), Box::new(then))
                    })
                    .collect();
                let otherwise = (i + 1 == branches).then(|| Box::new(x.clone()));
                Expr::Case(Case::new(c.expr.clone(), when_then, otherwise))
            };
            terms.push(Term {
                expr: only(t.expr.clone()),
                ..t
            });
        }
    }
    Ok(Terms { terms, exclusive })
}

fn when(cond: Expr, then: Expr) -> (Box<Expr>, Box<Expr>) {
    (Box::new(cond), Box::new(then))
}

/// Read `coalesce`, `nullif`, `nvl2`, `greatest` and `least` as the CASE
/// they are; other functions are applied to each exclusive branch.
fn function(f: &ScalarFunction, dated: Dated<'_>) -> Result<Terms> {
    let name = f.func.name().to_ascii_lowercase();
    let a = &f.args;
    let as_case = match (name.as_str(), a.len()) {
        ("coalesce" | "nvl" | "ifnull", _) => Some(Case::new(
            None,
            a.iter()
                .map(|x| when(x.clone().is_not_null(), x.clone()))
                .collect(),
            None,
        )),
        ("nullif", 2) => Some(Case::new(
            None,
            vec![when(a[0].clone().eq(a[1].clone()), null())],
            Some(Box::new(a[0].clone())),
        )),
        ("nvl2", 3) => Some(Case::new(
            None,
            vec![when(a[0].clone().is_not_null(), a[1].clone())],
            Some(Box::new(a[2].clone())),
        )),
        ("greatest" | "least", 2) => {
            let op = if name == "greatest" {
                Operator::GtEq
            } else {
                Operator::LtEq
            };
            let pick = Expr::BinaryExpr(BinaryExpr::new(
                Box::new(a[0].clone()),
                op,
                Box::new(a[1].clone()),
            ));
            Some(Case::new(
                None,
                vec![
                    when(a[0].clone().is_null(), a[1].clone()),
                    when(a[1].clone().is_null(), a[0].clone()),
                    when(pick, a[0].clone()),
                ],
                Some(Box::new(a[1].clone())),
            ))
        }
        ("greatest" | "least", _) => {
            return Err(refuse(
                format!("{name} of more than two values inside a sum, average or variance"),
                "Write it as nested two-value calls, or as a CASE",
            ));
        }
        _ => None,
    };
    if let Some(c) = as_case {
        return case(&c, dated);
    }
    Err(refuse(
        format!("the function {name} inside a sum, average or variance"),
        "A function of a value can count rows in disguise (a step such as ceil(v / t), signum(v - t) or length(concat(...)) adds one per row past t), which no cell count sees. Sum the column itself, with conditions in CASE WHEN or FILTER (WHERE ...), and apply the function to the released aggregate",
    ))
}
