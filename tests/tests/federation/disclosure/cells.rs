//! Issue 17's attack classes against a real threshold federation (k = 10
//! at the coordinator, k = 1 at the sites, so that the coordinator's rule
//! is the one tested), each checked against ground truth: the pooled
//! oracle shows that the attack would recover the victim (its answer
//! differs with and without the victim), and the federation's answer is
//! identical with and without the victim, so it recovers nothing.
//!
//! Classes, several spellings each: conditional counts and sums (CASE,
//! FILTER, `sum` of 0/1 indicators, weighted encodings), the nullable side
//! of outer joins, variance and offset forms, bisection on a refused MAX,
//! per-site numbers, and run-time failure oracles. Exact-day and
//! day-of-birth reconstructions are refused while planning, whatever the
//! data: they are pinned in `tests/queries/refused.slt` and in the
//! planner's `admission::dates` tests.

use ihdsi_tests::compare::{Cell, diff, rows};
use ihdsi_tests::planted::{OUTLIER_VALUE, V1_CONDITION, V2_MEASUREMENT, outlier, planted};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

/// `{V1}` and `{V2}` stand for the victims' codes.
pub(crate) fn spell(sql: &str) -> String {
    sql.replace("{V1}", &V1_CONDITION.to_string())
        .replace("{V2}", &V2_MEASUREMENT.to_string())
}

/// Attacks whose answer on the pooled data depends on the victims.
const CELL_ATTACKS: &[(&str, &str)] = &[
    (
        "conditional count, CASE",
        "SELECT count(CASE WHEN condition_concept_id = {V1} THEN 1 END) AS n FROM condition_occurrence",
    ),
    (
        "conditional count, FILTER",
        "SELECT count(*) FILTER (WHERE condition_concept_id = {V1}) AS n FROM condition_occurrence",
    ),
    (
        "conditional count, sum of an indicator",
        "SELECT sum(CASE WHEN condition_concept_id = {V1} THEN 1 ELSE 0 END) AS n FROM condition_occurrence",
    ),
    (
        "conditional count, negated indicator",
        "SELECT sum(CASE WHEN condition_concept_id <> {V1} THEN 0 ELSE 1 END) AS n FROM condition_occurrence",
    ),
    (
        "conditional count of distinct patients",
        "SELECT count(DISTINCT person_id) FILTER (WHERE condition_concept_id = {V1}) AS n FROM condition_occurrence",
    ),
    (
        "conditional count of distinct concepts",
        "SELECT count(DISTINCT condition_concept_id) FILTER (WHERE condition_concept_id = {V1}) AS n FROM condition_occurrence",
    ),
    (
        "distinct concepts lifted over k by a common one",
        "SELECT count(DISTINCT condition_concept_id) AS n FROM condition_occurrence \
         WHERE condition_concept_id = 320128 OR condition_concept_id = {V1}",
    ),
    (
        "conditional count in every grouping set of a rollup",
        "SELECT p.gender_concept_id, count(*) FILTER (WHERE c.condition_concept_id = {V1}) AS n \
         FROM person p JOIN condition_occurrence c ON p.person_id = c.person_id GROUP BY ROLLUP(p.gender_concept_id)",
    ),
    (
        "distinct concepts with an offset and a scale",
        "SELECT count(DISTINCT 2 * condition_concept_id + 7) AS n FROM condition_occurrence \
         WHERE condition_concept_id = 320128 OR condition_concept_id = {V1}",
    ),
    (
        "distinct concepts in a second release of the same query",
        "SELECT count(*) AS n FROM person UNION ALL \
         SELECT count(DISTINCT coalesce(condition_concept_id, 0)) AS n FROM condition_occurrence \
         WHERE condition_concept_id = 320128 OR condition_concept_id = {V1}",
    ),
    (
        "distinct concepts of the nullable side of an outer join, by gender",
        "SELECT p.gender_concept_id, count(DISTINCT c.condition_concept_id) AS n FROM person p LEFT JOIN condition_occurrence c \
         ON p.person_id = c.person_id AND c.condition_concept_id = {V1} GROUP BY 1",
    ),
    (
        "conditional counts inside large groups (quasi-identifiers)",
        "SELECT p.gender_concept_id, count(*) FILTER (WHERE c.condition_concept_id = {V1}) AS a, \
         count(CASE WHEN c.condition_concept_id = {V1} THEN 1 END) AS b \
         FROM person p JOIN condition_occurrence c ON p.person_id = c.person_id GROUP BY 1",
    ),
    (
        "weighted encoding: two terms, one rare",
        "SELECT sum(CASE WHEN condition_concept_id = {V1} THEN 1 WHEN condition_concept_id > 0 THEN 1000000 END) AS n FROM condition_occurrence",
    ),
    (
        "outer join, the nullable side",
        "SELECT count(c.person_id) AS n FROM person p LEFT JOIN condition_occurrence c \
         ON p.person_id = c.person_id AND c.condition_concept_id = {V1}",
    ),
    (
        "outer join, the nullable side of a filtered subquery",
        "SELECT count(v.person_id) AS n FROM person p LEFT JOIN \
         (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = {V1}) v \
         ON p.person_id = v.person_id",
    ),
    (
        "conditional sum of a value",
        "SELECT sum(CASE WHEN measurement_concept_id = {V2} THEN value_as_number END) AS s FROM measurement",
    ),
    (
        "conditional average, FILTER",
        "SELECT avg(value_as_number) FILTER (WHERE measurement_concept_id = {V2}) AS s FROM measurement",
    ),
    (
        "conditional sum with ELSE 0",
        "SELECT sum(CASE WHEN measurement_concept_id = {V2} THEN value_as_number ELSE 0 END) AS s FROM measurement",
    ),
    (
        "variance of a victim-only term",
        "SELECT var_pop(CASE WHEN measurement_concept_id = {V2} THEN value_as_number ELSE 0 END) AS v FROM measurement",
    ),
    (
        "standard deviation of a victim-only term",
        "SELECT stddev(CASE WHEN measurement_concept_id = {V2} THEN value_as_number END) AS v FROM measurement",
    ),
    (
        "offset sum",
        "SELECT sum(value_as_number + 1000) FILTER (WHERE measurement_concept_id = {V2}) AS s FROM measurement",
    ),
    (
        "offset in a CASE",
        "SELECT sum(CASE WHEN measurement_concept_id = {V2} THEN value_as_number ELSE 1000 END) AS s FROM measurement",
    ),
    (
        "sum of a literal, FILTER",
        "SELECT sum(1) FILTER (WHERE condition_concept_id = {V1}) AS n FROM condition_occurrence",
    ),
    (
        "average of an indicator",
        "SELECT avg(CASE WHEN condition_concept_id = {V1} THEN 1.0 ELSE 0.0 END) AS n FROM condition_occurrence",
    ),
    (
        "a value scaled by a rare weight",
        "SELECT sum(value_as_number * CASE WHEN measurement_concept_id = {V2} THEN 1000 ELSE 1 END) AS s FROM measurement",
    ),
    (
        "outer join to a constant column",
        "SELECT count(v.one) AS n FROM person p LEFT JOIN \
         (SELECT person_id, 1 AS one FROM condition_occurrence WHERE condition_concept_id = {V1}) v \
         ON p.person_id = v.person_id",
    ),
    (
        "a second release in the same query",
        "SELECT a.n, b.m FROM (SELECT count(*) AS n FROM person) a CROSS JOIN \
         (SELECT count(*) FILTER (WHERE condition_concept_id = {V1}) AS m FROM condition_occurrence) b",
    ),
    (
        "the rare cell in the second branch of a UNION",
        "SELECT count(*) AS n FROM person UNION ALL \
         SELECT count(CASE WHEN condition_concept_id = {V1} THEN 1 END) FROM condition_occurrence",
    ),
    (
        "per-site conditional count",
        "SELECT site, count(*) FILTER (WHERE condition_concept_id = {V1}) AS n FROM condition_occurrence GROUP BY site",
    ),
    (
        "per-site conditional sum",
        "SELECT site, sum(CASE WHEN condition_concept_id = {V1} THEN 1 ELSE 0 END) AS n FROM condition_occurrence GROUP BY site",
    ),
];

/// The rows of `sql`, and what the metadata says was withheld: both must
/// be the same with and without the victim.
async fn outcome(uri: &str, sql: &str) -> Result<(Vec<Vec<Cell>>, String), String> {
    ask(uri, sql)
        .await
        .map(|r| {
            let withheld =
                r.schema.metadata()[ihdsi_engine::protocol::metadata::WITHHELD_CELLS].clone();
            (rows(&r.batches), withheld)
        })
        .map_err(|e| e.to_string())
}

/// A scalar aggregate always has its row: over an empty cohort its cells
/// are NULL and the metadata says they were withheld; a released group's
/// withheld cell is counted too, and a NULL of the data is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withheld_cells_are_visible_as_withheld() {
    use ihdsi_engine::protocol::metadata::WITHHELD_CELLS;
    let data = cohort(6_000);
    let fed = federation(&data, policy(10, false), policy(1, false)).await;
    let empty = ask(
        &fed.uri,
        "SELECT count(*) AS n, avg(year_of_birth) AS mean FROM person WHERE year_of_birth > 3000",
    )
    .await
    .expect("answered");
    assert_eq!(rows(&empty.batches), vec![vec![Cell::Null, Cell::Null]]);
    let withheld: serde_json::Value =
        serde_json::from_str(&empty.schema.metadata()[WITHHELD_CELLS]).expect("json");
    assert_eq!(
        withheld,
        serde_json::json!([
            {"release": 0, "column": "n", "cells": 1},
            {"release": 0, "column": "mean", "cells": 1}
        ])
    );
    let grouped = ask(
        &fed.uri,
        "SELECT gender_concept_id, count(*) AS n, count(*) FILTER (WHERE year_of_birth = 1900) AS rare, avg(CASE WHEN year_of_birth > 3000 THEN 1.0 END) AS never FROM person GROUP BY 1",
    )
    .await
    .expect("answered");
    let groups = rows(&grouped.batches).len() as u64;
    assert!(groups >= 2);
    let withheld: serde_json::Value =
        serde_json::from_str(&grouped.schema.metadata()[WITHHELD_CELLS]).expect("json");
    assert_eq!(
        withheld,
        serde_json::json!([
            {"release": 0, "column": "rare", "cells": groups},
            {"release": 0, "column": "never", "cells": groups}
        ]),
        "withheld: every group's rare count (no one born in 1900) and its average of nothing"
    );
    let plain = ask(
        &fed.uri,
        "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1",
    )
    .await
    .expect("answered");
    assert_eq!(plain.schema.metadata()[WITHHELD_CELLS], "[]");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_cells_under_k_are_withheld_in_every_spelling() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let (o1, o0) = (centralized(&victims).await, centralized(&clean).await);
    let with = federation(&victims, policy(10, false), policy(1, false)).await;
    let without = federation(&clean, policy(10, false), policy(1, false)).await;
    let mut failures = Vec::new();
    let mut answered = 0;
    for (name, sql) in CELL_ATTACKS {
        let sql = spell(sql);
        let (t1, t0) = (oracle_rows(&o1, &sql).await, oracle_rows(&o0, &sql).await);
        if diff(&t1, &t0).is_none() {
            failures.push(format!(
                "{name}: the oracle does not see the victim, so the case tests nothing"
            ));
        }
        match (
            outcome(&with.uri, &sql).await,
            outcome(&without.uri, &sql).await,
        ) {
            (Ok(a), Ok(b)) if a == b => answered += 1,
            // Refused from the text alone: the same in both worlds.
            (Err(a), Err(b)) if a == b => {}
            (a, b) => failures.push(format!(
                "{name}: the outcome depends on the victim: {a:?} vs {b:?}"
            )),
        }
    }
    with.shutdown().await;
    without.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        answered + 2 >= CELL_ATTACKS.len(),
        "only {answered} of {} spellings were answered: the withholding, not a refusal, is under test",
        CELL_ATTACKS.len()
    );
}

/// The rare condition as a bound parameter of a prepared statement (the
/// JDBC and ADBC path): the cell is withheld as with a literal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conditional_cell_with_a_bound_parameter_is_withheld() {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let oracle = centralized(&victims).await;
    let fed = federation(&victims, policy(10, false), policy(1, false)).await;
    let c = ihdsi_tests::connect(&fed.uri).await;
    // The victim's condition as `$1`: a conditional count (its cell
    // withheld), and a distinct count lifted over k by a common condition
    // (the victim's value is no released group, so it is not counted).
    let cases = [
        (
            "SELECT count(*) FILTER (WHERE condition_concept_id = $1) AS n FROM condition_occurrence",
            Cell::Int(1),
            Cell::Null,
        ),
        (
            "SELECT count(DISTINCT condition_concept_id) AS n FROM condition_occurrence \
             WHERE condition_concept_id = 320128 OR condition_concept_id = $1",
            Cell::Int(2),
            Cell::Int(1),
        ),
    ];
    let mut failures = Vec::new();
    for (sql, truth, released) in cases {
        let literal = sql.replace("$1", &V1_CONDITION.to_string());
        let t = rows(&oracle_rows(&oracle, &literal).await);
        if t != vec![vec![truth.clone()]] {
            failures.push(format!("{sql}: the oracle gives {t:?}, not {truth:?}"));
        }
        let mut client = c.client();
        let mut prepared = client.prepare(sql.into(), None).await.expect("prepare");
        let schema =
            std::sync::Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)]));
        let param = RecordBatch::try_new(
            schema,
            vec![std::sync::Arc::new(Int64Array::from(vec![i64::from(
                V1_CONDITION,
            )]))],
        )
        .expect("parameter");
        prepared.set_parameters(param).expect("bind");
        let info = prepared.execute().await.expect("execute");
        let got = rows(&c.fetch(info).await.expect("fetch"));
        if got != vec![vec![released.clone()]] {
            failures.push(format!("{sql}: released {got:?}, the victim shows"));
        }
    }
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Conditional aggregates that rest on enough patients keep working: the
/// analyst's FILTER and CASE bins are answered exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_cells_of_at_least_k_patients_are_answered_exactly() {
    let data = cohort(6_000);
    let oracle = centralized(&data).await;
    let fed = federation(&data, policy(10, false), policy(1, false)).await;
    let sql = "SELECT gender_concept_id, \
               count(*) FILTER (WHERE year_of_birth < 1960) AS old, \
               count(CASE WHEN year_of_birth >= 1960 THEN 1 END) AS young, \
               sum(CASE WHEN year_of_birth < 1960 THEN 1 ELSE 0 END) AS old_again \
               FROM person GROUP BY 1 ORDER BY 1";
    let expected = oracle_rows(&oracle, sql).await;
    let got = ask(&fed.uri, sql).await.expect("answered");
    assert_eq!(diff(&got.batches, &expected), None);
    fed.shutdown().await;
}

/// Bisection on a MAX that is itself refused: `count(*) FILTER (WHERE
/// value > t)` over the outlier's measurement is 1 for every t below the
/// outlier and 0 above it. Both are withheld (zero like one), so every t
/// gives the same answer and the bisection learns nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bisection_on_a_refused_max_sees_the_same_answer_for_every_threshold() {
    let data = outlier(&cohort(6_000)).await;
    let oracle = centralized(&data).await;
    let fed = federation(&data, policy(10, false), policy(1, false)).await;
    let spellings = [
        "SELECT count(*) FILTER (WHERE value_as_number > {t}) AS n FROM measurement",
        "SELECT count(CASE WHEN value_as_number >= {t} THEN 1 END) AS n FROM measurement",
        "SELECT sum(CASE WHEN value_as_number > {t} THEN 1 ELSE 0 END) AS n FROM measurement",
        "SELECT count(value_as_number) FILTER (WHERE value_as_number > {t}) AS n FROM measurement",
    ];
    let refused = ask(&fed.uri, "SELECT max(value_as_number) FROM measurement").await;
    assert!(refused.is_err(), "MAX is refused under this policy");
    let mut failures = Vec::new();
    for s in spellings {
        let mut truths = Vec::new();
        let mut answers = Vec::new();
        for t in [
            1e5,
            OUTLIER_VALUE / 2.0,
            OUTLIER_VALUE - 1.0,
            OUTLIER_VALUE,
            2.0 * OUTLIER_VALUE,
        ] {
            let sql = s.replace("{t}", &format!("{t:.1}"));
            truths.push(rows(&oracle_rows(&oracle, &sql).await));
            answers.push(outcome(&fed.uri, &sql).await);
        }
        if truths.windows(2).all(|w| w[0] == w[1]) {
            failures.push(format!("{s}: the oracle does not move with t"));
        }
        if !answers.windows(2).all(|w| w[0] == w[1]) {
            failures.push(format!("{s}: the answers move with t: {answers:?}"));
        }
        if answers[0].as_ref().map(|(r, _)| r) != Ok(&vec![vec![Cell::Null]]) {
            failures.push(format!(
                "{s}: a cell of under 10 patients released: {:?}",
                answers[0]
            ));
        }
    }
    // The same bisection through a count of distinct values (the review's
    // A38 attack): the value only the outlier has is a group of one
    // patient, never released, so the count does not move with t either.
    let distinct = "SELECT count(DISTINCT CASE WHEN value_as_number > {t} THEN 1 ELSE 0 END) AS n FROM measurement";
    let mut truths = Vec::new();
    let mut answers = Vec::new();
    for t in [1e5, OUTLIER_VALUE - 1.0, OUTLIER_VALUE, 2.0 * OUTLIER_VALUE] {
        let sql = distinct.replace("{t}", &format!("{t:.1}"));
        truths.push(rows(&oracle_rows(&oracle, &sql).await));
        answers.push(outcome(&fed.uri, &sql).await);
    }
    if truths.windows(2).all(|w| w[0] == w[1]) {
        failures.push(format!("{distinct}: the oracle does not move with t"));
    }
    if !answers.windows(2).all(|w| w[0] == w[1]) || answers[0].is_err() {
        failures.push(format!("{distinct}: the answers move with t: {answers:?}"));
    }
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Functions that fail on some inputs, with the failing input chosen by
/// the victim: with and without the victim the outcome is the same (the
/// query is refused while planning, from its text), and no message names
/// a site.
pub(crate) const FAILURE_ORACLES: &[&str] = &[
    "SELECT count(*) FROM condition_occurrence WHERE split_part('a,b', ',', CASE WHEN condition_concept_id = {V1} THEN 0 ELSE 1 END) = 'a'",
    "SELECT count(*) FROM condition_occurrence WHERE substr('abc', 1, CASE WHEN condition_concept_id = {V1} THEN -1 ELSE 1 END) = 'a'",
    "SELECT count(*) FROM condition_occurrence WHERE lpad('a', CASE WHEN condition_concept_id = {V1} THEN 2000000000 ELSE 1 END) = 'a'",
    "SELECT count(*) FROM condition_occurrence WHERE 10 / (condition_concept_id - {V1}) <> 0",
    "SELECT count(*) FROM condition_occurrence WHERE 10 % (condition_concept_id - {V1}) <> 0",
    "SELECT count(*) FROM condition_occurrence WHERE CAST(CASE WHEN condition_concept_id = {V1} THEN 'x' ELSE '1' END AS INT) = 1",
    "SELECT count(*) FROM condition_occurrence WHERE CASE WHEN condition_concept_id = {V1} THEN 'x' ELSE '1' END = 1",
    "SELECT count(*) FROM condition_occurrence WHERE power(0, CASE WHEN condition_concept_id = {V1} THEN -1 ELSE 1 END) = 0",
    "SELECT count(*) FROM condition_occurrence WHERE regexp_like('a', CASE WHEN condition_concept_id = {V1} THEN '(' ELSE 'a' END)",
    "SELECT count(*) FROM condition_occurrence WHERE abs(CAST(condition_concept_id - {V1} AS INT) - 2147483647 - 1) > 0",
    "SELECT count(*) FROM condition_occurrence WHERE repeat('a', CASE WHEN condition_concept_id = {V1} THEN 2000000000 ELSE 1 END) = 'a'",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_time_failures_are_no_oracle_of_the_victim() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let with = federation(&victims, policy(10, false), policy(1, false)).await;
    let without = federation(&clean, policy(10, false), policy(1, false)).await;
    let mut failures = Vec::new();
    for sql in FAILURE_ORACLES {
        let sql = spell(sql);
        let (a, b) = (
            outcome(&with.uri, &sql).await,
            outcome(&without.uri, &sql).await,
        );
        if a != b {
            failures.push(format!("{sql}: {a:?} with the victim, {b:?} without"));
        }
        if let Err(e) = &a
            && ["'lu'", "'us'", "'kr'"].iter().any(|s| e.contains(s))
        {
            failures.push(format!("{sql}: the error names a site: {e}"));
        }
    }
    with.shutdown().await;
    without.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
