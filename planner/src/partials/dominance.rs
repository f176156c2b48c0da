//! The inputs of the p% dominance rule: what each patient contributes to
//! every cell that carries a sum of values.
//!
//! An exact SUM over a group that one or two patients dominate tells the
//! second-largest contributor (or anyone who knows the rest) the largest
//! patient's value, however many patients the group has (attack A05).
//! Statistical agencies guard magnitude tables with the p% rule: a cell is
//! withheld when `X − x₁ − x₂ < p/100 · x₁`, where `x₁ ≥ x₂` are the two
//! largest contributions and `X` the total (ESSnet Handbook on SDC, ch. 4).
//!
//! The rule is judged on what actually adds up, so that no rewriting of
//! the argument escapes it:
//!
//! * **sums and averages**: each data term of the argument
//!   ([`crate::analysis::terms::terms`]) is judged on its own per-patient totals.
//!   `sum(value + 1000)` is judged on `value`, not on contributions that a
//!   constant offset made look alike; the constant term is a count, and
//!   rests on its own cell. Scaling (`value * 2`) changes no ratio.
//! * **variances and standard deviations** (a *spread* entry): on each
//!   patient's squared deviations from the mean, which no shift of the
//!   values changes. Sites do not know the federation's mean, so each
//!   sends, per group, its two largest deviations from its own mean and its
//!   largest row count; the coordinator bounds every patient's deviation
//!   from the global mean by `(√d + √n·|μₛ − μ|)²` (Cauchy–Schwarz), which
//!   can only make the rule stricter.
//!
//! The contributions must be those of the whole federation's cell, so a
//! site cannot decide alone: each site summarises its patients'
//! contributions per group and sends the summaries as hidden columns after
//! the cell counts; the coordinator combines them, applies the rule and
//! drops them before anything is released.
//!
//! This module lists the entries of a canonical subplan and builds the
//! per-patient plan a site runs for them: the subplan's input grouped by its
//! keys and the privacy unit. Under contribution bounding it applies the
//! same clamping and the same choice of groups per patient as
//! [`crate::partials::bounding::bound_contributions`], so the rule sees the
//! contributions actually summed.

use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection, cast, lit,
};

use crate::analysis::aggregates::{argument_bounds, classify};

use crate::analysis::lineage::lineage;
use crate::analysis::terms::terms;
use crate::error::Result;
use crate::partials::bounding::{
    aggregate, canonical, clamp, column, internal, keep_top_groups, source_aggregate,
};
use crate::release::aggregates::AggKind;
use crate::release::dominance::DominanceEntry;
use ihdsi_catalog::Bounding;

/// A site's per-patient contributions to the judged cells of one release.
#[derive(Debug, Clone)]
pub struct Contributions {
    /// Output: the group keys `k0..`, then per entry its
    /// [`contribution_width`] `Float64` columns, one row per patient and
    /// group.
    pub plan: LogicalPlan,
    pub entries: Vec<DominanceEntry>,
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

/// One entry and the per-patient aggregates that feed it.
struct Judged {
    entry: DominanceEntry,
    values: Vec<Expr>,
}

fn judged(
    classified: &[(AggKind, &AggregateFunction)],
    bounding: Option<Bounding>,
    input: &datafusion::common::DFSchemaRef,
) -> Result<Vec<Judged>> {
    let mut out = Vec::new();
    // The last partial is the hidden patient count, never judged.
    let partials = classified.len().saturating_sub(1);
    for (j, (kind, f)) in classified.iter().take(partials).enumerate() {
        let filter = f.params.filter.clone();
        let Some(arg) = f.params.args.first().cloned() else {
            continue;
        };
        let float = |e: Expr| cast(e, DataType::Float64);
        match kind {
            AggKind::Sum => {
                if let Some(b) = bounding.and(argument_bounds(f)) {
                    // Bounded sums take a plain column: one term, clamped.
                    let v = clamp(arg, b.lo, b.hi, input)?;
                    out.push(Judged {
                        entry: DominanceEntry {
                            partial: j,
                            spread: false,
                        },
                        values: vec![aggregate(sum_udaf(), float(v), filter)],
                    });
                    continue;
                }
                for t in terms(&arg, input)?
                    .into_iter()
                    .filter(|t| t.data && !t.zero)
                {
                    out.push(Judged {
                        entry: DominanceEntry {
                            partial: j,
                            spread: false,
                        },
                        values: vec![aggregate(sum_udaf(), float(t.expr), filter.clone())],
                    });
                }
            }
            AggKind::Variance { .. } => {
                let x = float(arg);
                out.push(Judged {
                    entry: DominanceEntry {
                        partial: j,
                        spread: true,
                    },
                    values: vec![
                        aggregate(sum_udaf(), x.clone(), filter.clone()),
                        aggregate(sum_udaf(), x.clone() * x.clone(), filter.clone()),
                        float(aggregate(count_udaf(), x, filter)),
                    ],
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The cells of a canonical subplan that the p% rule judges.
pub fn entries(plan: &LogicalPlan) -> Result<Vec<DominanceEntry>> {
    let (proj, agg) = canonical(plan)?;
    let c = classified(proj, agg)?;
    Ok(judged(&c, None, agg.input.schema())?
        .into_iter()
        .map(|j| j.entry)
        .collect())
}

/// The per-patient plan of `plan`'s judged cells, or `None` when it has
/// none.
pub fn contributions(
    plan: &LogicalPlan,
    bounding: Option<Bounding>,
) -> Result<Option<Contributions>> {
    let (proj, agg) = canonical(plan)?;
    let classified = classified(proj, agg)?;
    let keys = agg.group_expr.len();
    let input = agg.input.schema();
    let judged = judged(&classified, bounding, input)?;
    if judged.is_empty() {
        return Ok(None);
    }
    let unit = match classified.last() {
        Some((AggKind::CountDistinctUnit, f)) => f.params.args.first().cloned(),
        _ => None,
    }
    .ok_or_else(|| internal("no patient count"))?;
    let mut inner = Vec::new();
    for j in &judged {
        for v in &j.values {
            inner.push(v.clone().alias(format!("ihdsi_s{}", inner.len())));
        }
    }
    let width = inner.len();
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
        .map(|i| column(&per_patient, i).alias(crate::release::columns::key_column(i)))
        .collect();
    // Bounded sums are also capped per patient at C rows' worth.
    let caps = judged
        .iter()
        .flat_map(|j| {
            let b = classified[j.entry.partial].1;
            let cap = match (bounding, argument_bounds(b)) {
                (Some(caps), Some(bounds)) if !j.entry.spread => Some((caps, bounds)),
                _ => None,
            };
            std::iter::repeat_n(cap, j.values.len())
        })
        .collect::<Vec<_>>();
    for (n, cap) in caps.into_iter().enumerate().take(width) {
        let q = column(&per_patient, keys + 1 + n);
        let q = match cap {
            Some((caps, b)) => {
                let c = caps.max_rows_per_patient as f64;
                clamp(q, c * b.lo, c * b.hi, &per_patient)?
            }
            None => q,
        };
        exprs.push(cast(q, DataType::Float64).alias(format!("ihdsi_s{n}")));
    }
    let plan = builder
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(internal)?;
    Ok(Some(Contributions {
        plan,
        entries: judged.into_iter().map(|j| j.entry).collect(),
    }))
}
