//! Which subplans run inside PostgreSQL and which in DataFusion over the
//! rows PostgreSQL returns: each expression PostgreSQL can fail on for
//! some rows only goes to DataFusion, the everyday cohort SQL stays in the
//! database.

use datafusion::prelude::SessionContext;

use super::runs_in_postgres;
use crate::site::postgres::backend::prepare;
use crate::site::tables::register_relational_tables;

async fn in_postgres(query: &str) -> bool {
    let ctx = SessionContext::new();
    let present: Vec<String> = ["person", "measurement", "condition_occurrence", "concept"]
        .iter()
        .map(ToString::to_string)
        .collect();
    register_relational_tables(&ctx, "lu", &present, &[7]).expect("tables");
    let plan = ctx
        .state()
        .create_logical_plan(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    runs_in_postgres(&prepare(plan).expect("prepare")).expect("judge")
}

/// Cohort SQL whose every expression PostgreSQL evaluates for any row.
const IN_POSTGRES: &[&str] = &[
    "SELECT gender_concept_id, count(DISTINCT person_id) FROM person WHERE year_of_birth BETWEEN 1950 AND 1960 GROUP BY 1",
    "SELECT year_of_birth / 10, count(*) FROM person GROUP BY 1",
    "SELECT year_of_birth % 5, count(*) FROM person GROUP BY 1",
    "SELECT date_trunc('month', birth_datetime), count(*) FROM person GROUP BY 1",
    "SELECT count(*) FROM (SELECT person_id, row_number() OVER (PARTITION BY person_id ORDER BY condition_start_date) AS r FROM condition_occurrence) t WHERE r = 1",
    "SELECT date_part('year', condition_start_date), count(*) FROM condition_occurrence GROUP BY 1",
    "SELECT count(*) FILTER (WHERE condition_concept_id = 1), sum(CASE WHEN condition_concept_id = 2 THEN 1 ELSE 0 END) FROM condition_occurrence",
    "SELECT avg(value_as_number), var_pop(value_as_number), min(value_as_number), sum(value_as_number) FROM measurement",
    "SELECT count(*) FROM person WHERE person_source_value LIKE 'ab%'",
    "SELECT count(*) FROM person p JOIN condition_occurrence c ON p.person_id = c.person_id WHERE c.condition_start_date > p.birth_datetime",
    "SELECT lower(person_source_value), count(*) FROM person GROUP BY 1",
    "SELECT count(*) FROM condition_occurrence WHERE condition_start_date - INTERVAL '30 days' > DATE '2010-01-01'",
    "SELECT count(*) FROM person WHERE person_id IN (SELECT person_id FROM measurement WHERE value_as_number > 5)",
    "SELECT coalesce(race_concept_id, 0), count(*) FROM person GROUP BY 1",
    "SELECT floor(value_as_number), count(*) FROM measurement GROUP BY 1",
];

/// Each fails in PostgreSQL for some values only (the error oracle), or
/// has no PostgreSQL equivalent: it runs in DataFusion.
const IN_DATAFUSION: &[&str] = &[
    "SELECT count(*) FROM measurement WHERE ln(value_as_number) > 0",
    "SELECT count(*) FROM measurement WHERE log10(value_as_number) > 0",
    "SELECT count(*) FROM measurement WHERE exp(value_as_number) > 0",
    "SELECT count(*) FROM measurement WHERE power(value_as_number, 0.5) > 0",
    "SELECT count(*) FROM measurement WHERE value_as_number * 1e300 > 0",
    "SELECT count(*) FROM measurement WHERE 1.0 / value_as_number > 0",
    "SELECT count(*) FROM measurement WHERE value_as_number + 1 > 0",
    "SELECT count(*) FROM person WHERE year_of_birth + 2147483000 > 0",
    "SELECT count(*) FROM person WHERE year_of_birth * 10 > 0",
    "SELECT count(*) FROM person WHERE -year_of_birth < 0",
    "SELECT count(*) FROM person WHERE year_of_birth / -1 < 0",
    "SELECT sum(person_id) FROM person",
    "SELECT var_pop(CASE WHEN person_id = 1 THEN 1e200 ELSE 0 END) FROM person",
    "SELECT sum(CASE WHEN person_id = 1 THEN 1e-200 ELSE 0 END) FROM person",
    "SELECT sum(CASE WHEN person_id = 1 THEN CAST(9e18 AS BIGINT) ELSE CAST(1e15 AS BIGINT) END) FROM person",
    "SELECT date_trunc('month', condition_start_date), count(*) FROM condition_occurrence GROUP BY 1",
    "SELECT date_part('year', condition_start_date) / 10, count(*) FROM condition_occurrence GROUP BY 1",
    "SELECT count(*) FROM condition_occurrence WHERE condition_start_date < current_date",
    "SELECT count(*) FROM (SELECT person_id, count(*) OVER (PARTITION BY person_id ORDER BY year_of_birth RANGE BETWEEN 2000000000 PRECEDING AND CURRENT ROW) AS c FROM person) t WHERE c > 0",
    "SELECT sum(CASE WHEN person_id = 1 THEN 9223372036854775807 ELSE 1 END) FROM person",
    "SELECT count(*) FROM person WHERE person_source_value LIKE 'a\\'",
    "SELECT count(*) FROM person WHERE person_source_value LIKE 'a!%' ESCAPE '!'",
    "SELECT count(*) FROM person WHERE regexp_like(person_source_value, 'a')",
    "SELECT count(*) FROM person WHERE person_source_value ~ 'a'",
    "SELECT count(*) FROM measurement WHERE CAST(value_as_number AS REAL) > 0",
    "SELECT count(*) FROM person WHERE TRY_CAST(person_source_value AS INT) > 0",
    "SELECT count(*) FROM person WHERE substr(person_source_value, 1, 2) = 'ab'",
    "SELECT count(*) FROM person WHERE nvl(race_concept_id, 0) = 0",
    "SELECT count(*) FROM person WHERE round(year_of_birth, 1) > 0",
    "SELECT count(*) FROM person WHERE year_of_birth > (SELECT avg(value_as_number) * 2 FROM measurement)",
];

#[tokio::test]
async fn everyday_cohort_sql_runs_in_postgresql() {
    let mut wrong = Vec::new();
    for q in IN_POSTGRES {
        if !in_postgres(q).await {
            wrong.push(*q);
        }
    }
    assert!(wrong.is_empty(), "sent to DataFusion: {wrong:#?}");
}

#[tokio::test]
async fn what_postgresql_can_fail_on_runs_in_datafusion() {
    let mut wrong = Vec::new();
    for q in IN_DATAFUSION {
        if in_postgres(q).await {
            wrong.push(*q);
        }
    }
    assert!(wrong.is_empty(), "sent to PostgreSQL: {wrong:#?}");
}
