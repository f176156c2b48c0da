//! Attack A16, the timing oracle, and A15, the error oracle, against dp
//! mode, each as the distinguishing game of `ihdsi_tests::dp` over 200
//! trials: a hidden coin picks the cohort with or without the planted
//! victim, the adversary sees only what a client sees and guesses.
//!
//! * **Timing.** Every admitted query's answer leaves exactly
//!   `privacy.dp.response_ms` after it arrived, so latency carries nothing
//!   the data decides. The adversary calibrates a latency threshold on
//!   labelled trials first, then guesses from it.
//! * **Deadline.** A query that is not done by then fails at the deadline,
//!   in the same way whatever the data.
//! * **Errors.** Functions that fail on inputs the victim chooses are
//!   refused from the query text, so whether a query fails never depends
//!   on the data; the adversary guesses "victim" on every failure.

use std::time::{Duration, Instant};

use ihdsi_catalog::{DpSettings, PrivacyPolicy};
use ihdsi_cli::demo::{DEMO_PASSWORD, Federation, demo_auth, start};
use ihdsi_tests::dp::{Game, Permits, coins, dp_policy, scratch};
use ihdsi_tests::planted::{V2_MEASUREMENT, planted};
use ihdsi_tests::{cohort, connect};

const RESPONSE: Duration = Duration::from_millis(500);
const TRIALS: usize = 200;
const CALIBRATION: usize = 20;

async fn dp_with_deadline(data: &std::path::Path, name: &str, response_ms: u64) -> Federation {
    let ledger = scratch(name).join("budget.jsonl");
    let base = dp_policy(&ledger, 1e6);
    let policy = PrivacyPolicy {
        dp: DpSettings {
            response_ms,
            ..base.dp.clone()
        },
        ..base
    };
    let (auth, _) = demo_auth(DEMO_PASSWORD).expect("demo auth");
    start(data, 0, policy, PrivacyPolicy::threshold(1, false), &auth)
        .await
        .expect("start dp federation")
}

/// The game of `wins` over [`TRIALS`] at the dp policy's ρ and δ.
fn game_of(wins: usize) -> Game {
    Game {
        trials: TRIALS,
        wins,
        rho: 0.1,
        delta: 1e-6,
    }
}

fn probe() -> String {
    format!(
        "SELECT count(DISTINCT person_id) AS n FROM measurement WHERE measurement_concept_id = {V2_MEASUREMENT}"
    )
}

/// One query under a fresh permit (no cache, its own budget): its
/// latency and its error text, if any.
async fn timed(fed: &Federation, permits: &Permits, sql: &str) -> (Duration, Option<String>) {
    let (_, token) = permits.fresh(Some(1.0));
    let c = connect(&fed.uri).await.with_permit(&token);
    let t = Instant::now();
    let r = c.query(sql).await;
    (t.elapsed(), r.err().map(|e| e.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[expect(
    clippy::print_stdout,
    reason = "the games' figures are this test's evidence"
)]
async fn dp_latency_is_no_better_than_the_answer_over_200_trials() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let ms = RESPONSE.as_millis() as u64;
    let worlds = [
        dp_with_deadline(&clean, "timing-d0", ms).await,
        dp_with_deadline(&victims, "timing-d1", ms).await,
    ];
    let permits = Permits::default();
    let sql = probe();
    // Calibration: labelled latencies of each world; the threshold is the
    // midpoint of the two medians.
    let mut medians = Vec::new();
    for fed in &worlds {
        let mut ts = Vec::new();
        for _ in 0..CALIBRATION {
            ts.push(timed(fed, &permits, &sql).await.0);
        }
        ts.sort();
        medians.push(ts[ts.len() / 2]);
    }
    let threshold = (medians[0] + medians[1]) / 2;
    let victim_is_slower = medians[1] >= medians[0];
    let mut wins = 0;
    for b in coins(TRIALS, 16) {
        let (t, err) = timed(&worlds[usize::from(b)], &permits, &sql).await;
        assert!(err.is_none(), "the probe is answered: {err:?}");
        assert!(
            t >= RESPONSE,
            "an answer left after {t:?}, before the deadline"
        );
        assert!(
            t < RESPONSE + Duration::from_secs(2),
            "an answer left {t:?} after arrival, long after the deadline"
        );
        let guess = (t > threshold) == victim_is_slower;
        wins += usize::from(guess == b);
    }
    for fed in worlds {
        fed.shutdown().await;
    }
    let game = game_of(wins);
    println!("timing game: {game}");
    assert!(game.within_bound(), "timing game: {game}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dp_query_past_its_deadline_fails_the_same_way_whatever_the_data() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let worlds = [
        dp_with_deadline(&clean, "deadline-d0", 1).await,
        dp_with_deadline(&victims, "deadline-d1", 1).await,
    ];
    let permits = Permits::default();
    let sql = probe();
    let mut errors = std::collections::BTreeSet::new();
    for fed in &worlds {
        for _ in 0..10 {
            let (_, err) = timed(fed, &permits, &sql).await;
            let err = err.expect("a 1 ms deadline is missed");
            // The query id differs per query; the rest must not.
            let text = err
                .split("did not finish")
                .nth(1)
                .unwrap_or(&err)
                .to_string();
            errors.insert(text);
        }
    }
    for fed in worlds {
        fed.shutdown().await;
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors.into_iter().next().unwrap_or_default();
    assert!(e.contains("query.deadline"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[expect(
    clippy::print_stdout,
    reason = "the games' figures are this test's evidence"
)]
async fn the_dp_error_oracle_is_no_better_than_the_answer_over_200_trials() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let worlds = [
        dp_with_deadline(&clean, "errors-d0", 0).await,
        dp_with_deadline(&victims, "errors-d1", 0).await,
    ];
    let permits = Permits::default();
    let attacks: Vec<String> = crate::disclosure::cells::FAILURE_ORACLES
        .iter()
        .map(|s| crate::disclosure::cells::spell(s))
        .collect();
    let mut wins = 0;
    for (i, b) in coins(TRIALS, 15).into_iter().enumerate() {
        let sql = &attacks[i % attacks.len()];
        let (_, err) = timed(&worlds[usize::from(b)], &permits, sql).await;
        let guess = err.is_some();
        wins += usize::from(guess == b);
    }
    for fed in worlds {
        fed.shutdown().await;
    }
    let game = game_of(wins);
    println!("error game: {game}");
    assert!(game.within_bound(), "error game: {game}");
}
