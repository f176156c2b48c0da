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
//! **Terms.** An argument is cut into the parts it adds up
//! ([`crate::analysis::terms`]). Every term is a cell of its own; the
//! aggregate's cell count is the smallest of its terms'. The p% rule judges
//! each data term (see [`crate::partials::dominance`]), so a constant
//! offset cannot make the contributions look alike.
//!
//! The layout is derived from the canonical subplan alone, by the
//! coordinator and again by every site from the SQL it received, so both
//! agree on the columns without trusting each other: the site answer is
//! `k*, p*, ihdsi_patients, ihdsi_c*` and then the dominance columns.

use datafusion::common::Column;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, lit};

use crate::analysis::aggregates::classify;

use crate::analysis::exprs::{is_zero, strip_alias};
use crate::analysis::lineage::lineage;
use crate::analysis::terms::terms;
use crate::error::Result;
use crate::partials::bounding::{canonical, clamp, internal, source_aggregate};
use crate::release::aggregates::AggKind;
use crate::release::cells::{CellLayout, CellRef, CellSource};
use crate::release::columns::cell_column;
use ihdsi_catalog::Bounding;

/// Adds a cell to `layout`, or finds it there: a cell every patient of the
/// group provably has is the group itself.
fn add_cell(layout: &mut CellLayout, s: CellSource) -> CellRef {
    let trivially_present = match &s.value {
        None => true,
        Some(Expr::Literal(v, _)) => !(v.is_null() || s.nonzero && is_zero(v)),
        _ => false,
    };
    if s.filter.is_none() && trivially_present {
        return CellRef::Group;
    }
    if let Some(i) = layout.sources.iter().position(|x| *x == s) {
        return CellRef::Column(i);
    }
    layout.sources.push(s);
    CellRef::Column(layout.sources.len() - 1)
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
        let refs = partial_cells(kind, f, agg.input.schema(), &mut out)?;
        out.per_partial.push(refs);
    }
    Ok(out)
}

fn partial_cells(
    kind: AggKind,
    f: &AggregateFunction,
    input: &datafusion::common::DFSchema,
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
        AggKind::Count | AggKind::Min | AggKind::Max => vec![add_cell(out, present(arg, false))],
        AggKind::CountDistinctUnit => vec![add_cell(out, present(None, false))],
        AggKind::Sum | AggKind::Avg | AggKind::Variance { .. } => {
            let nonzero = !matches!(kind, AggKind::Variance { .. });
            let arg = arg.ok_or_else(|| internal("an aggregate without an argument"))?;
            let mut refs = Vec::new();
            for t in terms(&arg, input)? {
                if nonzero && t.zero {
                    continue; // adds nothing to a sum
                }
                refs.push(add_cell(out, present(Some(t.expr), nonzero)));
            }
            if refs.is_empty() {
                // Every part is zero: nobody contributes anything.
                refs.push(add_cell(out, present(Some(lit(0i64)), true)));
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
        crate::analysis::exprs::column_of(e).ok_or_else(|| internal("output is not a column"))?;
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
