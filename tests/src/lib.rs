//! Test harness: generated cohorts, real federations on loopback (in this
//! process, or the shipped `ihdsi demo` binary as a child process), the
//! centralized oracle, text-based query files and result comparison.
//!
//! Every federation started here is real: site Arrow Flight servers and the
//! coordinator's Flight SQL server on 127.0.0.1, queried through a Flight SQL
//! client. The oracle is one DataFusion session over the union of the same
//! Parquet files the sites read.

pub mod backends;
pub mod compare;
pub mod dp;
pub mod fuzz;
pub mod logs;
pub mod pinned;
pub mod planted;
pub mod postgres;
pub mod process;
pub mod queries;
pub mod secured;
pub mod serving;

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use datafusion::prelude::SessionContext;
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_cli::client::{Connection, Credentials};
use ihdsi_cli::demo::{DEMO_PASSWORD, DEMO_USER, Federation, demo_auth, start};
use ihdsi_cli::federation::site_folders;
use ihdsi_engine::site::{SiteData, register_tables};
use ihdsi_synthetic::{GenerateOptions, generate};

static GENERATE: Mutex<()> = Mutex::new(());

/// A generated three-site cohort of `persons`, shared by the tests of one
/// run (generation is deterministic, so reuse is safe).
pub fn cohort(persons: u64) -> PathBuf {
    generated(
        &format!("cohort-{persons}"),
        GenerateOptions {
            persons,
            ..GenerateOptions::default()
        },
    )
}

/// The cohort `options` describe (its `out` ignored), generated once per
/// test process into a folder of its own `name` and shared from there.
pub fn generated(name: &str, options: GenerateOptions) -> PathBuf {
    let _guard = GENERATE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::temp_dir()
        .join(format!("ihdsi-tests-{}", std::process::id()))
        .join(name);
    if !dir.join("concept.parquet").exists() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        generate(&GenerateOptions {
            out: tmp.clone(),
            ..options
        })
        .unwrap_or_else(|e| panic!("generate {name}: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap_or_else(|e| panic!("publish {name}: {e}"));
    }
    dir
}

/// Thresholds and MIN/MAX policy of a test federation, with the p%
/// dominance rule off, so that the oracle of a thresholded query is a plain
/// `HAVING count(DISTINCT person_id) >= k` (the rule has its own tests),
/// and withheld groups counted in the metadata, which the differential
/// suite checks against the oracle.
pub fn policy(min_group_size: u64, allow_min_max: bool) -> PrivacyPolicy {
    PrivacyPolicy {
        dominance_p: 0.0,
        report_suppressed: true,
        ..PrivacyPolicy::threshold(min_group_size, allow_min_max)
    }
}

/// Start a federation over `data` on free loopback ports, admitting the
/// demo analyst ([`analyst`]).
pub async fn federation(
    data: &Path,
    federation_policy: PrivacyPolicy,
    site_policy: PrivacyPolicy,
) -> Federation {
    let (auth, _) = demo_auth(DEMO_PASSWORD).expect("demo auth");
    start(data, 0, federation_policy, site_policy, &auth)
        .await
        .expect("start federation")
}

/// The demo analyst's credentials.
pub fn analyst() -> Credentials {
    Credentials::Password {
        user: DEMO_USER.into(),
        password: DEMO_PASSWORD.into(),
    }
}

/// A logged-in connection to the coordinator at `uri`.
pub async fn connect(uri: &str) -> Connection {
    Connection::connect(uri, &analyst())
        .await
        .expect("connect and log in")
}

/// Run `sql` as the demo analyst.
pub async fn ask(uri: &str, sql: &str) -> ihdsi_cli::Result<ihdsi_cli::client::QueryResult> {
    connect(uri).await.query(sql).await
}

/// The oracle: one session over the union of all sites' files, with the
/// binned statistics (`kaplan_meier`, `histogram`, …) computed on its rows.
pub async fn centralized(data: &Path) -> SessionContext {
    let ctx = SessionContext::new();
    ihdsi_planner::binned::register(&ctx);
    let sites: Vec<SiteData> = site_folders(data)
        .expect("site folders")
        .into_iter()
        .map(|(id, p)| SiteData {
            id,
            location: p.display().to_string(),
        })
        .collect();
    let vocab = data.join("concept.parquet").display().to_string();
    register_tables(&ctx, &sites, Some(&vocab))
        .await
        .expect("register oracle tables");
    ctx
}

/// Run `sql` on the oracle session and collect it; panics name the query.
pub async fn oracle_rows(
    ctx: &SessionContext,
    sql: &str,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    let df = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("oracle cannot plan {sql}: {e}"));
    df.collect()
        .await
        .unwrap_or_else(|e| panic!("oracle cannot run {sql}: {e}"))
}

/// Run each case of `cases` through `connection` and compare it with the
/// oracle's rows: one line per case that differs or fails.
pub async fn differential_failures(
    connection: &Connection,
    oracle: &SessionContext,
    cases: &[queries::Case],
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let expected = oracle_rows(oracle, &case.sql).await;
        match connection.query(&case.sql).await {
            Ok(got) => {
                if let Some(d) = compare::diff(&got.batches, &expected) {
                    failures.push(format!("{}: {d}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    failures
}

/// `DoGet` every endpoint of `info` as strict clients do (ADBC, the JDBC
/// driver): endpoints must carry no location, and every streamed batch must
/// have exactly the FlightInfo schema, nullability included. Returns that
/// schema and the batches.
pub async fn fetch_checked(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    info: arrow_flight::FlightInfo,
) -> (
    datafusion::arrow::datatypes::Schema,
    Vec<datafusion::arrow::array::RecordBatch>,
) {
    use futures::TryStreamExt;
    let schema = info.clone().try_decode_schema().expect("FlightInfo schema");
    let mut batches = Vec::new();
    for ep in info.endpoint {
        assert!(ep.location.is_empty(), "endpoints must not name a location");
        let got: Vec<datafusion::arrow::array::RecordBatch> = client
            .do_get(ep.ticket.expect("ticket"))
            .await
            .expect("DoGet")
            .try_collect()
            .await
            .expect("stream");
        for b in &got {
            assert_eq!(
                b.schema().as_ref(),
                &schema,
                "DoGet schema differs from FlightInfo"
            );
        }
        batches.extend(got);
    }
    (schema, batches)
}

/// `sql` as a prepared statement with `params` bound to `$1`, `$2`, … (or
/// `?`), executed and fetched through `connection`.
pub async fn prepared(
    connection: &Connection,
    sql: &str,
    params: &[i64],
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, String> {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut client = connection.client();
    let mut statement = client
        .prepare(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    let fields: Vec<Field> = (1..=params.len())
        .map(|i| Field::new(format!("${i}"), DataType::Int64, false))
        .collect();
    let columns = params
        .iter()
        .map(|v| std::sync::Arc::new(Int64Array::from(vec![*v])) as _)
        .collect();
    let values = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| e.to_string())?;
    statement
        .set_parameters(values)
        .map_err(|e| e.to_string())?;
    let info = statement.execute().await.map_err(|e| e.to_string())?;
    connection.fetch(info).await.map_err(|e| e.to_string())
}
