//! Generated queries (`ihdsi_tests::fuzz`) against the pooled oracle, at
//! thresholds 1: every answer equals the oracle's with the documented rules
//! applied (a cell on no patient is withheld), every refusal is a clear
//! one, and the coordinator never stops serving. Queries with positional
//! parameters go through a prepared statement with the values bound.
//! 2,000 queries with a fixed seed in the suite; `IHDSI_FUZZ_QUERIES` and
//! `IHDSI_FUZZ_SEED` run more, with a progress line every 10,000, and
//! `IHDSI_FUZZ_CONCURRENCY` keeps that many queries in flight at once.

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use ihdsi_cli::client::Connection;
use ihdsi_tests::compare::diff_withheld;
use ihdsi_tests::fuzz::{Generated, Rng, is_clear_refusal, query};
use ihdsi_tests::{centralized, cohort, connect, federation, policy, prepared};

/// What the federation answers to `g`: as a statement, or prepared with
/// its parameters bound.
async fn federated(connection: &Connection, g: &Generated) -> Result<Vec<RecordBatch>, String> {
    if g.params.is_empty() {
        return connection
            .query(&g.sql)
            .await
            .map(|r| r.batches)
            .map_err(|e| e.to_string());
    }
    prepared(connection, &g.sql, &g.params).await
}

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

/// How one generated query ended.
enum Outcome {
    Answered { prepared: bool },
    Refused(String),
    Failed(String),
}

/// Runs generated query `i` on the federation and judges it against the
/// oracle.
async fn judge(connection: &Connection, pooled: &SessionContext, i: u64, g: Generated) -> Outcome {
    let sql = &g.sql;
    match federated(connection, &g).await {
        Ok(got) => match oracle(pooled, &g.oracle_sql).await {
            Ok(expected) => match diff_withheld(&got, &expected, g.keys) {
                None => Outcome::Answered {
                    prepared: !g.params.is_empty(),
                },
                Some(d) => Outcome::Failed(format!("#{i} differs: {sql}\n  {d}")),
            },
            Err(e) => Outcome::Failed(format!("#{i} answered, but the oracle fails: {sql}\n  {e}")),
        },
        Err(message) if is_clear_refusal(&message) => Outcome::Refused(message),
        Err(message) => Outcome::Failed(format!("#{i} unclear refusal: {sql}\n  {message}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[expect(
    clippy::print_stdout,
    reason = "the run's outcome counts, for the record"
)]
async fn generated_queries_equal_the_oracle_or_are_clearly_refused() {
    let n = env_or("IHDSI_FUZZ_QUERIES", 2_000);
    let seed = env_or("IHDSI_FUZZ_SEED", 20_261_204);
    // Queries in flight at once: the generated sequence is the same for any
    // value (generation stays sequential), so a long run can use every core.
    let concurrency = usize::try_from(env_or("IHDSI_FUZZ_CONCURRENCY", 1).max(1)).unwrap_or(1);
    let data = cohort(6_000);
    let fed = federation(&data, policy(1, true), policy(1, true)).await;
    let pooled = centralized(&data).await;
    let connection = connect(&fed.uri).await;
    let mut rng = Rng::new(seed);
    let (mut answered, mut refused, mut with_parameters) = (0u64, 0u64, 0u64);
    let mut kinds: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    let (connection, pooled) = (&connection, &pooled);
    let mut outcomes = futures::stream::iter(0..n)
        .map(|i| judge(connection, pooled, i, query(&mut rng)))
        .buffered(concurrency);
    let mut done = 0u64;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Answered { prepared } => {
                answered += 1;
                with_parameters += u64::from(prepared);
            }
            Outcome::Refused(message) => {
                refused += 1;
                let kind: String = message.chars().take(60).collect();
                *kinds.entry(kind).or_default() += 1;
            }
            Outcome::Failed(failure) => failures.push(failure),
        }
        done += 1;
        if done.is_multiple_of(10_000) {
            // A long run reports as it goes, so a run cut short still
            // leaves its counts (and its first failures) on record.
            println!(
                "fuzz progress: {done} queries, {answered} answered, {refused} refused, {} failures",
                failures.len()
            );
            for failure in failures.iter().take(3) {
                println!("  {failure}");
            }
        }
    }
    drop(outcomes);
    println!(
        "fuzz seed {seed}: {n} queries, {answered} answered equal to the oracle ({with_parameters} of them prepared with bound parameters), {refused} clearly refused, {} failures",
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
