//! One case per allow-listed function that can fail at run time: refused
//! when a failing argument can come from the data, admitted when the
//! failing arguments are constants that cannot fail.

use datafusion::prelude::SessionContext;
use ihdsi_catalog::PrivacyPolicy;

use crate::{plan_query, register_virtual_schema};

/// `t` is a text computed from patient data, `c` an integer code column,
/// `v` a double. `None`: admitted; `Some(text)`: refused naming `text`.
const CASES: &[(&str, Option<&str>)] = &[
    // split_part: position 0 fails.
    ("split_part({t}, '1', 1) = 'a'", None),
    ("split_part({t}, '1', 0) = 'a'", Some("split_part")),
    ("split_part({t}, '1', {c}) = 'a'", Some("split_part")),
    // substr: a negative length fails.
    ("substr({t}, 1, 2) = 'a'", None),
    ("substr({t}, 1, -1) = 'a'", Some("substr")),
    ("substr({t}, 1, {c}) = 'a'", Some("substr")),
    // lpad, rpad: huge lengths fail to allocate.
    ("lpad({t}, 8, '0') = 'a'", None),
    ("lpad({t}, 2000000000, '0') = 'a'", Some("lpad")),
    ("rpad({t}, {c}, '0') = 'a'", Some("rpad")),
    ("lpad({t}, 8, {t}) = 'a'", Some("lpad")),
    // left, right: lengths from data.
    ("left({t}, 2) = 'a'", None),
    // regexp_*: patterns compile at run time.
    ("regexp_like({t}, '^1')", None),
    ("regexp_like({t}, '(')", Some("regexp_like")),
    ("regexp_like({t}, {t})", Some("regexp_like")),
    ("regexp_count({t}, '1', 0) > 0", Some("regexp_count")),
    (
        "regexp_replace({t}, '1', 'x', 'q') = 'a'",
        Some("regexp_replace"),
    ),
    // Integer division and modulo: zero, and MIN / -1.
    ("{c} / 7 > 0", None),
    ("{c} / 0 > 0", Some("division")),
    ("{c} / -1 > 0", Some("division")),
    ("7 / {c} > 0", Some("division")),
    ("7 / NULLIF({c}, 0) > 0", None),
    ("{c} % {c} > 0", Some("division")),
    ("{v} / ({v} - 1) > 0", None),
    // power: a negative exponent of zero fails for integers.
    ("power({v}, 2) > 0", None),
    ("power({c}, {c}) > 0", Some("power")),
    // sqrt, ln: only of what cannot be negative, or doubles (NaN).
    ("sqrt(abs({v})) > 0", None),
    // abs of the smallest signed integer overflows.
    ("abs({c}) > 0", Some("abs")),
    ("abs({v}) > 0", None),
    // round: a precision from data, or negative.
    ("round({v}, 2) > 0", None),
    ("round({v}, {c}) > 0", None),
    ("round({c}, {c}) > 0", Some("round")),
    // date_part, date_trunc: fields and units the type has.
    ("date_part('year', measurement_date) > 2000", None),
    (
        "date_part('hour', measurement_date) > 2000",
        Some("date_part"),
    ),
    (
        "date_trunc('month', measurement_date) > DATE '2015-01-01'",
        None,
    ),
    (
        "date_trunc('fortnight', measurement_date) > DATE '2015-01-01'",
        Some("date_trunc"),
    ),
    // Date arithmetic is checked and fails past the largest date.
    (
        "SELECT count(*) FROM observation_period WHERE observation_period_start_date + INTERVAL '30 days' < observation_period_end_date",
        None,
    ),
    (
        "SELECT count(*) FROM observation_period WHERE observation_period_start_date + INTERVAL '90000000 days' < observation_period_end_date",
        Some("shifting a date"),
    ),
    (
        "SELECT count(*) FROM observation_period WHERE observation_period_start_date - INTERVAL '3000 years' < observation_period_end_date",
        Some("shifting a date"),
    ),
    // Casts, written or implied: text to number fails on non-numbers.
    ("CAST({t} AS INT) > 0", Some("CAST from")),
    ("TRY_CAST({t} AS INT) > 0", None),
    ("{t} = 1", Some("CAST from")),
    // A double to an integer: total where the declared range proves it
    // fits (value_as_number lies in [0, 1000]), refused, naming the range,
    // where it does not.
    ("CAST({v} AS INT) > 0", None),
    (
        "CAST({v} * 1e10 AS INT) > 0",
        Some("its values range over [0, 10000000000000]"),
    ),
    ("CAST(floor({v} / 10.0) * 10 AS SMALLINT) > 0", None),
    (
        "CAST({v} * 100 AS SMALLINT) > 0",
        Some("which SMALLINT does not hold"),
    ),
    ("{c} / CAST({v} AS INT) > 0", Some("a division")),
    ("{c} / (CAST({v} AS INT) + 1) > 0", None),
    ("CAST({c} AS BIGINT) > 0", None),
    // Not on the allow-list at all.
    ("repeat({t}, 3) = 'a'", Some("repeat")),
    (
        "to_timestamp({t}) > TIMESTAMP '2015-01-01 00:00:00'",
        Some("refused"),
    ),
    ("{t} SIMILAR TO '1'", Some("SIMILAR TO")),
];

#[tokio::test]
async fn every_function_that_can_fail_is_total_on_its_admitted_arguments() {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("virtual schema");
    let mut failures = Vec::new();
    for (condition, expected) in CASES {
        let condition = condition
            .replace("{t}", "CAST(measurement_concept_id AS VARCHAR)")
            .replace("{c}", "measurement_concept_id")
            .replace("{v}", "value_as_number");
        let sql = if condition.starts_with("SELECT") {
            condition
        } else {
            format!("SELECT count(*) FROM measurement WHERE {condition}")
        };
        let got = plan_query(&ctx.state(), &sql, &PrivacyPolicy::default()).await;
        match (expected, got) {
            (None, Ok(_)) => {}
            (Some(text), Err(e)) if e.to_string().contains(text) => {}
            (expected, got) => failures.push(format!(
                "{sql}: expected {expected:?}, got {:?}",
                got.map(|_| "admitted").map_err(|e| e.to_string())
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
