//! `ihdsi site` and `ihdsi coordinator`: serve one config until Ctrl-C or
//! SIGTERM, printing the endpoint line the federation builder waits for.
//!
//! On either signal a service stops accepting connections and requests,
//! lets the ones in flight finish within its `shutdown_grace_secs`, and
//! exits; audit records are written (and synced) per record, so nothing is
//! left to flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::error::{CliError, Result};
use ihdsi_catalog::{FederationConfig, SiteConfig};
use ihdsi_engine::{Coordinator, SiteEngine};
use ihdsi_flight_server::coordinator::Drain;
use ihdsi_flight_server::permits::PermitStore;
use ihdsi_flight_server::serve::{CoordinatorFront, bind, spawn_coordinator, spawn_site};

/// The config file a service runs from.
#[derive(Debug, Args)]
pub(super) struct ConfigArgs {
    /// The service's config: `site.toml` for a site, `federation.toml`
    /// for the coordinator (README, "Production processes").
    #[arg(long)]
    pub(super) config: PathBuf,
}

/// `ihdsi site --config site.toml`: serve until Ctrl-C. Prints its endpoint
/// on standard output once it is listening.
pub(super) async fn serve_site(config: &std::path::Path) -> Result<()> {
    let config = SiteConfig::load(config)?;
    if config.tls.is_none() {
        tracing::warn!(site = %config.site.id, "no [tls]: this site accepts plaintext subplans from anyone who can reach its port (development only)");
    }
    if config.permits.is_none() {
        tracing::warn!(site = %config.site.id, "no [permits]: this site runs subplans without a data permit (development only)");
    }
    let engine = SiteEngine::open(&config).await?;
    let (listener, addr) = bind(&config.site.listen).await?;
    let tables = engine.tables().to_vec();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let server = spawn_site(engine, config.tls.as_ref(), listener, stop_signal(stopping))?;
    tracing::info!(site = %config.site.id, %addr, ?tables, min_group_size = config.privacy.min_group_size, tls = config.tls.is_some(), permits = config.permits.is_some(), audit = config.audit.is_some(), "site listening");
    println!("site {} endpoint: {scheme}://{addr}", config.site.id);
    until_drained(server, stopped, config.site.shutdown_grace_secs).await
}

/// `ihdsi coordinator --config federation.toml`: serve until Ctrl-C.
pub(super) async fn serve_coordinator(config: &std::path::Path) -> Result<()> {
    let config = FederationConfig::load(config)?;
    let coordinator = Coordinator::new(&config).await?;
    let permits = match &config.permits {
        Some(p) => PermitStore::load(&p.dir)?,
        None => PermitStore::default(),
    };
    let (listener, addr) = bind(&config.coordinator.listen).await?;
    let drain = Arc::new(Drain::default());
    let front = CoordinatorFront {
        permits,
        tls: config.coordinator.tls.clone(),
        drain: Arc::clone(&drain),
    };
    let scheme = if front.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let grace = Duration::from_secs(config.coordinator.shutdown_grace_secs);
    // The server stops once its queries in flight have answered: a Flight
    // SQL answer is fetched by a second call on the same connection.
    let shutdown = async move {
        stop_signal(stopping).await;
        drain.begin();
        drain.idle(grace).await;
    };
    let server = spawn_coordinator(coordinator, &config.auth, front, listener, shutdown)?;
    tracing::info!(%addr, sites = config.sites.len(), site_tls = config.tls.is_some(), audit = config.audit.is_some(), "coordinator listening");
    println!("Flight SQL endpoint: {scheme}://{addr}");
    // The drain has the grace period; closing the connections gets a
    // little more.
    until_drained(server, stopped, config.coordinator.shutdown_grace_secs + 5).await
}

/// Resolves on Ctrl-C or SIGTERM (which tells the server to stop
/// accepting), and says so on `stopping`.
async fn stop_signal(stopping: tokio::sync::oneshot::Sender<&'static str>) {
    let _ = stopping.send(crate::signals::termination().await);
}

/// Wait for `server` to finish its in-flight requests, at most
/// `grace_secs` after the stop signal.
async fn until_drained(
    server: tokio::task::JoinHandle<ihdsi_flight_server::Result<()>>,
    stopped: tokio::sync::oneshot::Receiver<&'static str>,
    grace_secs: u64,
) -> Result<()> {
    let mut server = server;
    let grace = async {
        match stopped.await {
            Ok(signal) => {
                tracing::info!(
                    signal,
                    grace_secs,
                    "stopping: no new requests; the ones in flight may finish"
                );
                tokio::time::sleep(std::time::Duration::from_secs(grace_secs)).await;
            }
            // The server ended without a signal.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        ended = &mut server => {
            tracing::info!("stopped");
            Ok(ended.map_err(|e| CliError::Serve(e.to_string()))??)
        }
        () = grace => {
            tracing::warn!(grace_secs, "grace period over: requests still in flight were dropped");
            server.abort();
            Ok(())
        }
    }
}
