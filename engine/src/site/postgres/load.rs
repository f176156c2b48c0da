//! `ihdsi load postgres`: create the OMOP CDM v5.4 tables a site hosts and
//! copy its Parquet files into them.
//!
//! Column names are the CDM's; types follow the CDM's PostgreSQL DDL
//! (`BIGINT`/`INTEGER` ids and concept ids, `NUMERIC` values, `DATE`,
//! `TIMESTAMP`, `VARCHAR`), with `NOT NULL` where the CDM requires a
//! value. The virtual `site` column is not stored: a site's database holds
//! only its own patients. The public vocabulary (`concept`) is loaded too
//! when given, so that subplans joining it run in the database. Rows travel with `COPY … FROM STDIN` in the text
//! format, one batch at a time.

use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::{SinkExt, StreamExt};
use tokio_postgres::Client;

use super::{connect, pg_error};
use crate::site::error::{Result, SiteError};
use ihdsi_catalog::schema;

/// Rows loaded per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// `(table, rows)` in the schema's order.
    pub tables: Vec<(String, u64)>,
}

/// The PostgreSQL type of a CDM column of Arrow type `t`.
pub fn pg_type(t: &DataType) -> Result<&'static str> {
    Ok(match t {
        DataType::Int64 => "BIGINT",
        DataType::Int32 => "INTEGER",
        DataType::Float64 => "NUMERIC",
        DataType::Utf8 => "VARCHAR(255)",
        DataType::Date32 => "DATE",
        DataType::Timestamp(..) => "TIMESTAMP",
        other => {
            return Err(SiteError::Internal(format!(
                "no PostgreSQL type for {other}"
            )));
        }
    })
}

/// `CREATE TABLE` for one CDM table.
pub fn ddl(table: &str, schema: &Schema) -> Result<String> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| column_ddl(f))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "CREATE TABLE {table} (\n  {}\n)",
        columns.join(",\n  ")
    ))
}

fn column_ddl(f: &Field) -> Result<String> {
    let null = if f.is_nullable() { "NULL" } else { "NOT NULL" };
    Ok(format!("{} {} {null}", f.name(), pg_type(f.data_type())?))
}

/// Load the site whose Parquet files are in `dir`, and the vocabulary
/// file if given, into the database at `url`, replacing tables of the same
/// names.
pub async fn load_site(dir: &Path, vocabulary: Option<&Path>, url: &str) -> Result<LoadReport> {
    let client = connect(url).await?;
    let ctx = SessionContext::new();
    let mut report = LoadReport::default();
    for table in schema::tables() {
        let file = match table.kind {
            schema::TableKind::Patient => dir.join(format!("{}.parquet", table.name)),
            schema::TableKind::Vocabulary => match vocabulary {
                Some(v) => v.to_path_buf(),
                None => continue,
            },
        };
        if !file.exists() {
            continue;
        }
        let file_schema = table.file_schema();
        let drop = format!("DROP TABLE IF EXISTS {}", table.name);
        client
            .batch_execute(&format!("{drop}; {}", ddl(table.name, &file_schema)?))
            .await
            .map_err(|e| pg_error("creating the tables", e))?;
        let df = ctx
            .read_parquet(file.display().to_string(), ParquetReadOptions::default())
            .await?;
        let names: Vec<&str> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let df = df.select_columns(&names)?;
        let rows = copy_into(&client, table.name, &names, df.execute_stream().await?).await?;
        tracing::info!(table = table.name, rows, "loaded into PostgreSQL");
        report.tables.push((table.name.to_string(), rows));
    }
    if report.tables.is_empty() {
        return Err(SiteError::Data(format!(
            "no <table>.parquet files found under {}",
            dir.display()
        )));
    }
    Ok(report)
}

async fn copy_into(
    client: &Client,
    table: &str,
    columns: &[&str],
    mut batches: datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<u64> {
    let sql = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    let sink = client
        .copy_in::<_, Bytes>(&sql)
        .await
        .map_err(|e| pg_error("starting COPY", e))?;
    futures::pin_mut!(sink);
    while let Some(batch) = batches.next().await {
        let text = copy_text(&batch?)?;
        sink.send(Bytes::from(text))
            .await
            .map_err(|e| pg_error("copying rows", e))?;
    }
    sink.finish()
        .await
        .map_err(|e| pg_error("finishing COPY", e))
}

/// `batch` in COPY's text format: tab-separated, `\N` for NULL, with
/// backslash, tab and line breaks escaped.
fn copy_text(batch: &RecordBatch) -> Result<String> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = String::new();
    // One buffer for every cell's text, not a String per cell.
    let mut cell = String::new();
    for row in 0..batch.num_rows() {
        for (i, (column, format)) in batch.columns().iter().zip(&formatters).enumerate() {
            if i > 0 {
                out.push('\t');
            }
            if column.is_null(row) {
                out.push_str("\\N");
                continue;
            }
            cell.clear();
            write!(cell, "{}", format.value(row))
                .map_err(|e| SiteError::Internal(format!("formatting a value: {e}")))?;
            for ch in cell.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn the_ddl_follows_the_cdm_and_copy_text_escapes() {
        let person = schema::table("person").expect("person").file_schema();
        let sql = ddl("person", &person).expect("ddl");
        assert!(sql.contains("person_id BIGINT NOT NULL"), "{sql}");
        assert!(sql.contains("birth_datetime TIMESTAMP NULL"), "{sql}");
        assert!(!sql.contains(" site "), "{sql}");

        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("x\ty\\z"), Some("a\nb")])),
                Arc::new(Date32Array::from(vec![Some(0), None])),
            ],
        )
        .expect("batch");
        assert_eq!(
            copy_text(&batch).expect("text"),
            "1\tx\\ty\\\\z\t1970-01-01\n\\N\ta\\nb\t\\N\n"
        );
    }
}
