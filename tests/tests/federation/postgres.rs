//! PostgreSQL-backed sites (issue 7) against a real PostgreSQL server that
//! each test starts itself:
//!
//! * `ihdsi load postgres` loads a generated site with the OMOP CDM's
//!   column names and types and every row and value of its Parquet files;
//! * a federation whose `lu` site runs its subplans inside PostgreSQL
//!   answers the whole differential suite as the pooled oracle does, and
//!   the server's own statement log shows that what it ran were the
//!   aggregating subplans.

use std::process::Command;

use ihdsi_catalog::schema;
use ihdsi_engine::SiteEngine;
use ihdsi_engine::site::{SiteData, SiteGuards, postgres};
use ihdsi_flight_server::demo::site_folders;
use ihdsi_tests::compare::{Cell, diff, rows};
use ihdsi_tests::process::ihdsi_binary;
use ihdsi_tests::queries::load;
use ihdsi_tests::serving::{serve_coordinator, serve_site};
use ihdsi_tests::{ask, centralized, cohort, oracle_rows, policy};

/// `(query on PostgreSQL, the same on the Parquet files)`: counts and
/// checksums of every value kind, as text so that types compare.
const CHECKS: &[(&str, &str)] = &[
    (
        "SELECT count(*)::text, sum(year_of_birth)::text, count(birth_datetime)::text, min(birth_datetime)::date::text FROM person",
        "SELECT CAST(count(*) AS VARCHAR), CAST(sum(year_of_birth) AS VARCHAR), CAST(count(birth_datetime) AS VARCHAR), CAST(CAST(min(birth_datetime) AS DATE) AS VARCHAR) FROM person",
    ),
    (
        "SELECT count(*)::text, min(observation_period_start_date)::text, max(observation_period_end_date)::text FROM observation_period",
        "SELECT CAST(count(*) AS VARCHAR), CAST(min(observation_period_start_date) AS VARCHAR), CAST(max(observation_period_end_date) AS VARCHAR) FROM observation_period",
    ),
    (
        "SELECT count(*)::text, count(value_as_number)::text, round(sum(value_as_number) * 1000)::bigint::text FROM measurement",
        "SELECT CAST(count(*) AS VARCHAR), CAST(count(value_as_number) AS VARCHAR), CAST(CAST(round(sum(value_as_number) * 1000) AS BIGINT) AS VARCHAR) FROM measurement",
    ),
    (
        "SELECT count(*)::text, count(DISTINCT condition_source_value)::text FROM condition_occurrence",
        "SELECT CAST(count(*) AS VARCHAR), CAST(count(DISTINCT condition_source_value) AS VARCHAR) FROM condition_occurrence",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_loads_into_postgresql_with_the_cdm_columns_and_every_row() {
    let site = cohort(6_000).join("lu");
    let pg = ihdsi_tests::postgres::start("load").await;
    let out = Command::new(ihdsi_binary())
        .args(["load", "postgres", "--data"])
        .arg(&site)
        .args(["--url", &pg.url()])
        .arg("--vocabulary")
        .arg(site.with_file_name("concept.parquet"))
        .output()
        .expect("run ihdsi load postgres");
    assert!(
        out.status.success(),
        "ihdsi load postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);

    // Column names, types and NOT NULL as the CDM's DDL.
    let person = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns WHERE table_name = 'person' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns");
    let got: Vec<(String, String, String)> = person
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = schema::table("person").expect("person").file_schema();
    assert_eq!(got.len(), want.fields().len());
    assert_eq!(got[0], ("person_id".into(), "bigint".into(), "NO".into()));
    assert!(got.contains(&(
        "birth_datetime".into(),
        "timestamp without time zone".into(),
        "YES".into()
    )));

    // Every row and value, against DataFusion over the site's own files.
    let ctx = datafusion::prelude::SessionContext::new();
    for table in [
        "person",
        "observation_period",
        "measurement",
        "condition_occurrence",
    ] {
        ctx.register_parquet(
            table,
            site.join(format!("{table}.parquet")).display().to_string(),
            Default::default(),
        )
        .await
        .expect("register");
    }
    for (on_pg, on_parquet) in CHECKS {
        let row = client.query_one(*on_pg, &[]).await.expect(on_pg);
        let pg_values: Vec<Cell> = (0..row.len())
            .map(|i| match row.get::<_, Option<String>>(i) {
                Some(s) => Cell::Text(s),
                None => Cell::Null,
            })
            .collect();
        let expected = rows(&oracle_rows(&ctx, on_parquet).await);
        assert_eq!(vec![pg_values], expected, "{on_pg}");
    }
    assert!(
        pg.log().contains("COPY person"),
        "the server logs statements"
    );
}

/// A federation over `data` whose site `pg_site` runs on PostgreSQL at
/// `url` and whose other sites read their Parquet files. Returns the
/// coordinator's URI; the servers live until the test ends.
async fn mixed_federation(
    data: &std::path::Path,
    pg_site: &str,
    url: &str,
    federation_policy: ihdsi_catalog::PrivacyPolicy,
) -> String {
    let vocab = data.join("concept.parquet").display().to_string();
    let mut entries = Vec::new();
    for (id, folder) in site_folders(data).expect("sites") {
        let site_policy = policy(1, true);
        let engine = if id == pg_site {
            postgres::open_site(&id, url, site_policy, SiteGuards::default())
                .await
                .expect("PostgreSQL site")
        } else {
            let data = SiteData {
                id: id.clone(),
                location: folder.display().to_string(),
            };
            SiteEngine::open_with(data, Some(&vocab), site_policy)
                .await
                .expect("Parquet site")
        };
        entries.push(serve_site(&id, engine, std::future::pending()).await);
    }
    serve_coordinator(entries, vocab, federation_policy, std::future::pending()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_site_answers_the_differential_suite_inside_the_database() {
    let data = cohort(6_000);
    let pg = ihdsi_tests::postgres::start("differential").await;
    let loaded = postgres::load::load_site(
        &data.join("lu"),
        Some(&data.join("concept.parquet")),
        &pg.url(),
    )
    .await
    .expect("load lu");
    assert!(loaded.tables.len() >= 8, "{loaded:?}");
    let uri = mixed_federation(&data, "lu", &pg.url(), policy(1, true)).await;
    let oracle = centralized(&data).await;
    let mut failures = Vec::new();
    let cases = load("differential.sql");
    for case in &cases {
        let expected = oracle_rows(&oracle, &case.sql).await;
        match ask(&uri, &case.sql).await {
            Ok(got) => {
                if let Some(d) = diff(&got.batches, &expected) {
                    failures.push(format!("{}: {d}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    let log = pg.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("STATEMENT"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} queries differ with lu on PostgreSQL:\n{}\nserver log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        errors.join("\n")
    );
    // PostgreSQL's own log (`log_statement = all`; tokio-postgres runs
    // statements as `execute`): every statement the site ran is a subplan
    // that aggregates per group inside the database, its output the
    // partials and the distinct-patient count; none reads rows out.
    let statements: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("LOG:") && (l.contains("execute") || l.contains("statement:")))
        .filter_map(|l| l.find("SELECT").map(|i| &l[i..]))
        .collect();
    let subplans = statements
        .iter()
        .filter(|s| s.contains("ihdsi_subplan"))
        .count();
    assert!(
        subplans >= cases.len(),
        "{subplans} subplan statements logged for {} queries",
        cases.len()
    );
    for s in &statements {
        let catalog = s.contains("information_schema.tables");
        assert!(
            catalog || s.contains(r#"count(DISTINCT "#) && s.contains(r#"AS "ihdsi_patients""#),
            "a statement that does not aggregate per group ran in PostgreSQL: {s}"
        );
    }
}

/// `ihdsi demo --site-backend lu=postgres`: the demo starts its own
/// PostgreSQL server, loads `lu` into it, and the mixed federation answers
/// as the pooled oracle does (thresholds 10 at the sites and the
/// federation; grouping by site, so both thresholds are the oracle's one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_runs_a_site_on_postgresql_beside_parquet_sites() {
    use ihdsi_flight_server::client::{Connection, Credentials};
    use ihdsi_tests::process::{DemoProcess, PASSWORD};

    let data = cohort(6_000);
    let demo = DemoProcess::start_with(&data, &["--site-backend", "lu=postgres"]);
    let login = Credentials::Password {
        user: ihdsi_flight_server::demo::DEMO_USER.into(),
        password: PASSWORD.into(),
    };
    let analyst = Connection::connect(&demo.uri, &login).await.expect("login");
    let sql = "SELECT site, gender_concept_id, count(DISTINCT person_id) AS n, avg(year_of_birth) AS born FROM person GROUP BY 1, 2";
    let got = analyst.query(sql).await.expect("query");
    let oracle = centralized(&data).await;
    let expected = oracle_rows(
        &oracle,
        &format!("{sql} HAVING count(DISTINCT person_id) >= 10"),
    )
    .await;
    assert!(rows(&expected).len() >= 6, "{:?}", rows(&expected));
    assert_eq!(diff(&got.batches, &expected), None);
}

/// The p% dominance rule with the outlier's site (`kr`) on PostgreSQL: its
/// per-patient contributions are computed inside the database too, and the
/// released SUM cells are the pooled oracle's under k = 10 and the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dominance_rule_holds_with_a_site_on_postgresql() {
    use crate::dominance::{CASES, guarded, oracle_sql, query};

    let data = ihdsi_tests::planted::outlier(&cohort(6_000)).await;
    let pg = ihdsi_tests::postgres::start("dominance").await;
    postgres::load::load_site(
        &data.join("kr"),
        Some(&data.join("concept.parquet")),
        &pg.url(),
    )
    .await
    .expect("load kr");
    let uri = mixed_federation(&data, "kr", &pg.url(), guarded()).await;
    let oracle = centralized(&data).await;
    for (key, value, from) in CASES {
        let sql = query(key, value, from);
        let got = ask(&uri, &sql).await.expect("federated");
        let expected = oracle_rows(&oracle, &oracle_sql(key, value, from)).await;
        assert_eq!(diff(&got.batches, &expected), None, "{sql}");
    }
}
