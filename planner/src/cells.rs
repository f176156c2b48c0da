//! Cells: the patients behind every released number.
//!
//! A group of a release passes its threshold on the distinct patients of
//! the whole group, but each aggregate *cell* of that group can rest on far
//! fewer: `count(*) FILTER (WHERE <rare>)`, `sum(CASE WHEN <victim> THEN
//! value END)` or a count of the nullable side of a `LEFT JOIN` inside a
//! group of thousands tells the size, or the value, of a group of one. So
//! every cell carries its own exact count of contributing patients, which
//! the sites compute next to the partials and the coordinator merges like
//! the group count; the disclosure layer withholds a cell under the
//! threshold (the cell only: its group's other cells stand on their own
//! patients).
//!
//! **Who contributes.** A patient contributes to a cell when one of their
//! rows passes the aggregate's `FILTER` and gives the aggregate something:
//!
//! * counts (`count(x)`, `count(DISTINCT person_id)`): `x` is not NULL;
//! * sums and averages: each **term** of the argument is not NULL and not
//!   zero (a zero adds nothing);
//! * variances: each term of the argument is not NULL (a zero is a data
//!   point of a variance).
//!
//! **Terms.** An argument is cut into the parts it adds up, so that no part
//! can hide under another: `sum(CASE WHEN common THEN 1000000 WHEN rare
//! THEN 1 END)` is two terms (the rare one rests on one patient),
//! `sum(value + 1000)` is the data term `value` and the constant term 1000,
//! and `sum(a + b)` the terms `a` and `b`. Every term is a cell of its own;
//! the aggregate's cell count is the smallest of its terms'. The p% rule
//! judges each data term (see [`crate::dominance`]), so a constant offset
//! cannot make the contributions look alike. The decomposition follows
//! SQL's NULL semantics: in `a + b` the term `a` counts only where `b` is
//! not NULL, and each branch of a `CASE` only where that branch is taken.
//! `coalesce`, `nullif`, `nvl`, `nvl2`, `greatest` and `least` are read as
//! the `CASE` they are; a scalar function of several terms that are not
//! exclusive branches is refused, since it could hide one term in another.
//!
//! The layout is derived from the canonical subplan alone, by the
//! coordinator and again by every site from the SQL it received, so both
//! agree on the columns without trusting each other: the site answer is
//! `k*, p*, ihdsi_patients, ihdsi_c*` and then the dominance columns.

use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Case, Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, LogicalPlan, LogicalPlanBuilder, Operator, lit,
};

use crate::aggregates::{AggKind, classify};
use crate::bounding::{canonical, clamp, internal, source_aggregate};
use crate::columns::cell_column;
use crate::error::{PlanError, Result};
use crate::exprs::is_zero;
use crate::exprs::{sql_text, strip_alias};
use crate::lineage::lineage;
use ihdsi_catalog::Bounding;
use ihdsi_catalog::bounds::ValueBounds;

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

/// The terms of `arg`, an aggregate's argument.
pub fn terms(arg: &Expr) -> Result<Vec<Term>> {
    let t = decompose(strip_alias(arg))?;
    Ok(t.terms)
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

fn decompose(e: &Expr) -> Result<Terms> {
    let t = match e {
        Expr::Alias(a) => decompose(&a.expr)?,
        Expr::Literal(..) | Expr::Column(_) => single(e),
        Expr::Negative(x) => decompose(x)?.map(|t| Expr::Negative(Box::new(t))),
        Expr::Cast(c) if c.field.data_type().is_floating() => {
            let to = c.field.data_type().clone();
            decompose(&c.expr)?.map(|t| Expr::Cast(Cast::new(Box::new(t), to.clone())))
        }
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. })
            if matches!(expr.as_ref(), Expr::Column(_) | Expr::Literal(..)) =>
        {
            single(e)
        }
        Expr::BinaryExpr(b) => binary(b, e)?,
        Expr::Case(c) => case(c)?,
        Expr::ScalarFunction(f) => function(f)?,
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

fn binary(b: &BinaryExpr, whole: &Expr) -> Result<Terms> {
    let (l, r) = (b.left.as_ref(), b.right.as_ref());
    match b.op {
        Operator::Plus | Operator::Minus => {
            let left = decompose(l)?.guarded(r);
            let mut right = decompose(r)?.guarded(l);
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
            let (a, c) = (decompose(l)?, decompose(r)?);
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
            let a = decompose(l)?;
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
fn case(c: &Case) -> Result<Terms> {
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
        let branch = decompose(&result)?;
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
fn function(f: &ScalarFunction) -> Result<Terms> {
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
        return case(&c);
    }
    Err(refuse(
        format!("the function {name} inside a sum, average or variance"),
        "A function of a value can count rows in disguise (a step such as ceil(v / t), signum(v - t) or length(concat(...)) adds one per row past t), which no cell count sees. Sum the column itself, with conditions in CASE WHEN or FILTER (WHERE ...), and apply the function to the released aggregate",
    ))
}

/// How the patients of one cell are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSource {
    /// The aggregate's FILTER.
    pub filter: Option<Expr>,
    /// The value that must be present (not NULL), if any.
    pub value: Option<Expr>,
    /// Whether the value must also be non-zero.
    pub nonzero: bool,
    /// The declared range of `value` when it is a plain column, so that a
    /// site that clamps it tests the clamped value.
    pub bounds: Option<ValueBounds>,
}

/// Where a partial's cell count is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellRef {
    /// The group's own distinct-patient count (`ihdsi_patients`): the cell
    /// provably has every patient of the group.
    Group,
    /// Cell column `ihdsi_c{n}`.
    Column(usize),
}

/// The cells of one canonical subplan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CellLayout {
    /// Per partial column `p*`: the cells it rests on (one per term).
    pub per_partial: Vec<Vec<CellRef>>,
    /// What each cell column counts.
    pub sources: Vec<CellSource>,
}

impl CellLayout {
    /// Whether two layouts give the same columns for the same partials
    /// (the expressions may be spelt differently after a round trip
    /// through SQL).
    pub fn same_shape(&self, other: &CellLayout) -> bool {
        self.per_partial == other.per_partial
            && self.sources.len() == other.sources.len()
            && self
                .sources
                .iter()
                .zip(&other.sources)
                .all(|(a, b)| a.nonzero == b.nonzero)
    }

    fn add(&mut self, s: CellSource) -> CellRef {
        let trivially_present = match &s.value {
            None => true,
            Some(Expr::Literal(v, _)) => !(v.is_null() || s.nonzero && is_zero(v)),
            _ => false,
        };
        if s.filter.is_none() && trivially_present {
            return CellRef::Group;
        }
        if let Some(i) = self.sources.iter().position(|x| *x == s) {
            return CellRef::Column(i);
        }
        self.sources.push(s);
        CellRef::Column(self.sources.len() - 1)
    }
}

/// The cell layout of a canonical subplan (keys, partials, patient count).
pub fn layout(plan: &LogicalPlan) -> Result<CellLayout> {
    let (proj, agg) = canonical(plan)?;
    let input_lineage = lineage(&agg.input)?;
    let keys = agg.group_expr.len();
    let partials = proj.expr.len().saturating_sub(keys + 1);
    let mut out = CellLayout::default();
    for e in proj.expr.iter().skip(keys).take(partials) {
        let (kind, f) = classify(source_aggregate(e, agg)?, &agg.input, &input_lineage)?;
        let refs = partial_cells(kind, f, &mut out)?;
        out.per_partial.push(refs);
    }
    Ok(out)
}

fn partial_cells(
    kind: AggKind,
    f: &AggregateFunction,
    out: &mut CellLayout,
) -> Result<Vec<CellRef>> {
    let filter = f.params.filter.as_deref().cloned();
    let arg = f.params.args.first().map(strip_alias).cloned();
    let present = |value: Option<Expr>, nonzero: bool| CellSource {
        filter: filter.clone(),
        bounds: match &value {
            Some(Expr::Column(c)) => ihdsi_catalog::bounds::for_column(&c.name),
            _ => None,
        },
        value,
        nonzero,
    };
    Ok(match kind {
        AggKind::Count | AggKind::Min | AggKind::Max => vec![out.add(present(arg, false))],
        AggKind::CountDistinctUnit => vec![out.add(present(None, false))],
        AggKind::Sum | AggKind::Avg | AggKind::Variance { .. } => {
            let nonzero = !matches!(kind, AggKind::Variance { .. });
            let arg = arg.ok_or_else(|| internal("an aggregate without an argument"))?;
            let mut refs = Vec::new();
            for t in terms(&arg)? {
                if nonzero && t.zero {
                    continue; // adds nothing to a sum
                }
                refs.push(out.add(present(Some(t.expr), nonzero)));
            }
            if refs.is_empty() {
                // Every part is zero: nobody contributes anything.
                refs.push(out.add(present(Some(lit(0i64)), true)));
            }
            refs
        }
    })
}

/// The admitted canonical `plan` with the cell columns of `layout`
/// appended after `ihdsi_patients`, each
/// `count(DISTINCT person_id) FILTER (WHERE <filter> AND <value> IS NOT
/// NULL [AND <value> <> 0])`. Under `bounding`, a value with a declared
/// range is tested as the site clamps it.
pub fn with_cells(
    plan: &LogicalPlan,
    layout: &CellLayout,
    bounding: Option<Bounding>,
) -> Result<LogicalPlan> {
    if layout.sources.is_empty() {
        return Ok(plan.clone());
    }
    let (proj, agg) = canonical(plan)?;
    let unit = patient_unit(proj, agg)?;
    let input = agg.input.schema();
    let mut aggr = agg.aggr_expr.clone();
    let first = aggr.len();
    for (n, s) in layout.sources.iter().enumerate() {
        let mut conditions: Vec<Expr> = s.filter.iter().cloned().collect();
        if let Some(v) = &s.value {
            let v = match (s.bounds, bounding) {
                (Some(b), Some(_)) => clamp(v.clone(), b.lo, b.hi, input)?,
                _ => v.clone(),
            };
            conditions.push(v.clone().is_not_null());
            if s.nonzero {
                conditions.push(v.not_eq(lit(0i64)));
            }
        }
        let filter = conditions.into_iter().reduce(Expr::and).map(Box::new);
        aggr.push(
            Expr::AggregateFunction(AggregateFunction::new_udf(
                count_udaf(),
                vec![unit.clone()],
                true,
                filter,
                vec![],
                None,
            ))
            .alias(format!("ihdsi_cell_{n}")),
        );
    }
    let extended = LogicalPlanBuilder::from(agg.input.as_ref().clone())
        .aggregate(agg.group_expr.clone(), aggr)
        .and_then(|b| b.build())
        .map_err(internal)?;
    let schema = std::sync::Arc::clone(extended.schema());
    let mut exprs: Vec<Expr> = proj
        .expr
        .iter()
        .map(|e| rebase(e, agg, &schema))
        .collect::<Result<_>>()?;
    for n in 0..layout.sources.len() {
        exprs.push(
            Expr::Column(Column::from(
                schema.qualified_field(agg.group_expr.len() + first + n),
            ))
            .alias(cell_column(n)),
        );
    }
    LogicalPlanBuilder::from(extended)
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(internal)
}

/// The canonical projection's column `e`, pointed at the same field of the
/// extended aggregation (whose first fields are the original ones).
fn rebase(e: &Expr, agg: &Aggregate, schema: &datafusion::common::DFSchemaRef) -> Result<Expr> {
    let (name, col) =
        crate::site::column_of(e).ok_or_else(|| internal("output is not a column"))?;
    let i = agg.schema.index_of_column(col).map_err(internal)?;
    Ok(Expr::Column(Column::from(schema.qualified_field(i))).alias(name))
}

/// The argument of the hidden patient count (the canonical plan's last
/// column).
fn patient_unit(proj: &datafusion::logical_expr::Projection, agg: &Aggregate) -> Result<Expr> {
    let last = proj
        .expr
        .last()
        .ok_or_else(|| internal("no patient count"))?;
    match source_aggregate(last, agg)? {
        Expr::AggregateFunction(f) => f.params.args.first().cloned(),
        Expr::Alias(a) => match a.expr.as_ref() {
            Expr::AggregateFunction(f) => f.params.args.first().cloned(),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| internal("no patient count"))
}

#[cfg(test)]
mod tests;
