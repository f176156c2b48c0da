//! A Flight SQL client for `ihdsi query`, `ihdsi shell`, the demo and the
//! tests: connect, log in, run statements, follow a query's progress.

use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, FlightInfo};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use futures::TryStreamExt;
use ihdsi_engine::SiteProgress;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use ihdsi_flight_server::coordinator::actions::{PROGRESS_ACTION, REQUEST_ID_HEADER};

use crate::error::{CliError, Result};
use ihdsi_flight_server::permits::PERMIT_HEADER;

/// A query result as the analyst receives it.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The schema announced in FlightInfo (with `ihdsi.*` metadata).
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// The suppressed-group count from the schema metadata, when the
    /// federation reports it (`privacy.report_suppressed`).
    pub fn suppressed_groups(&self) -> Option<u64> {
        self.schema
            .metadata()
            .get(ihdsi_engine::protocol::metadata::SUPPRESSED)
            .and_then(|v| v.parse().ok())
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
    Err(CliError::Client(format!(
        "invalid URI '{uri}': expected grpc://HOST:PORT"
    )))
}

/// The Flight SQL handshake with HTTP Basic credentials, as
/// `FlightSqlServiceClient::handshake` does it, but keeping the server's
/// status: its message is the reason ("invalid user name or password"),
/// which that client folds into a string of Rust error wrapping. Returns
/// the bearer token the server issued.
async fn login(
    channel: Channel,
    user: &str,
    password: &str,
) -> std::result::Result<String, String> {
    use arrow_flight::HandshakeRequest;
    use arrow_flight::flight_service_client::FlightServiceClient;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest::default()]));
    let value = format!("Basic {basic}")
        .parse()
        .map_err(|_| "the user name or password cannot be sent in a header".to_string())?;
    request.metadata_mut().insert("authorization", value);
    let response = FlightServiceClient::new(channel)
        .handshake(request)
        .await
        .map_err(|s| format!("{} ({:?})", s.message(), s.code()))?;
    response
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .ok_or_else(|| "the server issued no bearer token".to_string())
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

/// How a client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Log in through the handshake (HTTP Basic) and use the issued token.
    Password { user: String, password: String },
    /// A service-account or previously issued bearer token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
            Credentials::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Connection settings beyond the login.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// PEM of the CA that signed the coordinator's certificate, for
    /// `grpc+tls://` URIs.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Data permit (id or token), sent as the `x-ihdsi-permit` header.
    pub permit: Option<String>,
}

// A permit may be a whole token (a credential): `{:?}` only says whether
// one is set.
impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("tls_ca", &self.tls_ca)
            .field("permit", &self.permit.as_ref().map(|_| ".."))
            .finish()
    }
}

/// An authenticated Flight SQL connection to a coordinator.
#[derive(Debug, Clone)]
pub struct Connection {
    client: FlightSqlServiceClient<Channel>,
}

impl Connection {
    /// Connect to `uri` and log in.
    pub async fn connect(uri: &str, credentials: &Credentials) -> Result<Self> {
        Self::connect_with(uri, credentials, &ClientOptions::default()).await
    }

    /// Connect to `uri` with `options` and log in.
    pub async fn connect_with(
        uri: &str,
        credentials: &Credentials,
        options: &ClientOptions,
    ) -> Result<Self> {
        let mut endpoint = Endpoint::from_shared(http_uri(uri)?)
            .map_err(|e| CliError::Client(format!("invalid URI '{uri}': {e}")))?
            .connect_timeout(Duration::from_secs(10));
        if uri.starts_with("grpc+tls://") && options.tls_ca.is_none() {
            return Err(CliError::Client(format!(
                "{uri} is a TLS endpoint: pass --tls-ca (or IHDSI_TLS_CA) with the CA certificate that signed the coordinator's certificate"
            )));
        }
        if let Some(ca) = &options.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| {
                CliError::Client(format!("cannot read the CA file {}: {e}", ca.display()))
            })?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| CliError::Client(format!("TLS setup for {uri}: {e}")))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| CliError::Client(format!("cannot connect to {uri}: {e}")))?;
        let mut client = FlightSqlServiceClient::new(channel.clone());
        let token = match credentials {
            Credentials::Password { user, password } => {
                login(channel, user, password).await.map_err(|why| {
                    CliError::Client(format!("login to {uri} as '{user}' failed: {why}"))
                })?
            }
            Credentials::Token(token) => token.clone(),
        };
        client.set_token(token);
        if let Some(permit) = &options.permit {
            client.set_header(PERMIT_HEADER, permit.trim());
        }
        Ok(Self { client })
    }

    /// The same logged-in session, selecting the data permit `permit` (id
    /// or token) for the queries asked through the copy.
    pub fn with_permit(&self, permit: &str) -> Self {
        let mut client = self.client.clone();
        client.set_header(PERMIT_HEADER, permit.trim());
        Self { client }
    }

    /// The underlying Flight SQL client (authenticated).
    pub fn client(&self) -> FlightSqlServiceClient<Channel> {
        self.client.clone()
    }

    /// Run one SQL statement.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        self.query_tagged(sql, None).await
    }

    /// Run one SQL statement, tagged with `request_id` so that
    /// [`Connection::progress`] can follow it.
    pub async fn query_tagged(&self, sql: &str, request_id: Option<&str>) -> Result<QueryResult> {
        let mut client = self.client.clone();
        if let Some(id) = request_id {
            client.set_header(REQUEST_ID_HEADER, id);
        }
        let info = client
            .execute(sql.to_string(), None)
            .await
            .map_err(|e| CliError::Client(describe(&e)))?;
        let schema = info
            .clone()
            .try_decode_schema()
            .map_err(|e| CliError::Client(format!("invalid result schema: {e}")))?;
        let batches = fetch_with(&mut client, info).await?;
        Ok(QueryResult {
            schema: std::sync::Arc::new(schema),
            batches,
        })
    }

    /// `DoGet` every endpoint of `info` on this connection.
    pub async fn fetch(&self, info: FlightInfo) -> Result<Vec<RecordBatch>> {
        fetch_with(&mut self.client.clone(), info).await
    }

    /// Per-site progress of the query tagged `request_id`.
    pub async fn progress(&self, request_id: &str) -> Result<Vec<SiteProgress>> {
        let action = Action {
            r#type: PROGRESS_ACTION.into(),
            body: request_id.as_bytes().to_vec().into(),
        };
        let mut client = self.client.clone();
        let results: Vec<arrow_flight::Result> = client
            .do_action(action)
            .await
            .map_err(|e| CliError::Client(describe(&e)))?
            .try_collect()
            .await
            .map_err(|s| CliError::Client(describe(&FlightError::Tonic(Box::new(s)))))?;
        let Some(first) = results.first() else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&first.body)
            .map_err(|e| CliError::Client(format!("malformed progress report: {e}")))
    }
}

async fn fetch_with(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for ep in info.endpoint {
        let Some(ticket) = ep.ticket else { continue };
        let stream = client
            .do_get(ticket)
            .await
            .map_err(|e| CliError::Client(describe(&e)))?;
        let mut got: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| CliError::Client(describe(&e)))?;
        batches.append(&mut got);
    }
    Ok(batches)
}

/// Connect, log in and run one SQL statement.
pub async fn run_query(uri: &str, credentials: &Credentials, sql: &str) -> Result<QueryResult> {
    run_query_with(uri, credentials, &ClientOptions::default(), sql).await
}

/// [`run_query`] with connection options.
pub async fn run_query_with(
    uri: &str,
    credentials: &Credentials,
    options: &ClientOptions,
    sql: &str,
) -> Result<QueryResult> {
    Connection::connect_with(uri, credentials, options)
        .await?
        .query(sql)
        .await
}
