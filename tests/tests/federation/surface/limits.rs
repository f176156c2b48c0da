//! Statements too large to plan are refused before planning, by name of
//! the limit, and leave the coordinator serving; a statement at the limit
//! is answered, equal to the oracle. (A chain of 2,000 `AND`s used to
//! overflow the planning thread's stack and abort the whole process.)

use ihdsi_cli::client::{ClientOptions, Connection, Credentials};
use ihdsi_tests::compare::diff;
use ihdsi_tests::secured::{ANALYST, Material, PASSWORD, SecuredFederation, Setup, site_ids};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

const HEALTHY: &str = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1";

fn chain(table: &str, column: &str, op: &str, n: usize) -> String {
    let terms: Vec<String> = (0..n).map(|i| format!("{column} > {}", i + 1000)).collect();
    format!(
        "SELECT count(*) AS n FROM {table} WHERE {}",
        terms.join(&format!(" {op} "))
    )
}

/// Every spelling of a statement past the chain limit.
fn too_large() -> Vec<(&'static str, String)> {
    let ones = vec!["1"; 2_000].join(" + ");
    let concat = vec!["'a'"; 2_000].join(" || ");
    vec![
        ("2,000 ANDs", chain("person", "year_of_birth", "AND", 2_000)),
        ("2,000 ORs", chain("person", "year_of_birth", "OR", 2_000)),
        (
            "a sum of 2,000 ones",
            format!("SELECT sum({ones}) AS s FROM person"),
        ),
        (
            "2,000 ANDs over the public vocabulary",
            chain("concept", "concept_id", "AND", 2_000),
        ),
        (
            "2,000 concatenations",
            format!("SELECT count(*) AS n FROM person WHERE person_source_value = {concat}"),
        ),
        (
            "2,000 ANDs inside a FILTER",
            format!(
                "SELECT count(*) FILTER (WHERE {}) AS n FROM person",
                vec!["year_of_birth > 1000"; 2_000].join(" AND ")
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statements_past_the_limits_are_refused_and_one_at_the_limit_is_answered() {
    let data = cohort(3_000);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let oracle = centralized(&data).await;
    for (what, sql) in too_large() {
        let err = ask(&fed.uri, &sql).await.expect_err(what).to_string();
        assert!(
            err.contains("max_chain_terms") && err.contains("too large to plan"),
            "{what}: {err}"
        );
        assert!(!err.to_lowercase().contains("internal"), "{what}: {err}");
        ask(&fed.uri, HEALTHY)
            .await
            .unwrap_or_else(|e| panic!("after {what} the coordinator stopped serving: {e}"));
    }
    // 5,000 nested parentheses: the parser's own recursion limit.
    let nested = format!(
        "SELECT count(*) AS n FROM person WHERE {}year_of_birth > 1900{}",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let err = ask(&fed.uri, &nested)
        .await
        .expect_err("nested")
        .to_string();
    assert!(
        err.contains("max_nesting") || err.contains("recursion limit"),
        "{err}"
    );
    // At the limit: planned at the coordinator, planned again at each site
    // (whose subplan carries more terms), run, and equal to the oracle.
    let limit = ihdsi_catalog::QueryLimits::default().max_chain_terms;
    for op in ["AND", "OR"] {
        let sql = chain("person", "year_of_birth", op, limit + 1);
        let got = ask(&fed.uri, &sql)
            .await
            .unwrap_or_else(|e| panic!("{op} chain at the limit: {e}"));
        let expected = oracle_rows(&oracle, &sql).await;
        assert_eq!(diff(&got.batches, &expected), None, "{op} chain");
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_statement_is_on_the_audit_trail_with_its_limit() {
    let data = cohort(3_000);
    let sites = site_ids(&data);
    let material = Material::make("limits", &sites);
    let permit = material.permit("P-LIMITS", &[]);
    let fed = SecuredFederation::start(&data, &material, &Setup::default(), &[permit]);
    let credentials = Credentials::Password {
        user: ANALYST.into(),
        password: PASSWORD.into(),
    };
    let connection = Connection::connect_with(&fed.uri, &credentials, &ClientOptions::default())
        .await
        .expect("connect");
    let sql = chain("person", "year_of_birth", "AND", 2_000);
    let err = connection
        .query(&sql)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("max_chain_terms"), "{err}");
    connection.query(HEALTHY).await.expect("still serving");
    let trail = std::fs::read_to_string(fed.coordinator_trail()).expect("trail");
    assert!(trail.contains("\"code\":\"plan.limit\""), "{trail}");
    drop(fed);
}
