//! The p% dominance rule on SUM cells in threshold mode (attack A05, the
//! outlier sum): a cell is withheld when `X − x₁ − x₂ < p/100 · x₁`, with
//! `x₁ ≥ x₂` the two largest per-patient contributions (absolute values)
//! and `X` their total, over all sites.
//!
//! The oracle is one DataFusion session over the pooled data that computes
//! each group's per-patient contributions, its two largest and its total in
//! SQL, and applies the federation's threshold and the rule.

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_tests::compare::{Cell, diff, rows};
use ihdsi_tests::planted::{V2_MEASUREMENT, planted};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

/// Threshold mode with k = 10 and the rule at the default p = 10.
fn guarded() -> PrivacyPolicy {
    PrivacyPolicy::threshold(10, false)
}

/// The oracle of `SELECT {key} AS k, sum({value}) AS s, count(DISTINCT
/// person_id) AS n FROM {from} GROUP BY 1` under k = 10 and p = 10.
fn oracle_sql(key: &str, value: &str, from: &str) -> String {
    format!(
        "WITH c AS (SELECT {key} AS k, person_id, abs(sum({value})) AS x FROM {from} GROUP BY 1, 2), \
         r AS (SELECT k, x, row_number() OVER (PARTITION BY k ORDER BY x DESC) AS rk FROM c WHERE x IS NOT NULL), \
         d AS (SELECT k, sum(x) AS total, max(CASE WHEN rk = 1 THEN x END) AS x1, \
               coalesce(max(CASE WHEN rk = 2 THEN x END), 0) AS x2 FROM r GROUP BY k), \
         a AS (SELECT {key} AS k, sum({value}) AS s, count(DISTINCT person_id) AS n FROM {from} GROUP BY 1) \
         SELECT a.k, a.s, a.n FROM a LEFT JOIN d ON a.k IS NOT DISTINCT FROM d.k \
         WHERE a.n >= 10 AND NOT coalesce(d.total - d.x1 - d.x2 < 0.1 * d.x1, false)"
    )
}

fn query(key: &str, value: &str, from: &str) -> String {
    format!(
        "SELECT {key} AS k, sum({value}) AS s, count(DISTINCT person_id) AS n FROM {from} GROUP BY 1"
    )
}

const CASES: &[(&str, &str, &str)] = &[
    ("measurement_concept_id", "value_as_number", "measurement"),
    ("drug_concept_id", "quantity", "drug_exposure"),
    ("year_of_birth", "month_of_birth", "person"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sum_cells_follow_the_dominance_rule_over_the_pooled_contributions() {
    let data = planted(&cohort(6_000)).await;
    let oracle = centralized(&data).await;
    // Sites trust the coordinator, which sees every group's summaries.
    let fed = federation(&data, guarded(), policy(1, false)).await;
    let mut withheld_by_the_rule = 0;
    for (key, value, from) in CASES {
        let sql = query(key, value, from);
        let got = ask(&fed.uri, &sql).await.expect("federated");
        let expected = oracle_rows(&oracle, &oracle_sql(key, value, from)).await;
        assert_eq!(diff(&got.batches, &expected), None, "{sql}");
        let thresholded = oracle_rows(
            &oracle,
            &format!("{sql} HAVING count(DISTINCT person_id) >= 10"),
        )
        .await;
        withheld_by_the_rule += rows(&thresholded).len() - rows(&expected).len();
    }
    fed.shutdown().await;
    assert!(
        withheld_by_the_rule > 0,
        "some group of at least 10 patients must be dominated for this test to mean anything"
    );
}

/// A05: one patient's huge sum hides in a cell of many small ones, and the
/// attacker subtracts the cell without them. `C` is a measurement whose own
/// cell passes both rules but which V2's 600 rows dominate when pooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outlier_sum_is_withheld_and_leaks_without_the_rule() {
    let data = planted(&cohort(6_000)).await;
    let oracle = centralized(&data).await;
    let pooled = |c: &str| format!("measurement_concept_id IN ({V2_MEASUREMENT}, {c})");
    let candidates = oracle_rows(
        &oracle,
        &format!(
            "SELECT k FROM ({}) t ORDER BY k",
            oracle_sql("measurement_concept_id", "value_as_number", "measurement")
        ),
    )
    .await;
    let mut target = None;
    for row in rows(&candidates) {
        let Cell::Int(c) = row[0] else { continue };
        let from = format!("measurement WHERE {}", pooled(&c.to_string()));
        let both = oracle_rows(&oracle, &oracle_sql("1", "value_as_number", &from)).await;
        if rows(&both).is_empty() {
            target = Some(c);
            break;
        }
    }
    let c = target.expect("the cohort must hold a measurement that V2 dominates");
    let attack = format!(
        "SELECT 1 AS k, sum(value_as_number) AS s FROM measurement WHERE {}",
        pooled(&c.to_string())
    );
    let rest = format!(
        "SELECT 1 AS k, sum(value_as_number) AS s FROM measurement WHERE measurement_concept_id = {c}"
    );
    let victim = oracle_rows(
        &oracle,
        &format!("SELECT sum(value_as_number) AS s FROM measurement WHERE measurement_concept_id = {V2_MEASUREMENT}"),
    )
    .await;
    let victim = sum_of(&rows(&victim));

    let fed = federation(&data, guarded(), policy(1, false)).await;
    let withheld = ask(&fed.uri, &attack).await.expect("attack");
    let alone = ask(&fed.uri, &rest).await.expect("rest");
    fed.shutdown().await;
    assert!(
        rows(&withheld.batches).is_empty(),
        "the dominated cell was released"
    );
    assert_eq!(
        rows(&alone.batches).len(),
        1,
        "C's own cell passes both rules"
    );

    // Control: the same federation without the rule gives V2 away.
    let naive = PrivacyPolicy {
        dominance_p: 0.0,
        ..guarded()
    };
    let fed = federation(&data, naive, policy(1, false)).await;
    let leaked = ask(&fed.uri, &attack).await.expect("attack");
    let alone = ask(&fed.uri, &rest).await.expect("rest");
    fed.shutdown().await;
    let difference = sum_of(&rows(&leaked.batches)) - sum_of(&rows(&alone.batches));
    assert!(
        (difference - victim).abs() < 1e-6 * victim.abs().max(1.0),
        "without the rule the difference is V2's sum: {difference} vs {victim}"
    );
}

/// The last float column of the only row.
fn sum_of(rows: &[Vec<Cell>]) -> f64 {
    match rows {
        [row] => match row.last() {
            Some(Cell::Float(x)) => *x,
            other => panic!("not a float sum: {other:?}"),
        },
        other => panic!("expected one row, got {other:?}"),
    }
}
