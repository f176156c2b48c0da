//! Contribution bounding: how much one patient can add to a release.
//!
//! A site rewrites the canonical subplan it admitted into a two-level
//! aggregation before running it:
//!
//! ```text
//! per patient and group:  SELECT keys, person_id,
//!                                count(...) AS q0,                 -- rows
//!                                sum(clamp(x, lo, hi)) AS q1, ...   -- clamped values
//!                         GROUP BY keys, person_id
//! groups per patient:     row_number() OVER (PARTITION BY person_id
//!                             ORDER BY rows DESC, keys) <= max_groups_per_patient
//! per group:              SELECT keys, sum(least(q0, C)),           -- rows capped at C
//!                                sum(clamp(q1, C·lo, C·hi)),        -- sum capped at C rows' worth
//!                                sum(CASE WHEN q > 0 THEN 1 END) ...  -- patients
//!                         GROUP BY keys
//! ```
//!
//! The output has exactly the columns and types of the unbounded subplan, so
//! the coordinator's merge and plausibility checks are unchanged. Each site
//! builds this plan itself from the SQL it received: a coordinator cannot
//! switch bounding off, only ask for tighter caps (see
//! [`ihdsi_catalog::Bounding::tightest`]).
//!
//! Which groups a patient keeps when over the cap is a deterministic choice
//! that depends on that patient's own rows only (most rows first, then by
//! key), so identical queries select identical groups and removing one
//! patient changes at most that patient's groups.

use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::functions::core::expr_fn::{coalesce, greatest, least};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, ExprSchemable, LogicalPlan, LogicalPlanBuilder, SortExpr, cast, lit,
    when,
};

use crate::analysis::aggregates::{argument_bounds, classify};

use crate::analysis::exprs::column_of;
use crate::analysis::lineage::lineage;
use crate::error::{PlanError, Result};
use crate::release::aggregates::AggKind;
use ihdsi_catalog::Bounding;
use ihdsi_catalog::bounds::ValueBounds;

const RANK: &str = "ihdsi_rank";
const ROWS: &str = "ihdsi_rows";

pub(crate) fn internal(e: impl std::fmt::Display) -> PlanError {
    PlanError::Internal(format!("contribution bounding: {e}"))
}

pub(crate) fn column(schema: &DFSchemaRef, i: usize) -> Expr {
    Expr::Column(Column::from(schema.qualified_field(i)))
}

pub(crate) fn aggregate(
    udf: std::sync::Arc<datafusion::logical_expr::AggregateUDF>,
    arg: Expr,
    filter: Option<Box<Expr>>,
) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        udf,
        vec![arg],
        false,
        filter,
        vec![],
        None,
    ))
}

/// `least(greatest(e, lo), hi)`, the bounds cast to `e`'s type.
pub(crate) fn clamp(e: Expr, lo: f64, hi: f64, schema: &DFSchemaRef) -> Result<Expr> {
    let t = e.get_type(schema.as_ref()).map_err(internal)?;
    let bound = |v: f64| cast(lit(ScalarValue::Float64(Some(v))), t.clone());
    Ok(least(vec![greatest(vec![e, bound(lo)]), bound(hi)]))
}

/// Builds a group's partial from the column of per-patient values.
type Outer = Box<dyn FnOnce(Expr, &DFSchemaRef) -> Result<Expr>>;

/// One partial's per-patient aggregate (inner) and how the per-patient
/// values combine into the group's partial (outer, over column `q`).
struct BoundedPartial {
    inner: Expr,
    outer: Outer,
}

fn bounded_partial(
    kind: AggKind,
    f: &AggregateFunction,
    cap: u64,
    input: &DFSchemaRef,
) -> Result<BoundedPartial> {
    let filter = f.params.filter.clone();
    let arg = || f.params.args.first().cloned().unwrap_or_else(|| lit(1i64));
    let cap_i = i64::try_from(cap).map_err(internal)?;
    Ok(match kind {
        AggKind::Count => BoundedPartial {
            inner: Expr::AggregateFunction(f.clone()),
            outer: Box::new(move |q, _| {
                Ok(coalesce(vec![
                    aggregate(sum_udaf(), least(vec![q, lit(cap_i)]), None),
                    lit(0i64),
                ]))
            }),
        },
        AggKind::CountDistinctUnit => BoundedPartial {
            inner: aggregate(count_udaf(), arg(), filter),
            outer: Box::new(|q, _| {
                let present = when(q.gt(lit(0i64)), lit(1i64))
                    .otherwise(lit(0i64))
                    .map_err(internal)?;
                Ok(coalesce(vec![
                    aggregate(sum_udaf(), present, None),
                    lit(0i64),
                ]))
            }),
        },
        AggKind::Sum => {
            let bounds: Option<ValueBounds> = argument_bounds(f);
            let value = match bounds {
                Some(b) => clamp(arg(), b.lo, b.hi, input)?,
                None => arg(),
            };
            BoundedPartial {
                inner: aggregate(sum_udaf(), value, filter),
                outer: Box::new(move |q, schema| {
                    let per_patient = match bounds {
                        Some(b) => clamp(q, cap as f64 * b.lo, cap as f64 * b.hi, schema)?,
                        None => q,
                    };
                    Ok(aggregate(sum_udaf(), per_patient, None))
                }),
            }
        }
        _ => {
            return Err(PlanError::unsupported(
                crate::rules::Rule::DeclaredQuantities,
                "MIN, MAX, AVG or variance partials under contribution bounding",
                "Bounded releases carry counts and sums only; remove [privacy.bounding] for exact statistics in threshold mode",
            ));
        }
    })
}

/// Rewrite an admitted canonical subplan so that no patient contributes
/// more than `bounding` allows (see the module documentation).
pub fn bound_contributions(plan: &LogicalPlan, bounding: Bounding) -> Result<LogicalPlan> {
    let (proj, agg) = canonical(plan)?;
    let keys = agg.group_expr.len();
    let input_schema = agg.input.schema();
    let input_lineage = lineage(&agg.input)?;
    let mut inner_aggs = Vec::new();
    let mut outers = Vec::new();
    let mut unit = None;
    for (j, e) in proj.expr.iter().enumerate().skip(keys) {
        let aggr = source_aggregate(e, agg)?;
        let (kind, f) = classify(aggr, &agg.input, &input_lineage)?;
        if kind == AggKind::CountDistinctUnit {
            unit = f.params.args.first().cloned();
        }
        let b = bounded_partial(kind, f, bounding.max_rows_per_patient, input_schema)?;
        inner_aggs.push(b.inner.alias(format!("ihdsi_q{}", j - keys)));
        outers.push(b.outer);
    }
    let unit = unit.ok_or_else(|| internal("no patient count"))?;
    inner_aggs.push(aggregate(count_udaf(), lit(1i64), None).alias(ROWS));
    let mut group = agg.group_expr.clone();
    group.push(unit);
    let mut builder = LogicalPlanBuilder::from(agg.input.as_ref().clone())
        .aggregate(group, inner_aggs)
        .map_err(internal)?;
    let per_patient = std::sync::Arc::clone(builder.schema());
    if keys > 0 {
        builder = keep_top_groups(builder, &per_patient, keys, bounding.max_groups_per_patient)?;
    }
    let outer_aggs = outers
        .into_iter()
        .enumerate()
        .map(|(j, outer)| {
            outer(column(&per_patient, keys + 1 + j), &per_patient)
                .map(|e| e.alias(format!("ihdsi_b{j}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let key_exprs: Vec<Expr> = (0..keys).map(|i| column(&per_patient, i)).collect();
    let grouped = builder
        .aggregate(key_exprs, outer_aggs)
        .and_then(|b| b.build())
        .map_err(internal)?;
    let out = std::sync::Arc::clone(grouped.schema());
    let exprs = proj
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| cast(column(&out, i), field.data_type().clone()).alias(field.name()))
        .collect::<Vec<_>>();
    LogicalPlanBuilder::from(grouped)
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(internal)
}

/// Keep each patient's `cap` groups with the most rows (ties by key) on a
/// per-patient plan whose columns are the `keys` group keys, the unit,
/// the per-patient aggregates and, last, the patient's row count.
pub(crate) fn keep_top_groups(
    builder: LogicalPlanBuilder,
    per_patient: &DFSchemaRef,
    keys: usize,
    cap: u64,
) -> Result<LogicalPlanBuilder> {
    let rows = column(per_patient, per_patient.fields().len() - 1);
    let mut order = vec![SortExpr::new(rows, false, true)];
    order.extend((0..keys).map(|i| SortExpr::new(column(per_patient, i), true, true)));
    let rank = row_number()
        .partition_by(vec![column(per_patient, keys)])
        .order_by(order)
        .build()
        .map_err(internal)?
        .alias(RANK);
    let cap = i64::try_from(cap).map_err(internal)?;
    builder
        .window(vec![rank])
        .and_then(|b| b.filter(Expr::Column(Column::from_name(RANK)).lt_eq(lit(cap))))
        .map_err(internal)
}

/// The canonical subplan's projection and aggregation.
pub(crate) fn canonical(
    plan: &LogicalPlan,
) -> Result<(
    &datafusion::logical_expr::Projection,
    &datafusion::logical_expr::Aggregate,
)> {
    let LogicalPlan::Projection(proj) = plan else {
        return Err(internal("the subplan is not in canonical form"));
    };
    let LogicalPlan::Aggregate(agg) = proj.input.as_ref() else {
        return Err(internal("the subplan is not in canonical form"));
    };
    Ok((proj, agg))
}

/// The aggregate behind output column `e` of the canonical projection.
pub(crate) fn source_aggregate<'a>(
    e: &Expr,
    agg: &'a datafusion::logical_expr::Aggregate,
) -> Result<&'a Expr> {
    let keys = agg.group_expr.len();
    let (_, col) = column_of(e).ok_or_else(|| internal("output is not a column"))?;
    let source = agg.schema.index_of_column(col).map_err(internal)?;
    source
        .checked_sub(keys)
        .and_then(|i| agg.aggr_expr.get(i))
        .ok_or_else(|| internal("output is not an aggregate"))
}

#[cfg(test)]
pub(crate) mod tests;
