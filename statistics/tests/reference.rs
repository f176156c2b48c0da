//! The statistics equal the reference libraries on pooled rows: lifelines'
//! `KaplanMeierFitter` (S(t), Greenwood's sum, the log-log interval, the
//! median with its interval, the restricted mean), `logrank_test`,
//! `multivariate_logrank_test`, and statsmodels' stratified `survdiff` and
//! `CumIncidenceRight` (Aalen–Johansen with its standard error; lifelines'
//! `AalenJohansenFitter` breaks tied times by random jitter).
//!
//! The rows are generated here with ties and censoring on an integer grid,
//! counted into bins as the sites would count them, and written to a CSV
//! that `reference.py` reads with the libraries in `.venv-reference`
//! (`scripts/test.sh` creates it from `requirements.txt`;
//! `IHDSI_REFERENCE_PYTHON` names another interpreter).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ihdsi_statistics::competing::cumulative_incidence;
use ihdsi_statistics::{Bin, CompetingBin, Stratum, kaplan_meier, logrank};
use serde_json::Value;

/// One patient: stratum (site), group (arm), time on the grid, event, and
/// its cause (1 or 2; 0 when censored).
type Row = (u32, u32, u32, bool, u32);

/// A seeded generator (SplitMix64), so that a failure can be replayed.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Three arms with different hazards, in two strata with different
/// follow-up: event times are geometric on a monthly grid, censoring
/// uniform, and ties are frequent.
fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = Seeded(seed);
    (0..n)
        .map(|_| {
            let (stratum, group) = (rng.below(2) as u32, rng.below(3) as u32);
            let hazard = [6, 10, 16][group as usize] + 4 * stratum as u64;
            let mut event_time = 1;
            while rng.below(100) >= hazard && event_time < 60 {
                event_time += 1;
            }
            let censor_time = 1 + rng.below(if stratum == 0 { 36 } else { 24 }) as u32;
            let time = event_time.min(censor_time);
            let event = event_time <= censor_time;
            let cause = if event { 1 + rng.below(2) as u32 } else { 0 };
            (stratum, group, time, event, cause)
        })
        .collect()
}

/// The bins of the rows `keep` selects: what the sites' counts add up to.
fn stratum_of(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Stratum {
    let mut bins: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for row in rows.iter().filter(|r| keep(r)) {
        let counts = bins.entry(row.2).or_default();
        if row.3 {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    Stratum::new(
        bins.into_iter()
            .map(|(time, (events, censored))| Bin {
                time: f64::from(time),
                events,
                censored,
            })
            .collect(),
    )
    .expect("grid")
}

fn reference(rows: &[Row], horizon: f64) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("IHDSI_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../.venv-reference/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: scripts/test.sh creates it (python3 -m venv .venv-reference && \
         .venv-reference/bin/pip install -r statistics/tests/requirements.txt)",
        python.display()
    );
    let dir = std::env::temp_dir().join(format!("ihdsi-statistics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("rows.csv");
    let mut text = String::from("stratum,group,time,event,cause\n");
    for (s, g, t, e, c) in rows {
        text.push_str(&format!("{s},{g},{t},{},{c}\n", u8::from(*e)));
    }
    std::fs::write(&csv, text).expect("write rows");
    let out = Command::new(&python)
        .arg(root.join("tests/reference.py"))
        .arg(&csv)
        .arg(horizon.to_string())
        .output()
        .expect("run reference.py");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(what: &str, got: f64, want: f64, failures: &mut Vec<String>) {
    let tolerance = 1e-9 * want.abs().max(1.0);
    if (got - want).abs() > tolerance {
        failures.push(format!("{what}: {got} vs the reference's {want}"));
    }
}

fn close_option(what: &str, got: Option<f64>, want: &Value, failures: &mut Vec<String>) {
    if got != want.as_f64() {
        failures.push(format!("{what}: {got:?} vs the reference's {want}"));
    }
}

#[test]
fn survival_statistics_equal_lifelines_and_statsmodels_on_pooled_rows() {
    let horizon = 18.0;
    let mut failures = Vec::new();
    for seed in [1, 2, 3] {
        let rows = rows(900, seed);
        let want = reference(&rows, horizon);
        let groups: Vec<Stratum> = (0..3).map(|g| stratum_of(&rows, |r| r.1 == g)).collect();
        for (g, stratum) in groups.iter().enumerate() {
            let w = &want["curves"][g.to_string()];
            check_curve(
                &format!("seed {seed} group {g}"),
                stratum,
                w,
                horizon,
                &mut failures,
            );
        }
        let strata: Vec<Vec<Stratum>> = (0..2)
            .map(|s| {
                (0..3)
                    .map(|g| stratum_of(&rows, |r| r.0 == s && r.1 == g))
                    .collect()
            })
            .collect();
        check_logrank(&groups, &strata, &want, &mut failures);
        check_incidence(seed, &rows, &want["incidence"], &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One stratum's Kaplan–Meier curve (S, its interval, Greenwood's sum),
/// median with its interval, and restricted mean, against lifelines.
fn check_curve(what: &str, stratum: &Stratum, w: &Value, horizon: f64, failures: &mut Vec<String>) {
    let curve = kaplan_meier::curve(stratum, 0.95).expect("curve");
    let times: Vec<f64> = curve.points.iter().map(|p| p.time).collect();
    assert_eq!(times, numbers(&w["times"]), "{what}: grid");
    for name in ["survival", "lower", "upper", "greenwood"] {
        for (p, want) in curve.points.iter().zip(numbers(&w[name])) {
            let got = match name {
                "survival" => p.survival,
                "lower" => p.lower,
                "upper" => p.upper,
                // lifelines keeps Greenwood's sum; the standard error is
                // S·√sum.
                _ => (p.std_error / p.survival).powi(2),
            };
            if name == "greenwood" && p.survival == 0.0 {
                continue;
            }
            close(&format!("{what} {name} at {}", p.time), got, want, failures);
        }
    }
    let median = curve.median();
    close_option("median", median.time, &w["median"], failures);
    close_option("median lower", median.lower, &w["median_lower"], failures);
    close_option("median upper", median.upper, &w["median_upper"], failures);
    let rmst = w["rmst"].as_f64().expect("rmst");
    close("rmst", curve.restricted_mean(horizon), rmst, failures);
}

/// The log-rank test of two groups and of all, and the stratified test,
/// against lifelines and statsmodels.
fn check_logrank(
    groups: &[Stratum],
    strata: &[Vec<Stratum>],
    want: &Value,
    failures: &mut Vec<String>,
) {
    let tests = [
        (
            "log-rank",
            logrank::test(&groups[..2]).expect("log-rank"),
            &want["logrank_two"],
        ),
        (
            "k-group",
            logrank::test(groups).expect("log-rank"),
            &want["logrank_all"],
        ),
        (
            "stratified",
            logrank::stratified(strata).expect("stratified"),
            &want["stratified"],
        ),
    ];
    for (name, got, w) in tests {
        let chi2 = w["statistic"].as_f64().expect("χ²");
        close(&format!("{name} χ²"), got.statistic, chi2, failures);
        close(
            &format!("{name} p"),
            got.p_value,
            w["p_value"].as_f64().expect("p"),
            failures,
        );
    }
    let all = logrank::test(groups).expect("log-rank");
    assert_eq!(
        Some(all.degrees_of_freedom as u64),
        want["logrank_all"]["df"].as_u64()
    );
}

/// Aalen–Johansen incidence of both causes over all rows, with its
/// standard error, against statsmodels' `CumIncidenceRight`.
fn check_incidence(seed: u64, rows: &[Row], want: &Value, failures: &mut Vec<String>) {
    let mut bins: BTreeMap<u32, ([u64; 2], u64)> = BTreeMap::new();
    for r in rows {
        let counts = bins.entry(r.2).or_default();
        match r.4 {
            0 => counts.1 += 1,
            cause => counts.0[cause as usize - 1] += 1,
        }
    }
    let bins: Vec<CompetingBin> = bins
        .into_iter()
        .map(|(time, (events, censored))| CompetingBin {
            time: f64::from(time),
            events: events.to_vec(),
            censored,
        })
        .collect();
    let points = cumulative_incidence(&bins).expect("incidence");
    let times: Vec<f64> = points.iter().map(|p| p.time).collect();
    assert_eq!(
        times,
        numbers(&want["times"]),
        "seed {seed}: incidence grid"
    );
    for cause in 0..2 {
        let cinc = numbers(&want["cinc"][cause]);
        let se = &want["se"][cause];
        for (i, p) in points.iter().enumerate() {
            let what = format!("seed {seed} cause {} at {}", cause + 1, p.time);
            close(
                &format!("{what}: incidence"),
                p.incidence[cause],
                cinc[i],
                failures,
            );
            match se[i].as_f64() {
                Some(want) => close(&format!("{what}: SE"), p.std_error[cause], want, failures),
                None if !p.std_error[cause].is_finite() => {}
                None => failures.push(format!(
                    "{what}: SE {} where the reference has none",
                    p.std_error[cause]
                )),
            }
        }
    }
}
