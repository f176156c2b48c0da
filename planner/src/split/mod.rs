//! SQL → logical plan → release boundaries → federated plan.
//!
//! The **release boundary** is the top-most aggregation over patient data.
//! Everything below it runs at each site with unchanged meaning (checked by
//! [`crate::admission`]); the boundary aggregate is split into site partials
//! and a coordinator merge ([`crate::analysis::aggregates`]); everything above it runs
//! at the coordinator over the released groups only. A query can have several
//! boundaries (two released aggregates joined or unioned above them).
//!
//! We split the *unoptimised* plan: it is still shaped like the SQL the
//! analyst wrote, which keeps the site SQL readable and the unparser on its
//! best-tested path. Each side optimises its own part afterwards.

pub mod aggregates;
pub mod distinct_values;
pub mod explain;
pub mod grouping_sets;
pub mod pruning;
pub mod unparse;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::{empty::EmptyTable, provider_as_source};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Union};

use crate::admission;
use crate::admission::policy::check_policy;
use crate::analysis::aggregates::classify;
use crate::analysis::lineage::{carry_unit, patient_tables, reads_patient_data};
use crate::error::{PlanError, Result};
use crate::release::{PATIENTS_COLUMN, Release, key_column, partial_column};
use crate::split::aggregates::Partials;
use crate::split::unparse::to_site_sql;
use ihdsi_catalog::PrivacyPolicy;

/// Name of the in-memory table holding release `i` at the coordinator.
pub fn release_table(i: usize) -> String {
    format!("ihdsi_release_{i}")
}

/// A federated query: its releases, and the original plan from which the
/// coordinator's part is rebuilt once the released groups are known.
#[derive(Debug, Clone)]
pub struct FederatedPlan {
    /// The analyst's SQL.
    pub sql: String,
    /// One per release boundary; empty for queries over public tables only.
    pub releases: Vec<Release>,
    /// Whether the analyst asked for `EXPLAIN`.
    pub explain: bool,
    original: LogicalPlan,
    /// The result's schema as DataFusion will produce it: the coordinator
    /// plan after the analyzer (type coercion: a UNION of an integer and
    /// a float release is a float column), all fields nullable.
    result: datafusion::arrow::datatypes::Schema,
}

/// Parse and plan `sql` over the virtual schema registered in `state`.
pub async fn plan_query(
    state: &SessionState,
    sql: &str,
    policy: &PrivacyPolicy,
) -> Result<FederatedPlan> {
    plan_query_with_params(state, sql, None, policy).await
}

/// The positional parameters (`$1`, `$2`, ...) of `sql` and their types,
/// where DataFusion can infer them (`Null` otherwise).
pub async fn parameter_types(state: &SessionState, sql: &str) -> Result<Vec<(String, DataType)>> {
    let sql = crate::sql::placeholders::positional(sql)?;
    let plan = state
        .create_logical_plan(&sql)
        .await
        .map_err(PlanError::from_datafusion)?;
    let mut params: Vec<(String, DataType)> = plan
        .get_parameter_types()
        .map_err(PlanError::from_datafusion)?
        .into_iter()
        .map(|(name, t)| (name, t.unwrap_or(DataType::Null)))
        .collect();
    params.sort_by_key(|(name, _)| {
        name.trim_start_matches('$')
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    Ok(params)
}

/// Like [`plan_query`], with values for the positional parameters. The
/// values become literals before the split, so sites receive plain SQL.
pub async fn plan_query_with_params(
    state: &SessionState,
    sql: &str,
    params: Option<Vec<ScalarValue>>,
    policy: &PrivacyPolicy,
) -> Result<FederatedPlan> {
    let sql = &*crate::sql::placeholders::positional(sql)?;
    crate::sql::constructs::check(sql)?;
    let mut plan = state
        .create_logical_plan(sql)
        .await
        .map_err(PlanError::from_datafusion)?;
    match params {
        Some(values) => plan = crate::sql::parameters::bind(plan, values)?,
        None => {
            let unbound = plan
                .get_parameter_types()
                .map_err(PlanError::from_datafusion)?;
            if !unbound.is_empty() {
                let mut names: Vec<String> = unbound.into_keys().collect();
                names.sort();
                return Err(PlanError::Schema(format!(
                    "the query has parameters ({}); bind their values through a prepared statement",
                    names.join(", ")
                )));
            }
        }
    }
    let (plan, explain) = match plan {
        LogicalPlan::Explain(e) => (e.plan.as_ref().clone(), true),
        LogicalPlan::Analyze(_) => {
            return Err(PlanError::unsupported(
                crate::rules::Rule::HonouredAsWritten,
                "EXPLAIN ANALYZE",
                "Use EXPLAIN to see the site subplans and the merge",
            ));
        }
        other => (other, false),
    };
    let plan = crate::split::grouping_sets::resolve_grouping_functions(plan)?;
    if let Some(kind) = statement_kind(&plan) {
        return Err(PlanError::NotAQuery(kind));
    }
    if policy.mode == ihdsi_catalog::PrivacyMode::Dp {
        crate::split::distinct_values::refuse_in_dp(&plan)?;
    }
    let mut releases = Vec::new();
    let probe = replace_boundaries(&plan, &mut |agg| {
        let release = build_release(agg, releases.len(), policy)?;
        let table: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(release.released_schema()));
        let scan = released_scan(&release, table);
        releases.push(release);
        scan
    })?;
    if reads_patient_data(&probe) {
        let tables: Vec<String> = patient_tables(&probe).into_iter().collect();
        return Err(PlanError::RowLevel {
            detail: format!(
                "The query returns rows of {} that are not aggregated.",
                tables.join(", ")
            ),
        });
    }
    for release in &releases {
        check_round_trip(state, release, policy).await?;
    }
    let mut federated = FederatedPlan {
        sql: sql.to_string(),
        releases,
        explain,
        original: plan,
        result: datafusion::arrow::datatypes::Schema::empty(),
    };
    federated.result = analyzed_schema(state, &federated.placeholder_plan()?)?;
    Ok(federated)
}

/// The schema of `plan` after the session's analyzer, every field
/// nullable (released groups can hold NULLs anywhere), keeping only the
/// engine's own field metadata (`ihdsi.*`, such as a binned statistic's
/// bin width).
fn analyzed_schema(
    state: &SessionState,
    plan: &LogicalPlan,
) -> Result<datafusion::arrow::datatypes::Schema> {
    let analyzed = state
        .analyzer()
        .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
        .map_err(PlanError::from_datafusion)?;
    let fields: Vec<datafusion::arrow::datatypes::Field> = analyzed
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let ours = f
                .metadata()
                .iter()
                .filter(|(k, _)| k.starts_with("ihdsi."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            datafusion::arrow::datatypes::Field::new(f.name(), f.data_type().clone(), true)
                .with_metadata(ours)
        })
        .collect();
    Ok(datafusion::arrow::datatypes::Schema::new(fields))
}

/// The site SQL must plan, over the same schema, to a subplan that a site
/// admits and whose columns have the planned types. The SQL unparser has
/// known gaps (semi and anti joins among them); this catches them here,
/// with a clear refusal, instead of at every site.
async fn check_round_trip(
    state: &SessionState,
    release: &Release,
    policy: &PrivacyPolicy,
) -> Result<()> {
    let fail = |why: String| {
        tracing::warn!(site_sql = %release.site_sql, %why, "site SQL does not read back");
        PlanError::unsupported(
            crate::rules::Rule::ReadableSubplans,
            "a subplan that cannot be written as SQL for the sites",
            "The SQL the sites would receive does not read back as the planned subplan; write the cohort with person_id IN (SELECT person_id FROM ...) instead",
        )
    };
    let reparsed = state
        .create_logical_plan(&release.site_sql)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let permissive = PrivacyPolicy::threshold(1, true);
    crate::admission::subplan::admit_subplan(&reparsed, &permissive)
        .map_err(|e| fail(e.to_string()))?;
    // Sites bound contributions on the plan they parse: build that plan
    // here too, so a query the sites could not bound is refused once, here.
    if let Some(bounding) = policy.effective_bounding() {
        crate::partials::bounding::bound_contributions(&reparsed, bounding)?;
    }
    // Sites derive the cell counts and the dominance entries from the SQL
    // they receive: it must give the columns planned here.
    if !crate::partials::cells::layout(&reparsed)?.same_shape(&release.cells) {
        return Err(fail(
            "the site SQL does not reproduce the planned cells".into(),
        ));
    }
    if !release.dominance.is_empty() {
        let entries =
            crate::partials::dominance::contributions(&reparsed, policy.effective_bounding())?
                .map(|c| c.entries)
                .unwrap_or_default();
        if entries != release.dominance {
            return Err(fail(
                "the site SQL does not reproduce the planned dominance cells".into(),
            ));
        }
    }
    let types = |p: &LogicalPlan| {
        p.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect::<Vec<_>>()
    };
    if site_axis(&reparsed) != release.time_axis {
        return Err(fail(
            "the site SQL does not reproduce the planned time axis".into(),
        ));
    }
    if types(&reparsed) != types(&release.site_plan) {
        return Err(fail(
            "the site SQL does not reproduce the planned partial columns".into(),
        ));
    }
    Ok(())
}

impl FederatedPlan {
    /// The coordinator's plan, reading each release from `released[i]`.
    pub fn coordinator_plan(&self, released: &[Arc<dyn TableProvider>]) -> Result<LogicalPlan> {
        let mut i = 0;
        replace_boundaries(&self.original, &mut |_agg| {
            let release = self
                .releases
                .get(i)
                .ok_or_else(|| PlanError::Internal("release count changed".into()))?;
            let table = released
                .get(i)
                .cloned()
                .ok_or_else(|| PlanError::Internal("missing released table".into()))?;
            i += 1;
            released_scan(release, table)
        })
    }

    /// The result schema as announced to clients: the coordinator plan's
    /// fields as DataFusion produces them, all nullable (released groups
    /// can hold NULLs anywhere).
    pub fn result_schema(&self) -> Result<datafusion::arrow::datatypes::Schema> {
        Ok(self.result.clone())
    }

    /// The coordinator's plan over empty releases: its schema is the result
    /// schema, and it is what `EXPLAIN` prints.
    pub fn placeholder_plan(&self) -> Result<LogicalPlan> {
        let empties: Vec<Arc<dyn TableProvider>> = self
            .releases
            .iter()
            .map(|r| Arc::new(EmptyTable::new(r.released_schema())) as Arc<dyn TableProvider>)
            .collect();
        self.coordinator_plan(&empties)
    }
}

/// Replace each top-most aggregate over patient data, depth-first left to
/// right, with what `f` returns.
fn replace_boundaries(
    plan: &LogicalPlan,
    f: &mut dyn FnMut(&Aggregate) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    if !reads_patient_data(plan) {
        return Ok(plan.clone());
    }
    if let LogicalPlan::Aggregate(agg) = plan {
        return match crate::split::grouping_sets::grouping_sets(agg) {
            _ if crate::binned::has_curves(agg) => crate::binned::expand(agg, f),
            Some(sets) => crate::split::grouping_sets::expand(agg, sets, f),
            None if crate::split::distinct_values::counts_distinct_values(agg)? => {
                crate::split::distinct_values::expand(agg, f)
            }
            None => f(agg),
        };
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|i| replace_boundaries(i, f))
        .collect::<Result<Vec<_>>>()?;
    if let LogicalPlan::Union(union) = plan {
        // A union keeps the schema it was planned with (its types already
        // coerced), field metadata (the catalog's column comments)
        // included, which a released table does not carry: drop the
        // metadata, or the physical plan's schema would differ from the
        // logical one.
        let fields = union.schema.iter().map(|(q, f)| {
            let bare = f.as_ref().clone().with_metadata(Default::default());
            (q.cloned(), Arc::new(bare))
        });
        let schema = DFSchema::new_with_metadata(fields.collect(), Default::default())
            .map_err(|e| PlanError::Internal(e.to_string()))?;
        return Ok(LogicalPlan::Union(Union {
            inputs: inputs.into_iter().map(Arc::new).collect(),
            schema: Arc::new(schema),
        }));
    }
    plan.with_new_exprs(plan.expressions(), inputs)
        .map_err(|e| PlanError::Internal(e.to_string()))
}

/// `SELECT c0 AS <original name>, ... FROM ihdsi_release_i`.
fn released_scan(release: &Release, table: Arc<dyn TableProvider>) -> Result<LogicalPlan> {
    let exprs: Vec<Expr> = release
        .schema
        .iter()
        .enumerate()
        .map(|(i, (q, field))| {
            datafusion::logical_expr::col(format!("c{i}")).alias_qualified(q.cloned(), field.name())
        })
        .collect();
    LogicalPlanBuilder::scan(
        release_table(release.index),
        provider_as_source(table),
        None,
    )
    .and_then(|b| b.project(exprs))
    .and_then(|b| b.build())
    .map_err(|e| PlanError::Internal(e.to_string()))
}

/// The group keys as a site receives them: each distinct key once (the
/// aggregate's schema has one column for `GROUP BY site, site`), and an
/// integer constant (a literal, or a bound parameter) cast to its own type,
/// so that the site SQL's `GROUP BY` reads it as a value, never as the
/// position of a column.
fn site_group_keys(keys: &[Expr]) -> Vec<Expr> {
    let mut seen: Vec<&Expr> = Vec::with_capacity(keys.len());
    let mut distinct: Vec<Expr> = Vec::with_capacity(keys.len());
    for key in keys {
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let key = match crate::analysis::exprs::strip_alias(key) {
            bare @ Expr::Literal(v, _) if v.data_type().is_integer() => Expr::Cast(
                datafusion::logical_expr::Cast::new(Box::new(bare.clone()), v.data_type()),
            ),
            _ => key.clone(),
        };
        distinct.push(key);
    }
    distinct
}

fn build_release(agg: &Aggregate, index: usize, policy: &PrivacyPolicy) -> Result<Release> {
    if crate::analysis::axis::time_axis(agg).is_some()
        && !crate::admission::one_row::one_row_per_patient(&agg.input)?
    {
        return Err(PlanError::policy(
            crate::rules::Rule::SurvivalCurves,
            "a binned statistic needs a cohort of one row per patient",
        ));
    }
    let input_lineage = admission::check_boundary(agg)?;
    admission::amplification::check(&agg.input, policy)?;
    let mut partials = Partials::default();
    for e in &agg.aggr_expr {
        let (kind, f) = classify(e, &agg.input, &input_lineage)?;
        check_policy(kind, f, policy, "federation")?;
        partials.push(kind, f);
    }
    let (input, unit) = carry_unit(&agg.input)?;
    // Partials are aliased inside the aggregation (p0.., ihdsi_patients) so
    // that an analyst's own count(DISTINCT person_id) and the hidden count
    // never collide; the projection above only renames the group keys.
    let mut aggr: Vec<Expr> = partials
        .exprs
        .iter()
        .enumerate()
        .map(|(j, e)| e.clone().alias(partial_column(j)))
        .collect();
    aggr.push(
        datafusion::functions_aggregate::expr_fn::count_distinct(Expr::Column(unit))
            .alias(PATIENTS_COLUMN),
    );
    let group_expr = site_group_keys(&agg.group_expr);
    let site_agg = LogicalPlanBuilder::from(input)
        .aggregate(group_expr.clone(), aggr)
        .map_err(|e| PlanError::Internal(e.to_string()))?
        .build()
        .map_err(|e| PlanError::Internal(e.to_string()))?;
    let key_count = group_expr.len();
    let partial_count = partials.exprs.len();
    let outputs: Vec<Expr> = site_agg
        .schema()
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            let column = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
            if i < key_count {
                column.alias(key_column(i))
            } else {
                column
            }
        })
        .collect();
    let site_plan = LogicalPlanBuilder::from(site_agg)
        .project(outputs)
        .and_then(|b| b.build())
        .map_err(|e| PlanError::Internal(e.to_string()))?;
    let site_sql = to_site_sql(&site_plan)?;
    let dominance = match policy.dominance() {
        Some(_) => crate::partials::dominance::entries(&site_plan)?,
        None => Vec::new(),
    };
    let cells = crate::partials::cells::layout(&site_plan)?;
    // The axis as every site reads it: from the subplan, whose partials are
    // deduplicated, so its indices are the partials' own.
    let time_axis = site_axis(&site_plan);
    Ok(Release {
        index,
        tables: patient_tables(&site_plan),
        site_plan,
        site_sql,
        key_count,
        partial_count,
        cells,
        partials: partials.kinds,
        dominance,
        merges: partials.merges,
        schema: Arc::clone(&agg.schema),
        time_axis,
    })
}

/// The axis of a subplan `SELECT … FROM (aggregate)`, as a site reads it.
fn site_axis(site_plan: &LogicalPlan) -> Option<crate::release::axis::TimeAxis> {
    match site_plan {
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Aggregate(a) => crate::analysis::axis::time_axis(a),
            _ => None,
        },
        _ => None,
    }
}

/// The kind of a statement that is not a query, in SQL words
/// (`CreateMemoryTable` → `CREATE MEMORY TABLE`), or `None` for a query.
fn statement_kind(plan: &LogicalPlan) -> Option<String> {
    let name = match plan {
        LogicalPlan::Ddl(d) => d.name().to_string(),
        LogicalPlan::Dml(d) => d.op.to_string(),
        LogicalPlan::Statement(s) => s.name().to_string(),
        LogicalPlan::Copy(_) => "COPY".to_string(),
        LogicalPlan::DescribeTable(_) => "DESCRIBE".to_string(),
        _ => return None,
    };
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() && !words.ends_with(' ') {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    Some(words)
}
