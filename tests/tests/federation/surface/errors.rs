//! Bad input gets a clear error naming the cause (and the site), and the
//! coordinator keeps serving.

use std::time::Duration;

use arrow_flight::Ticket;
use arrow_flight::flight_service_client::FlightServiceClient;
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_cli::federation::site_folders;
use ihdsi_engine::SiteEngine;
use ihdsi_engine::protocol::SubplanRequest;
use ihdsi_engine::site::SiteData;
use ihdsi_tests::queries::{Case, load};
use ihdsi_tests::serving::{serve_coordinator, serve_site};
use ihdsi_tests::{ask, cohort, federation, policy};
use tokio::sync::oneshot;

const HEALTHY: &str =
    "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id";

/// Run `case`, which must fail with the error it expects.
async fn expect_error(uri: &str, case: &Case) -> Result<(), String> {
    match ask(uri, &case.sql).await {
        Ok(r) => Err(format!(
            "expected an error matching {:?}, got {} rows",
            case.error,
            r.num_rows()
        )),
        Err(e) if case.error_matches(&e.to_string()) => {
            // The reason is told in the analyst's words: no planner or
            // schema internals, no Rust type names, no bug-report text.
            let message = e.to_string();
            let internal = [
                "Schema error",
                "Internal",
                "internal error",
                "bug report",
                "::",
                // Arrow's type names and Rust's debug text, where SQL's
                // words (DOUBLE, VARCHAR, CREATE TABLE) belong.
                "Utf8",
                "Float64",
                "Float32",
                "Int64",
                "Int32",
                "Some(",
                " { ",
            ];
            if let Some(w) = internal.iter().find(|w| message.contains(*w)) {
                return Err(format!("the refusal carries {w:?}: {message}"));
            }
            // A refusal of a construct cites its rule and attack number.
            let refusal = ["refused: ", "refused by privacy policy: ", "unsupported: "]
                .iter()
                .any(|p| message.contains(p));
            if refusal && !cites_a_rule(&message) {
                return Err(format!(
                    "the refusal cites no rule of docs/privacy.md: {message}"
                ));
            }
            Ok(())
        }
        Err(e) => Err(format!(
            "expected an error matching {:?}, got: {e}",
            case.error
        )),
    }
}

/// Whether `message` ends its reason with `(rule Ann: …; docs/privacy.md)`.
fn cites_a_rule(message: &str) -> bool {
    message.split("(rule A").skip(1).any(|rest| {
        rest.len() > 2
            && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && rest.contains("; docs/privacy.md)")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_queries_name_their_cause_and_the_coordinator_keeps_serving() {
    let data = cohort(6_000);
    let permissive = federation(&data, policy(10, true), policy(10, true)).await;
    let strict = federation(&data, policy(10, false), policy(10, false)).await;
    let cases = load("refused.slt");
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let uri = match case.connection.as_deref() {
            Some("strict") => &strict.uri,
            None => &permissive.uri,
            Some(other) => panic!("{}: no federation named {other}", case.name),
        };
        assert!(
            case.error.is_some(),
            "{}: not a `query error` case",
            case.name
        );
        if let Err(msg) = expect_error(uri, case).await {
            failures.push(format!("{}: {msg}", case.name));
        }
        if let Err(e) = ask(uri, HEALTHY).await {
            failures.push(format!(
                "{}: the coordinator stopped serving: {e}",
                case.name
            ));
        }
    }
    permissive.shutdown().await;
    strict.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A federation whose sites can be stopped one by one, with per-site policy.
pub(crate) struct Manual {
    pub(crate) uri: String,
    pub(crate) stops: Vec<(String, oneshot::Sender<()>)>,
    pub(crate) coordinator_stop: oneshot::Sender<()>,
}

pub(crate) async fn manual(
    site_policy: impl Fn(&str) -> PrivacyPolicy,
    federation_policy: PrivacyPolicy,
) -> Manual {
    let data = cohort(6_000);
    let vocab = data.join("concept.parquet").display().to_string();
    let mut stops = Vec::new();
    let mut entries = Vec::new();
    for (id, folder) in site_folders(&data).expect("sites") {
        let engine = SiteEngine::open_with(
            SiteData {
                id: id.clone(),
                location: folder.display().to_string(),
            },
            Some(&vocab),
            site_policy(&id),
        )
        .await
        .expect("site");
        let (tx, rx) = oneshot::channel::<()>();
        let entry = serve_site(&id, engine, async move {
            let _ = rx.await;
        })
        .await;
        stops.push((id, tx));
        entries.push(entry);
    }
    let (tx, rx) = oneshot::channel::<()>();
    let uri = serve_coordinator(entries, vocab, federation_policy, async move {
        let _ = rx.await;
    })
    .await;
    Manual {
        uri,
        stops,
        coordinator_stop: tx,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_that_is_down_is_named_and_the_coordinator_keeps_serving() {
    let mut fed = manual(|_| policy(1, false), policy(1, false)).await;
    ask(&fed.uri, HEALTHY)
        .await
        .expect("healthy federation answers");
    let (site, stop) = fed.stops.remove(0);
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = ask(&fed.uri, HEALTHY)
        .await
        .expect_err("a query needing a stopped site must fail")
        .to_string();
    assert!(
        err.contains(&format!("site '{site}' is unavailable")),
        "{err}"
    );
    let public = ask(&fed.uri, "SELECT count(*) AS n FROM concept")
        .await
        .expect("public tables still answer");
    assert_eq!(public.num_rows(), 1);
    let again = ask(&fed.uri, HEALTHY)
        .await
        .expect_err("still failing, not hanging")
        .to_string();
    assert!(again.contains(&site), "{again}");
    let _ = fed.coordinator_stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_that_refuses_is_named_with_its_reason() {
    let fed = manual(|id| policy(1, id != "lu"), policy(1, true)).await;
    let err = ask(
        &fed.uri,
        "SELECT gender_concept_id, max(year_of_birth) AS youngest FROM person GROUP BY 1",
    )
    .await
    .expect_err("lu refuses MIN/MAX")
    .to_string();
    assert!(err.contains("site 'lu' refused the subplan"), "{err}");
    assert!(err.contains("disabled by the site's policy"), "{err}");
    ask(&fed.uri, HEALTHY)
        .await
        .expect("the coordinator keeps serving");
    let _ = fed.coordinator_stop.send(());
}

/// Subplans a hostile or buggy coordinator could send, each with the words
/// of the site's refusal.
const HOSTILE_SUBPLANS: [(&str, &str); 11] = [
    (
        "SELECT * FROM person",
        "must read directly from an aggregation",
    ),
    (
        "SELECT person_id AS k0, count(*) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY person_id",
        "patient identifier",
    ),
    (
        "SELECT gender_concept_id AS k0, count(*) AS p0, count(*) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "subplan rejected",
    ),
    (
        "SELECT gender_concept_id AS k0, stddev(year_of_birth) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "partials must be",
    ),
    (
        "SELECT gender_concept_id AS k0, count(DISTINCT year_of_birth) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "COUNT(DISTINCT",
    ),
    (
        "SELECT gender_concept_id AS k0, array_agg(DISTINCT year_of_birth) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "ARRAY_AGG(DISTINCT",
    ),
    (
        "SELECT gender_concept_id AS k0, array_agg(year_of_birth) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "individual patients' values",
    ),
    (
        "SELECT gender_concept_id AS k0, count(DISTINCT race_concept_id) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "COUNT(DISTINCT",
    ),
    (
        "SELECT gender_concept_id AS k0, array_agg(DISTINCT race_concept_id) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "ARRAY_AGG(DISTINCT",
    ),
    (
        "SELECT gender_concept_id AS k0, sum(person_id) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person GROUP BY gender_concept_id",
        "person_id is used in an aggregate other than count",
    ),
    (
        "SELECT gender_concept_id AS k0, count(*) AS p0, count(DISTINCT person_id) AS ihdsi_patients FROM person WHERE person_id = 17 GROUP BY gender_concept_id",
        "person_id is used in a filter",
    ),
];

/// A site checks what it receives itself: a hostile or buggy coordinator
/// cannot make it release rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_refuses_non_canonical_subplans_sent_directly() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(1, true), policy(10, true)).await;
    let endpoint = fed.site_endpoints[0].1.clone();
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to site");
    let mut client = FlightServiceClient::new(channel);
    for (sql, needle) in HOSTILE_SUBPLANS {
        let req = SubplanRequest {
            query_id: "hostile".into(),
            analyst: "mallory".into(),
            release: 0,
            sql: sql.into(),
            permit: None,
            bounding: None,
            dominance: false,
        };
        let status = match client
            .do_get(Ticket {
                ticket: req.to_ticket().into(),
            })
            .await
        {
            Ok(_) => panic!("site accepted {sql}"),
            Err(s) => s,
        };
        assert!(
            status.message().contains(needle),
            "{sql}: {}",
            status.message()
        );
    }
    let bad = client
        .do_get(Ticket {
            ticket: b"not json".to_vec().into(),
        })
        .await
        .expect_err("malformed ticket");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("malformed subplan ticket"));
    fed.shutdown().await;
}

/// The first site to fail fails the query at once, naming that site; the
/// requests still running at the other sites are dropped, not waited for,
/// and the query's progress says so (a request not started yet has no
/// line). `lu` refuses MIN/MAX while planning;
/// `kr` and `us` are still joining every measurement with every concept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_site_to_fail_cancels_the_others() {
    use ihdsi_engine::SiteState;

    let fed = manual(|id| policy(1, id != "lu"), policy(1, true)).await;
    let connection = ihdsi_tests::connect(&fed.uri).await;
    let id = "first-failure-cancels-the-rest";
    let err = connection
        .query_tagged(
            "SELECT max(m.value_as_number + c.concept_id) AS top FROM measurement m CROSS JOIN concept c",
            Some(id),
        )
        .await
        .expect_err("lu refuses MIN/MAX")
        .to_string();
    assert!(err.contains("site 'lu' refused the subplan"), "{err}");
    let lines = connection.progress(id).await.expect("progress");
    let states: Vec<(&str, SiteState)> = lines.iter().map(|l| (l.site.as_str(), l.state)).collect();
    // lu fails while planning, so a site whose request had not started yet
    // has no line at all; every line but lu's reads cancelled, and at least
    // one site was caught mid-join.
    assert!(states.contains(&("lu", SiteState::Failed)), "{states:?}");
    let others: Vec<&(&str, SiteState)> = states.iter().filter(|(s, _)| *s != "lu").collect();
    assert!(
        !others.is_empty() && others.iter().all(|(_, st)| *st == SiteState::Cancelled),
        "{states:?}"
    );
    ask(&fed.uri, HEALTHY)
        .await
        .expect("the coordinator keeps serving");
    let _ = fed.coordinator_stop.send(());
}

/// A query the analyst stops waiting for (the client drops its call, as
/// ADBC's cancel does) is dropped at the coordinator, and with it every
/// site request: the query's progress shows each site's request
/// `cancelled` unless it had already answered, never `running`. The query joins every
/// measurement with every pair of concepts (25 to 60 million rows per
/// site), so it is still running when
/// the client gives up; the poll waits for the sites' lines to settle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_the_analyst_drops_cancels_its_site_requests() {
    use ihdsi_engine::SiteState;

    let fed = manual(|_| policy(1, true), policy(1, true)).await;
    let connection = ihdsi_tests::connect(&fed.uri).await;
    let watcher = ihdsi_tests::connect(&fed.uri).await;
    let id = "the-analyst-gives-up";
    let slow = "SELECT max(m.value_as_number + c.concept_id + d.concept_id) AS top \
                FROM measurement m CROSS JOIN concept c CROSS JOIN concept d";
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        connection.query_tagged(slow, Some(id)),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the query finished before the client gave up"
    );
    drop(connection);
    let mut states = Vec::new();
    for _ in 0..100 {
        let lines = watcher.progress(id).await.expect("progress");
        states = lines
            .iter()
            .map(|l| (l.site.clone(), l.state))
            .collect::<Vec<_>>();
        if !states.is_empty() && states.iter().all(|(_, s)| *s != SiteState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A site that had already answered stays `answered`; every other
    // request was dropped with the query.
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(
        states
            .iter()
            .all(|(_, s)| matches!(s, SiteState::Cancelled | SiteState::Answered)),
        "{states:?}"
    );
    assert!(
        states.iter().any(|(_, s)| *s == SiteState::Cancelled),
        "{states:?}"
    );
    ask(&fed.uri, HEALTHY)
        .await
        .expect("the coordinator keeps serving");
    let _ = fed.coordinator_stop.send(());
}

/// A site drops a subplan nobody waits for any more: the coordinator
/// (here a direct client) starts a subplan that joins every measurement
/// with every triple of concepts, then drops its call; the site's count of
/// subplans it is working on goes back to 0 within a second, long before
/// the join could have finished: the joins yield to the scheduler at every
/// few batches (`ihdsi_engine::bounded`), so the dropped work stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_drops_a_subplan_nobody_reads() {
    let data = cohort(6_000);
    let (id, folder) = site_folders(&data).expect("sites").remove(0);
    let vocab = data.join("concept.parquet").display().to_string();
    let engine = SiteEngine::open_with(
        SiteData {
            id: id.clone(),
            location: folder.display().to_string(),
        },
        Some(&vocab),
        policy(1, true),
    )
    .await
    .expect("site");
    let watch = engine.clone();
    let entry = serve_site(&id, engine, std::future::pending()).await;
    let channel = tonic::transport::Endpoint::from_shared(entry.endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to site");
    let mut client = FlightServiceClient::new(channel);
    let req = SubplanRequest {
        query_id: "abandoned".into(),
        analyst: "tester".into(),
        release: 0,
        sql: "SELECT max(m.value_as_number + c.concept_id + d.concept_id + e.concept_id) AS p0, count(DISTINCT m.person_id) AS ihdsi_patients FROM measurement AS m CROSS JOIN concept AS c CROSS JOIN concept AS d CROSS JOIN concept AS e".into(),
        permit: None,
        bounding: None,
        dominance: false,
    };
    let call = client.do_get(Ticket {
        ticket: req.to_ticket().into(),
    });
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::pin!(call);
        loop {
            tokio::select! {
                answer = &mut call => panic!("the subplan finished or failed at once: {:?}", answer.map(|_| ())),
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if watch.subplans_running() == 1 {
                        break;
                    }
                }
            }
        }
        // Still working 300 ms later (admitted, inside the join), and the
        // call still open.
        tokio::select! {
            answer = &mut call => panic!("the subplan ended on its own: {:?}", answer.map(|_| ())),
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        assert_eq!(watch.subplans_running(), 1, "the site is not working on it");
    })
    .await;
    assert!(started.is_ok(), "the site never started the subplan");
    // The call was dropped with the block above.
    let dropped = std::time::Instant::now();
    while watch.subplans_running() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(1),
            "the site kept working on a subplan nobody reads"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_confined_to_some_sites_needs_only_those() {
    let mut fed = manual(|_| policy(1, false), policy(1, false)).await;
    let oracle = ihdsi_tests::centralized(&cohort(6_000)).await;
    let (site, stop) = fed
        .stops
        .iter()
        .position(|(id, _)| id == "kr")
        .map(|i| fed.stops.remove(i))
        .expect("site kr");
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sql in [
        "SELECT gender_concept_id, count(*) AS n FROM person WHERE site = 'lu' GROUP BY 1",
        "SELECT count(*) AS n FROM person WHERE site IN ('lu', 'us') AND year_of_birth > 1950",
        "SELECT d.drug_concept_id, count(DISTINCT p.person_id) AS n FROM person p JOIN drug_exposure d ON d.person_id = p.person_id WHERE p.site = 'us' GROUP BY 1",
    ] {
        let got = ask(&fed.uri, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: the query does not need {site}: {e}"));
        let expected = ihdsi_tests::oracle_rows(&oracle, sql).await;
        assert_eq!(
            ihdsi_tests::compare::diff(&got.batches, &expected),
            None,
            "{sql}"
        );
        let contacted = &got.schema.metadata()["ihdsi.sites"];
        assert!(!contacted.contains("kr"), "{sql}: contacted {contacted}");
    }
    // Rows that can come from any site still need every site.
    for sql in [
        "SELECT count(*) AS n FROM person",
        "SELECT count(*) AS n FROM person WHERE site = 'lu' OR year_of_birth > 1950",
        "SELECT count(*) AS n FROM person p LEFT JOIN (SELECT person_id FROM death WHERE site = 'lu') d ON d.person_id = p.person_id",
    ] {
        let err = ask(&fed.uri, sql).await.expect_err(sql).to_string();
        assert!(err.contains(&format!("site '{site}'")), "{sql}: {err}");
    }
    let _ = fed.coordinator_stop.send(());
}
