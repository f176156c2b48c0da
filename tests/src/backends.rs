//! Federations whose sites run on different backends: DataFusion over
//! Parquet, PostgreSQL, or a Ballista cluster, assembled in this process.

use std::path::Path;

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_cli::federation::site_folders;
use ihdsi_engine::SiteEngine;
use ihdsi_engine::site::{SiteData, SiteGuards, ballista, postgres};

use crate::policy;
use crate::serving::{serve_coordinator, serve_site};

pub use ihdsi_engine::site::ballista::cluster::StandaloneCluster;

/// Where one site's subplans run.
#[derive(Debug, Clone, Copy)]
pub enum Host<'a> {
    /// In the site's process, over its Parquet files.
    DataFusion,
    /// Inside the PostgreSQL database at this URL (already loaded).
    Postgres(&'a str),
    /// On the Ballista cluster whose scheduler is at this URL, over the
    /// site's Parquet files.
    Ballista(&'a str),
}

/// A federation over `data` with the sites of `hosts` on their backends
/// (the others on DataFusion), thresholds 1 and MIN/MAX allowed at the
/// sites, `federation_policy` at the coordinator. Returns the
/// coordinator's URI; the servers live until the test ends.
pub async fn mixed_federation(
    data: &Path,
    hosts: &[(&str, Host<'_>)],
    federation_policy: PrivacyPolicy,
) -> String {
    let vocab = data.join("concept.parquet").display().to_string();
    let mut entries = Vec::new();
    for (id, folder) in site_folders(data).expect("sites") {
        let host = hosts
            .iter()
            .find(|(site, _)| *site == id)
            .map_or(Host::DataFusion, |(_, host)| *host);
        let site_policy = policy(1, true);
        let files = SiteData {
            id: id.clone(),
            location: folder.display().to_string(),
        };
        let guards = SiteGuards::default();
        let engine = match host {
            Host::DataFusion => SiteEngine::open_with(files, Some(&vocab), site_policy).await,
            Host::Postgres(url) => postgres::open_site(&id, url, site_policy, guards).await,
            Host::Ballista(scheduler) => {
                ballista::open_site(files, scheduler, Some(&vocab), site_policy, guards).await
            }
        };
        let engine = engine.unwrap_or_else(|e| panic!("site {id} on {host:?}: {e}"));
        entries.push(serve_site(&id, engine, std::future::pending()).await);
    }
    serve_coordinator(entries, vocab, federation_policy, std::future::pending()).await
}

/// Start an in-process Ballista cluster (scheduler and one executor);
/// panics, naming the cause, when it cannot.
pub async fn ballista_cluster() -> StandaloneCluster {
    StandaloneCluster::start(2)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
