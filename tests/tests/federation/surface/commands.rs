//! The whole Flight SQL surface of the coordinator, command by command:
//! what is implemented answers with the exact Arrow schema the Flight SQL
//! specification (FlightSql.proto) prescribes; what is empty is empty with
//! that schema; what is refused by design says why, with the right code.
//! The coordinator is the shipped `ihdsi demo` binary, run as a process.

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::metadata::XdbcTypeInfoDataBuilder;
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionCancelQueryRequest, ActionEndTransactionRequest,
    CommandGetCrossReference, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetXdbcTypeInfo,
    CommandStatementSubstraitPlan, ProstMessageExt, SubstraitPlan,
};
use arrow_flight::{Action, Criteria, FlightDescriptor, FlightInfo};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use ihdsi_cli::client::{Connection, Credentials};
use ihdsi_cli::demo::DEMO_USER;
use ihdsi_tests::process::{self, DemoProcess};
use ihdsi_tests::{cohort, fetch_checked};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

/// The demo analyst of the test process.
fn login() -> Credentials {
    Credentials::Password {
        user: DEMO_USER.into(),
        password: process::PASSWORD.into(),
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// FlightSql.proto, `CommandGetPrimaryKeys`.
fn spec_primary_keys() -> Schema {
    Schema::new(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", true),
        utf8("table_name", false),
        utf8("column_name", false),
        utf8("key_name", true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// FlightSql.proto, `CommandGetImportedKeys` / `ExportedKeys` / `CrossReference`.
fn spec_foreign_keys() -> Schema {
    Schema::new(vec![
        utf8("pk_catalog_name", true),
        utf8("pk_db_schema_name", true),
        utf8("pk_table_name", false),
        utf8("pk_column_name", false),
        utf8("fk_catalog_name", true),
        utf8("fk_db_schema_name", true),
        utf8("fk_table_name", false),
        utf8("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        utf8("fk_key_name", true),
        utf8("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

/// The FlightInfo schema, checked against every DoGet batch; returns rows.
async fn shape(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> (Schema, usize) {
    let (schema, batches) = fetch_checked(client, info).await;
    (schema, batches.iter().map(|b| b.num_rows()).sum())
}

/// A logged-in connection, its Flight SQL client and bearer token, and a
/// plain Flight client to send raw actions with that token.
async fn clients(
    demo: &DemoProcess,
) -> (
    Connection,
    FlightSqlServiceClient<Channel>,
    String,
    FlightServiceClient<Channel>,
) {
    let connection = Connection::connect(&demo.uri, &login())
        .await
        .expect("login");
    let client = connection.client();
    let token = client.token().expect("logged in").clone();
    let raw = FlightServiceClient::new(
        tonic::transport::Endpoint::from_shared(demo.uri.replacen("grpc", "http", 1))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
    );
    (connection, client, token, raw)
}

/// A raw call carrying the bearer token.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

fn expect_code<T: std::fmt::Debug>(
    what: &str,
    outcome: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) {
    let status = outcome.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(status.message().contains(needle), "{what}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_flight_sql_command_answers_as_specified_or_says_why_not() {
    let demo = DemoProcess::start(&cohort(6_000));
    let (connection, mut client, token, mut raw) = clients(&demo).await;

    // Implemented metadata: schemas from the specification's builders.
    let info = client.get_sql_info(vec![]).await.expect("sql info");
    let (schema, rows) = shape(&mut client, info).await;
    let spec = CommandGetSqlInfo { info: vec![] }
        .into_builder(
            &arrow_flight::sql::metadata::SqlInfoDataBuilder::new()
                .build()
                .expect("empty"),
        )
        .schema();
    assert_eq!(&schema, spec.as_ref());
    assert!(rows >= 40, "{rows} SqlInfo keys");
    let xdbc = CommandGetXdbcTypeInfo { data_type: None };
    let info = client.get_xdbc_type_info(xdbc).await.expect("xdbc");
    let (schema, rows) = shape(&mut client, info).await;
    let spec = xdbc
        .into_builder(&XdbcTypeInfoDataBuilder::new().build().expect("empty"))
        .schema();
    assert_eq!(&schema, spec.as_ref());
    assert_eq!(schema.fields().len(), 19, "GetXdbcTypeInfo has 19 columns");
    assert_eq!(rows, 6);

    // Keys: empty, with the specification's schemas.
    let (catalog, db_schema, table) = (
        Some("ihdsi".to_string()),
        Some("omop".to_string()),
        "person",
    );
    let pk = CommandGetPrimaryKeys {
        catalog: catalog.clone(),
        db_schema: db_schema.clone(),
        table: table.into(),
    };
    let info = client.get_primary_keys(pk).await.expect("pk");
    assert_eq!(shape(&mut client, info).await, (spec_primary_keys(), 0));
    let fk = CommandGetImportedKeys {
        catalog: catalog.clone(),
        db_schema: db_schema.clone(),
        table: table.into(),
    };
    let info = client.get_imported_keys(fk).await.expect("imported");
    assert_eq!(shape(&mut client, info).await, (spec_foreign_keys(), 0));
    let fk = CommandGetExportedKeys {
        catalog: catalog.clone(),
        db_schema: db_schema.clone(),
        table: table.into(),
    };
    let info = client.get_exported_keys(fk).await.expect("exported");
    assert_eq!(shape(&mut client, info).await, (spec_foreign_keys(), 0));
    let xref = CommandGetCrossReference {
        pk_catalog: catalog.clone(),
        pk_db_schema: db_schema.clone(),
        pk_table: "person".into(),
        fk_catalog: catalog,
        fk_db_schema: db_schema,
        fk_table: "condition_occurrence".into(),
    };
    let info = client
        .get_cross_reference(xref)
        .await
        .expect("cross reference");
    assert_eq!(shape(&mut client, info).await, (spec_foreign_keys(), 0));

    // Read-only: updates, ingestion, transactions and savepoints are refused.
    let update = client
        .execute_update("DELETE FROM person".into(), None)
        .await;
    assert!(format!("{update:?}").contains("read-only"), "{update:?}");
    let begin = client.begin_transaction().await;
    assert!(format!("{begin:?}").contains("read-only"), "{begin:?}");
    let action = |kind: &str, body: Vec<u8>| Action {
        r#type: kind.into(),
        body: body.into(),
    };
    let end = ActionEndTransactionRequest {
        transaction_id: b"t".to_vec().into(),
        action: 1,
    };
    expect_code(
        "EndTransaction",
        raw.do_action(authed(
            action("EndTransaction", end.as_any().encode_to_vec()),
            &token,
        ))
        .await,
        Code::PermissionDenied,
        "read-only",
    );
    let savepoint = ActionBeginSavepointRequest {
        transaction_id: b"t".to_vec().into(),
        name: "s".into(),
    };
    expect_code(
        "BeginSavepoint",
        raw.do_action(authed(
            action("BeginSavepoint", savepoint.as_any().encode_to_vec()),
            &token,
        ))
        .await,
        Code::PermissionDenied,
        "read-only",
    );

    // Unimplemented by design, each with its reason.
    let substrait = CommandStatementSubstraitPlan {
        plan: Some(SubstraitPlan {
            plan: vec![0u8].into(),
            version: "0.1".into(),
        }),
        transaction_id: None,
    };
    expect_code(
        "Substrait",
        raw.get_flight_info(authed(
            FlightDescriptor::new_cmd(substrait.as_any().encode_to_vec()),
            &token,
        ))
        .await,
        Code::Unimplemented,
        "send SQL",
    );
    for kind in ["SetSessionOptions", "GetSessionOptions", "CloseSession"] {
        expect_code(
            kind,
            raw.do_action(authed(action(kind, vec![]), &token)).await,
            Code::Unimplemented,
            "no session options",
        );
    }
    #[allow(deprecated)]
    let cancel = ActionCancelQueryRequest {
        info: vec![].into(),
    };
    expect_code(
        "CancelQuery",
        raw.do_action(authed(
            action("CancelQuery", cancel.as_any().encode_to_vec()),
            &token,
        ))
        .await,
        Code::Unimplemented,
        "nothing left to cancel",
    );
    expect_code(
        "unknown action",
        raw.do_action(authed(action("Reticulate", vec![]), &token))
            .await,
        Code::Unimplemented,
        "unknown action",
    );
    expect_code(
        "ListFlights",
        raw.list_flights(authed(Criteria::default(), &token)).await,
        Code::Unimplemented,
        "",
    );

    // ListActions names the standard actions and ihdsi's progress action.
    let listed: Vec<String> = raw
        .list_actions(authed(arrow_flight::Empty {}, &token))
        .await
        .expect("ListActions")
        .into_inner()
        .map_ok(|a| a.r#type)
        .try_collect()
        .await
        .expect("actions");
    for kind in [
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "ihdsi.progress",
    ] {
        assert!(listed.iter().any(|l| l == kind), "{kind} not in {listed:?}");
    }

    // The coordinator still answers queries after all of that.
    let after = connection
        .query("SELECT count(DISTINCT person_id) AS n FROM person")
        .await
        .expect("query");
    assert_eq!(after.num_rows(), 1);
}

/// `ihdsi.progress` reports each site's state to the analyst who asked, and
/// to nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_progress_is_reported_per_site_to_its_own_analyst_only() {
    use ihdsi_engine::SiteState;

    let demo = DemoProcess::start(&cohort(6_000));
    let analyst = Connection::connect(&demo.uri, &login())
        .await
        .expect("login");
    let other = Connection::connect(&demo.uri, &Credentials::Token(demo.service_token.clone()))
        .await
        .expect("service login");
    let id = "7f1c2a4e-progress-test";
    analyst
        .query_tagged(
            "SELECT site, count(DISTINCT person_id) AS n FROM person GROUP BY site",
            Some(id),
        )
        .await
        .expect("query");
    let lines = analyst.progress(id).await.expect("progress");
    let sites: Vec<(&str, SiteState)> = lines.iter().map(|l| (l.site.as_str(), l.state)).collect();
    assert_eq!(
        sites,
        vec![
            ("kr", SiteState::Answered),
            ("lu", SiteState::Answered),
            ("us", SiteState::Answered)
        ]
    );
    assert!(
        other.progress(id).await.expect("poll").is_empty(),
        "another analyst sees nothing"
    );
    assert!(
        analyst
            .progress("unknown-id")
            .await
            .expect("poll")
            .is_empty()
    );

    // A result ticket is only good for the analyst who ran the query.
    let info = analyst
        .client()
        .execute(
            "SELECT count(DISTINCT person_id) AS n FROM person".into(),
            None,
        )
        .await
        .expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let stolen = other.client().do_get(ticket.clone()).await;
    let message = match stolen {
        Ok(_) => panic!("another analyst's ticket must be refused"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        message.contains("unknown or expired statement handle"),
        "{message}"
    );
    let own: Vec<_> = analyst
        .client()
        .do_get(ticket)
        .await
        .expect("own ticket")
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(own.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

/// `CancelFlightInfo` releases the result a FlightInfo announces: the
/// ticket is unknown afterwards, and a second cancel finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_flight_info_releases_the_announced_result() {
    use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};

    let demo = DemoProcess::start(&cohort(6_000));
    let (_connection, mut client, token, mut raw) = clients(&demo).await;
    let info = client
        .execute(
            "SELECT count(DISTINCT person_id) AS n FROM person".into(),
            None,
        )
        .await
        .expect("query");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let cancel = |info: FlightInfo| Action {
        r#type: "CancelFlightInfo".into(),
        body: CancelFlightInfoRequest { info: Some(info) }
            .encode_to_vec()
            .into(),
    };
    let mut status_of = async |info: FlightInfo| {
        let mut stream = raw
            .do_action(authed(cancel(info), &token))
            .await
            .expect("CancelFlightInfo")
            .into_inner();
        let body = stream
            .message()
            .await
            .expect("result")
            .expect("one result")
            .body;
        CancelFlightInfoResult::decode(body)
            .expect("decode")
            .status()
    };
    assert_eq!(status_of(info.clone()).await, CancelStatus::Cancelled);
    assert_eq!(status_of(info).await, CancelStatus::NotCancellable);
    let err = client.do_get(ticket).await.expect_err("released");
    assert!(
        err.to_string()
            .contains("unknown or expired statement handle"),
        "{err}"
    );
}
