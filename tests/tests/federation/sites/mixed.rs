//! Mixed federations (issue 7): one site inside PostgreSQL, one on an
//! Apache Ballista cluster, one on DataFusion over Parquet, answering as
//! the pooled oracle does; and the same mix started by `ihdsi demo`.
//!
//! The PostgreSQL server and the Ballista cluster are real and started by
//! each test: `initdb` in a temporary folder on a free port, and Ballista's
//! scheduler and executor in this process on loopback (gRPC and Arrow
//! Flight over sockets, plans serialised as they are for a remote cluster).

use ihdsi_engine::site::postgres;
use ihdsi_tests::backends::{Host, ballista_cluster, mixed_federation};
use ihdsi_tests::compare::{diff, rows};
use ihdsi_tests::queries::load;
use ihdsi_tests::{centralized, cohort, connect, differential_failures, oracle_rows, policy};

/// The whole differential suite with `lu` on PostgreSQL, `kr` on Ballista
/// and `us` on DataFusion. Then the evidence that each backend ran the
/// subplans: PostgreSQL's own statement log holds aggregating subplans
/// for most queries and, for the others, reads of rows that DataFusion
/// aggregates in the site's process, and the Ballista executor
/// wrote the stages of at least one job per query.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_differential_suite_holds_over_postgresql_ballista_and_datafusion_sites() {
    let data = cohort(6_000);
    let pg = ihdsi_tests::postgres::start("mixed").await;
    let loaded = postgres::load::load_site(
        &data.join("lu"),
        Some(&data.join("concept.parquet")),
        &pg.url(),
    )
    .await
    .expect("load lu");
    assert!(loaded.tables.len() >= 8, "{loaded:?}");
    let cluster = ballista_cluster().await;
    let scheduler = cluster.scheduler_url();
    let hosts = [
        ("lu", Host::Postgres(&pg.url())),
        ("kr", Host::Ballista(&scheduler)),
    ];
    let uri = mixed_federation(&data, &hosts, policy(1, true)).await;
    let jobs_before = cluster.jobs();
    let oracle = centralized(&data).await;
    let cases = load("differential.slt");
    let failures = differential_failures(&connect(&uri).await, &oracle, &cases).await;
    let log = pg.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("STATEMENT"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} queries differ with lu on PostgreSQL and kr on Ballista:\n{}\nPostgreSQL log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        errors.join("\n")
    );
    assert_postgresql_ran_only_subplans(&log, cases.len());
    let jobs = cluster.jobs() - jobs_before;
    assert!(
        jobs >= cases.len(),
        "the Ballista executor ran {jobs} jobs for {} queries",
        cases.len()
    );
}

/// PostgreSQL's own log (`log_statement = all`; tokio-postgres runs
/// statements as `execute`): every statement the site ran is either a
/// subplan that aggregates per group inside the database (its output the
/// partials and the distinct-patient count), or, for a subplan with an
/// expression PostgreSQL could fail on, a read of one table's rows for
/// DataFusion in the site's process. Most queries aggregate inside.
#[expect(
    clippy::print_stdout,
    reason = "the split between the two ways is a figure for the closing note"
)]
fn assert_postgresql_ran_only_subplans(log: &str, queries: usize) {
    let statements: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("LOG:") && (l.contains("execute") || l.contains("statement:")))
        .filter_map(|l| l.find("SELECT").map(|i| &l[i..]))
        .collect();
    let aggregating = |s: &&&str| {
        s.contains("ihdsi_subplan")
            && s.contains(r#"count(DISTINCT "#)
            && s.contains(r#"AS "ihdsi_patients""#)
    };
    let reading = |s: &&&str| s.contains(r#"AS "ihdsi_r0""#);
    let subplans = statements.iter().filter(aggregating).count();
    let reads = statements.iter().filter(reading).count();
    println!(
        "{queries} queries: {subplans} subplans aggregated inside PostgreSQL, {reads} table reads for DataFusion"
    );
    assert!(
        2 * subplans >= queries,
        "{subplans} aggregating subplans (and {reads} reads for DataFusion) logged for {queries} queries"
    );
    for s in &statements {
        let catalog = s.contains("information_schema.tables");
        assert!(
            catalog || aggregating(&s) || reading(&s),
            "a statement that neither aggregates per group nor reads for DataFusion ran in PostgreSQL: {s}"
        );
    }
}

/// The p% dominance rule with the outlier's site (`kr`) on Ballista: its
/// per-patient contributions are computed on the cluster too, and the
/// released SUM cells are the pooled oracle's under k = 10 and the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dominance_rule_holds_with_a_site_on_ballista() {
    use crate::disclosure::dominance::{assert_cases_hold, guarded};

    let data = ihdsi_tests::planted::outlier(&cohort(6_000)).await;
    let cluster = ballista_cluster().await;
    let scheduler = cluster.scheduler_url();
    let uri = mixed_federation(&data, &[("kr", Host::Ballista(&scheduler))], guarded()).await;
    assert_cases_hold(&uri, &data).await;
}

/// `ihdsi demo --site-backend lu=postgres --site-backend kr=ballista`: the
/// demo starts its own PostgreSQL server (loading `lu` into it) and its
/// own Ballista cluster, and the mixed federation answers as the pooled
/// oracle does (thresholds 10 at the sites and the federation; grouping by
/// site, so both thresholds are the oracle's one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_mixes_postgresql_ballista_and_datafusion_sites() {
    use ihdsi_cli::client::{Connection, Credentials};
    use ihdsi_tests::process::{DemoProcess, PASSWORD};

    let data = cohort(6_000);
    let demo = DemoProcess::start_with(
        &data,
        &[
            "--site-backend",
            "lu=postgres",
            "--site-backend",
            "kr=ballista",
        ],
    );
    let login = Credentials::Password {
        user: ihdsi_cli::demo::DEMO_USER.into(),
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
    assert!(
        demo.banner.contains("inside PostgreSQL") && demo.banner.contains("on Apache Ballista"),
        "{}",
        demo.banner
    );
}

/// A Ballista-backed site whose scheduler cannot be reached does not start
/// and says why, naming the scheduler; it does not wait for an analyst's
/// first query to fail.
#[test]
fn a_ballista_site_without_its_scheduler_refuses_to_start_and_names_it() {
    let dir = std::env::temp_dir().join(format!("ihdsi-no-scheduler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let config = dir.join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"kr\"\nlisten = \"127.0.0.1:0\"\nbackend = \"ballista\"\nurl = \"df://127.0.0.1:{closed}\"\ndata = {:?}\n",
            cohort(6_000).join("kr").display().to_string()
        ),
    )
    .expect("site.toml");
    let out = ihdsi_tests::secured::ihdsi(&["site", "--config", &config.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Ballista scheduler df://127.0.0.1:{closed} did not run a probe job"
        )),
        "{stderr}"
    );
}
