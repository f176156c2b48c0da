//! Histograms and quantiles through the federation: at thresholds 1 the
//! histogram equals the pooled counts and every quantile, however spelled,
//! lies in the bin of the pooled exact quantile; at k = 10 every released
//! bin holds at least k patients.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use ihdsi_cli::client::Connection;
use ihdsi_tests::{centralized, cohort, connect, federation, oracle_rows, policy};

/// Every column of `batches` as floats (NULL as NaN), sorted.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<f64>> {
    let mut out = ihdsi_tests::compare::floats(batches);
    out.sort_by(|a, b| {
        a.iter()
            .map(|x| x.to_bits())
            .cmp(b.iter().map(|x| x.to_bits()))
    });
    out
}

const HISTOGRAM: &str = "SELECT g, unnest(bin) FROM (SELECT g, unnest(h) AS bin FROM \
    (SELECT gender_concept_id AS g, histogram(year_of_birth, 5) AS h FROM person GROUP BY gender_concept_id))";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn histograms_equal_the_pooled_counts_and_quantiles_their_bins() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let connection = connect(&fed.uri).await;
    let oracle = centralized(&data).await;
    histogram_equals_the_pooled_counts(&connection, &oracle).await;
    every_quantile_spelling_lies_in_its_bin(&connection, &oracle).await;
    quartiles_share_one_release_and_medians_one_finish(&connection, &oracle).await;
    fed.shutdown().await;
}

/// The pooled rows of `sql`, as [`rows`] sorts them.
async fn pooled(oracle: &SessionContext, sql: &str) -> Vec<Vec<f64>> {
    rows(&oracle_rows(oracle, sql).await)
}

/// The histogram: the pooled counts per 5-year bin, in order, each bin
/// from the previous end (the first open below, the last open above).
async fn histogram_equals_the_pooled_counts(connection: &Connection, oracle: &SessionContext) {
    let got = rows(
        &connection
            .query(HISTOGRAM)
            .await
            .expect("histogram")
            .batches,
    );
    let want = pooled(
        oracle,
        "SELECT gender_concept_id, ceil(CAST(year_of_birth AS DOUBLE) / 5) * 5, count(*) FROM person GROUP BY 1, 2",
    )
    .await;
    let mut by_gender: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for w in &want {
        by_gender.entry(w[0] as u64).or_default().push((w[1], w[2]));
    }
    let mut released: BTreeMap<u64, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for g in &got {
        released
            .entry(g[0] as u64)
            .or_default()
            .push((g[1], g[2], g[3]));
    }
    assert_eq!(
        by_gender.keys().collect::<Vec<_>>(),
        released.keys().collect::<Vec<_>>()
    );
    for (gender, bins) in &by_gender {
        let mut shown = released[gender].clone();
        // By upper end; the last bin is open above (NaN sorts last).
        shown.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(shown.len(), bins.len(), "bins of {gender}");
        for (i, ((_, count), (lower, upper, patients))) in bins.iter().zip(&shown).enumerate() {
            assert_eq!(count, patients, "patients in bin {i} of {gender}");
            if i + 1 < bins.len() {
                assert_eq!(*upper, bins[i].0, "upper end of bin {i}");
            }
            if i > 0 {
                assert_eq!(*lower, bins[i - 1].0, "lower end of bin {i}");
            }
        }
    }
}

/// Each spelling of a quantile, the pooled exact one it stands for, and
/// the grid width it is answered on.
const QUANTILE_SPELLINGS: [(&str, &str, f64); 7] = [
    ("median(year_of_birth)", "median(year_of_birth)", 2.0),
    ("approx_median(year_of_birth)", "median(year_of_birth)", 2.0),
    (
        "percentile_cont(year_of_birth, 0.25)",
        "percentile_cont(year_of_birth, 0.25)",
        2.0,
    ),
    (
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY year_of_birth)",
        "percentile_cont(year_of_birth, 0.9)",
        2.0,
    ),
    (
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY year_of_birth DESC)",
        "percentile_cont(year_of_birth, 0.1)",
        2.0,
    ),
    (
        "approx_percentile_cont(year_of_birth, 0.75)",
        "percentile_cont(year_of_birth, 0.75)",
        2.0,
    ),
    (
        "quantile(year_of_birth, 0.6, 3)",
        "percentile_cont(year_of_birth, 0.6)",
        3.0,
    ),
];

/// Quantiles, in every spelling, against the exact pooled one: within
/// the bin (upper − width, upper] that the answer names, and the result
/// says so in its metadata.
async fn every_quantile_spelling_lies_in_its_bin(connection: &Connection, oracle: &SessionContext) {
    for (spelling, exact, width) in QUANTILE_SPELLINGS {
        let sql = format!("SELECT gender_concept_id, {spelling} FROM person GROUP BY 1");
        let answer = connection
            .query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let field = answer.schema.field(1);
        let bin_width = field.metadata().get("ihdsi.bin_width").cloned();
        assert_eq!(bin_width, Some(width.to_string()), "{spelling}");
        assert!(
            field.metadata().contains_key("ihdsi.exact_to"),
            "{spelling}"
        );
        let got = rows(&answer.batches);
        let want = pooled(
            oracle,
            &format!("SELECT gender_concept_id, {exact} FROM person GROUP BY 1"),
        )
        .await;
        assert_eq!(got.len(), want.len(), "{spelling}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                w[1] <= g[1] && w[1] > g[1] - width,
                "{spelling}: {} is not in the bin ending at {}",
                w[1],
                g[1]
            );
        }
    }
}

/// Several quantiles of one value on one grid: one release, each in its
/// bin; three spellings of the median on the catalog's grid are one
/// finish, answered alike.
async fn quartiles_share_one_release_and_medians_one_finish(
    connection: &Connection,
    oracle: &SessionContext,
) {
    let sql = "SELECT gender_concept_id, percentile_cont(year_of_birth, 0.25), median(year_of_birth), \
               percentile_cont(year_of_birth, 0.75), quantile(year_of_birth, 0.5, 2), \
               percentile_cont(0.5) WITHIN GROUP (ORDER BY year_of_birth) FROM person GROUP BY 1";
    let got = rows(&connection.query(sql).await.expect("quartiles").batches);
    let want = pooled(
        oracle,
        "SELECT gender_concept_id, percentile_cont(year_of_birth, 0.25), median(year_of_birth), \
         percentile_cont(year_of_birth, 0.75) FROM person GROUP BY 1",
    )
    .await;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g[4], g[5]), (g[2], g[2]), "spellings of the median: {g:?}");
        for c in 1..4 {
            assert!(
                w[c] <= g[c] && w[c] > g[c] - 2.0,
                "quartile {c}: {} not in the bin ending at {}",
                w[c],
                g[c]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_released_bin_holds_fewer_than_k_patients() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(10, true), policy(10, true)).await;
    let connection = connect(&fed.uri).await;
    // Two-year bins (the finest the catalog allows): the oldest and
    // youngest hold few patients.
    let sql = HISTOGRAM.replace("histogram(year_of_birth, 5)", "histogram(year_of_birth, 2)");
    let got = rows(&connection.query(&sql).await.expect("histogram").batches);
    assert!(got.len() > 10, "a histogram is released: {got:?}");
    for bin in &got {
        assert!(bin[3] >= 10.0, "a bin under k: {bin:?}");
    }
    let refused = connection
        .query("SELECT median(value_as_number) FROM measurement")
        .await
        .map(|_| "answered".to_string())
        .unwrap_or_else(|e| e.to_string());
    assert!(refused.contains("one row per patient"), "{refused}");
    fed.shutdown().await;
}
