//! Golden test of the SQL every site receives: any change to what sites run
//! shows up in review as a diff of `golden/site_sql.txt`.
//! Regenerate with `IHDSI_BLESS=1 cargo test -p ihdsi-planner --test golden_site_sql`.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::empty::EmptyTable;
use datafusion::prelude::SessionContext;
use ihdsi_catalog::{PrivacyPolicy, schema};
use ihdsi_planner::{plan_query, register_virtual_schema};

fn cases(text: &str) -> Vec<(String, String)> {
    text.split("-- name:")
        .skip(1)
        .map(|block| {
            let (name, sql) = block.split_once('\n').unwrap_or((block, ""));
            (
                name.trim().to_string(),
                sql.trim().trim_end_matches(';').to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn site_sql_matches_golden_file() {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("virtual schema");
    let concept = schema::table("concept").expect("concept").file_schema();
    ctx.register_table("concept", Arc::new(EmptyTable::new(concept)))
        .expect("concept");
    // `cargo test` runs integration tests from the package folder. A path
    // compiled in (env!) would point at whichever checkout built the binary,
    // and CI reuses a cached target/ across checkout paths.
    let dir = Path::new("tests/golden");
    let queries = std::fs::read_to_string(dir.join("queries.sql")).expect("queries");
    let policy = PrivacyPolicy::threshold(10, false);
    let mut out = String::new();
    for (name, sql) in cases(&queries) {
        let plan = plan_query(&ctx.state(), &sql, &policy)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for r in &plan.releases {
            writeln!(out, "-- {name} [release {}]\n{}\n", r.index, r.site_sql).expect("write");
        }
    }
    let golden = dir.join("site_sql.txt");
    if std::env::var_os("IHDSI_BLESS").is_some() {
        std::fs::write(&golden, &out).expect("bless");
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        out, expected,
        "site SQL changed; review and re-bless with IHDSI_BLESS=1"
    );
}
