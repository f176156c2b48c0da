//! Where a demo site's subplans run (`ihdsi demo --site-backend SITE=…`).
//!
//! A real site brings its own database or cluster; the demo brings private
//! ones so a mixed federation runs on one machine: one PostgreSQL server
//! for every PostgreSQL-backed site (a database each, loaded from the
//! generated Parquet files at start-up), and one in-process Ballista
//! cluster (scheduler and executor on loopback) for every Ballista-backed
//! site. Both are stopped with the federation.

use std::path::Path;

use super::postgres;
use crate::error::{CliError, Result};
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_catalog::registry::SiteBackendKind;
use ihdsi_engine::SiteEngine;
use ihdsi_engine::site::ballista::cluster::StandaloneCluster;
use ihdsi_engine::site::{SiteData, SiteGuards};

/// Which sites of a demo run on which backend; DataFusion unless listed
/// (`ihdsi demo --site-backend lu=postgres`).
#[derive(Debug, Clone, Default)]
pub struct SiteBackends(pub Vec<(String, SiteBackendKind)>);

impl SiteBackends {
    /// The backend of `site`.
    pub fn of(&self, site: &str) -> SiteBackendKind {
        self.0
            .iter()
            .rev()
            .find(|(id, _)| id == site)
            .map_or(SiteBackendKind::Datafusion, |(_, kind)| *kind)
    }

    /// A sentence for the start-up banner.
    pub fn describe(&self, site: &str) -> &'static str {
        match self.of(site) {
            SiteBackendKind::Datafusion => "DataFusion over Parquet",
            SiteBackendKind::Postgres => "inside PostgreSQL (a private server, loaded at start-up)",
            SiteBackendKind::Ballista => {
                "on Apache Ballista (an in-process scheduler and executor, over Parquet)"
            }
        }
    }
}

/// The databases and clusters the demo's sites run on, started on first
/// use and stopped when dropped.
#[derive(Debug, Default)]
pub struct SiteHosts {
    postgres: Option<postgres::PgServer>,
    ballista: Option<StandaloneCluster>,
}

/// One demo site to open.
#[derive(Debug)]
pub struct DemoSite<'a> {
    pub id: &'a str,
    /// The generated site's Parquet folder.
    pub folder: &'a Path,
    /// The whole demo's data folder (the private PostgreSQL lives there).
    pub data: &'a Path,
    pub vocabulary: &'a str,
    pub policy: PrivacyPolicy,
    pub guards: SiteGuards,
}

impl SiteHosts {
    /// Open `site` on `kind`, starting its database or cluster if needed.
    pub async fn open(&mut self, site: DemoSite<'_>, kind: SiteBackendKind) -> Result<SiteEngine> {
        let data = SiteData {
            id: site.id.to_string(),
            location: site.folder.display().to_string(),
        };
        let vocabulary = Some(site.vocabulary);
        Ok(match kind {
            SiteBackendKind::Datafusion => {
                SiteEngine::open_guarded(data, vocabulary, site.policy, site.guards).await?
            }
            SiteBackendKind::Postgres => {
                let url = self.postgres_database(site.data, site.id).await?;
                let vocab = Path::new(site.vocabulary);
                ihdsi_engine::site::postgres::load::load_site(site.folder, Some(vocab), &url)
                    .await?;
                ihdsi_engine::site::postgres::open_site(site.id, &url, site.policy, site.guards)
                    .await?
            }
            SiteBackendKind::Ballista => {
                if self.ballista.is_none() {
                    let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
                    self.ballista = Some(StandaloneCluster::start(slots).await?);
                }
                let scheduler = self
                    .ballista
                    .as_ref()
                    .map(StandaloneCluster::scheduler_url)
                    .ok_or_else(|| CliError::Serve("no Ballista cluster".into()))?;
                ihdsi_engine::site::ballista::open_site(
                    data,
                    &scheduler,
                    vocabulary,
                    site.policy,
                    site.guards,
                )
                .await?
            }
        })
    }

    /// A fresh database for `site` on the demo's private PostgreSQL.
    async fn postgres_database(&mut self, data: &Path, site: &str) -> Result<String> {
        if self.postgres.is_none() {
            postgres::stop_stale(data);
            let dir = data.join(format!(".postgres-{}", std::process::id()));
            self.postgres = Some(postgres::PgServer::start(&dir).await?);
        }
        let server = self
            .postgres
            .as_ref()
            .ok_or_else(|| CliError::Serve("no PostgreSQL".into()))?;
        server.create_database(&format!("omop_{site}")).await
    }
}
