//! Kaplan–Meier curves through the federation, against lifelines on the
//! pooled rows (thresholds at 1, the same grid), and under k = 10 against
//! the rules: no small bin shown, no count under k, a planted death never
//! alone in its month.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use ihdsi_tests::{centralized, cohort, connect, federation, policy};
use serde_json::Value;

/// One row per patient: sex, days of follow-up, death.
const COHORT: &str = "(SELECT p.person_id, p.gender_concept_id AS sex, \
    max(op.observation_period_end_date) - min(op.observation_period_start_date) AS days, \
    max(CASE WHEN d.death_date IS NOT NULL THEN 1 ELSE 0 END) AS died \
    FROM person p JOIN observation_period op ON op.person_id = p.person_id \
    LEFT JOIN death d ON d.person_id = p.person_id GROUP BY p.person_id, p.gender_concept_id) c";

const WIDTH: u32 = 30;

fn curve_sql(width: u32) -> String {
    format!(
        "SELECT sex, unnest(point) FROM (SELECT sex, unnest(curve) AS point FROM \
         (SELECT sex, kaplan_meier(days, died, {width}) AS curve FROM {COHORT} WHERE c.days > 0 GROUP BY sex))"
    )
}

/// Every column of `batches` as floats (NULL as NaN), row by row.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<Float64Array> = b
            .columns()
            .iter()
            .map(|c| {
                cast(c, &DataType::Float64)
                    .expect("numeric")
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64")
                    .clone()
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { f64::NAN } else { c.value(r) })
                    .collect(),
            );
        }
    }
    out
}

/// lifelines' curves of the pooled (group, binned time, event) rows.
fn lifelines(pooled: &[Vec<f64>], horizon: f64) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("IHDSI_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-reference/bin/python"));
    assert!(python.exists(), "{} is missing: scripts/test.sh creates it", python.display());
    let csv = std::env::temp_dir().join(format!("ihdsi-km-{}.csv", std::process::id()));
    let mut text = String::from("group,time,event\n");
    for r in pooled {
        text.push_str(&format!("{},{},{}\n", r[0], r[1], r[2]));
    }
    std::fs::write(&csv, text).expect("write rows");
    let out = Command::new(&python)
        .arg(root.join("tests/tests/federation/survival_reference.py"))
        .arg(&csv)
        .arg(horizon.to_string())
        .output()
        .expect("run survival_reference.py");
    let _ = std::fs::remove_file(&csv);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn close(what: &str, got: f64, want: f64, failures: &mut Vec<String>) {
    let tolerance = 1e-9 * want.abs().max(1.0);
    if !((got - want).abs() <= tolerance || (got.is_nan() && want.is_nan())) {
        failures.push(format!("{what}: {got} vs lifelines' {want}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curves_equal_lifelines_on_the_pooled_rows_at_thresholds_one() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let connection = connect(&fed.uri).await;
    let got = connection.query(&curve_sql(WIDTH)).await.expect("curve");
    let mut got = rows(&got.batches);
    got.sort_by(|a, b| (a[0], a[1]).partial_cmp(&(b[0], b[1])).expect("numbers"));
    let pooled_sql = format!(
        "SELECT sex, ceil(CAST(days AS DOUBLE) / {WIDTH}) * {WIDTH} AS t, died FROM {COHORT} WHERE c.days > 0"
    );
    let oracle = centralized(&data).await;
    let pooled = rows(&oracle.sql(&pooled_sql).await.expect("plan").collect().await.expect("run"));
    let reference = lifelines(&pooled, 1_000.0);
    let mut by_sex: BTreeMap<String, Vec<&Vec<f64>>> = BTreeMap::new();
    for r in &got {
        by_sex.entry(format!("{:?}", r[0])).or_default().push(r);
    }
    let mut failures = Vec::new();
    let groups = reference.as_object().expect("groups");
    assert_eq!(groups.len(), by_sex.len(), "strata");
    for (sex, want) in groups {
        let points = &by_sex[&format!("{:?}", sex.parse::<f64>().expect("sex"))];
        let times = numbers(&want["times"]);
        assert_eq!(points.len(), times.len(), "bins of stratum {sex}");
        assert!(points.len() > 20, "a curve of many bins: {}", points.len());
        let (survival, greenwood) = (numbers(&want["survival"]), numbers(&want["greenwood"]));
        let (lower, upper) = (numbers(&want["lower"]), numbers(&want["upper"]));
        for (i, p) in points.iter().enumerate() {
            // time, at_risk, events, censored, survival, std_error, lower, upper
            close(&format!("{sex} time"), p[1], times[i], &mut failures);
            close(&format!("{sex} S({})", p[1]), p[5], survival[i], &mut failures);
            let se = survival[i] * greenwood[i].sqrt();
            close(&format!("{sex} SE({})", p[1]), p[6], se, &mut failures);
            close(&format!("{sex} lower({})", p[1]), p[7], lower[i], &mut failures);
            close(&format!("{sex} upper({})", p[1]), p[8], upper[i], &mut failures);
        }
    }
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
