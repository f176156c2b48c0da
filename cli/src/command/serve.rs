//! `ihdsi site` and `ihdsi coordinator`: serve one config until Ctrl-C,
//! printing the endpoint line the federation builder waits for.

use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, Result};
use ihdsi_catalog::{FederationConfig, SiteConfig};
use ihdsi_engine::{Coordinator, SiteEngine};
use ihdsi_flight_server::permits::PermitStore;
use ihdsi_flight_server::serve::{CoordinatorFront, bind, spawn_coordinator, spawn_site};

/// The config file a service runs from.
#[derive(Debug, Args)]
pub(super) struct ConfigArgs {
    /// `site.toml` or `federation.toml`.
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
    let server = spawn_site(engine, config.tls.as_ref(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })?;
    tracing::info!(site = %config.site.id, %addr, ?tables, min_group_size = config.privacy.min_group_size, tls = config.tls.is_some(), permits = config.permits.is_some(), audit = config.audit.is_some(), "site listening");
    println!("site {} endpoint: {scheme}://{addr}", config.site.id);
    Ok(server.await.map_err(|e| CliError::Serve(e.to_string()))??)
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
    let front = CoordinatorFront {
        permits,
        tls: config.coordinator.tls.clone(),
    };
    let scheme = if front.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let server = spawn_coordinator(coordinator, &config.auth, front, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })?;
    tracing::info!(%addr, sites = config.sites.len(), site_tls = config.tls.is_some(), audit = config.audit.is_some(), "coordinator listening");
    println!("Flight SQL endpoint: {scheme}://{addr}");
    Ok(server.await.map_err(|e| CliError::Serve(e.to_string()))??)
}
