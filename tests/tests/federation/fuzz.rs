//! Generated queries (`ihdsi_tests::fuzz`) against the pooled oracle, at
//! thresholds 1: every answer equals the oracle's with the documented rules
//! applied (a cell on no patient is withheld), every refusal is a clear
//! one, and the coordinator never stops serving. 2,000 queries with a fixed
//! seed in the suite; `IHDSI_FUZZ_QUERIES` and `IHDSI_FUZZ_SEED` run more.

use datafusion::prelude::SessionContext;
use ihdsi_tests::compare::diff_withheld;
use ihdsi_tests::fuzz::{Rng, is_clear_refusal, query};
use ihdsi_tests::{centralized, cohort, connect, federation, policy};

/// What the oracle says of `sql`: its rows, or why it cannot run it.
async fn oracle(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, String> {
    let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[expect(
    clippy::print_stdout,
    reason = "the run's outcome counts, for the record"
)]
async fn generated_queries_equal_the_oracle_or_are_clearly_refused() {
    let n = env_or("IHDSI_FUZZ_QUERIES", 2_000);
    let seed = env_or("IHDSI_FUZZ_SEED", 20_261_204);
    let data = cohort(6_000);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let pooled = centralized(&data).await;
    let connection = connect(&fed.uri).await;
    let mut rng = Rng::new(seed);
    let (mut answered, mut refused) = (0u64, 0u64);
    let mut kinds: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for i in 0..n {
        let generated = query(&mut rng);
        let sql = generated.sql;
        match connection.query(&sql).await {
            Ok(got) => match oracle(&pooled, &sql).await {
                Ok(expected) => match diff_withheld(&got.batches, &expected, generated.keys) {
                    None => answered += 1,
                    Some(d) => failures.push(format!("#{i} differs: {sql}\n  {d}")),
                },
                Err(e) => {
                    failures.push(format!("#{i} answered, but the oracle fails: {sql}\n  {e}"))
                }
            },
            Err(e) => {
                let message = e.to_string();
                if is_clear_refusal(&message) {
                    refused += 1;
                    let kind: String = message.chars().take(60).collect();
                    *kinds.entry(kind).or_default() += 1;
                } else {
                    failures.push(format!("#{i} unclear refusal: {sql}\n  {message}"));
                }
            }
        }
    }
    println!(
        "fuzz seed {seed}: {n} queries, {answered} answered equal to the oracle, {refused} clearly refused, {} failures",
        failures.len()
    );
    for (kind, count) in &kinds {
        println!("  {count:>6}  {kind}");
    }
    fed.shutdown().await;
    assert!(
        answered > n / 2,
        "most generated queries must be answerable: {answered} of {n}"
    );
    assert!(
        failures.is_empty(),
        "{} of {n} generated queries failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
