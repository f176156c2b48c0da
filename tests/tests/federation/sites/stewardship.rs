//! What a hospital's data steward relies on, against real processes: opted-
//! out persons never influence a result (whatever backend a site runs on:
//! the suite runs with one site inside PostgreSQL and one on Ballista), and
//! the audit trail survives a
//! `kill -9` of the coordinator mid-query while any tampering with it is
//! named by `ihdsi audit verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{SessionContext, col, lit};
use ihdsi_catalog::registry::SiteBackendKind;
use ihdsi_cli::federation::SiteHost;
use ihdsi_cli::federation::site_folders;
use ihdsi_tests::compare::diff;
use ihdsi_tests::process::signal;
use ihdsi_tests::queries::load;
use ihdsi_tests::secured::{
    ANALYST, Material, SecuredFederation, Setup, connect_analyst, ihdsi, site_ids,
};
use ihdsi_tests::{centralized, cohort, oracle_rows};

/// Persons who opt out: every person whose id is 3 modulo 7.
const OPTED_OUT: i64 = 3;

/// Each site's person ids that opted out.
async fn opted_out(data: &Path) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for (id, folder) in site_folders(data).expect("sites") {
        let ctx = SessionContext::new();
        let person = folder.join("person.parquet");
        let batches = ctx
            .read_parquet(person.to_str().expect("path"), Default::default())
            .await
            .expect("person")
            .filter((col("person_id") % lit(7_i64)).eq(lit(OPTED_OUT)))
            .expect("filter")
            .select_columns(&["person_id"])
            .expect("select")
            .collect()
            .await
            .expect("collect");
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .expect("Int64")
                    .values()
                    .to_vec()
            })
            .collect();
        assert!(!ids.is_empty(), "site {id} must have persons who opt out");
        out.insert(id, ids);
    }
    out
}

/// A copy of the cohort with the opted-out persons' rows physically
/// removed from every patient table: the oracle's data.
async fn without_opted_out(data: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join("cohort-without-opted-out");
    for (id, folder) in site_folders(data).expect("sites") {
        let target = copy.join(&id);
        std::fs::create_dir_all(&target).expect("mkdir");
        for entry in std::fs::read_dir(&folder).expect("site folder") {
            let file = entry.expect("entry").path();
            let ctx = SessionContext::new();
            let df = ctx
                .read_parquet(file.to_str().expect("path"), Default::default())
                .await
                .expect("read");
            let kept = df
                .filter((col("person_id") % lit(7_i64)).not_eq(lit(OPTED_OUT)))
                .expect("filter");
            let out = target.join(file.file_name().expect("name"));
            kept.write_parquet(
                out.to_str().expect("path"),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .expect("write");
        }
    }
    std::fs::copy(data.join("concept.parquet"), copy.join("concept.parquet")).expect("concept");
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_persons_never_change_a_result() {
    let data = cohort(6_000);
    let sites = site_ids(&data);
    let material = Material::make("opt-out", &sites);
    // `lu` runs inside PostgreSQL and `kr` on a Ballista cluster, each
    // named in its site.toml: the opt-out list must travel with the plan
    // into the database's SQL and to the cluster's executors.
    let pg = ihdsi_tests::postgres::start("opt-out").await;
    ihdsi_engine::site::postgres::load::load_site(
        &data.join("lu"),
        Some(&data.join("concept.parquet")),
        &pg.url(),
    )
    .await
    .expect("load lu");
    let postgres = SiteHost {
        backend: SiteBackendKind::Postgres,
        url: pg.url(),
    };
    let cluster = ihdsi_tests::backends::ballista_cluster().await;
    let ballista = SiteHost {
        backend: SiteBackendKind::Ballista,
        url: cluster.scheduler_url(),
    };
    let setup = Setup {
        min_group_size: Some(1),
        allow_min_max: true,
        opt_out: opted_out(&data).await,
        hosts: [("lu".to_string(), postgres), ("kr".to_string(), ballista)]
            .into_iter()
            .collect(),
        ..Setup::default()
    };
    let permit = material.permit("P-OPT-OUT", &[]);
    let fed = SecuredFederation::start(&data, &material, &setup, &[permit]);
    let oracle = centralized(&without_opted_out(&data, &material.dir).await).await;
    let everyone = centralized(&data).await;
    let connection = connect_analyst(&fed.uri).await;
    let cases = load("differential.slt");
    let (mut failures, mut influenced) = (Vec::new(), 0);
    for case in &cases {
        let expected = oracle_rows(&oracle, &case.sql).await;
        match connection.query(&case.sql).await {
            Ok(got) => {
                if let Some(d) = diff(&got.batches, &expected) {
                    failures.push(format!("{}: {d}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: federated query failed: {e}", case.name)),
        }
        if diff(&oracle_rows(&everyone, &case.sql).await, &expected).is_some() {
            influenced += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries see opted-out persons:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Control: the opted-out persons would have changed most answers.
    assert!(
        influenced * 2 > cases.len(),
        "only {influenced} of {} answers depend on the opted-out persons; the test would not notice a leak",
        cases.len()
    );
    assert!(
        cluster.jobs() >= cases.len(),
        "kr's subplans did not run on its Ballista cluster"
    );
    assert!(
        pg.log().contains("NOT IN ("),
        "lu's subplans did not reach PostgreSQL with the opt-out filter"
    );
    drop(fed);
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// `ihdsi audit verify` on `path`: (success, stdout).
fn verify(path: &Path) -> (bool, String) {
    let out = ihdsi(&["audit", "verify", path.to_str().expect("path")]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `lines` written to a copy of the trail (head file copied too).
fn tampered(trail: &Path, name: &str, lines: &[String], tail: &str) -> PathBuf {
    let copy = trail.with_file_name(format!("{name}.jsonl"));
    std::fs::write(&copy, format!("{}{tail}", lines.join("\n"))).expect("write copy");
    let head = |p: &Path| PathBuf::from(format!("{}.head", p.display()));
    std::fs::copy(head(trail), head(&copy)).expect("copy head");
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_survives_kill_9_and_names_the_first_tampered_line() {
    let data = cohort(3_000);
    let sites = site_ids(&data);
    let material = Material::make("audit", &sites);
    let permit = material.permit("P-AUDIT", &[]);
    let mut fed = SecuredFederation::start(&data, &material, &Setup::default(), &[permit]);
    let connection = connect_analyst(&fed.uri).await;
    connection
        .query("SELECT site, count(*) AS persons FROM person GROUP BY site")
        .await
        .expect("answered");
    connection
        .query("SELECT person_id FROM person")
        .await
        .expect_err("refused");
    kill_9_with_a_query_in_flight(&mut fed).await;

    let trail = fed.coordinator_trail();
    let written = lines(&trail);
    records_say_what_happened_and_nothing_more(&written, sites.len());
    let (ok, out) = verify(&trail);
    assert!(ok, "the trail written before kill -9 must verify: {out}");
    assert!(out.contains("7 records, chain intact"), "{out}");
    for site in &sites {
        let (ok, out) = verify(&fed.site_trail(site));
        assert!(ok, "site {site}: {out}");
    }
    tampering_is_found_at_its_first_line(&trail, &written);
    drop(fed);
}

/// Freeze one site so that a query is in flight at the coordinator, and
/// kill the coordinator with `kill -9` once the query is on record.
async fn kill_9_with_a_query_in_flight(fed: &mut SecuredFederation) {
    signal(fed.pid("kr"), "-STOP");
    let uri = fed.uri.clone();
    let inflight = tokio::spawn(async move {
        let c = connect_analyst(&uri).await;
        c.query("SELECT gender_concept_id, count(*) AS inflight_n FROM person GROUP BY gender_concept_id")
            .await
    });
    let trail = fed.coordinator_trail();
    let mut waited = 0;
    // Planned and on record as admitted (its `received` record comes
    // first, before planning).
    while !lines(&trail)
        .iter()
        .any(|l| l.contains("inflight_n") && l.contains("\"admitted\""))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(
            waited < 400,
            "the in-flight query never reached the audit trail"
        );
    }
    fed.processes
        .coordinator
        .kill()
        .expect("kill -9 the coordinator");
    fed.processes.coordinator.wait().expect("reap");
    signal(fed.pid("kr"), "-CONT");
    assert!(
        inflight.await.expect("task").is_err(),
        "the killed coordinator cannot answer"
    );
}

/// The seven records of the three queries, in order, with who asked,
/// under which permit and what was sent; no field that could hold a
/// result value or a per-site number.
fn records_say_what_happened_and_nothing_more(written: &[String], sites: usize) {
    let json = |l: &String| -> serde_json::Value { serde_json::from_str(l).expect("json") };
    let events: Vec<(String, String)> = written
        .iter()
        .map(|l| {
            let v = json(l);
            (
                v["event"].as_str().unwrap_or("").into(),
                v["decision"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("received", "received"),
        ("query", "admitted"),
        ("result", "answered"),
        ("received", "received"),
        ("query", "refused"),
        ("received", "received"),
        ("query", "admitted"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(events, expected, "{written:#?}");
    let received = json(&written[0]);
    assert_eq!(received["analyst"], ANALYST);
    assert_eq!(received["permit"], "P-AUDIT");
    assert_eq!(
        received["sql"],
        "SELECT site, count(*) AS persons FROM person GROUP BY site"
    );
    assert_eq!(received["sql_bytes"], 58);
    let first = json(&written[1]);
    assert_eq!(first["analyst"], ANALYST);
    assert_eq!(first["permit"], "P-AUDIT");
    assert_eq!(first["purpose"], "scientific_research");
    assert_eq!(
        first["subplans"][0]["sites"].as_array().map(Vec::len),
        Some(sites)
    );
    assert!(
        first["subplans"][0]["sql"]
            .as_str()
            .is_some_and(|s| s.contains("ihdsi_patients"))
    );
    assert_eq!(json(&written[4])["code"], "privacy.row_level");
    for l in written {
        for key in json(l).as_object().expect("object").keys() {
            assert!(
                AUDIT_FIELDS.contains(&key.as_str()),
                "unexpected audit field {key}"
            );
        }
    }
}

/// Every field an audit record may have: none can hold a result value or
/// a per-site number.
const AUDIT_FIELDS: [&str; 19] = [
    "analyst",
    "by",
    "code",
    "decision",
    "event",
    "hash",
    "permit",
    "prev",
    "purpose",
    "query_id",
    "reason",
    "released_rows",
    "sql",
    "sql_bytes",
    "sql_sha256",
    "seq",
    "subplans",
    "suppressed_groups",
    "time",
];

/// An edited, reordered, deleted, truncated or cut-short copy of `trail`
/// fails verification, naming the first line that is wrong.
fn tampering_is_found_at_its_first_line(trail: &Path, written: &[String]) {
    let mut edited = written.to_vec();
    edited[2] = edited[2].replace("\"answered\"", "\"failed\"");
    let mut reordered = written.to_vec();
    reordered.swap(2, 3);
    let mut deleted = written.to_vec();
    deleted.remove(2);
    let mut cut = written.to_vec();
    let half = cut[6].len() / 2;
    cut[6].truncate(half);
    let cases = [
        ("edited", tampered(trail, "edited", &edited, "\n"), 3),
        (
            "reordered",
            tampered(trail, "reordered", &reordered, "\n"),
            3,
        ),
        ("deleted", tampered(trail, "deleted", &deleted, "\n"), 3),
        ("truncated", tampered(trail, "truncated", &cut, ""), 7),
        (
            "tail deleted",
            tampered(trail, "tail", &written[..3], "\n"),
            4,
        ),
    ];
    for (what, copy, line) in cases {
        let (ok, out) = verify(&copy);
        assert!(!ok, "{what}: a tampered trail verified: {out}");
        assert!(out.contains(&format!(": line {line}: ")), "{what}: {out}");
    }
}

/// Persons per (year of birth, gender) cell, from the pooled oracle.
async fn cells(data: &Path) -> Vec<(i128, i128, i128)> {
    use ihdsi_tests::compare::{Cell, rows};
    let oracle = centralized(data).await;
    let batches = oracle_rows(
        &oracle,
        "SELECT CAST(year_of_birth AS BIGINT) AS y, CAST(gender_concept_id AS BIGINT) AS g, count(*) AS n FROM person GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    rows(&batches)
        .into_iter()
        .filter_map(|r| match (&r[0], &r[1], &r[2]) {
            (Cell::Int(y), Cell::Int(g), Cell::Int(n)) => Some((*y, *g, *n)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differencing_pair_is_flagged_on_the_audit_trail() {
    let data = cohort(3_000);
    let cells = cells(&data).await;
    let (ry, rg, rare_n) = *cells
        .iter()
        .find(|(_, _, n)| (1..10).contains(n))
        .expect("a year-and-gender cell with 1 to 9 persons");
    let (cy, cg, _) = *cells
        .iter()
        .find(|(_, _, n)| *n >= rare_n + 10)
        .expect("a year-and-gender cell with many persons");
    let material = Material::make("differencing", &site_ids(&data));
    let permit = material.permit("P-DIFF", &[]);
    let fed = SecuredFederation::start(&data, &material, &Setup::default(), &[permit]);
    let connection = connect_analyst(&fed.uri).await;
    let base = "SELECT count(DISTINCT person_id) AS n FROM person";
    let mut ids = Vec::new();
    for sql in [
        base.to_string(),
        format!("{base} WHERE NOT (year_of_birth = {ry} AND gender_concept_id = {rg})"),
        format!("{base} WHERE NOT (year_of_birth = {cy} AND gender_concept_id = {cg})"),
    ] {
        let answer = connection.query(&sql).await.expect("answered");
        assert_eq!(answer.num_rows(), 1, "{sql}");
        ids.push(answer.schema.metadata()["ihdsi.query_id"].clone());
    }
    let advisories: Vec<serde_json::Value> = lines(&fed.coordinator_trail())
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|v: &serde_json::Value| v["event"] == "advisory")
        .collect();
    assert_eq!(
        advisories.len(),
        1,
        "exactly the pair a few patients apart: {advisories:#?}"
    );
    assert_eq!(advisories[0]["code"], "differencing.suspected");
    assert_eq!(advisories[0]["query_id"], ids[1].as_str());
    assert_eq!(advisories[0]["earlier_query_id"], ids[0].as_str());
    let text = std::fs::read_to_string(fed.coordinator_trail()).expect("trail");
    assert!(
        !text.contains(&format!(":{}", 3_000 - rare_n)),
        "no released count on the trail"
    );
    drop(fed);
}
