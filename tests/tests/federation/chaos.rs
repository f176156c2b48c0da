//! Faults of whole site processes, with every site its own `ihdsi site`
//! process: a site killed in the middle of a query fails that query at
//! once, naming the site, instead of at the timeout under another name.

use std::time::{Duration, Instant};

use ihdsi_tests::cohort;
use ihdsi_tests::process::signal;
use ihdsi_tests::secured::{Material, SecuredFederation, Setup, connect_analyst, site_ids};

/// Keeps every site busy for many seconds in a debug build.
const HEAVY: &str = "SELECT max(m.value_as_number + c.concept_id + d.concept_id + e.concept_id) AS top \
                     FROM measurement m CROSS JOIN concept c CROSS JOIN concept d CROSS JOIN concept e";

/// A secured federation of processes over a 3,000-person cohort, with
/// thresholds at 1 and MIN/MAX allowed.
fn start(name: &str) -> SecuredFederation {
    let data = cohort(3_000);
    let material = Material::make(name, &site_ids(&data));
    let permit = material.permit(&format!("P-{name}"), &[]);
    let setup = Setup {
        min_group_size: Some(1),
        allow_min_max: true,
        ..Setup::default()
    };
    SecuredFederation::start(&data, &material, &setup, &[permit])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_killed_mid_query_is_named_within_three_seconds() {
    let mut fed = start("chaos-kill");
    let connection = connect_analyst(&fed.uri).await;
    let query = tokio::spawn(async move { connection.query(HEAVY).await });
    // Let every site start on its subplan.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    if query.is_finished() {
        panic!("the query must still be running: {:?}", query.await);
    }
    let killed = Instant::now();
    let victim = fed.processes.site_processes.get_mut("us").expect("site us");
    victim.kill().expect("kill -9 site us");
    let answered = tokio::time::timeout(Duration::from_secs(30), query)
        .await
        .expect("the query ends long before the 120 s site timeout")
        .expect("query task");
    let elapsed = killed.elapsed();
    let err = answered
        .expect_err("a query that lost a site fails")
        .to_string();
    assert!(
        err.contains("site 'us'") && err.contains("unavailable"),
        "the error names the killed site: {err}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "named {elapsed:?} after the kill: {err}"
    );
    // The coordinator keeps serving; a query the dead site is needed for
    // fails at once, naming it.
    let connection = connect_analyst(&fed.uri).await;
    let started = Instant::now();
    let err = connection
        .query("SELECT count(*) AS n FROM person")
        .await
        .expect_err("us is down")
        .to_string();
    assert!(err.contains("site 'us'"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    drop(fed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_site_is_named_long_before_the_site_timeout() {
    let fed = start("chaos-stop");
    let connection = connect_analyst(&fed.uri).await;
    let query = tokio::spawn(async move { connection.query(HEAVY).await });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let pid = fed.pid("us");
    // Frozen, not dead: its sockets stay open and nothing resets them.
    signal(pid, "-STOP");
    let frozen = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(60), query).await;
    signal(pid, "-CONT");
    let elapsed = frozen.elapsed();
    let err = answered
        .expect("the query ends long before the 120 s site timeout")
        .expect("query task")
        .expect_err("a query that lost a site fails")
        .to_string();
    assert!(
        err.contains("site 'us'"),
        "the error names the frozen site: {err}"
    );
    // HTTP/2 pings every 5 s, unanswered for 10 s.
    assert!(
        elapsed < Duration::from_secs(25),
        "named {elapsed:?} after the freeze: {err}"
    );
    drop(fed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_query_in_flight_answer_then_the_coordinator_exits() {
    let mut fed = start("chaos-term");
    let sql = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1";
    let connection = connect_analyst(&fed.uri).await;
    let expected = connection.query(sql).await.expect("before").num_rows();
    // Hold the query in flight: one site is frozen until after SIGTERM.
    let frozen = fed.pid("us");
    signal(frozen, "-STOP");
    let query = tokio::spawn(async move { connection.query(sql).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!query.is_finished(), "the query is held at the frozen site");
    signal(fed.processes.coordinator.id(), "-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No new query is taken while the coordinator drains, and it says why.
    let late = connect_analyst(&fed.uri).await;
    let refused = late
        .query(sql)
        .await
        .expect_err("no new queries")
        .to_string();
    assert!(refused.contains("shutting down"), "{refused}");
    assert!(
        fed.processes
            .coordinator
            .try_wait()
            .expect("wait")
            .is_none(),
        "the coordinator waits for its query in flight"
    );
    signal(frozen, "-CONT");
    let answered = tokio::time::timeout(Duration::from_secs(20), query)
        .await
        .expect("the query in flight ends")
        .expect("query task")
        .expect("the query in flight answers");
    assert_eq!(answered.num_rows(), expected);
    let mut waited = 0;
    let status = loop {
        if let Some(status) = fed.processes.coordinator.try_wait().expect("wait") {
            break status;
        }
        waited += 1;
        assert!(
            waited < 200,
            "the coordinator did not exit after its last query"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit: {status:?}");
    drop(fed);
}
