//! The SQL every site receives, pinned in `tests/site_sql.slt` and run with
//! the stock sqllogictest runner: each query is planned at the coordinator,
//! and its "rows" are the site SQL of its releases. After a deliberate
//! change, `SLT_COMPLETE=1 cargo test -p ihdsi-planner --test planner`
//! rewrites the expected rows, for review as a diff.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;
use ihdsi_catalog::{PrivacyPolicy, schema};
use ihdsi_planner::{PlanError, plan_query, register_virtual_schema};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

/// The coordinator's planner, answering a query with its site SQL.
struct Planner {
    state: SessionState,
    policy: PrivacyPolicy,
}

#[async_trait::async_trait]
impl AsyncDB for Planner {
    type Error = PlanError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PlanError> {
        let plan = plan_query(&self.state, sql, &self.policy).await?;
        let rows = plan
            .releases
            .iter()
            .map(|r| vec![format!("release {}: {}", r.index, r.site_sql)])
            .collect();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Text],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

/// The coordinator's session: the virtual schema and an empty `concept`.
pub(crate) fn session() -> SessionState {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("virtual schema");
    let concept = schema::table("concept").expect("concept").file_schema();
    ctx.register_table("concept", Arc::new(EmptyTable::new(concept)))
        .expect("concept");
    ctx.state()
}

fn planner() -> Planner {
    Planner {
        state: session(),
        policy: PrivacyPolicy::threshold(10, false),
    }
}

#[tokio::test]
async fn site_sql_matches_the_slt_file() {
    // `cargo test` runs integration tests from the package folder. A path
    // compiled in (env!) would point at whichever checkout built the binary,
    // and CI reuses a cached target/ across checkout paths.
    let file = Path::new("tests/site_sql.slt");
    let mut runner = Runner::new(|| async { Ok(planner()) });
    if std::env::var_os("SLT_COMPLETE").is_some() {
        runner
            .update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .expect("rewrite site_sql.slt");
    }
    if let Err(e) = runner.run_file_async(file).await {
        panic!("site SQL changed; review, then rerun with SLT_COMPLETE=1:\n{e}");
    }
}
