//! Admission of a received subplan at a site.
//!
//! A site accepts exactly the canonical form the coordinator produces:
//!
//! ```sql
//! SELECT <key> AS k0, ..., <partial> AS p0, ..., count(DISTINCT <person_id>) AS ihdsi_patients
//! FROM <site-local input>
//! GROUP BY <keys>
//! ```
//!
//! It re-derives everything from the SQL text with its own catalog: the
//! input must pass the same site-local checks as at the coordinator, every
//! partial must be a primitive aggregate allowed by the *site's* policy, and
//! `ihdsi_patients` must really count distinct patients. Anything else is
//! refused, so a compromised or buggy coordinator cannot make a site release
//! rows, raw values or an unthresholded group.

use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

use crate::admission;
use crate::admission::policy::{check_policy, is_site_primitive};
use crate::analysis::aggregates::classify;
use crate::analysis::exprs::column_of;
use crate::error::{PlanError, Result};
use crate::release::aggregates::AggKind;
use crate::release::columns::{PATIENTS_COLUMN, key_column, partial_column};
use ihdsi_catalog::PrivacyPolicy;

/// What a site learned from admitting a subplan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAdmission {
    /// Number of group-key columns.
    pub key_count: usize,
    /// Index of the distinct-patient count column (the last one).
    pub patients_index: usize,
    /// Set when the subplan is a release on a time axis.
    pub time_axis: Option<crate::release::axis::TimeAxis>,
}

fn reject(msg: impl Into<String>) -> PlanError {
    PlanError::NotCanonical(msg.into())
}

/// Check a subplan parsed from received SQL against the site's policy.
pub fn admit_subplan(plan: &LogicalPlan, policy: &PrivacyPolicy) -> Result<SiteAdmission> {
    let LogicalPlan::Projection(proj) = plan else {
        return Err(reject(
            "the subplan must be SELECT ... GROUP BY ... in canonical form",
        ));
    };
    let LogicalPlan::Aggregate(agg) = proj.input.as_ref() else {
        return Err(reject(
            "the subplan's SELECT must read directly from an aggregation",
        ));
    };
    let input_lineage = admission::check_boundary(agg)?;
    admission::amplification::check(&agg.input, policy)?;
    let key_count = agg.group_expr.len();
    let n = proj.expr.len();
    if n < key_count + 1 {
        return Err(reject(
            "the subplan must return every group key, its partials and ihdsi_patients",
        ));
    }
    let mut patients_ok = false;
    for (i, e) in proj.expr.iter().enumerate() {
        let source = output_source(agg, e, i, key_count, n)?;
        if i < key_count {
            continue;
        }
        let (kind, f) = classify(
            &agg.aggr_expr[source - key_count],
            &agg.input,
            &input_lineage,
        )?;
        if i + 1 == n {
            patients_ok = kind == AggKind::CountDistinctUnit && f.params.filter.is_none();
        } else {
            if !is_site_primitive(kind) {
                return Err(reject(
                    "partials must be count, sum, avg, var_pop, min or max",
                ));
            }
            check_policy(kind, f, policy, "site")?;
        }
    }
    if !patients_ok {
        return Err(reject(
            "the last column must be count(DISTINCT person_id) AS ihdsi_patients",
        ));
    }
    let time_axis = crate::analysis::axis::time_axis(agg);
    if time_axis.is_some() && !crate::admission::one_row::one_row_per_patient(&agg.input)? {
        return Err(PlanError::policy(
            crate::rules::Rule::SurvivalCurves,
            "a survival curve needs a cohort of one row per patient",
        ));
    }
    Ok(SiteAdmission {
        key_count,
        patients_index: n - 1,
        time_axis,
    })
}

/// The aggregation output that output column `i` (of `n`) of the canonical
/// projection reads, checked to be in canonical order under its canonical
/// name: the keys in GROUP BY order, then the partials, then the patients.
fn output_source(agg: &Aggregate, e: &Expr, i: usize, key_count: usize, n: usize) -> Result<usize> {
    let (name, col) = column_of(e)
        .ok_or_else(|| reject("output columns must be plain aliased aggregation outputs"))?;
    let source = agg
        .schema
        .index_of_column(col)
        .map_err(|_| reject("output column does not come from the aggregation"))?;
    // Keys come first and in GROUP BY order; the planner may merge
    // identical aggregates, so partials may share a source column.
    if (i < key_count && source != i) || (i >= key_count && source < key_count) {
        return Err(reject(
            "output columns must be the group keys in order, then aggregates",
        ));
    }
    let expected = if i < key_count {
        key_column(i)
    } else if i + 1 < n {
        partial_column(i - key_count)
    } else {
        PATIENTS_COLUMN.to_string()
    };
    if name != expected {
        return Err(reject(format!(
            "output column {i} must be named {expected}"
        )));
    }
    Ok(source)
}
