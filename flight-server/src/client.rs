//! A Flight SQL client for `ihdsi query`, the demo and the tests.

use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use futures::TryStreamExt;
use tonic::transport::Endpoint;

use crate::error::{Result, ServerError};

/// A query result as the analyst receives it.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The schema announced in FlightInfo (with `ihdsi.*` metadata).
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// The suppressed-group count from the schema metadata.
    pub fn suppressed_groups(&self) -> u64 {
        self.schema
            .metadata()
            .get(ihdsi_engine::coordinator::metadata::SUPPRESSED)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// `grpc://host:port` → `http://host:port` (and `grpc+tls` → `https`).
pub fn http_uri(uri: &str) -> Result<String> {
    if let Some(rest) = uri.strip_prefix("grpc+tls://") {
        return Ok(format!("https://{rest}"));
    }
    if let Some(rest) = uri
        .strip_prefix("grpc://")
        .or_else(|| uri.strip_prefix("grpc+tcp://"))
    {
        return Ok(format!("http://{rest}"));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(uri.to_string());
    }
    Err(ServerError::Client(format!(
        "invalid URI '{uri}': expected grpc://HOST:PORT"
    )))
}

/// The message of a failed call, without Rust error wrapping.
pub fn describe(e: &FlightError) -> String {
    match e {
        FlightError::Tonic(s) => format!("{} ({:?})", s.message(), s.code()),
        FlightError::Arrow(ArrowError::ExternalError(inner)) => {
            match inner.downcast_ref::<tonic::Status>() {
                Some(s) => format!("{} ({:?})", s.message(), s.code()),
                None => inner.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// Run one SQL statement against a coordinator.
pub async fn run_query(uri: &str, sql: &str) -> Result<QueryResult> {
    let endpoint = Endpoint::from_shared(http_uri(uri)?)
        .map_err(|e| ServerError::Client(format!("invalid URI '{uri}': {e}")))?
        .connect_timeout(Duration::from_secs(10));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ServerError::Client(format!("cannot connect to {uri}: {e}")))?;
    let mut client = FlightSqlServiceClient::new(channel);
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| ServerError::Client(describe(&e)))?;
    let schema = info
        .clone()
        .try_decode_schema()
        .map_err(|e| ServerError::Client(format!("invalid result schema: {e}")))?;
    let mut batches = Vec::new();
    for ep in info.endpoint {
        let Some(ticket) = ep.ticket else { continue };
        let stream = client
            .do_get(ticket)
            .await
            .map_err(|e| ServerError::Client(describe(&e)))?;
        let mut got: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| ServerError::Client(describe(&e)))?;
        batches.append(&mut got);
    }
    Ok(QueryResult {
        schema: std::sync::Arc::new(schema),
        batches,
    })
}
