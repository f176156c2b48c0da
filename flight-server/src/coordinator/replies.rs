//! Building Flight SQL replies: FlightInfo for a schema, the encoded
//! DoGet stream, the server's SqlInfo, and the fixed refusals.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status};

use super::types;

pub(super) type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Function names advertised to JDBC/ODBC tools (what DataFusion provides).
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "ceil", "floor", "round", "trunc", "sqrt", "exp", "ln", "log", "log10", "power", "sign",
];
const STRING_FUNCTIONS: &[&str] = &[
    "lower", "upper", "length", "substr", "trim", "ltrim", "rtrim", "concat", "replace", "left",
    "right", "lpad", "rpad",
];
const DATETIME_FUNCTIONS: &[&str] = &[
    "date_part",
    "date_trunc",
    "extract",
    "now",
    "current_date",
    "to_date",
    "to_timestamp",
];
const KEYWORDS: &[&str] = &["EXPLAIN", "FILTER", "QUALIFY", "WITHIN"];

/// What `GetSqlInfo` reports: a read-only server with ANSI-92 entry-level
/// SQL, lowercase identifier folding, double-quote quoting, no DDL, no
/// transactions. JDBC reads these for `DatabaseMetaData`; Tableau needs them.
pub(super) static SQL_INFO: LazyLock<Option<SqlInfoData>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "ihdsi");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, 3i32); // lowercase
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, 0i32); // NULLs sort high
    b.append(SqlInfo::SqlKeywords, KEYWORDS);
    b.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    b.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    b.append(SqlInfo::SqlSystemFunctions, &[] as &[&str]);
    b.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportedGroupBy, 3i32); // unrelated, beyond select
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlSupportedGrammar, 3i32); // minimum, core
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 1i32); // entry
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32); // full
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlSupportedSubqueries, 7i32); // comparisons, EXISTS, IN
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(SqlInfo::SqlSupportedUnions, 3i32); // UNION, UNION ALL
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.build().ok()
});

pub(super) fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO
        .as_ref()
        .ok_or_else(|| Status::internal("SqlInfo could not be built"))
}

/// A FlightInfo announcing `schema`, with one endpoint (no location: clients
/// reuse their connection) whose ticket is `ticket`.
pub(super) fn info(
    schema: datafusion::arrow::datatypes::SchemaRef,
    ticket: Vec<u8>,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema.as_ref())
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(request.into_inner());
    Ok(Response::new(info))
}

pub(super) fn xdbc_types() -> Result<&'static arrow_flight::sql::metadata::XdbcTypeInfoData, Status>
{
    types::XDBC_TYPES
        .as_ref()
        .ok_or_else(|| Status::internal("type catalogue could not be built"))
}

pub(super) fn no_foreign_keys() -> Result<Response<DoGetStream>, Status> {
    let schema = types::foreign_keys_schema();
    Ok(Response::new(encode(
        Arc::clone(&schema),
        vec![types::empty(schema)],
    )))
}

pub(super) fn read_only() -> Status {
    Status::permission_denied(
        "ihdsi is read-only: updates, ingestion and transactions are refused; only SELECT queries run",
    )
}

pub(super) fn no_substrait() -> Status {
    Status::unimplemented(
        "Substrait plans are not accepted; send SQL, which the planner checks for disclosure control",
    )
}

/// The DoGet reply of a one-batch metadata result.
pub(super) fn one_batch(batch: RecordBatch) -> Response<DoGetStream> {
    Response::new(encode(batch.schema(), vec![batch]))
}

/// Stream `batches` as Flight data announcing exactly `schema`.
pub(super) fn encode(
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> DoGetStream {
    FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(|e| Status::internal(e.to_string()))
        .boxed()
}
