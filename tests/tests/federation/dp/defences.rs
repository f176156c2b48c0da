//! The deterministic defences of differential-privacy mode, against the
//! attack catalogue (privacy anchors §4.1): admission refusals, absent
//! victims, the cache (repetition), the budget (reconstruction, evasion,
//! restarts), metadata and the output grid.

use std::path::Path;

use futures::StreamExt;
use ihdsi_cli::client::{Connection, QueryResult};
use ihdsi_engine::coordinator::metadata as key;
use ihdsi_engine::dp::NANO;
use ihdsi_tests::compare::diff;
use ihdsi_tests::dp::{Permits, dp_federation, scratch};
use ihdsi_tests::planted::{V1_CONDITION, V2_MEASUREMENT, planted};
use ihdsi_tests::{cohort, connect};

async fn ask(c: &Connection, sql: &str) -> Result<QueryResult, String> {
    c.query(sql).await.map_err(|e| e.to_string())
}

fn meta(r: &QueryResult, k: &str) -> String {
    r.schema.metadata().get(k).cloned().unwrap_or_default()
}

/// Nano-ρ charged to `principal` in the ledger file: the sum of its lines.
fn ledger_sum(path: &Path, principal: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("ledger line"))
        .filter(|v| v["principal"] == principal)
        .map(|v| v["nano_rho"].as_u64().expect("nano_rho"))
        .sum()
}

const REFUSED: &[(&str, &str, &str)] = &[
    ("A01 rows", "SELECT * FROM person", "row-level output"),
    (
        "A01 identifier",
        "SELECT count(*), min(person_id) FROM person",
        "person_id",
    ),
    (
        "A04 MAX",
        "SELECT max(value_as_number) FROM measurement",
        "MIN and MAX",
    ),
    (
        "A04 median of many rows per patient",
        "SELECT median(value_as_number) FROM measurement",
        "one row per patient",
    ),
    (
        "A05 unbounded sum",
        "SELECT sum(value_as_number * 1000) FROM measurement",
        "declared bounds",
    ),
    (
        "A13 cross join",
        "SELECT count(*) FROM person, measurement",
        "not on person_id",
    ),
    (
        "A14 limit below the aggregate",
        "SELECT count(*) FROM (SELECT * FROM person ORDER BY year_of_birth LIMIT 1) t",
        "LIMIT",
    ),
    (
        "A15 division oracle",
        "SELECT count(*) FROM measurement WHERE 10 / (measurement_concept_id - 3000) > 0",
        "division",
    ),
    (
        "A17 EXPLAIN ANALYZE",
        "EXPLAIN ANALYZE SELECT count(*) FROM person",
        "EXPLAIN ANALYZE",
    ),
    (
        "A26 sum of an unbounded column",
        "SELECT sum(measurement_id) FROM measurement",
        "not a quantity",
    ),
    (
        "A26 variance",
        "SELECT stddev(value_as_number) FROM measurement",
        "dp mode",
    ),
    (
        "A26 count of distinct concepts",
        "SELECT count(DISTINCT drug_concept_id) FROM drug_exposure",
        "distinct values",
    ),
    (
        "A30 EXISTS not correlated on the patient",
        "SELECT count(*) FROM person p WHERE EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.condition_concept_id = 4306655)",
        "EXISTS",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dp_mode_refuses_what_it_cannot_bound_and_never_releases_the_victims() {
    let victims = planted(&cohort(6_000)).await;
    let dir = scratch("defences");
    let ledger = dir.join("budget.jsonl");
    let fed = dp_federation(&victims, &ledger, 1.0).await;
    let c = connect(&fed.uri).await;
    let mut failures = Vec::new();
    for (name, sql, needle) in REFUSED {
        match ask(&c, sql).await {
            Err(e) if e.contains(needle) => {}
            other => failures.push(format!(
                "{name}: expected a refusal naming '{needle}', got {other:?}"
            )),
        }
    }
    // Refusals cost nothing: they are decided before the ledger.
    if ledger_sum(&ledger, "analyst:analyst") != 0 {
        failures.push("a refused query was charged".into());
    }
    // A38: a distinct count of values is refused as a release, also in a
    // union branch, but a per-patient one below the boundary is computed at
    // the patient's site and answered.
    let per_patient = "SELECT n_drugs, count(*) AS persons FROM (SELECT person_id, count(DISTINCT drug_concept_id) AS n_drugs FROM drug_exposure GROUP BY person_id) t GROUP BY n_drugs";
    if let Err(e) = ask(&c, per_patient).await {
        failures.push(format!(
            "A38: a per-patient distinct count was refused: {e}"
        ));
    }
    let in_a_branch = "SELECT count(*) FROM person UNION ALL SELECT count(DISTINCT drug_concept_id) FROM drug_exposure";
    match ask(&c, in_a_branch).await {
        Err(e) if e.contains("distinct values") => {}
        other => failures.push(format!("A38 in a union branch: {other:?}")),
    }
    // A02/A03/A30: the victims' groups are never released (exact count 1 <
    // k, whatever the noise), and booleans over counts are post-processing.
    let probes = [
        "SELECT condition_concept_id, count(DISTINCT person_id) FROM condition_occurrence GROUP BY 1",
        "SELECT measurement_concept_id, count(*), avg(value_as_number) FROM measurement GROUP BY 1",
    ];
    let permits = Permits::default();
    for round in 0..5 {
        let (_, token) = permits.fresh(Some(10.0));
        let c = c.with_permit(&token);
        for sql in &probes {
            let r = ask(&c, sql).await.expect("grouped");
            let keys = ihdsi_tests::compare::rows(&r.batches);
            for victim in [V1_CONDITION, V2_MEASUREMENT] {
                if keys
                    .iter()
                    .any(|row| row[0] == ihdsi_tests::compare::Cell::Int(victim.into()))
                {
                    failures.push(format!(
                        "round {round}: victim group {victim} released by {sql}"
                    ));
                }
            }
            // A17: how many groups were withheld is not said in dp mode.
            if r.schema.metadata().contains_key(key::SUPPRESSED) {
                failures.push("dp result carries a suppressed-group count".into());
            }
        }
        let boolean = format!(
            "SELECT count(*) > 0 FROM condition_occurrence WHERE condition_concept_id = {V1_CONDITION}"
        );
        let r = ask(&c, &boolean).await.expect("boolean");
        // The scalar keeps its row (as SQL does), its cell withheld.
        if ihdsi_tests::compare::rows(&r.batches) != vec![vec![ihdsi_tests::compare::Cell::Null]] {
            failures.push(format!(
                "A30: the victim's scalar group was released: {:?}",
                ihdsi_tests::compare::rows(&r.batches)
            ));
        }
    }
    fed.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A10: a reconstruction attack's many subset queries, asked until the
/// budget refuses one: how many were answered, and the refusal.
async fn subset_queries_until_refused(c: &Connection) -> (usize, Option<String>) {
    let mut answered = 0;
    let mut refusal = None;
    for i in 0..40 {
        let sql = format!(
            "SELECT count(DISTINCT person_id) FROM person WHERE year_of_birth % 40 IN ({}, {})",
            i,
            (i * 7 + 3) % 40
        );
        match ask(c, &sql).await {
            Ok(_) => answered += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    (answered, refusal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeats_are_free_and_identical_variants_are_charged_and_the_budget_ends_reconstruction() {
    let data = cohort(6_000);
    let dir = scratch("budget");
    let ledger = dir.join("budget.jsonl");
    let fed = dp_federation(&data, &ledger, 1.0).await;
    let permits = Permits::default();
    let (id, token) = permits.fresh(Some(1.0));
    let principal = format!("permit:{id}");
    let c = connect(&fed.uri).await.with_permit(&token);

    // A07: the same query ten times: one charge, ten identical answers.
    let q = "SELECT gender_concept_id, count(DISTINCT person_id) AS n FROM person GROUP BY 1 ORDER BY 1";
    let first = ask(&c, q).await.expect("first");
    assert_eq!(meta(&first, key::RHO_CHARGED), "0.100000000");
    assert_eq!(meta(&first, key::RHO_REMAINING), "0.900000000");
    assert!(
        meta(&first, key::NOISE).contains("noise_sd"),
        "{}",
        meta(&first, key::NOISE)
    );
    for _ in 0..9 {
        let again = ask(&c, q).await.expect("repeat");
        assert_eq!(
            diff(&again.batches, &first.batches),
            None,
            "a repeat differs"
        );
        assert_eq!(meta(&again, key::RHO_CHARGED), "0.000000000");
        assert_eq!(meta(&again, key::CACHED), "1");
    }
    // A08: syntactic variants are cached when their canonical subplan is
    // the same, charged otherwise; never free and different.
    let variants = [
        "SELECT gender_concept_id, count(DISTINCT person_id) AS patients FROM person GROUP BY gender_concept_id",
        "select gender_concept_id,   COUNT(DISTINCT person_id) from person group by 1 order by 2",
        "SELECT gender_concept_id, count(DISTINCT person_id) FROM person WHERE 1 = 1 GROUP BY 1",
        "SELECT gender_concept_id, count(DISTINCT person_id) FROM person WHERE year_of_birth + 0 > 0 GROUP BY 1",
    ];
    let mut charged = 0;
    for v in variants {
        let r = ask(&c, v).await.expect("variant");
        match meta(&r, key::RHO_CHARGED).as_str() {
            "0.000000000" => assert_eq!(diff_sorted(&r, &first), None, "{v}: free but different"),
            "0.100000000" => charged += 1,
            other => panic!("{v}: charged {other}"),
        }
    }
    assert!(charged >= 1, "the tautology variants must cost budget");
    let (answered, refusal) = subset_queries_until_refused(&c).await;
    let refusal = refusal.expect("the budget must end the attack");
    assert!(refusal.contains("privacy budget exhausted"), "{refusal}");
    assert_eq!(answered + 1 + charged, 10, "ρ 1.0 buys ten releases of 0.1");
    assert_eq!(
        ledger_sum(&ledger, &principal),
        NANO,
        "the ledger holds exactly the budget"
    );
    fed.shutdown().await;

    // A24 and restarts: the spent budget survives a restart over new data.
    let fed = dp_federation(&planted(&data).await, &ledger, 1.0).await;
    let c = connect(&fed.uri).await.with_permit(&token);
    let err = ask(&c, q).await.expect_err("spent before the restart");
    assert!(err.contains("privacy budget exhausted"), "{err}");
    fed.shutdown().await;
}

fn diff_sorted(a: &QueryResult, b: &QueryResult) -> Option<String> {
    let mut x = ihdsi_tests::compare::rows(&a.batches);
    let mut y = ihdsi_tests::compare::rows(&b.batches);
    x.sort_by_key(|r| format!("{r:?}"));
    y.sort_by_key(|r| format!("{r:?}"));
    (x != y).then(|| format!("{x:?} vs {y:?}"))
}

/// `avg(x)` and `sum(x), count(x)` send every site the same subplan but
/// release different tables: each is paid and cached on its own, and
/// neither is answered with the other's columns (a review found the second
/// failing with an internal error when the cache was keyed by the subplan
/// alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_partials_merged_differently_are_cached_apart() {
    let data = cohort(6_000);
    let dir = scratch("cache-key");
    let fed = dp_federation(&data, &dir.join("budget.jsonl"), 1.0).await;
    let permits = Permits::default();
    let (_, token) = permits.fresh(Some(1.0));
    let c = connect(&fed.uri).await.with_permit(&token);
    let avg = "SELECT gender_concept_id, avg(year_of_birth) AS mean FROM person GROUP BY 1";
    let parts = "SELECT gender_concept_id, sum(year_of_birth) AS total, count(year_of_birth) AS n FROM person GROUP BY 1";
    let first = ask(&c, avg).await.expect("avg");
    assert_eq!(first.schema.fields().len(), 2);
    let second = ask(&c, parts).await.expect("sum and count, after avg");
    assert_eq!(second.schema.fields().len(), 3);
    assert_eq!(meta(&second, key::RHO_CHARGED), "0.100000000");
    let again = ask(&c, avg).await.expect("avg again");
    assert_eq!(meta(&again, key::RHO_CHARGED), "0.000000000");
    assert_eq!(diff(&again.batches, &first.batches), None, "the cached avg");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_queries_never_overspend_and_the_ledger_is_the_sum_of_charges() {
    let data = cohort(6_000);
    let dir = scratch("concurrent");
    let ledger = dir.join("budget.jsonl");
    let fed = dp_federation(&data, &ledger, 1.0).await;
    let permits = Permits::default();
    let (id, token) = permits.fresh(Some(0.3));
    // A27 (a), (b), (e): twelve different queries at once, over two
    // sessions of the same permit, when the budget covers three.
    let sessions = [
        connect(&fed.uri).await.with_permit(&token),
        connect(&fed.uri).await.with_permit(&token),
    ];
    let outcomes = futures::stream::iter(0..12)
        .map(|i| {
            let c = &sessions[i % 2];
            async move {
                let sql = format!(
                    "SELECT count(DISTINCT person_id) FROM person WHERE year_of_birth > {}",
                    1900 + i
                );
                ask(c, &sql).await
            }
        })
        .buffer_unordered(12)
        .collect::<Vec<_>>()
        .await;
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(e.contains("privacy budget exhausted"), "{e}");
    }
    assert_eq!(ok, 3, "exactly the budget's worth of queries ran");
    assert_eq!(ledger_sum(&ledger, &format!("permit:{id}")), 3 * NANO / 10);
    // A25: released sums lie on the published grid (0.01 for lab values).
    let (_, token) = permits.fresh(Some(1.0));
    let c = connect(&fed.uri).await.with_permit(&token);
    let r = ask(&c, "SELECT sum(value_as_number) AS s FROM measurement")
        .await
        .expect("sum");
    let s = ihdsi_tests::dp::scalar(&r);
    assert_eq!(
        (s * 100.0).round() / 100.0,
        s,
        "{s} is not on the 0.01 grid"
    );
    // The dry run quotes the cost without charging.
    let plan = ask(&c, "EXPLAIN SELECT count(*) FROM person")
        .await
        .expect("explain");
    let text = format!("{:?}", ihdsi_tests::compare::rows(&plan.batches));
    assert!(text.contains("dp_cost") && text.contains("fits"), "{text}");
    let after = ask(&c, "SELECT count(*) FROM person").await.expect("count");
    assert_eq!(meta(&after, key::RHO_REMAINING), "0.800000000");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cell_is_noised_and_plans_and_ledgers_carry_no_statistics() {
    let data = cohort(6_000);
    let dir = scratch("cells");
    let ledger = dir.join("budget.jsonl");
    let fed = dp_federation(&data, &ledger, 1.0).await;
    let permits = Permits::default();
    let base = connect(&fed.uri).await;
    // A12: one row per person, so the exact count(*) equals the exact
    // number of patients in every cell ("everyone in the cohort has it").
    // Released, the two differ: no cell is exempt from noise.
    let q = "SELECT gender_concept_id, count(DISTINCT person_id) AS patients, count(*) AS rows FROM person GROUP BY 1";
    let (mut cells, mut equal) = (0, 0);
    for _ in 0..10 {
        let (_, token) = permits.fresh(Some(1.0));
        let r = ask(&base.with_permit(&token), q).await.expect("cells");
        for row in ihdsi_tests::compare::rows(&r.batches) {
            cells += 1;
            equal += usize::from(row[1] == row[2]);
        }
    }
    assert!(
        cells >= 10 && equal * 4 < cells,
        "{equal} of {cells} cells released exactly"
    );
    // A28: each branch of a UNION is its own release, charged on its own.
    let (_, token) = permits.fresh(Some(1.0));
    let c = base.with_permit(&token);
    let union = "SELECT count(*) AS n FROM person UNION ALL SELECT count(*) AS n FROM person WHERE year_of_birth > 1950";
    let r = ask(&c, union).await.expect("union");
    assert_eq!(meta(&r, key::RHO_CHARGED), "0.200000000");
    // ... and so is each grouping set of a ROLLUP: the groups and the total
    // (under a fresh permit: the total is the union's first branch, which
    // the permit's cache would answer for free).
    let (_, token) = permits.fresh(Some(1.0));
    let rollup =
        "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY ROLLUP(gender_concept_id)";
    let r = ask(&base.with_permit(&token), rollup)
        .await
        .expect("rollup");
    assert_eq!(meta(&r, key::RHO_CHARGED), "0.200000000");
    // A17: plain EXPLAIN carries no row counts or statistics.
    let plan = ask(
        &c,
        "EXPLAIN SELECT gender_concept_id, count(*) FROM person GROUP BY 1",
    )
    .await
    .expect("explain");
    let text = format!("{:?}", ihdsi_tests::compare::rows(&plan.batches)).to_lowercase();
    for stat in ["rows=", "output_rows", "statistics", "num_rows", "bytes="] {
        assert!(!text.contains(stat), "EXPLAIN shows {stat}: {text}");
    }
    // A22: what the coordinator persists about dp queries is who was
    // charged how much for which query: no result or per-site number.
    let text = std::fs::read_to_string(&ledger).expect("ledger");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("ledger line");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["nano_rho", "principal", "query_id", "time"]);
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_that_drops_out_fails_the_query_generically_and_the_charge_stands() {
    let dir = scratch("dropout");
    let ledger = dir.join("budget.jsonl");
    let mut fed = crate::surface::errors::manual(
        |_| ihdsi_catalog::PrivacyPolicy::threshold(1, false),
        ihdsi_tests::dp::dp_policy(&ledger, 1.0),
    )
    .await;
    let c = connect(&fed.uri).await;
    let q = "SELECT count(DISTINCT person_id) FROM person WHERE year_of_birth > 1950";
    ask(&c, q).await.expect("all sites up");
    let (site, stop) = fed.stops.remove(0);
    let _ = stop.send(());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A20: never a partial answer without the site; the error says nothing
    // about which site or why, and the attempt is paid for.
    let q2 = "SELECT count(DISTINCT person_id) FROM person WHERE year_of_birth > 1960";
    let err = ask(&c, q2).await.expect_err("a site is down");
    assert!(err.contains("code query.runtime"), "{err}");
    assert!(!err.contains(&site), "the error names the site: {err}");
    assert_eq!(ledger_sum(&ledger, "analyst:analyst"), 2 * NANO / 10);
    let _ = fed.coordinator_stop.send(());
}
