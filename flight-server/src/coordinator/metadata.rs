//! Catalog metadata for Flight SQL clients: the virtual cohort schema as
//! catalogs, schemas, tables and table types.
//!
//! Everything here describes the *virtual* schema (names, column types, the
//! `site` column, OMOP column comments in field metadata); no call reads
//! data. Result shapes come from arrow-flight's builders, which follow the
//! Flight SQL specification's schemas exactly (nullability included).

use arrow_flight::sql::metadata::{GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
};
use datafusion::arrow::array::RecordBatch;
use tonic::Status;

use ihdsi_catalog::schema::{self, TableKind};

use ihdsi_catalog::schema::{CATALOG_NAME as CATALOG, SCHEMA_NAME as SCHEMA};

fn status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("cannot build metadata: {e}"))
}

fn table_type(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Patient => "TABLE",
        TableKind::Vocabulary => "VOCABULARY",
    }
}

/// `GetCatalogs`.
pub fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut b: GetCatalogsBuilder = query.into_builder();
    b.append(CATALOG);
    b.build().map_err(status)
}

/// `GetDbSchemas`; a missing catalog filter means all catalogs.
pub fn db_schemas(query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut b: GetDbSchemasBuilder = query.into_builder();
    b.append(CATALOG, SCHEMA);
    b.build().map_err(status)
}

/// `GetTables`, with the Arrow schema of each table when asked.
pub fn tables(query: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut b: GetTablesBuilder = query.into_builder();
    for t in schema::tables() {
        b.append(
            CATALOG,
            SCHEMA,
            t.name,
            table_type(t.kind),
            t.schema.as_ref(),
        )
        .map_err(status)?;
    }
    b.build().map_err(status)
}

/// `GetTableTypes`.
pub fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    b.append("TABLE");
    b.append("VOCABULARY");
    b.build().map_err(status)
}
