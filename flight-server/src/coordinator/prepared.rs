//! Prepared statements, kept stateless: the handle *is* the statement.
//!
//! A handle is JSON holding the SQL and, once parameters are bound through
//! `DoPut`, their values as an Arrow IPC stream. Binding returns a new
//! handle (Flight SQL's `DoPutPreparedStatementResult`), so no server state
//! is created, nothing leaks when a client never closes, and any coordinator
//! replica can serve any handle. Values become literals before the query is
//! split, so the sites still receive plain SQL.

use std::sync::Arc;

use arrow_flight::IpcMessage;
use arrow_flight::SchemaAsIpc;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::status::to_status;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{ActionCreatePreparedStatementResult, DoPutPreparedStatementResult};
use futures::TryStreamExt;
use ihdsi_engine::Coordinator;

/// `ActionCreatePreparedStatementRequest`: plan once with placeholder
/// values (NULLs of the inferred types) to check the statement and derive
/// the dataset schema, and return a handle holding only the SQL.
pub async fn create(
    coordinator: &Coordinator,
    analyst: &str,
    sql: String,
) -> Result<ActionCreatePreparedStatementResult, Status> {
    let (params, schema) = coordinator
        .prepare(&sql, analyst)
        .await
        .map_err(|e| to_status(&e))?;
    Ok(ActionCreatePreparedStatementResult {
        prepared_statement_handle: Handle { sql, params: None }.encode(),
        dataset_schema: schema_bytes(&schema)?,
        parameter_schema: schema_bytes(&parameter_schema(&params))?,
    })
}

/// `DoPut(CommandPreparedStatementQuery)`: read the parameter batch and
/// return a new handle carrying the values.
pub async fn bind(
    handle: &[u8],
    frames: PeekableFlightDataStream,
) -> Result<DoPutPreparedStatementResult, Status> {
    let handle = Handle::decode(handle)?;
    let frames = frames.map_err(|s| FlightError::Tonic(Box::new(s)));
    let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(frames)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read parameter values: {e}")))?;
    let bound = Handle {
        sql: handle.sql,
        params: Some(encode_params(&batches)?),
    };
    Ok(DoPutPreparedStatementResult {
        prepared_statement_handle: Some(bound.encode()),
    })
}

/// The content of a prepared-statement handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handle {
    pub sql: String,
    /// One-row Arrow IPC stream of bound parameter values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<u8>>,
}

impl Handle {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("malformed prepared statement handle"))
    }

    /// The bound values, in parameter order (`$1`, `$2`, ...).
    pub fn values(&self) -> Result<Option<Vec<ScalarValue>>, Status> {
        let Some(ipc) = &self.params else {
            return Ok(None);
        };
        let reader = StreamReader::try_new(ipc.as_slice(), None)
            .map_err(|e| Status::invalid_argument(format!("bad parameter values: {e}")))?;
        let batches = reader
            .collect::<Result<Vec<RecordBatch>, _>>()
            .map_err(|e| Status::invalid_argument(format!("bad parameter values: {e}")))?;
        let Some(batch) = batches.into_iter().find(|b| b.num_rows() > 0) else {
            return Err(Status::invalid_argument("no parameter values were bound"));
        };
        let values = (0..batch.num_columns())
            .map(|c| ScalarValue::try_from_array(batch.column(c), 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(format!("bad parameter values: {e}")))?;
        Ok(Some(values))
    }
}

/// Serialise the first bound row as an IPC stream.
pub fn encode_params(batches: &[RecordBatch]) -> Result<Vec<u8>, Status> {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Status::invalid_argument("DoPut carried no parameter rows"))?;
    if batch.num_rows() > 1 {
        return Err(Status::invalid_argument(
            "bind exactly one row of parameter values; batches of parameter sets are not supported",
        ));
    }
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, batch.schema_ref())
            .map_err(|e| Status::internal(e.to_string()))?;
        w.write(batch)
            .map_err(|e| Status::internal(e.to_string()))?;
        w.finish().map_err(|e| Status::internal(e.to_string()))?;
    }
    Ok(out)
}

/// The parameter schema announced at prepare time: one nullable field per
/// positional parameter, typed where DataFusion can infer it.
pub fn parameter_schema(params: &[(String, DataType)]) -> Arc<Schema> {
    Arc::new(Schema::new(
        params
            .iter()
            .map(|(name, t)| Field::new(name, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A schema as the IPC bytes Flight SQL carries in action results.
pub fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?;
    let IpcMessage(bytes) = message;
    Ok(bytes)
}
