//! The bounded plan against hand-computed answers over a small table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::bound_contributions;
use crate::plan_query;
use ihdsi_catalog::{Bounding, PrivacyPolicy, schema};

/// `measurement` rows `(person_id, concept, value)`; other columns zero.
pub(crate) fn measurements(rows: &[(i64, i32, f64)]) -> RecordBatch {
    let table = schema::table("measurement").expect("measurement");
    let n = rows.len();
    let columns: Vec<ArrayRef> = table
        .schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "person_id" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                "measurement_concept_id" => {
                    Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1)))
                }
                "value_as_number" => {
                    Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)))
                }
                _ if f.data_type() == &DataType::Utf8 => {
                    Arc::new(StringArray::from_iter_values(std::iter::repeat_n("x", n)))
                }
                _ => ScalarValue::new_zero(f.data_type())
                    .and_then(|z| z.to_array_of_size(n))
                    .expect("zero column"),
            }
        })
        .collect();
    RecordBatch::try_new(Arc::clone(&table.schema), columns).expect("batch")
}

/// A session over `rows`, and the site plan of `sql` as a site would run
/// it: parsed from the release's SQL, bounded when asked.
pub(crate) async fn site_plan(
    sql: &str,
    rows: &[(i64, i32, f64)],
    bounding: Option<Bounding>,
) -> (SessionContext, datafusion::logical_expr::LogicalPlan) {
    let ctx = SessionContext::new();
    let batch = measurements(rows);
    ctx.register_table(
        "measurement",
        Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table")),
    )
    .expect("register");
    let policy = PrivacyPolicy {
        bounding,
        ..PrivacyPolicy::threshold(1, false)
    };
    let plan = plan_query(&ctx.state(), sql, &policy).await.expect("plan");
    let site = ctx
        .state()
        .create_logical_plan(&plan.releases[0].site_sql)
        .await
        .expect("site plan");
    let site = match bounding {
        Some(b) => {
            let bounded = bound_contributions(&site, b).expect("bounded");
            assert_eq!(bounded.schema().fields(), site.schema().fields());
            bounded
        }
        None => site,
    };
    (ctx, site)
}

async fn run(sql: &str, rows: &[(i64, i32, f64)], bounding: Option<Bounding>) -> Vec<RecordBatch> {
    let (ctx, site) = site_plan(sql, rows, bounding).await;
    ctx.execute_logical_plan(site)
        .await
        .expect("execute")
        .sort(vec![datafusion::prelude::col("k0").sort(true, true)])
        .expect("sort")
        .collect()
        .await
        .expect("collect")
}

pub(crate) fn table(batches: &[RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .expect("format")
        .to_string()
}

fn cohort() -> Vec<(i64, i32, f64)> {
    let mut rows = vec![(1, 100, 5.0); 30]; // 30 rows in one group
    rows.push((2, 100, 5000.0)); // one value above the declared 1000
    rows.extend((0..15).map(|i| (3, 200 + i, 1.0))); // 15 groups of one row
    rows
}

const GROUPED: &str = "SELECT measurement_concept_id, count(*), count(DISTINCT person_id), sum(value_as_number) FROM measurement GROUP BY measurement_concept_id";

#[tokio::test]
async fn rows_values_and_groups_per_patient_are_capped() {
    let caps = Bounding {
        max_rows_per_patient: 10,
        max_groups_per_patient: 10,
    };
    let got = table(&run(GROUPED, &cohort(), Some(caps)).await);
    // Concept 100: 10 of patient 1's 30 rows + patient 2's one; sums 150 and
    // 5000 clamped to 1000. Patient 3 keeps 10 of 15 groups (ties: lowest keys).
    let mut expected = vec![
        "+-----+----+----+--------+----------------+".to_string(),
        "| k0  | p0 | p1 | p2     | ihdsi_patients |".into(),
        "+-----+----+----+--------+----------------+".into(),
        "| 100 | 11 | 2  | 1150.0 | 2              |".into(),
    ];
    expected.extend((200..210).map(|k| format!("| {k} | 1  | 1  | 1.0    | 1              |")));
    expected.push("+-----+----+----+--------+----------------+".into());
    assert_eq!(got, expected.join("\n"));
}

#[tokio::test]
async fn without_bounding_the_same_subplan_is_exact() {
    let got = run(GROUPED, &cohort(), None).await;
    let rows: usize = got.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 16);
    assert!(table(&got).contains("| 100 | 31 | 2  | 5150.0 | 2              |"));
}

#[tokio::test]
async fn an_ungrouped_count_over_no_rows_is_zero_not_null() {
    let caps = Bounding::default();
    let sql =
        "SELECT count(*), count(DISTINCT person_id) FROM measurement WHERE value_as_number > 1e9";
    let ctx_rows = run_scalar(sql, caps).await;
    assert_eq!(ctx_rows, "| 0  | 0  | 0              |");
}

async fn run_scalar(sql: &str, caps: Bounding) -> String {
    let (ctx, bounded) = site_plan(sql, &cohort(), Some(caps)).await;
    let batches = ctx
        .execute_logical_plan(bounded)
        .await
        .expect("run")
        .collect()
        .await
        .expect("collect");
    table(&batches)
        .lines()
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn statistics_without_a_bounded_form_are_refused_with_the_cause() {
    let ctx = SessionContext::new();
    crate::register_virtual_schema(&ctx).expect("schema");
    let policy = PrivacyPolicy {
        bounding: Some(Bounding::default()),
        ..PrivacyPolicy::threshold(1, true)
    };
    for sql in [
        "SELECT stddev(value_as_number) FROM measurement",
        "SELECT max(value_as_number) FROM measurement",
    ] {
        let err = plan_query(&ctx.state(), sql, &policy)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains("under contribution bounding"), "{sql}: {err}");
    }
}

mod properties {
    //! Bounding never adds a group, a row or a patient, and keeps each
    //! patient within the caps, over random tables.

    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int32Type, Int64Type};
    use proptest::prelude::*;

    use super::*;

    /// `(key, rows, patients, sum)` per group.
    fn groups(batches: &[RecordBatch]) -> BTreeMap<i32, (i64, i64, f64)> {
        let mut out = BTreeMap::new();
        for b in batches {
            for i in 0..b.num_rows() {
                out.insert(
                    b.column(0).as_primitive::<Int32Type>().value(i),
                    (
                        b.column(1).as_primitive::<Int64Type>().value(i),
                        b.column(2).as_primitive::<Int64Type>().value(i),
                        if b.column(3).is_null(i) {
                            0.0
                        } else {
                            b.column(3).as_primitive::<Float64Type>().value(i)
                        },
                    ),
                );
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn bounding_never_adds_and_respects_the_caps(
            rows in prop::collection::vec((1..6i64, 1..5i32, 0.0..2000.0f64), 1..60),
            c in 1u64..4,
            g in 1u64..4,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let caps = Bounding { max_rows_per_patient: c, max_groups_per_patient: g };
            let bounded = groups(&rt.block_on(run(GROUPED, &rows, Some(caps))));
            let exact = groups(&rt.block_on(run(GROUPED, &rows, None)));
            let persons = rows.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len() as i64;
            let mut memberships = 0;
            for (key, (n, p, s)) in &bounded {
                let Some((en, ep, es)) = exact.get(key) else {
                    return Err(TestCaseError::fail(format!("group {key} was added")));
                };
                prop_assert!(n <= en && p <= ep && *p >= 1, "group {key} grew");
                prop_assert!(*n <= c as i64 * p, "more than {c} rows per patient");
                prop_assert!(*s <= es.min(1000.0 * c as f64 * *p as f64) + 1e-6, "sum not clamped");
                memberships += p;
            }
            prop_assert!(memberships <= g as i64 * persons, "more than {g} groups per patient");
        }
    }
}

/// The dominance rule's per-patient plan sees exactly the contributions
/// the bounded release sums: values clamped, each patient's total clamped
/// to the row cap's worth, groups beyond the per-patient cap dropped.
#[tokio::test]
async fn dominance_contributions_follow_the_bounding() {
    let caps = Bounding {
        max_rows_per_patient: 2,
        max_groups_per_patient: 3,
    };
    let (ctx, site) = site_plan(GROUPED, &cohort(), None).await;
    assert_eq!(
        crate::partials::dominance::entries(&site).expect("entries"),
        vec![crate::release::dominance::DominanceEntry {
            partial: 2,
            spread: false
        }]
    );
    let per_patient = |b: Option<Bounding>| {
        let c = crate::partials::dominance::contributions(&site, b)
            .expect("plan")
            .expect("a SUM partial");
        let ctx = ctx.clone();
        async move {
            let df = ctx.execute_logical_plan(c.plan).await.expect("execute");
            let sorted = df
                .sort(vec![
                    datafusion::prelude::col("k0").sort(true, true),
                    datafusion::prelude::col("ihdsi_s0").sort(true, true),
                ])
                .expect("sort");
            table(&sorted.collect().await.expect("collect"))
        }
    };
    let bounded = per_patient(Some(caps)).await;
    // Patient 1: 30 × 5.0 capped at 2 rows' worth of 1000 → 150 stays;
    // patient 2: 5000 → 1000; patient 3 keeps 3 of 15 groups.
    let lines: Vec<&str> = bounded.lines().collect();
    assert_eq!(lines.len(), 4 + 2 + 3, "{bounded}");
    assert!(lines[3].contains("| 100 | 150.0"), "{bounded}");
    assert!(lines[4].contains("| 100 | 1000.0"), "{bounded}");
    let exact = per_patient(None).await;
    assert!(exact.contains("| 100 | 5000.0"), "{exact}");
    assert_eq!(exact.lines().count(), 4 + 2 + 15, "{exact}");
}
