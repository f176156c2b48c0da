//! Starting the gRPC servers: one site or the coordinator on a bound socket.
//!
//! Binding is separate from serving so that callers (the demo, the tests)
//! can bind port 0, learn the real port, and only then hand it out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::auth::layer::AuthLayer;
use crate::coordinator::{CoordinatorService, Drain};
use crate::error::{Result, ServerError};
use crate::permits::PermitStore;
use crate::site_service::SiteService;
use crate::tls::{analyst_server_tls, site_server_tls};
use ihdsi_catalog::AuthSection;
use ihdsi_catalog::security::{ServerIdentity, SiteTls};
use ihdsi_engine::tasks::run_to_end;
use ihdsi_engine::{Coordinator, SiteEngine};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};

/// Largest gRPC message accepted or sent (partials of very fine groupings).
const MAX_MESSAGE: usize = 256 << 20;

/// Bind `addr` (e.g. `127.0.0.1:0`).
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    Ok((listener, local))
}

/// Accepted connections with Nagle's algorithm off. A gRPC response is
/// several small writes (headers, message, trailers); with Nagle on, the
/// last waits for the peer's delayed ACK, about 40 ms per call on Linux,
/// which made every federated query at least 100 ms slower (`ihdsi-bench`).
/// tonic sets this only for sockets it binds itself, not for ours.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A tonic server builder, with TLS when configured.
fn builder(tls: Option<ServerTlsConfig>) -> Result<Server> {
    let builder = Server::builder();
    match tls {
        Some(tls) => builder
            .tls_config(tls)
            .map_err(|e| ServerError::Tls(format!("cannot use the certificates: {e}"))),
        None => Ok(builder),
    }
}

/// Serve a site until `shutdown` resolves: over mutual TLS when `tls` is
/// set (client certificates chained to the CA and pinned by fingerprint).
pub fn spawn_site(
    engine: SiteEngine,
    tls: Option<&SiteTls>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinHandle<Result<()>>> {
    let service = SiteService::new(engine, tls.map(|t| t.trusted_clients.clone()));
    let mut server = builder(tls.map(site_server_tls).transpose()?)?;
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    Ok(run_to_end(async move {
        server
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(listener), shutdown)
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    }))
}

/// What the coordinator's front door holds besides the engine.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorFront {
    /// Permits held for analysts.
    pub permits: PermitStore,
    /// TLS on the analyst-facing port.
    pub tls: Option<ServerIdentity>,
    /// Refuses new queries once shutdown begins; shared with whoever stops
    /// the server.
    pub drain: Arc<Drain>,
}

/// Serve the coordinator's Flight SQL service until `shutdown` resolves.
/// Every call passes the [`AuthLayer`] first; `[auth]` must let someone in.
pub fn spawn_coordinator(
    coordinator: Coordinator,
    auth: &AuthSection,
    front: CoordinatorFront,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinHandle<Result<()>>> {
    let auth = Arc::new(Authenticator::new(auth)?);
    let service =
        CoordinatorService::new(coordinator, Arc::clone(&auth), front.permits, front.drain);
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let server = builder(front.tls.as_ref().map(analyst_server_tls).transpose()?)?;
    Ok(run_to_end(async move {
        server
            .layer(AuthLayer::new(auth))
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(listener), shutdown)
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    }))
}
