//! The rules on binned statistics under attack, at k = 10: the attacks of
//! the review (an event that is a condition on one patient, a hand-written
//! axis, fine grids, a table aliased `person`), and dp mode's one charge
//! per curve with no released count under k.

use ihdsi_tests::{centralized, cohort, connect, federation, oracle_rows, policy};

use super::survival::{COHORT, curve_sql, rows};

/// What `sql` answers, as sorted rows, or its error.
async fn answer(
    connection: &ihdsi_cli::client::Connection,
    sql: &str,
) -> Result<Vec<Vec<u64>>, String> {
    connection
        .query(sql)
        .await
        .map(|r| {
            // As bits, so that NULL (NaN) equals NULL.
            let mut rows: Vec<Vec<u64>> = rows(&r.batches)
                .into_iter()
                .map(|row| row.into_iter().map(f64::to_bits).collect())
                .collect();
            rows.sort();
            rows
        })
        .map_err(|e| e.to_string())
}

/// The attacks of the review of binned statistics, at k = 10: an event
/// (or a row count) that is a condition on one patient answers the same
/// whether the condition matches that patient or nobody; grids fine
/// enough to show one patient's value and cohorts that only look like one
/// row per patient are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditions_on_one_patient_and_fine_grids_learn_nothing() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(10, true), policy(10, true)).await;
    let connection = connect(&fed.uri).await;
    let oracle = centralized(&data).await;
    let pooled = rows(
        &oracle_rows(
            &oracle,
            &format!("SELECT days, count(*) FROM {COHORT} GROUP BY days HAVING count(*) = 1"),
        )
        .await,
    );
    let unique = pooled.first().expect("a follow-up nobody else has")[0];
    for template in one_patient_templates() {
        let nobody = answer(&connection, &template.replace("COND", "c.days = -1")).await;
        let one = answer(
            &connection,
            &template.replace("COND", &format!("c.days = {unique}")),
        )
        .await;
        assert_eq!(nobody, one, "{template}");
    }
    // The release's shape written by hand with a conditional row count is
    // an ordinary release (its count is not `count(1)`): answered under
    // the ordinary rules, with no error to tell the two apart. (That the
    // two answers differ by the one patient is threshold mode's
    // differencing, A06.)
    let by_hand = format!(
        "SELECT ceil(CAST(days AS DOUBLE) / 3650.0) * 3650.0 AS b, count(*) FILTER (WHERE died > 0) AS e, \
         count(CASE WHEN COND THEN NULL ELSE 1 END) AS n FROM {COHORT} GROUP BY ceil(CAST(days AS DOUBLE) / 3650.0) * 3650.0"
    );
    for cond in ["c.days = -1".to_string(), format!("c.days = {unique}")] {
        let got = answer(&connection, &by_hand.replace("COND", &cond)).await;
        assert!(got.is_ok(), "{cond}: {got:?}");
    }
    for (sql, why) in refused_grids_and_times() {
        let got = answer(&connection, &sql).await;
        assert!(
            got.as_ref().is_err_and(|e| e.contains(why)),
            "{sql}: {got:?}"
        );
    }
    // A timestamp difference counts nanoseconds: written by hand in the
    // release's shape, it is no axis, and is thresholded as any GROUP BY.
    let nanoseconds = "EXPLAIN SELECT ceil(CAST(TRY_CAST(c.e AS TIMESTAMP) - TRY_CAST(c.s AS TIMESTAMP) AS DOUBLE) / 30.0) * 30.0 AS b, \
        count(1) AS n FROM (SELECT person_id, max(observation_period_end_date) AS e, min(observation_period_start_date) AS s \
        FROM observation_period GROUP BY person_id) c \
        GROUP BY ceil(CAST(TRY_CAST(c.e AS TIMESTAMP) - TRY_CAST(c.s AS TIMESTAMP) AS DOUBLE) / 30.0) * 30.0";
    match connection.query(nanoseconds).await {
        Ok(r) => {
            let text = format!("{:?}", r.batches);
            assert!(!text.contains("coarsen"), "a nanosecond axis: {text}");
        }
        Err(e) => assert!(!e.to_string().contains("internal"), "{e}"),
    }
    fed.shutdown().await;
}

/// Statistics whose event, cause or arm is `COND`: replaced by a
/// condition on one patient, or on nobody, they must answer alike.
fn one_patient_templates() -> Vec<String> {
    vec![
        // An event that is the condition: 0 (nobody) against 1 (one).
        format!(
            "SELECT unnest(kaplan_meier(days, CASE WHEN COND THEN 1 ELSE 0 END, 30)) FROM {COHORT}"
        ),
        format!(
            "SELECT unnest(kaplan_meier(days, CASE WHEN COND THEN 0 ELSE 1 END, 30)) FROM {COHORT}"
        ),
        format!(
            "SELECT unnest(survival_summary(days, CASE WHEN COND THEN 1 ELSE 0 END, 30, 365)) FROM {COHORT}"
        ),
        format!(
            "SELECT unnest(cumulative_incidence(days, CASE WHEN COND THEN 1 ELSE 2 END, 30)) FROM {COHORT}"
        ),
        // An arm of one patient: withheld, so the test has one arm left and
        // is NULL, as with an arm of nobody; never an error.
        format!(
            "SELECT unnest(logrank_test(days, died, 30, CASE WHEN COND THEN 'a' ELSE 'b' END)) FROM {COHORT}"
        ),
    ]
}

/// Grids fine enough to show one patient's value, times laundered
/// through casts, and cohorts that only look like one row per patient,
/// with the words their refusal must contain.
fn refused_grids_and_times() -> Vec<(String, &'static str)> {
    vec![
    (
        format!("SELECT kaplan_meier(days, died, 1) FROM {COHORT}"),
        "30 days",
    ),
    (
        format!("SELECT kaplan_meier(CAST(days AS DOUBLE) * 1000, died, 30) FROM {COHORT}"),
        "cannot bin",
    ),
    (
        "SELECT histogram(year_of_birth, 0.000001) FROM person".to_string(),
        "cannot bin",
    ),
    (
        format!("SELECT kaplan_meier(days, 'x', 30) FROM {COHORT}"),
        "not a boolean",
    ),
    (
        "SELECT quantile(year_of_birth, 0, 0.5) FROM person".to_string(),
        "cannot bin",
    ),
    (
        "SELECT histogram(v, 10) FROM (SELECT p.person_id, person.value_as_number AS v \
         FROM person p JOIN measurement person ON p.person_id = person.person_id \
         GROUP BY p.person_id, person.value_as_number) c"
            .to_string(),
        "one row per patient",
    ),
    // A number laundered into a date by a cast and a coalesce.
    (
        "SELECT histogram(coalesce(CAST(TRY_CAST(a.v * 30000 AS INT) AS DATE), a.d) \
         - coalesce(CAST(TRY_CAST(a.v * 0 AS INT) AS DATE), b.d), 30) \
         FROM (SELECT person_id, max(measurement_date) AS d, max(value_as_number) AS v FROM measurement GROUP BY person_id) a \
         JOIN (SELECT person_id, max(measurement_date) AS d FROM measurement GROUP BY person_id) b ON a.person_id = b.person_id"
            .to_string(),
        "cannot bin",
    ),
    (
        "SELECT kaplan_meier(coalesce(CAST(TRY_CAST((c.e - c.s) * 30 AS INT) AS DATE), c.e) \
         - coalesce(CAST(TRY_CAST((c.e - c.s) * 0 AS INT) AS DATE), c.s), 1, 30) \
         FROM (SELECT person_id, max(observation_period_end_date) AS e, min(observation_period_start_date) AS s \
         FROM observation_period GROUP BY person_id) c"
            .to_string(),
        "cannot bin",
    ),
    ]
}

/// dp mode: a curve and a histogram are each one release with one
/// charge, noised (the noise's standard deviation in the metadata), then
/// coarsened on the noisy counts: no released count under k. A quantile
/// on a histogram's bins reads the same release, already paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_dp_mode_a_curve_is_one_charge_and_no_bin_is_under_k() {
    use ihdsi_engine::coordinator::metadata as key;
    use ihdsi_tests::dp::{Permits, dp_federation, scratch};
    const K: f64 = 10.0;
    let data = cohort(6_000);
    let dir = scratch("curves");
    let fed = dp_federation(&data, &dir.join("budget.jsonl"), 5.0).await;
    let permits = Permits::default();
    let (_, token) = permits.fresh(Some(5.0));
    let connection = connect(&fed.uri).await.with_permit(&token);
    let meta = |r: &ihdsi_cli::client::QueryResult, k: &str| {
        r.schema.metadata().get(k).cloned().unwrap_or_default()
    };
    let curve = connection
        // Yearly bins: dp's noisy selection drops sparse bins before the
        // coarsening, so a fine grid loses most of its bins.
        .query(&curve_sql(365, "ended").replace(COHORT, COHORT_PER_PATIENT))
        .await
        .expect("curve");
    assert_eq!(
        meta(&curve, key::RHO_CHARGED),
        "0.100000000",
        "one charge per curve"
    );
    assert!(
        meta(&curve, key::NOISE).contains("noise_sd"),
        "{}",
        meta(&curve, key::NOISE)
    );
    let points = rows(&curve.batches);
    assert!(points.len() >= 2, "a curve is released: {points:?}");
    for p in &points {
        assert!(
            p[2] >= K && p[3] >= K && p[4] >= K,
            "a count under k: {p:?} in {points:?}"
        );
    }
    let histogram = connection
        .query(&HISTOGRAM_BY_SEX.replace("WIDTH", "2"))
        .await
        .expect("histogram");
    assert_eq!(
        meta(&histogram, key::RHO_CHARGED),
        "0.100000000",
        "one charge per histogram"
    );
    for bin in rows(&histogram.batches) {
        assert!(bin[3] >= K, "a bin under k: {bin:?}");
    }
    let median = connection
        .query("SELECT gender_concept_id, median(year_of_birth) FROM person GROUP BY 1")
        .await
        .expect("median");
    // The median reads the same release as the histogram on the same
    // bins, already paid for: free, from the cache.
    assert_eq!(
        meta(&median, key::RHO_CHARGED),
        "0.000000000",
        "the histogram's release"
    );
    let quartile = connection
        .query("SELECT gender_concept_id, quantile(year_of_birth, 0.25, 5) FROM person GROUP BY 1")
        .await
        .expect("quartile");
    assert_eq!(
        meta(&quartile, key::RHO_CHARGED),
        "0.100000000",
        "one charge on new bins"
    );
    fed.shutdown().await;
}

/// The cohort of [`COHORT`] from per-patient subqueries only, as dp mode
/// requires (no join that multiplies a patient's rows, A37).
const COHORT_PER_PATIENT: &str = "(SELECT p.person_id, p.gender_concept_id AS sex, o.last_day - o.first_day AS days, \
    CASE WHEN d.died IS NOT NULL OR p.year_of_birth < 1975 THEN 1 ELSE 0 END AS ended \
    FROM person p \
    JOIN (SELECT person_id, min(observation_period_start_date) AS first_day, max(observation_period_end_date) AS last_day \
          FROM observation_period GROUP BY person_id) o ON o.person_id = p.person_id \
    LEFT JOIN (SELECT person_id, min(death_date) AS died FROM death GROUP BY person_id) d ON d.person_id = p.person_id) c";

const HISTOGRAM_BY_SEX: &str = "SELECT g, unnest(bin) FROM (SELECT g, unnest(h) AS bin FROM \
    (SELECT gender_concept_id AS g, histogram(year_of_birth, WIDTH) AS h FROM person GROUP BY gender_concept_id))";
