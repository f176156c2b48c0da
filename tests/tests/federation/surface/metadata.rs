//! Catalog metadata over Flight SQL, checked with the Rust
//! `FlightSqlServiceClient` against the schemas the specification prescribes.

use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
};
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use ihdsi_tests::{cohort, federation, fetch_checked, policy};
use tonic::transport::Channel;

async fn fetch(
    mut client: FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> (SchemaRef, Vec<RecordBatch>) {
    let (schema, batches) = fetch_checked(&mut client, info).await;
    (std::sync::Arc::new(schema), batches)
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let col = batch.column_by_name(column).expect(column);
    let a = col.as_any().downcast_ref::<StringArray>().expect("utf8");
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

type Client = FlightSqlServiceClient<Channel>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalogs_schemas_tables_and_types_have_the_specified_shapes() {
    let data = cohort(6_000);
    let fed = federation(&data, policy(10, false), policy(10, false)).await;
    let client = ihdsi_tests::connect(&fed.uri).await.client();
    catalogs_and_schemas(&client).await;
    tables_with_their_schemas(&client).await;
    table_types_and_xdbc_types(&client).await;
    keys_updates_and_sql_info(&client).await;
    let qualified = ihdsi_tests::ask(&fed.uri, "SELECT count(*) AS n FROM ihdsi.omop.person")
        .await
        .expect("qualified names resolve");
    assert_eq!(qualified.num_rows(), 1);
    fed.shutdown().await;
}

/// One catalog, `ihdsi`, with one schema, `omop`.
async fn catalogs_and_schemas(client: &Client) {
    let (schema, batches) = fetch(
        client.clone(),
        client.clone().get_catalogs().await.expect("catalogs"),
    )
    .await;
    assert_eq!(schema, CommandGetCatalogs {}.into_builder().schema());
    assert_eq!(strings(&batches[0], "catalog_name"), vec!["ihdsi"]);
    let all = CommandGetDbSchemas {
        catalog: None,
        db_schema_filter_pattern: None,
    };
    let (schema, batches) = fetch(
        client.clone(),
        client
            .clone()
            .get_db_schemas(all.clone())
            .await
            .expect("schemas"),
    )
    .await;
    assert_eq!(schema, all.into_builder().schema());
    assert_eq!(strings(&batches[0], "db_schema_name"), vec!["omop"]);
}

/// Every table, each with its Arrow schema (columns carry their OMOP
/// descriptions), and a filtered listing.
async fn tables_with_their_schemas(client: &Client) {
    let tables = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    };
    let (schema, batches) = fetch(
        client.clone(),
        client
            .clone()
            .get_tables(tables.clone())
            .await
            .expect("tables"),
    )
    .await;
    assert_eq!(schema, tables.into_builder().schema());
    let names = strings(&batches[0], "table_name");
    assert_eq!(names.len(), 12, "{names:?}");
    let person = names
        .iter()
        .position(|n| n == "person")
        .expect("person listed");
    let ipc = batches[0]
        .column_by_name("table_schema")
        .expect("table_schema");
    let ipc = ipc.as_any().downcast_ref::<BinaryArray>().expect("binary");
    let person_schema = try_schema_from_ipc_buffer(ipc.value(person)).expect("ipc schema");
    assert!(person_schema.field_with_name("site").is_ok());
    assert!(
        person_schema
            .field_with_name("person_id")
            .expect("person_id")
            .metadata()
            .contains_key("comment")
    );
    let filtered = CommandGetTables {
        catalog: Some("ihdsi".into()),
        db_schema_filter_pattern: Some("omop".into()),
        table_name_filter_pattern: Some("%occurrence".into()),
        table_types: vec!["TABLE".into()],
        include_schema: false,
    };
    let (_, batches) = fetch(
        client.clone(),
        client.clone().get_tables(filtered).await.expect("filtered"),
    )
    .await;
    assert_eq!(strings(&batches[0], "table_name").len(), 4);
}

/// The table types, and the SQL types a driver maps columns to.
async fn table_types_and_xdbc_types(client: &Client) {
    let (schema, batches) = fetch(
        client.clone(),
        client.clone().get_table_types().await.expect("types"),
    )
    .await;
    assert_eq!(schema, CommandGetTableTypes {}.into_builder().schema());
    assert_eq!(
        strings(&batches[0], "table_type"),
        vec!["TABLE", "VOCABULARY"]
    );
    let xdbc = CommandGetXdbcTypeInfo { data_type: None };
    let (_, batches) = fetch(
        client.clone(),
        client.clone().get_xdbc_type_info(xdbc).await.expect("xdbc"),
    )
    .await;
    assert_eq!(
        strings(&batches[0], "type_name"),
        vec![
            "BIGINT",
            "INTEGER",
            "DOUBLE",
            "VARCHAR",
            "DATE",
            "TIMESTAMP"
        ]
    );
}

/// Keys answer empty with their schemas, updates are refused, and
/// GetSqlInfo without ids lists every key.
async fn keys_updates_and_sql_info(client: &Client) {
    let pk = CommandGetPrimaryKeys {
        catalog: None,
        db_schema: None,
        table: "person".into(),
    };
    let (schema, batches) = fetch(
        client.clone(),
        client.clone().get_primary_keys(pk).await.expect("pk"),
    )
    .await;
    assert_eq!(schema.field(3).name(), "column_name");
    assert!(!schema.field(3).is_nullable());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let fk = CommandGetImportedKeys {
        catalog: None,
        db_schema: None,
        table: "person".into(),
    };
    let (schema, _) = fetch(
        client.clone(),
        client.clone().get_imported_keys(fk).await.expect("fk"),
    )
    .await;
    assert_eq!(schema.fields().len(), 13);
    assert_eq!(
        schema.field(12).data_type(),
        &datafusion::arrow::datatypes::DataType::UInt8
    );
    let update = client
        .clone()
        .execute_update("DELETE FROM person".into(), None)
        .await
        .expect_err("read-only");
    assert!(update.to_string().contains("read-only"), "{update}");
    let info = client.clone().get_sql_info(vec![]).await.expect("sql info");
    let (_, batches) = fetch(client.clone(), info).await;
    let keys = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    assert!(
        keys >= 40,
        "GetSqlInfo with no ids returns every key; got {keys}"
    );
}
