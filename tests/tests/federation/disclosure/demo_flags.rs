//! Every `[privacy]` rule can be switched off through `ihdsi demo` flags,
//! so that exactness against a pooled oracle can be checked on the shipped
//! binary: with thresholds 1, no rounding, no p% rule, one site per patient
//! and MIN/MAX allowed, the whole differential suite equals one DataFusion
//! session over the union of the sites' files.

use ihdsi_cli::client::{Connection, Credentials};
use ihdsi_tests::process::{DemoProcess, PASSWORD};
use ihdsi_tests::queries::load;
use ihdsi_tests::{centralized, cohort, differential_failures};

/// The flags that switch off every rule of `[privacy]` in threshold mode.
const EVERY_RULE_OFF: &[&str] = &[
    "--min-group-size",
    "1",
    "--site-min-group-size",
    "1",
    "--round-counts-to",
    "1",
    "--dominance-p",
    "0",
    "--max-sites-per-patient",
    "1",
    "--allow-min-max",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_every_rule_off_by_flags_equals_the_oracle() {
    let data = cohort(6_000);
    let demo = DemoProcess::start_with(&data, EVERY_RULE_OFF);
    let credentials = Credentials::Password {
        user: ihdsi_cli::demo::DEMO_USER.into(),
        password: PASSWORD.into(),
    };
    let connection = Connection::connect(&demo.uri, &credentials)
        .await
        .expect("connect to the demo");
    let oracle = centralized(&data).await;
    let cases = load("differential.slt");
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let failures = differential_failures(&connection, &oracle, &cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} queries differ through the shipped demo with every rule off:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
