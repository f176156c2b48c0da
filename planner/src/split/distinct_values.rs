//! `count(DISTINCT x)` of a value other than the patient, as the number of
//! released groups of `GROUP BY keys, x`.
//!
//! A distinct count rests on every value it counts: one patient with a
//! value nobody else in the cell has moves it by one, however many
//! patients the cell holds (docs/privacy.md, A38). So a value counts only
//! if a thresholded `GROUP BY keys, x` would release it. That is what this
//! rewrite builds: the aggregate without its distinct counts is one
//! release, each `count(DISTINCT x) [FILTER (WHERE f)]` is a release of its
//! own grouped by the keys and `x` (over the rows where `f` holds and `x` is
//! not NULL), and above the boundary, at the coordinator, the released
//! groups are counted per key and joined to the first release. Every
//! number the analyst sees is then computed from released rows only, and
//! each counted value passed the group rules, site thresholds included.
//! With thresholds at 1 the answer is SQL's `count(DISTINCT x)`.

use std::sync::Arc;

use datafusion::common::{Column, NullEquality};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Projection, lit,
};

use crate::analysis::exprs::strip_alias;
use crate::analysis::lineage::{expr_is_unit, lineage};
use crate::error::{PlanError, Result};

/// Where an output aggregate of the rewritten aggregate comes from.
enum Source {
    /// Column `j` among the main release's aggregates.
    Main(usize),
    /// The count of released groups of distinct release `k`.
    Distinct(usize),
}

/// A distinct count of values: its argument and FILTER.
type DistinctValue = (Expr, Option<Expr>);

/// For each aggregate of `agg`, its argument and FILTER if it counts
/// distinct values other than patients. The input's lineage is traced only
/// when some aggregate is a one-argument `count(DISTINCT …)`.
fn distinct_values(agg: &Aggregate) -> Result<Vec<Option<DistinctValue>>> {
    let candidate = |e: &Expr| match strip_alias(e) {
        Expr::AggregateFunction(f)
            if f.func.name().eq_ignore_ascii_case("count")
                && f.params.distinct
                && f.params.args.len() == 1 =>
        {
            Some((
                f.params.args[0].clone(),
                f.params.filter.as_deref().cloned(),
            ))
        }
        _ => None,
    };
    let candidates: Vec<Option<DistinctValue>> = agg.aggr_expr.iter().map(candidate).collect();
    if candidates.iter().all(Option::is_none) {
        return Ok(candidates);
    }
    let units = lineage(&agg.input)?;
    Ok(candidates
        .into_iter()
        .map(|c| c.filter(|(arg, _)| !expr_is_unit(arg, &agg.input, &units)))
        .collect())
}

/// In dp mode a count of distinct values is refused: which groups a noisy
/// release shows is not made for counting, and one patient can add any
/// number of values. Only release boundaries (the top-most aggregates over
/// patient data, as `split::replace_boundaries` finds them) are checked: a
/// per-patient distinct count below a boundary is computed at one site.
pub fn refuse_in_dp(plan: &LogicalPlan) -> Result<()> {
    if !crate::analysis::lineage::reads_patient_data(plan) {
        return Ok(());
    }
    if let LogicalPlan::Aggregate(agg) = plan {
        if counts_distinct_values(agg)? {
            return Err(PlanError::policy(
                crate::rules::Rule::ReleasedDistinctValues,
                "in dp mode the federation does not count distinct values: one patient can add any number of them; count distinct patients instead",
            ));
        }
        return Ok(());
    }
    plan.inputs().into_iter().try_for_each(refuse_in_dp)
}

/// Whether `agg` counts distinct values other than patients.
pub fn counts_distinct_values(agg: &Aggregate) -> Result<bool> {
    Ok(distinct_values(agg)?.iter().any(Option::is_some))
}

fn count_star() -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        count_udaf(),
        vec![lit(1i64)],
        false,
        None,
        vec![],
        None,
    ))
}

/// `agg` as releases: its other aggregates (or a hidden `count(*)`) in one,
/// each distinct count in one grouped by the keys and the value, joined at
/// the coordinator under `agg`'s column names. `release` turns a plain
/// aggregate into its released rows, as for any boundary.
pub fn expand(
    agg: &Aggregate,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    // A repeated key is one column of the aggregate's schema: group by each
    // key once, as DataFusion does.
    let mut group: Vec<Expr> = Vec::with_capacity(agg.group_expr.len());
    for k in &agg.group_expr {
        if !group.contains(k) {
            group.push(k.clone());
        }
    }
    let keys = group.len();
    if keys + agg.aggr_expr.len() != agg.schema.fields().len() {
        return Err(PlanError::Internal(
            "the keys of a distinct count do not match the aggregate's columns".into(),
        ));
    }
    let (mut main_aggs, mut sources, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for (e, distinct) in agg.aggr_expr.iter().zip(distinct_values(agg)?) {
        match distinct {
            Some(d) => {
                sources.push(Source::Distinct(values.len()));
                values.push(d);
            }
            None => {
                sources.push(Source::Main(main_aggs.len()));
                main_aggs.push(e.clone());
            }
        }
    }
    if main_aggs.is_empty() {
        main_aggs.push(count_star().alias("ihdsi_rows"));
    }
    let main = Aggregate::try_new(Arc::clone(&agg.input), group.clone(), main_aggs)
        .map_err(PlanError::from_datafusion)?;
    let mut joined = LogicalPlanBuilder::from(release(&main)?);
    let main_key = |i: usize| Column::from(main.schema.qualified_field(i));
    for (k, (value, filter)) in values.iter().enumerate() {
        let counted = counted_groups(agg, &group, k, value, filter.as_ref(), release)?;
        joined = if keys == 0 {
            joined.cross_join(counted)
        } else {
            let right: Vec<Column> = (0..keys).map(|i| counted_column(k, key_name(i))).collect();
            joined.join_detailed(
                counted,
                JoinType::Left,
                ((0..keys).map(main_key).collect::<Vec<_>>(), right),
                None,
                NullEquality::NullEqualsNull,
            )
        }
        .map_err(PlanError::from_datafusion)?;
    }
    let joined = joined.build().map_err(PlanError::from_datafusion)?;
    let mut exprs: Vec<Expr> = (0..keys).map(|i| Expr::Column(main_key(i))).collect();
    for s in &sources {
        exprs.push(match *s {
            Source::Main(j) => Expr::Column(main_key(keys + j)),
            Source::Distinct(k) => datafusion::functions::core::expr_fn::coalesce(vec![
                Expr::Column(counted_column(k, COUNT_NAME.to_string())),
                lit(0i64),
            ]),
        });
    }
    let named = exprs
        .into_iter()
        .zip(agg.schema.iter())
        .map(|(e, (q, f))| e.alias_qualified(q.cloned(), f.name()))
        .collect();
    Projection::try_new(named, Arc::new(joined))
        .map(LogicalPlan::Projection)
        .map_err(PlanError::from_datafusion)
}

/// The number of released groups of `GROUP BY group, value` per key, over
/// the rows where `filter` holds and `value` is not NULL, as the relation
/// `ihdsi_distinct_{k}` with columns `key_{i}` and `n`.
fn counted_groups(
    agg: &Aggregate,
    group: &[Expr],
    k: usize,
    value: &Expr,
    filter: Option<&Expr>,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let present = value.clone().is_not_null();
    let condition = filter.map_or(present.clone(), |f| f.clone().and(present));
    let rows = LogicalPlanBuilder::from(agg.input.as_ref().clone())
        .filter(condition)
        .and_then(LogicalPlanBuilder::build)
        .map_err(PlanError::from_datafusion)?;
    let mut by = group.to_vec();
    by.push(value.clone());
    let by_value = Aggregate::try_new(Arc::new(rows), by, vec![count_star()])
        .map_err(PlanError::from_datafusion)?;
    let released = release(&by_value)?;
    let keys = group.len();
    let key = |i: usize| Expr::Column(Column::from(by_value.schema.qualified_field(i)));
    LogicalPlanBuilder::from(released)
        .aggregate((0..keys).map(key), vec![count_star().alias(COUNTED)])
        .and_then(|b| {
            let mut names: Vec<Expr> = (0..keys).map(|i| key(i).alias(key_name(i))).collect();
            names.push(Expr::Column(Column::from_name(COUNTED)).alias(COUNT_NAME));
            b.project(names)
        })
        .and_then(|b| b.alias(relation(k)))
        .and_then(LogicalPlanBuilder::build)
        .map_err(PlanError::from_datafusion)
}

/// The column of the released-group counts, named apart from the keys
/// (which may be called anything) while it is computed, then `n`.
const COUNTED: &str = "ihdsi_released_groups";
const COUNT_NAME: &str = "n";

fn relation(k: usize) -> String {
    format!("ihdsi_distinct_{k}")
}

fn key_name(i: usize) -> String {
    format!("key_{i}")
}

fn counted_column(k: usize, name: String) -> Column {
    Column::new(Some(relation(k)), name)
}
