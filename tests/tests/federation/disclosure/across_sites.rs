//! How thresholds behave across sites (attack A18 of the privacy anchors,
//! the "4/4/4" cohort): a group small at every site but large overall.
//!
//! * Sites that do not trust the coordinator keep their own threshold on
//!   the partials they send. Such a group is then dropped at every site and
//!   reported absent: the released counts are exact for what is released,
//!   but split cohorts are lost.
//! * Sites that trust the coordinator (`min_group_size = 1` in `site.toml`,
//!   mode A of the anchors) send every non-empty group; the federation's
//!   threshold then applies to the exact global count, and the group is
//!   released when it passes.

use ihdsi_tests::compare::{diff, rows};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

/// Distinct patients per (year of birth, gender, site).
const PER_SITE: &str = "SELECT year_of_birth AS born, gender_concept_id AS gender, site, count(DISTINCT person_id) AS n FROM person GROUP BY 1, 2, 3";
const QUERY: &str = "SELECT year_of_birth AS born, gender_concept_id AS gender, count(DISTINCT person_id) AS n FROM person GROUP BY 1, 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_cohorts_are_lost_under_site_thresholds_and_counted_when_sites_trust_the_coordinator()
{
    let data = cohort(6_000);
    let oracle = centralized(&data).await;
    let split = oracle_rows(
        &oracle,
        &format!("SELECT born, gender FROM ({PER_SITE}) t GROUP BY born, gender HAVING max(n) < 10 AND sum(n) >= 10"),
    )
    .await;
    assert!(
        !rows(&split).is_empty(),
        "the cohort must hold split cells for this test to mean anything"
    );

    // Sites keep their own threshold of 10.
    let guarded = federation(&data, policy(10, false), policy(10, false)).await;
    let got = ask(&guarded.uri, QUERY).await.expect("federated");
    guarded.shutdown().await;
    let expected = oracle_rows(
        &oracle,
        &format!("SELECT born, gender, sum(n) AS n FROM ({PER_SITE}) t WHERE n >= 10 GROUP BY born, gender HAVING sum(n) >= 10"),
    )
    .await;
    assert_eq!(
        diff(&got.batches, &expected),
        None,
        "site thresholds: sums of passing site cells"
    );

    // Sites trust the coordinator: exact global counting, one threshold.
    let trusting = federation(&data, policy(10, false), policy(1, false)).await;
    let got = ask(&trusting.uri, QUERY).await.expect("federated");
    trusting.shutdown().await;
    let expected = oracle_rows(
        &oracle,
        &format!("{QUERY} HAVING count(DISTINCT person_id) >= 10"),
    )
    .await;
    assert_eq!(
        diff(&got.batches, &expected),
        None,
        "trusted coordinator: exact global threshold"
    );
    let released = rows(&got.batches);
    for cell in rows(&split) {
        assert!(
            released.iter().any(|r| r[..2] == cell[..]),
            "split cell {cell:?} must be released when sites trust the coordinator"
        );
    }
}

/// `round_counts_to = 5`: released counts are rounded to the nearest
/// multiple of 5 after the threshold, which still sees exact counts;
/// averages are not rounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn released_counts_are_rounded_after_an_exact_threshold() {
    let data = cohort(6_000);
    let oracle = centralized(&data).await;
    let rounding = ihdsi_catalog::PrivacyPolicy {
        round_counts_to: 5,
        ..policy(10, false)
    };
    let fed = federation(&data, rounding, policy(1, false)).await;
    let inner = "SELECT year_of_birth AS y, count(*) AS n, count(DISTINCT person_id) AS p, avg(month_of_birth) AS a FROM person GROUP BY 1";
    let got = ask(&fed.uri, inner).await.expect("federated");
    fed.shutdown().await;
    let exact = oracle_rows(
        &oracle,
        &format!("{inner} HAVING count(DISTINCT person_id) >= 10"),
    )
    .await;
    let expected = oracle_rows(
        &oracle,
        &format!("SELECT y, (n + 2) / 5 * 5 AS n, (p + 2) / 5 * 5 AS p, a FROM ({inner} HAVING count(DISTINCT person_id) >= 10) t"),
    )
    .await;
    assert_eq!(diff(&got.batches, &expected), None);
    assert_ne!(
        diff(&got.batches, &exact),
        None,
        "some exact counts must not be multiples of 5 for this test to mean anything"
    );
    assert_eq!(got.schema.metadata()["ihdsi.counts_rounded_to"], "5");
}
