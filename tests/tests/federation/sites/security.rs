//! Issue 5's definition of done, against real processes on loopback: every
//! site is an `ihdsi site` process and the coordinator an `ihdsi
//! coordinator` process, set up with `ihdsi certs init`, `ihdsi permit
//! keygen` and `ihdsi permit issue` (`ihdsi_tests::secured`). Each refusal
//! is checked for its reason, and each has a positive control on the same
//! federation, so a test fails if the refusal is for the wrong cause.

use std::path::Path;

use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use ihdsi_catalog::permit::{DenyRule, Purpose};
use ihdsi_cli::client::{ClientOptions, Connection, Credentials, QueryResult};
use ihdsi_engine::protocol::SubplanRequest;
use ihdsi_tests::cohort;
use ihdsi_tests::secured::{ANALYST, Material, PASSWORD, SecuredFederation, Setup, site_ids};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const CANONICAL: &str = "SELECT person.gender_concept_id AS k0, count(1) AS p0, count(DISTINCT person.person_id) AS ihdsi_patients FROM person GROUP BY person.gender_concept_id";

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A TLS client identity `name` from the certificate folder `certs`,
/// trusting the CA of `trust`.
fn identity(certs: &Path, name: &str, trust: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&trust.join("ca.pem"))))
        .identity(Identity::from_pem(
            read(&certs.join(format!("{name}.pem"))),
            read(&certs.join(format!("{name}.key"))),
        ))
}

/// `DoGet` a subplan straight at a site, bypassing the coordinator.
async fn direct(
    endpoint: &str,
    tls: Option<ClientTlsConfig>,
    req: &SubplanRequest,
) -> Result<Vec<RecordBatch>, String> {
    let mut ep = Endpoint::from_shared(endpoint.to_string()).map_err(|e| e.to_string())?;
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = ep.connect().await.map_err(|e| chain(&e))?;
    let mut client = FlightServiceClient::new(channel);
    let ticket = Ticket {
        ticket: req.to_ticket().into(),
    };
    let stream = client.do_get(ticket).await.map_err(|s| chain(&s))?;
    let frames = stream
        .into_inner()
        .map(|r| r.map_err(|s| FlightError::Tonic(Box::new(s))));
    FlightRecordBatchStream::new_from_flight_data(frames)
        .try_collect()
        .await
        .map_err(|e| e.to_string())
}

/// An error and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The site's log must show a refused TLS handshake for `reason` (tonic
/// logs them at debug level in its transport server, which `ihdsi site`
/// enables by default). A client may retry, so refusals are not counted.
fn refused_handshake(fed: &SecuredFederation, site: &str, reason: &str) {
    let seen = |log: &str| {
        log.lines()
            .any(|l| l.contains("tls accept error") && l.contains(reason))
    };
    // The client may see the connection fail before the site logs why.
    for _ in 0..100 {
        if seen(&fed.site_log(site)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "site {site} did not log a refused handshake for {reason}:\n{}",
        fed.site_log(site)
    );
}

fn subplan(sql: &str, analyst: &str, permit: Option<&str>) -> SubplanRequest {
    SubplanRequest {
        query_id: format!("direct-{}", sql.len()),
        analyst: analyst.into(),
        release: 0,
        sql: sql.into(),
        permit: permit.map(str::to_string),
        bounding: None,
        dominance: false,
    }
}

/// With the coordinator's own certificate, a subplan without a permit, or
/// under a permit held by someone else, is refused by the site.
async fn no_permit_or_another_holders_is_refused(
    lu: &str,
    coordinator: ClientTlsConfig,
    permit: &str,
) {
    let err = direct(
        lu,
        Some(coordinator.clone()),
        &subplan(CANONICAL, ANALYST, None),
    )
    .await
    .expect_err("no permit");
    assert!(
        err.contains("no data permit accompanies the subplan"),
        "{err}"
    );
    let err = direct(
        lu,
        Some(coordinator),
        &subplan(CANONICAL, "mallory", Some(permit)),
    )
    .await
    .expect_err("holder");
    assert!(err.contains("is held by dr.kim, not by mallory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_answers_only_a_pinned_coordinator_over_mutual_tls() {
    let data = cohort(3_000);
    let sites = site_ids(&data);
    let material = Material::make("transport", &sites);
    let stranger = Material::make("stranger", &sites);
    let fed = SecuredFederation::start(&data, &material, &Setup::default(), &[]);
    let permit = material.permit("T-TRANSPORT", &[]);
    let lu = fed.sites["lu"].clone();
    let good = subplan(CANONICAL, ANALYST, Some(&permit));
    let coordinator = || identity(&material.certs, "coordinator", &material.certs);

    // Positive control: the pinned coordinator certificate, a valid permit
    // and a canonical aggregate subplan are answered.
    let batches = direct(&lu, Some(coordinator()), &good)
        .await
        .expect("the coordinator's own certificate is answered");
    assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0);

    // Plaintext to the TLS port.
    let plain = lu.replace("https://", "http://");
    let err = direct(&plain, None, &good).await.expect_err("plaintext");
    assert!(err.contains("transport") || err.contains("http2"), "{err}");
    refused_handshake(&fed, "lu", "InvalidContentType");

    // A certificate from another CA (the stranger trusts our CA, so only
    // the site's check of the client certificate can refuse it).
    let foreign = identity(&stranger.certs, "coordinator", &material.certs);
    let err = direct(&lu, Some(foreign), &good)
        .await
        .expect_err("foreign CA");
    assert!(err.contains("transport"), "{err}");
    // The stranger's CA has the same name but another key: the site finds
    // the client certificate's signature bad.
    refused_handshake(&fed, "lu", "invalid peer certificate: BadSignature");

    // Our CA, but a site's certificate: not a coordinator this site answers.
    let sibling = identity(&material.certs, "site-us", &material.certs);
    let err = direct(&lu, Some(sibling), &good)
        .await
        .expect_err("sibling site");
    assert!(
        err.contains("is not a coordinator this site answers"),
        "{err}"
    );
    let trail = std::fs::read_to_string(fed.site_trail("lu")).expect("site trail");
    assert!(
        trail.contains("\"code\":\"tls.untrusted_client\""),
        "the refusal must be on the site's audit trail:\n{trail}"
    );

    // Bypassing the coordinator with its certificate and a valid permit: a
    // row-level subplan is still refused by the site's own admission.
    let rows = subplan(
        "SELECT person_id, year_of_birth FROM person",
        ANALYST,
        Some(&permit),
    );
    let err = direct(&lu, Some(coordinator()), &rows)
        .await
        .expect_err("row-level");
    assert!(
        err.contains("the subplan's SELECT must read directly from an aggregation"),
        "{err}"
    );

    no_permit_or_another_holders_is_refused(&lu, coordinator(), &permit).await;
    drop(fed);
}

async fn ask(
    uri: &str,
    tls_ca: Option<&Path>,
    permit: Option<&str>,
    sql: &str,
) -> Result<QueryResult, String> {
    let options = ClientOptions {
        tls_ca: tls_ca.map(Path::to_path_buf),
        permit: permit.map(str::to_string),
    };
    let credentials = Credentials::Password {
        user: ANALYST.into(),
        password: PASSWORD.into(),
    };
    let connection = Connection::connect_with(uri, &credentials, &options)
        .await
        .map_err(|e| e.to_string())?;
    connection.query(sql).await.map_err(|e| e.to_string())
}

/// Permits every site must refuse for itself, the table each is tried on,
/// and the site's reason: expired, forged, a purpose or a table the site
/// or the permit does not allow.
fn refused_permits(material: &Material) -> Vec<(&'static str, String, &'static str, &'static str)> {
    let forger_key = material.dir.join("forger.key");
    ihdsi_tests::secured::ihdsi_ok(&[
        "permit",
        "keygen",
        "--out",
        forger_key.to_str().expect("path"),
        "--name",
        "forger",
    ]);
    vec![
        (
            "expired",
            material.permit(
                "P-EXPIRED",
                &[("--valid-from", "2020-01-01T00:00:00Z"), ("--days", "30")],
            ),
            "person",
            "data permit P-EXPIRED expired at 2020-01-31T00:00:00Z",
        ),
        (
            "forged signature",
            material.permit_signed_by(&forger_key, "P-FORGED", &[]),
            "person",
            "signature does not verify against any access-body key this site trusts",
        ),
        (
            "purpose the site does not allow",
            material.permit("P-TEACH", &[("--purpose", "education")]),
            "person",
            "this site does not allow the purpose education (data permit P-TEACH)",
        ),
        (
            "table outside the permit",
            material.permit("P-PERSON", &[("--tables", "person")]),
            "condition_occurrence",
            "table condition_occurrence is outside data permit P-PERSON",
        ),
        (
            "narrowed by the site's policy",
            material.permit("P-PHARMA", &[("--commercial", "")]),
            "variant_occurrence",
            "does not allow table variant_occurrence for commercial scientific_research use (data permit P-PHARMA)",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_site_checks_the_permit_for_itself() {
    let data = cohort(3_000);
    let sites = site_ids(&data);
    let material = Material::make("permits", &sites);
    let setup = Setup {
        analyst_tls: true,
        allowed_purposes: vec![Purpose::ScientificResearch, Purpose::PublicHealth],
        deny: vec![DenyRule {
            tables: vec!["variant_occurrence".into()],
            purposes: Vec::new(),
            commercial_only: true,
        }],
        ..Setup::default()
    };
    let valid = material.permit("P-VALID", &[]);
    let fed = SecuredFederation::start(&data, &material, &setup, std::slice::from_ref(&valid));
    assert!(fed.uri.starts_with("grpc+tls://"), "{}", fed.uri);
    let ca = material.certs.join("ca.pem");
    let count = "SELECT site, count(*) AS persons FROM person GROUP BY site ORDER BY site";

    // The one permit the coordinator holds for the analyst is used without
    // being selected; the analyst-facing port is TLS.
    let answer = ask(&fed.uri, Some(&ca), None, count)
        .await
        .expect("valid permit");
    assert_eq!(answer.num_rows(), sites.len());
    let plaintext = fed.uri.replace("grpc+tls://", "grpc://");
    let err = ask(&plaintext, None, None, count)
        .await
        .expect_err("TLS port, plaintext client");
    assert!(err.contains("login to") && err.contains("failed"), "{err}");
    let err = ask(&fed.uri, None, None, count)
        .await
        .expect_err("TLS endpoint without a CA");
    assert!(err.contains("pass --tls-ca"), "{err}");

    for (what, token, table, reason) in refused_permits(&material) {
        let sql = format!("SELECT count(*) AS n FROM {table}");
        let err = ask(&fed.uri, Some(&ca), Some(&token), &sql)
            .await
            .expect_err(what);
        assert!(
            err.contains("refused the subplan"),
            "{what}: not a site refusal: {err}"
        );
        assert!(err.contains(reason), "{what}: {err}");
        // Positive control: the same query under the valid permit.
        ask(&fed.uri, Some(&ca), Some(&valid), &sql)
            .await
            .unwrap_or_else(|e| panic!("{what}: the control query failed: {e}"));
    }
    // The commercial permit still reads what the site does not narrow.
    let pharma = material.permit("P-PHARMA2", &[("--commercial", "")]);
    ask(
        &fed.uri,
        Some(&ca),
        Some(&pharma),
        "SELECT count(*) AS n FROM person",
    )
    .await
    .expect("narrowing withholds only the named tables");

    // Selecting a permit the analyst does not hold is refused at the
    // coordinator, and goes on its audit trail.
    let err = ask(&fed.uri, Some(&ca), Some("P-NOT-MINE"), count)
        .await
        .expect_err("unknown permit");
    assert!(
        err.contains("no data permit 'P-NOT-MINE' is held by dr.kim"),
        "{err}"
    );
    let trail = std::fs::read_to_string(fed.coordinator_trail()).expect("trail");
    assert!(trail.contains("\"code\":\"permit.selection\""), "{trail}");
    drop(fed);
}
