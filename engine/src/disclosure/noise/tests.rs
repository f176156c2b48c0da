//! Calibration, selection and the grid, with the real samplers.

use datafusion::common::ScalarValue;

use super::*;
use crate::dp::sampler::OsUniform;
use crate::testing::first_release;
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};

fn dp_policy() -> PrivacyPolicy {
    PrivacyPolicy {
        mode: PrivacyMode::Dp,
        ..PrivacyPolicy::default()
    }
}

fn group(patients: i64, rows: Vec<Vec<ScalarValue>>) -> Group {
    Group {
        keys: vec![ScalarValue::Int32(Some(1))],
        rows,
        patients,
        last_site: 0,
        cells: Vec::new(),
        summaries: Vec::new(),
        withheld: vec![false; 16],
    }
}

const GROUPED: &str = "SELECT gender_concept_id, count(DISTINCT person_id), avg(year_of_birth) FROM person GROUP BY gender_concept_id";

#[tokio::test]
async fn noise_is_calibrated_to_the_bounded_contribution() {
    let release = first_release(GROUPED).await;
    let plan = NoisePlan::for_release(&release, &dp_policy()).expect("plan");
    // ρ = 0.1 over 3 partials + patients; G = 5 groups per patient.
    let rho = 0.1 / 4.0;
    let sd = |delta: f64| (5.0 * delta * delta / (2.0 * rho)).sqrt();
    assert!((plan.patients.sd - sd(1.0)).abs() < 1e-3);
    assert!(
        (plan.columns[0].sd - sd(1.0)).abs() < 1e-3,
        "{:?}",
        plan.columns
    );
    // avg(year_of_birth): a sum in steps of 1 bounded by 10 × 2030 (+1 for
    // rounding to the grid), and a row count bounded by 10.
    assert!((plan.columns[1].sd - sd(20_301.0)).abs() < 1e-1);
    assert!((plan.columns[2].sd - sd(10.0)).abs() < 1e-3);
    let z = (2.0 * (5.0f64 / 1e-6).ln()).sqrt();
    assert_eq!(plan.threshold, 10 + (plan.patients.sd * z).ceil() as i64);
}

#[tokio::test]
async fn samples_have_the_stated_spread_and_no_bias() {
    let release = first_release(GROUPED).await;
    let plan = NoisePlan::for_release(&release, &dp_policy()).expect("plan");
    let mut u = OsUniform::default();
    let n = 4000;
    let draws: Vec<f64> = (0..n)
        .map(|_| plan.patients.sample(&mut u).expect("sample") as f64)
        .collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = plan.patients.sd;
    // Mean within 4 standard errors; variance within 10 %.
    assert!(mean.abs() < 4.0 * sd / (n as f64).sqrt(), "mean {mean}");
    assert!(
        (var / (sd * sd) - 1.0).abs() < 0.1,
        "var {var} vs {}",
        sd * sd
    );
}

#[tokio::test]
async fn selection_needs_the_exact_minimum_and_the_noisy_threshold() {
    let release = first_release(GROUPED).await;
    let plan = NoisePlan::for_release(&release, &dp_policy()).expect("plan");
    let row = |n: i64| {
        vec![
            ScalarValue::Int64(Some(n)),
            ScalarValue::Int64(Some(1950 * n)),
            ScalarValue::Int64(Some(n)),
        ]
    };
    let mut u = OsUniform::default();
    for _ in 0..200 {
        let mut groups = vec![
            group(9, vec![row(9)]),                         // under k: never
            group(plan.min_group_size, vec![row(10)]),      // at k: P ≤ δ/G
            group(100_000, vec![row(60_000), row(40_000)]), // far above τ: always
        ];
        plan.apply(&release, &mut groups, &mut u).expect("apply");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].patients, 100_000);
        assert_eq!(groups[0].rows.len(), 1, "one row of noisy totals");
    }
}

#[test]
fn grid_values_are_exact_decimals_and_counts_stay_integers() {
    use datafusion::arrow::datatypes::DataType;
    assert_eq!(
        from_grid(1234, 0.01, &DataType::Float64).expect("value"),
        ScalarValue::Float64(Some(12.34))
    );
    assert_eq!(
        from_grid(-3, 1.0, &DataType::Int64).expect("count"),
        ScalarValue::Int64(Some(-3))
    );
    let rows = vec![
        vec![ScalarValue::Float64(Some(0.014))],
        vec![ScalarValue::Float64(Some(0.011))],
    ];
    assert_eq!(grid_total(&rows, 0, 0.01).expect("total"), 2);
    let huge = vec![vec![ScalarValue::Float64(Some(f64::MAX))]];
    assert!(grid_total(&huge, 0, 0.01).is_err());
}

#[test]
fn large_scales_sample_without_overflow() {
    // A lab-value sum: Δ = 10 × 1000 / 0.01 + 1 steps, G = 5, ρ = 0.05.
    let noise = ColumnNoise::new(1_000_001.0, 5.0, 0.05, 0.01).expect("noise");
    let mut u = OsUniform::default();
    let draws: Vec<i128> = (0..500)
        .map(|_| noise.sample(&mut u).expect("sample"))
        .collect();
    let sd = (draws.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / 500.0).sqrt();
    let expected = noise.sd / noise.step;
    assert!((sd / expected - 1.0).abs() < 0.15, "{sd} vs {expected}");
    assert!(
        ColumnNoise::new(1e12, 5.0, 0.05, 1.0).is_err(),
        "out of range is refused"
    );
}

#[tokio::test]
async fn people_at_several_sites_scale_the_noise_and_the_minimum() {
    let release = first_release(GROUPED).await;
    let one = NoisePlan::for_release(&release, &dp_policy()).expect("plan");
    let mut policy = dp_policy();
    policy.max_sites_per_patient = 2;
    let two = NoisePlan::for_release(&release, &policy).expect("plan");
    assert!((two.patients.sd / one.patients.sd - 2.0).abs() < 1e-3);
    assert!((two.columns[2].sd / one.columns[2].sd - 2.0).abs() < 1e-3);
    assert_eq!(two.min_group_size, 2 * one.min_group_size);
    assert!(two.threshold > one.threshold);
}
