//! The p% dominance rule on SUM cells in threshold mode (attack A05, the
//! outlier sum): a cell is withheld when `X − x₁ − x₂ < p/100 · x₁`, with
//! `x₁ ≥ x₂` the two largest per-patient contributions (absolute values)
//! and `X` their total, over all sites.
//!
//! The oracle is one DataFusion session over the pooled data that computes
//! each group's per-patient contributions, its two largest and its total in
//! SQL, and applies the federation's threshold and the rule. The fixture is
//! the generated cohort with one planted outlier (`planted::outlier`): a
//! measurement of ten million in a common measurement concept, at `kr`.

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_tests::compare::{Cell, diff, rows};
use ihdsi_tests::planted::{OUTLIER_VALUE, outlier};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

/// Threshold mode with k = 10 and the rule at the default p = 10.
pub(crate) fn guarded() -> PrivacyPolicy {
    PrivacyPolicy::threshold(10, false)
}

/// The oracle of `SELECT {key} AS k, sum({value}) AS s, count(DISTINCT
/// person_id) AS n FROM {from} GROUP BY 1` under k = 10 and, with
/// `dominance`, p = 10: groups under k are absent; a sum whose cell (the
/// patients with a non-zero value) is under k, or that is dominated, is
/// NULL.
pub(crate) fn oracle_sql(key: &str, value: &str, from: &str) -> String {
    oracle_sql_with(key, value, from, true)
}

fn oracle_sql_with(key: &str, value: &str, from: &str, dominance: bool) -> String {
    let dominated = if dominance {
        "coalesce(d.total - d.x1 - d.x2 < 0.1 * d.x1, false)"
    } else {
        "false"
    };
    format!(
        "WITH c AS (SELECT {key} AS k, person_id, abs(sum({value})) AS x FROM {from} GROUP BY 1, 2), \
         r AS (SELECT k, x, row_number() OVER (PARTITION BY k ORDER BY x DESC) AS rk FROM c WHERE x IS NOT NULL), \
         d AS (SELECT k, sum(x) AS total, max(CASE WHEN rk = 1 THEN x END) AS x1, \
               coalesce(max(CASE WHEN rk = 2 THEN x END), 0) AS x2 FROM r GROUP BY k), \
         a AS (SELECT {key} AS k, sum({value}) AS s, count(DISTINCT person_id) AS n, \
               count(DISTINCT person_id) FILTER (WHERE {value} IS NOT NULL AND {value} <> 0) AS cell \
               FROM {from} GROUP BY 1) \
         SELECT a.k, CASE WHEN a.cell < 10 OR {dominated} THEN NULL ELSE a.s END AS s, a.n \
         FROM a LEFT JOIN d ON a.k IS NOT DISTINCT FROM d.k WHERE a.n >= 10"
    )
}

fn null_sums(batches: &[datafusion::arrow::array::RecordBatch]) -> usize {
    rows(batches).iter().filter(|r| r[1] == Cell::Null).count()
}

pub(crate) fn query(key: &str, value: &str, from: &str) -> String {
    format!(
        "SELECT {key} AS k, sum({value}) AS s, count(DISTINCT person_id) AS n FROM {from} GROUP BY 1"
    )
}

/// Every case answered by the federation at `uri` as the rule's pooled
/// oracle over `data` answers it (the backend suites' check).
pub(crate) async fn assert_cases_hold(uri: &str, data: &std::path::Path) {
    let oracle = centralized(data).await;
    for (key, value, from) in CASES {
        let sql = query(key, value, from);
        let got = ask(uri, &sql).await.expect("federated");
        let expected = oracle_rows(&oracle, &oracle_sql(key, value, from)).await;
        assert_eq!(diff(&got.batches, &expected), None, "{sql}");
    }
}

pub(crate) const CASES: &[(&str, &str, &str)] = &[
    ("measurement_concept_id", "value_as_number", "measurement"),
    ("drug_concept_id", "quantity", "drug_exposure"),
    ("year_of_birth", "month_of_birth", "person"),
];

/// The concept of the planted outlier.
async fn outlier_concept(oracle: &datafusion::prelude::SessionContext) -> i128 {
    let found = oracle_rows(
        oracle,
        &format!("SELECT DISTINCT measurement_concept_id FROM measurement WHERE value_as_number = {OUTLIER_VALUE}"),
    )
    .await;
    match rows(&found).as_slice() {
        [row] => match row[0] {
            Cell::Int(c) => c,
            ref other => panic!("concept {other:?}"),
        },
        other => panic!("one outlier concept expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sum_cells_follow_the_dominance_rule_over_the_pooled_contributions() {
    let data = outlier(&cohort(6_000)).await;
    let oracle = centralized(&data).await;
    // Sites trust the coordinator, which sees every group's summaries.
    let fed = federation(&data, guarded(), policy(1, false)).await;
    let mut withheld_by_the_rule = 0;
    for (key, value, from) in CASES {
        let sql = query(key, value, from);
        let got = ask(&fed.uri, &sql).await.expect("federated");
        let expected = oracle_rows(&oracle, &oracle_sql(key, value, from)).await;
        assert_eq!(diff(&got.batches, &expected), None, "{sql}");
        let cells_only = oracle_rows(&oracle, &oracle_sql_with(key, value, from, false)).await;
        withheld_by_the_rule += null_sums(&expected) - null_sums(&cells_only);
    }
    fed.shutdown().await;
    assert!(
        withheld_by_the_rule > 0,
        "some group of at least 10 patients must be dominated for this test to mean anything"
    );
}

/// A05: one patient's extreme value hides in a large group's exact sum, and
/// anyone who knows the rest of the group (here: the cohort without the
/// outlier) subtracts it. With the rule the cell is withheld; without it,
/// the subtraction gives the value away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outlier_sum_is_withheld_and_leaks_without_the_rule() {
    let clean = cohort(6_000);
    let data = outlier(&clean).await;
    let oracle = centralized(&data).await;
    let c = outlier_concept(&oracle).await;
    let attack = format!(
        "SELECT 1 AS k, sum(value_as_number) AS s, count(DISTINCT person_id) AS n FROM measurement WHERE measurement_concept_id = {c}"
    );
    let patients = oracle_rows(&oracle, &attack).await;
    assert!(
        matches!(rows(&patients)[0][2], Cell::Int(n) if n >= 10),
        "the outlier's cell must pass the threshold: {:?}",
        rows(&patients)
    );
    let rest = oracle_rows(&centralized(&clean).await, &attack).await;
    let rest = sum_of(&rows(&rest));

    let fed = federation(&data, guarded(), policy(1, false)).await;
    let withheld = ask(&fed.uri, &attack).await.expect("attack");
    assert_eq!(
        rows(&withheld.batches)[0][1],
        Cell::Null,
        "the dominated cell was released"
    );
    // An offset or an affine change cannot make the contributions look
    // alike, and a variance is judged on its spread.
    for spelling in [
        "sum(value_as_number + 1000)",
        "sum(1000 + 2 * value_as_number)",
        "avg(value_as_number - 5)",
        "var_pop(value_as_number)",
        "stddev(value_as_number + 1000)",
    ] {
        let sql = format!(
            "SELECT 1 AS k, {spelling} AS s FROM measurement WHERE measurement_concept_id = {c}"
        );
        let got = ask(&fed.uri, &sql).await.expect("offset spelling");
        assert_eq!(rows(&got.batches)[0][1], Cell::Null, "{sql}: released");
    }
    fed.shutdown().await;

    // Control: the same federation without the rule gives the value away.
    let naive = PrivacyPolicy {
        dominance_p: 0.0,
        ..guarded()
    };
    let fed = federation(&data, naive, policy(1, false)).await;
    let leaked = ask(&fed.uri, &attack).await.expect("attack");
    fed.shutdown().await;
    let difference = sum_of(&rows(&leaked.batches)) - rest;
    assert!(
        (difference - OUTLIER_VALUE).abs() < 1e-3,
        "without the rule the difference is the outlier: {difference}"
    );
}

/// The sum (second column) of the only row.
fn sum_of(rows: &[Vec<Cell>]) -> f64 {
    match rows {
        [row] => match row.get(1) {
            Some(Cell::Float(x)) => *x,
            other => panic!("not a float sum: {other:?}"),
        },
        other => panic!("expected one row, got {other:?}"),
    }
}
