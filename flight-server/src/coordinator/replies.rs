//! Building Flight SQL replies: FlightInfo for a schema, the encoded
//! DoGet stream, the server's SqlInfo, and the fixed refusals.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status};

use super::types;

pub(super) type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

pub(super) static SQL_INFO: LazyLock<Option<SqlInfoData>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "ihdsi");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
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
