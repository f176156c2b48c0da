//! The PostgreSQL site backend: an admitted, bounded subplan runs inside
//! the site's database, so only its output (partial aggregates, or the
//! per-patient contributions the dominance rule needs, which never leave
//! the site) is fetched.
//!
//! Why DataFusion's own unparser (`PostgreSqlDialect`) rather than
//! datafusion-federation or datafusion-table-providers: the site already
//! holds the exact logical plan it admitted and bounded, so the backend
//! needs a plan → SQL step and nothing else. The federation crates bring a
//! second planner and their own pushdown decisions, which would put code
//! we do not control between admission and the data. The subplans are a
//! narrow, canonical shape (scan, filter, projection, joins on the
//! patient, windows per patient, aggregates PostgreSQL has) that the
//! unparser handles; the tests run them against a real server.
//!
//! The site's views (the virtual `site` column, opted-out persons removed)
//! are inlined into the plan before unparsing, so the SQL carries them: no
//! subplan can reach a table around them. Each output column is cast in
//! SQL to the type the plan promises and read back as Arrow.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use futures::future::BoxFuture;
use tokio_postgres::Client;

use super::fetch;
use super::pg_error;
use super::sql::{Naming, external, statement, to_batch};
use super::total::runs_in_postgres;
use crate::bounded::ExecutionBudget;
use crate::site::backend::SiteBackend;
use crate::site::error::{Result, SiteError};
use crate::site::tables::opt_out_as_filters;

/// Runs subplans in a PostgreSQL database holding the site's CDM tables,
/// each on a connection of its own: a subplan that is dropped (the
/// coordinator stopped waiting, the site's own time limit) cancels its
/// statement in the server, and a cancel request stops whatever runs on
/// one connection, so no other subplan may share it.
pub struct PostgresBackend {
    url: String,
}

/// Cancels the statement running on its connection when dropped before
/// [`Self::done`]: PostgreSQL notices a vanished client only when it next
/// writes to it, which a long aggregation does at its very end.
struct CancelOnDrop(Option<tokio_postgres::CancelToken>);

impl CancelOnDrop {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let (Some(token), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        tracing::info!("subplan dropped: cancelling its PostgreSQL statement");
        runtime.spawn(async move {
            if let Err(e) = token.cancel_query(tokio_postgres::NoTls).await {
                tracing::warn!(error = %e, "cannot cancel a PostgreSQL statement");
            }
        });
    }
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// The site's database at `url`; each subplan connects on its own.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
        }
    }

    /// The tables of the connection's schema search path.
    pub async fn tables(&self) -> Result<Vec<String>> {
        let client = super::connect(&self.url).await?;
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = ANY (current_schemas(false))",
                &[],
            )
            .await
            .map_err(|e| pg_error("listing the tables", e))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| pg_error("listing the tables", e)))
            .collect()
    }
}

impl SiteBackend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn collect(
        &self,
        plan: LogicalPlan,
        budget: ExecutionBudget,
    ) -> BoxFuture<'_, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let plan = prepare(plan)?;
            let in_postgres = runs_in_postgres(&plan)?;
            // The server's reason for refusing a connection (too many
            // clients, a role name) is the site's to read, not the analyst's.
            let client = super::connect(&self.url).await.map_err(|e| {
                tracing::warn!(error = %e, "cannot connect to the site's database for a subplan");
                SiteError::Data("the site's database does not accept a connection now".into())
            })?;
            let cancel = CancelOnDrop(Some(client.cancel_token()));
            let answer = if in_postgres {
                run_in_postgres(&client, plan).await
            } else {
                fetch::run(&client, plan, budget).await
            };
            cancel.done();
            answer
        })
    }
}

/// Run all of `plan` in the database and read its output back.
async fn run_in_postgres(client: &Client, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let sql = statement(plan, Naming::AsPlanned)?;
    // Not the SQL itself: it carries the opt-out list, which is made of
    // person ids.
    tracing::debug!(bytes = sql.len(), "subplan sent to PostgreSQL");
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| pg_error("running the subplan", e))?;
    Ok(vec![to_batch(&schema, &rows)?])
}

/// `plan` with the site's views inlined and the opt-out list as a filter
/// of literals: the form both ways of running it start from.
pub(super) fn prepare(plan: LogicalPlan) -> Result<LogicalPlan> {
    opt_out_as_filters(inline_views(plan)?)
}

/// The PostgreSQL statement of `plan`: views inlined, the opt-out list as
/// a filter of literals, unparsed, each output column cast to the type the
/// plan promises.
pub fn postgres_sql(plan: LogicalPlan) -> Result<String> {
    statement(prepare(plan)?, Naming::AsPlanned)
}

/// Replace every scan of a view by the view's own plan.
fn inline_views(plan: LogicalPlan) -> Result<LogicalPlan> {
    let inlined = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(view) = scan.source.get_logical_plan() else {
            return Ok(Transformed::no(node));
        };
        let view = inline_views(view.into_owned()).map_err(external)?;
        let mut builder = LogicalPlanBuilder::from(view).alias(scan.table_name.clone())?;
        if let Some(projection) = &scan.projection {
            let all = builder.schema().columns();
            let columns: Vec<Expr> = projection
                .iter()
                .map(|&i| Expr::Column(all[i].clone()))
                .collect();
            builder = builder.project(columns)?;
        }
        Ok(Transformed::yes(builder.build()?))
    })?;
    Ok(inlined.data)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::site::tables::register_relational_tables;

    async fn sql_of(query: &str) -> String {
        let ctx = SessionContext::new();
        let present = vec!["person".to_string(), "concept".to_string()];
        register_relational_tables(&ctx, "lu", &present, &[7, 8]).expect("tables");
        let plan = ctx.state().create_logical_plan(query).await.expect("plan");
        postgres_sql(plan).expect("sql")
    }

    #[tokio::test]
    async fn views_are_inlined_and_aliases_kept() {
        let sql = sql_of("SELECT c.concept_name AS k0, count(DISTINCT p.person_id) AS ihdsi_patients FROM person AS p JOIN concept AS c ON c.concept_id = p.gender_concept_id GROUP BY c.concept_name").await;
        assert!(sql.contains(r#"FROM "concept") AS "c" ON"#), "{sql}");
        assert!(
            sql.contains("NOT IN (7, 8)"),
            "opted-out persons stay out: {sql}"
        );
        assert!(sql.contains("'lu' AS \"site\""), "{sql}");
    }

    #[tokio::test]
    async fn try_casts_become_casts_that_cannot_fail_or_are_refused() {
        let sql = sql_of("SELECT TRY_CAST(year_of_birth AS SMALLINT) AS k0, sum(TRY_CAST(year_of_birth AS BIGINT)) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY 1").await;
        assert!(!sql.contains("TRY_CAST"), "{sql}");
        assert!(
            sql.contains("BETWEEN -32768 AND 32767) THEN CAST("),
            "{sql}"
        );
        let ctx = SessionContext::new();
        register_relational_tables(&ctx, "lu", &["person".to_string()], &[]).expect("tables");
        let plan = ctx
            .state()
            .create_logical_plan("SELECT TRY_CAST(person_source_value AS INT) AS k0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY 1")
            .await
            .expect("plan");
        let err = postgres_sql(plan).expect_err("text to int").to_string();
        assert!(
            err.contains("TRY_CAST from VARCHAR to INTEGER cannot run on a PostgreSQL site"),
            "{err}"
        );
    }
}
