//! Tracing the privacy unit (`person_id`) through a logical plan.
//!
//! To count the distinct patients behind every released group, the release
//! boundary's input must expose a column that *is* the patient's id. This
//! module answers, for every output column of a plan node, "is this the
//! privacy unit of the rows?", and rewrites projections that dropped it so
//! that it is carried up to the boundary (what Qrlew calls propagating the
//! privacy unit).
//!
//! The analysis is deliberately conservative: a column counts as the unit only
//! if it is a plain reference, through projections, aliases, filters, sorts,
//! inner joins and per-patient aggregates, to `person_id` of a patient table.
//! Anything else (arithmetic, outer-join sides that may be NULL, full joins,
//! unions mixing columns) loses the unit. Losing it can only cause a refusal,
//! never a wrong patient count.

use std::sync::Arc;

use datafusion::common::{Column, tree_node::TreeNode};
use datafusion::logical_expr::{
    Distinct, Expr, Join, JoinType, LogicalPlan, Projection, SubqueryAlias, Union,
};

use crate::analysis::exprs::strip_alias;
use crate::error::{PlanError, Result};
use ihdsi_catalog::schema;

/// The alias under which a carried privacy unit is projected.
pub const UNIT_ALIAS: &str = "ihdsi_unit";

/// What a plan node's output says about patients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// Whether any row derives from a patient table.
    pub patient: bool,
    /// Per output column: is it the privacy unit?
    pub unit: Vec<bool>,
}

impl Lineage {
    fn public(width: usize) -> Self {
        Self {
            patient: false,
            unit: vec![false; width],
        }
    }
    /// Index of the first unit column, if any.
    pub fn unit_index(&self) -> Option<usize> {
        self.unit.iter().position(|u| *u)
    }
}

/// Whether `plan` reads a patient table anywhere, subqueries included.
pub fn reads_patient_data(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && schema::is_patient_table(scan.table_name.table())
        {
            found = true;
        }
        Ok(if found {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    found
}

/// Names of the patient tables `plan` reads, subqueries included.
pub fn patient_tables(plan: &LogicalPlan) -> std::collections::BTreeSet<String> {
    let mut tables = std::collections::BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && schema::is_patient_table(scan.table_name.table())
        {
            tables.insert(scan.table_name.table().to_ascii_lowercase());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    tables
}

/// Whether `expr`, evaluated over `input`, is the privacy unit.
pub fn expr_is_unit(expr: &Expr, input: &LogicalPlan, lineage: &Lineage) -> bool {
    match strip_alias(expr) {
        Expr::Column(c) => input
            .schema()
            .index_of_column(c)
            .is_ok_and(|i| lineage.unit.get(i).copied().unwrap_or(false)),
        _ => false,
    }
}

fn project(exprs: &[Expr], input: &LogicalPlan) -> Result<Lineage> {
    let inner = lineage(input)?;
    let unit = exprs
        .iter()
        .map(|e| expr_is_unit(e, input, &inner))
        .collect();
    Ok(Lineage {
        patient: inner.patient,
        unit,
    })
}

/// The input of an operator that passes its input's columns through
/// unchanged (filters, sorts, limits, aliases, `DISTINCT`), if `plan` is one.
pub fn pass_through(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => plan.inputs().first().copied(),
        _ => None,
    }
}

/// The input of join `j` that its output column `index` comes from, and
/// the column's index there; `None` for the match flag of a mark join (or
/// an index past the join's columns).
pub fn join_source(j: &Join, index: usize) -> Option<(&LogicalPlan, usize)> {
    let left = j.left.schema().fields().len();
    let right = j.right.schema().fields().len();
    match j.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
            (index < left).then_some((j.left.as_ref(), index))
        }
        JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
            (index < right).then_some((j.right.as_ref(), index))
        }
        _ if index < left => Some((j.left.as_ref(), index)),
        _ => (index - left < right).then_some((j.right.as_ref(), index - left)),
    }
}

/// Compute the lineage of `plan`'s output columns.
pub fn lineage(plan: &LogicalPlan) -> Result<Lineage> {
    let width = plan.schema().fields().len();
    if let Some(input) = pass_through(plan) {
        let mut l = lineage(input)?;
        l.patient |= reads_patient_data(plan);
        return Ok(l);
    }
    Ok(match plan {
        LogicalPlan::TableScan(scan) => {
            if !schema::is_patient_table(scan.table_name.table()) {
                return Ok(Lineage::public(width));
            }
            let unit = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| f.name() == schema::PRIVACY_UNIT)
                .collect();
            Lineage {
                patient: true,
                unit,
            }
        }
        LogicalPlan::Projection(p) => project(&p.expr, &p.input)?,
        LogicalPlan::Distinct(Distinct::On(d)) => project(&d.select_expr, &d.input)?,
        LogicalPlan::Window(w) => {
            let mut l = lineage(&w.input)?;
            l.unit.resize(width, false);
            l
        }
        LogicalPlan::Aggregate(a) => {
            let inner = lineage(&a.input)?;
            let mut unit: Vec<bool> = a
                .group_expr
                .iter()
                .map(|e| expr_is_unit(e, &a.input, &inner))
                .collect();
            unit.resize(width, false);
            Lineage {
                patient: inner.patient,
                unit,
            }
        }
        LogicalPlan::Join(j) => join_lineage(j, width)?,
        LogicalPlan::Union(u) => union_lineage(u, width)?,
        other => Lineage {
            patient: reads_patient_data(other),
            unit: vec![false; width],
        },
    })
}

/// A join's columns carry the unit from a side that keeps every row's
/// identifier: not the nullable side of an outer join.
fn join_lineage(j: &Join, width: usize) -> Result<Lineage> {
    let l = lineage(&j.left)?;
    let r = lineage(&j.right)?;
    let patient = l.patient || r.patient;
    let none = |x: &Lineage| vec![false; x.unit.len()];
    let unit = match j.join_type {
        JoinType::Inner => [l.unit, r.unit].concat(),
        JoinType::Left => [l.unit.clone(), none(&r)].concat(),
        JoinType::Right => [none(&l), r.unit.clone()].concat(),
        JoinType::LeftSemi | JoinType::LeftAnti => l.unit,
        JoinType::RightSemi | JoinType::RightAnti => r.unit,
        JoinType::LeftMark => [l.unit, vec![false]].concat(),
        JoinType::RightMark => [r.unit, vec![false]].concat(),
        JoinType::Full => vec![false; width],
    };
    Ok(Lineage { patient, unit })
}

/// A union's column carries the unit only if it does in every input.
fn union_lineage(u: &Union, width: usize) -> Result<Lineage> {
    let inputs = u
        .inputs
        .iter()
        .map(|i| lineage(i))
        .collect::<Result<Vec<_>>>()?;
    let unit = (0..width)
        .map(|i| {
            inputs
                .iter()
                .all(|l| l.unit.get(i).copied().unwrap_or(false))
        })
        .collect();
    Ok(Lineage {
        patient: inputs.iter().any(|l| l.patient),
        unit,
    })
}

/// Rewrite `plan` so that its output carries the privacy unit; returns the
/// new plan and the column holding the unit.
pub fn carry_unit(plan: &LogicalPlan) -> Result<(LogicalPlan, Column)> {
    let l = lineage(plan)?;
    if let Some(i) = l.unit_index() {
        return Ok((plan.clone(), Column::from(plan.schema().qualified_field(i))));
    }
    let lost = || {
        PlanError::unsupported(
            crate::rules::Rule::CellsRestOnPatients,
            "the aggregation's input does not carry the patient identifier (person_id)",
            "Every released group needs its distinct-patient count; keep person_id reachable through plain column references and inner joins on person_id",
        )
    };
    match plan {
        LogicalPlan::Projection(p) => {
            let (input, unit) = carry_unit(&p.input)?;
            let mut exprs = p.expr.clone();
            exprs.push(Expr::Column(unit).alias(UNIT_ALIAS));
            let new = Projection::try_new(exprs, Arc::new(input))
                .map_err(|e| PlanError::Internal(e.to_string()))?;
            Ok((LogicalPlan::Projection(new), Column::from_name(UNIT_ALIAS)))
        }
        LogicalPlan::SubqueryAlias(s) => {
            let (input, unit) = carry_unit(&s.input)?;
            let new = SubqueryAlias::try_new(Arc::new(input), s.alias.clone())
                .map_err(|e| PlanError::Internal(e.to_string()))?;
            Ok((
                LogicalPlan::SubqueryAlias(new),
                Column::new(Some(s.alias.clone()), unit.name),
            ))
        }
        LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Window(_) => {
            let (input, unit) = carry_unit(plan.inputs()[0])?;
            let rebuilt = plan
                .with_new_exprs(plan.expressions(), vec![input])
                .map_err(|e| PlanError::Internal(e.to_string()))?;
            Ok((rebuilt, unit))
        }
        _ => Err(lost()),
    }
}

/// Whether any expression of `plan` (not its inputs) holds a subquery.
pub fn has_subquery_exprs(plan: &LogicalPlan) -> bool {
    plan.expressions().iter().any(|e| {
        e.exists(|x| {
            Ok(matches!(
                x,
                Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
            ))
        })
        .unwrap_or(true)
    })
}
