//! Faults of whole processes, with every site its own `ihdsi site`
//! process and the coordinator its own `ihdsi coordinator`: a site killed
//! in the middle of a query fails that query at once, naming the site,
//! and the other sites stop their work within a second; a timeout (the
//! coordinator's or a slow site's own) is named and stops every site; a
//! restarted site answers the next query; a cross product stops at the row
//! bound; a coordinator killed in a dp query loses no budget charge.

use std::time::{Duration, Instant};

use ihdsi_tests::cohort;
use ihdsi_tests::process::{cpu_share, signal};
use ihdsi_tests::secured::{
    Material, SecuredFederation, Setup, connect_analyst, site_ids, verify_trail,
};

/// Keeps every site busy for many seconds in a debug build.
const HEAVY: &str = "SELECT max(m.value_as_number + c.concept_id + d.concept_id + e.concept_id) AS top \
                     FROM measurement m CROSS JOIN concept c CROSS JOIN concept d CROSS JOIN concept e";

/// A secured federation of processes over a 3,000-person cohort, with
/// thresholds at 1 and MIN/MAX allowed.
fn start(name: &str) -> SecuredFederation {
    start_with(name, Setup::default())
}

fn start_with(name: &str, setup: Setup) -> SecuredFederation {
    let data = cohort(3_000);
    let material = Material::make(name, &site_ids(&data));
    let permit = material.permit(&format!("P-{name}"), &[]);
    let setup = Setup {
        min_group_size: Some(1),
        allow_min_max: true,
        ..setup
    };
    SecuredFederation::start(&data, &material, &setup, &[permit])
}

/// [`HEAVY`], spelled apart by `tag` so that the audit trails tell its
/// runs apart.
fn heavy(tag: &str) -> String {
    HEAVY.replace("AS top", &format!("AS top_{tag}"))
}

/// Each of `sites` recorded how query `sql` ended there as `decision`,
/// with its elapsed time, and is no longer busy with it: it uses under a
/// quarter of a core over the second that follows.
async fn ended_everywhere(fed: &SecuredFederation, sql: &str, sites: &[&str], decision: &str) {
    let query_id = fed
        .query_id_of(sql)
        .unwrap_or_else(|| panic!("the coordinator recorded {sql}"));
    for site in sites {
        let ends = fed
            .subplan_ends(site, &query_id, Duration::from_secs(2))
            .await;
        let end = ends
            .last()
            .unwrap_or_else(|| panic!("site {site} recorded no end of {query_id}"));
        assert_eq!(end["decision"], decision, "site {site}: {end}");
        assert!(end["elapsed_ms"].as_u64().is_some(), "site {site}: {end}");
    }
    for site in sites {
        let busy = cpu_share(fed.pid(site), Duration::from_secs(1)).await;
        assert!(
            busy < 0.25,
            "site {site} still uses {busy:.2} of a core after {query_id} ended"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_killed_mid_query_is_named_within_three_seconds() {
    let mut fed = start("chaos-kill");
    let connection = connect_analyst(&fed.uri).await;
    let sql = heavy("kill");
    let sent = sql.clone();
    let query = tokio::spawn(async move { connection.query(&sent).await });
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
    // The other sites were cancelled, say so, and stopped working.
    ended_everywhere(&fed, &sql, &["lu", "kr"], "cancelled").await;
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

/// An analyst who hangs up mid-query (the client's call dropped, as a
/// closed notebook or a killed script does) stops the query, and every
/// site stops its work within a second and records the subplan as
/// cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_who_hangs_up_stops_every_site() {
    let fed = start("chaos-hangup");
    let connection = connect_analyst(&fed.uri).await;
    let sql = heavy("hangup");
    let sent = sql.clone();
    let query = tokio::spawn(async move { connection.query(&sent).await });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!query.is_finished(), "the query is still running");
    query.abort();
    ended_everywhere(&fed, &sql, &["lu", "us", "kr"], "cancelled").await;
    drop(fed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_site_is_named_long_before_the_site_timeout() {
    let fed = start("chaos-stop");
    let connection = connect_analyst(&fed.uri).await;
    let query = tokio::spawn(async move { connection.query(&heavy("stop")).await });
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

/// Timeouts, a restart and the row bound, in one federation: the
/// coordinator's timeout names a site and stops all of them; a killed
/// site, restarted from its config, answers the next query; a site that
/// is slow past its own `subplan_timeout_secs` is named and stops; a
/// cross product stops at a site's `max_intermediate_rows` with a
/// `ResourceExhausted` that names the bound but not the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_restarts_and_the_row_bound() {
    let mut fed = start_with(
        "chaos-slow",
        Setup {
            site_timeout_secs: Some(4),
            ..Setup::default()
        },
    );
    let cheap = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 ORDER BY 1";
    let connection = connect_analyst(&fed.uri).await;
    let columns = |r: ihdsi_cli::client::QueryResult| -> Vec<_> {
        r.batches.iter().map(|b| b.columns().to_vec()).collect()
    };
    let expected = columns(connection.query(cheap).await.expect("answered"));

    // The coordinator's own timeout: named, and every site stops.
    let sql = heavy("coordinator_timeout");
    let started = Instant::now();
    let err = connection
        .query(&sql)
        .await
        .expect_err("timed out")
        .to_string();
    assert!(err.contains("did not answer within 4 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(8), "{err}");
    ended_everywhere(&fed, &sql, &["lu", "us", "kr"], "cancelled").await;

    // A killed site fails the next query by name; restarted, it answers.
    fed.processes
        .site_processes
        .get_mut("us")
        .expect("us")
        .kill()
        .expect("kill us");
    let err = connection
        .query(cheap)
        .await
        .expect_err("us is down")
        .to_string();
    assert!(err.contains("site 'us'"), "{err}");
    fed.processes
        .restart_site("us", |c| c.resources.subplan_timeout_secs = 2)
        .expect("restart us");
    let again = connection
        .query(cheap)
        .await
        .expect("answered after the restart");
    assert_eq!(
        columns(again),
        expected,
        "the restarted site answers as before"
    );

    // A slow site, past its own time limit: named, and it stops.
    let sql = heavy("site_timeout");
    let err = connection
        .query(&sql)
        .await
        .expect_err("us stops it")
        .to_string();
    assert!(err.contains("site 'us' did not answer within 2 s"), "{err}");
    ended_everywhere(&fed, &sql, &["us"], "timed_out").await;
    ended_everywhere(&fed, &sql, &["lu", "kr"], "cancelled").await;

    a_cross_product_stops_at_the_row_bound(&mut fed, &connection).await;
    let again = connection.query(cheap).await.expect("still serving");
    assert_eq!(columns(again), expected);
    drop(fed);
}

/// A cross product past a site's row bound stops there, at once, with
/// the bound named but neither its value nor the site.
async fn a_cross_product_stops_at_the_row_bound(
    fed: &mut SecuredFederation,
    connection: &ihdsi_cli::client::Connection,
) {
    fed.processes
        .restart_site("lu", |c| c.resources.max_intermediate_rows = 1_000_000)
        .expect("restart lu");
    let sql = heavy("rows");
    let started = Instant::now();
    let err = connection
        .query(&sql)
        .await
        .expect_err("row bound")
        .to_string();
    assert!(
        err.contains("resource limit max_intermediate_rows"),
        "{err}"
    );
    assert!(
        !err.contains("1000000"),
        "the site's own value is not told: {err}"
    );
    assert!(!err.contains("'lu'"), "which site is not told: {err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    ended_everywhere(fed, &sql, &["lu"], "failed").await;
}

/// One analyst cannot hold every slot: past `max_queries_per_analyst` a
/// query is refused at once with `ResourceExhausted` naming the bound,
/// and the slot comes back when the running query ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_the_analysts_bound_are_refused_by_name() {
    let mut fed = start("chaos-busy");
    fed.processes
        .restart_coordinator(|c| c.resources.max_queries_per_analyst = 1)
        .expect("restart the coordinator");
    let uri = fed.processes.uri.clone();
    let connection = connect_analyst(&uri).await;
    let running = tokio::spawn(async move { connection.query(&heavy("busy")).await });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = connect_analyst(&uri).await;
    let cheap = "SELECT count(*) AS n FROM person";
    let err = second.query(cheap).await.expect_err("busy").to_string();
    assert!(err.contains("max_queries_per_analyst = 1"), "{err}");
    assert!(err.contains("ResourceExhausted"), "{err}");
    running.abort();
    let _ = running.await;
    let mut answered = false;
    for _ in 0..50 {
        if second.query(cheap).await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the slot came back when the first query ended");
    drop(fed);
}

/// The coordinator SIGKILLed while a dp query it has charged is at the
/// sites: after a restart from its config the ledger still holds that
/// charge (the next query's remaining budget counts it), and every audit
/// chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_in_a_dp_query_loses_no_charge() {
    let mut fed = start_with(
        "chaos-ledger",
        Setup {
            dp_budget: Some(10.0),
            ..Setup::default()
        },
    );
    let remaining = |r: &ihdsi_cli::client::QueryResult| -> f64 {
        r.schema.metadata()[ihdsi_engine::protocol::metadata::RHO_REMAINING]
            .parse()
            .expect("rho")
    };
    let connection = connect_analyst(&fed.uri).await;
    let first = connection
        .query("SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1")
        .await
        .expect("answered");
    let before = remaining(&first);
    let ledger_lines = || {
        std::fs::read_to_string(fed.dir.join("audit").join("budget.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let charged = ledger_lines();

    // The second query is charged, then held at a frozen site.
    signal(fed.pid("kr"), "-STOP");
    let uri = fed.uri.clone();
    let inflight = tokio::spawn(async move {
        let c = connect_analyst(&uri).await;
        c.query("SELECT race_concept_id, count(*) AS n FROM person GROUP BY 1")
            .await
    });
    let waited = Instant::now();
    while ledger_lines() == charged {
        assert!(waited.elapsed() < Duration::from_secs(20), "never charged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fed.processes
        .coordinator
        .kill()
        .expect("kill -9 the coordinator");
    fed.processes.coordinator.wait().expect("reap");
    signal(fed.pid("kr"), "-CONT");
    assert!(inflight.await.expect("task").is_err(), "nobody answers it");

    fed.processes
        .restart_coordinator(|_| {})
        .expect("restart the coordinator");
    let connection = connect_analyst(&fed.processes.uri).await;
    let third = connection
        .query("SELECT year_of_birth / 10 * 10 AS decade, count(*) AS n FROM person GROUP BY 1")
        .await
        .expect("answered after the restart");
    let per_release = 0.1;
    let after = remaining(&third);
    assert!(
        (before - 2.0 * per_release - after).abs() < 1e-9,
        "remaining {before} before, {after} after two more charges"
    );
    for trail in std::iter::once(fed.coordinator_trail())
        .chain(["lu", "us", "kr"].iter().map(|s| fed.site_trail(s)))
    {
        let (ok, out) = verify_trail(&trail);
        assert!(ok, "{}: {out}", trail.display());
    }
    drop(fed);
}

/// The demo keeps its state from one start to the next and stops cleanly
/// on SIGTERM: a dp query's charge is still spent after a restart, the
/// coordinator's audit trail goes on (and verifies) across it, and
/// `--fresh` starts with the whole budget again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_state_across_restarts_and_stops_on_sigterm() {
    use ihdsi_tests::process::{DemoProcess, PASSWORD};
    let data = cohort(3_000);
    let run = std::env::temp_dir().join(format!("ihdsi-demo-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    let dp = ["--privacy", "dp", "--budget", "1"];
    let remaining = |demo: &DemoProcess| {
        let uri = demo.uri.clone();
        async move {
            let credentials = ihdsi_cli::client::Credentials::Password {
                user: ihdsi_cli::demo::DEMO_USER.into(),
                password: PASSWORD.into(),
            };
            let c = ihdsi_cli::client::Connection::connect(&uri, &credentials)
                .await
                .expect("connect");
            let r = c
                .query("SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1")
                .await
                .expect("answered");
            r.schema.metadata()[ihdsi_engine::protocol::metadata::RHO_REMAINING]
                .parse::<f64>()
                .expect("rho")
        }
    };
    let trail = run.join("audit").join("coordinator.jsonl");
    let mut demo = DemoProcess::start_at(&data, &run, &dp);
    let first = remaining(&demo).await;
    let status = demo
        .terminate(Duration::from_secs(20))
        .expect("exits on SIGTERM");
    assert!(status.success(), "a clean exit: {status:?}");
    let records = SecuredFederation::records(&trail).len();
    assert!(records >= 3, "the first run's query is on the trail");

    let mut demo = DemoProcess::start_at(&data, &run, &dp);
    let second = remaining(&demo).await;
    assert!(
        (first - 0.1 - second).abs() < 1e-8,
        "the charge survived the restart: {first} then {second}"
    );
    assert!(
        demo.terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    assert!(
        SecuredFederation::records(&trail).len() > records,
        "the trail goes on"
    );
    let (ok, out) = verify_trail(&trail);
    assert!(ok, "{out}");

    let fresh: Vec<&str> = dp.iter().copied().chain(["--fresh"]).collect();
    let demo = DemoProcess::start_at(&data, &run, &fresh);
    let again = remaining(&demo).await;
    assert!(
        (again - first).abs() < 1e-8,
        "--fresh starts with the whole budget: {again} vs {first}"
    );
    drop(demo);
}
