//! Kaplan–Meier curves through the federation, against lifelines on the
//! pooled rows (thresholds at 1, the same grid), and under k = 10 against
//! the rules: no small bin shown, no count under k, a planted death never
//! alone in its month.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use datafusion::arrow::array::RecordBatch;
use ihdsi_tests::{centralized, cohort, connect, federation, oracle_rows, policy};
use serde_json::Value;

/// One row per patient: sex, site, days of follow-up, death, and its
/// cause (1: bladder cancer or Parkinson's disease, 2: any other); and
/// `ended`, an event common enough (death, or birth before 1975) for the
/// curves to cross their median.
pub(crate) const COHORT: &str = "(SELECT p.person_id, p.gender_concept_id AS sex, p.site, \
    max(op.observation_period_end_date) - min(op.observation_period_start_date) AS days, \
    max(CASE WHEN d.death_date IS NOT NULL THEN 1 ELSE 0 END) AS died, \
    max(CASE WHEN d.death_date IS NOT NULL OR p.year_of_birth < 1975 THEN 1 ELSE 0 END) AS ended, \
    max(CASE WHEN d.cause_concept_id IN (197508, 381270) THEN 1 WHEN d.death_date IS NOT NULL THEN 2 ELSE 0 END) AS cause \
    FROM person p JOIN observation_period op ON op.person_id = p.person_id \
    LEFT JOIN death d ON d.person_id = p.person_id GROUP BY p.person_id, p.gender_concept_id, p.site) c";

pub(crate) const WIDTH: u32 = 30;

pub(crate) fn curve_sql(width: u32, event: &str) -> String {
    format!(
        "SELECT sex, unnest(point) FROM (SELECT sex, unnest(curve) AS point FROM \
         (SELECT sex, kaplan_meier(days, {event}, {width}) AS curve FROM {COHORT} WHERE c.days > 0 GROUP BY sex))"
    )
}

/// Every column of `batches` as floats (NULL as NaN), row by row.
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<Vec<f64>> {
    ihdsi_tests::compare::floats(batches)
}

/// The reference libraries on the pooled (group, stratum, binned time,
/// event, cause) rows: the statistics crate's own `reference.py`.
fn lifelines(pooled: &[Vec<f64>], horizon: f64) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("IHDSI_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-reference/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: scripts/test.sh creates it",
        python.display()
    );
    let csv = std::env::temp_dir().join(format!("ihdsi-km-{}.csv", std::process::id()));
    // reference.py reads its columns by name.
    let mut text = String::from("group,stratum,time,event,cause\n");
    for r in pooled {
        text.push_str(&format!("{},{},{},{},{}\n", r[0], r[1], r[2], r[3], r[4]));
    }
    std::fs::write(&csv, text).expect("write rows");
    let out = Command::new(&python)
        .arg(root.join("statistics/tests/reference.py"))
        .arg(&csv)
        .arg(horizon.to_string())
        .output()
        .expect("run reference.py");
    let _ = std::fs::remove_file(&csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let got = connection
        .query(&curve_sql(WIDTH, "ended"))
        .await
        .expect("curve");
    let mut got = rows(&got.batches);
    got.sort_by(|a, b| (a[0], a[1]).partial_cmp(&(b[0], b[1])).expect("numbers"));
    let pooled_sql = format!(
        "SELECT sex, CASE site WHEN 'lu' THEN 0 WHEN 'us' THEN 1 ELSE 2 END, \
         ceil(CAST(days AS DOUBLE) / {WIDTH}) * {WIDTH} AS t, ended, cause FROM {COHORT} WHERE c.days > 0"
    );
    let oracle = centralized(&data).await;
    let pooled = rows(&oracle_rows(&oracle, &pooled_sql).await);
    let all = lifelines(&pooled, HORIZON);
    let reference = &all["curves"];
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
            close(
                &format!("{sex} S({})", p[1]),
                p[5],
                survival[i],
                &mut failures,
            );
            let se = survival[i] * greenwood[i].sqrt();
            close(&format!("{sex} SE({})", p[1]), p[6], se, &mut failures);
            close(
                &format!("{sex} lower({})", p[1]),
                p[7],
                lower[i],
                &mut failures,
            );
            close(
                &format!("{sex} upper({})", p[1]),
                p[8],
                upper[i],
                &mut failures,
            );
        }
    }
    summaries(&connection, reference, &mut failures).await;
    tests(&connection, &all, &mut failures).await;
    incidence(&connection, &all["incidence"], &mut failures).await;
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const HORIZON: f64 = 1_000.0;

/// The query's one row, as floats.
async fn one_row(connection: &ihdsi_cli::client::Connection, sql: &str) -> Vec<Vec<f64>> {
    let got = connection
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut r = rows(&got.batches);
    r.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    r
}

/// Median with its interval and the restricted mean, per sex.
async fn summaries(
    connection: &ihdsi_cli::client::Connection,
    reference: &Value,
    failures: &mut Vec<String>,
) {
    let sql = format!(
        "SELECT sex, unnest(s) FROM (SELECT sex, survival_summary(days, ended, {WIDTH}, {HORIZON}) AS s \
         FROM {COHORT} WHERE c.days > 0 GROUP BY sex)"
    );
    for r in one_row(connection, &sql).await {
        let want = &reference[format!("{}", r[0] as i64)];
        assert!(
            r[1].is_finite() && r[2].is_finite(),
            "the curves cross their median: {r:?}"
        );
        for (i, name) in [(1, "median"), (2, "median_lower"), (3, "median_upper")] {
            let expected = want[name].as_f64().unwrap_or(f64::NAN);
            close(&format!("{} {name}", r[0]), r[i], expected, failures);
        }
        close(
            &format!("{} rmst", r[0]),
            r[4],
            want["rmst"].as_f64().expect("rmst"),
            failures,
        );
    }
}

/// The log-rank test across sexes, and stratified by site.
async fn tests(
    connection: &ihdsi_cli::client::Connection,
    all: &Value,
    failures: &mut Vec<String>,
) {
    for (args, want, df) in [
        ("sex", &all["logrank_all"], true),
        ("sex, site", &all["stratified"], false),
    ] {
        let sql = format!(
            "SELECT unnest(t) FROM (SELECT logrank_test(days, ended, {WIDTH}, {args}) AS t FROM {COHORT} WHERE c.days > 0)"
        );
        let got = one_row(connection, &sql).await;
        let [r] = got.as_slice() else {
            panic!("one test: {got:?}")
        };
        close(
            &format!("log-rank({args}) χ²"),
            r[0],
            want["statistic"].as_f64().expect("χ²"),
            failures,
        );
        close(
            &format!("log-rank({args}) p"),
            r[2],
            want["p_value"].as_f64().expect("p"),
            failures,
        );
        if df {
            close(
                "log-rank df",
                r[1],
                want["df"].as_f64().expect("df"),
                failures,
            );
        }
    }
}

/// Cumulative incidence of cause 1 with cause 2 competing, pooled.
async fn incidence(
    connection: &ihdsi_cli::client::Connection,
    want: &Value,
    failures: &mut Vec<String>,
) {
    let sql = format!(
        "SELECT unnest(point) FROM (SELECT unnest(cumulative_incidence(days, cause, {WIDTH})) AS point \
         FROM {COHORT} WHERE c.days > 0)"
    );
    let got = one_row(connection, &sql).await;
    let (times, cinc, se) = (
        numbers(&want["times"]),
        // Cause 1, with cause 2 competing.
        numbers(&want["cinc"][0]),
        numbers(&want["se"][0]),
    );
    assert_eq!(got.len(), times.len(), "incidence bins");
    for (i, p) in got.iter().enumerate() {
        // time, at_risk, events, competing, censored, incidence, std_error
        close("incidence time", p[0], times[i], failures);
        close(&format!("incidence({})", p[0]), p[5], cinc[i], failures);
        close(&format!("incidence SE({})", p[0]), p[6], se[i], failures);
    }
}

/// Released points of the curve over `filter`: (sex, time, at risk,
/// events, censored).
async fn released(connection: &ihdsi_cli::client::Connection, filter: &str) -> Vec<[f64; 5]> {
    let sql = curve_sql(WIDTH, "died").replace(
        "WHERE c.days > 0",
        &format!("WHERE c.days > 0 AND {filter}"),
    );
    let got = connection.query(&sql).await.expect("curve");
    let mut points: Vec<[f64; 5]> = rows(&got.batches)
        .into_iter()
        .map(|r| [r[0], r[1], r[2], r[3], r[4]])
        .collect();
    points.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    points
}

fn shown(count: f64, k: f64) -> bool {
    count == 0.0 || count >= k
}

/// Every released bin holds at least `k` patients at risk and shows no
/// event or censoring count under `k` (0 is shown), and no month of
/// `lonely` (one death) shows its one death.
fn no_count_under_k(curve: &[[f64; 5]], k: f64, lonely: &[(u64, u64)]) {
    for p in curve {
        assert!(
            p[2] >= k && shown(p[3], k) && shown(p[4], k),
            "a count under k: {p:?}"
        );
        let month = (p[0] as u64, p[1] as u64);
        assert!(
            !(lonely.contains(&month) && p[3] == 1.0),
            "a lonely death shown: {p:?}"
        );
    }
}

/// With k = 10 at every site and at the coordinator: no released count
/// under k, a month with a single death never shown on its own, and two
/// curves that differ by one patient who died differ only in bins of at
/// least k events (or none), the victim's bin holding at least k.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_bins_are_coarsened_and_one_patient_hides_among_k() {
    const K: f64 = 10.0;
    let data = cohort(6_000);
    let fed = federation(&data, policy(10, true), policy(10, true)).await;
    let connection = connect(&fed.uri).await;
    let oracle = centralized(&data).await;
    let pooled = rows(
        &oracle_rows(
            &oracle,
            &format!(
                "SELECT sex, ceil(CAST(days AS DOUBLE) / {WIDTH}) * {WIDTH} AS t, died, days FROM {COHORT} WHERE c.days > 0"
            ),
        )
        .await,
    );
    // Months with exactly one death, per sex, and a dead patient whose
    // (sex, days) nobody else shares.
    let mut deaths: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    let mut spelled: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for r in &pooled {
        *spelled.entry((r[0] as u64, r[3] as u64)).or_default() += 1;
        if r[2] == 1.0 {
            *deaths.entry((r[0] as u64, r[1] as u64)).or_default() += 1;
        }
    }
    let lonely: Vec<(u64, u64)> = deaths
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(k, _)| *k)
        .collect();
    assert!(!lonely.is_empty(), "the cohort has months with one death");
    let victim = pooled
        .iter()
        .find(|r| r[2] == 1.0 && spelled[&(r[0] as u64, r[3] as u64)] == 1)
        .expect("a dead patient with a unique follow-up");
    let (sex, days, bin) = (victim[0], victim[3], victim[1]);

    let all = released(&connection, "TRUE").await;
    assert!(all.len() >= 2, "some curve is released: {all:?}");
    no_count_under_k(&all, K, &lonely);
    let without = released(
        &connection,
        &format!("NOT (c.sex = {sex} AND c.days = {days})"),
    )
    .await;
    no_count_under_k(&without, K, &[]);
    // The bins of the victim's stratum, by (time, events, censored): what
    // one curve shows and the other does not.
    let key = |p: &[f64; 5]| (p[1] as u64, p[3] as u64, p[4] as u64);
    let of = |c: &[[f64; 5]]| -> Vec<(u64, u64, u64)> {
        c.iter().filter(|p| p[0] == sex).map(key).collect()
    };
    let (with_victim, without_victim) = (of(&all), of(&without));
    for differing in with_victim
        .iter()
        .filter(|b| !without_victim.contains(b))
        .chain(without_victim.iter().filter(|b| !with_victim.contains(b)))
    {
        assert!(
            differing.1 == 0 || differing.1 as f64 >= K,
            "a differing bin under k: {differing:?}"
        );
    }
    let holding = with_victim
        .iter()
        .find(|b| b.0 as f64 >= bin)
        .expect("the victim's death is on the curve");
    assert!(holding.1 as f64 >= K, "the victim's bin: {holding:?}");
    fed.shutdown().await;
}
