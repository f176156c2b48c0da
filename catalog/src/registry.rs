//! The site registry and the privacy settings, as read from TOML.
//!
//! Two files configure a federation:
//! * `federation.toml` on the coordinator lists the sites (id, country,
//!   endpoint, hosted tables), the federation's privacy policy and who may
//!   query (`[auth]`, see [`crate::auth`]);
//! * `site.toml` on each site names its data location and its *own* privacy
//!   policy. A site never takes the coordinator's word for its threshold.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::limits::QueryLimits;
use crate::permit::SitePermitPolicy;
use crate::privacy::{PrivacyMode, PrivacyPolicy};
use crate::resources::{CoordinatorResources, SiteResources};
use crate::schema;
use crate::security::{
    AuditSection, CoordinatorTls, PermitStore, ServerIdentity, SiteTls, resolve,
};

/// One site as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    /// Short id, used as the value of the virtual `site` column.
    pub id: String,
    /// ISO 3166 country code, for documentation and audit.
    #[serde(default)]
    pub country: String,
    /// Arrow Flight endpoint, e.g. `http://10.1.2.3:50061`.
    pub endpoint: String,
    /// Patient tables this site hosts; empty means all of them.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Patients the site holds, as its steward declares them. A partial
    /// that claims more patients in one group is refused as implausible.
    #[serde(default)]
    pub patients: Option<u64>,
}

impl SiteEntry {
    /// Whether this site hosts `table`.
    pub fn hosts(&self, table: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    }
}

/// Coordinator settings (`[coordinator]` in `federation.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSection {
    /// Address the Flight SQL service listens on.
    #[serde(default = "default_coordinator_listen")]
    pub listen: String,
    /// Object-store URL of the public `concept.parquet`, if any.
    #[serde(default)]
    pub vocabulary: Option<String>,
    /// Seconds to wait for a site before the query fails.
    #[serde(default = "default_site_timeout")]
    pub site_timeout_secs: u64,
    /// TLS on the analyst-facing port (plaintext when absent).
    #[serde(default)]
    pub tls: Option<ServerIdentity>,
    /// Seconds in-flight queries may take to finish after SIGTERM or
    /// Ctrl-C, while no new ones are accepted.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

/// 30 s: long enough for an ordinary query to finish, short enough for an
/// orchestrator's stop timeout.
pub fn default_shutdown_grace() -> u64 {
    30
}

fn default_coordinator_listen() -> String {
    "127.0.0.1:50051".into()
}

fn default_site_timeout() -> u64 {
    120
}

/// `federation.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    pub coordinator: CoordinatorSection,
    /// Who may query (required: a coordinator never answers anonymously).
    #[serde(default)]
    pub auth: crate::AuthSection,
    #[serde(default)]
    pub privacy: PrivacyPolicy,
    #[serde(default)]
    pub sites: Vec<SiteEntry>,
    /// Mutual TLS to the sites (site endpoints must then be `https://`).
    #[serde(default)]
    pub tls: Option<CoordinatorTls>,
    /// Permits held for analysts.
    #[serde(default)]
    pub permits: Option<PermitStore>,
    /// The coordinator's audit trail.
    #[serde(default)]
    pub audit: Option<AuditSection>,
    /// Bounds on an analyst's statement, checked before it is planned.
    #[serde(default)]
    pub limits: QueryLimits,
    /// How much of the coordinator one query, and one analyst, may take.
    #[serde(default)]
    pub resources: CoordinatorResources,
}

/// `[site]` in `site.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// Site id; must match the coordinator's registry entry.
    pub id: String,
    #[serde(default)]
    pub country: String,
    /// Address the Arrow Flight service listens on.
    pub listen: String,
    /// Where the site's subplans run: `datafusion` (in process, over
    /// `data`), `postgres` (inside the database at `url`) or `ballista`
    /// (on the Ballista cluster whose scheduler is at `url`, over `data`).
    #[serde(default)]
    pub backend: SiteBackendKind,
    /// Object-store URL (or plain path) of the folder holding
    /// `<table>.parquet` (the `datafusion` and `ballista` backends; for
    /// `ballista` the cluster's executors must reach the same location).
    #[serde(default)]
    pub data: String,
    /// The database holding the site's OMOP CDM tables (the `postgres`
    /// backend), e.g. `postgres://ihdsi@127.0.0.1:5432/omop`, or the
    /// Ballista scheduler (the `ballista` backend), e.g.
    /// `df://scheduler.example.org:50050`.
    #[serde(default)]
    pub url: Option<String>,
    /// Object-store URL (or plain path) of `concept.parquet`, if any.
    #[serde(default)]
    pub vocabulary: Option<String>,
    /// Seconds in-flight subplans may take to finish after SIGTERM or
    /// Ctrl-C, while no new ones are accepted.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// File of person ids who opted out of secondary use (one per line,
    /// `#` comments). They are removed before any subplan sees the data.
    #[serde(default)]
    pub opt_out: Option<PathBuf>,
}

/// Which engine runs a site's subplans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteBackendKind {
    /// DataFusion in the site's process, over its Parquet files.
    #[default]
    Datafusion,
    /// Inside the site's PostgreSQL database.
    Postgres,
    /// On the site's Apache Ballista cluster, over its Parquet files.
    Ballista,
}

impl SiteBackendKind {
    /// The name `site.toml` spells it with (`backend = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            SiteBackendKind::Datafusion => "datafusion",
            SiteBackendKind::Postgres => "postgres",
            SiteBackendKind::Ballista => "ballista",
        }
    }
}

/// `site.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: SiteSection,
    #[serde(default)]
    pub privacy: PrivacyPolicy,
    /// Mutual TLS (plaintext when absent: development only).
    #[serde(default)]
    pub tls: Option<SiteTls>,
    /// Data permits this site requires (none required when absent:
    /// development only).
    #[serde(default)]
    pub permits: Option<SitePermitPolicy>,
    #[serde(default)]
    pub audit: Option<AuditSection>,
    /// Bounds on the subplans this site plans (its own, never the
    /// coordinator's word).
    #[serde(default = "QueryLimits::for_site")]
    pub limits: QueryLimits,
    /// How much of the site one subplan may take (its own bounds).
    #[serde(default)]
    pub resources: SiteResources,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| CatalogError::ConfigParse {
        path: PathBuf::from(path),
        message: e.to_string(),
    })
}

/// Check a site id: 1–32 characters of `a-z`, `0-9`, `_` and `-`, so it is
/// safe as a folder name, a TOML key and a log field.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::ConfigInvalid(format!(
            "site id '{id}' must be 1-32 characters of a-z, 0-9, '_' or '-'"
        )))
    }
}

fn validate_tables(tables: &[String]) -> Result<()> {
    for t in tables {
        if !schema::is_patient_table(t) {
            return Err(CatalogError::UnknownTable(t.clone()));
        }
    }
    Ok(())
}

/// Read a config file, resolve its relative paths against its folder,
/// and validate it.
fn load_config<T: for<'de> Deserialize<'de>>(
    path: &Path,
    resolve: fn(&mut T, &Path),
    validate: fn(&T) -> Result<()>,
) -> Result<T> {
    let mut cfg: T = read_toml(path)?;
    resolve(&mut cfg, path.parent().unwrap_or(Path::new(".")));
    validate(&cfg)?;
    Ok(cfg)
}

impl FederationConfig {
    /// Read and validate `federation.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        load_config(path, Self::resolve, Self::validate)
    }

    /// Resolve relative file paths against `base`.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(t) = &mut self.tls {
            t.resolve(base);
        }
        if let Some(t) = &mut self.coordinator.tls {
            t.resolve(base);
        }
        if let Some(p) = &mut self.permits {
            resolve(base, &mut p.dir);
        }
        if let Some(a) = &mut self.audit {
            resolve(base, &mut a.path);
        }
        if let Some(l) = &mut self.privacy.dp.ledger {
            resolve(base, l);
        }
    }

    /// Check ids, tables and thresholds.
    pub fn validate(&self) -> Result<()> {
        self.privacy.validate_federation()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.resources.validate()?;
        if self.sites.is_empty() {
            return Err(CatalogError::ConfigInvalid(
                "a federation needs at least one [[sites]] entry".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.sites {
            validate_id(&s.id)?;
            let tls = s.endpoint.starts_with("https://");
            if self.tls.is_some() != tls {
                return Err(CatalogError::ConfigInvalid(format!(
                    "site '{}': endpoint {} must be https:// exactly when [tls] is set",
                    s.id, s.endpoint
                )));
            }
            validate_tables(&s.tables)?;
            if !seen.insert(s.id.as_str()) {
                return Err(CatalogError::ConfigInvalid(format!(
                    "site id '{}' is listed twice",
                    s.id
                )));
            }
        }
        Ok(())
    }
}

impl SiteConfig {
    /// Read and validate `site.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        load_config(path, Self::resolve, Self::validate)
    }

    /// Resolve relative file paths against `base`.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(t) = &mut self.tls {
            t.resolve(base);
        }
        if let Some(a) = &mut self.audit {
            resolve(base, &mut a.path);
        }
        if let Some(p) = &mut self.site.opt_out {
            resolve(base, p);
        }
    }

    /// Check ids, thresholds, TLS and permit settings.
    pub fn validate(&self) -> Result<()> {
        let cfg = self;
        validate_id(&cfg.site.id)?;
        cfg.privacy.validate()?;
        if cfg.privacy.mode == PrivacyMode::Dp && cfg.privacy.min_group_size > 1 {
            return Err(CatalogError::ConfigInvalid(format!(
                "site '{}': privacy.mode = \"dp\" with min_group_size = {}: dp mode's guarantee assumes that sites send every group (min_group_size = 1); a site that withholds groups under k lets one patient move a noisy count by up to k. Set min_group_size = 1, or run the site in threshold mode",
                cfg.site.id, cfg.privacy.min_group_size
            )));
        }
        cfg.limits.validate()?;
        cfg.resources.validate()?;
        match (cfg.site.backend, &cfg.site.url) {
            (SiteBackendKind::Datafusion | SiteBackendKind::Ballista, _)
                if cfg.site.data.is_empty() =>
            {
                return Err(CatalogError::ConfigInvalid(
                    "site.data is required: the folder (or object-store URL) of the site's <table>.parquet files".into(),
                ));
            }
            (SiteBackendKind::Ballista, None) => {
                return Err(CatalogError::ConfigInvalid(
                    "site.url is required with backend = \"ballista\": the cluster's scheduler, e.g. df://scheduler:50050".into(),
                ));
            }
            (SiteBackendKind::Postgres, None) => {
                return Err(CatalogError::ConfigInvalid(
                    "site.url is required with backend = \"postgres\": the database holding the site's CDM tables".into(),
                ));
            }
            _ => {}
        }
        if let Some(t) = &cfg.tls {
            t.validate()?;
        }
        if let Some(p) = &cfg.permits {
            p.validate()?;
        }
        if cfg.privacy.round_counts_to != 1 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.round_counts_to applies to released results: set it in federation.toml, not site.toml (sites send exact partials)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_names_its_backend_and_what_it_needs() {
        let site = |body: &str| -> Result<SiteConfig> {
            let cfg: SiteConfig = toml::from_str(&format!(
                "[site]\nid = \"lu\"\nlisten = \"127.0.0.1:50061\"\n{body}"
            ))
            .map_err(|e| CatalogError::ConfigInvalid(e.to_string()))?;
            cfg.validate().map(|()| cfg)
        };
        let parquet = site("data = \"data/lu\"").expect("datafusion by default");
        assert_eq!(parquet.site.backend, SiteBackendKind::Datafusion);
        let pg = site("backend = \"postgres\"\nurl = \"postgres://ihdsi@127.0.0.1:5432/omop\"")
            .expect("postgres");
        assert_eq!(pg.site.backend, SiteBackendKind::Postgres);
        let err = site("backend = \"postgres\"")
            .expect_err("no url")
            .to_string();
        assert!(err.contains("site.url is required"), "{err}");
        let ballista =
            site("backend = \"ballista\"\ndata = \"data/kr\"\nurl = \"df://127.0.0.1:50050\"")
                .expect("ballista");
        assert_eq!(ballista.site.backend, SiteBackendKind::Ballista);
        let err = site("backend = \"ballista\"\ndata = \"data/kr\"")
            .expect_err("no scheduler")
            .to_string();
        assert!(err.contains("the cluster's scheduler"), "{err}");
        let err = site("backend = \"ballista\"\nurl = \"df://127.0.0.1:50050\"")
            .expect_err("no data")
            .to_string();
        assert!(err.contains("site.data is required"), "{err}");
        let err = site("").expect_err("no data").to_string();
        assert!(err.contains("site.data is required"), "{err}");
        assert!(site("backend = \"oracle\"").is_err());
        let err = site("data = \"data/lu\"\n[privacy]\nmode = \"dp\"\nmin_group_size = 10")
            .expect_err("dp with k above 1")
            .to_string();
        assert!(
            err.contains("site 'lu'") && err.contains("min_group_size = 1"),
            "{err}"
        );
        site("data = \"data/lu\"\n[privacy]\nmode = \"dp\"\nmin_group_size = 1")
            .expect("dp at k = 1");
    }

    #[test]
    fn federation_config_parses_and_validates() {
        let cfg: FederationConfig = toml::from_str(
            r#"
            [coordinator]
            listen = "127.0.0.1:50051"
            [privacy]
            min_group_size = 5
            [[auth.users]]
            name = "alice"
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
            [[sites]]
            id = "lu"
            country = "LU"
            endpoint = "http://127.0.0.1:50061"
            tables = ["person", "variant_occurrence"]
            "#,
        )
        .expect("parse");
        cfg.validate().expect("valid");
        assert_eq!(cfg.privacy, PrivacyPolicy::threshold(5, false));
        assert!(cfg.sites[0].hosts("PERSON"));
        assert!(!cfg.sites[0].hosts("measurement"));
    }

    #[test]
    fn bad_configs_are_refused_with_the_cause() {
        let mut cfg: FederationConfig =
            toml::from_str("[coordinator]\n[[auth.service_tokens]]\nname = \"job\"\ntoken_blake2s = \"00000000000000000000000000000000000000000000000000000000000000ff\"\n[[sites]]\nid = \"LU!\"\nendpoint = \"http://x\"\n")
                .expect("parse");
        let err = cfg.validate().expect_err("bad id").to_string();
        assert!(err.contains("site id 'LU!'"), "{err}");
        cfg.sites[0].id = "lu".into();
        cfg.sites[0].tables = vec!["patients".into()];
        assert!(
            cfg.validate()
                .expect_err("bad table")
                .to_string()
                .contains("unknown table 'patients'")
        );
        cfg.sites[0].tables.clear();
        cfg.privacy.min_group_size = 0;
        assert!(cfg.validate().is_err());
    }
}
