//! `\d` and `\d TABLE`: the cohort schema as the coordinator announces it
//! through Flight SQL `GetTables` (with `include_schema`), so the shell
//! shows exactly what BI tools see.

use std::sync::Arc;

use arrow_flight::sql::CommandGetTables;
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::client::{Connection, describe};
use crate::error::{CliError, Result};

fn client_error(e: impl std::fmt::Display) -> CliError {
    CliError::Client(e.to_string())
}

/// `GetTables` with schemas, optionally for one table name.
async fn get_tables(connection: &Connection, name: Option<&str>) -> Result<Vec<RecordBatch>> {
    let mut client = connection.client();
    let query = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: name.map(str::to_string),
        table_types: vec![],
        include_schema: true,
    };
    let info = client
        .get_tables(query)
        .await
        .map_err(|e| client_error(describe(&e)))?;
    connection.fetch(info).await
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| client_error(format!("GetTables lacks {column}")))
}

fn schemas(batch: &RecordBatch) -> Result<Vec<Schema>> {
    let ipc = batch
        .column_by_name("table_schema")
        .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
        .ok_or_else(|| client_error("GetTables lacks table_schema"))?;
    (0..ipc.len())
        .map(|i| try_schema_from_ipc_buffer(ipc.value(i)).map_err(client_error))
        .collect()
}

fn table(columns: Vec<(&str, Vec<String>)>) -> Result<String> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, _)| Field::new(*name, DataType::Utf8, false))
        .collect();
    let arrays = columns
        .into_iter()
        .map(|(_, values)| Arc::new(StringArray::from(values)) as Arc<dyn Array>)
        .collect();
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(client_error)?;
    Ok(pretty_format_batches(&[batch])
        .map_err(client_error)?
        .to_string())
}

/// `\d`: every table with its type and column count.
pub(super) async fn tables(connection: &Connection) -> Result<String> {
    let (mut names, mut types, mut widths) = (Vec::new(), Vec::new(), Vec::new());
    for batch in get_tables(connection, None).await? {
        let (n, t) = (
            strings(&batch, "table_name")?,
            strings(&batch, "table_type")?,
        );
        for (i, schema) in schemas(&batch)?.iter().enumerate() {
            names.push(n.value(i).to_string());
            types.push(t.value(i).to_string());
            widths.push(schema.fields().len().to_string());
        }
    }
    table(vec![("table", names), ("type", types), ("columns", widths)])
}

/// `\d TABLE`: the columns of one table, with their OMOP comments.
pub(super) async fn columns(connection: &Connection, name: &str) -> Result<String> {
    // The name filter is a LIKE pattern ('_' matches any character), so
    // pick the exact match among the answers.
    let mut found = None;
    for batch in get_tables(connection, Some(name)).await? {
        let names = strings(&batch, "table_name")?;
        let schemas = schemas(&batch)?;
        if let Some(i) = (0..names.len()).find(|&i| names.value(i).eq_ignore_ascii_case(name)) {
            found = schemas.into_iter().nth(i);
        }
    }
    let schema =
        found.ok_or_else(|| client_error(format!("no table named '{name}'; \\d lists them")))?;
    let fields = schema.fields();
    table(vec![
        ("column", fields.iter().map(|f| f.name().clone()).collect()),
        (
            "type",
            fields.iter().map(|f| f.data_type().to_string()).collect(),
        ),
        (
            "nullable",
            fields
                .iter()
                .map(|f| if f.is_nullable() { "yes" } else { "no" }.to_string())
                .collect(),
        ),
        (
            "comment",
            fields
                .iter()
                .map(|f| f.metadata().get("comment").cloned().unwrap_or_default())
                .collect(),
        ),
    ])
}
