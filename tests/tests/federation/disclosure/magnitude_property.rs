//! Property: no scaled aggregate fails only when a patient is there.
//!
//! A sum, average or variance of values scaled by factors up to 10³²⁰
//! (a lab value, a per-patient row count, an indicator of the victim's
//! code, an integer year), cast or not to a 24-bit float, is asked of two
//! federations that differ only by the planted victims (V2: 600 rows of a
//! code nobody else has). Each query must meet the same fate in both: refused
//! before it runs in both, or answered with finite numbers in both. A
//! run-time failure, or a refusal in one world only, is an oracle on the
//! victim (A26; `planner/src/admission/magnitude.rs`).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use ihdsi_tests::compare::{Cell, rows};
use ihdsi_tests::planted::{V2_MEASUREMENT, planted};
use ihdsi_tests::{ask, cohort, federation, policy};

/// What became of a query in one world.
#[derive(Debug, PartialEq)]
enum Fate {
    Refused,
    Answered,
}

const PER_PATIENT: &str = "(SELECT person_id, count(*) AS k FROM measurement GROUP BY person_id) t";

/// A value aggregate of a scaled argument, and the table it reads.
fn query() -> impl Strategy<Value = String> {
    let aggregate = prop::sample::select(vec!["sum", "avg", "var_pop", "stddev_samp"]);
    let cast = prop::sample::select(vec!["", "FLOAT", "REAL", "DOUBLE"]);
    (aggregate, 0u32..=320, 0usize..6, cast).prop_map(|(aggregate, e, form, cast)| {
        let (float, int) = (format!("1e{e}"), 10u64.pow(e % 19));
        let (arg, from) = match form {
            0 => (format!("value_as_number * {float}"), "measurement"),
            1 => (
                format!("CASE WHEN measurement_concept_id = {V2_MEASUREMENT} THEN value_as_number * {float} ELSE 0 END"),
                "measurement",
            ),
            2 => (format!("t.k * {float}"), PER_PATIENT),
            3 => (format!("year_of_birth * {int}"), "person"),
            4 => (format!("t.k * {int}"), PER_PATIENT),
            _ => (format!("value_as_number * {float} * {float}"), "measurement"),
        };
        let arg = if cast.is_empty() {
            arg
        } else {
            format!("CAST({arg} AS {cast})")
        };
        format!("SELECT {aggregate}({arg}) AS v FROM {from}")
    })
}

async fn fate(uri: &str, sql: &str) -> Result<Fate, TestCaseError> {
    match ask(uri, sql).await {
        Ok(result) => {
            let finite = rows(&result.batches).iter().flatten().all(|c| match c {
                Cell::Float(x) => x.is_finite(),
                _ => true,
            });
            prop_assert!(finite, "{sql}: a non-finite answer");
            Ok(Fate::Answered)
        }
        Err(e) if e.to_string().contains("; docs/privacy.md") => Ok(Fate::Refused),
        Err(e) => Err(TestCaseError::fail(format!("{sql}: failed with {e}"))),
    }
}

#[test]
fn scaled_aggregates_meet_the_same_fate_with_and_without_the_victim() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let clean = cohort(6_000);
    let with = rt.block_on(planted(&clean));
    let without = rt.block_on(federation(&clean, policy(10, false), policy(10, false)));
    let victim = rt.block_on(federation(&with, policy(10, false), policy(10, false)));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let (refused, answered) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&query(), |sql| {
        let absent = rt.block_on(fate(&without.uri, &sql))?;
        let present = rt.block_on(fate(&victim.uri, &sql))?;
        prop_assert_eq!(&absent, &present, "{}", sql);
        match absent {
            Fate::Refused => refused.set(refused.get() + 1),
            Fate::Answered => answered.set(answered.get() + 1),
        }
        Ok(())
    });
    rt.block_on(without.shutdown());
    rt.block_on(victim.shutdown());
    result.expect("property");
    let (refused, answered) = (refused.get(), answered.get());
    assert!(
        refused > 0 && answered > 0,
        "refused {refused}, answered {answered}: the property tests nothing"
    );
}
