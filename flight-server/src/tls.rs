//! Mutual TLS: loading the federation's certificates, pinning coordinator
//! certificates at the sites, and `ihdsi certs init`, which makes a
//! development CA and certificates for a whole demo federation.
//!
//! Between coordinator and sites both sides pin the federation CA: the
//! system trust store is never consulted, so a certificate bought from a
//! public CA for the right host name is still refused. A site also pins the
//! SHA-256 fingerprints of the coordinator certificates it answers, because
//! every site holds a certificate from the same CA and must not be able to
//! query another site directly.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::{Result, ServerError};
use ihdsi_catalog::security::{ServerIdentity, SiteTls};

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", path.display())))
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The fingerprint of the first certificate in a PEM file.
pub fn fingerprint_pem_file(path: &Path) -> Result<String> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| ServerError::Tls(format!("{} is not a PEM file", path.display())))?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .ok()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ServerError::Tls(format!("{} holds no PEM certificate", path.display())))?;
    Ok(fingerprint(&der))
}

/// A site's server TLS: its identity, and client certificates required and
/// chained to the federation CA.
pub fn site_server_tls(tls: &SiteTls) -> Result<ServerTlsConfig> {
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
        .client_ca_root(Certificate::from_pem(read(&tls.ca)?)))
}

/// TLS on the analyst-facing port (no client certificates: analysts log in).
pub fn analyst_server_tls(id: &ServerIdentity) -> Result<ServerTlsConfig> {
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(read(&id.cert)?, read(&id.key)?)))
}

/// What `ihdsi certs init` wrote.
#[derive(Debug, Clone)]
pub struct CertSet {
    pub dir: PathBuf,
    /// Fingerprint of `coordinator.pem`, for the sites' `trusted_clients`.
    pub coordinator_fingerprint: String,
}

fn cert_error(e: rcgen::Error) -> ServerError {
    ServerError::Tls(format!("cannot make a certificate: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text)
        .map_err(|e| ServerError::Tls(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    if name.ends_with(".key") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// A leaf certificate for `name`, valid for loopback and `hosts`.
fn leaf(dir: &Path, name: &str, hosts: &[String], issuer: &Issuer<'_, KeyPair>) -> Result<Vec<u8>> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    sans.extend(hosts.iter().cloned());
    let mut params = CertificateParams::new(sans).map_err(cert_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("ihdsi {name}"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    write(dir, &format!("{name}.pem"), &cert.pem())?;
    write(dir, &format!("{name}.key"), &key.serialize_pem())?;
    Ok(cert.der().to_vec())
}

/// Write `ca.pem`/`ca.key`, `coordinator.pem`/`.key` and
/// `site-<id>.pem`/`.key` for each site into `dir`. Development use: a real
/// federation's CA key lives with its operator, not next to the services.
pub fn init(dir: &Path, sites: &[String], hosts: &[String]) -> Result<CertSet> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ServerError::Tls(format!("cannot create {}: {e}", dir.display())))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ihdsi development federation CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let ca = params.self_signed(&ca_key).map_err(cert_error)?;
    write(dir, "ca.pem", &ca.pem())?;
    write(dir, "ca.key", &ca_key.serialize_pem())?;
    let issuer = Issuer::new(params, ca_key);
    let coordinator = leaf(dir, "coordinator", hosts, &issuer)?;
    for site in sites {
        ihdsi_catalog::auth::validate_principal(site)?;
        leaf(dir, &format!("site-{site}"), hosts, &issuer)?;
    }
    Ok(CertSet {
        dir: dir.to_path_buf(),
        coordinator_fingerprint: fingerprint(&coordinator),
    })
}
