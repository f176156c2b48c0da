//! The inputs of the p% dominance rule: what each patient contributes to
//! every SUM cell of a release.
//!
//! An exact SUM over a group that one or two patients dominate tells the
//! second-largest contributor (or anyone who knows the rest) the largest
//! patient's value, however many patients the group has (attack A05).
//! Statistical agencies guard magnitude tables with the p% rule: a cell is
//! withheld when `X − x₁ − x₂ < p/100 · x₁`, where `x₁ ≥ x₂` are the two
//! largest contributions and `X` the total (ESSnet Handbook on SDC, ch. 4).
//!
//! The contributions must be those of the whole federation's cell, so a
//! site cannot decide alone: each site computes, per group, its two largest
//! patient contributions and the total of their absolute values, and sends
//! them as hidden columns after `ihdsi_patients`. The coordinator keeps the
//! two largest over all sites, adds up the totals, applies the rule and
//! drops those columns before anything is released.
//!
//! This module builds the per-patient plan a site runs for that: the
//! canonical subplan's input grouped by its keys and the privacy unit, one
//! column per SUM partial. Under contribution bounding it applies the same
//! clamping and the same choice of groups per patient as
//! [`crate::bounding::bound_contributions`], so the rule sees the
//! contributions actually summed.

use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection, cast, lit,
};

use crate::aggregates::{AggKind, argument_bounds, classify};
use crate::bounding::{
    aggregate, canonical, clamp, column, internal, keep_top_groups, source_aggregate,
};
use crate::error::Result;
use crate::lineage::lineage;
use ihdsi_catalog::Bounding;

/// A site's per-patient contributions to the SUM cells of one release.
#[derive(Debug, Clone)]
pub struct Contributions {
    /// Output: the group keys `k0..`, then one `Float64` contribution per
    /// entry of `partials`, one row per patient and group.
    pub plan: LogicalPlan,
    /// The partial columns (`p*` indices) that are SUM partials.
    pub partials: Vec<usize>,
}

/// The SUM partials of a canonical subplan, by `p*` index: the partials the
/// dominance rule applies to (a release's AVG is merged from one of them).
pub fn sum_partials(plan: &LogicalPlan) -> Result<Vec<usize>> {
    let (proj, agg) = canonical(plan)?;
    Ok(sums_of(&classified(proj, agg)?))
}

/// Each partial of the canonical projection over `agg`, classified (the
/// last is the hidden patient count).
fn classified<'a>(
    proj: &'a Projection,
    agg: &'a Aggregate,
) -> Result<Vec<(AggKind, &'a AggregateFunction)>> {
    let input_lineage = lineage(&agg.input)?;
    proj.expr
        .iter()
        .skip(agg.group_expr.len())
        .map(|e| classify(source_aggregate(e, agg)?, &agg.input, &input_lineage))
        .collect()
}

fn sums_of(classified: &[(AggKind, &AggregateFunction)]) -> Vec<usize> {
    (0..classified.len())
        .filter(|&j| classified[j].0 == AggKind::Sum)
        .collect()
}

/// The per-patient plan of `plan`'s SUM cells, or `None` when it has none.
pub fn contributions(
    plan: &LogicalPlan,
    bounding: Option<Bounding>,
) -> Result<Option<Contributions>> {
    let (proj, agg) = canonical(plan)?;
    let classified = classified(proj, agg)?;
    let partials = sums_of(&classified);
    if partials.is_empty() {
        return Ok(None);
    }
    let keys = agg.group_expr.len();
    let input = agg.input.schema();
    let unit = match classified.last() {
        Some((AggKind::CountDistinctUnit, f)) => f.params.args.first().cloned(),
        _ => None,
    }
    .ok_or_else(|| internal("no patient count"))?;
    let mut inner = Vec::new();
    let mut bounds = Vec::new();
    for (n, &j) in partials.iter().enumerate() {
        let f = classified[j].1;
        let b = bounding.and(argument_bounds(f));
        let arg = f.params.args.first().cloned().unwrap_or_else(|| lit(1i64));
        let value = match b {
            Some(b) => clamp(arg, b.lo, b.hi, input)?,
            None => arg,
        };
        inner.push(
            aggregate(sum_udaf(), value, f.params.filter.clone()).alias(format!("ihdsi_s{n}")),
        );
        bounds.push(b);
    }
    inner.push(aggregate(count_udaf(), lit(1i64), None).alias("ihdsi_rows"));
    let mut group = agg.group_expr.clone();
    group.push(unit);
    let mut builder = LogicalPlanBuilder::from(agg.input.as_ref().clone())
        .aggregate(group, inner)
        .map_err(internal)?;
    let per_patient = std::sync::Arc::clone(builder.schema());
    if let Some(b) = bounding
        && keys > 0
    {
        builder = keep_top_groups(builder, &per_patient, keys, b.max_groups_per_patient)?;
    }
    let mut exprs: Vec<Expr> = (0..keys)
        .map(|i| column(&per_patient, i).alias(crate::release::key_column(i)))
        .collect();
    for (n, b) in bounds.into_iter().enumerate() {
        let q = column(&per_patient, keys + 1 + n);
        let q = match (b, bounding) {
            (Some(b), Some(caps)) => {
                let cap = caps.max_rows_per_patient as f64;
                clamp(q, cap * b.lo, cap * b.hi, &per_patient)?
            }
            _ => q,
        };
        exprs.push(cast(q, DataType::Float64).alias(format!("ihdsi_s{n}")));
    }
    let plan = builder
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(internal)?;
    Ok(Some(Contributions { plan, partials }))
}
