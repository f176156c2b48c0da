//! Subplans that PostgreSQL cannot run without a data-dependent failure,
//! run in DataFusion over rows the database returns.
//!
//! When [`super::total::runs_in_postgres`] says no, the site optimises the
//! subplan (so that scans read only the columns they need), hands
//! PostgreSQL each scan with the filters and projections above it that
//! are total there (the opted-out persons' filter always is), and runs the
//! rest of the plan (the arithmetic PostgreSQL could fail on, the
//! aggregation) in DataFusion over those rows. The answer is DataFusion's,
//! as at a Parquet site, under the totality rules the planner checked.
//!
//! The rows stay in the site's own process, inside the hospital, like a
//! Parquet site's files; only the subplan's partials leave, as always.
//! The cost is reading those rows out of the database, which the planner
//! cannot avoid when the database itself would fail.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::empty::EmptyTable;
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use tokio_postgres::Client;

use super::pg_error;
use super::sql::{Naming, statement, to_batch};
use super::total::node_runs_in_postgres;
use crate::bounded::ExecutionBudget;
use crate::site::error::{Result, SiteError};
use crate::site::site_session_config;

/// The prefix of the in-memory tables that hold fetched rows.
const FETCHED: &str = "ihdsi_fetched";

/// Run `plan` (views inlined, opt-out as filters) in DataFusion, reading
/// each of its database scans, with what PostgreSQL can run of the
/// filters and projections above it, from `client`.
pub(super) async fn run(
    client: &Client,
    plan: LogicalPlan,
    budget: ExecutionBudget,
) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new_with_config(site_session_config());
    let optimized = ctx.state().optimize(&plan)?;
    let mut fetched: Vec<(LogicalPlan, LogicalPlan)> = Vec::new();
    for read in database_reads(&optimized)? {
        let rows = fetch(client, &read, fetched.len()).await?;
        fetched.push((read, rows));
    }
    tracing::debug!(
        reads = fetched.len(),
        "subplan runs in DataFusion over rows read from PostgreSQL"
    );
    let rewritten = optimized
        .transform_down_with_subqueries(|node| {
            Ok(match fetched.iter().find(|(read, _)| *read == node) {
                Some((_, rows)) => Transformed::new(rows.clone(), true, TreeNodeRecursion::Jump),
                None => Transformed::no(node),
            })
        })?
        .data;
    if reads_database(&rewritten)? {
        return Err(SiteError::Internal(
            "a database table was left unread in a subplan run in DataFusion".into(),
        ));
    }
    crate::bounded::collect::<SiteError>(&ctx.state(), rewritten, budget).await
}

/// The largest subtrees of `plan` (and its subqueries) that PostgreSQL
/// can run and that read one database table: a scan with the filters and
/// projections above it whose expressions are total there. Aliases stay
/// in DataFusion: DataFusion 55's unparser writes `FROM person AS p` and
/// keeps the filter below it on `person.person_id`.
fn database_reads(plan: &LogicalPlan) -> Result<Vec<LogicalPlan>> {
    let mut reads: Vec<LogicalPlan> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if !readable(node)? {
            return Ok(TreeNodeRecursion::Continue);
        }
        if !reads.contains(node) {
            reads.push(node.clone());
        }
        Ok(TreeNodeRecursion::Jump)
    })?;
    Ok(reads)
}

fn readable(node: &LogicalPlan) -> datafusion::error::Result<bool> {
    let own = || {
        node_runs_in_postgres(node)
            && !node.expressions().iter().any(|e| {
                e.exists(|x| {
                    Ok(matches!(
                        x,
                        Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::ScalarSubquery(_)
                            | Expr::OuterReferenceColumn(..)
                    ))
                })
                .unwrap_or(true)
            })
    };
    Ok(match node {
        LogicalPlan::TableScan(scan) => scan.filters.is_empty() && is_database_table(&scan.source)?,
        LogicalPlan::Filter(f) => own() && readable(&f.input)?,
        LogicalPlan::Projection(p) => own() && readable(&p.input)?,
        _ => false,
    })
}

fn is_database_table(
    source: &Arc<dyn datafusion::logical_expr::TableSource>,
) -> datafusion::error::Result<bool> {
    Ok(source_as_provider(source)?
        .downcast_ref::<EmptyTable>()
        .is_some())
}

fn reads_database(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            found |= is_database_table(&scan.source)?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// Run `read` in PostgreSQL and hold its rows in memory, as a plan with
/// the same qualified columns as `read`.
async fn fetch(client: &Client, read: &LogicalPlan, n: usize) -> Result<LogicalPlan> {
    let fields: Vec<Field> = read
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(Naming::position(i), f.data_type().clone(), f.is_nullable()))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let sql = statement(read.clone(), Naming::Positional)?;
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| pg_error("reading rows for DataFusion", e))?;
    let batch = to_batch(&schema, &rows)?;
    let table = MemTable::try_new(Arc::clone(&schema), vec![vec![batch]])?;
    let name = format!("{FETCHED}_{n}");
    let columns: Vec<Expr> = read
        .schema()
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(name.clone()), Naming::position(i)))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(
        LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?
            .project(columns)?
            .build()?,
    )
}
