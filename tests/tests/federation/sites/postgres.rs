//! PostgreSQL-backed sites (issue 7) against a real PostgreSQL server that
//! each test starts itself:
//!
//! * `ihdsi load postgres` loads a generated site with the OMOP CDM's
//!   column names and types and every row and value of its Parquet files;
//! * the p% dominance rule holds with the outlier's site on PostgreSQL.
//!
//! The differential suite over a PostgreSQL site (with its statement-log
//! check) and the demo's `--site-backend` are in [`crate::sites::mixed`].

use std::process::Command;

use ihdsi_catalog::schema;
use ihdsi_engine::site::postgres;
use ihdsi_tests::backends::{Host, mixed_federation};
use ihdsi_tests::compare::{Cell, rows};
use ihdsi_tests::process::ihdsi_binary;
use ihdsi_tests::{cohort, oracle_rows};

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

/// The p% dominance rule with the outlier's site (`kr`) on PostgreSQL: its
/// per-patient contributions are computed inside the database too, and the
/// released SUM cells are the pooled oracle's under k = 10 and the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dominance_rule_holds_with_a_site_on_postgresql() {
    use crate::disclosure::dominance::{assert_cases_hold, guarded};

    let data = ihdsi_tests::planted::outlier(&cohort(6_000)).await;
    let pg = ihdsi_tests::postgres::start("dominance").await;
    postgres::load::load_site(
        &data.join("kr"),
        Some(&data.join("concept.parquet")),
        &pg.url(),
    )
    .await
    .expect("load kr");
    let uri = mixed_federation(&data, &[("kr", Host::Postgres(&pg.url()))], guarded()).await;
    assert_cases_hold(&uri, &data).await;
}

/// Expressions DataFusion evaluates for every row but PostgreSQL fails on
/// for some (issue 17's error oracle at a database site), each made to
/// fail only on the victim V1's row at `lu`, and written so that the
/// victim's row is not counted when nothing fails (the answers with and
/// without the victim are the same unless one fails): float overflow,
/// underflow and division by zero, `ln` of zero, `exp` and `power` out of range, integer
/// overflow, a `double` narrowed to `real`, a `bigint` sum past its range (also through a literal chosen by a CASE),
/// a variance of a huge literal that PostgreSQL's `numeric` cannot cast
/// back to `double`,
/// a `LIKE` pattern ending in its escape character, a regular expression
/// PostgreSQL's engine rejects.
const PG_FAILURE_ORACLES: &[&str] = &[
    "SELECT count(*) FROM condition_occurrence WHERE ln(CASE WHEN condition_concept_id = {V1} THEN 0.0 ELSE 1.0 END) = 0",
    "SELECT count(*) FROM condition_occurrence WHERE exp(CAST(CASE WHEN condition_concept_id = {V1} THEN 1000.0 ELSE 0.0 END AS DOUBLE)) = 1",
    "SELECT count(*) FROM condition_occurrence WHERE 1.0 / CASE WHEN condition_concept_id = {V1} THEN 0.0 ELSE 1.0 END = 1",
    "SELECT count(*) FROM condition_occurrence WHERE CAST(CASE WHEN condition_concept_id = {V1} THEN 1e300 ELSE 1.0 END AS DOUBLE) * CAST(1e300 AS DOUBLE) < 1e301",
    "SELECT count(*) FROM condition_occurrence WHERE CAST(CASE WHEN condition_concept_id = {V1} THEN 1e-300 ELSE 1.0 END AS DOUBLE) * CAST(1e-300 AS DOUBLE) > 0",
    "SELECT count(*) FROM condition_occurrence WHERE power(CASE WHEN condition_concept_id = {V1} THEN -8.0 ELSE 4.0 END, 0.5) = 2",
    "SELECT count(*) FROM condition_occurrence WHERE CASE WHEN condition_concept_id = {V1} THEN condition_concept_id ELSE 1 END * 3 = 3",
    "SELECT count(*) FROM condition_occurrence WHERE CAST(CAST(CASE WHEN condition_concept_id = {V1} THEN 1e300 ELSE 1.0 END AS DOUBLE) AS REAL) = 1",
    "SELECT sum(CASE WHEN condition_concept_id = {V1} THEN 9223372036854775807 ELSE 1 END) AS s FROM condition_occurrence",
    "SELECT var_pop(CASE WHEN condition_concept_id = {V1} THEN 1e200 ELSE 0 END) AS v FROM condition_occurrence",
    "SELECT sum(CASE WHEN condition_concept_id = {V1} THEN CAST(9e18 AS BIGINT) ELSE CAST(1e15 AS BIGINT) END) AS s FROM condition_occurrence",
    "SELECT count(*) FROM condition_occurrence WHERE CASE WHEN condition_concept_id = {V1} THEN condition_source_value ELSE 'b' END LIKE '%\\'",
    "SELECT count(*) FROM condition_occurrence WHERE condition_concept_id = {V1} AND regexp_like(condition_source_value, '\\p{L}')",
    // The same failures in other places of the query: a FILTER, an outer
    // join's ON, a group key, a window's ORDER BY, a UNION branch, a
    // second release.
    "SELECT count(*) FILTER (WHERE ln(CASE WHEN condition_concept_id = {V1} THEN 0.0 ELSE 1.0 END) = 0) AS n FROM condition_occurrence",
    "SELECT count(c.person_id) AS n FROM person p LEFT JOIN condition_occurrence c ON c.person_id = p.person_id AND 1.0 / CASE WHEN c.condition_concept_id = {V1} THEN 0.0 ELSE 1.0 END = 1",
    "SELECT CASE WHEN CASE WHEN condition_concept_id = {V1} THEN condition_concept_id ELSE 1 END * 3 = 3 THEN 'a' ELSE 'b' END AS k, count(*) AS n FROM condition_occurrence GROUP BY 1",
    "SELECT count(*) AS n FROM (SELECT person_id, row_number() OVER (PARTITION BY person_id ORDER BY exp(CAST(CASE WHEN condition_concept_id = {V1} THEN 1000.0 ELSE 0.0 END AS DOUBLE))) AS r FROM condition_occurrence) t WHERE r = 1",
    "SELECT count(*) AS n FROM person UNION ALL SELECT count(*) FROM condition_occurrence WHERE power(CASE WHEN condition_concept_id = {V1} THEN -8.0 ELSE 4.0 END, 0.5) = 2",
    "SELECT a.n, b.m FROM (SELECT count(*) AS n FROM person) a CROSS JOIN (SELECT count(*) AS m FROM condition_occurrence WHERE CASE WHEN condition_concept_id = {V1} THEN condition_concept_id ELSE 1 END * 3 = 3) b",
];

/// Site `lu` of the cohort in `data` loaded into the PostgreSQL at `url`.
async fn load_lu(data: &std::path::Path, url: &str) {
    let vocabulary = data.join("concept.parquet");
    postgres::load::load_site(&data.join("lu"), Some(&vocabulary), url)
        .await
        .expect("load lu");
}

/// The error oracle at a PostgreSQL site: with `lu` inside PostgreSQL,
/// each of [`PG_FAILURE_ORACLES`] has the same outcome with and without
/// the victim, never names a site, and answers as the same federation
/// with every site on DataFusion does (the database runs none of the
/// expressions it could fail on; DataFusion runs them over its rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_failures_are_no_oracle_of_the_victim() {
    use ihdsi_tests::planted::{V1_CONDITION, planted};

    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let (pg_with, pg_without) = (
        ihdsi_tests::postgres::start("oracle-with").await,
        ihdsi_tests::postgres::start("oracle-without").await,
    );
    for (data, pg) in [(&victims, &pg_with), (&clean, &pg_without)] {
        load_lu(data, &pg.url()).await;
    }
    let federation = ihdsi_tests::policy(10, false);
    let with = mixed_federation(
        &victims,
        &[("lu", Host::Postgres(&pg_with.url()))],
        federation.clone(),
    )
    .await;
    let without = mixed_federation(
        &clean,
        &[("lu", Host::Postgres(&pg_without.url()))],
        federation.clone(),
    )
    .await;
    let on_datafusion = mixed_federation(&victims, &[], federation).await;
    let mut failures = Vec::new();
    for sql in PG_FAILURE_ORACLES {
        let sql = sql.replace("{V1}", &V1_CONDITION.to_string());
        let outcome = async |uri: &str| {
            ihdsi_tests::ask(uri, &sql)
                .await
                .map(|r| rows(&r.batches))
                .map_err(|e| e.to_string())
        };
        let (a, b, df) = (
            outcome(&with).await,
            outcome(&without).await,
            outcome(&on_datafusion).await,
        );
        if a != b {
            failures.push(format!("{sql}: {a:?} with the victim, {b:?} without"));
        }
        if a != df {
            failures.push(format!(
                "{sql}: {a:?} with lu on PostgreSQL, {df:?} on DataFusion"
            ));
        }
        if let Err(e) = &a
            && ["'lu'", "'us'", "'kr'", "SQLSTATE"]
                .iter()
                .any(|s| e.contains(s))
        {
            failures.push(format!(
                "{sql}: the error names a site or the database: {e}"
            ));
        }
    }
    // A statement the site cancelled (another site failed first, and the
    // query was dropped) is no failure of the database.
    let errors: Vec<String> = pg_with
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("canceling statement due to user request"))
        .map(str::to_string)
        .collect();
    assert!(
        failures.is_empty(),
        "{}\nPostgreSQL log:\n{}",
        failures.join("\n"),
        errors.join("\n")
    );
    assert!(
        errors.is_empty(),
        "PostgreSQL failed on a statement: {}",
        errors.join("\n")
    );
}
