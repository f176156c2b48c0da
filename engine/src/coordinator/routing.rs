//! Which sites serve a release, and the clients that reach them: one
//! [`SiteClient`] per registry entry, over mutual TLS when the federation
//! has it.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::Coordinator;
use crate::audit::SubplanSql;
use crate::error::{EngineError, Result};
use crate::fanout::SiteClient;
use ihdsi_catalog::FederationConfig;
use ihdsi_planner::split::pruning::site_restriction;
use ihdsi_planner::{FederatedPlan, Release};

/// A client per site of `config`, each with the federation's timeout.
pub(super) fn site_clients(config: &FederationConfig) -> Result<Vec<SiteClient>> {
    let timeout = Duration::from_secs(config.coordinator.site_timeout_secs.max(1));
    let tls = config.tls.as_ref().map(client_tls).transpose()?;
    config
        .sites
        .iter()
        .map(|s| SiteClient::new(s.clone(), timeout, tls.clone()))
        .collect()
}

impl Coordinator {
    pub(super) fn sites_for(&self, release: &Release) -> Result<Vec<&SiteClient>> {
        let hosting: Vec<&SiteClient> = self
            .sites
            .iter()
            .filter(|s| release.tables.iter().all(|t| s.entry.hosts(t)))
            .collect();
        // A release whose text confines it to some sites goes to those
        // only (`WHERE site = 'lu'`); one that names no hosting site goes
        // to every hosting site, which answer with nothing, as before.
        let chosen = match site_restriction(&release.site_plan) {
            Some(allowed) if hosting.iter().any(|s| allowed.contains(&s.entry.id)) => hosting
                .into_iter()
                .filter(|s| allowed.contains(&s.entry.id))
                .collect(),
            _ => hosting,
        };
        if chosen.is_empty() {
            return Err(EngineError::NoSiteHosts(
                release
                    .tables
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Ok(chosen)
    }

    /// Each release's subplan SQL and the sites it goes to.
    pub(super) fn subplans(&self, plan: &FederatedPlan) -> Result<Vec<SubplanSql>> {
        plan.releases
            .iter()
            .map(|r| {
                Ok(SubplanSql {
                    release: r.index,
                    sites: self
                        .sites_for(r)?
                        .iter()
                        .map(|s| s.entry.id.clone())
                        .collect(),
                    sql: r.site_sql.clone(),
                })
            })
            .collect()
    }
}

/// The coordinator's side of mutual TLS: pin the federation CA (never the
/// system roots) and present the coordinator's client certificate.
fn client_tls(tls: &ihdsi_catalog::security::CoordinatorTls) -> Result<ClientTlsConfig> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| EngineError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?)))
}
