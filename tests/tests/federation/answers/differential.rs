//! Federated answers against the centralized oracle (tests/queries/*.slt).

use ihdsi_tests::compare::{Cell, diff, rows};
use ihdsi_tests::queries::load;
use ihdsi_tests::{ask, centralized, cohort, connect, federation, oracle_rows, policy, prepared};

const PERSONS: u64 = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn federated_equals_centralized_with_thresholds_at_one() {
    let data = cohort(PERSONS);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let oracle = centralized(&data).await;
    let cases = load("differential.slt");
    assert!(
        cases.len() >= 40,
        "the suite must hold at least 40 queries, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let expected = oracle_rows(&oracle, &case.sql).await;
        assert!(
            !rows(&expected).is_empty(),
            "{}: the oracle returns no rows, so the case tests nothing",
            case.name
        );
        match ask(&fed.uri, &case.sql).await {
            Ok(got) => {
                if let Some(d) = diff(&got.batches, &expected) {
                    failures.push(format!("{}: {d}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: federated query failed: {e}", case.name)),
        }
    }
    fed.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Group keys that are bound parameters, alone and beside a column, in a
/// filter and in the select list, equal the oracle with the values written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parameter_group_keys_equal_the_oracle() {
    let data = cohort(PERSONS);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let oracle = centralized(&data).await;
    let connection = connect(&fed.uri).await;
    let cases: [(&str, &[i64], &str); 3] = [
        (
            "SELECT $1 AS k, count(*) AS persons FROM person GROUP BY 1",
            &[7],
            "SELECT 7 AS k, count(*) AS persons FROM person GROUP BY 1",
        ),
        (
            "SELECT ? AS k, gender_concept_id, count(*) AS persons FROM person WHERE year_of_birth < ? GROUP BY 1, 2",
            &[3, 1960],
            "SELECT 3 AS k, gender_concept_id, count(*) AS persons FROM person WHERE year_of_birth < 1960 GROUP BY 1, 2",
        ),
        (
            "SELECT gender_concept_id, $1 AS k, $1 AS j, count(*) AS persons FROM person GROUP BY 1, 2, 3",
            &[42],
            "SELECT gender_concept_id, 42 AS k, 42 AS j, count(*) AS persons FROM person GROUP BY 1, 2, 3",
        ),
    ];
    let mut failures = Vec::new();
    for (sql, params, written) in cases {
        let expected = oracle_rows(&oracle, written).await;
        match prepared(&connection, sql, params).await {
            Ok(got) => {
                if let Some(d) = diff(&got, &expected) {
                    failures.push(format!("{sql}: {d}"));
                }
            }
            Err(e) => failures.push(format!("{sql}: {e}")),
        }
    }
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_threshold_removes_exactly_the_small_groups() {
    let data = cohort(PERSONS);
    let fed = federation(&data, policy(10, true), policy(1, true)).await;
    let oracle = centralized(&data).await;
    let cases = load("thresholded.slt");
    let mut failures = Vec::new();
    let mut total_suppressed = 0;
    for case in &cases {
        let oracle_sql = case
            .oracle
            .as_deref()
            .unwrap_or_else(|| panic!("{}: no `onlyif oracle` record", case.name));
        let expected = oracle_rows(&oracle, oracle_sql).await;
        let got = match ask(&fed.uri, &case.sql).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: federated query failed: {e}", case.name));
                continue;
            }
        };
        // An aggregate without GROUP BY keeps its row when its group is
        // withheld, every cell NULL, where the oracle's HAVING has none.
        let withheld_scalar = rows(&expected).is_empty()
            && rows(&got.batches) == [vec![Cell::Null; got.schema.fields().len()]];
        if let Some(d) = diff(&got.batches, &expected).filter(|_| !withheld_scalar) {
            failures.push(format!("{}: {d}", case.name));
        }
        if !case.sql.to_uppercase().contains("LIMIT") {
            let all = oracle_rows(&oracle, &case.sql).await;
            let want = (rows(&all).len() - rows(&expected).len()) as u64;
            // A count of distinct values is a release of its own per value
            // (`planner/src/distinct_values.rs`): its withheld value groups
            // are reported too, on top of the rows the oracle removed.
            let reported = got.suppressed_groups();
            let consistent = if case.name.starts_with("count_distinct") {
                reported.is_some_and(|n| n >= want)
            } else {
                reported == Some(want)
            };
            if !consistent {
                failures.push(format!(
                    "{}: reported {:?} suppressed groups, the oracle removed {want}",
                    case.name,
                    got.suppressed_groups()
                ));
            }
            total_suppressed += want;
        }
    }
    fed.shutdown().await;
    assert!(
        total_suppressed > 0,
        "the threshold suite must actually suppress groups"
    );
    assert!(
        failures.is_empty(),
        "{} of {} thresholded queries differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn site_threshold_drops_small_site_groups_before_sending() {
    let data = cohort(PERSONS);
    let fed = federation(&data, policy(1, false), policy(10, false)).await;
    let oracle = centralized(&data).await;
    // Each group lives at one site, so the site threshold is exactly a HAVING.
    let sql = "SELECT site, condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY site, condition_concept_id";
    let expected = oracle_rows(
        &oracle,
        &format!("{sql} HAVING count(DISTINCT person_id) >= 10"),
    )
    .await;
    let all = oracle_rows(&oracle, sql).await;
    let got = ask(&fed.uri, sql).await.expect("federated");
    fed.shutdown().await;
    assert_eq!(diff(&got.batches, &expected), None);
    let dropped = rows(&all).len() - rows(&expected).len();
    assert!(
        dropped > 0,
        "the site threshold must drop some groups in this cohort"
    );
    let site_suppressed: usize = got.schema.metadata()["ihdsi.site_suppressed_groups"]
        .parse()
        .expect("count");
    assert_eq!(site_suppressed, dropped);
    assert_eq!(
        got.suppressed_groups(),
        Some(0),
        "nothing is left for the coordinator to suppress"
    );
}
