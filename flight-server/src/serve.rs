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
use tokio_stream::wrappers::TcpListenerStream;

use crate::auth::Authenticator;
use crate::auth::layer::AuthLayer;
use crate::coordinator::CoordinatorService;
use crate::error::{Result, ServerError};
use crate::site_service::SiteService;
use ihdsi_catalog::AuthSection;
use ihdsi_engine::{Coordinator, SiteEngine};

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

/// Serve one Flight service on `listener` until `shutdown` resolves.
fn spawn_flight<S>(
    service: S,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<()>>
where
    S: arrow_flight::flight_service_server::FlightService,
{
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    })
}

/// Serve a site until `shutdown` resolves.
pub fn spawn_site(
    engine: SiteEngine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<()>> {
    spawn_flight(SiteService::new(engine), listener, shutdown)
}

/// Serve the coordinator's Flight SQL service until `shutdown` resolves.
/// Every call passes the [`AuthLayer`] first; `[auth]` must let someone in.
pub fn spawn_coordinator(
    coordinator: Coordinator,
    auth: &AuthSection,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinHandle<Result<()>>> {
    let auth = Arc::new(Authenticator::new(auth)?);
    let svc = FlightServiceServer::new(CoordinatorService::new(coordinator, Arc::clone(&auth)))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    Ok(tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(AuthLayer::new(auth))
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    }))
}
