//! A replay of the calls the Arrow Flight SQL JDBC driver makes when
//! DBeaver connects, browses the navigator and runs a query.
//!
//! The JDBC driver cannot be installed on this machine, so its call sequence
//! is replayed with the Rust Flight SQL client, taken from the driver's
//! public source (apache/arrow-java, `flight/flight-sql-jdbc-core`):
//!
//! 1. `ArrowFlightSqlClientHandler` + `ClientAuthenticationUtils`: with
//!    `user`/`password`, a `Handshake` with `authorization: Basic …`; the
//!    bearer token is read from the `authorization` response header and
//!    sent on every later call.
//! 2. `ArrowDatabaseMetadata`: on first use, `GetSqlInfo` with no ids (all
//!    of them), cached; DBeaver reads the product name and version, the
//!    identifier quote string and the keyword lists from it.
//! 3. The navigator: `getCatalogs` → GetCatalogs, `getSchemas` →
//!    GetDbSchemas, `getTableTypes` → GetTableTypes, `getTables` →
//!    GetTables, `getColumns` → GetTables with `include_schema = true`,
//!    `getPrimaryKeys`/`getImportedKeys`/`getExportedKeys` → the key
//!    commands (empty here, but they must answer with the right shape).
//! 4. `ArrowFlightMetaImpl.prepareAndExecute`: every statement, even
//!    `Statement.executeQuery`, is `DoAction(CreatePreparedStatement)` →
//!    `GetFlightInfo(CommandPreparedStatementQuery)` → `DoGet` per endpoint
//!    → `DoAction(ClosePreparedStatement)`.
//!
//! The coordinator is the shipped `ihdsi demo` binary, run as a process.
//!
//! The driver opens a new connection for any endpoint that names a
//! location, so endpoints must carry none (apache/arrow-java#1232).

use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetTables, SqlInfo,
};
use datafusion::arrow::array::{Array, Int32Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use ihdsi_cli::demo::DEMO_USER;
use ihdsi_tests::process::{self, DemoProcess};
use ihdsi_tests::{cohort, fetch_checked};
use tonic::transport::Channel;

/// DoGet every endpoint of `info`, as the driver's `FlightStream` does.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    fetch_checked(client, info).await.1
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .unwrap_or_else(|| panic!("{name} is not a utf8 column"))
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

type Client = FlightSqlServiceClient<Channel>;

fn key_command<T>(make: impl FnOnce(Option<String>, Option<String>, String) -> T) -> T {
    make(Some("ihdsi".into()), Some("omop".into()), "person".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dbeaver_connects_browses_and_queries_through_the_jdbc_call_sequence() {
    let demo = DemoProcess::start(&cohort(6_000));
    let channel = tonic::transport::Endpoint::from_shared(demo.uri.replacen("grpc", "http", 1))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = FlightSqlServiceClient::new(channel);

    // 1. Handshake (Basic) → bearer token from the response header.
    client
        .handshake(DEMO_USER, process::PASSWORD)
        .await
        .expect("handshake");
    assert!(
        client.token().is_some(),
        "token read from the authorization header"
    );
    sql_info_has_what_dbeaver_reads(&mut client).await;
    navigator_answers_every_call(&mut client).await;
    keys_answer_empty_with_their_shape(&mut client).await;
    execute_query_prepares_fetches_and_closes(&mut client).await;
    placeholders_bind_like_the_written_values(&mut client).await;
}

/// Step 2: GetSqlInfo with no ids: every key the server knows.
async fn sql_info_has_what_dbeaver_reads(client: &mut Client) {
    let info = client.get_sql_info(vec![]).await.expect("GetSqlInfo");
    let sql_info = fetch(client, info).await;
    let ids: Vec<u32> = sql_info
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .expect("info_name uint32");
            a.values().to_vec()
        })
        .collect();
    for needed in [
        SqlInfo::FlightSqlServerName,
        SqlInfo::FlightSqlServerVersion,
        SqlInfo::FlightSqlServerReadOnly,
        SqlInfo::SqlIdentifierQuoteChar,
        SqlInfo::SqlKeywords,
        SqlInfo::SqlNumericFunctions,
        SqlInfo::SqlStringFunctions,
        SqlInfo::SqlAnsi92SupportedLevel,
        SqlInfo::FlightSqlServerTransaction,
    ] {
        assert!(
            ids.contains(&(needed as u32)),
            "GetSqlInfo lacks {needed:?}"
        );
    }
}

/// Step 3: The navigator: catalogs, schemas, table types, tables and columns.
async fn navigator_answers_every_call(client: &mut Client) {
    let catalogs = client.get_catalogs().await.expect("GetCatalogs");
    let catalogs = fetch(client, catalogs).await;
    assert_eq!(column(&catalogs[0], "catalog_name").value(0), "ihdsi");
    let schemas = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("ihdsi".into()),
            db_schema_filter_pattern: None,
        })
        .await
        .expect("GetDbSchemas");
    let schemas = fetch(client, schemas).await;
    assert_eq!(column(&schemas[0], "db_schema_name").value(0), "omop");
    let types = client.get_table_types().await.expect("GetTableTypes");
    assert_eq!(rows(&fetch(client, types).await), 2);
    let tables = client
        .get_tables(CommandGetTables {
            catalog: Some("ihdsi".into()),
            db_schema_filter_pattern: Some("omop".into()),
            table_name_filter_pattern: Some("%".into()),
            table_types: vec!["TABLE".into(), "VIEW".into()],
            include_schema: false,
        })
        .await
        .expect("GetTables");
    let tables = fetch(client, tables).await;
    assert_eq!(rows(&tables), 11, "the patient tables");
    assert!(tables[0].column_by_name("table_schema").is_none());
    let columns = client
        .get_tables(CommandGetTables {
            catalog: Some("ihdsi".into()),
            db_schema_filter_pattern: Some("omop".into()),
            table_name_filter_pattern: Some("person".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .expect("GetTables for getColumns");
    let columns = fetch(client, columns).await;
    assert_eq!(rows(&columns), 1);
    assert!(columns[0].column_by_name("table_schema").is_some());
}

/// Step 3: (cont.) getPrimaryKeys, getImportedKeys, getExportedKeys: empty.
async fn keys_answer_empty_with_their_shape(client: &mut Client) {
    let pk = key_command(|catalog, db_schema, table| CommandGetPrimaryKeys {
        catalog,
        db_schema,
        table,
    });
    let info = client.get_primary_keys(pk).await.expect("GetPrimaryKeys");
    assert_eq!(rows(&fetch(client, info).await), 0);
    let imported = key_command(|catalog, db_schema, table| CommandGetImportedKeys {
        catalog,
        db_schema,
        table,
    });
    let info = client
        .get_imported_keys(imported)
        .await
        .expect("GetImportedKeys");
    assert_eq!(rows(&fetch(client, info).await), 0);
    let exported = key_command(|catalog, db_schema, table| CommandGetExportedKeys {
        catalog,
        db_schema,
        table,
    });
    let info = client
        .get_exported_keys(exported)
        .await
        .expect("GetExportedKeys");
    assert_eq!(rows(&fetch(client, info).await), 0);
}

/// Step 4: Statement.executeQuery: prepare → GetFlightInfo → DoGet → close.
async fn execute_query_prepares_fetches_and_closes(client: &mut Client) {
    let sql = "SELECT site, count(DISTINCT person_id) AS patients FROM person GROUP BY site ORDER BY site";
    let mut prepared = client.prepare(sql.into(), None).await.expect("prepare");
    let dataset = prepared.dataset_schema().expect("dataset schema").clone();
    assert_eq!(
        prepared.parameter_schema().expect("params").fields().len(),
        0
    );
    let info = prepared.execute().await.expect("GetFlightInfo(prepared)");
    let announced = info.clone().try_decode_schema().expect("schema");
    assert_eq!(
        dataset.fields(),
        announced.fields(),
        "prepare and FlightInfo announce the same columns"
    );
    let result = fetch(client, info).await;
    let sites: Vec<&str> = (0..result[0].num_rows())
        .map(|i| column(&result[0], "site").value(i))
        .collect();
    assert_eq!(sites, vec!["kr", "lu", "us"]);
    prepared.close().await.expect("ClosePreparedStatement");
}

/// Step 5: PreparedStatement with `?` parameters (the JDBC placeholder):
/// prepare, read the parameter schema, bind with DoPut, execute, fetch,
/// close; the answer equals the same statement with the values written.
async fn placeholders_bind_like_the_written_values(client: &mut Client) {
    let sql = "SELECT gender_concept_id, count(*) AS n FROM person WHERE year_of_birth < ? AND site <> ? GROUP BY gender_concept_id ORDER BY 1";
    let mut prepared = client.prepare(sql.into(), None).await.expect("prepare ?");
    let parameters = prepared.parameter_schema().expect("params").clone();
    let kinds: Vec<(&str, &DataType)> = parameters
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        kinds,
        vec![("$1", &DataType::Int32), ("$2", &DataType::Utf8)]
    );
    let values = RecordBatch::try_new(
        std::sync::Arc::new(parameters),
        vec![
            std::sync::Arc::new(Int32Array::from(vec![1960])),
            std::sync::Arc::new(StringArray::from(vec!["kr"])),
        ],
    )
    .expect("parameter batch");
    prepared.set_parameters(values).expect("bind");
    let info = prepared.execute().await.expect("GetFlightInfo(bound)");
    let bound = fetch(client, info).await;
    prepared.close().await.expect("ClosePreparedStatement");
    let written = sql.replacen('?', "1960", 1).replacen('?', "'kr'", 1);
    let info = client
        .execute(written, None)
        .await
        .expect("the same, written");
    let expected = fetch(client, info).await;
    let cells = |b: &[RecordBatch]| -> Vec<_> { b.iter().map(|b| b.columns().to_vec()).collect() };
    assert!(rows(&bound) > 0);
    assert_eq!(cells(&bound), cells(&expected));
}
