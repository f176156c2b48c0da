//! The one way to start a federation: the demo, the tests and the
//! benchmarks all describe theirs as a [`FederationSpec`] and get the same
//! configuration out of it.
//!
//! A spec turns into the real config structs ([`SiteConfig`],
//! [`FederationConfig`]), the very types `ihdsi site --config` and `ihdsi
//! coordinator --config` read. Written to disk they are serialised with
//! `toml`, never assembled as text, so a config the builder writes is one
//! the loader accepts, field for field.
//!
//! Two ways to run a spec:
//! * [`processes`]: one `ihdsi site` process per site and an `ihdsi
//!   coordinator` process, as an operator runs them (the tests' secured
//!   federations, the benchmarks);
//! * in process, on the caller's tokio runtime ([`crate::demo::start_with`]),
//!   for the demo and the fast tests.

pub mod processes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ihdsi_catalog::permit::SitePermitPolicy;
use ihdsi_catalog::registry::{
    CoordinatorSection, SiteBackendKind, SiteSection, default_shutdown_grace,
};
use ihdsi_catalog::security::{AuditSection, CoordinatorTls, PermitStore, ServerIdentity, SiteTls};
use ihdsi_catalog::{
    AuthSection, CoordinatorResources, FederationConfig, PrivacyPolicy, QueryLimits, SiteConfig,
    SiteEntry, SiteResources,
};
use serde::Serialize;

use crate::error::{CliError, Result};

/// What guards a secured federation: certificates, the access body's key
/// that sites trust, the coordinator's permits and the audit trails.
#[derive(Debug, Clone)]
pub struct Security {
    /// Folder of `ca.pem`, `coordinator.{pem,key}` and `site-<id>.{pem,key}`
    /// (as `ihdsi certs init` writes it).
    pub certs: PathBuf,
    /// The coordinator certificate's fingerprint every site pins.
    pub coordinator_fingerprint: String,
    /// What every site requires of a permit.
    pub site_permits: SitePermitPolicy,
    /// Folder of the permits the coordinator holds for analysts.
    pub permits_dir: PathBuf,
    /// Folder of the audit trails (`coordinator.jsonl`, `site-<id>.jsonl`).
    pub audit_dir: PathBuf,
    /// TLS on the analyst-facing port too, with the coordinator's certificate.
    pub analyst_tls: bool,
}

impl Security {
    /// The CA every party trusts (analysts too, when the analyst port is TLS).
    pub fn ca(&self) -> PathBuf {
        self.certs.join("ca.pem")
    }

    /// The coordinator's TLS towards the sites.
    pub fn coordinator_tls(&self) -> CoordinatorTls {
        CoordinatorTls {
            ca: self.certs.join("ca.pem"),
            cert: self.certs.join("coordinator.pem"),
            key: self.certs.join("coordinator.key"),
        }
    }

    /// The analyst port's identity, when it is TLS.
    pub fn analyst_identity(&self) -> Option<ServerIdentity> {
        self.analyst_tls.then(|| ServerIdentity {
            cert: self.certs.join("coordinator.pem"),
            key: self.certs.join("coordinator.key"),
        })
    }

    /// A site's server TLS, pinning the coordinator.
    pub fn site_tls(&self, id: &str) -> SiteTls {
        SiteTls {
            ca: self.certs.join("ca.pem"),
            cert: self.certs.join(format!("site-{id}.pem")),
            key: self.certs.join(format!("site-{id}.key")),
            trusted_clients: vec![self.coordinator_fingerprint.clone()],
        }
    }

    /// A site's audit trail.
    pub fn site_trail(&self, id: &str) -> PathBuf {
        self.audit_dir.join(format!("site-{id}.jsonl"))
    }
}

/// Where one site's subplans run, when not DataFusion over its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteHost {
    pub backend: SiteBackendKind,
    /// The database (`postgres://…`) or Ballista scheduler (`df://…`).
    pub url: String,
}

/// A federation over a generated cohort: one site per site folder of
/// `data`, and a coordinator.
#[derive(Debug, Clone)]
pub struct FederationSpec {
    /// The cohort: `<site>/<table>.parquet` and `concept.parquet`.
    pub data: PathBuf,
    /// Where configs, opt-out lists and logs of this run go.
    pub dir: PathBuf,
    /// Every site's own policy.
    pub site_policy: PrivacyPolicy,
    /// The coordinator's policy.
    pub federation_policy: PrivacyPolicy,
    /// Who may query.
    pub auth: AuthSection,
    /// Mutual TLS, permits and audit; plaintext and unguarded when absent.
    pub security: Option<Security>,
    /// Per site id: another backend than DataFusion.
    pub hosts: BTreeMap<String, SiteHost>,
    /// Per site id: person ids that opted out.
    pub opt_out: BTreeMap<String, Vec<i64>>,
    /// The coordinator's analyst-facing address.
    pub listen: String,
    /// Seconds the coordinator waits for a site.
    pub site_timeout_secs: u64,
    /// The coordinator's statement limits (sites keep their own defaults).
    pub limits: QueryLimits,
    /// The coordinator's resource bounds.
    pub resources: CoordinatorResources,
    /// Every site's resource bounds.
    pub site_resources: SiteResources,
}

impl FederationSpec {
    /// A plaintext, unguarded federation over `data`, configs in `dir`.
    pub fn new(data: &Path, dir: &Path, auth: AuthSection) -> Self {
        Self {
            data: data.to_path_buf(),
            dir: dir.to_path_buf(),
            site_policy: PrivacyPolicy::default(),
            federation_policy: PrivacyPolicy::default(),
            auth,
            security: None,
            hosts: BTreeMap::new(),
            opt_out: BTreeMap::new(),
            listen: "127.0.0.1:0".into(),
            site_timeout_secs: 120,
            limits: QueryLimits::default(),
            resources: CoordinatorResources::default(),
            site_resources: SiteResources::default(),
        }
    }

    /// The site folders of the cohort, by id.
    pub fn sites(&self) -> Result<Vec<(String, PathBuf)>> {
        site_folders(&self.data)
    }

    /// The public vocabulary every site and the coordinator read.
    pub fn vocabulary(&self) -> String {
        self.data.join("concept.parquet").display().to_string()
    }

    /// `site.toml` of site `id` over `folder`. The opt-out list, if any,
    /// is the file [`FederationSpec::write_opt_out`] writes.
    pub fn site_config(&self, id: &str, folder: &Path) -> SiteConfig {
        let host = self.hosts.get(id);
        SiteConfig {
            site: SiteSection {
                id: id.to_string(),
                country: String::new(),
                listen: "127.0.0.1:0".into(),
                backend: host.map_or(SiteBackendKind::Datafusion, |h| h.backend),
                data: folder.display().to_string(),
                url: host.map(|h| h.url.clone()),
                vocabulary: Some(self.vocabulary()),
                shutdown_grace_secs: default_shutdown_grace(),
                opt_out: self.opt_out.contains_key(id).then(|| self.opt_out_file(id)),
            },
            privacy: self.site_policy.clone(),
            tls: self.security.as_ref().map(|s| s.site_tls(id)),
            permits: self.security.as_ref().map(|s| s.site_permits.clone()),
            audit: self.security.as_ref().map(|s| AuditSection {
                path: s.site_trail(id),
            }),
            limits: QueryLimits::for_site(),
            resources: self.site_resources,
        }
    }

    /// `federation.toml` over the sites that are up.
    pub fn federation_config(&self, sites: Vec<SiteEntry>) -> FederationConfig {
        let security = self.security.as_ref();
        FederationConfig {
            coordinator: CoordinatorSection {
                listen: self.listen.clone(),
                vocabulary: Some(self.vocabulary()),
                site_timeout_secs: self.site_timeout_secs,
                tls: security.and_then(Security::analyst_identity),
                shutdown_grace_secs: default_shutdown_grace(),
            },
            auth: self.auth.clone(),
            privacy: self.federation_policy.clone(),
            sites,
            tls: security.map(Security::coordinator_tls),
            permits: security.map(|s| PermitStore {
                dir: s.permits_dir.clone(),
            }),
            audit: security.map(|s| AuditSection {
                path: s.audit_dir.join("coordinator.jsonl"),
            }),
            limits: self.limits,
            resources: self.resources,
        }
    }

    fn opt_out_file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("opt-out-{id}.txt"))
    }

    /// Write site `id`'s opt-out list, if it has one.
    pub fn write_opt_out(&self, id: &str) -> Result<()> {
        let Some(ids) = self.opt_out.get(id) else {
            return Ok(());
        };
        let lines: Vec<String> = ids.iter().map(i64::to_string).collect();
        let text = format!("# opted out of secondary use\n{}\n", lines.join("\n"));
        write_file(&self.opt_out_file(id), &text)
    }
}

/// The site subfolders of a data folder: those holding at least one
/// `<patient table>.parquet` (the demo's `runs/` folder is not a site).
pub fn site_folders(data: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(data).map_err(|e| CliError::DataFolder {
        path: data.to_path_buf(),
        message: e.to_string(),
    })?;
    let holds_tables = |dir: &Path| {
        ihdsi_catalog::schema::patient_tables()
            .any(|t| dir.join(format!("{}.parquet", t.name)).exists())
    };
    let mut sites: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && holds_tables(&e.path()))
        .filter_map(|e| e.file_name().to_str().map(|n| (n.to_string(), e.path())))
        .collect();
    sites.sort();
    if sites.is_empty() {
        return Err(CliError::DataFolder {
            path: data.to_path_buf(),
            message: "no site subfolders (folders holding <table>.parquet files)".into(),
        });
    }
    Ok(sites)
}

/// The patient tables a site folder holds (`<table>.parquet`).
pub fn hosted_tables(folder: &Path) -> Vec<String> {
    ihdsi_catalog::schema::patient_tables()
        .map(|t| t.name)
        .filter(|t| folder.join(format!("{t}.parquet")).exists())
        .map(str::to_string)
        .collect()
}

/// Serialise `config` as TOML into `path`.
pub fn write_toml(path: &Path, config: &impl Serialize) -> Result<()> {
    let text = toml::to_string(config).map_err(|e| CliError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_file(path, &text)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, &e))?;
    }
    std::fs::write(path, text).map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
