//! Transport security, audit and opt-out settings of `site.toml` and
//! `federation.toml`.
//!
//! * `[tls]` on a site: its server certificate, the federation's CA (which
//!   client certificates must chain to) and the SHA-256 fingerprints of the
//!   coordinator certificates it accepts. Chaining to the CA is not enough:
//!   every site also holds a certificate from that CA, and a site must not
//!   be able to query another site directly.
//! * `[tls]` on the coordinator: the CA it pins for sites, and the client
//!   certificate it presents to them. `[coordinator.tls]` switches TLS on
//!   for the analyst-facing Flight SQL port.
//! * `[audit]`: where the hash-chained audit trail is appended.
//!
//! Relative paths are resolved against the folder of the config file, so a
//! federation's files can be moved as one folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

/// `[tls]` in `site.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTls {
    /// PEM of the federation's certificate authority.
    pub ca: PathBuf,
    /// PEM certificate the site serves.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// `sha256:<hex>` fingerprints of coordinator certificates this site
    /// answers (`ihdsi certs init` prints them).
    pub trusted_clients: Vec<String>,
}

/// `[tls]` in `federation.toml`: how the coordinator reaches its sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorTls {
    /// PEM of the federation's certificate authority (pinned: the system
    /// trust store is never consulted).
    pub ca: PathBuf,
    /// PEM client certificate presented to the sites.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
}

/// `[coordinator.tls]`: TLS on the analyst-facing port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerIdentity {
    /// PEM certificate served to analysts.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
}

/// `[audit]`: the append-only, hash-chained audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// JSON-lines file; `<path>.head` holds the latest record's hash.
    pub path: PathBuf,
}

/// `[permits]` in `federation.toml`: permits the coordinator holds for its
/// analysts, so one who holds a single permit need not select it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitStore {
    /// Folder of `*.permit` files (tokens from `ihdsi permit issue`).
    pub dir: PathBuf,
}

/// Resolve `path` against `base` unless it is absolute.
pub(crate) fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl SiteTls {
    pub(crate) fn resolve(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key] {
            resolve(base, p);
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.trusted_clients.is_empty() {
            return Err(CatalogError::ConfigInvalid(
                "[tls] trusted_clients must list the coordinator certificate fingerprints this site answers".into(),
            ));
        }
        for fp in &self.trusted_clients {
            let hex = fp.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(CatalogError::ConfigInvalid(format!(
                    "[tls] trusted_clients entry '{fp}' is not sha256:<64 hex digits>"
                )));
            }
        }
        Ok(())
    }
}

impl CoordinatorTls {
    pub(crate) fn resolve(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key] {
            resolve(base, p);
        }
    }
}

impl ServerIdentity {
    pub(crate) fn resolve(&mut self, base: &Path) {
        resolve(base, &mut self.cert);
        resolve(base, &mut self.key);
    }
}
