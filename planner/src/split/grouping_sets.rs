//! `ROLLUP`, `CUBE` and `GROUPING SETS` as one release per grouping set.
//!
//! A grouping-set aggregate over patient data is a union of plain
//! aggregates, one per grouping set, each with NULL in the keys its set
//! leaves out. Written that way, each grouping set is an ordinary release
//! boundary: its own site subplans, its own thresholds and cell rules, its
//! own charge in dp mode, exactly like a branch of a `UNION ALL`. Nothing
//! about a total row is special to the disclosure layer.
//!
//! The union keeps the grouping aggregate's schema, the internal
//! `__grouping_id` column included, filled with the value DataFusion would
//! have computed for the set (the semantic bitmask, and the ordinal of a
//! repeated set above it), so that `GROUPING()`, resolved beforehand by
//! DataFusion's own analyzer rule into arithmetic on that column, and
//! everything else above the aggregate read the same columns as before.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{Aggregate, Expr, GroupingSet, LogicalPlan, Projection, Union};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction;

use crate::error::{PlanError, Result};

/// The most grouping sets one aggregate may expand to: each is a release
/// with its own round of site subplans.
pub const MAX_GROUPING_SETS: usize = 16;

/// `plan` with every `GROUPING(...)` rewritten by DataFusion's analyzer
/// rule into arithmetic on the aggregate's `__grouping_id` column.
pub fn resolve_grouping_functions(plan: LogicalPlan) -> Result<LogicalPlan> {
    ResolveGroupingFunction::new()
        .analyze(plan, &ConfigOptions::default())
        .map_err(PlanError::from_datafusion)
}

/// The grouping sets of `agg`, if its `GROUP BY` has any.
pub fn grouping_sets(agg: &Aggregate) -> Option<&GroupingSet> {
    match agg.group_expr.as_slice() {
        [Expr::GroupingSet(gs)] => Some(gs),
        _ => None,
    }
}

/// The grouping sets of `gs`, in SQL's order, each as the list of its
/// expressions.
fn enumerate(gs: &GroupingSet) -> Result<Vec<Vec<Expr>>> {
    let sets: Vec<Vec<Expr>> = match gs {
        GroupingSet::Rollup(keys) => (0..=keys.len()).rev().map(|i| keys[..i].to_vec()).collect(),
        GroupingSet::Cube(keys) => {
            if keys.len() > 4 {
                return Err(too_many(1usize << keys.len().min(20)));
            }
            (0..1usize << keys.len())
                .map(|mask| {
                    keys.iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << (keys.len() - 1 - i)) == 0)
                        .map(|(_, k)| k.clone())
                        .collect()
                })
                .collect()
        }
        GroupingSet::GroupingSets(sets) => sets.clone(),
    };
    if sets.len() > MAX_GROUPING_SETS {
        return Err(too_many(sets.len()));
    }
    Ok(sets)
}

fn too_many(n: usize) -> PlanError {
    PlanError::unsupported(
        crate::rules::Rule::ReleasePerGroupingSet,
        format!("{n} grouping sets"),
        format!(
            "Each grouping set is its own release, run at every site; at most {MAX_GROUPING_SETS} per aggregate. Split the query, or use ROLLUP instead of CUBE"
        ),
    )
}

/// The grouping-set aggregate `agg` as a union of one plain aggregate per
/// grouping set, each replaced by what `release` makes of it, under the
/// aggregate's own schema.
pub fn expand(
    agg: &Aggregate,
    gs: &GroupingSet,
    release: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let all: Vec<&Expr> = gs.distinct_expr();
    let sets = enumerate(gs)?;
    let id_field = agg
        .schema
        .field_with_unqualified_name(Aggregate::INTERNAL_GROUPING_ID)
        .map_err(|e| PlanError::Internal(e.to_string()))?;
    let id_type = id_field.data_type().clone();
    let mut ordinals: HashMap<Vec<bool>, u64> = HashMap::new();
    let mut branches = Vec::with_capacity(sets.len());
    for set in &sets {
        let mut keys: Vec<Expr> = Vec::with_capacity(set.len());
        for k in set {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let absent: Vec<bool> = all.iter().map(|e| !keys.contains(e)).collect();
        let ordinal = ordinals.entry(absent.clone()).or_insert(0);
        let id = grouping_id(&absent, *ordinal);
        *ordinal += 1;
        let plain = Aggregate::try_new(Arc::clone(&agg.input), keys, agg.aggr_expr.clone())
            .map_err(PlanError::from_datafusion)?;
        let released = release(&plain)?;
        branches.push(Arc::new(branch(agg, &plain, released, &all, id, &id_type)?));
    }
    // The union's columns are plain `s0, s1, …` (DataFusion re-derives a
    // union's schema unqualified, by position); the projection above it
    // gives them the grouping aggregate's qualified names back.
    let fields = agg.schema.fields().iter().enumerate().map(|(i, f)| {
        let bare =
            datafusion::arrow::datatypes::Field::new(set_column(i), f.data_type().clone(), true);
        (None, Arc::new(bare))
    });
    let schema = DFSchema::new_with_metadata(fields.collect(), Default::default())
        .map_err(|e| PlanError::Internal(e.to_string()))?;
    let union = LogicalPlan::Union(Union {
        inputs: branches,
        schema: Arc::new(schema),
    });
    let named = agg
        .schema
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            Expr::Column(Column::from_name(set_column(i))).alias_qualified(q.cloned(), f.name())
        })
        .collect();
    Projection::try_new(named, Arc::new(union))
        .map(LogicalPlan::Projection)
        .map_err(PlanError::from_datafusion)
}

/// The name of column `i` of the union of grouping sets.
fn set_column(i: usize) -> String {
    format!("ihdsi_set_{i}")
}

/// DataFusion's `__grouping_id` of a grouping set: bit `n-1-i` set when
/// key `i` is absent, the ordinal of a repeated set above the `n` bits.
fn grouping_id(absent: &[bool], ordinal: u64) -> u64 {
    let mask = absent
        .iter()
        .fold(0u64, |acc, &a| (acc << 1) | u64::from(a));
    mask | (ordinal << absent.len())
}

/// One grouping set's released rows in the grouping aggregate's column
/// order: its own keys, NULL for the others, its `__grouping_id`, then the
/// aggregates.
fn branch(
    agg: &Aggregate,
    plain: &Aggregate,
    released: LogicalPlan,
    all: &[&Expr],
    id: u64,
    id_type: &datafusion::arrow::datatypes::DataType,
) -> Result<LogicalPlan> {
    let internal = |e: datafusion::common::DataFusionError| PlanError::Internal(e.to_string());
    let of_plain = |j: usize| Expr::Column(Column::from(plain.schema.qualified_field(j)));
    let plain_keys = plain.group_expr.len();
    let mut exprs = Vec::with_capacity(agg.schema.fields().len());
    for (i, e) in all.iter().enumerate() {
        let value = match plain.group_expr.iter().position(|k| k == *e) {
            Some(j) => of_plain(j),
            None => {
                let t = agg.schema.field(i).data_type();
                Expr::Literal(ScalarValue::try_from(t).map_err(internal)?, None)
            }
        };
        exprs.push(value.alias(set_column(i)));
    }
    let id_value = ScalarValue::UInt64(Some(id))
        .cast_to(id_type)
        .map_err(internal)?;
    exprs.push(Expr::Literal(id_value, None).alias(set_column(all.len())));
    for a in 0..agg.aggr_expr.len() {
        exprs.push(of_plain(plain_keys + a).alias(set_column(all.len() + 1 + a)));
    }
    Projection::try_new(exprs, Arc::new(released))
        .map(LogicalPlan::Projection)
        .map_err(PlanError::from_datafusion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_ids_match_datafusion() {
        // CUBE(a, b): 0b00 both, 0b01 without b, 0b10 without a, 0b11 none.
        assert_eq!(grouping_id(&[false, false], 0), 0);
        assert_eq!(grouping_id(&[false, true], 0), 1);
        assert_eq!(grouping_id(&[true, false], 0), 2);
        assert_eq!(grouping_id(&[true, true], 0), 3);
        // The second occurrence of a set carries ordinal 1 above the mask.
        assert_eq!(grouping_id(&[false, true], 1), 0b101);
    }
}
