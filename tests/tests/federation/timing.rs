//! Attack A16, the timing oracle, against dp mode: answers and refusals
//! leave the coordinator only on multiples of
//! `privacy.dp.response_quantum_ms` after the query arrived, so the time of
//! a query whose work depends on the victim says nothing finer than the
//! quantum. Threshold mode does not pad (docs/privacy.md).
//!
//! The test asserts on structure, not on speed: every latency is at least
//! one quantum (an unpadded query here takes tens of milliseconds), and the
//! median latencies with and without the victim fall in the same quantum.

use std::time::{Duration, Instant};

use ihdsi_catalog::{DpSettings, PrivacyPolicy};
use ihdsi_flight_server::demo::{DEMO_PASSWORD, demo_auth, start};
use ihdsi_tests::dp::{Permits, dp_policy, scratch};
use ihdsi_tests::planted::{V1_CONDITION, planted};
use ihdsi_tests::{cohort, connect};

const QUANTUM: Duration = Duration::from_millis(400);
const TRIALS: usize = 7;

/// Latencies of `TRIALS` victim probes against a dp federation over `data`,
/// each under a fresh permit (no cache), and of one refused query.
async fn latencies(data: &std::path::Path, name: &str) -> (Vec<Duration>, Duration) {
    let ledger = scratch(name).join("budget.jsonl");
    let base = dp_policy(&ledger, 10.0);
    let policy = PrivacyPolicy {
        dp: DpSettings {
            response_quantum_ms: QUANTUM.as_millis() as u64,
            ..base.dp.clone()
        },
        ..base
    };
    let (auth, _) = demo_auth(DEMO_PASSWORD).expect("demo auth");
    let fed = start(data, 0, policy, PrivacyPolicy::threshold(1, false), &auth)
        .await
        .expect("start dp federation");
    let permits = Permits::default();
    let probe = format!(
        "SELECT count(DISTINCT person_id) AS n FROM condition_occurrence WHERE condition_concept_id = {V1_CONDITION}"
    );
    let mut times = Vec::new();
    for _ in 0..TRIALS {
        let (_, token) = permits.fresh(Some(1.0));
        let c = connect(&fed.uri).await.with_permit(&token);
        let t = Instant::now();
        c.query(&probe).await.expect("probe");
        times.push(t.elapsed());
    }
    let c = connect(&fed.uri).await;
    let t = Instant::now();
    let refused = c.query("SELECT * FROM person").await;
    let refusal = t.elapsed();
    assert!(refused.is_err(), "row-level output must be refused");
    fed.shutdown().await;
    (times, refusal)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dp_answers_and_refusals_leave_on_quantum_boundaries() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    let (d0, r0) = latencies(&clean, "timing-d0").await;
    let (d1, r1) = latencies(&victims, "timing-d1").await;
    for (what, t) in d0
        .iter()
        .chain(&d1)
        .map(|t| ("probe", t))
        .chain([("refusal", &r0), ("refusal", &r1)])
    {
        assert!(
            *t >= QUANTUM,
            "a {what} left after {t:?}, before one quantum"
        );
    }
    let (m0, m1) = (median(d0), median(d1));
    assert!(
        m0.abs_diff(m1) < QUANTUM,
        "median latencies {m0:?} (without the victim) and {m1:?} (with) differ by a quantum"
    );
}
