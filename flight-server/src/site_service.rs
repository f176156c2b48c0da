//! The site's Arrow Flight service: `DoGet` with a subplan ticket.
//!
//! Every subplan is logged with its query id, analyst and SQL as it
//! arrives, and again when it ends (answered, refused, failed, cancelled or
//! timed out, with its elapsed time: `ihdsi_engine::site`). Result values
//! are never logged.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::tls::fingerprint;
use ihdsi_engine::SiteEngine;
use ihdsi_engine::protocol::{SiteFailure, SubplanRequest};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Arrow Flight front of one site.
#[derive(Debug, Clone)]
pub struct SiteService {
    engine: Arc<SiteEngine>,
    /// Fingerprints of the coordinator certificates answered (mutual TLS);
    /// `None` on a plaintext development site.
    trusted_clients: Option<Arc<[String]>>,
}

impl SiteService {
    pub fn new(engine: SiteEngine, trusted_clients: Option<Vec<String>>) -> Self {
        Self {
            engine: Arc::new(engine),
            trusted_clients: trusted_clients.map(Into::into),
        }
    }

    /// Put a refusal on the audit trail; if that fails, refuse generically.
    async fn record_refusal(&self, code: &str, status: &Status) -> Result<(), Status> {
        self.engine
            .record_refusal(code, status.message())
            .await
            .map_err(|e| SiteFailure::of(&e).status("-"))
    }

    /// Under mutual TLS, the client certificate (already chained to the
    /// federation CA by the handshake) must be a pinned coordinator's.
    fn check_client<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(trusted) = &self.trusted_clients else {
            return Ok(());
        };
        let site = self.engine.id();
        let presented = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| fingerprint(c.as_ref())));
        match presented {
            Some(fp) if trusted.contains(&fp) => Ok(()),
            Some(fp) => {
                tracing::warn!(site, client = %fp, "subplan refused: client certificate is not a trusted coordinator's");
                Err(SiteFailure::Unavailable {
                    cause: format!(
                        "client certificate {fp} is not a coordinator this site answers"
                    ),
                }
                .status("-"))
            }
            None => Err(SiteFailure::Unavailable {
                cause: "this site answers only over mutual TLS with a coordinator certificate"
                    .into(),
            }
            .status("-")),
        }
    }
}

#[tonic::async_trait]
impl FlightService for SiteService {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;
    type DoExchangeStream = BoxStream<FlightData>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        if let Err(status) = self.check_client(&request) {
            self.record_refusal("tls.untrusted_client", &status).await?;
            return Err(status);
        }
        let site = self.engine.id().to_string();
        let req = match SubplanRequest::from_ticket(&request.get_ref().ticket) {
            Ok(req) => req,
            Err(m) => {
                tracing::warn!(site, reason = %m, "subplan refused");
                let status = SiteFailure::Invalid { reason: m }.status("-");
                self.record_refusal("protocol.malformed_ticket", &status)
                    .await?;
                return Err(status);
            }
        };
        let permit = ihdsi_catalog::permit::label(req.permit.as_deref()).0;
        tracing::info!(site, query_id = %req.query_id, analyst = %req.analyst, permit = permit.as_deref().unwrap_or("-"), release = req.release, sql = %req.sql, "subplan received");
        let query_id = req.query_id.clone();
        // The site's log says how the subplan ended (engine::site); what
        // the coordinator may hear of a failure is the one mapping, with
        // the redaction of run-time causes (ihdsi_engine::protocol).
        let answer = self
            .engine
            .run(req)
            .await
            .map_err(|e| SiteFailure::of(&e).status(&query_id))?;
        let schema = answer.batch.schema();
        let batches = futures::stream::iter([Ok(answer.batch)]);
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(stream.boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "sites do not take handshakes; use DoGet with a subplan ticket",
        ))
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("sites do not list flights"))
    }
    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("sites answer DoGet only"))
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("sites answer DoGet only"))
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("sites answer DoGet only"))
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::permission_denied("sites are read-only"))
    }
    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("sites have no actions"))
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("sites answer DoGet only"))
    }
}
