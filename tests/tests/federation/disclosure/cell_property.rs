//! Property: random cohort queries over a cohort with many singleton
//! groups (year × month of birth × race at 6,000 persons, plus the planted
//! victims) never release a cell that rests on fewer than k patients, and
//! every cell they do release equals the pooled oracle's.
//!
//! The truth of each cell is computed independently of the engine's cell
//! machinery: the distinct patients of the group whose rows pass the
//! aggregate's condition (and, for sums and averages, give a non-zero
//! value), counted by the oracle over the union of the sites' files.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use ihdsi_tests::compare::{Cell, rows};
use ihdsi_tests::planted::planted;
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

const K: i128 = 10;
const KEYS: &[&str] = &[
    "gender_concept_id",
    "year_of_birth",
    "month_of_birth",
    "race_concept_id",
];

/// One aggregate: its SQL, and the condition under which a row's patient
/// contributes to it.
#[derive(Debug, Clone)]
struct Aggregate {
    sql: String,
    contributes: String,
}

fn predicate() -> impl Strategy<Value = String> {
    prop_oneof![
        (1930..2010i32).prop_map(|y| format!("year_of_birth = {y}")),
        (1..=12i32).prop_map(|m| format!("month_of_birth = {m}")),
        (1930..2010i32, 0..6i32)
            .prop_map(|(y, w)| format!("year_of_birth BETWEEN {y} AND {}", y + w)),
        (1..=12i32, 1930..2010i32)
            .prop_map(|(m, y)| format!("month_of_birth = {m} AND year_of_birth = {y}")),
        (1..=12i32).prop_map(|m| format!("NOT (month_of_birth <> {m})")),
        Just("race_concept_id = 8515".to_string()),
    ]
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    (predicate(), 0..6usize).prop_map(|(p, form)| {
        let (sql, contributes) = match form {
            0 => (format!("count(*) FILTER (WHERE {p})"), p.clone()),
            1 => (format!("count(CASE WHEN {p} THEN 1 END)"), p.clone()),
            2 => (format!("sum(CASE WHEN {p} THEN 1 ELSE 0 END)"), p.clone()),
            3 => (
                format!("sum(CASE WHEN {p} THEN year_of_birth END)"),
                p.clone(),
            ),
            4 => (format!("avg(year_of_birth) FILTER (WHERE {p})"), p.clone()),
            _ => (
                format!("sum(CASE WHEN {p} THEN 0 ELSE 1 END)"),
                format!("NOT ({p})"),
            ),
        };
        Aggregate { sql, contributes }
    })
}

fn query() -> impl Strategy<Value = (Vec<&'static str>, Vec<Aggregate>)> {
    (
        proptest::sample::subsequence(KEYS.to_vec(), 1..=3),
        prop::collection::vec(aggregate(), 1..=3),
    )
}

/// Equal, floats within 1e-9 relative (a merged average is computed
/// from merged sums).
fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

fn key_of(row: &[Cell], keys: usize) -> String {
    format!("{:?}", &row[..keys])
}

/// The federated query for `keys` and `aggs`, and the oracle's query
/// that gives, per group, its patients, each cell's contributing patients
/// and each cell's exact value.
fn query_and_truth(keys: &[&str], aggs: &[Aggregate]) -> (String, String) {
    let k = keys.join(", ");
    let list: Vec<String> = aggs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} AS a{i}", a.sql))
        .collect();
    let sql = format!("SELECT {k}, {} FROM person GROUP BY {k}", list.join(", "));
    let truth: Vec<String> = aggs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "count(DISTINCT person_id) FILTER (WHERE {}) AS t{i}",
                a.contributes
            )
        })
        .collect();
    let truth_sql = format!(
        "SELECT {k}, count(DISTINCT person_id), {}, {} FROM person GROUP BY {k}",
        truth.join(", "),
        list.join(", ")
    );
    (sql, truth_sql)
}

#[test]
fn random_conditional_queries_never_release_a_cell_under_k() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let data = rt.block_on(planted(&cohort(6_000)));
    let oracle = rt.block_on(centralized(&data));
    let fed = rt.block_on(federation(&data, policy(10, false), policy(1, false)));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let released = std::cell::Cell::new(0usize);
    let withheld = std::cell::Cell::new(0usize);
    let result = runner.run(&query(), |(keys, aggs)| {
        let (sql, truth_sql) = query_and_truth(&keys, &aggs);
        let got = rt
            .block_on(ask(&fed.uri, &sql))
            .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
        let truth: BTreeMap<String, Vec<Cell>> =
            rows(&rt.block_on(oracle_rows(&oracle, &truth_sql)))
                .into_iter()
                .map(|r| (key_of(&r, keys.len()), r))
                .collect();
        for row in rows(&got.batches) {
            let t = truth.get(&key_of(&row, keys.len())).ok_or_else(|| {
                TestCaseError::fail(format!("{sql}: a group the data does not have"))
            })?;
            let group = &t[keys.len()];
            prop_assert!(
                matches!(group, Cell::Int(n) if *n >= K),
                "{sql}: group {row:?} under k"
            );
            for (i, cell) in row[keys.len()..].iter().enumerate() {
                let patients = &t[keys.len() + 1 + i];
                let value = &t[keys.len() + 1 + aggs.len() + i];
                if *cell == Cell::Null {
                    withheld.set(withheld.get() + 1);
                    continue;
                }
                released.set(released.get() + 1);
                prop_assert!(
                    matches!(patients, Cell::Int(n) if *n >= K),
                    "{sql}: cell {i} of {row:?} released on {patients:?} patients"
                );
                prop_assert!(
                    same(cell, value),
                    "{sql}: cell {i} is {cell:?}, the oracle says {value:?}"
                );
            }
        }
        Ok(())
    });
    rt.block_on(fed.shutdown());
    result.expect("property");
    let (released, withheld) = (released.get(), withheld.get());
    assert!(
        released > 0 && withheld > 0,
        "released {released}, withheld {withheld}: the property tests nothing"
    );
}
