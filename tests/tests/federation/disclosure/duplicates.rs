//! Attack A21 (privacy anchors §4.1): cross-border duplicates inflate
//! distinct-patient counts. Six people are treated both at `lu` and at
//! `us` for one condition: twelve site-records. Person ids are site-local,
//! so without linkage the federation counts 12 patients and a naive
//! threshold of 10 releases the cell of six people.
//!
//! The defence without linkage is `privacy.max_sites_per_patient = S`: the
//! exact count must reach k × S (in dp mode, sensitivities scale by S too).

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_tests::compare::{Cell, rows};
use ihdsi_tests::planted::{XB_CONDITION, XB_PEOPLE, duplicates};
use ihdsi_tests::{ask, centralized, cohort, federation, oracle_rows, policy};

fn with_sites(sites: u64) -> PrivacyPolicy {
    PrivacyPolicy {
        max_sites_per_patient: sites,
        ..policy(10, false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_across_sites_are_withheld_when_sites_may_share_a_person() {
    let data = duplicates(&cohort(6_000)).await;
    let oracle = centralized(&data).await;
    let per_site = oracle_rows(
        &oracle,
        &format!("SELECT site, count(DISTINCT person_id) AS n FROM condition_occurrence WHERE condition_concept_id = {XB_CONDITION} GROUP BY site ORDER BY site"),
    )
    .await;
    let six = Cell::Int(XB_PEOPLE as i128);
    assert_eq!(
        rows(&per_site),
        vec![
            vec![Cell::Text("lu".into()), six.clone()],
            vec![Cell::Text("us".into()), six]
        ],
        "the fixture: six patient records at each of two sites"
    );
    let sql = format!(
        "SELECT count(DISTINCT person_id) AS n FROM condition_occurrence WHERE condition_concept_id = {XB_CONDITION}"
    );
    // A grouped query whose other cells are large: only XB's is affected.
    let grouped = format!(
        "SELECT condition_concept_id, count(DISTINCT person_id) AS n FROM condition_occurrence WHERE condition_concept_id IN ({XB_CONDITION}, 197508) GROUP BY 1"
    );

    // Naive: 12 records ≥ 10, and six people are released as twelve.
    let naive = federation(&data, with_sites(1), policy(1, false)).await;
    let leaked = ask(&naive.uri, &sql).await.expect("naive");
    naive.shutdown().await;
    assert_eq!(rows(&leaked.batches), vec![vec![Cell::Int(12)]]);

    // S = 2: 12 < 10 × 2, withheld; a cell of 20 records or more stays.
    let guarded = federation(&data, with_sites(2), policy(1, false)).await;
    let scalar = ask(&guarded.uri, &sql).await.expect("guarded");
    let cells = ask(&guarded.uri, &grouped).await.expect("guarded grouped");
    guarded.shutdown().await;
    assert_eq!(
        rows(&scalar.batches),
        vec![vec![Cell::Null]],
        "{:?}",
        rows(&scalar.batches)
    );
    let expected = oracle_rows(
        &oracle,
        &format!("{grouped} HAVING count(DISTINCT person_id) >= 20"),
    )
    .await;
    assert!(
        !rows(&expected).is_empty(),
        "197508 must be a common condition"
    );
    assert_eq!(ihdsi_tests::compare::diff(&cells.batches, &expected), None);
}
