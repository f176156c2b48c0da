//! What crosses from the sites to the coordinator grows with the number of
//! groups, not with the number of patients.

// The measured figures are printed for the record (`--nocapture`).
#![allow(clippy::print_stdout)]

use ihdsi_catalog::FederationConfig;
use ihdsi_catalog::SiteEntry;
use ihdsi_catalog::registry::CoordinatorSection;
use ihdsi_engine::Coordinator;
use ihdsi_tests::{cohort, federation, policy};

async fn bytes_for(persons: u64, sql: &str) -> (u64, usize) {
    let data = cohort(persons);
    let fed = federation(&data, policy(1, false), policy(1, false)).await;
    let sites = fed
        .site_endpoints
        .iter()
        .map(|(id, ep)| SiteEntry {
            id: id.clone(),
            country: String::new(),
            endpoint: ep.clone(),
            tables: vec![],
            patients: None,
        })
        .collect();
    let config = FederationConfig {
        coordinator: CoordinatorSection {
            listen: "127.0.0.1:0".into(),
            vocabulary: None,
            site_timeout_secs: 60,
            tls: None,
            shutdown_grace_secs: 30,
        },
        auth: Default::default(),
        privacy: policy(1, false),
        sites,
        tls: None,
        permits: None,
        audit: None,
        limits: Default::default(),
        resources: Default::default(),
    };
    let coordinator = Coordinator::new(&config).await.expect("coordinator");
    let outcome = coordinator
        .execute(sql, "bytes-test", "bytes-test")
        .await
        .expect("query");
    fed.shutdown().await;
    (
        outcome.bytes_from_sites,
        outcome.batches.iter().map(|b| b.num_rows()).sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bytes_depend_on_groups_not_patients() {
    let grouped = "SELECT gender_concept_id, count(*) AS n, avg(year_of_birth) AS mean_yob FROM person GROUP BY gender_concept_id";
    let (small, small_groups) = bytes_for(1_000, grouped).await;
    let (large, large_groups) = bytes_for(100_000, grouped).await;
    println!(
        "GROUP BY gender: 1k persons -> {small} bytes ({small_groups} groups); 100k persons -> {large} bytes ({large_groups} groups)"
    );
    assert_eq!(small_groups, large_groups);
    assert!(small > 0);
    assert!(
        large as f64 <= small as f64 * 1.05,
        "100x the patients must not cost more bytes: {small} vs {large}"
    );
    // The measure is sensitive: more groups do cost more bytes.
    let (fine, fine_groups) = bytes_for(
        100_000,
        "SELECT year_of_birth, count(*) AS n FROM person GROUP BY year_of_birth",
    )
    .await;
    println!("GROUP BY year_of_birth: 100k persons -> {fine} bytes ({fine_groups} groups)");
    assert!(
        fine_groups > 10 * large_groups && fine > large,
        "{fine} bytes for {fine_groups} groups"
    );
}
