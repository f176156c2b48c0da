//! The demo federation's security: mutual TLS between coordinator and
//! sites, an access body that issues every demo principal a permit, sites
//! that require one, and audit trails, all in one folder per run so that
//! concurrent demos never share a chain or a key.

use std::path::{Path, PathBuf};

use chrono::{Duration, SecondsFormat, Utc};

use crate::error::{Result, ServerError};
use crate::permits::{PermitStore, read_signing_key, write_signing_key};
use crate::tls;
use ihdsi_catalog::permit::{AccessBodyKey, Permit, Purpose, SitePermitPolicy, issue};
use ihdsi_catalog::schema;
use ihdsi_catalog::security::{CoordinatorTls, ServerIdentity, SiteTls};

/// The demo's access body key name.
pub const DEMO_ACCESS_BODY: &str = "demo-hdab";

/// Everything a secured demo federation is started with.
#[derive(Debug, Clone)]
pub struct DemoSecurity {
    /// The run's folder (certificates, access-body key, permits, audit).
    pub dir: PathBuf,
    pub coordinator_tls: CoordinatorTls,
    /// Per site id: its server TLS (CA, certificate, key, pinned coordinator).
    pub site_tls: Vec<(String, SiteTls)>,
    /// What every site requires of a permit.
    pub site_permits: SitePermitPolicy,
    /// One permit per principal, held by the coordinator.
    pub permits: PermitStore,
    /// Folder of the audit trails.
    pub audit_dir: PathBuf,
    /// TLS on the analyst-facing port too (with the coordinator's
    /// certificate; clients trust `certs/ca.pem`).
    pub analyst_tls: bool,
}

impl DemoSecurity {
    /// Make certificates, an access-body key and a one-year permit for each
    /// of `principals` over every patient table at every site, in `dir`.
    pub fn prepare(dir: &Path, sites: &[String], principals: &[String]) -> Result<Self> {
        let certs = dir.join("certs");
        let set = tls::init(&certs, sites, &[])?;
        let key_path = dir.join("access-body.key");
        let public = write_signing_key(&key_path)?;
        let key = read_signing_key(&key_path)?;
        let permit_dir = dir.join("permits");
        std::fs::create_dir_all(&permit_dir).map_err(|e| {
            ServerError::Permit(format!("cannot create {}: {e}", permit_dir.display()))
        })?;
        let now = Utc::now();
        for holder in principals {
            let permit = Permit {
                id: format!("DEMO-{holder}"),
                holder: holder.clone(),
                purpose: Purpose::ScientificResearch,
                commercial: false,
                tables: schema::patient_tables()
                    .map(|t| t.name.to_string())
                    .collect(),
                sites: sites.to_vec(),
                privacy_mode: "threshold".into(),
                budget_rho: None,
                valid_from: (now - Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true),
                valid_until: (now + Duration::days(365)).to_rfc3339_opts(SecondsFormat::Secs, true),
                issuer: DEMO_ACCESS_BODY.into(),
            };
            let token = issue(&permit, &key)?;
            let file = permit_dir.join(format!("{holder}.permit"));
            std::fs::write(&file, format!("{token}\n")).map_err(|e| {
                ServerError::Permit(format!("cannot write {}: {e}", file.display()))
            })?;
        }
        let site_tls = sites
            .iter()
            .map(|id| {
                let tls = SiteTls {
                    ca: certs.join("ca.pem"),
                    cert: certs.join(format!("site-{id}.pem")),
                    key: certs.join(format!("site-{id}.key")),
                    trusted_clients: vec![set.coordinator_fingerprint.clone()],
                };
                (id.clone(), tls)
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            coordinator_tls: CoordinatorTls {
                ca: certs.join("ca.pem"),
                cert: certs.join("coordinator.pem"),
                key: certs.join("coordinator.key"),
            },
            site_tls,
            site_permits: SitePermitPolicy {
                trusted_keys: vec![AccessBodyKey {
                    name: DEMO_ACCESS_BODY.into(),
                    public_key: public,
                }],
                allowed_purposes: Vec::new(),
                deny: Vec::new(),
            },
            permits: PermitStore::load(&permit_dir)?,
            audit_dir: dir.join("audit"),
            analyst_tls: false,
        })
    }

    /// The CA analysts trust when the analyst port is TLS.
    pub fn ca(&self) -> PathBuf {
        self.coordinator_tls.ca.clone()
    }

    /// The analyst port's identity, when it is TLS.
    pub fn analyst_identity(&self) -> Option<ServerIdentity> {
        self.analyst_tls.then(|| ServerIdentity {
            cert: self.coordinator_tls.cert.clone(),
            key: self.coordinator_tls.key.clone(),
        })
    }

    /// A site's TLS settings.
    pub fn site(&self, id: &str) -> Option<&SiteTls> {
        self.site_tls.iter().find(|(s, _)| s == id).map(|(_, t)| t)
    }
}
